import { describe, expectTypeOf, it } from 'vitest';
import { fallback, isRejection, type Pipeline, pipeline, type Policy, type Rejection, timeout, type WorkContext } from '../src/index.ts';

describe('result types', () => {
  it('a policy without a fallback keeps the work result type', () => {
    const p = pipeline(timeout({ ms: 10 }));
    expectTypeOf(p).toEqualTypeOf<Pipeline<never>>();
    expectTypeOf(p.execute(async () => 42)).toEqualTypeOf<Promise<number>>();
    expectTypeOf(p.execute(() => 'sync')).toEqualTypeOf<Promise<string>>();
    expectTypeOf(timeout({ ms: 1 }).execute(async () => ({ a: 1 }))).toEqualTypeOf<Promise<{ a: number }>>();
  });

  it('a fallback widens the result to T | F through the whole pipeline', () => {
    const p = pipeline({ name: 'x' }, fallback({ value: null }), timeout({ ms: 10 }));
    expectTypeOf(p.execute(async () => 42)).toEqualTypeOf<Promise<number | null>>();
    const q = pipeline(fallback({ factory: () => 'cached' as const }), fallback({ value: 0 as const }));
    expectTypeOf(q.execute(async () => true)).toEqualTypeOf<Promise<boolean | 'cached' | 0>>();
    expectTypeOf(fallback({ value: 'x' }).execute(async () => 1)).toEqualTypeOf<Promise<number | string>>();
  });

  it('nested pipelines carry their extra result types', () => {
    const inner = pipeline(fallback({ value: undefined }));
    const outer = pipeline(timeout({ ms: 1 }), inner);
    expectTypeOf(outer.execute(async () => 1)).toEqualTypeOf<Promise<number | undefined>>();
    expectTypeOf(outer).toMatchTypeOf<Policy<undefined>>();
  });

  it('the work receives the context', () => {
    pipeline().execute((ctx) => {
      expectTypeOf(ctx).toEqualTypeOf<WorkContext>();
      expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
      expectTypeOf(ctx.attempt).toEqualTypeOf<number>();
    });
  });

  it('wrap keeps parameter types and widens the return type', () => {
    const get = pipeline(fallback({ value: null }), timeout({ ms: 5 })).wrap(async (id: string, n?: number) => ({ id, n }));
    expectTypeOf(get).parameters.toEqualTypeOf<[id: string, n?: number]>();
    expectTypeOf(get).returns.toEqualTypeOf<Promise<{ id: string; n: number | undefined } | null>>();
    const plain = timeout({ ms: 5 }).wrap((a: number, b: number) => a + b);
    expectTypeOf(plain).toEqualTypeOf<(a: number, b: number) => Promise<number>>();
  });

  it('rejects misuse at compile time', () => {
    // @ts-expect-error ms is required
    timeout({});
    // @ts-expect-error fallback needs value or factory
    fallback({ handle: () => true });
    // @ts-expect-error a string is not a policy
    pipeline('nope');
  });
});

describe('isRejection is a type guard', () => {
  it('narrows to the three refusals', () => {
    const error: unknown = undefined;
    if (isRejection(error)) expectTypeOf(error).toEqualTypeOf<Rejection>();
  });
});

import { describe, expect, it } from 'vitest';
import { fallback, pipeline, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { never, track } from './helpers.ts';

describe('fallback', () => {
  it('replaces an error with a constant value', async () => {
    const policy = fallback({ value: 'cached' });
    await expect(policy.execute(() => Promise.reject(new Error('down')))).resolves.toBe('cached');
    await expect(policy.execute(() => 'fresh')).resolves.toBe('fresh');
  });

  it('accepts undefined as an explicit value', async () => {
    await expect(fallback({ value: undefined }).execute(() => { throw new Error('x'); })).resolves.toBeUndefined();
  });

  it('calls the factory with the error and a signal', async () => {
    const boom = new Error('boom');
    const seen: unknown[] = [];
    const policy = fallback({
      factory: ({ error, signal }) => {
        seen.push(error, signal instanceof AbortSignal);
        return 'made';
      },
    });
    await expect(policy.execute(() => Promise.reject(boom))).resolves.toBe('made');
    expect(seen).toEqual([boom, true]);
  });

  it('falls back on non-Error throws, synchronous throws and timeouts', async () => {
    const clock = new FakeClock();
    const policy = pipeline(fallback({ value: 0 }), timeout({ ms: 5, clock }));
    await expect(policy.execute(() => { throw 'str'; })).resolves.toBe(0);
    await expect(policy.execute(() => { throw null; })).resolves.toBe(0);
    const t = track(policy.execute(() => never()));
    await clock.advance(5);
    expect(t.value).toBe(0);
  });

  it('lets handle() decide which errors to replace', async () => {
    const policy = fallback({ value: 'fb', handle: (e) => e instanceof RangeError });
    await expect(policy.execute(() => { throw new RangeError('r'); })).resolves.toBe('fb');
    const other = new TypeError('t');
    await expect(policy.execute(() => { throw other; })).rejects.toBe(other);
  });

  it('never replaces the caller abort', async () => {
    const controller = new AbortController();
    const policy = fallback({ value: 'fb' });
    const t = track(policy.execute(() => never(), { signal: controller.signal }));
    controller.abort('mine');
    await new Promise((r) => setImmediate(r));
    expect(t.error).toBe('mine');
  });

  it('propagates a factory failure', async () => {
    const secondary = new Error('secondary');
    const policy = fallback({ factory: () => Promise.reject(secondary) });
    await expect(policy.execute(() => { throw new Error('primary'); })).rejects.toBe(secondary);
  });

  it('emits onFallback with the replaced error', async () => {
    const policy = fallback({ value: 1 });
    const errors: unknown[] = [];
    policy.onFallback((e) => errors.push(e.error));
    await policy.execute(() => { throw 'x'; });
    expect(errors).toEqual(['x']);
  });

  it('rejects bad options at construction', () => {
    expect(() => fallback({} as never)).toThrow(/exactly one of the options "value" or "factory"; received neither/);
    expect(() => fallback({ value: 1, factory: () => 2 } as never)).toThrow(/received both/);
    expect(() => fallback({ factory: 3 } as never)).toThrow(/option "factory" must be a function; received 3/);
    expect(() => fallback({ value: 1, handle: 'x' } as never)).toThrow(/option "handle" must be a function/);
    expect(() => fallback({ value: 1, other: 1 } as never)).toThrow(/unknown option "other"/);
    expect(() => fallback(undefined as never)).toThrow(TypeError);
  });
});

import { describe, expect, it } from 'vitest';
import { constant, fallback, type Outcome, pipeline, retry, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';

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
    expect(() => (fallback as (options?: unknown) => unknown)()).toThrow(
      new TypeError('fallback: give exactly one of the options "value" or "factory"; received neither'),
    );
    expect(fallback({ value: 1 }).kind).toBe('fallback');
    expect(() => fallback({ value: 1, factory: () => 2 } as never)).toThrow(/received both/);
    expect(() => fallback({ factory: 3 } as never)).toThrow(/option "factory" must be a function; received 3/);
    expect(() => fallback({ value: 1, handle: 'x' } as never)).toThrow(/option "handle" must be a function/);
    expect(() => fallback({ value: 1, other: 1 } as never)).toThrow(/unknown option "other"/);
    expect(() => fallback(undefined as never)).toThrow(TypeError);
  });

  describe('a fallback inside an attempt a retry gave up on does not make the call a fallback', () => {
    // Found by the random-pipeline suite: attempt 1 fails, the inner fallback's slow
    // factory starts, the timeout above it expires, the retry's attempt 2 succeeds. The
    // caller gets the work's value, so the call must be reported as a success.
    const slowFallbackInsideRetry = (clock: FakeClock) =>
      pipeline(
        { clock },
        retry({ maxAttempts: 2, backoff: constant({ ms: 0 }), clock }),
        timeout({ ms: 1, clock }),
        fallback({ factory: () => delayed(clock, 5, 'fallback value') }),
      );

    it('in one pipeline', async () => {
      const clock = new FakeClock();
      const p = slowFallbackInsideRetry(clock);
      const outcomes: Outcome[] = [];
      p.onSettled(({ outcome }) => outcomes.push(outcome));
      let attempt = 0;
      const call = track(p.execute(() => (++attempt === 1 ? Promise.reject(new Error('first attempt fails')) : 'work value')));
      await clock.advance(10);
      expect(call.value).toBe('work value');
      expect(outcomes).toEqual(['success']);
    });

    it('in a nested pipeline: the outer pipeline is not told of a fallback either', async () => {
      const clock = new FakeClock();
      const inner = slowFallbackInsideRetry(clock);
      const outer = pipeline({ clock }, timeout({ ms: 100, clock }), inner);
      const outcomes: string[] = [];
      inner.onSettled(({ outcome }) => outcomes.push(`inner ${outcome}`));
      outer.onSettled(({ outcome }) => outcomes.push(`outer ${outcome}`));
      let attempt = 0;
      const call = track(outer.execute(() => (++attempt === 1 ? Promise.reject(new Error('first attempt fails')) : 'work value')));
      await clock.advance(10);
      expect(call.value).toBe('work value');
      expect(outcomes).toEqual(['inner success', 'outer success']);
    });

    it('a fallback that does produce the result after a retry is still reported as one', async () => {
      const clock = new FakeClock();
      const p = pipeline({ clock }, retry({ maxAttempts: 2, backoff: constant({ ms: 0 }), clock }), fallback({ value: 'fallback value' }));
      const outcomes: Outcome[] = [];
      p.onSettled(({ outcome }) => outcomes.push(outcome));
      const call = track(p.execute(() => Promise.reject(new Error('always fails'))));
      await clock.advance(0);
      expect(call.value).toBe('fallback value');
      expect(outcomes).toEqual(['fallback']);
    });
  });
});

import { describe, expect, it } from 'vitest';
import { bulkhead, circuitBreaker, fallback, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

describe('layer protocol', () => {
  it('wrap refuses something that is not a function, naming the policy and the value', () => {
    expect(() => timeout({ ms: 10 }).wrap(42 as never)).toThrow(new TypeError('timeout.wrap: expected a function; received 42'));
  });

  it('a work rejecting with undefined is a failure, not the caller abort, while the caller signal is live', async () => {
    // An unaborted signal's reason is undefined too: only an aborted signal's reason is the caller's abort.
    const policy = fallback({ value: 'fallback value' });
    const signal = new AbortController().signal;
    await expect(policy.execute(() => Promise.reject(undefined), { signal })).resolves.toBe('fallback value');
  });

  it('a caller signal aborted by the work while the call descends rejects the call with its reason at once', async () => {
    const controller = new AbortController();
    const reason = new Error('work aborted its own caller');
    const call = bulkhead({ maxConcurrent: 1 }).execute(
      () => {
        controller.abort(reason);
        return 'finished anyway';
      },
      { signal: controller.signal },
    );
    await expect(call).rejects.toBe(reason);
  });

  it('a failure after the caller aborted still counts: only the abort reason itself is the caller abort', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1 });
    const controller = new AbortController();
    let failWork: (error: Error) => void = () => {};
    const call = breaker.execute(() => new Promise((_, reject) => (failWork = reject)), { signal: controller.signal }).catch((e: unknown) => e);
    const reason = new Error('caller left');
    controller.abort(reason);
    failWork(new Error('db down'));
    expect(await call).toBe(reason);
    await clock.flush();
    expect(breaker.state).toBe('open');
  });
});

import { describe, expect, it } from 'vitest';
import { bulkhead, type Chain, circuitBreaker, fallback, PolicyBase, type Scope, timeout } from '../src/index.ts';
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

  it('isCallerAbort is the abort reason itself; isStoppedFromOutside is any failure once the caller or the scope stopped the call', async () => {
    /** Records how a layer sees the error of the layers below it. */
    class Probe extends PolicyBase {
      readonly kind = 'probe';
      seen: [boolean, boolean][] = [];
      _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        return chain.next(index + 1, scope, attempt).catch((error: unknown) => {
          this.seen.push([chain.isCallerAbort(error), chain.isStoppedFromOutside(error, scope)]);
          throw error;
        });
      }
    }
    const probe = new Probe();
    const run = async (abort: boolean, fail: (reason: unknown) => unknown) => {
      const controller = new AbortController();
      let failWork: (error: unknown) => void = () => {};
      const call = probe.execute(() => new Promise((_, reject) => (failWork = reject)), { signal: controller.signal }).catch((e: unknown) => e);
      const reason = new Error('caller left');
      if (abort) controller.abort(reason);
      failWork(fail(reason));
      const result = await call;
      if (abort) expect(result).toBe(reason); // the caller gets its reason, whatever the work did
      await Promise.resolve();
    };
    await run(false, () => new Error('db down')); // a plain failure
    await run(true, () => new Error('db down')); // a failure after the abort (a socket the abort closed, say)
    await run(true, (reason) => reason); // the abort itself
    expect(probe.seen).toEqual([
      [false, false],
      [false, true],
      [true, true],
    ]);
  });
});

/** Retry behaviours that the main suite left unpinned (found by mutation testing). */
import { describe, expect, it } from 'vitest';
import { BrokenCircuitError, constant, retry } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

/** A retry whose work rejects with `outcomes` in turn. */
async function lastError(outcomes: unknown[]): Promise<unknown> {
  let i = 0;
  const policy = retry({ maxAttempts: outcomes.length, backoff: constant({ ms: 0 }), handle: () => true });
  return policy.execute(() => Promise.reject(outcomes[i++])).catch((e: unknown) => e);
}

describe('retry: the cause of a final refusal', () => {
  it('is the last failure that was not a refusal, set as a plain non-enumerable property', async () => {
    const a = new Error('A');
    const b = new Error('B');
    const refusal = new BrokenCircuitError(0);
    expect(await lastError([a, b, refusal])).toBe(refusal);
    expect(Object.getOwnPropertyDescriptor(refusal, 'cause')).toEqual({ value: b, writable: true, configurable: true, enumerable: false });
  });

  it('skips the refusals in between: the failure before them stays the cause', async () => {
    const a = new Error('A');
    const last = new BrokenCircuitError(0);
    expect(await lastError([a, new BrokenCircuitError(0), last])).toBe(last);
    expect(last.cause).toBe(a);
  });

  it('is left unset when every attempt was refused', async () => {
    const last = new BrokenCircuitError(0);
    expect(await lastError([new BrokenCircuitError(0), last])).toBe(last);
    expect(Object.hasOwn(last, 'cause')).toBe(false);
  });

  it("does not replace a refusal's own cause", async () => {
    const own = new Error('own');
    const last = new BrokenCircuitError(0, 'refused', { cause: own });
    expect(await lastError([new Error('A'), last])).toBe(last);
    expect(last.cause).toBe(own);
  });
});

describe('retry: details', () => {
  it('counts maxElapsedMs from the start of the call, not from time 0', async () => {
    const clock = new FakeClock(10_000);
    const policy = retry({ clock, maxAttempts: 3, maxElapsedMs: 1_000, backoff: constant({ ms: 100 }) });
    let calls = 0;
    const call = policy.execute(() => (++calls < 3 ? Promise.reject(new Error('x')) : 'ok'));
    await clock.runAll();
    await expect(call).resolves.toBe('ok');
    expect(calls).toBe(3);
  });

  it('refuses a function as the backoff or the budget, and a budget lacking either method', () => {
    const schedule = Object.assign(() => 1, { delayMs: () => 1 });
    expect(() => retry({ backoff: schedule as never })).toThrow(/^retry: option "backoff" must be a backoff schedule/);
    const methods = { recordFirstAttempt: () => {}, tryRetry: () => true };
    expect(() => retry({ budget: Object.assign(() => {}, methods) as never })).toThrow(/^retry: option "budget" must be a RetryBudget/);
    expect(() => retry({ budget: { tryRetry: methods.tryRetry } as never })).toThrow(/^retry: option "budget" must be a RetryBudget/);
    expect(() => retry({ budget: { recordFirstAttempt: methods.recordFirstAttempt } as never })).toThrow(/^retry: option "budget" must be a RetryBudget/);
    expect(() => retry({ budget: methods as never })).not.toThrow();
  });

  it("points p-retry users at its option names", () => {
    const hints: [string, string][] = [
      ['minTimeout', "(p-retry's minTimeout is backoff: exponential({ initialMs }))"],
      ['maxTimeout', "(p-retry's maxTimeout is backoff: exponential({ maxMs }))"],
      ['factor', "(p-retry's factor is backoff: exponential({ factor }))"],
      ['maxRetryTime', "(p-retry's maxRetryTime is maxElapsedMs)"],
    ];
    for (const [option, hint] of hints) {
      expect(() => retry({ [option]: 1 } as never)).toThrow(hint);
    }
  });
});

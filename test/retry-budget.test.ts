import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constant, retry, RETRY_BUDGET_DEFAULTS, retryBudget, type RetryBudgetExhaustedEvent } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

describe('retryBudget', () => {
  it('has pinned defaults: ratio 0.2, 10 per second, 10 s window', () => {
    expect(RETRY_BUDGET_DEFAULTS).toEqual({ ratio: 0.2, minPerSecond: 10, windowMs: 10_000 });
    expect(Object.isFrozen(RETRY_BUDGET_DEFAULTS)).toBe(true);
    const budget = retryBudget({ clock: new FakeClock() });
    expect([budget.ratio, budget.minPerSecond, budget.windowMs]).toEqual([0.2, 10, 10_000]);
    // the floor alone: 10 per second over 10 s
    expect(budget.maxRetriesInWindow).toBe(100);
    expect(budget.remainingRetries).toBe(100);
  });

  it('allows ratio x first attempts + minPerSecond x window seconds, then refuses', () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0.5, minPerSecond: 1, windowMs: 2_000, clock });
    for (let i = 0; i < 10; i++) budget.recordFirstAttempt();
    // 0.5 * 10 + 1 * 2 = 7
    expect(budget.maxRetriesInWindow).toBe(7);
    const granted = Array.from({ length: 10 }, () => budget.tryRetry());
    expect(granted.filter(Boolean)).toHaveLength(7);
    expect(granted.slice(7)).toEqual([false, false, false]);
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow, budget.remainingRetries]).toEqual([10, 7, 0]);
  });

  it('with ratio 0 and no floor, grants nothing', () => {
    const budget = retryBudget({ ratio: 0, minPerSecond: 0, clock: new FakeClock() });
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(false);
  });

  it('refuses a fraction: 0.2 x 4 = 0.8 retries is not one retry', () => {
    const budget = retryBudget({ ratio: 0.2, minPerSecond: 0, clock: new FakeClock() });
    for (let i = 0; i < 4; i++) budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(false);
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
  });

  it('forgets counts as the window slides, bucket by bucket', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.recordFirstAttempt(); // bucket [0, 100)
    await clock.advance(500);
    budget.recordFirstAttempt(); // bucket [500, 600)
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
    await clock.advance(499); // t = 999: still the same window
    expect(budget.firstAttemptsInWindow).toBe(2);
    await clock.advance(1); // t = 1000: bucket [0, 100) dropped
    expect(budget.firstAttemptsInWindow).toBe(1);
    expect(budget.retriesInWindow).toBe(2);
    expect(budget.remainingRetries).toBe(0);
    await clock.advance(500); // t = 1500: everything dropped
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([0, 0]);
    await clock.advance(1e9); // a long idle gap resets all buckets at once
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([0, 0]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires onExhausted with the error on refusal, frozen, and not on grants', () => {
    const budget = retryBudget({ ratio: 0, minPerSecond: 0.5, windowMs: 2_000, clock: new FakeClock() });
    const events: RetryBudgetExhaustedEvent[] = [];
    const dispose = budget.onExhausted((e) => events.push(e));
    const error = new Error('boom');
    expect(budget.tryRetry(error)).toBe(true);
    expect(budget.tryRetry(error)).toBe(false);
    expect(events).toEqual([{ error }]);
    expect(events[0]!.error).toBe(error);
    expect(Object.isFrozen(events[0])).toBe(true);
    dispose();
    budget.tryRetry(error);
    expect(events).toHaveLength(1);
  });

  it('works with a clock that starts below zero', async () => {
    const clock = new FakeClock(-5_050);
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
    await clock.advance(1_000);
    expect(budget.firstAttemptsInWindow).toBe(0);
  });

  it('rejects bad options', () => {
    expect(() => retryBudget({ ratio: 1.5 })).toThrow(/retryBudget: option "ratio" must be a finite number from 0 to 1; received 1.5/);
    expect(() => retryBudget({ ratio: -0.1 })).toThrow(RangeError);
    expect(() => retryBudget({ ratio: Number.NaN })).toThrow(TypeError);
    expect(() => retryBudget({ minPerSecond: -1 })).toThrow(/"minPerSecond"/);
    expect(() => retryBudget({ minPerSecond: Infinity })).toThrow(RangeError);
    expect(() => retryBudget({ windowMs: 5 })).toThrow(/"windowMs" must be a finite number of milliseconds from 10/);
    expect(() => retryBudget({ windowMs: Infinity })).toThrow(RangeError);
    expect(() => retryBudget({ clock: Date } as never)).toThrow(/"clock" must be a Clock/);
    expect(() => retryBudget({ ratio: '0.2' } as never)).toThrow(TypeError);
    expect(() => retryBudget({ retries: 3 } as never)).toThrow(/unknown option "retries"/);
    expect(() => retryBudget(null as never)).toThrow(/options must be an object; received null/);
  });
});

describe('retryBudget: what mutation testing showed unpinned', () => {
  /** A clock whose time the test sets, backwards too (FakeClock only moves forward). */
  function settableClock(startMs: number) {
    const clock = { at: startMs, now: () => clock.at, schedule: () => 0, cancel: () => {} };
    return clock;
  }

  it('counts its window from the clock it is given, when that clock does not start at 0', async () => {
    const clock = new FakeClock(5_000);
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
    await clock.advance(1_000);
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([0, 0]);
  });

  it('each getter moves the window to now before it answers', async () => {
    const clock = new FakeClock();
    // minPerSecond 1 over 1 s: a floor of one retry
    const budget = retryBudget({ ratio: 1, minPerSecond: 1, windowMs: 1_000, clock });
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
    await clock.advance(1_000);
    expect(budget.retriesInWindow).toBe(0); // read first, after the window moved
    budget.recordFirstAttempt();
    await clock.advance(1_000);
    expect(budget.maxRetriesInWindow).toBe(1); // the first attempt expired: the floor alone
    expect(budget.tryRetry()).toBe(true);
    expect(budget.remainingRetries).toBe(0);
    await clock.advance(1_000);
    expect(budget.remainingRetries).toBe(1); // the spent retries expired: the floor again
  });

  it('a clock that went backwards keeps counting in the newest bucket, and loses nothing when it catches up', () => {
    const clock = settableClock(500);
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.recordFirstAttempt(); // t = 500, bucket 5
    clock.at = 250; // backwards, by two buckets
    budget.recordFirstAttempt(); // still counted in bucket 5
    expect(budget.firstAttemptsInWindow).toBe(2);
    clock.at = 600; // one bucket after the newest: nothing expires
    expect(budget.firstAttemptsInWindow).toBe(2);
    clock.at = 1_500; // bucket 15: bucket 5 has left the window
    expect(budget.firstAttemptsInWindow).toBe(0);
  });

  it('after a gap longer than the window, counts made since expire bucket by bucket, and only they', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.recordFirstAttempt(); // t = 0, bucket 0
    expect(budget.tryRetry()).toBe(true);
    await clock.advance(5_500); // bucket 55: the whole window is gone at once
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
    await clock.advance(500); // bucket 60: buckets 56 to 60 expire, bucket 55 stays
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([1, 1]);
    await clock.advance(500); // bucket 65: bucket 55 has left the window
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([0, 0]);
  });

  it('expires bucket by bucket on a clock below zero', async () => {
    const clock = new FakeClock(-550); // bucket -6
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000, clock });
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
    await clock.advance(100); // bucket -5: nothing has left the window yet
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([1, 1]);
    await clock.advance(850); // t = 400, bucket 4: bucket -6 has left it
    expect([budget.firstAttemptsInWindow, budget.retriesInWindow]).toEqual([0, 0]);
  });

  it('a clock jump of any length costs one reset of the window, not a step per bucket skipped', async () => {
    // 10 ms window, 1 ms buckets: a walk over every skipped bucket would not end.
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 1, minPerSecond: 0, windowMs: 10, clock });
    budget.recordFirstAttempt();
    await clock.advance(1e15);
    expect(budget.firstAttemptsInWindow).toBe(0);
    budget.recordFirstAttempt();
    expect(budget.tryRetry()).toBe(true);
  });
});

describe('retry with a budget', () => {
  it('shares one budget between policies: retries stop for both, errors pass unchanged, events fire on both', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0, minPerSecond: 1, windowMs: 2_000, clock }); // 2 retries per window
    const budgetEvents: unknown[] = [];
    budget.onExhausted(({ error }) => budgetEvents.push(error));
    const a = retry({ budget, clock, maxAttempts: 5, backoff: constant({ ms: 0 }) });
    const b = retry({ budget, clock, maxAttempts: 5, backoff: constant({ ms: 0 }) });
    const policyEvents: unknown[] = [];
    const giveUps: unknown[] = [];
    b.onBudgetExhausted(({ error }) => policyEvents.push(error));
    b.onGiveUp((e) => giveUps.push(e));
    let calls = 0;
    const errorA = new Error('a');
    const errorB = new Error('b');
    await expect(
      a.execute(() => {
        calls++;
        throw errorA;
      }),
    ).rejects.toBe(errorA);
    expect(calls).toBe(3); // 1 + the 2 retries of the budget
    await expect(
      b.execute(() => {
        calls++;
        throw errorB;
      }),
    ).rejects.toBe(errorB);
    expect(calls).toBe(4); // no retry left
    expect(budgetEvents).toEqual([errorA, errorB]);
    expect(policyEvents).toEqual([errorB]);
    expect(giveUps).toEqual([{ attempts: 1, error: errorB, reason: 'budget' }]);
    expect(budget.firstAttemptsInWindow).toBe(2);
    expect(budget.retriesInWindow).toBe(2);
  });

  it('counts every call, successful or not, as a first attempt', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ clock });
    const policy = retry({ budget, clock });
    for (let i = 0; i < 5; i++) await policy.execute(() => i);
    expect(budget.firstAttemptsInWindow).toBe(5);
    expect(budget.retriesInWindow).toBe(0);
  });
});

/** Runs every timer, letting promise callbacks schedule new ones first (FakeClock.runAll checks before settling). */
async function runAllTimers(clock: FakeClock): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    await clock.flush();
    if (!(await clock.next())) return;
  }
  throw new Error('timers keep coming');
}

type Op = { kind: 'first' } | { kind: 'retry' } | { kind: 'wait'; ms: number };

describe('retry budget (properties)', () => {
  const config = fc.record({
    ratio: fc.double({ min: 0, max: 1, noNaN: true }),
    minPerSecond: fc.double({ min: 0, max: 5, noNaN: true }),
    windowMs: fc.integer({ min: 10, max: 5_000 }),
  });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.constant({ kind: 'first' as const }) },
    { weight: 4, arbitrary: fc.constant({ kind: 'retry' as const }) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 3_000 }).map((ms) => ({ kind: 'wait' as const, ms })) },
  );

  it('matches a reference model of its bucketed window, and never grants past the bound', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(op, { maxLength: 300 }), async (options, ops) => {
        const clock = new FakeClock();
        const budget = retryBudget({ ...options, clock });
        const bucketMs = options.windowMs / 10;
        const floor = (options.minPerSecond * options.windowMs) / 1000;
        const log: { bucket: number; kind: 'first' | 'retry' }[] = [];
        const inWindow = (kind: 'first' | 'retry'): number => {
          const current = Math.floor(clock.now() / bucketMs);
          return log.filter((e) => e.kind === kind && e.bucket > current - 10).length;
        };
        for (const o of ops) {
          if (o.kind === 'wait') {
            await clock.advance(o.ms);
          } else if (o.kind === 'first') {
            budget.recordFirstAttempt();
            log.push({ bucket: Math.floor(clock.now() / bucketMs), kind: 'first' });
          } else {
            const expected = inWindow('retry') + 1 <= options.ratio * inWindow('first') + floor;
            const granted = budget.tryRetry();
            expect(granted).toBe(expected);
            if (granted) {
              log.push({ bucket: Math.floor(clock.now() / bucketMs), kind: 'retry' });
              // the bound holds in the window as it stands when the retry is granted
              expect(inWindow('retry')).toBeLessThanOrEqual(options.ratio * inWindow('first') + floor);
            }
          }
          expect(budget.firstAttemptsInWindow).toBe(inWindow('first'));
          expect(budget.retriesInWindow).toBe(inWindow('retry'));
        }
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 60 },
    );
  });

  it('under retry policies sharing a budget, retries granted in any window never exceed the bound', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ ratio: fc.double({ min: 0, max: 0.5, noNaN: true }), minPerSecond: fc.integer({ min: 0, max: 3 }) }),
        fc.array(fc.record({ gapMs: fc.integer({ min: 0, max: 400 }), policy: fc.integer({ min: 0, max: 2 }), failures: fc.integer({ min: 0, max: 6 }) }), {
          maxLength: 60,
        }),
        async (options, calls) => {
          const clock = new FakeClock();
          const windowMs = 1_000;
          const budget = retryBudget({ ...options, windowMs, clock });
          const policies = [0, 1, 2].map(() => retry({ budget, clock, maxAttempts: 6, backoff: constant({ ms: 10 }) }));
          const firsts: number[] = [];
          const retries: number[] = [];
          policies.forEach((p) => p.onRetry(() => retries.push(clock.now())));
          const pending: Promise<unknown>[] = [];
          for (const call of calls) {
            await clock.advance(call.gapMs);
            firsts.push(clock.now());
            let left = call.failures;
            pending.push(
              policies[call.policy]!
                .execute(() => {
                  if (left-- > 0) throw new Error('down');
                  return 'ok';
                })
                .catch(() => undefined),
            );
          }
          await runAllTimers(clock);
          await Promise.all(pending);
          const bucketMs = windowMs / 10;
          const floor = (options.minPerSecond * windowMs) / 1000;
          for (const at of retries) {
            const current = Math.floor(at / bucketMs);
            const inWindow = (times: number[]): number => times.filter((t) => t <= at && Math.floor(t / bucketMs) > current - 10).length;
            expect(inWindow(retries)).toBeLessThanOrEqual(options.ratio * inWindow(firsts) + floor);
          }
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
  });
});

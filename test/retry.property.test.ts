import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getEventListeners } from 'node:events';
import {
  type BackoffSchedule,
  bulkhead,
  type Clock,
  constant,
  exponential,
  type Jitter,
  pipeline,
  type Policy,
  retry,
  type RetryEvent,
  timeout,
} from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { countingClock, runAllTimers } from './helpers.ts';



const schedule: fc.Arbitrary<BackoffSchedule> = fc.oneof(
  fc.record({ ms: fc.constantFrom(0, 0, 1, 10, 75), jitter: fc.constantFrom<'none' | 'full' | 'equal'>('none', 'full', 'equal') }).map((o) => constant(o)),
  fc
    .record({
      initialMs: fc.integer({ min: 1, max: 50 }),
      extraMs: fc.integer({ min: 0, max: 400 }),
      jitter: fc.constantFrom<Jitter>('none', 'full', 'equal', 'decorrelated'),
    })
    .map(({ initialMs, extraMs, jitter }) => exponential({ initialMs, maxMs: initialMs + extraMs, jitter })),
);

type Outcome = 'ok' | 'fail' | 'sync-throw' | 'non-error';
const attemptSpec = fc.record({
  outcome: fc.constantFrom<Outcome>('ok', 'fail', 'fail', 'fail', 'sync-throw', 'non-error'),
  durationMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60 })),
});

describe('retry (properties)', () => {
  it('calls the work at most maxAttempts times, waits within the schedule bounds, settles once, honours aborts, leaves no timer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          maxAttempts: fc.integer({ min: 1, max: 6 }),
          backoff: schedule,
          seed: fc.integer(),
          maxElapsedMs: fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined }),
          abortAfterMs: fc.option(fc.integer({ min: 0, max: 800 }), { nil: undefined }),
          pushbackMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
          outerTimeoutMs: fc.option(fc.integer({ min: 1, max: 800 }), { nil: undefined }),
          attempts: fc.array(attemptSpec, { minLength: 6, maxLength: 6 }),
        }),
        async (cfg) => {
          const clock = new FakeClock();
          const own = countingClock(clock);
          const policy = retry({
            clock: own,
            random: seededRandom(cfg.seed),
            maxAttempts: cfg.maxAttempts,
            backoff: cfg.backoff,
            handle: () => true,
            ...(cfg.maxElapsedMs === undefined ? {} : { maxElapsedMs: cfg.maxElapsedMs }),
            ...(cfg.pushbackMs === undefined ? {} : { retryAfter: () => cfg.pushbackMs }),
          });
          // a bulkhead outside: its permit comes back only when the retry's own promise settles
          const slot = bulkhead({ maxConcurrent: 1 });
          const guarded: Policy =
            cfg.outerTimeoutMs === undefined
              ? pipeline(slot, policy)
              : pipeline(slot, timeout({ ms: cfg.outerTimeoutMs, clock }), policy);
          const retries: (RetryEvent & { at: number })[] = [];
          policy.onRetry((e) => retries.push({ ...e, at: clock.now() }));
          const starts: number[] = [];
          const attemptNumbers: number[] = [];
          const violations: string[] = [];
          let abortedAt: number | undefined;
          let abortedWhilePending = false;
          let settled = 0;
          const controller = new AbortController();
          if (cfg.abortAfterMs !== undefined) {
            clock.schedule(() => {
              abortedAt = clock.now();
              abortedWhilePending = settled === 0;
              controller.abort(new Error('caller abort'));
            }, cfg.abortAfterMs);
          }
          const cleanups: (() => void)[] = [];
          const afterSettle = (): void => {
            // the sleep timer is gone the moment the call settles, and so is every listener
            if (own.pending !== 0) violations.push(`${own.pending} retry timer(s) left after the call settled`);
            cleanups.forEach((f) => f());
            if (getEventListeners(controller.signal, 'abort').length !== 0) violations.push('an abort listener was left');
          };
          let settledAt = -1;
          let result: unknown;
          guarded
            .execute(
              ({ attempt, signal }) => {
                if (abortedAt !== undefined) violations.push('work called after the abort');
                if (signal.aborted) violations.push('work called with an aborted signal');
                starts.push(clock.now());
                attemptNumbers.push(attempt);
                const spec = cfg.attempts[attempt - 1]!;
                if (spec.outcome === 'sync-throw') throw new Error('sync');
                return new Promise((resolve, reject) => {
                  const timer = clock.schedule(() => {
                    if (spec.outcome === 'ok') resolve('ok');
                    else if (spec.outcome === 'fail') reject(new Error('fail'));
                    else reject(7); // eslint-disable-line prefer-promise-reject-errors
                  }, spec.durationMs);
                  const onAbort = (): void => {
                    clock.cancel(timer);
                    reject(signal.reason);
                  };
                  signal.addEventListener('abort', onAbort, { once: true });
                  const done = (): void => signal.removeEventListener('abort', onAbort);
                  cleanups.push(done);
                });
              },
              { signal: controller.signal },
            )
            .then(
              (value) => {
                settled++;
                settledAt = clock.now();
                result = value;
                afterSettle();
              },
              (error: unknown) => {
                settled++;
                settledAt = clock.now();
                result = error;
                afterSettle();
              },
            );
          await runAllTimers(clock);
          expect(violations).toEqual([]);
          expect(settled).toBe(1);
          expect(starts.length).toBeGreaterThanOrEqual(1);
          expect(starts.length).toBeLessThanOrEqual(cfg.maxAttempts);
          expect(attemptNumbers).toEqual(starts.map((_, i) => i + 1));
          // one retry event per later attempt, plus one if an abort (the caller's or the outer timeout's) cut the last sleep short
          const extraRetries = retries.length - (starts.length - 1);
          const sleepCutShort = abortedAt !== undefined || cfg.outerTimeoutMs !== undefined;
          expect(extraRetries === 0 || (sleepCutShort && extraRetries === 1)).toBe(true);
          retries.forEach((r, i) => {
            const n = i + 1;
            expect(r.attempt).toBe(n + 1);
            const min = cfg.backoff.minDelayMs(n);
            const max = Math.max(cfg.backoff.maxDelayMs(n), cfg.pushbackMs ?? 0);
            expect(r.delayMs).toBeGreaterThanOrEqual(min);
            expect(r.delayMs).toBeLessThanOrEqual(max);
            if (cfg.pushbackMs !== undefined) expect(r.delayMs).toBeGreaterThanOrEqual(cfg.pushbackMs);
            // the next attempt starts exactly after the delay (unless the abort cut the sleep short)
            if (starts[n] !== undefined) expect(starts[n]).toBe(r.at + r.delayMs);
          });
          if (cfg.maxElapsedMs !== undefined) {
            for (const start of starts) expect(start - starts[0]!).toBeLessThanOrEqual(cfg.maxElapsedMs);
          }
          expect([slot.active, slot.queued]).toEqual([0, 0]);
          if (cfg.outerTimeoutMs !== undefined) expect(settledAt).toBeLessThanOrEqual(cfg.outerTimeoutMs);
          if (abortedWhilePending) {
            // an abort ends the call at once (order, not the clock, decides: both may happen at the same instant)
            expect(settledAt).toBe(abortedAt);
            expect(result).toBe(controller.signal.reason);
          }
          if (result === 'ok') expect(cfg.attempts[starts.length - 1]!.outcome).toBe('ok');
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      {
        numRuns: 200,
        examples: [
          // found by CI: the work throws at the instant the caller aborts, and the call has
          // already settled when the abort fires; the abort must not be expected to win
          [
            {
              maxAttempts: 1,
              backoff: exponential({ initialMs: 1, maxMs: 1, jitter: 'none' }),
              seed: 0,
              maxElapsedMs: undefined,
              abortAfterMs: 0,
              pushbackMs: undefined,
              outerTimeoutMs: undefined,
              attempts: Array.from({ length: 6 }, (_, i) => ({ outcome: i === 0 ? ('sync-throw' as const) : ('ok' as const), durationMs: 0 })),
            },
          ],
        ],
      },
    );
  });
});

/**
 * Properties of the adaptive limit, in virtual time: whatever the calls do,
 * the limit stays within its bounds, no call starts at or over it, every call
 * settles once and nothing is left behind; and under load it follows the
 * dependency's latency down and back up.
 */
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AdaptiveLimitPolicy,
  adaptiveLimit,
  aimd,
  gradient,
  type LimitAlgorithm,
  pipeline,
  type Policy,
  timeout,
} from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { countingClock, runAllTimers } from './helpers.ts';

const algorithm: fc.Arbitrary<LimitAlgorithm> = fc.oneof(
  fc
    .record({
      increase: fc.double({ min: 0.5, max: 4, noNaN: true }),
      backoffRatio: fc.double({ min: 0.5, max: 0.95, noNaN: true }),
      slowCallMs: fc.option(fc.integer({ min: 5, max: 60 }), { nil: undefined }),
    })
    .map((o) => aimd(o)),
  fc
    .record({
      smoothing: fc.double({ min: 0.1, max: 1, noNaN: true }),
      queueAllowance: fc.double({ min: 0, max: 8, noNaN: true }),
      shortWindowCalls: fc.integer({ min: 1, max: 10 }),
      longWindowCalls: fc.integer({ min: 20, max: 600 }),
    })
    .map((o) => gradient(o)),
);

const DROP = new Error('dropped: overloaded');

describe('adaptiveLimit (properties)', () => {
  type Outcome = 'ok' | 'fail' | 'drop' | 'sync-throw';
  const call = fc.record({
    gapMs: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 30 }) }),
    durationMs: fc.integer({ min: 0, max: 80 }),
    outcome: fc.constantFrom<Outcome>('ok', 'ok', 'ok', 'fail', 'drop', 'sync-throw'),
    honoursAbort: fc.boolean(),
    abortAfterMs: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
  });
  const config = fc
    .record({
      algorithm,
      minLimit: fc.integer({ min: 1, max: 3 }),
      span: fc.integer({ min: 0, max: 6 }),
      start: fc.double({ min: 0, max: 1, noNaN: true }),
      maxQueue: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(Infinity)),
      queueTimeoutMs: fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
      innerTimeoutMs: fc.option(fc.integer({ min: 1, max: 70 }), { nil: undefined }),
    })
    .map((c) => ({
      ...c,
      maxLimit: c.minLimit + c.span,
      initialLimit: c.minLimit + Math.round(c.start * c.span),
      queueTimeoutMs: c.maxQueue === 0 ? undefined : c.queueTimeoutMs,
    }));

  it('stays within its bounds, starts no call at or over the limit, settles every call once, leaves nothing behind', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(call, { maxLength: 60 }), async (cfg, calls) => {
        const clock = new FakeClock();
        const own = countingClock(clock);
        const limit = adaptiveLimit({
          algorithm: cfg.algorithm,
          minLimit: cfg.minLimit,
          maxLimit: cfg.maxLimit,
          initialLimit: cfg.initialLimit,
          maxQueue: cfg.maxQueue,
          queueTimeoutMs: cfg.queueTimeoutMs,
          isDrop: (error) => error === DROP,
          clock: own,
        });
        const policy: Policy = cfg.innerTimeoutMs === undefined ? limit : pipeline(limit, timeout({ ms: cfg.innerTimeoutMs, clock }));
        const violations: string[] = [];
        const check = (when: string): void => {
          const n = limit.limit;
          if (!(Number.isInteger(n) && n >= cfg.minLimit && n <= cfg.maxLimit)) violations.push(`${when}: limit ${n} outside [${cfg.minLimit}, ${cfg.maxLimit}]`);
          // the policy's one queue timer lives only while a call waits
          if (own.pending > (limit.queued > 0 ? 1 : 0)) violations.push(`${when}: ${own.pending} timer(s) with ${limit.queued} waiting`);
        };
        let seen = limit.limit;
        limit.onLimitChange(({ from, to }) => {
          if (from !== seen || to === from) violations.push(`change ${from} → ${to} after ${seen}`);
          seen = to;
          check('on change');
        });
        const settledCounts: number[] = [];
        const signals: AbortSignal[] = [];
        for (const op of calls) {
          await clock.advance(op.gapMs);
          check('between calls');
          const id = settledCounts.push(0) - 1;
          const controller = new AbortController();
          signals.push(controller.signal);
          if (op.abortAfterMs !== undefined) clock.schedule(() => controller.abort(new Error('caller abort')), op.abortAfterMs);
          const promise = policy.execute(({ signal }) => {
            // the slot is taken before the work starts: in flight includes this call
            if (limit.inFlight > limit.limit) violations.push(`a call started with ${limit.inFlight} in flight over a limit of ${limit.limit}`);
            if (op.outcome === 'sync-throw') throw new Error('sync');
            return settleAfter(clock, op.durationMs, op.outcome, op.honoursAbort ? signal : undefined);
          }, { signal: controller.signal });
          const settled = (): void => {
            settledCounts[id]!++;
            check('as a call settles');
          };
          promise.then(settled, settled);
        }
        await runAllTimers(clock);
        check('at the end');
        expect(violations).toEqual([]);
        expect(settledCounts.every((n) => n === 1)).toBe(true);
        expect([limit.inFlight, limit.queued, own.pending, clock.pendingTimers]).toEqual([0, 0, 0, 0]);
        expect(signals.filter((s) => getEventListeners(s, 'abort').length > 0)).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  /**
   * A dependency that serves `capacity` calls at its base latency and slows
   * down in proportion beyond that (calls share its capacity), driven by twice
   * `maxLimit` clients that each call again as soon as their call ends: the
   * limit is always in use, and calls over it wait in the queue.
   */
  const load = fc.record({
    algorithm: fc.oneof(
      fc.record({ kind: fc.constant('aimd-slow' as const), backoffRatio: fc.double({ min: 0.5, max: 0.9, noNaN: true }) }),
      fc.record({ kind: fc.constant('aimd-timeout' as const), backoffRatio: fc.double({ min: 0.5, max: 0.9, noNaN: true }) }),
      fc.record({
        kind: fc.constant('gradient' as const),
        smoothing: fc.double({ min: 0.2, max: 1, noNaN: true }),
        queueAllowance: fc.double({ min: 1, max: 6, noNaN: true }),
        shortWindowCalls: fc.integer({ min: 1, max: 10 }),
        longWindowCalls: fc.integer({ min: 500, max: 1_000 }),
      }),
    ),
    capacity: fc.integer({ min: 4, max: 10 }),
    baseMs: fc.integer({ min: 4, max: 12 }),
    slowdown: fc.integer({ min: 3, max: 6 }),
    headroom: fc.integer({ min: 2, max: 4 }),
    initial: fc.double({ min: 0, max: 1, noNaN: true }),
  });

  it('falls when the dependency\'s latency rises under load, and recovers when it falls back', async () => {
    await fc.assert(
      fc.asyncProperty(load, async (cfg) => {
        const clock = new FakeClock();
        const maxLimit = cfg.capacity * cfg.headroom;
        // congestion for AIMD: twice the base latency, as a slow call or as a timeout
        const thresholdMs = 2 * cfg.baseMs;
        const a = cfg.algorithm;
        const limit = adaptiveLimit({
          algorithm:
            a.kind === 'gradient'
              ? gradient({ smoothing: a.smoothing, queueAllowance: a.queueAllowance, shortWindowCalls: a.shortWindowCalls, longWindowCalls: a.longWindowCalls })
              : aimd({ backoffRatio: a.backoffRatio, slowCallMs: a.kind === 'aimd-slow' ? thresholdMs : undefined }),
          maxLimit,
          initialLimit: 1 + Math.round(cfg.initial * (maxLimit - 1)),
          maxQueue: Infinity,
          clock,
        });
        const policy: Policy = a.kind === 'aimd-timeout' ? pipeline(limit, timeout({ ms: thresholdMs, clock })) : limit;
        let baseMs = cfg.baseMs;
        let running = 0;
        const work = ({ signal }: { signal: AbortSignal }): Promise<void> => {
          running++;
          const ms = baseMs * Math.max(1, running / cfg.capacity);
          return settleAfter(clock, ms, 'ok', signal).finally(() => running--);
        };
        let stopped = false;
        const client = async (): Promise<void> => {
          while (!stopped) await policy.execute(work).catch(() => undefined);
        };
        const clients = Array.from({ length: 2 * maxLimit }, client);
        /** Runs for `roundTrips` of the current latency at capacity; returns the limit's lowest, highest and last value. */
        const phase = async (roundTrips: number) => {
          let low = limit.limit;
          let high = limit.limit;
          const stop = limit.onLimitChange(({ to }) => {
            low = Math.min(low, to);
            high = Math.max(high, to);
          });
          await clock.advance(roundTrips * baseMs);
          stop();
          return { low, high, last: limit.limit };
        };
        const warm = await phase(80);
        baseMs = cfg.baseMs * cfg.slowdown;
        const slow = await phase(40);
        baseMs = cfg.baseMs;
        await phase(60);
        const recovered = await phase(40);
        stopped = true;
        await clock.runAll();
        await Promise.all(clients);
        const report = JSON.stringify({ warm, slow, recovered });
        expect(warm.last, report).toBeGreaterThan(1);
        // the slowdown brings the limit down to at most about half of where it was
        expect(slow.low, report).toBeLessThanOrEqual(Math.max(1, Math.floor(warm.last * 0.6)));
        // and once latency is back, it climbs back to most of where it was, or of the
        // dependency's capacity if it was above (a gradient limit that started over
        // the capacity took that latency for the norm)
        expect(recovered.high, report).toBeGreaterThanOrEqual(Math.ceil(Math.min(warm.last, cfg.capacity) * 0.7));
        expect([limit.inFlight, limit.queued, clock.pendingTimers]).toEqual([0, 0, 0]);
      }),
      { numRuns: 25 },
    );
  });
});

/**
 * Settles after `ms` of fake time as `outcome` says ('drop' rejects with the
 * error `isDrop` accepts), or at once with the signal's reason if it aborts.
 */
function settleAfter(clock: FakeClock, ms: number, outcome: 'ok' | 'fail' | 'drop', signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) return reject(signal.reason);
    const onAbort = (): void => {
      clock.cancel(timer);
      reject(signal!.reason);
    };
    const timer = clock.schedule(() => {
      signal?.removeEventListener('abort', onAbort);
      if (outcome === 'ok') resolve();
      else reject(outcome === 'drop' ? DROP : new Error('failed'));
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

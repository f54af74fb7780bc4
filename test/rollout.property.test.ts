/**
 * Properties of `rollout`, in virtual time (FakeClock) with seeded random sources:
 *
 * - the ramp: for any flag schedule (valid and invalid values, any clock advances),
 *   the share in force stays within 0..1 and never above what the flag last validly
 *   asked for, each rise is at most `rampStep`, rises are at least `rampEveryMs`
 *   apart, and a call goes to the experiment only while the share is above 0;
 * - the rollback bound: an experiment failing one call in k (1/k at least the margin)
 *   against a stable path that never fails is rolled back after at most
 *   `minimumCalls + k - 1 + concurrency` exposures, and none after; every call is
 *   answered (stable or experimental), none with an error;
 * - an experiment that never fails and draws no signal is never rolled back,
 *   whatever the stable path does;
 * - the kill switch: however many experimental calls are in flight, the flag at 0
 *   answers every one of them from the stable path at once and aborts their work;
 * - no timer and no experimental call is left behind.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rollout } from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('rollout properties', () => {
  it('the ramp: the share rises by at most rampStep per rampEveryMs, never above the valid request, and routes only above 0', async () => {
    const stepArb = fc.record({
      advanceMs: fc.integer({ min: 0, max: 3_000 }),
      flag: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1, 0.2), fc.constantFrom(-1, 20, Number.NaN, Infinity)),
      calls: fc.integer({ min: 0, max: 5 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { maxLength: 40 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.integer(),
        async (steps, rampStep, rampEveryMs, seed) => {
          const clock = new FakeClock();
          const flag = { value: 0 };
          let exposures = 0;
          const r = rollout({ experimental: () => 'new', share: () => flag.value, rampStep, rampEveryMs, clock, random: seededRandom(seed), minimumCalls: 1_000 });
          r.onExposure(() => exposures++);
          let lastRiseAt = -Infinity;
          let valid = 0;
          r.onShareChange(({ from, to, requested }) => {
            expect(to).toBeGreaterThanOrEqual(0);
            expect(to).toBeLessThanOrEqual(requested);
            if (to > from) {
              expect(to - from).toBeLessThanOrEqual(rampStep + 1e-12);
              expect(clock.now() - lastRiseAt).toBeGreaterThanOrEqual(rampEveryMs);
              lastRiseAt = clock.now();
            }
          });
          for (const step of steps) {
            await clock.advance(step.advanceMs);
            flag.value = step.flag;
            if (step.calls > 0 && step.flag >= 0 && step.flag <= 1) valid = step.flag; // the flag is read per call
            for (let i = 0; i < step.calls; i++) {
              const before = exposures;
              const answer = await r.execute(() => 'stable');
              expect(r.requestedShare).toBe(valid);
              expect(r.share).toBeLessThanOrEqual(valid);
              if (r.share === 0) expect(exposures).toBe(before);
              expect(answer === 'new').toBe(exposures === before + 1);
            }
          }
          expect(clock.pendingTimers).toBe(0);
        },
      ),
    );
  });

  it('rolls a failing experiment back within minimumCalls + k - 1 + concurrency exposures, and exposes no one after', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          minimumCalls: fc.integer({ min: 1, max: 60 }),
          k: fc.integer({ min: 1, max: 10 }),
          share: fc.double({ min: 0.05, max: 1, noNaN: true }),
          concurrency: fc.integer({ min: 1, max: 8 }),
          latencyMs: fc.integer({ min: 0, max: 50 }),
          batches: fc.integer({ min: 30, max: 80 }),
          seed: fc.integer(),
        }),
        async ({ minimumCalls, k, share, concurrency, latencyMs, batches, seed }) => {
          const clock = new FakeClock();
          let started = 0;
          let exposures = 0;
          let exposuresAtRollback = NaN;
          const r = rollout({
            experimental: ({ signal }) => {
              const failing = ++started % k === 0;
              return delayed(clock, latencyMs, 'new', signal).then((v) => (failing ? Promise.reject(new Error('new code broke')) : v));
            },
            share,
            rampStep: 1,
            minimumCalls,
            errorRateMargin: 1 / k,
            window: { ms: 3_600_000, buckets: 1 },
            breaker: { minimumCalls: 100_000 },
            clock,
            random: seededRandom(seed),
          });
          r.onExposure(() => exposures++);
          r.onRollback(() => (exposuresAtRollback = exposures));
          for (let b = 0; b < batches; b++) {
            const calls = Array.from({ length: concurrency }, () => track(r.execute(() => 'stable')));
            await clock.advance(latencyMs);
            await settle();
            for (const call of calls) {
              expect(call.status).toBe('fulfilled');
              expect(['stable', 'new']).toContain(call.value);
            }
          }
          const expectedExposures = minimumCalls + k - 1;
          if (r.rolledBack !== undefined) {
            expect(exposuresAtRollback).toBeLessThanOrEqual(expectedExposures + concurrency);
            expect(exposures).toBe(exposuresAtRollback);
            expect(r.rolledBack.reason).toBe('error-rate');
          } else {
            // Not enough exposures happened in the run to judge: fewer than the bound.
            expect(exposures).toBeLessThan(expectedExposures + concurrency);
          }
          expect(r.inFlight).toBe(0);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
    );
  });

  it('never rolls back an experiment that never fails and draws no signal, whatever the stable path does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer(),
        async (stableFailureRate, share, minimumCalls, seed) => {
          const clock = new FakeClock();
          const random = seededRandom(seed + 1);
          const r = rollout({ experimental: () => 'new', share, rampStep: 1, minimumCalls, clock, random: seededRandom(seed) });
          for (let i = 0; i < 200; i++) {
            const answer = await r.execute(() => (random() < stableFailureRate ? Promise.reject(new Error('stable broke')) : 'stable')).catch(() => 'failed');
            if (answer === 'stable' && random() < 0.5) r.report('stable');
          }
          expect(r.rolledBack).toBeUndefined();
        },
      ),
    );
  });

  it('the flag at 0 answers every experimental call in flight from the stable path at once, and aborts its work', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 5_000 }), fc.boolean(), async (inFlight, killAtMs, hangs) => {
        const clock = new FakeClock();
        const flag = { share: 1 };
        let aborted = 0;
        let exposures = 0;
        const r = rollout({
          experimental: ({ signal }) => {
            signal.addEventListener('abort', () => aborted++);
            return hangs ? never<string>() : delayed(clock, 10_000, 'new', signal);
          },
          share: () => flag.share,
          rampStep: 1,
          clock,
        });
        r.onExposure(() => exposures++);
        const calls = Array.from({ length: inFlight }, () => track(r.execute(() => 'stable')));
        await clock.advance(killAtMs);
        flag.share = 0;
        expect(await r.execute(() => 'stable')).toBe('stable');
        await settle();
        expect(calls.map((c) => c.value)).toEqual(calls.map(() => 'stable'));
        expect(aborted).toBe(inFlight);
        expect(exposures).toBe(inFlight);
        expect(r.inFlight).toBe(0);
        expect(clock.pendingTimers).toBe(0);
      }),
    );
  });
});

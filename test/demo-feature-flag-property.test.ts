/**
 * Property tests of the feature-flag demo: the same services as the demo, on the
 * harness's in-memory transport under a FakeClock, with the demo's timeline (the
 * flag misconfigured at 2 s, a person turning it off 10 s later) and configuration.
 *
 * For any misconfigured share and any experiment failure rate `f` above the margin
 * `m` by at least 0.1, with the guarded rollout:
 * - exposure ends within EXPOSURE_BOUND(f) = max(minimumCalls, ceil(4 / (f - m)))
 *   + the experimental calls one experimental latency at the full visit rate can hold
 *   (those in flight when it is rolled back, cut and answered by the stable version);
 * - tickets from users shown the experiment stay within ticketRate x EXPOSURE_BOUND + 4;
 * - no visit goes unanswered;
 * - from a share of 10 % up, it is rolled back before the person would have acted.
 * Without the guard, the same schedule reproduces the incident: from 10 % up, more
 * users than the bound are exposed, and exposure lasts until the person acts.
 *
 * Which experimental calls fail, and which of its users file a ticket, is drawn from
 * a Weyl sequence (i x golden ratio + offset, mod 1): among its first n draws, the
 * count below any p is within 4 of n x p (checked below), so "a failure rate f" holds
 * for every prefix of calls, and the bounds are exact rather than probable.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RandomSource } from '../src/index.ts';
import { DEMO_TIMELINE, runPhase, summarizePhase } from '../examples/feature-flag/scenario.ts';
import { DEFAULT_CONFIG } from '../examples/feature-flag/services.ts';

const RATE = 100;
const GOLDEN = 0.6180339887498949;
/** How far the count of a Weyl sequence's first n draws below p strays from n x p, at most. */
const DISCREPANCY = 4;

function weyl(offset: number): RandomSource {
  let i = 0;
  return () => (++i * GOLDEN + offset) % 1;
}

/** The most exposures the guarded rollout lets through for an experiment failing a share `f` of its calls. */
export function exposureBound(f: number): number {
  const c = DEFAULT_CONFIG;
  const judged = Math.max(c.minimumCalls, Math.ceil(DISCREPANCY / (f - c.errorRateMargin)));
  return judged + Math.ceil((RATE * c.experimentalWorkMs) / 1000) + 1;
}

describe('feature-flag demo properties (in memory, virtual time)', () => {
  it('a Weyl sequence stays within DISCREPANCY of n x p for every prefix and every p', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (offset, p) => {
        const random = weyl(offset);
        let below = 0;
        for (let n = 1; n <= 1_000; n++) {
          if (random() < p) below++;
          expect(Math.abs(below - n * p)).toBeLessThanOrEqual(DISCREPANCY);
        }
      }),
    );
  });

  it('with the guard, exposure and tickets stay within their bounds; without it, the same schedule is the incident', async () => {
    const c = DEFAULT_CONFIG;
    const t = DEMO_TIMELINE;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          share: fc.double({ min: 0.01, max: 1, noNaN: true }),
          failureRate: fc.double({ min: c.errorRateMargin + 0.1, max: 1, noNaN: true }),
          faultOffset: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          ticketOffset: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          seed: fc.integer(),
        }),
        async ({ share, failureRate, faultOffset, ticketOffset, seed }) => {
          const config = { ...c, experimentalErrorRate: failureRate };
          const phase = (variant: 'before' | 'after') =>
            runPhase({
              transport: 'memory',
              variant,
              misconfiguredShare: share,
              ratePerSecond: RATE,
              config,
              seed,
              faultRandom: weyl(faultOffset),
              ticketRandom: weyl(ticketOffset),
            });
          const after = summarizePhase(await phase('after'));
          const bound = exposureBound(failureRate);
          expect(after.exposed).toBeLessThanOrEqual(bound);
          expect(after.tickets).toBeLessThanOrEqual(c.ticketRate * bound + DISCREPANCY);
          expect(after.errors).toBe(0);
          const before = summarizePhase(await phase('before'));
          if (share >= 0.1) {
            expect(after.rollback).toBeDefined();
            expect(after.timeToZeroExposureMs).toBeLessThan(t.fixAtMs - t.misconfigAtMs);
            expect(before.exposed).toBeGreaterThan(bound);
            expect(before.timeToZeroExposureMs).toBeGreaterThanOrEqual(t.fixAtMs - t.misconfigAtMs - 1_000);
          }
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);
});

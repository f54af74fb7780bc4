/**
 * Differential test: Breakwater's circuit breaker against real opossum 10, in
 * a configuration both can express. Random sequences of successful and failing
 * calls and clock advances must open and close both breakers at the same calls.
 *
 * opossum runs on real timers (its bucket rotation interval and its reset
 * timeout), so it is driven with vitest's fake timers; Breakwater runs on a
 * FakeClock, advanced by the same amounts.
 *
 * Mapping (see docs/design.md, "The circuit breaker and opossum"):
 * - window 10 s in 10 buckets          ↔ rollingCountTimeout 10,000, rollingCountBuckets 10
 * - minimumCalls                       ↔ volumeThreshold
 * - failureRateThreshold t (rate ≥ t)  ↔ errorThresholdPercentage 100·t − 1e-9 (rate > p)
 * - halfOpenAfterMs                    ↔ resetTimeout
 * - halfOpenProbes 1, successesToClose 1 ↔ opossum's single half-open probe
 *
 * Where the two differ by design, the generator stays clear of the difference
 * or the test compensates for it exactly:
 * - opossum counts every fired call in the rate's denominator, rejected calls
 *   included: while open, the test checks that both reject but fires only
 *   Breakwater (whose rejections are not statistics);
 * - opossum keeps the statistics of the previous closed period when it reopens
 *   and closes again; Breakwater starts every closed period with an empty
 *   window. With halfOpenAfterMs ≥ the window, everything from before the
 *   opening has left opossum's window by the time the probe runs, except the
 *   probe itself: opossum's window holds the successful probe, so the test
 *   records one success into Breakwater's fresh window at the same instant;
 * - opossum's `errorFilter` counts filtered errors as successes, Breakwater's
 *   `handle` ignores them: no filtered errors are generated;
 * - calls are sequential (opossum counts a call when it starts, Breakwater when
 *   it settles; with no time passing during a call, both land in one bucket).
 */
import fc from 'fast-check';
import CircuitBreaker from 'opossum';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BrokenCircuitError, circuitBreaker, type CircuitState } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

type Step = { kind: 'call'; ok: boolean } | { kind: 'advance'; ms: number };

interface Scenario {
  readonly failureRateThreshold: number;
  readonly minimumCalls: number;
  readonly halfOpenAfterMs: number;
  readonly steps: readonly Step[];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    failureRateThreshold: fc.constantFrom(0.2, 0.25, 0.5, 0.6, 0.75, 1),
    minimumCalls: fc.constantFrom(1, 2, 3, 5, 10, 20),
    halfOpenAfterMs: fc.constantFrom(10_000, 12_500, 30_000),
    outageShare: fc.constantFrom(0.5, 0.7, 0.9, 1),
    healthyShare: fc.constantFrom(0, 0.1, 0.3),
    phaseLength: fc.constantFrom(10, 20, 40),
    advances: fc.array(fc.constantFrom(0, 1, 100, 500, 999, 1_000, 1_001, 3_000, 9_999, 10_000, 30_000), { minLength: 1, maxLength: 6 }),
    raw: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.nat()), { minLength: 1, maxLength: 200, size: 'max' }),
  })
  .map(({ failureRateThreshold, minimumCalls, halfOpenAfterMs, outageShare, healthyShare, phaseLength, advances, raw }) => ({
    failureRateThreshold,
    minimumCalls,
    halfOpenAfterMs,
    // About one step in four moves the clock (a third of those by exactly the
    // open period, so that runs reach half-open); the others are calls. Outage
    // and healthy phases alternate, so runs both open and close.
    steps: raw.map(([u, n], i): Step => {
      if (n % 4 !== 0) {
        const failureShare = Math.floor(i / phaseLength) % 2 === 0 ? outageShare : healthyShare;
        return { kind: 'call', ok: u >= failureShare };
      }
      return { kind: 'advance', ms: n % 3 === 0 ? halfOpenAfterMs : advances[n % advances.length]! };
    }),
  }));

function opossumState(breaker: CircuitBreaker): CircuitState {
  if (breaker.opened) return 'open';
  if (breaker.halfOpen) return 'half-open';
  return 'closed';
}

afterEach(() => {
  vi.useRealTimers();
});

async function runScenario(scenario: Scenario): Promise<void> {
  // Only opossum's timers and Date are faked; setImmediate stays real for FakeClock.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  vi.setSystemTime(0);
  const clock = new FakeClock();
  const ours = circuitBreaker({
    clock,
    failureRateThreshold: scenario.failureRateThreshold,
    minimumCalls: scenario.minimumCalls,
    window: { kind: 'time', ms: 10_000, buckets: 10 },
    halfOpenAfterMs: scenario.halfOpenAfterMs,
    halfOpenProbes: 1,
    successesToClose: 1,
  });
  const theirs = new CircuitBreaker((ok: boolean) => (ok ? Promise.resolve('ok') : Promise.reject(new Error('fail'))), {
    timeout: false,
    resetTimeout: scenario.halfOpenAfterMs,
    errorThresholdPercentage: scenario.failureRateThreshold * 100 - 1e-9,
    volumeThreshold: scenario.minimumCalls,
    rollingCountTimeout: 10_000,
    rollingCountBuckets: 10,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
  });
  const ourChanges: CircuitState[] = [];
  const theirChanges: CircuitState[] = [];
  ours.onStateChange((e) => ourChanges.push(e.to));
  theirs.on('open', () => theirChanges.push('open'));
  theirs.on('halfOpen', () => theirChanges.push('half-open'));
  theirs.on('close', () => theirChanges.push('closed'));

  try {
    for (const [i, step] of scenario.steps.entries()) {
      const where = `step ${i} (${JSON.stringify(step)}) at t=${clock.now()}`;
      if (step.kind === 'advance') {
        vi.advanceTimersByTime(step.ms);
        await clock.advance(step.ms);
      } else {
        const before = ours.state;
        expect(before, where).toBe(opossumState(theirs));
        if (before === 'open') {
          // Both refuse; only Breakwater is called (opossum would count the rejection).
          const error = await ours.execute(() => 'never').catch((e: unknown) => e);
          expect(error, where).toBeInstanceOf(BrokenCircuitError);
        } else {
          const ourResult = await ours.execute(() => (step.ok ? Promise.resolve('ok') : Promise.reject(new Error('fail')))).then(
            (v) => v,
            (e: unknown) => (e as Error).message,
          );
          const theirResult = await theirs.fire(step.ok).then(
            (v) => v,
            (e: unknown) => (e as Error).message,
          );
          expect(ourResult, where).toBe(step.ok ? 'ok' : 'fail');
          expect(theirResult, where).toBe(ourResult);
          if (before === 'half-open' && ours.state === 'closed') {
            // opossum's window still holds the successful probe; Breakwater's starts empty.
            await ours.execute(() => 'probe, as opossum remembers it');
          }
        }
      }
      expect(ours.state, where).toBe(opossumState(theirs));
      expect(ourChanges, where).toEqual(theirChanges);
    }
  } finally {
    theirs.shutdown();
    vi.useRealTimers();
  }
}

describe('circuitBreaker vs opossum 10', () => {
  it('opens and closes at the same calls over random outcome sequences', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, runScenario), { numRuns: 200 });
  }, 120_000);

  it('agrees on a hand-written scenario: trip, probe fails, probe succeeds, trip again', async () => {
    const calls = (ok: boolean, n: number): Step[] => Array.from({ length: n }, () => ({ kind: 'call', ok }));
    await runScenario({
      failureRateThreshold: 0.5,
      minimumCalls: 4,
      halfOpenAfterMs: 10_000,
      steps: [
        ...calls(true, 2),
        ...calls(false, 2), // 2 of 4: opens (opossum: 50 > 49.999…)
        ...calls(true, 1), // rejected by both
        { kind: 'advance', ms: 10_000 },
        ...calls(false, 1), // probe fails
        { kind: 'advance', ms: 10_000 },
        ...calls(true, 1), // probe succeeds: closed
        ...calls(false, 1), // 1 of 2 (the probe counts): below minimumCalls
        ...calls(false, 2), // 3 of 4: opens
      ],
    });
  });
});

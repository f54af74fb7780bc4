/**
 * A half-open probe that never settles must not pin the breaker half-open: a
 * probe still running after `probeDeadlineMs` counts as failed, the breaker
 * reopens, and a new probe is admitted after the open period.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { circuitBreaker, isBrokenCircuitError } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

type Behaviour = { kind: 'never' } | { kind: 'ok' | 'fail'; afterMs: number };
const behaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.constant<Behaviour>({ kind: 'never' }),
  fc.record({ kind: fc.constantFrom<'ok' | 'fail'>('ok', 'fail'), afterMs: fc.integer({ min: 0, max: 150 }) }),
);

describe('circuit breaker: the half-open probe deadline', () => {
  it('a probe that never settles reopens the breaker at its deadline, and a new probe goes after the open period', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 100, probeDeadlineMs: 1_000 });
    const reasons: string[] = [];
    breaker.onStateChange((e) => reasons.push(`${e.to}:${e.reason}`));
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
    await clock.advance(100);
    let probes = 0;
    void breaker.execute(() => (probes++, new Promise(() => {})));
    expect(probes).toBe(1);
    await clock.advance(999);
    expect(breaker.state).toBe('half-open');
    const refused = await breaker.execute(() => 'no').catch((e: unknown) => e);
    expect(isBrokenCircuitError(refused)).toBe(true);
    await clock.advance(1);
    expect(breaker.state).toBe('open'); // the stuck probe counted as failed
    await clock.advance(100);
    expect(await breaker.execute(() => (probes++, 'recovered'))).toBe('recovered');
    expect(probes).toBe(2);
    expect(breaker.state).toBe('closed');
    expect(reasons).toEqual(['open:failure-rate', 'half-open:cooldown-elapsed', 'open:probe-deadline', 'half-open:cooldown-elapsed', 'closed:probes-succeeded']);
  });

  it('the stuck probe settling later changes nothing', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 10, probeDeadlineMs: 50 });
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
    await clock.advance(10);
    let release!: () => void;
    const stuck = breaker.execute(() => new Promise<void>((resolve) => (release = resolve)));
    await clock.advance(50);
    expect(breaker.state).toBe('open');
    release();
    await stuck;
    expect(breaker.state).toBe('open');
  });

  it('the option is validated', () => {
    expect(() => circuitBreaker({ probeDeadlineMs: 0 })).toThrow(/circuitBreaker: option "probeDeadlineMs" must be/);
    expect(() => circuitBreaker({ probeDeadlineMs: Number.NaN })).toThrow(/probeDeadlineMs/);
  });

  it('property: whatever the probes do, no call waits longer than the deadline plus the open period for a probe slot, and half-open never outlives a running probe’s deadline', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(behaviourArb, { minLength: 1, maxLength: 12 }),
        async (halfOpenAfterMs, probeDeadlineMs, halfOpenProbes, behaviours) => {
          const clock = new FakeClock();
          const breaker = circuitBreaker({ clock, minimumCalls: 1, failureRateThreshold: 1, halfOpenAfterMs, probeDeadlineMs, halfOpenProbes });
          await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
          let halfOpenSince = Number.POSITIVE_INFINITY;
          breaker.onStateChange((e) => {
            if (e.to === 'half-open') halfOpenSince = clock.now();
          });
          /** Start times of probes still running. */
          const running = new Set<{ at: number }>();
          let refusedSince: number | undefined;
          let longestRefusal = 0;
          const problems: string[] = [];
          let n = 0;
          for (let t = 0; t < 600; t++) {
            const state = breaker.state;
            if (state === 'half-open') {
              for (const probe of running) {
                // a probe of this half-open period (older ones were already counted as failed)
                if (probe.at >= halfOpenSince && clock.now() - probe.at >= probeDeadlineMs) problems.push(`half-open at ${clock.now()} with a probe running since ${probe.at}`);
              }
            }
            if (state === 'closed') break; // recovered: nothing more to check
            let ran = false;
            const behaviour = behaviours[n++ % behaviours.length]!;
            const call = breaker.execute(() => {
              ran = true;
              const probe = { at: clock.now() };
              running.add(probe);
              if (behaviour.kind === 'never') return new Promise<never>(() => {});
              return new Promise<void>((resolve, reject) =>
                clock.schedule(() => {
                  running.delete(probe);
                  if (behaviour.kind === 'ok') resolve();
                  else reject(new Error('still down'));
                }, behaviour.afterMs),
              );
            });
            call.catch(() => undefined);
            if (ran) refusedSince = undefined;
            else {
              refusedSince ??= clock.now();
              longestRefusal = Math.max(longestRefusal, clock.now() - refusedSince);
            }
            await clock.advance(1);
          }
          expect(problems).toEqual([]);
          // A probe slot frees within the deadline; the breaker then stays open for the open period.
          expect(longestRefusal).toBeLessThanOrEqual(probeDeadlineMs + halfOpenAfterMs);
        },
      ),
      { numRuns: 150 },
    );
  });
});

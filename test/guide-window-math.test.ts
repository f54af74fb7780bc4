/**
 * The window arithmetic that docs/guides/choosing-breaker-settings.md states,
 * measured on the real breaker in virtual time.
 */
import { describe, expect, it } from 'vitest';
import { circuitBreaker, type CircuitBreakerOptions } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

/** Healthy calls at `perSecond` for `healthyMs`, then only failures at the same rate: how many failures until the breaker opens. */
async function failuresToOpen(options: CircuitBreakerOptions, perSecond: number, healthyMs: number): Promise<number> {
  const clock = new FakeClock();
  const breaker = circuitBreaker({ ...options, clock });
  const gapMs = 1_000 / perSecond;
  for (let t = 0; t < healthyMs; t += gapMs) {
    await breaker.execute(() => 'ok');
    await clock.advance(gapMs);
  }
  let failures = 0;
  while (breaker.state === 'closed') {
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => undefined);
    failures++;
    await clock.advance(gapMs);
    if (failures > 100_000) throw new Error('never opened');
  }
  return failures;
}

describe('choosing-breaker-settings: how many failures open the breaker after healthy traffic', () => {
  it('default time window (10 s, 10 buckets), 150 calls/s: about 750 failures, 5 s of outage', async () => {
    const n = await failuresToOpen({}, 150, 10_000);
    expect(n).toBeGreaterThanOrEqual(740);
    expect(n).toBeLessThanOrEqual(760);
  });

  it('a 2 s time window at the same rate: about 150 failures, one second', async () => {
    const n = await failuresToOpen({ window: { kind: 'time', ms: 2_000, buckets: 10 } }, 150, 10_000);
    expect(n).toBeGreaterThanOrEqual(145);
    expect(n).toBeLessThanOrEqual(155);
  });

  it('a count window of 100 calls: 50 failures, whatever the traffic was', async () => {
    expect(await failuresToOpen({ window: { kind: 'count', calls: 100 } }, 150, 10_000)).toBe(50);
    expect(await failuresToOpen({ window: { kind: 'count', calls: 100 } }, 5, 10_000)).toBe(50);
  });
});

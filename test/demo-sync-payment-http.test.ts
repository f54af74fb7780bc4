/**
 * The sync-payment-call services on real HTTP (127.0.0.1), during an outage of
 * the external API: the 503's Retry-After travels over the wire, the job keeps
 * its load on the failing API within 1.5x the offered rate, and the backlog still
 * drains with nothing lost or paid twice. Wall clock: a short run (3 s of load,
 * a 200 ms API) keeps it to a few seconds.
 */
import { describe, expect, it } from 'vitest';
import { deploy } from '../examples/harness/index.ts';
import { OUTAGE_LOAD_BOUND } from '../examples/sync-payment-call/demo.ts';
import { steadyBehaviour } from '../examples/sync-payment-call/external-api.ts';
import { peakPerSecond, runPhase } from '../examples/sync-payment-call/scenario.ts';
import { paymentTopology } from '../examples/sync-payment-call/services.ts';

const OUTAGE = { fromMs: 1_000, toMs: 2_500 };

describe('sync-payment-call on real HTTP', () => {
  it("the provider's 503 carries Retry-After over the wire", async () => {
    const { services } = paymentTopology({ mode: 'after' });
    const d = await deploy(services, {
      transport: 'http',
      metrics: false,
      faults: [{ service: 'payment-provider', fromMs: 0, toMs: 60_000, fault: { kind: 'error', status: 503, retryAfterMs: 1_000 } }],
    });
    try {
      const response = await d.call('payment-provider', { method: 'POST', path: '/v1/charges', body: {} });
      expect(response.status).toBe(503);
      expect(response.headers?.['retry-after']).toBe('1');
    } finally {
      await d.close();
    }
  });

  it(`an outage gets at most ${OUTAGE_LOAD_BOUND}x the offered rate, and every accepted order is paid once`, async () => {
    const rate = 8;
    const result = await runPhase({
      mode: 'after',
      transport: 'http',
      metrics: false,
      durationMs: 3_000,
      ratePerSecond: rate,
      faults: [{ service: 'payment-provider', ...OUTAGE, fault: { kind: 'error', status: 503, retryAfterMs: 1_000 } }],
      providerBehaviour: (random) => steadyBehaviour(random, 200, 20),
      drainTimeoutMs: 20_000,
    });
    const peak = peakPerSecond(result, 'payment-provider', OUTAGE.fromMs, OUTAGE.toMs);
    expect(peak).toBeGreaterThan(0); // the job did meet the outage
    expect(peak).toBeLessThanOrEqual(OUTAGE_LOAD_BOUND * rate);
    expect(Number.isNaN(result.drainMs)).toBe(false);
    expect(result.accepted).toBe(result.checkout.requests);
    expect(result.paidOnce).toBe(result.accepted);
    expect(result.duplicatePayments).toBe(0);
    expect(result.pendingAtEnd).toBe(0);
  }, 30_000);
});

/**
 * Property tests of the sync-payment-call demo: the same services as the demo,
 * on the harness's in-memory transport under a FakeClock.
 *
 * For any external-API latency and failure schedule (its own plan per request:
 * any latency, failing, charging and losing the answer, charging and hanging;
 * plus harness faults in front of it: error, hang and latency windows), with
 * the fix (payment in a background job):
 * - checkout's p95 stays under its bound and every checkout is answered;
 * - every accepted checkout is paid exactly once;
 * - none is lost: nothing pending at the end, no charge without an order.
 * With the recommended setup (breaker on, the API's Retry-After honoured), an
 * outage of the external API (503 with or without Retry-After, any start, length
 * and rate) gets at most 1.5x the offered rate in any second, and the backlog
 * still drains with nothing lost or paid twice.
 * Without the fix, the same kind of schedule drags checkout's p95 up to the
 * external API's latency: the demo reproduces the incident, it does not assume it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import type { FaultWindow } from '../examples/harness/index.ts';
import type { ProviderOutcome, ProviderPlan } from '../examples/sync-payment-call/external-api.ts';
import type { PaymentJob } from '../examples/sync-payment-call/payment-job.ts';
import { peakPerSecond, runPhase } from '../examples/sync-payment-call/scenario.ts';
import { OUTAGE_LOAD_BOUND } from '../examples/sync-payment-call/demo.ts';

/** The bound on checkout's p95 with the fix, in ms (the seed's "after" was 150 ms). */
const CHECKOUT_P95_BOUND_MS = 200;

const outcomeArb = fc.constantFrom<ProviderOutcome>('ok', 'ok', 'fail', 'lost-response', 'hang');
const planArb: fc.Arbitrary<ProviderPlan> = fc.record({ latencyMs: fc.integer({ min: 0, max: 20_000 }), outcome: outcomeArb });

const faultArb: fc.Arbitrary<FaultWindow> = fc
  .record({
    fromMs: fc.integer({ min: 0, max: 6_000 }),
    lengthMs: fc.integer({ min: 100, max: 5_000 }),
    fault: fc.oneof(
      fc.record({ kind: fc.constant('error' as const), probability: fc.double({ min: 0.1, max: 1, noNaN: true }) }),
      fc.record({ kind: fc.constant('hang' as const) }),
      fc.record({ kind: fc.constant('latency' as const), addMs: fc.integer({ min: 0, max: 10_000 }) }),
    ),
  })
  .map(({ fromMs, lengthMs, fault }) => ({ service: 'payment-provider', fromMs, toMs: fromMs + lengthMs, fault }));

const scheduleArb = fc.record({
  /** The external API's plan for its first requests... */
  plans: fc.array(planArb, { maxLength: 40 }),
  /** ...and its latency afterwards (it always answers in the end, but maybe slower than our timeout). */
  baseLatencyMs: fc.integer({ min: 1, max: 12_000 }),
  faults: fc.array(faultArb, { maxLength: 3 }),
  ratePerSecond: fc.integer({ min: 2, max: 12 }),
  durationMs: fc.integer({ min: 1_000, max: 5_000 }),
  /** With or without a circuit breaker in the job's pipeline. */
  breaker: fc.boolean(),
  seed: fc.integer(),
});

type Schedule = typeof scheduleArb extends fc.Arbitrary<infer S> ? S : never;

function phase(mode: 'before' | 'after', s: Schedule, keyFor?: (job: PaymentJob, attempt: number) => string) {
  return runPhase({
    ...(keyFor ? { keyFor } : {}),
    job: { breaker: s.breaker },
    mode,
    transport: 'memory',
    clock: new FakeClock(),
    random: seededRandom(s.seed),
    durationMs: s.durationMs,
    ratePerSecond: s.ratePerSecond,
    faults: s.faults,
    providerBehaviour: () => (index) => s.plans[index] ?? { latencyMs: s.baseLatencyMs, outcome: 'ok' },
    drainTimeoutMs: 30 * 60_000,
  });
}

describe('sync-payment-call, property: with the background job', () => {
  it('checkout p95 stays under its bound, and every accepted checkout is paid exactly once, none lost', async () => {
    await fc.assert(
      fc.asyncProperty(scheduleArb, async (schedule) => {
        const result = await phase('after', schedule);
        // Checkout no longer waits for the external API, whatever it does.
        expect(result.checkout.p95Ms).toBeLessThan(CHECKOUT_P95_BOUND_MS);
        expect(result.checkout.ok).toBe(result.checkout.requests);
        // Every accepted checkout is paid exactly once...
        expect(result.accepted).toBe(result.checkout.ok);
        expect(result.paidOnce).toBe(result.accepted);
        expect(result.duplicatePayments).toBe(0);
        // ...and none is lost or charged without an order.
        expect(result.unpaidAccepted).toBe(0);
        expect(result.pendingAtEnd).toBe(0);
        expect(result.chargedButFailed).toBe(0);
        expect(result.provider.charges).toBe(result.accepted);
        expect(Number.isNaN(result.drainMs)).toBe(false);
      }),
      { numRuns: 25, seed: 20_251_127 },
    );
  });
});

const outageArb = fc.record({
  ratePerSecond: fc.integer({ min: 4, max: 12 }),
  durationMs: fc.integer({ min: 2_000, max: 10_000 }),
  /** When the outage starts, as a share of the load's duration, and how long it lasts (it may outlast the load). */
  startShare: fc.double({ min: 0, max: 0.9, noNaN: true }),
  lengthMs: fc.integer({ min: 500, max: 8_000 }),
  /** The API's Retry-After on its 503s, if it sends one. */
  retryAfterMs: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }),
  /** The API's latency when it works, and the share of charges whose answer it loses. */
  latencyMs: fc.integer({ min: 1, max: 4_000 }),
  lostShare: fc.double({ min: 0, max: 0.05, noNaN: true }),
  seed: fc.integer(),
});

describe('sync-payment-call, property: the job does not multiply the load on a failing API', () => {
  it(`peak requests/s during an outage <= ${OUTAGE_LOAD_BOUND}x the offered rate, and the backlog still drains, none lost`, async () => {
    await fc.assert(
      fc.asyncProperty(outageArb, async (o) => {
        const fromMs = Math.round(o.startShare * o.durationMs);
        const toMs = fromMs + o.lengthMs;
        const error = { kind: 'error' as const, status: 503, ...(o.retryAfterMs !== undefined ? { retryAfterMs: o.retryAfterMs } : {}) };
        const result = await runPhase({
          mode: 'after',
          transport: 'memory',
          clock: new FakeClock(),
          random: seededRandom(o.seed),
          durationMs: o.durationMs,
          ratePerSecond: o.ratePerSecond,
          faults: [{ service: 'payment-provider', fromMs, toMs, fault: error }],
          providerBehaviour: (random) => () => ({
            latencyMs: o.latencyMs * (0.9 + 0.2 * random()),
            outcome: random() < o.lostShare ? 'lost-response' : 'ok',
          }),
          drainTimeoutMs: 30 * 60_000,
        });
        expect(peakPerSecond(result, 'payment-provider', fromMs, toMs)).toBeLessThanOrEqual(OUTAGE_LOAD_BOUND * o.ratePerSecond);
        expect(Number.isNaN(result.drainMs)).toBe(false);
        expect(result.paidOnce).toBe(result.accepted);
        expect(result.duplicatePayments).toBe(0);
        expect(result.pendingAtEnd).toBe(0);
        expect(result.chargedButFailed).toBe(0);
      }),
      { numRuns: Number(process.env.OUTAGE_RUNS ?? 30) },
    );
  });

  it('the bound can fail: without the breaker, the retries of the backlog go over it', async () => {
    const result = await runPhase({
      mode: 'after',
      transport: 'memory',
      clock: new FakeClock(),
      random: seededRandom(7),
      durationMs: 8_000,
      ratePerSecond: 10,
      faults: [{ service: 'payment-provider', fromMs: 3_000, toMs: 6_000, fault: { kind: 'error', status: 503 } }],
      job: { breaker: false },
      drainTimeoutMs: 30 * 60_000,
    });
    expect(peakPerSecond(result, 'payment-provider', 3_000, 6_000)).toBeGreaterThan(OUTAGE_LOAD_BOUND * 10);
    expect(result.paidOnce).toBe(result.accepted);
  });
});

describe('sync-payment-call: the end-to-end duplicate check can fail', () => {
  it('a fresh idempotency key per attempt pays orders twice when answers are lost', async () => {
    const schedule: Schedule = {
      plans: [
        { latencyMs: 2_800, outcome: 'lost-response' },
        { latencyMs: 9_000, outcome: 'ok' },
      ],
      baseLatencyMs: 2_800,
      faults: [],
      ratePerSecond: 4,
      durationMs: 1_000,
      breaker: false,
      seed: 1,
    };
    const good = await phase('after', schedule);
    expect(good.duplicatePayments).toBe(0);
    expect(good.provider.duplicatesPrevented).toBeGreaterThanOrEqual(2);
    const broken = await phase('after', schedule, (job, attempt) => `${job.idempotencyKey}_${attempt}`);
    expect(broken.duplicatePayments).toBeGreaterThanOrEqual(2);
    expect(broken.paidOnce).toBeLessThan(broken.accepted);
  });
});

describe('sync-payment-call, property: without the fix', () => {
  it('checkout p95 follows the external API: at least its steady latency once that dominates', async () => {
    await fc.assert(
      fc.asyncProperty(
        scheduleArb.map((s) => ({ ...s, plans: [], faults: [], baseLatencyMs: 500 + (s.baseLatencyMs % 5_000) })),
        async (schedule) => {
          const result = await phase('before', schedule);
          expect(result.checkout.p95Ms).toBeGreaterThanOrEqual(schedule.baseLatencyMs);
          if (schedule.baseLatencyMs >= 1_000) expect(result.checkout.p95Ms).toBeGreaterThan(CHECKOUT_P95_BOUND_MS * 5);
        },
      ),
      { numRuns: 8, seed: 20_251_127 },
    );
  });
});

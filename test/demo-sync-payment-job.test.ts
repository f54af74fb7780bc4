/**
 * The background payment job of the sync-payment-call demo, on its own: the
 * fake external API, the outbox and the worker, under a FakeClock.
 */
import { describe, expect, it } from 'vitest';
import { pipeline, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import {
  type ChargeRequest,
  FakePaymentProvider,
  type ProviderBehaviour,
  type ProviderPlan,
} from '../examples/sync-payment-call/external-api.ts';
import { ChargeFailedError, PaymentOutbox, PaymentWorker, type PaymentJob } from '../examples/sync-payment-call/payment-job.ts';

function inMemorySend(provider: FakePaymentProvider) {
  return async (request: ChargeRequest, signal: AbortSignal) => {
    const reply = await new Promise<Awaited<ReturnType<FakePaymentProvider['charge']>>>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      provider.charge(request).then(resolve);
    });
    if (reply.status !== 200) throw new ChargeFailedError(reply.status, (reply.body as { error: string }).error);
    return reply.body as Extract<typeof reply.body, { chargeId: string }>;
  };
}

function scripted(plans: readonly ProviderPlan[], after: ProviderPlan = { latencyMs: 2_800, outcome: 'ok' }): ProviderBehaviour {
  return (index) => plans[index] ?? after;
}

function setup(behaviour: ProviderBehaviour, keyFor?: (job: PaymentJob, attempt: number) => string) {
  const clock = new FakeClock();
  const provider = new FakePaymentProvider({ clock, behaviour });
  const outbox = new PaymentOutbox();
  const worker = new PaymentWorker({
    outbox,
    clock,
    sendCharge: inMemorySend(provider),
    guard: pipeline(timeout({ ms: 5_000, clock })),
    maxDispatched: 8,
    retryDelayMs: (setbacks) => Math.min(10_000, 500 * 2 ** (setbacks - 1)),
    ...(keyFor ? { keyFor } : {}),
  });
  worker.start();
  return { clock, provider, outbox, worker };
}

describe('sync-payment-call: fake external payment API', () => {
  it('charges once per idempotency key and answers a replay with the original charge', async () => {
    const clock = new FakeClock();
    const provider = new FakePaymentProvider({ clock, behaviour: () => ({ latencyMs: 100, outcome: 'ok' }) });
    const request = { idempotencyKey: 'k1', orderId: 'o1', amountCents: 500 };
    const first = provider.charge(request);
    await clock.advance(100);
    const second = provider.charge(request);
    await clock.advance(100);
    const [a, b] = [await first, await second];
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body).toEqual({ ...a.body, replayed: true });
    expect(provider.stats).toMatchObject({ requests: 2, charges: 1, duplicatesPrevented: 1, duplicateCharges: 0 });
  });

  it('answers 409 while the same key is being processed, and commits a lost response', async () => {
    const clock = new FakeClock();
    const provider = new FakePaymentProvider({ clock, behaviour: scripted([{ latencyMs: 1_000, outcome: 'lost-response' }]) });
    const request = { idempotencyKey: 'k1', orderId: 'o1', amountCents: 500 };
    const first = provider.charge(request);
    const concurrent = provider.charge(request);
    await clock.advance(1_000);
    expect((await concurrent).status).toBe(409);
    expect((await first).status).toBe(502);
    expect(provider.chargesFor('o1')).toBe(1);
  });

  it('counts a second charge of one order under a different key as a duplicate', async () => {
    const clock = new FakeClock();
    const provider = new FakePaymentProvider({ clock, behaviour: () => ({ latencyMs: 10, outcome: 'ok' }) });
    void provider.charge({ idempotencyKey: 'a', orderId: 'o1', amountCents: 500 });
    void provider.charge({ idempotencyKey: 'b', orderId: 'o1', amountCents: 500 });
    await clock.advance(10);
    expect(provider.stats.duplicateCharges).toBe(1);
  });
});

describe('sync-payment-call: background payment job', () => {
  it('pays every order once when the API fails, loses answers and hangs, retrying with the same key', async () => {
    const { clock, provider, outbox, worker } = setup(
      scripted([
        { latencyMs: 2_800, outcome: 'fail' },
        { latencyMs: 2_800, outcome: 'lost-response' },
        { latencyMs: 2_800, outcome: 'hang' },
        { latencyMs: 9_000, outcome: 'ok' }, // slower than the 5 s timeout: charged after we gave up
      ]),
    );
    for (let i = 0; i < 6; i++) outbox.add(`o${i}`, 1_000 + i, clock.now());
    worker.notify();
    const settled = worker.whenSettled();
    await clock.advance(120_000);
    await settled;
    expect(outbox.counts()).toEqual({ accepted: 6, pending: 0, inFlight: 0, paid: 6 });
    for (let i = 0; i < 6; i++) expect(provider.chargesFor(`o${i}`)).toBe(1);
    expect(provider.stats.duplicateCharges).toBe(0);
    // the lost response, the hang and the slow call were all charged, then retried: the key saved three double charges
    expect(provider.stats.duplicatesPrevented).toBeGreaterThanOrEqual(3);
    expect(worker.stats.timeouts).toBeGreaterThanOrEqual(2);
    worker.stop();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a fresh key per attempt would charge twice: the duplicate counter can fail', async () => {
    const { clock, provider, outbox, worker } = setup(
      scripted([{ latencyMs: 2_800, outcome: 'lost-response' }]),
      (job, attempt) => `${job.idempotencyKey}_${attempt}`,
    );
    outbox.add('o1', 1_000, clock.now());
    worker.notify();
    await clock.advance(60_000);
    expect(outbox.counts().paid).toBe(1);
    expect(provider.chargesFor('o1')).toBe(2);
    expect(provider.stats.duplicateCharges).toBe(1);
  });

  it('holds no timer while idle and answers whenSettled at once when nothing is pending', async () => {
    const { clock, worker } = setup(() => ({ latencyMs: 1, outcome: 'ok' }));
    await worker.whenSettled();
    expect(clock.pendingTimers).toBe(0);
  });
});

/**
 * The background payment job of the sync-payment-call demo, on its own: the
 * fake external API, the outbox and the worker, under a FakeClock.
 */
import { describe, expect, it } from 'vitest';
import { circuitBreaker, type Policy, pipeline, type RetryBudget, retryBudget, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import {
  type ChargeRequest,
  FakePaymentProvider,
  type ProviderBehaviour,
  type ProviderPlan,
} from '../examples/sync-payment-call/external-api.ts';
import {
  ChargeFailedError,
  parseRetryAfter,
  PaymentOutbox,
  PaymentWorker,
  type PaymentJob,
  RetryDeferredError,
} from '../examples/sync-payment-call/payment-job.ts';

function inMemorySend(provider: FakePaymentProvider) {
  return async (request: ChargeRequest, signal: AbortSignal) => {
    const reply = await new Promise<Awaited<ReturnType<FakePaymentProvider['charge']>>>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      provider.charge(request).then(resolve);
    });
    if (reply.status !== 200) throw new ChargeFailedError(reply.status, (reply.body as { error: string }).error, reply.retryAfterMs);
    return reply.body as Extract<typeof reply.body, { chargeId: string }>;
  };
}

function scripted(plans: readonly ProviderPlan[], after: ProviderPlan = { latencyMs: 2_800, outcome: 'ok' }): ProviderBehaviour {
  return (index) => plans[index] ?? after;
}

interface SetupOptions {
  readonly keyFor?: (job: PaymentJob, attempt: number) => string;
  /** The provider's Retry-After on its 503s (default: the provider's own). */
  readonly retryAfterMs?: number;
  /** The guard's layers in front of a 5 s timeout (default none). */
  readonly front?: (clock: FakeClock) => Policy<unknown>[];
  readonly budget?: (clock: FakeClock) => RetryBudget;
  readonly maxDispatched?: number;
  readonly retryDelayMs?: (setbacks: number) => number;
}

function setup(behaviour: ProviderBehaviour, options: SetupOptions = {}) {
  const clock = new FakeClock();
  const provider = new FakePaymentProvider({
    clock,
    behaviour,
    ...(options.retryAfterMs !== undefined ? { retryAfterMs: options.retryAfterMs } : {}),
  });
  const outbox = new PaymentOutbox();
  const budget = options.budget?.(clock);
  const worker = new PaymentWorker({
    outbox,
    clock,
    sendCharge: inMemorySend(provider),
    guard: pipeline(...(options.front?.(clock) ?? []), timeout({ ms: 5_000, clock })),
    maxDispatched: options.maxDispatched ?? 8,
    retryDelayMs: options.retryDelayMs ?? ((setbacks) => Math.min(10_000, 500 * 2 ** (setbacks - 1))),
    ...(budget ? { budget } : {}),
    ...(options.keyFor ? { keyFor: options.keyFor } : {}),
  });
  worker.start();
  return { clock, provider, outbox, worker, budget };
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
      { keyFor: (job, attempt) => `${job.idempotencyKey}_${attempt}` },
    );
    outbox.add('o1', 1_000, clock.now());
    worker.notify();
    await clock.advance(60_000);
    expect(outbox.counts().paid).toBe(1);
    expect(provider.chargesFor('o1')).toBe(2);
    expect(provider.stats.duplicateCharges).toBe(1);
  });

  it("waits for the API's Retry-After before trying a job again, when it is longer than the backoff", async () => {
    const arrivals: number[] = [];
    const behaviour: ProviderBehaviour = (index, nowMs) => {
      arrivals.push(nowMs);
      return { latencyMs: 10, outcome: index === 0 ? 'fail' : 'ok' };
    };
    const { clock, outbox, worker } = setup(behaviour, { retryAfterMs: 3_000, maxDispatched: 1, retryDelayMs: () => 500 });
    outbox.add('o1', 1_000, clock.now());
    worker.notify();
    await clock.advance(10_000);
    expect(outbox.counts().paid).toBe(1);
    expect(arrivals).toEqual([0, 3_010]); // failed at 10 ms, asked to come back 3 s later (not 500 ms)
    expect(parseRetryAfter('2')).toBe(2_000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(55_000);
  });

  it('spends the retry budget only on calls that reach the API, not on breaker rejections', async () => {
    let breaker: ReturnType<typeof circuitBreaker> | undefined;
    const { clock, provider, outbox, worker, budget } = setup(
      scripted([{ latencyMs: 10, outcome: 'fail' }], { latencyMs: 10, outcome: 'ok' }),
      {
        retryAfterMs: 0,
        maxDispatched: 1,
        retryDelayMs: () => 100,
        // Opens on the first failure, for 2 s; the job's dispatches meanwhile are turned away.
        front: (clock) => [
          (breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 2_000, handle: (e) => !(e instanceof RetryDeferredError) })),
        ],
        budget: (clock) => retryBudget({ clock, ratio: 0, minPerSecond: 0.1 }), // one re-attempt per 10 s window
      },
    );
    outbox.add('o1', 1_000, clock.now());
    worker.notify();
    await clock.advance(200); // the first call failed, the breaker opened, the next dispatch was turned away
    expect(breaker!.state).toBe('open');
    expect(worker.stats.rejections).toBeGreaterThanOrEqual(1);
    expect(budget!.retriesInWindow).toBe(0);
    await clock.advance(3_000); // the probe is the job's one re-attempt, and the budget still has it
    expect(outbox.counts().paid).toBe(1);
    expect(provider.stats.requests).toBe(2);
    expect(budget!.retriesInWindow).toBe(1);
    expect(worker.stats.budgetDeferrals).toBe(0);
    worker.stop();
  });

  it('a re-attempt the budget refuses makes no call: the job waits, and is paid once the window has room', async () => {
    const { clock, provider, outbox, worker, budget } = setup(
      scripted([
        { latencyMs: 10, outcome: 'fail' },
        { latencyMs: 10, outcome: 'fail' },
      ], { latencyMs: 10, outcome: 'ok' }),
      {
        retryAfterMs: 0,
        retryDelayMs: () => 1_000,
        budget: (clock) => retryBudget({ clock, ratio: 0, minPerSecond: 0.1 }), // one re-attempt per 10 s window
      },
    );
    outbox.add('o1', 1_000, clock.now());
    outbox.add('o2', 1_000, clock.now());
    worker.notify();
    await clock.advance(5_000);
    expect(outbox.counts().paid).toBe(1); // one re-attempt granted, the other put off (no call)
    expect(worker.stats.budgetDeferrals).toBeGreaterThanOrEqual(1);
    expect(provider.stats.requests).toBe(3);
    await clock.advance(30_000);
    expect(outbox.counts().paid).toBe(2);
    expect(provider.stats.requests).toBe(4); // two first attempts and two re-attempts, nothing more
    expect(budget!.retriesInWindow).toBeLessThanOrEqual(1);
    worker.stop();
  });

  it('holds no timer while idle and answers whenSettled at once when nothing is pending', async () => {
    const { clock, worker } = setup(() => ({ latencyMs: 1, outcome: 'ok' }));
    await worker.whenSettled();
    expect(clock.pendingTimers).toBe(0);
  });
});

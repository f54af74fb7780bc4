/**
 * A fake third-party payment API (think `api.payments.example/v1/charges`).
 *
 * It behaves the way such APIs do, which is what makes moving the call into a
 * background job safe or unsafe:
 * - a charge takes about 2.8 s (the incident report's number), more when the API is slow;
 * - it commits the charge even if the caller has already given up (a timeout on
 *   our side does not cancel anything on theirs);
 * - it can fail before charging (503, with a `Retry-After`: come back in a
 *   second), or charge and then lose the response (502 or a hang), so the
 *   caller cannot tell whether it was charged;
 * - it deduplicates by `Idempotency-Key`: a request whose key was already
 *   charged gets the original charge back instead of a second charge, and a
 *   request whose key is still being processed gets 409.
 *
 * It keeps a ledger, so the demo can count what was actually charged: orders
 * charges beyond the first for one order (`duplicateCharges`, must be 0) and requests that would
 * have been a second charge without the key (`duplicatesPrevented`).
 */
import type { Clock } from '../../src/index.ts';

/** How the API treats one request. */
export type ProviderOutcome =
  /** Charge (once per key) and answer 200. */
  | 'ok'
  /** Answer 503 (with `Retry-After`) after the latency, without charging. */
  | 'fail'
  /** Charge, then answer 502 as if the response was lost on the way. */
  | 'lost-response'
  /** Charge after the latency, then never answer. */
  | 'hang';

/** The plan for one request: how long it takes and how it ends. */
export interface ProviderPlan {
  /** Time until the charge is committed (or refused) and the answer is sent, in ms. */
  readonly latencyMs: number;
  readonly outcome: ProviderOutcome;
}

/**
 * Decides each request's plan. `index` counts every request the API received
 * (from 0), `nowMs` is the clock's time when it arrived.
 */
export type ProviderBehaviour = (index: number, nowMs: number) => ProviderPlan;

/** A charge request, as sent by the payment service. */
export interface ChargeRequest {
  readonly idempotencyKey: string;
  readonly orderId: string;
  readonly amountCents: number;
}

/** What the API answers: an HTTP status and a JSON body. */
export interface ProviderReply {
  readonly status: number;
  readonly body: ChargeReplyBody | { readonly error: string };
  /** On a 503: how long the API asks callers to wait before trying again (sent as `Retry-After`), in ms. */
  readonly retryAfterMs?: number;
}

/** Body of a 200 answer. */
export interface ChargeReplyBody {
  readonly chargeId: string;
  readonly orderId: string;
  readonly amountCents: number;
  /** True when the key had already been charged and this is the original charge, returned again. */
  readonly replayed: boolean;
}

/** One committed charge in the provider's ledger. */
export interface LedgerEntry {
  readonly chargeId: string;
  readonly idempotencyKey: string;
  readonly orderId: string;
  readonly amountCents: number;
  readonly committedAtMs: number;
}

/** Counters the provider keeps. */
export interface ProviderStats {
  /** Requests received. */
  readonly requests: number;
  /** Charges committed (ledger entries). */
  readonly charges: number;
  /** Requests whose key had already been charged: each would have been a second charge without the key. */
  readonly duplicatesPrevented: number;
  /** Requests refused with 409 because the same key was still being processed. */
  readonly conflicts: number;
  /** Requests answered 503 without a charge. */
  readonly failed: number;
  /** Requests that charged but whose answer was lost (502 or never answered). */
  readonly lostResponses: number;
  /** Charges beyond the first for the same order (made under different keys). Must stay 0. */
  readonly duplicateCharges: number;
}

/** The default plan: 2.8 s ± 150 ms, always succeeding. */
export function steadyBehaviour(random: () => number, meanMs = 2_800, jitterMs = 150): ProviderBehaviour {
  return () => ({ latencyMs: meanMs + (random() * 2 - 1) * jitterMs, outcome: 'ok' });
}

/** Options of {@link FakePaymentProvider}. */
export interface FakePaymentProviderOptions {
  readonly clock: Clock;
  readonly behaviour: ProviderBehaviour;
  /** The `Retry-After` of its 503 answers, in ms (default 1,000). */
  readonly retryAfterMs?: number;
}

/** The fake external payment API; see the module comment. */
export class FakePaymentProvider {
  readonly #clock: Clock;
  #behaviour: ProviderBehaviour;
  readonly #retryAfterMs: number;
  readonly #ledger = new Map<string, LedgerEntry>();
  readonly #inProgress = new Set<string>();
  readonly #chargesPerOrder = new Map<string, number>();
  #requests = 0;
  #duplicatesPrevented = 0;
  #conflicts = 0;
  #failed = 0;
  #lostResponses = 0;
  #duplicateCharges = 0;
  #nextCharge = 1;
  #idleWaiters: (() => void)[] = [];

  constructor(options: FakePaymentProviderOptions) {
    this.#clock = options.clock;
    this.#behaviour = options.behaviour;
    this.#retryAfterMs = options.retryAfterMs ?? 1_000;
  }

  /** Replaces the behaviour for requests from now on (fault injection between phases). */
  setBehaviour(behaviour: ProviderBehaviour): void {
    this.#behaviour = behaviour;
  }

  /**
   * Handles `POST /v1/charges`. The returned promise never settles for a `hang`
   * plan: the caller's timeout has to deal with it, as with a real API.
   */
  charge(request: ChargeRequest): Promise<ProviderReply> {
    const index = this.#requests++;
    const plan = this.#behaviour(index, this.#clock.now());
    const key = request.idempotencyKey;
    const committed = this.#ledger.get(key);
    if (committed !== undefined) {
      // A retry of a key that was already charged: answer with the original charge.
      this.#duplicatesPrevented++;
      if (committed.orderId !== request.orderId || committed.amountCents !== request.amountCents) {
        return this.#after(plan.latencyMs, { status: 422, body: { error: 'idempotency key reused with different parameters' } });
      }
      return this.#after(Math.min(plan.latencyMs, 50), { status: 200, body: { ...toBody(committed), replayed: true } });
    }
    if (this.#inProgress.has(key)) {
      this.#conflicts++;
      return this.#after(5, { status: 409, body: { error: 'a request with this idempotency key is in progress' } });
    }
    this.#inProgress.add(key);
    return new Promise<ProviderReply>((resolve) => {
      this.#clock.schedule(() => {
        this.#inProgress.delete(key);
        if (this.#inProgress.size === 0) this.#wakeIdleWaiters();
        if (plan.outcome === 'fail') {
          this.#failed++;
          resolve({ status: 503, body: { error: 'upstream processor unavailable' }, retryAfterMs: this.#retryAfterMs });
          return;
        }
        const entry = this.#commit(request);
        if (plan.outcome === 'ok') resolve({ status: 200, body: { ...toBody(entry), replayed: false } });
        else {
          this.#lostResponses++;
          if (plan.outcome === 'lost-response') resolve({ status: 502, body: { error: 'bad gateway' } });
          // 'hang': never answer.
        }
      }, Math.max(0, plan.latencyMs));
    });
  }

  /**
   * Resolves when no charge is being processed: every request that reached the
   * API has committed (or refused) its charge, even those whose caller gave up.
   * Counting duplicates before that would miss charges that are still coming.
   */
  whenIdle(): Promise<void> {
    if (this.#inProgress.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Every committed charge, in commit order. */
  ledger(): LedgerEntry[] {
    return [...this.#ledger.values()];
  }

  /** How many charges were committed for `orderId` (1 when paid exactly once). */
  chargesFor(orderId: string): number {
    return this.#chargesPerOrder.get(orderId) ?? 0;
  }

  /** Current counters. */
  get stats(): ProviderStats {
    return {
      requests: this.#requests,
      charges: this.#ledger.size,
      duplicatesPrevented: this.#duplicatesPrevented,
      conflicts: this.#conflicts,
      failed: this.#failed,
      lostResponses: this.#lostResponses,
      duplicateCharges: this.#duplicateCharges,
    };
  }

  #commit(request: ChargeRequest): LedgerEntry {
    const entry: LedgerEntry = {
      chargeId: `ch_${(this.#nextCharge++).toString().padStart(6, '0')}`,
      idempotencyKey: request.idempotencyKey,
      orderId: request.orderId,
      amountCents: request.amountCents,
      committedAtMs: this.#clock.now(),
    };
    this.#ledger.set(request.idempotencyKey, entry);
    const count = (this.#chargesPerOrder.get(request.orderId) ?? 0) + 1;
    this.#chargesPerOrder.set(request.orderId, count);
    if (count > 1) this.#duplicateCharges++;
    return entry;
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #after(delayMs: number, reply: ProviderReply): Promise<ProviderReply> {
    return new Promise((resolve) => this.#clock.schedule(() => resolve(reply), Math.max(0, delayMs)));
  }
}

function toBody(entry: LedgerEntry): Omit<ChargeReplyBody, 'replayed'> {
  return { chargeId: entry.chargeId, orderId: entry.orderId, amountCents: entry.amountCents };
}

/**
 * The fix the incident report describes: the payment service no longer calls the external
 * API while checkout waits. It writes the order to an outbox and answers at
 * once ("payment pending"); a background job drains the outbox, calling the
 * external API through a Breakwater pipeline (bulkhead + timeout and friends).
 *
 * What keeps this from losing or doubling payments:
 * - the outbox owns every accepted order until the external API confirms a
 *   charge; a failed, timed-out or rejected attempt puts the job back, with a
 *   delay, and nothing ever drops it;
 * - a job is worked on by one attempt at a time;
 * - every attempt for an order carries the same idempotency key, created when
 *   the order was accepted, so an attempt that charged but lost its answer is
 *   answered with the original charge when retried, not charged again.
 */
import {
  type Clock,
  isBrokenCircuitError,
  isBulkheadRejectedError,
  isTimeoutError,
  type Policy,
  type RetryBudget,
} from '../../src/index.ts';
import type { ChargeReplyBody, ChargeRequest } from './external-api.ts';

/** Where a payment job is. */
export type PaymentJobState = 'pending' | 'in-flight' | 'paid';

/** One accepted order waiting to be (or already) charged. */
export interface PaymentJob {
  readonly orderId: string;
  readonly amountCents: number;
  /** Created once, when the order is accepted; every attempt sends it. */
  readonly idempotencyKey: string;
  readonly acceptedAtMs: number;
  state: PaymentJobState;
  /** Attempts that reached the external API call (bulkhead or breaker rejections are not counted). */
  attempts: number;
  /** Dispatches that did not end in a charge, rejections included: drives the backoff. */
  setbacks: number;
  /** Earliest time of the next attempt while pending. */
  nextAttemptAtMs: number;
  paidAtMs: number | undefined;
  chargeId: string | undefined;
  lastError: string | undefined;
  /** How its last dispatch ended (`undefined` before the first). */
  lastOutcome: AttemptOutcome | undefined;
}

/** Counts of the outbox's jobs by state. */
export interface OutboxCounts {
  readonly accepted: number;
  readonly pending: number;
  readonly inFlight: number;
  readonly paid: number;
}

/**
 * The payment service's outbox: accepted orders, keyed by order id. Adding an
 * order twice returns the first job (checkout may retry its own call).
 */
export class PaymentOutbox {
  readonly #jobs = new Map<string, PaymentJob>();
  readonly #waiting = new Set<PaymentJob>();
  #paid = 0;
  #inFlight = 0;

  /** Accepts an order; returns its job and whether it was new. */
  add(orderId: string, amountCents: number, nowMs: number): { job: PaymentJob; created: boolean } {
    const existing = this.#jobs.get(orderId);
    if (existing !== undefined) return { job: existing, created: false };
    const job: PaymentJob = {
      orderId,
      amountCents,
      idempotencyKey: `pay_${orderId}`,
      acceptedAtMs: nowMs,
      state: 'pending',
      attempts: 0,
      setbacks: 0,
      nextAttemptAtMs: nowMs,
      paidAtMs: undefined,
      chargeId: undefined,
      lastError: undefined,
      lastOutcome: undefined,
    };
    this.#jobs.set(orderId, job);
    this.#waiting.add(job);
    return { job, created: true };
  }

  /** The job of `orderId`, if it was accepted. */
  get(orderId: string): PaymentJob | undefined {
    return this.#jobs.get(orderId);
  }

  /** Every job, in acceptance order. */
  jobs(): PaymentJob[] {
    return [...this.#jobs.values()];
  }

  /** The due pending job that has waited longest, if any. */
  nextDue(nowMs: number): PaymentJob | undefined {
    let best: PaymentJob | undefined;
    for (const job of this.#waiting) {
      if (job.nextAttemptAtMs <= nowMs && (best === undefined || job.nextAttemptAtMs < best.nextAttemptAtMs)) best = job;
    }
    return best;
  }

  /** The earliest `nextAttemptAtMs` among pending jobs, or `undefined` when none is pending. */
  earliestPendingAtMs(): number | undefined {
    let earliest: number | undefined;
    for (const job of this.#waiting) if (earliest === undefined || job.nextAttemptAtMs < earliest) earliest = job.nextAttemptAtMs;
    return earliest;
  }

  /** pending → in-flight. */
  claim(job: PaymentJob): void {
    if (job.state !== 'pending') throw new Error(`payment job ${job.orderId} claimed while ${job.state}`);
    job.state = 'in-flight';
    this.#waiting.delete(job);
    this.#inFlight++;
  }

  /** in-flight → paid. */
  markPaid(job: PaymentJob, chargeId: string, nowMs: number): void {
    if (job.state !== 'in-flight') throw new Error(`payment job ${job.orderId} marked paid while ${job.state}`);
    job.state = 'paid';
    job.chargeId = chargeId;
    job.paidAtMs = nowMs;
    job.lastError = undefined;
    this.#inFlight--;
    this.#paid++;
  }

  /** in-flight → pending, to be tried again at `nextAttemptAtMs`. */
  release(job: PaymentJob, nextAttemptAtMs: number, error: string): void {
    if (job.state !== 'in-flight') throw new Error(`payment job ${job.orderId} released while ${job.state}`);
    job.state = 'pending';
    job.nextAttemptAtMs = nextAttemptAtMs;
    job.lastError = error;
    this.#inFlight--;
    this.#waiting.add(job);
  }

  /** Makes every pending job that matches `filter` due at `nowMs` (if it was due later); returns how many. */
  expedite(filter: (job: PaymentJob) => boolean, nowMs: number): number {
    let n = 0;
    for (const job of this.#waiting) {
      if (job.nextAttemptAtMs > nowMs && filter(job)) {
        job.nextAttemptAtMs = nowMs;
        n++;
      }
    }
    return n;
  }

  /** Counts by state. */
  counts(): OutboxCounts {
    return { accepted: this.#jobs.size, pending: this.#waiting.size, inFlight: this.#inFlight, paid: this.#paid };
  }

  /** True when every accepted job is paid. */
  get settled(): boolean {
    return this.#paid === this.#jobs.size;
  }
}

/** The external API answered with a status that is not a charge. */
export class ChargeFailedError extends Error {
  override readonly name = 'ChargeFailedError';
  /** The HTTP status the API answered with. */
  readonly status: number;
  /** How long the API asked us to wait before trying again (its `Retry-After`), in ms, if it said. */
  readonly retryAfterMs: number | undefined;
  constructor(status: number, message: string, retryAfterMs?: number) {
    super(`external payment API answered ${status}: ${message}`);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * A `Retry-After` header in ms: delay-seconds (`"2"`), or an HTTP date, taken
 * against the wall clock. `undefined` when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Sends one charge request to the external API (over HTTP or in memory); rejects with {@link ChargeFailedError} on a non-2xx answer. */
export type SendCharge = (request: ChargeRequest, signal: AbortSignal) => Promise<ChargeReplyBody>;

/**
 * Thrown inside the guard when the retry budget refuses a re-attempt: no call is
 * made. A breaker in the guard must not count it (it says nothing of the API).
 */
export class RetryDeferredError extends Error {
  override readonly name = 'RetryDeferredError';
  constructor() {
    super('re-attempt put off by the retry budget');
  }
}

/** What happened to one attempt, for counters and charts. */
export type AttemptOutcome = 'paid' | 'failed' | 'timeout' | 'rejected' | 'deferred';

/** Options of {@link PaymentWorker}. */
export interface PaymentWorkerOptions {
  readonly outbox: PaymentOutbox;
  readonly clock: Clock;
  readonly sendCharge: SendCharge;
  /** The Breakwater pipeline every call to the external API goes through. */
  readonly guard: Policy<unknown>;
  /** Jobs dispatched to the guard at once; the bulkhead inside decides how many really run. */
  readonly maxDispatched: number;
  /**
   * Delay before a job is dispatched again after its `setbacks`-th setback (a
   * failed or timed-out attempt, or a rejection by the bulkhead or breaker), in ms.
   * After a breaker rejection the job also waits at least until the breaker's next probe.
   */
  readonly retryDelayMs: (setbacks: number) => number;
  /**
   * Re-attempts (any call after a job's first call to the API) are granted by
   * this budget, shared by every job: when it refuses, the job waits another
   * backoff delay without calling. This keeps a backlog of retries from
   * multiplying the load on an API that is failing or just came back. First
   * attempts are never refused. The budget is asked only once the guard has
   * admitted the call (a bulkhead or breaker rejection spends none of it), and
   * the breaker must ignore {@link RetryDeferredError}.
   */
  readonly budget?: RetryBudget;
  /**
   * The idempotency key sent on an attempt. Default: the job's key, the same on
   * every attempt. Only tests change it, to show what a per-attempt key does.
   */
  readonly keyFor?: (job: PaymentJob, attempt: number) => string;
  /** Called after each attempt settles. */
  readonly onAttempt?: (job: PaymentJob, outcome: AttemptOutcome, error: unknown) => void;
}

/** Counters of a {@link PaymentWorker}. */
export interface PaymentWorkerStats {
  /** Calls made to the external API. */
  readonly attempts: number;
  /** Attempts that failed (error status, network), or timed out. */
  readonly failures: number;
  readonly timeouts: number;
  /** Dispatches the bulkhead or breaker turned away (no call made). */
  readonly rejections: number;
  /** Re-attempts the retry budget put off (no call made). */
  readonly budgetDeferrals: number;
}

/**
 * The background job: takes due jobs from the outbox, at most `maxDispatched`
 * at a time, and charges them through the guard. It holds no timer while
 * there is nothing to do: it is woken when an order is accepted, when an
 * attempt settles, and at the next retry time.
 */
export class PaymentWorker {
  readonly #o: PaymentWorkerOptions;
  #dispatched = 0;
  #wake: unknown;
  #wakeAtMs = Infinity;
  #running = false;
  #attempts = 0;
  #failures = 0;
  #timeouts = 0;
  #rejections = 0;
  #budgetDeferrals = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(options: PaymentWorkerOptions) {
    this.#o = options;
  }

  /** Starts working the outbox. */
  start(): void {
    this.#running = true;
    this.notify();
  }

  /** Stops taking new jobs (attempts in flight finish and are recorded). */
  stop(): void {
    this.#running = false;
    this.#cancelWake();
  }

  /** Tells the worker there may be work: call it after adding to the outbox. */
  notify(): void {
    if (!this.#running) return;
    const { outbox, clock } = this.#o;
    for (;;) {
      if (this.#dispatched >= this.#o.maxDispatched) return; // an attempt settling calls notify again
      const job = outbox.nextDue(clock.now());
      if (job === undefined) break;
      this.#dispatch(job);
    }
    const earliest = outbox.earliestPendingAtMs();
    if (earliest !== undefined) this.#armWake(earliest);
    else this.#cancelWake();
  }

  /**
   * Makes the jobs the bulkhead or breaker turned away due now. Call it when the
   * breaker closes: they were parked only because it was open.
   */
  resumeRejected(): void {
    if (this.#o.outbox.expedite((job) => job.lastOutcome === 'rejected', this.#o.clock.now()) > 0) this.notify();
  }

  /** Resolves when every accepted job is paid (immediately if already so). */
  whenSettled(): Promise<void> {
    if (this.#o.outbox.settled) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Counters so far. */
  get stats(): PaymentWorkerStats {
    return {
      attempts: this.#attempts,
      failures: this.#failures,
      timeouts: this.#timeouts,
      rejections: this.#rejections,
      budgetDeferrals: this.#budgetDeferrals,
    };
  }

  #dispatch(job: PaymentJob): void {
    const { outbox, clock, guard, sendCharge } = this.#o;
    outbox.claim(job);
    this.#dispatched++;
    let started = false;
    guard
      .execute(({ signal }) => {
        // Admitted by the guard: only now is this a call to the API, first or re-attempt.
        const budget = this.#o.budget;
        if (budget !== undefined) {
          if (job.attempts === 0) budget.recordFirstAttempt();
          else if (!budget.tryRetry()) throw new RetryDeferredError();
        }
        started = true;
        const attempt = ++job.attempts;
        this.#attempts++;
        const key = this.#o.keyFor?.(job, attempt) ?? job.idempotencyKey;
        return sendCharge({ idempotencyKey: key, orderId: job.orderId, amountCents: job.amountCents }, signal);
      })
      .then(
        (reply) => {
          job.lastOutcome = 'paid';
          outbox.markPaid(job, (reply as ChargeReplyBody).chargeId, clock.now());
          this.#o.onAttempt?.(job, 'paid', undefined);
        },
        (error: unknown) => {
          const now = clock.now();
          let outcome: AttemptOutcome;
          job.setbacks++;
          let delayMs = this.#o.retryDelayMs(job.setbacks);
          if (error instanceof RetryDeferredError) {
            outcome = 'deferred';
            this.#budgetDeferrals++;
          } else if (!started && (isBulkheadRejectedError(error) || isBrokenCircuitError(error))) {
            outcome = 'rejected';
            this.#rejections++;
            if (isBrokenCircuitError(error)) delayMs = Math.max(delayMs, error.retryAfterMs);
          } else {
            outcome = isTimeoutError(error) ? 'timeout' : 'failed';
            if (outcome === 'timeout') this.#timeouts++;
            else this.#failures++;
            // The API said when to come back (a 503's Retry-After): not before then.
            if (error instanceof ChargeFailedError && error.retryAfterMs !== undefined) delayMs = Math.max(delayMs, error.retryAfterMs);
          }
          job.lastOutcome = outcome;
          outbox.release(job, now + delayMs, describe(error));
          this.#o.onAttempt?.(job, outcome, error);
        },
      )
      .finally(() => {
        this.#dispatched--;
        if (outbox.settled) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const resolve of waiters) resolve();
        }
        this.notify();
      });
  }

  #armWake(atMs: number): void {
    if (this.#wake !== undefined && this.#wakeAtMs <= atMs) return;
    this.#cancelWake();
    const { clock } = this.#o;
    this.#wakeAtMs = atMs;
    this.#wake = clock.schedule(() => {
      this.#wake = undefined;
      this.#wakeAtMs = Infinity;
      this.notify();
    }, Math.max(0, atMs - clock.now()));
  }

  #cancelWake(): void {
    if (this.#wake !== undefined) this.#o.clock.cancel(this.#wake);
    this.#wake = undefined;
    this.#wakeAtMs = Infinity;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

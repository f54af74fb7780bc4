/**
 * A retry budget: one object, shared by every retry policy that calls the same
 * dependency, that caps retries at a fraction of first attempts over a sliding
 * window. This is what keeps retries from multiplying the load on a dependency
 * that is already failing.
 */
import { type Clock, systemClock } from './core/clock.ts';
import { Emitter, type Event } from './core/events.ts';
import { checkOptions, clock as clockCheck, duration, finite } from './core/validate.ts';

/** Options of {@link retryBudget}. */
export interface RetryBudgetOptions {
  /** Retries allowed per first attempt in the window, from 0 to 1 (default 0.2: one retry per five calls). */
  readonly ratio?: number;
  /**
   * Retries allowed per second of window whatever the traffic (default 10), so
   * that a quiet service can still retry. 0 or more.
   */
  readonly minPerSecond?: number;
  /** Length of the sliding window in ms (default 10,000), kept in 10 buckets. At least 10. */
  readonly windowMs?: number;
  /** Clock for the window (default: the system clock). Only `now()` is used: a budget has no timer. */
  readonly clock?: Clock;
}

/** Payload of `onExhausted` / `onBudgetExhausted`. */
export interface RetryBudgetExhaustedEvent {
  /** The error whose retry was refused; it is rethrown unchanged. */
  readonly error: unknown;
}

/**
 * What a retry or hedge policy draws from: a {@link RetryBudget}, or a budget shared
 * by a fleet (`fleetRetryBudget` from `breakwater/redis`).
 */
export interface RetryBudgetLike {
  /** Counts one first attempt (a call, not a retry). */
  recordFirstAttempt(): void;
  /** Asks for one retry (or hedge): true, and counted, when the budget allows it. */
  tryRetry(error?: unknown): boolean;
}

/** The defaults of {@link retryBudget}, in one visible place. */
export const RETRY_BUDGET_DEFAULTS: Readonly<Required<Omit<RetryBudgetOptions, 'clock'>>> = Object.freeze({
  ratio: 0.2,
  minPerSecond: 10,
  windowMs: 10_000,
});

/** Number of buckets the window is kept in. */
const BUCKETS = 10;

/**
 * A retry budget; create it with {@link retryBudget} and pass it to any number of
 * `retry({ budget })` policies. A retry is allowed while, counting it, the
 * retries in the window stay within `ratio × first attempts in the window +
 * minPerSecond × window seconds`. Counting is O(1): two small typed arrays of
 * per-bucket counts and two running totals, rotated on use; no timer.
 */
export class RetryBudget implements RetryBudgetLike {
  /** Retries allowed per first attempt in the window. */
  readonly ratio: number;
  /** Retries allowed per second of window whatever the traffic. */
  readonly minPerSecond: number;
  /** Window length in ms. */
  readonly windowMs: number;
  readonly #clock: Clock;
  readonly #bucketMs: number;
  readonly #floor: number;
  readonly #firsts = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #firstTotal = 0;
  #retryTotal = 0;
  /** Absolute index (time / bucketMs) of the newest bucket. */
  #bucket: number;
  readonly #exhausted = new Emitter<RetryBudgetExhaustedEvent>();

  /** Use {@link retryBudget} instead. @internal */
  constructor(options: RetryBudgetOptions) {
    this.ratio = options.ratio ?? RETRY_BUDGET_DEFAULTS.ratio;
    this.minPerSecond = options.minPerSecond ?? RETRY_BUDGET_DEFAULTS.minPerSecond;
    this.windowMs = options.windowMs ?? RETRY_BUDGET_DEFAULTS.windowMs;
    this.#clock = options.clock ?? systemClock;
    this.#bucketMs = this.windowMs / BUCKETS;
    this.#floor = (this.minPerSecond * this.windowMs) / 1000;
    this.#bucket = Math.floor(this.#clock.now() / this.#bucketMs);
  }

  /** Fires each time a retry is refused. */
  get onExhausted(): Event<RetryBudgetExhaustedEvent> {
    return this.#exhausted.subscribe;
  }

  /** First attempts (calls) recorded in the current window. */
  get firstAttemptsInWindow(): number {
    this.#rotate();
    return this.#firstTotal;
  }

  /** Retries granted in the current window. */
  get retriesInWindow(): number {
    this.#rotate();
    return this.#retryTotal;
  }

  /** The most retries the current window allows: `ratio × firstAttemptsInWindow + minPerSecond × window seconds`. */
  get maxRetriesInWindow(): number {
    this.#rotate();
    return this.ratio * this.#firstTotal + this.#floor;
  }

  /** How many more retries would be granted right now. */
  get remainingRetries(): number {
    this.#rotate();
    return Math.max(0, Math.floor(this.ratio * this.#firstTotal + this.#floor - this.#retryTotal));
  }

  /** Counts one first attempt (a call, not a retry). Retry policies call this for you. */
  recordFirstAttempt(): void {
    const slot = this.#rotate();
    this.#firsts[slot]!++;
    this.#firstTotal++;
  }

  /**
   * Asks for one retry. Returns true, and counts it, when the budget allows it;
   * otherwise returns false and fires `onExhausted` with `error`. Retry policies
   * call this for you.
   */
  tryRetry(error?: unknown): boolean {
    const slot = this.#rotate();
    if (this.#retryTotal + 1 <= this.ratio * this.#firstTotal + this.#floor) {
      this.#retries[slot]!++;
      this.#retryTotal++;
      return true;
    }
    if (this.#exhausted.active) this.#exhausted.emit(Object.freeze({ error }));
    return false;
  }

  /** Moves the window to now, dropping buckets that fell out of it; returns the current bucket's slot. */
  #rotate(): number {
    const bucket = Math.floor(this.#clock.now() / this.#bucketMs);
    const gap = bucket - this.#bucket;
    if (gap > 0) {
      if (gap >= BUCKETS) {
        this.#firsts.fill(0);
        this.#retries.fill(0);
        this.#firstTotal = 0;
        this.#retryTotal = 0;
      } else {
        for (let i = 1; i <= gap; i++) {
          const slot = slotOf(this.#bucket + i);
          this.#firstTotal -= this.#firsts[slot]!;
          this.#retryTotal -= this.#retries[slot]!;
          this.#firsts[slot] = 0;
          this.#retries[slot] = 0;
        }
      }
      this.#bucket = bucket;
    }
    // A clock that went backwards (it should not) keeps counting in the newest bucket.
    return slotOf(this.#bucket);
  }
}

function slotOf(bucket: number): number {
  const slot = bucket % BUCKETS;
  return slot < 0 ? slot + BUCKETS : slot;
}

/**
 * Creates a retry budget to share between retry policies: at most `ratio`
 * retries per first attempt over a sliding `windowMs` window, plus
 * `minPerSecond` retries per second whatever the traffic. When the budget is
 * spent, retries stop and each call fails with its own last error, unchanged.
 *
 * ```ts
 * const budget = retryBudget({ ratio: 0.1 });
 * const auth = pipeline({ name: 'auth' }, retry({ budget }), timeout({ ms: 500 }));
 * ```
 */
export function retryBudget(options?: RetryBudgetOptions): RetryBudget {
  const checked = checkOptions<RetryBudgetOptions>('retryBudget', options, {
    ratio: finite(0, 1),
    minPerSecond: finite(0, 1_000_000),
    windowMs: duration(10),
    clock: clockCheck,
  });
  return new RetryBudget(checked);
}

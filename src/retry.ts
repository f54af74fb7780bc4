import { exponential, sanitizeDelay, type Schedule } from './backoff.ts';
import { unwatchAbort, watchAbort } from './core/abort.ts';
import { type Clock, type RandomSource, systemClock, systemRandom, type TimerHandle } from './core/clock.ts';
import { isRejection } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import type { RetryBudgetExhaustedEvent, RetryBudgetLike } from './retry-budget.ts';
import {
  checkOptions,
  clock as clockCheck,
  duration,
  fn,
  integer,
  MAX_TIMER_MS,
  received,
  satisfies,
} from './core/validate.ts';

/** Options of {@link retry}. */
export interface RetryOptions {
  /**
   * Total calls of the work, the first one included (default 3: one call and up
   * to two retries). `Infinity` is allowed together with `maxElapsedMs`.
   * Note: cockatiel's `maxAttempts` counts retries only, so its 3 means 4 calls.
   */
  readonly maxAttempts?: number;
  /** Delays between attempts (default `exponential()`: 100 ms, ×2, at most 30 s, full jitter). */
  readonly backoff?: Schedule;
  /**
   * Which errors are worth another attempt. Default: every error except
   * Breakwater's rejections (`isRejection`: an open or isolated breaker, a full
   * bulkhead, a throttled call), which are retried only if you say so. A `handle` you give replaces
   * the default. The caller's own abort is never retried, whatever `handle` says.
   */
  readonly handle?: (error: unknown) => boolean;
  /**
   * Give up when the next attempt would start more than this many ms after the
   * first one started. The last error is rethrown.
   */
  readonly maxElapsedMs?: number;
  /**
   * The server's pushback for an error (such as a parsed `Retry-After` header), in
   * ms, or `undefined` for none. It replaces the backoff delay when it is longer.
   */
  readonly retryAfter?: (error: unknown) => number | undefined;
  /** A budget shared with other retry policies that caps retries at a fraction of calls. */
  readonly budget?: RetryBudgetLike;
  /** Clock for backoff sleeps and `maxElapsedMs` (default: the system clock). */
  readonly clock?: Clock;
  /** Random source for jitter (default: `Math.random`). */
  readonly random?: RandomSource;
}

/** Payload of `onRetry`. */
export interface RetryEvent {
  /** The attempt that will run after the delay: 2 for the first retry. */
  readonly attempt: number;
  /** How long the policy waits before it, in ms (0: at once). */
  readonly delayMs: number;
  /** The error of the attempt that just failed. */
  readonly error: unknown;
}

/** Why a retry policy stopped retrying a handled error. */
export type GiveUpReason = 'max-attempts' | 'max-elapsed' | 'budget';

/** Payload of `onGiveUp`. */
export interface GiveUpEvent {
  /** How many attempts were made. */
  readonly attempts: number;
  /** The last attempt's error, which the call now rejects with. */
  readonly error: unknown;
  /** Which limit stopped the retries. */
  readonly reason: GiveUpReason;
}

/** The defaults of {@link retry}, in one visible place. */
export const RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 3,
  backoff: exponential(),
  /** Every error except Breakwater's rejections. */
  handle: (error: unknown): boolean => !isRejection(error),
});

/** What `_decide` reads and updates of a failing call. @internal */
interface AttemptState {
  readonly chain: Chain<unknown>;
  readonly scope: Scope | undefined;
  readonly startedAt: number;
  readonly attempts: number;
  scheduledDelayMs: number;
}

/**
 * One call that failed at least once. Created on the first failure only, so
 * the success path allocates nothing but the work's own promise chain.
 * While it sleeps it listens to the scope's signal (it is the listener object).
 */
class RetryCall<T> implements AttemptState {
  /** Attempts made so far. */
  attempts = 1;
  /** What the schedule returned last (its `previousDelayMs`). */
  scheduledDelayMs = 0;
  readonly chain: Chain<T>;
  readonly index: number;
  readonly scope: Scope | undefined;
  readonly startedAt: number;
  private readonly policy: RetryPolicy;
  private timer: TimerHandle | undefined;
  private signal: AbortSignal | undefined;
  private resolve!: (value: T) => void;
  private reject!: (error: unknown) => void;

  constructor(policy: RetryPolicy, chain: Chain<T>, index: number, scope: Scope | undefined, startedAt: number) {
    this.policy = policy;
    this.chain = chain;
    this.index = index;
    this.scope = scope;
    this.startedAt = startedAt;
  }

  /** The last error of a failed attempt that was not a refusal: the cause a later refusal carries. */
  private failure: unknown = undefined;

  /** Handles the first failure: rethrows, or returns the promise of the retried call. */
  first(error: unknown): Promise<T> {
    const delayMs = this.policy._decide(this, error);
    if (delayMs < 0) throw error;
    if (!isRejection(error)) this.failure = error;
    const promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.proceed(delayMs);
    return promise;
  }

  private readonly fail = (error: unknown): void => {
    let delayMs: number;
    try {
      delayMs = this.policy._decide(this, error);
    } catch (callbackError) {
      this.reject(callbackError);
      return;
    }
    if (delayMs < 0) {
      this.reject(withCause(error, this.failure));
      return;
    }
    if (!isRejection(error)) this.failure = error;
    this.proceed(delayMs);
  };

  private proceed(delayMs: number): void {
    if (delayMs === 0) {
      this.attempt();
      return;
    }
    if (this.scope !== undefined) {
      // _decide has just checked that this signal is not aborted.
      const signal = (this.signal = this.scope.signal);
      watchAbort(signal, this);
    }
    this.timer = this.policy._clock.schedule(this.wake, delayMs);
  }

  private readonly wake = (): void => {
    this.timer = undefined;
    if (this.signal !== undefined) {
      unwatchAbort(this.signal, this);
      this.signal = undefined;
    }
    this.attempt();
  };

  /** The scope aborted during the sleep: stop at once with its reason. */
  handleEvent(): void {
    const signal = this.signal;
    if (signal === undefined) return;
    this.signal = undefined;
    if (this.timer !== undefined) {
      this.policy._clock.cancel(this.timer);
      this.timer = undefined;
    }
    this.reject(signal.reason);
  }

  private attempt(): void {
    this.attempts++;
    this.chain.fellBack = false; // what a fallback did inside the failed attempt is not this call's result
    this.chain.next( this.index + 1, this.scope, this.attempts).then(this.resolve, this.fail);
  }
}

/**
 * A call that ends on a refusal (an open breaker, a full bulkhead) after earlier
 * attempts failed keeps the last of those failures as the refusal's `cause`, so
 * whoever handles the error (a fallback, a log) still sees what went wrong.
 * Refusals are made fresh for each call, so setting the cause touches nobody else's.
 */
function withCause(error: unknown, failure: unknown): unknown {
  if (failure !== undefined && isRejection(error) && error.cause === undefined) {
    Object.defineProperty(error, 'cause', { value: failure, writable: true, configurable: true, enumerable: false });
  }
  return error;
}

/** A retry policy; create it with {@link retry}. */
export class RetryPolicy extends PolicyBase {
  /** Always `'retry'`. */
  readonly kind = 'retry';
  /** Total calls of the work, the first one included. */
  readonly maxAttempts: number;
  /** The backoff schedule. */
  readonly backoff: Schedule;
  /** The shared retry budget, if any. */
  readonly budget: RetryBudgetLike | undefined;
  /** The `maxElapsedMs` option, if given. */
  readonly maxElapsedMs: number | undefined;
  /** @internal */
  readonly _clock: Clock;
  readonly #handle: (error: unknown) => boolean;
  readonly #retryAfter: ((error: unknown) => number | undefined) | undefined;
  readonly #random: RandomSource;
  readonly #retry = new Emitter<RetryEvent>();
  readonly #giveUp = new Emitter<GiveUpEvent>();
  readonly #budgetExhausted = new Emitter<RetryBudgetExhaustedEvent>();

  /** Use {@link retry} instead. @internal */
  constructor(options: RetryOptions) {
    super();
    this.maxAttempts = options.maxAttempts ?? RETRY_DEFAULTS.maxAttempts;
    this.backoff = options.backoff ?? RETRY_DEFAULTS.backoff;
    this.budget = options.budget;
    this.maxElapsedMs = options.maxElapsedMs;
    this._clock = options.clock ?? systemClock;
    this.#handle = options.handle ?? RETRY_DEFAULTS.handle;
    this.#retryAfter = options.retryAfter;
    this.#random = options.random ?? systemRandom;
  }

  /** Fires once per retry, before its delay. */
  get onRetry(): Event<RetryEvent> {
    return this.#retry.subscribe;
  }

  /** Fires when a handled error is not retried because a limit was reached. */
  get onGiveUp(): Event<GiveUpEvent> {
    return this.#giveUp.subscribe;
  }

  /** Fires when the retry budget refused a retry (the budget's own `onExhausted` fires too). */
  get onBudgetExhausted(): Event<RetryBudgetExhaustedEvent> {
    return this.#budgetExhausted.subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, _attempt: number): Promise<T> {
    if (this.budget !== undefined) this.budget.recordFirstAttempt();
    const startedAt = this.maxElapsedMs === undefined ? 0 : this._clock.now();
    return chain
      .next(index + 1, scope, 1)
      .then(undefined, (error: unknown) => new RetryCall<T>(this, chain, index, scope, startedAt).first(error));
  }

  /**
   * After a failed attempt: the delay before the next one, or -1 to stop and
   * rethrow. Fires the events. Throws if a user callback throws.
   * @internal
   */
  _decide(call: AttemptState, error: unknown): number {
    // The caller asked to stop, or an outer layer (a timeout, a hedge) gave up on this call.
    if (call.chain.isStoppedFromOutside(error, call.scope)) return -1;
    if (!this.#handle(error)) return -1;
    const attempts = call.attempts;
    if (attempts >= this.maxAttempts) return this.#stop(attempts, error, 'max-attempts');
    const scheduled = sanitizeDelay(this.backoff.delayMs(attempts, call.scheduledDelayMs, this.#random));
    call.scheduledDelayMs = scheduled;
    let delayMs = scheduled;
    if (this.#retryAfter !== undefined) {
      const pushback = this.#retryAfter(error);
      if (typeof pushback === 'number' && pushback > delayMs) delayMs = Math.min(pushback, MAX_TIMER_MS);
    }
    if (this.maxElapsedMs !== undefined && this._clock.now() + delayMs - call.startedAt > this.maxElapsedMs) {
      return this.#stop(attempts, error, 'max-elapsed');
    }
    if (this.budget !== undefined && !this.budget.tryRetry(error)) {
      if (this.#budgetExhausted.active) this.#budgetExhausted.emit(Object.freeze({ error }));
      return this.#stop(attempts, error, 'budget');
    }
    if (this.#retry.active) this.#retry.emit(Object.freeze({ attempt: attempts + 1, delayMs, error }));
    return delayMs;
  }

  #stop(attempts: number, error: unknown, reason: GiveUpReason): -1 {
    if (this.#giveUp.active) this.#giveUp.emit(Object.freeze({ attempts, error, reason }));
    return -1;
  }
}

/**
 * Calls the work again when it fails, up to `maxAttempts` calls in all, waiting
 * between attempts as the `backoff` schedule says. The last error is rethrown
 * unchanged. The wait is cut short by an abort (the call then rejects with the
 * abort reason and the work is not called again).
 *
 * ```ts
 * const resilient = retry({ maxAttempts: 4, backoff: exponential({ initialMs: 50 }) });
 * const user = await resilient.execute(({ attempt }) => fetchUser(attempt));
 * ```
 */
export function retry(options?: RetryOptions): RetryPolicy {
  const owner = 'retry';
  const checked = checkOptions<RetryOptions>(owner, options, {
    maxAttempts: integer(1, Number.MAX_SAFE_INTEGER, true),
    backoff: satisfies(
      'a backoff schedule (exponential(), constant() or an object with a delayMs function)',
      (v) => typeof v === 'object' && v !== null && typeof (v as Schedule).delayMs === 'function',
    ),
    handle: fn,
    maxElapsedMs: duration(0),
    retryAfter: fn,
    budget: satisfies(
      'a RetryBudget (from retryBudget() or fleetRetryBudget())',
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        typeof (v as RetryBudgetLike).recordFirstAttempt === 'function' &&
        typeof (v as RetryBudgetLike).tryRetry === 'function',
    ),
    clock: clockCheck,
    random: fn,
  }, [], {
    retries: "p-retry's retries is maxAttempts minus one: retries: 2 is maxAttempts: 3",
    minTimeout: "p-retry's minTimeout is backoff: exponential({ initialMs })",
    maxTimeout: "p-retry's maxTimeout is backoff: exponential({ maxMs })",
    factor: "p-retry's factor is backoff: exponential({ factor })",
    maxRetryTime: "p-retry's maxRetryTime is maxElapsedMs",
  });
  if (checked.maxAttempts === Infinity && checked.maxElapsedMs === undefined) {
    throw new RangeError(
      `${owner}: option "maxAttempts" can be Infinity only together with "maxElapsedMs", so that every call ends; received ${received(checked.maxAttempts)} without maxElapsedMs`,
    );
  }
  return new RetryPolicy(checked);
}

/**
 * A rate limiter: a token bucket that admits at most `ratePerSecond` calls a
 * second on average and `burst` at once; calls over the limit wait in a bounded,
 * abortable queue or are refused at once with how long to wait.
 */
import { type Clock, systemClock } from './core/clock.ts';
import { RateLimitedError, stackless } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { TokenQueue } from './core/token-queue.ts';
import { checkOptions, clock as clockCheck, duration, finite, integer, received } from './core/validate.ts';

/** Options of {@link rateLimiter}. */
export interface RateLimiterOptions {
  /** Calls admitted per second on average: a number above 0, at most 1,000,000 (0.5 is one call every two seconds). */
  readonly ratePerSecond: number;
  /** Calls that may go at once after a quiet spell: the bucket's size (default: one second's worth, at least 1; 1 to 1,000,000). */
  readonly burst?: number;
  /** Calls that may wait for a token (default 0: a call over the limit is refused at once). 0 to 1,000,000. */
  readonly maxQueue?: number;
  /**
   * The longest a call may wait for its token, in ms (default: no limit but the
   * queue's). A call that would wait longer is refused at once, saying when to
   * come back. 0 to 2,147,483,647.
   */
  readonly maxWaitMs?: number;
  /** Clock for the bucket and the waits (default: the system clock). */
  readonly clock?: Clock;
}

/** Payload of `onAdmit`. */
export interface RateLimitAdmitEvent {
  /** How long the call waited for its token, in ms (0 when one was there). */
  readonly waitedMs: number;
}

/** Payload of `onReject`. */
export interface RateLimitRejectEvent {
  /** The error the call was refused with. */
  readonly error: RateLimitedError;
}

/** A rate limiter; create it with {@link rateLimiter}. */
export class RateLimiterPolicy extends PolicyBase {
  /** Always `'rate-limiter'`. */
  readonly kind = 'rate-limiter';
  /** Calls admitted per second on average. */
  readonly ratePerSecond: number;
  /** The bucket's size. */
  readonly burst: number;
  /** How many calls may wait for a token. */
  readonly maxQueue: number;
  /** The longest a call may wait, in ms (`Infinity`: no limit but the queue's). */
  readonly maxWaitMs: number;
  readonly #clock: Clock;
  readonly #perMs: number;
  #tokens: number;
  #at: number;
  readonly #queue: TokenQueue;
  #admit: Emitter<RateLimitAdmitEvent> | undefined;
  #reject: Emitter<RateLimitRejectEvent> | undefined;

  /** Use {@link rateLimiter} instead. @internal */
  constructor(options: Required<Omit<RateLimiterOptions, 'clock'>> & { clock: Clock }) {
    super();
    this.ratePerSecond = options.ratePerSecond;
    this.burst = options.burst;
    this.maxQueue = options.maxQueue;
    this.maxWaitMs = options.maxWaitMs;
    this.#clock = options.clock;
    this.#perMs = this.ratePerSecond / 1000;
    this.#tokens = this.burst;
    this.#at = this.#clock.now();
    this.#queue = new TokenQueue({ take: (now) => this.#take(now), admitted: (waitedMs) => this.#admitted(waitedMs) }, this.#clock);
  }

  /** Tokens in the bucket now (fractional). */
  get tokens(): number {
    this.#refill(this.#clock.now());
    return this.#tokens;
  }

  /** Calls waiting for a token now. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Fires for every call it admits, with how long it waited. */
  get onAdmit(): Event<RateLimitAdmitEvent> {
    return (this.#admit ??= new Emitter()).subscribe;
  }

  /** Fires for every call it refuses. */
  get onReject(): Event<RateLimitRejectEvent> {
    return (this.#reject ??= new Emitter()).subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const now = this.#clock.now();
    this.#refill(now);
    if (this.queued === 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#admitted(0);
      return chain.next(index + 1, scope, attempt);
    }
    // The wait for this call's token: the tokens still missing, its own included, at the refill rate.
    const waitMs = Math.ceil((this.queued + 1 - this.#tokens) / this.#perMs);
    if (this.queued >= this.maxQueue || waitMs > this.maxWaitMs) return Promise.reject(this.#refuse(waitMs, chain));
    return this.#queue.wait(chain, index, scope, attempt, (1 - this.#tokens) / this.#perMs);
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
  }

  /** A token for the head of the queue: 0 when taken, else the ms until there is one. */
  #take(now: number): number {
    this.#refill(now);
    if (this.#tokens < 1) return (1 - this.#tokens) / this.#perMs;
    this.#tokens -= 1;
    return 0;
  }

  #admitted(waitedMs: number): void {
    const emitter = this.#admit;
    if (emitter !== undefined && emitter.active) emitter.emit({ waitedMs });
  }

  #refuse(waitMs: number, chain: Chain<unknown>): RateLimitedError {
    const error = stackless(
      () =>
        new RateLimitedError(
          waitMs,
          `the rate limit (${this.ratePerSecond} calls/s, burst ${this.burst}) is reached: the call was not made; a token is free in ${waitMs} ms`,
          { pipeline: chain.pipeline },
        ),
    );
    const emitter = this.#reject;
    if (emitter !== undefined && emitter.active) emitter.emit({ error });
    return error;
  }
}

/**
 * Admits at most `ratePerSecond` calls a second on average and `burst` at once
 * (a token bucket); a call over the limit waits in a queue of `maxQueue` (abortable,
 * at most `maxWaitMs`) or is refused at once with `RateLimitedError`, whose
 * `retryAfterMs` says when a token is free.
 *
 * ```ts
 * const partnerApi = rateLimiter({ ratePerSecond: 100, burst: 20, maxQueue: 50, maxWaitMs: 500 });
 * ```
 */
export function rateLimiter(options: RateLimiterOptions): RateLimiterPolicy {
  const owner = 'rateLimiter';
  const checked = checkOptions<RateLimiterOptions>(
    owner,
    options,
    {
      ratePerSecond: finite(0, 1_000_000, 'min'),
      burst: integer(1, 1_000_000),
      maxQueue: integer(0, 1_000_000),
      maxWaitMs: duration(0),
      clock: clockCheck,
    },
    ['ratePerSecond'],
    { limit: 'the limit is ratePerSecond', rps: 'write ratePerSecond', interval: 'the rate is per second: write ratePerSecond' },
  );
  const rate = checked.ratePerSecond!;
  if (checked.maxWaitMs !== undefined && !(checked.maxQueue! > 0)) {
    throw new RangeError(`${owner}: option "maxWaitMs" needs a queue: set "maxQueue" above 0; received maxQueue ${received(checked.maxQueue ?? 0)}`);
  }
  return new RateLimiterPolicy({
    ratePerSecond: rate,
    burst: checked.burst ?? Math.max(1, Math.floor(rate)),
    maxQueue: checked.maxQueue ?? 0,
    maxWaitMs: checked.maxWaitMs ?? Infinity,
    clock: checked.clock ?? systemClock,
  });
}

/**
 * A rate limiter: a token bucket that admits at most `ratePerSecond` calls a
 * second on average and `burst` at once; calls over the limit wait in a bounded,
 * abortable queue or are refused at once with how long to wait.
 */
import { AsyncResource } from 'node:async_hooks';
import { unwatchAbort, watchAbort } from './core/abort.ts';
import { type Clock, systemClock, type TimerHandle } from './core/clock.ts';
import { RateLimitedError, stackless } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { checkOptions, clock as clockCheck, duration, finite, integer, MAX_TIMER_MS, received } from './core/validate.ts';

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

/** A call waiting for its token: in the FIFO, and the abort listener on its scope while it waits. */
class Waiter<T> {
  readonly enqueuedAt: number;
  signal: AbortSignal | undefined = undefined;
  waiting = true;
  resolve!: (value: T | PromiseLike<T>) => void;
  reject!: (error: unknown) => void;
  readonly #owner: RateLimiterPolicy;
  readonly chain: Chain<T>;
  readonly index: number;
  readonly scope: Scope | undefined;
  readonly attempt: number;
  /**
   * The caller's async context: the call goes on from the limiter's one timer,
   * which runs in the context of whichever call armed it, so it resumes in this
   * one instead (AsyncLocalStorage, and so an OpenTelemetry span, stays its caller's).
   */
  readonly context = new AsyncResource('breakwater.rate-limiter', { requireManualDestroy: true });

  constructor(owner: RateLimiterPolicy, chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number, now: number) {
    this.#owner = owner;
    this.chain = chain;
    this.index = index;
    this.scope = scope;
    this.attempt = attempt;
    this.enqueuedAt = now;
  }

  /** The scope aborted while waiting: leave the queue with its reason. */
  handleEvent(): void {
    if (!this.waiting) return;
    const reason: unknown = this.signal?.reason;
    this.#owner._leave(this as Waiter<unknown>);
    this.reject(reason);
  }
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
  readonly #queue: Waiter<unknown>[] = [];
  #head = 0;
  #timer: TimerHandle | undefined = undefined;
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
  }

  /** Tokens in the bucket now (fractional). */
  get tokens(): number {
    this.#refill(this.#clock.now());
    return this.#tokens;
  }

  /** Calls waiting for a token now. */
  get queued(): number {
    return this.#queue.length - this.#head;
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
    let signal: AbortSignal | undefined;
    if (scope !== undefined) {
      signal = scope.signal;
      if (signal.aborted) return Promise.reject(signal.reason);
    }
    const waiter = new Waiter<T>(this, chain, index, scope, attempt, now);
    const promise = new Promise<T>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    if (signal !== undefined) watchAbort((waiter.signal = signal), waiter);
    this.#queue.push(waiter as Waiter<unknown>);
    this.#arm();
    return promise;
  }

  /** A waiter left before its turn (aborted). @internal */
  _leave(waiter: Waiter<unknown>): void {
    waiter.waiting = false;
    if (waiter.signal !== undefined) unwatchAbort(waiter.signal, waiter);
    const at = this.#queue.indexOf(waiter, this.#head);
    if (at >= 0) this.#queue.splice(at, 1);
    if (this.queued === 0) this.#disarm();
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
  }

  /** Arms the one timer for when the head of the queue gets its token. */
  #arm(): void {
    if (this.#timer !== undefined || this.queued === 0) return;
    const waitMs = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil((1 - this.#tokens) / this.#perMs)));
    this.#timer = this.#clock.schedule(this.#wake, waitMs);
  }

  #disarm(): void {
    if (this.#timer !== undefined) {
      this.#clock.cancel(this.#timer);
      this.#timer = undefined;
    }
  }

  readonly #wake = (): void => {
    this.#timer = undefined;
    const now = this.#clock.now();
    this.#refill(now);
    while (this.queued > 0 && this.#tokens >= 1) {
      const waiter = this.#queue[this.#head++]!;
      this.#queue[this.#head - 1] = undefined as never;
      this.#tokens -= 1;
      waiter.waiting = false;
      if (waiter.signal !== undefined) unwatchAbort(waiter.signal, waiter);
      waiter.context.runInAsyncScope(this.#resume, this, waiter, now);
    }
    if (this.#head > 64 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#arm();
  };

  #resume(waiter: Waiter<unknown>, now: number): void {
    this.#admitted(now - waiter.enqueuedAt);
    waiter.resolve(waiter.chain.next(waiter.index + 1, waiter.scope, waiter.attempt));
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

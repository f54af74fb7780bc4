/**
 * The queue of calls waiting for a rate limiter's token, shared by `rateLimiter` and
 * `fleetRateLimiter`: FIFO, one timer for the head of the queue, one abort listener per
 * waiting call (removed when it leaves), and each call resumed in its caller's async
 * context. Where the tokens come from is the limiter's business ({@link TokenSource}).
 * The waiters form a doubly linked list, so a call leaves from anywhere in O(1): when a
 * deadline outside the limiter aborts many waiting calls at once, each pays the same.
 * @internal
 */
import { AsyncResource } from 'node:async_hooks';
import { unwatchAbort, watchAbort } from './abort.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { MAX_TIMER_MS } from './validate.ts';
import type { Chain, Scope } from './protocol.ts';

/** What the queue asks of its limiter. @internal */
export interface TokenSource {
  /** Takes one token for the head of the queue: 0 when it got one, else the ms until one may be there (at least 1). */
  take(now: number): number;
  /** A waiter got its token after `waitedMs` and goes on now. */
  admitted(waitedMs: number): void;
  /**
   * When given, a waiter still without a token `maxWaitMs` after it joined leaves the
   * queue, rejected with what this returns (for limiters whose wait is an estimate).
   */
  expired?(chain: Chain<unknown>, retryInMs: number): unknown;
}

/** A call waiting for its token: a link of the FIFO, and the abort listener on its scope while it waits. */
class Waiter<T> {
  readonly enqueuedAt: number;
  signal: AbortSignal | undefined = undefined;
  /** In the queue: it leaves once (see `_leave`). */
  queued = true;
  /** The waiter ahead of this one, and the one behind it, while it is queued. */
  prev: Waiter<unknown> | undefined = undefined;
  next: Waiter<unknown> | undefined = undefined;
  resolve!: (value: T | PromiseLike<T>) => void;
  reject!: (error: unknown) => void;
  readonly #queue: TokenQueue;
  readonly chain: Chain<T>;
  readonly index: number;
  readonly scope: Scope | undefined;
  readonly attempt: number;
  /**
   * The caller's async context: the call goes on from the queue's one timer (or a
   * reply from Redis), which runs in the context of whichever call armed it, so it
   * resumes in this one instead (AsyncLocalStorage, and so an OpenTelemetry span, stays its caller's).
   */
  readonly context = new AsyncResource('breakwater.rate-limiter', { requireManualDestroy: true });

  constructor(queue: TokenQueue, chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number, now: number) {
    this.#queue = queue;
    this.chain = chain;
    this.index = index;
    this.scope = scope;
    this.attempt = attempt;
    this.enqueuedAt = now;
  }

  /** The scope aborted while waiting: leave the queue with its reason. */
  handleEvent(): void {
    const reason: unknown = this.signal!.reason;
    this.#queue._leave(this as Waiter<unknown>);
    this.reject(reason);
  }
}

/** Calls waiting for tokens, first in first out. @internal */
export class TokenQueue {
  readonly #source: TokenSource;
  readonly #clock: Clock;
  /** The oldest waiter (the head) and the newest. */
  #first: Waiter<unknown> | undefined = undefined;
  #last: Waiter<unknown> | undefined = undefined;
  #size = 0;
  readonly #maxWaitMs: number;
  #timer: TimerHandle | undefined = undefined;

  constructor(source: TokenSource, clock: Clock, maxWaitMs = Infinity) {
    this.#source = source;
    this.#clock = clock;
    this.#maxWaitMs = source.expired === undefined ? Infinity : maxWaitMs;
  }

  /** Calls waiting now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Queues the call (its limiter has checked the bounds); it goes on down the chain when
   * it reaches the head of the queue and its token is there, and leaves the queue at
   * once, rejected with the reason, when its scope aborts.
   */
  wait<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number, retryInMs: number): Promise<T> {
    let signal: AbortSignal | undefined;
    if (scope !== undefined) {
      signal = scope.signal;
      if (signal.aborted) return Promise.reject(signal.reason);
    }
    const waiter = new Waiter<T>(this, chain, index, scope, attempt, this.#clock.now());
    const promise = new Promise<T>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    if (signal !== undefined) watchAbort((waiter.signal = signal), waiter);
    const last = this.#last;
    waiter.prev = last;
    if (last === undefined) this.#first = waiter as Waiter<unknown>;
    else last.next = waiter as Waiter<unknown>;
    this.#last = waiter as Waiter<unknown>;
    this.#size++;
    this.#arm(retryInMs);
    return promise;
  }

  /**
   * Gives tokens to the waiters from the head while the source has them (and, with a
   * deadline, refuses the waiters past it), then arms the timer for the next one. The
   * limiter calls it when tokens may have arrived (a lease).
   */
  readonly wake = (): void => {
    this.#disarm();
    const now = this.#clock.now();
    let retryInMs = 0;
    let waiter: Waiter<unknown> | undefined;
    while ((waiter = this.#first) !== undefined) {
      retryInMs = this.#source.take(now);
      if (retryInMs === 0) {
        this._leave(waiter);
        waiter.context.runInAsyncScope(this.#resume, this, waiter, now);
      } else if (now - waiter.enqueuedAt >= this.#maxWaitMs) {
        // FIFO with one maxWaitMs: the head is always the first past its deadline.
        this._leave(waiter);
        waiter.reject(this.#source.expired!(waiter.chain, retryInMs));
      } else {
        break;
      }
    }
    this.#arm(retryInMs);
  };

  /** Refuses every waiter with `error(waiter's chain)` and stops the timer (the limiter is closing). */
  clear(error: (chain: Chain<unknown>) => unknown): void {
    let waiter: Waiter<unknown> | undefined;
    while ((waiter = this.#first) !== undefined) {
      this._leave(waiter);
      waiter.reject(error(waiter.chain));
    }
  }

  /**
   * A waiter leaves the queue: it got its token, was aborted or refused, or the
   * limiter is closing. The last one to leave stops the timer. @internal
   */
  _leave(waiter: Waiter<unknown>): void {
    // Once only: unlinking a waiter that has left would cut the others off. (An abort can
    // reach a waiter that left in the same turn: the signal's listeners are called from a copy.)
    if (!waiter.queued) return;
    waiter.queued = false;
    if (waiter.signal !== undefined) unwatchAbort(waiter.signal, waiter);
    const { prev, next } = waiter;
    if (prev === undefined) this.#first = next;
    else prev.next = next;
    if (next === undefined) this.#last = prev;
    else next.prev = prev;
    if (--this.#size === 0) this.#disarm();
  }

  /** Arms the one timer for when the head of the queue may get its token. */
  #arm(retryInMs: number): void {
    if (this.#timer !== undefined || this.size === 0) return;
    const deadlineInMs = this.#first!.enqueuedAt + this.#maxWaitMs - this.#clock.now();
    this.#timer = this.#clock.schedule(this.wake, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(Math.min(retryInMs, deadlineInMs)))));
  }

  #disarm(): void {
    if (this.#timer !== undefined) {
      this.#clock.cancel(this.#timer);
      this.#timer = undefined;
    }
  }

  #resume(waiter: Waiter<unknown>, now: number): void {
    this.#source.admitted(now - waiter.enqueuedAt);
    waiter.resolve(waiter.chain.next(waiter.index + 1, waiter.scope, waiter.attempt));
  }
}

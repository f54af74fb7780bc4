import { AsyncResource } from 'node:async_hooks';
import { unwatchAbort, watchAbort } from './core/abort.ts';
import { type Clock, systemClock, type TimerHandle } from './core/clock.ts';
import { BulkheadRejectedError } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { checkOptions, clock as clockCheck, duration, integer, received } from './core/validate.ts';

/** Options of {@link bulkhead}. */
export interface BulkheadOptions {
  /** How many calls may run at once. An integer from 1. Can be changed later through the `maxConcurrent` property. */
  readonly maxConcurrent: number;
  /**
   * How many calls may wait for a slot (default 0: a call that finds no free slot
   * is rejected at once). An integer from 0, or `Infinity` (an unbounded queue:
   * only with care).
   */
  readonly maxQueue?: number;
  /**
   * How long a call may wait in the queue, in ms; it is then rejected with
   * `BulkheadRejectedError`. Default: no limit (only the caller's signal or an
   * outer timeout ends the wait). Needs `maxQueue` > 0.
   */
  readonly queueTimeoutMs?: number;
  /** Clock for `queueTimeoutMs` (default: the system clock). */
  readonly clock?: Clock;
}

/** Why the bulkhead rejected a call. */
export type BulkheadRejectReason = 'full' | 'queue-timeout';

/** Payload of `onReject`. */
export interface BulkheadRejectEvent {
  /** `'full'`: no free slot and no queue space; `'queue-timeout'`: waited `queueTimeoutMs` in the queue. */
  readonly reason: BulkheadRejectReason;
}

const FULL: BulkheadRejectEvent = Object.freeze({ reason: 'full' });
const QUEUE_TIMEOUT: BulkheadRejectEvent = Object.freeze({ reason: 'queue-timeout' });

/**
 * A call waiting for a slot: a node of the queue's doubly linked list, so that
 * an aborted call leaves the queue in O(1) wherever it is. It is also the abort
 * listener on the call's scope signal while it waits.
 */
class QueuedCall<T> {
  prev: QueuedCall<unknown> | undefined = undefined;
  next: QueuedCall<unknown> | undefined = undefined;
  /** Still in the queue (neither started, aborted nor timed out). */
  waiting = true;
  /** When its queue wait expires (only with `queueTimeoutMs`). */
  deadline = 0;
  /** The scope signal listened to while waiting. */
  signal: AbortSignal | undefined = undefined;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  readonly owner: BulkheadPolicy;
  readonly chain: Chain<T>;
  readonly index: number;
  readonly scope: Scope | undefined;
  readonly attempt: number;
  /**
   * The caller's async context: the call starts when another call releases its
   * slot, or is refused from the queue timer, and goes on in this context rather
   * than theirs (AsyncLocalStorage, and so an OpenTelemetry span, stays its caller's).
   */
  readonly context = new AsyncResource('breakwater.bulkhead', { requireManualDestroy: true });

  constructor(owner: BulkheadPolicy, chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number) {
    this.owner = owner;
    this.chain = chain;
    this.index = index;
    this.scope = scope;
    this.attempt = attempt;
  }

  /** The scope aborted while waiting: leave the queue now. */
  handleEvent(): void {
    const signal = this.signal;
    if (!this.waiting || signal === undefined) return;
    this.owner._abandon(this as QueuedCall<unknown>);
    this.reject(signal.reason);
  }
}

/** A bulkhead policy; create it with {@link bulkhead}. */
export class BulkheadPolicy extends PolicyBase {
  /** Always `'bulkhead'`. */
  readonly kind = 'bulkhead';
  /** How many calls may wait for a slot. */
  readonly maxQueue: number;
  /** How long a call may wait in the queue, in ms (`undefined`: no limit). */
  readonly queueTimeoutMs: number | undefined;
  readonly #clock: Clock;
  #maxConcurrent: number;
  #active = 0;
  #queued = 0;
  #head: QueuedCall<unknown> | undefined = undefined;
  #tail: QueuedCall<unknown> | undefined = undefined;
  #timer: TimerHandle | undefined = undefined;
  readonly #reject = new Emitter<BulkheadRejectEvent>();
  // One pair of settle handlers per policy, shared by every call: no closure per call.
  readonly #settledOk = (value: unknown): unknown => {
    this._release();
    return value;
  };
  readonly #settledError = (error: unknown): never => {
    this._release();
    throw error;
  };

  /** Use {@link bulkhead} instead. @internal */
  constructor(options: BulkheadOptions) {
    super();
    this.#maxConcurrent = options.maxConcurrent;
    this.maxQueue = options.maxQueue ?? 0;
    this.queueTimeoutMs = options.queueTimeoutMs;
    this.#clock = options.clock ?? systemClock;
  }

  /** Calls running now. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a slot now. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * How many calls may run at once. Raising it starts queued calls at once;
   * lowering it lets running calls finish and starts no new one until the count
   * is below the new limit.
   */
  get maxConcurrent(): number {
    return this.#maxConcurrent;
  }

  set maxConcurrent(value: number) {
    integer(1)('bulkhead', 'maxConcurrent', value);
    this.#maxConcurrent = value;
    this.#drain();
  }

  /** Fires when a call is rejected, with the reason. */
  get onReject(): Event<BulkheadRejectEvent> {
    return this.#reject.subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return this.#active < this.#maxConcurrent && this.#queued === 0
      ? this.#start(chain, index, scope, attempt)
      : this.#enqueue(chain, index, scope, attempt);
  }

  /** Runs a call in a slot, which it releases when it settles. */
  #start<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    this.#active++;
    return this._runInSlot(chain, index, scope, attempt);
  }

  /**
   * What a call does once it holds a slot: the layers below, then `_release()`
   * when they settle. The adaptive limit's slots override it to time the call and
   * learn from its outcome before giving the slot back (src/adaptive-limit/policy.ts).
   * @internal
   */
  protected _runInSlot<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return chain.next(index + 1, scope, attempt).then(this.#settledOk, this.#settledError) as Promise<T>;
  }

  #enqueue<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    if (this.#queued >= this.maxQueue) {
      if (this.#reject.active) this.#reject.emit(FULL);
      return Promise.reject(new BulkheadRejectedError(this.#maxConcurrent, this.maxQueue, undefined, { pipeline: chain.pipeline }));
    }
    // Only a call that must wait reads the scope's signal (which may create it).
    let signal: AbortSignal | undefined;
    if (scope !== undefined) {
      signal = scope.signal;
      if (signal.aborted) return Promise.reject(signal.reason);
    }
    const call = new QueuedCall<T>(this, chain, index, scope, attempt);
    const promise = new Promise<T>((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
    });
    const node = call as QueuedCall<unknown>;
    const tail = this.#tail;
    node.prev = tail;
    if (tail === undefined) this.#head = node;
    else tail.next = node;
    this.#tail = node;
    this.#queued++;
    if (signal !== undefined) {
      call.signal = signal;
      watchAbort(signal, call);
    }
    if (this.queueTimeoutMs !== undefined) {
      call.deadline = this.#clock.now() + this.queueTimeoutMs;
      // Every call waits the same time, so deadlines come in queue order: one
      // timer, armed for the oldest waiting call, serves the whole queue.
      if (this.#timer === undefined) this.#timer = this.#clock.schedule(this.#expire, this.queueTimeoutMs);
    }
    return promise;
  }

  /** Unlinks a waiting call. @internal */
  _abandon(node: QueuedCall<unknown>): void {
    node.waiting = false;
    const { prev, next } = node;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    node.prev = undefined;
    node.next = undefined;
    if (node.signal !== undefined) {
      unwatchAbort(node.signal, node);
      node.signal = undefined;
    }
    if (--this.#queued === 0 && this.#timer !== undefined) {
      this.#clock.cancel(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Gives a slot back and starts the next waiting call. @internal */
  _release(): void {
    this.#active--;
    if (this.#head !== undefined) this.#drain();
  }

  /** Starts waiting calls while there are free slots. */
  #drain(): void {
    while (this.#active < this.#maxConcurrent) {
      const node = this.#head;
      if (node === undefined) return;
      this._abandon(node);
      node.context.runInAsyncScope(this.#startQueued, this, node);
    }
  }

  #startQueued(node: QueuedCall<unknown>): void {
    this.#start(node.chain, node.index, node.scope, node.attempt).then(node.resolve, node.reject);
  }

  #refuseQueued(node: QueuedCall<unknown>): void {
    if (this.#reject.active) this.#reject.emit(QUEUE_TIMEOUT);
    node.reject(
      new BulkheadRejectedError(
        this.#maxConcurrent,
        this.maxQueue,
        `the call waited ${this.queueTimeoutMs} ms in the bulkhead queue without getting a slot: it was not made`,
        { pipeline: node.chain.pipeline },
      ),
    );
  }

  /** The queue timer: rejects every call whose wait expired, then re-arms for the oldest one left. */
  readonly #expire = (): void => {
    this.#timer = undefined;
    const now = this.#clock.now();
    let node = this.#head;
    while (node !== undefined && node.deadline <= now) {
      this._abandon(node);
      node.context.runInAsyncScope(this.#refuseQueued, this, node);
      node = this.#head;
    }
    if (node !== undefined && this.#timer === undefined) {
      this.#timer = this.#clock.schedule(this.#expire, node.deadline - now);
    }
  };
}

/**
 * Limits how many calls run at once (`maxConcurrent`) and how many may wait for
 * a slot (`maxQueue`); beyond that, calls are rejected at once with
 * `BulkheadRejectedError`. A waiting call that is aborted, or that waits longer
 * than `queueTimeoutMs`, leaves the queue at once and its place goes to the next.
 *
 * ```ts
 * const db = bulkhead({ maxConcurrent: 10, maxQueue: 50, queueTimeoutMs: 1_000 });
 * ```
 */
export function bulkhead(options: BulkheadOptions): BulkheadPolicy {
  const owner = 'bulkhead';
  const checked = checkOptions<BulkheadOptions>(
    owner,
    options,
    {
      maxConcurrent: integer(1),
      maxQueue: integer(0, Number.MAX_SAFE_INTEGER, true),
      queueTimeoutMs: duration(1),
      clock: clockCheck,
    },
    ['maxConcurrent'],
    {
      limit: "cockatiel's bulkhead limit is maxConcurrent",
      queue: "cockatiel's bulkhead queue is maxQueue",
      concurrency: "p-limit's concurrency is maxConcurrent",
    },
  );
  checkQueueTimeout(owner, checked);
  return new BulkheadPolicy(checked as BulkheadOptions);
}

/** `queueTimeoutMs` needs a queue to wait in. @internal */
export function checkQueueTimeout(owner: string, checked: Pick<BulkheadOptions, 'maxQueue' | 'queueTimeoutMs'>): void {
  if (checked.queueTimeoutMs !== undefined && !(checked.maxQueue! > 0)) {
    throw new RangeError(
      `${owner}: option "queueTimeoutMs" needs a queue: set "maxQueue" above 0; received maxQueue ${received(checked.maxQueue ?? 0)}`,
    );
  }
}

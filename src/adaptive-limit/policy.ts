/**
 * The adaptive limit: a bulkhead whose limit follows the dependency. Calls over
 * the limit wait in the bulkhead's queue or are refused with
 * `BulkheadRejectedError`; every call that held a slot and succeeded, timed out
 * or was dropped teaches the limit algorithm (./algorithms.ts) something, and
 * the policy moves the bulkhead's `maxConcurrent` to what it learned.
 */
import { type BulkheadOptions, BulkheadPolicy, type BulkheadRejectEvent, checkQueueTimeout } from '../bulkhead.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { isTimeoutError } from '../core/errors.ts';
import { Emitter, type Event } from '../core/events.ts';
import { type Chain, PolicyBase, type Scope } from '../core/protocol.ts';
import { checkOptions, clock as clockCheck, duration, fn, integer, received, satisfies } from '../core/validate.ts';
import { isLimitAlgorithm, type LimitAlgorithm, type LimitLearner } from './algorithms.ts';

/** Options of {@link adaptiveLimit}. */
export interface AdaptiveLimitOptions {
  /** How the limit learns: `aimd({...})` or `gradient({...})`. Required. */
  readonly algorithm: LimitAlgorithm;
  /** The limit never falls below this (default 1). An integer from 1. */
  readonly minLimit?: number;
  /** The limit never rises above this (default 200). An integer from `minLimit`. */
  readonly maxLimit?: number;
  /** The limit to start from (default 20, brought within `[minLimit, maxLimit]`). An integer in that range. */
  readonly initialLimit?: number;
  /**
   * How many calls may wait for a slot (default 0: a call over the limit is
   * refused at once). An integer from 0, or `Infinity`. As the bulkhead's.
   */
  readonly maxQueue?: number;
  /** How long a call may wait in the queue, in ms (default: no limit). Needs `maxQueue` above 0. As the bulkhead's. */
  readonly queueTimeoutMs?: number;
  /**
   * True for an error that means the dependency dropped the call because it is
   * overloaded (an HTTP 429 or 503, say). Such calls lower the limit, as a
   * `TimeoutError` always does. Other errors teach the limit nothing; the
   * caller's own abort never does. Default: none besides timeouts.
   */
  readonly isDrop?: (error: unknown) => boolean;
  /** Clock to time calls and for `queueTimeoutMs` (default: the system clock). */
  readonly clock?: Clock;
}

/** The defaults of {@link adaptiveLimit}, in one visible place. */
export const ADAPTIVE_LIMIT_DEFAULTS: Readonly<Required<Pick<AdaptiveLimitOptions, 'minLimit' | 'maxLimit' | 'initialLimit' | 'maxQueue'>>> =
  Object.freeze({
    minLimit: 1,
    maxLimit: 200,
    initialLimit: 20,
    maxQueue: 0,
  });

/** Payload of `onLimitChange`. */
export interface LimitChangeEvent {
  /** The limit before. */
  readonly from: number;
  /** The limit now. */
  readonly to: number;
}

/** Rethrows a user callback's or a clock's exception on a later microtask, where the process's normal handling sees it. */
function surface(bug: unknown): void {
  queueMicrotask(() => {
    throw bug;
  });
}

/**
 * The policy's slots and queue: a bulkhead whose `maxConcurrent` the policy
 * moves, and whose calls it times while they hold a slot.
 */
class Slots extends BulkheadPolicy {
  readonly #owner: AdaptiveLimitPolicy;

  constructor(owner: AdaptiveLimitPolicy, options: BulkheadOptions) {
    super(options);
    this.#owner = owner;
  }

  protected override _runInSlot<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return this.#owner._measure(chain, index, scope, attempt);
  }
}

/** An adaptive concurrency limit; create it with {@link adaptiveLimit}. */
export class AdaptiveLimitPolicy extends PolicyBase {
  /** Always `'adaptive-limit'`. */
  readonly kind = 'adaptive-limit';
  /** How the limit learns. */
  readonly algorithm: LimitAlgorithm;
  /** The lowest the limit goes. */
  readonly minLimit: number;
  /** The highest the limit goes. */
  readonly maxLimit: number;
  readonly #slots: Slots;
  readonly #learner: LimitLearner;
  readonly #clock: Clock;
  readonly #isDrop: ((error: unknown) => boolean) | undefined;
  /** The limit as learned, fractional; the slots enforce its integer part. */
  #estimate: number;
  /** Bumped whenever the limit falls, so the algorithm can tell calls admitted under an older, higher limit. */
  #generation = 0;
  #limitChange: Emitter<LimitChangeEvent> | undefined; // created on first subscription

  /** Use {@link adaptiveLimit} instead. @internal */
  constructor(options: AdaptiveLimitOptions & typeof ADAPTIVE_LIMIT_DEFAULTS) {
    super();
    this.algorithm = options.algorithm;
    this.minLimit = options.minLimit;
    this.maxLimit = options.maxLimit;
    this.#learner = options.algorithm._learner();
    this.#clock = options.clock ?? systemClock;
    this.#isDrop = options.isDrop;
    this.#estimate = options.initialLimit;
    const { maxQueue, queueTimeoutMs } = options;
    this.#slots = new Slots(this, { maxConcurrent: options.initialLimit, maxQueue, queueTimeoutMs, clock: this.#clock });
  }

  /** How many calls may hold a slot now. */
  get limit(): number {
    return this.#slots.maxConcurrent;
  }

  /** Calls holding a slot now. Right after the limit falls it may exceed `limit`: running calls finish, and none starts until it is below. */
  get inFlight(): number {
    return this.#slots.active;
  }

  /** Calls waiting for a slot now. */
  get queued(): number {
    return this.#slots.queued;
  }

  /** How many calls may wait for a slot. */
  get maxQueue(): number {
    return this.#slots.maxQueue;
  }

  /** How long a call may wait in the queue, in ms (`undefined`: no limit). */
  get queueTimeoutMs(): number | undefined {
    return this.#slots.queueTimeoutMs;
  }

  /** Fires when the limit changes, with `{ from, to }`. */
  get onLimitChange(): Event<LimitChangeEvent> {
    return (this.#limitChange ??= new Emitter()).subscribe;
  }

  /** Fires when a call is refused: `{ reason: 'full' }` over the limit with no queue space, `{ reason: 'queue-timeout' }` after `queueTimeoutMs`. */
  get onReject(): Event<BulkheadRejectEvent> {
    return this.#slots.onReject;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return this.#slots._run(chain, index, scope, attempt);
  }

  /** A call got a slot: runs the layers below, learns from how they end, gives the slot back. @internal */
  _measure<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const startedAt = this.#learner.timed ? this.#now() : 0;
    const inFlight = this.#slots.active;
    const generation = this.#generation;
    return chain.next(index + 1, scope, attempt).then(
      (value) => {
        this.#learn(startedAt, inFlight, generation, false);
        this.#slots._release();
        return value;
      },
      (error: unknown) => {
        if (!chain.isCallerAbort(error) && this.#dropped(error)) this.#learn(startedAt, inFlight, generation, true);
        this.#slots._release();
        throw error;
      },
    );
  }

  /** Whether an error is a congestion signal. An `isDrop` that throws counts it as one; its exception surfaces on a microtask. */
  #dropped(error: unknown): boolean {
    if (isTimeoutError(error)) return true;
    const isDrop = this.#isDrop;
    if (isDrop === undefined) return false;
    try {
      return isDrop(error) === true;
    } catch (bug) {
      surface(bug);
      return true;
    }
  }

  /** The clock's time, or NaN if it throws (its exception surfaces on a microtask): a broken clock must not keep a slot. */
  #now(): number {
    try {
      return this.#clock.now();
    } catch (bug) {
      surface(bug);
      return NaN;
    }
  }

  /** Feeds one call to the algorithm and moves the limit to what it returns, within `[minLimit, maxLimit]`. */
  #learn(startedAt: number, inFlight: number, generation: number, dropped: boolean): void {
    const latencyMs = this.#learner.timed ? this.#now() - startedAt : 0;
    if (!(latencyMs >= 0)) return; // a clock that failed or went backwards teaches nothing
    const current = this.#estimate;
    let next = this.#learner.next(current, latencyMs, inFlight, dropped, generation === this.#generation);
    if (!(next >= this.minLimit)) next = next < this.minLimit ? this.minLimit : current; // NaN changes nothing
    else if (next > this.maxLimit) next = this.maxLimit;
    this.#estimate = next;
    const from = this.#slots.maxConcurrent;
    const to = Math.floor(next);
    if (to === from) return;
    if (to < from) this.#generation++;
    this.#slots.maxConcurrent = to;
    const emitter = this.#limitChange;
    if (emitter !== undefined && emitter.active) emitter.emit(Object.freeze({ from, to }));
  }
}

/**
 * A concurrency limit that follows the dependency: it falls when calls slow
 * down, time out or are dropped, and rises again while they succeed with the
 * limit in use. Calls over the limit wait in a queue (`maxQueue`,
 * `queueTimeoutMs`) or are refused at once with `BulkheadRejectedError`,
 * exactly as a bulkhead's are. See docs/reference/adaptive-limit.md.
 *
 * ```ts
 * const db = adaptiveLimit({ algorithm: gradient(), minLimit: 5, maxLimit: 100, maxQueue: 50 });
 * ```
 */
export function adaptiveLimit(options: AdaptiveLimitOptions): AdaptiveLimitPolicy {
  const owner = 'adaptiveLimit';
  const checked = checkOptions<AdaptiveLimitOptions>(
    owner,
    options,
    {
      algorithm: satisfies('an algorithm made by aimd() or gradient()', isLimitAlgorithm),
      minLimit: integer(1),
      maxLimit: integer(1),
      initialLimit: integer(1),
      maxQueue: integer(0, Number.MAX_SAFE_INTEGER, true),
      queueTimeoutMs: duration(1),
      isDrop: fn,
      clock: clockCheck,
    },
    ['algorithm'],
    {
      maxConcurrent: 'a fixed maxConcurrent is bulkhead(); an adaptive limit moves between minLimit and maxLimit',
      maxConcurrency: "concurrency-limits' maxConcurrency is maxLimit",
      limit: 'the limit moves between minLimit and maxLimit, starting from initialLimit',
    },
  );
  const minLimit = checked.minLimit ?? ADAPTIVE_LIMIT_DEFAULTS.minLimit;
  const maxLimit = checked.maxLimit ?? Math.max(minLimit, ADAPTIVE_LIMIT_DEFAULTS.maxLimit);
  if (maxLimit < minLimit) {
    throw new RangeError(`${owner}: option "maxLimit" must be at least minLimit (${minLimit}); received ${received(maxLimit)}`);
  }
  const initialLimit = checked.initialLimit ?? Math.min(maxLimit, Math.max(minLimit, ADAPTIVE_LIMIT_DEFAULTS.initialLimit));
  if (initialLimit < minLimit || initialLimit > maxLimit) {
    throw new RangeError(
      `${owner}: option "initialLimit" must be from minLimit (${minLimit}) to maxLimit (${maxLimit}); received ${received(initialLimit)}`,
    );
  }
  checkQueueTimeout(owner, checked);
  return new AdaptiveLimitPolicy({
    ...checked,
    algorithm: checked.algorithm!,
    minLimit,
    maxLimit,
    initialLimit,
    maxQueue: checked.maxQueue ?? ADAPTIVE_LIMIT_DEFAULTS.maxQueue,
  });
}

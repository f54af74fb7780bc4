/**
 * Hedging: when an attempt is slow, start another one in parallel and take the
 * first good result. Bounded by a budget of extra attempts, since every hedge
 * is extra load on the dependency.
 */
import { AsyncResource } from 'node:async_hooks';
import { unwatchAbort, watchAbort } from './core/abort.ts';
import { type Clock, systemClock, type TimerHandle } from './core/clock.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { checkNested, checkOptions, clock as clockCheck, duration, fn, integer, MAX_TIMER_MS, received, satisfies, share } from './core/validate.ts';
import type { RetryBudgetLike } from './retry-budget.ts';

/** A delay that follows the observed latency: a percentile of recent successful attempts. */
export interface HedgeDelay {
  /** Which percentile of recent successful attempts' durations, greater than 0 and below 1 (0.95: the p95). */
  readonly percentile: number;
  /** The shortest delay, in ms: a hedge never starts sooner (1 to 2,147,483,647). */
  readonly minMs: number;
  /**
   * The longest delay, in ms (default: none). Until enough attempts have been
   * observed (a quarter of `samples`), the delay is `maxMs`, or no hedge starts
   * when it is not given.
   */
  readonly maxMs?: number;
  /** How many recent successful attempts the percentile is taken over (default 200; 8 to 10,000). */
  readonly samples?: number;
}

/** Options of {@link hedge}. */
export interface HedgeOptions {
  /** How long an attempt may run before the next one starts: a number of ms (1 to 2,147,483,647), or a {@link HedgeDelay}. */
  readonly delayMs: number | HedgeDelay;
  /** Extra attempts per call at most (default 1; 1 to 10). */
  readonly maxHedges?: number;
  /**
   * Extra attempts as a share of calls (default 0.1, greater than 0, at most 1):
   * each call earns that much of a hedge, and a hedge spends one, so hedges never
   * exceed this share of the calls. Give this or `budget`, not both.
   */
  readonly maxExtraLoad?: number;
  /** A retry budget to draw hedges from instead (it can be the one your retries use). */
  readonly budget?: RetryBudgetLike;
  /**
   * Which errors are failed attempts that let another attempt win (default:
   * every error). An error it returns `false` for is the call's result at once.
   * The caller's own abort always ends the call.
   */
  readonly handle?: (error: unknown) => boolean;
  /** Clock for the delays (default: the system clock). */
  readonly clock?: Clock;
}

/** Payload of `onHedge`. */
export interface HedgeEvent {
  /** The attempt number of the hedge that starts. */
  readonly attempt: number;
  /** How long the call had been running, in ms. */
  readonly afterMs: number;
}

/** Payload of `onHedgeWon`. */
export interface HedgeWonEvent {
  /** The attempt number of the hedge whose result the call took. */
  readonly attempt: number;
}

/** The longest balance of the `maxExtraLoad` budget, in hedges: bounds a burst after a quiet spell. */
const MAX_BALANCE = 10;

const CONTEXT_OPTIONS = Object.freeze({ requireManualDestroy: true });

/** The reason a losing attempt's signal is aborted with. */
function lostError(): DOMException {
  return new DOMException('another attempt of this hedged call settled first', 'AbortError');
}

/** One attempt of a hedged call: the cancellation scope of the layers below, its controller made on first read. */
class Attempt implements Scope {
  readonly number: number;
  readonly startedAt: number;
  readonly #call: HedgedCall<unknown>;
  #controller: AbortController | undefined;
  #reason: unknown = undefined;
  #aborted = false;
  #watched: AbortSignal | undefined;

  constructor(call: HedgedCall<unknown>, number: number, startedAt: number) {
    this.#call = call;
    this.number = number;
    this.startedAt = startedAt;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = (this.#controller = new AbortController());
      const parent = this.#call.parentSignal();
      if (this.#aborted) controller.abort(this.#reason);
      else if (parent !== undefined && parent.aborted) controller.abort(parent.reason);
      else if (parent !== undefined) watchAbort((this.#watched = parent), this);
    }
    return this.#controller.signal;
  }

  /** The parent scope aborted: pass its reason down. */
  handleEvent(): void {
    const parent = this.#watched;
    this.#watched = undefined;
    if (parent !== undefined) this.abort(parent.reason);
  }

  /** Stops this attempt (it lost, or the call ended): aborts its signal, now or when it is read. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.release();
    this.#controller?.abort(reason);
  }

  /** Stops listening to the parent scope. */
  release(): void {
    if (this.#watched !== undefined) {
      unwatchAbort(this.#watched, this);
      this.#watched = undefined;
    }
  }
}

/** A hedge due at `dueAt` for `call`, unless the call settled first. */
interface Pending {
  readonly call: HedgedCall<unknown>;
  readonly dueAt: number;
  live: boolean;
}

/**
 * The pending hedges of one policy, in due order, served by one timer. The
 * timer never holds the process open: the attempt a hedge backs up does that
 * (its socket, its timer), and a process whose work holds nothing open would
 * not be kept alive by starting a copy of it. So when nothing is pending the
 * timer is left armed, and calls made one after another neither pay a timer
 * each nor reference and unreference it.
 */
class HedgeTimers {
  readonly #clock: Clock;
  #entries: Pending[] = [];
  #head = 0;
  #live = 0;
  #timer: TimerHandle | undefined = undefined;
  /** When the armed timer fires. */
  #timerAt = Infinity;
  /** Due hedges are being started: their calls may add and remove entries meanwhile. */
  #firing = false;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  add(call: HedgedCall<unknown>, now: number, delayMs: number): Pending {
    const entry: Pending = { call, dueAt: now + delayMs, live: true };
    const entries = this.#entries;
    let at = entries.length;
    while (at > this.#head && entries[at - 1]!.dueAt > entry.dueAt) at--; // a shorter delay than the last: rare
    if (at === entries.length) entries.push(entry);
    else entries.splice(at, 0, entry);
    this.#live++;
    // An armed timer due no later serves this entry too: if it fires first, it finds nothing due and re-arms.
    if (this.#timer === undefined || this.#timerAt > entry.dueAt) this.#rearm(entry.dueAt, now);
    return entry;
  }

  remove(entry: Pending): void {
    if (!entry.live) return;
    entry.live = false;
    const entries = this.#entries;
    if (!this.#firing) while (entries.length > this.#head && !entries[entries.length - 1]!.live) entries.pop(); // the newest entry goes first, mostly
    if (--this.#live === 0 && !this.#firing) this.#quiet();
  }

  /**
   * Nothing is pending: forget the entries. The timer stays armed, unreferenced;
   * a clock that cannot unreference timers has it cancelled instead.
   */
  #quiet(): void {
    if (this.#entries.length !== 0) this.#entries = [];
    this.#head = 0;
    if (this.#timer !== undefined && this.#clock.keepAlive === undefined) {
      this.#clock.cancel(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  #rearm(dueAt: number, now: number): void {
    if (this.#timer !== undefined) this.#clock.cancel(this.#timer);
    this.#timerAt = dueAt;
    const timer = (this.#timer = this.#clock.schedule(this.#fire, Math.min(MAX_TIMER_MS, Math.max(0, dueAt - now))));
    this.#clock.keepAlive?.(timer, false);
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    this.#firing = true;
    try {
      while (this.#head < this.#entries.length && this.#entries[this.#head]!.dueAt <= now) {
        const entry = this.#entries[this.#head++]!;
        if (!entry.live) continue;
        entry.live = false;
        this.#live--;
        entry.call.due(now);
      }
    } finally {
      this.#firing = false;
    }
    while (this.#head < this.#entries.length && !this.#entries[this.#head]!.live) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    const next = this.#entries[this.#head];
    if (next === undefined) this.#quiet();
    else if (this.#timer === undefined || this.#timerAt > next.dueAt) {
      this.#rearm(next.dueAt, this.#clock.now());
    }
  };
}

/** One call under a hedge policy: its attempts, the pending hedge, and the one settlement. */
class HedgedCall<T> {
  readonly #policy: HedgePolicy;
  readonly #chain: Chain<T>;
  readonly #index: number;
  readonly #parent: Scope | undefined;
  readonly #first: number;
  readonly #startedAt: number;
  /** Every attempt started, the first one first. */
  readonly #attempts: Attempt[];
  #inFlight = 0;
  #settled = false;
  #pending: Pending | undefined = undefined;
  /** The parent signal watched while a hedge is pending. */
  #watching: AbortSignal | undefined = undefined;
  /**
   * The caller's async context, captured when the first hedge is armed: hedges
   * start from the policy's one timer, which runs in whatever context armed it,
   * so a hedged attempt runs in this one instead (AsyncLocalStorage, and so an
   * OpenTelemetry span, is then its caller's, as for the first attempt).
   */
  #context: AsyncResource | undefined = undefined;
  #lastError: unknown = undefined;
  #resolve!: (value: T) => void;
  #reject!: (error: unknown) => void;

  constructor(policy: HedgePolicy, chain: Chain<T>, index: number, parent: Scope | undefined, attempt: number, now: number) {
    this.#policy = policy;
    this.#chain = chain;
    this.#index = index;
    this.#parent = parent;
    this.#first = attempt;
    this.#startedAt = now;
    this.#attempts = [new Attempt(this as HedgedCall<unknown>, attempt, now)];
  }

  parentSignal(): AbortSignal | undefined {
    return this.#parent?.signal;
  }

  start(): Promise<T> {
    const promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#run(this.#attempts[0]!);
    this.#arm(this.#startedAt);
    return promise;
  }

  /** Starts a hedge: the next attempt. */
  #launch(now: number): void {
    const attempt = new Attempt(this as HedgedCall<unknown>, this.#first + this.#attempts.length, now);
    this.#attempts.push(attempt);
    this.#run(attempt);
  }

  /** Runs the layers below as `attempt`. */
  #run(attempt: Attempt): void {
    this.#inFlight++;
    this.#chain.next(this.#index + 1, attempt, attempt.number).then(
      (value) => this.#succeeded(attempt, value),
      (error: unknown) => this.#failed(attempt, error),
    );
  }

  /** Schedules the next hedge, if the call may have one. */
  #arm(now: number): void {
    if (this.#settled || this.#attempts.length > this.#policy.maxHedges) return;
    const delayMs = this.#policy.delay();
    if (delayMs === Infinity) return;
    if (this.#parent !== undefined && this.#watching === undefined) {
      const signal = this.#parent.signal;
      if (signal.aborted) return; // the attempts see it through their own signals
      watchAbort((this.#watching = signal), this);
    }
    this.#context ??= new AsyncResource('breakwater.hedge', CONTEXT_OPTIONS);
    this.#pending = this.#policy.timers.add(this as HedgedCall<unknown>, now, delayMs);
  }

  /** The hedge is due (called by the policy's timers): goes on in the caller's async context. */
  due(now: number): void {
    this.#context!.runInAsyncScope(this.#due, this, now);
  }

  #due(now: number): void {
    this.#pending = undefined;
    if (this.#settled) return;
    if (this.#policy.spend(this.#first + this.#attempts.length, now - this.#startedAt)) {
      this.#launch(now);
      this.#arm(now);
    } else {
      this.#unwatch();
    }
  }

  /** The parent scope aborted while a hedge timer was pending: the call ends with its reason. */
  handleEvent(): void {
    const signal = this.#watching;
    this.#watching = undefined;
    if (signal !== undefined) this.#settle(false, signal.reason, undefined, signal.reason);
  }

  #succeeded(attempt: Attempt, value: T): void {
    if (this.#settled) return; // a loser's late result
    this.#inFlight--;
    if (this.#policy.learns) this.#policy.observe(this.#policy.clock.now() - attempt.startedAt);
    if (attempt.number !== this.#first) this.#policy.won(attempt.number);
    this.#settle(true, value, attempt);
  }

  #failed(attempt: Attempt, error: unknown): void {
    if (this.#settled) return; // a loser's late failure: observed, ignored
    this.#inFlight--;
    if (this.#chain.isCallerAbort(error) || !this.#policy.handles(error)) {
      this.#settle(false, error, attempt, this.#chain.isCallerAbort(error) ? error : undefined);
      return;
    }
    this.#lastError = error;
    if (this.#inFlight > 0) return; // another attempt may still win
    // Nothing left running: hedge at once if the call may (and the layer above still wants it), otherwise that was the last word.
    if (this.#parent !== undefined && this.#parent.signal.aborted) {
      this.#settle(false, error, attempt);
      return;
    }
    const now = this.#policy.clock.now();
    if (this.#attempts.length <= this.#policy.maxHedges && this.#policy.spend(this.#first + this.#attempts.length, now - this.#startedAt)) {
      this.#cancelTimer();
      this.#launch(now);
      this.#arm(now);
      return;
    }
    this.#settle(false, this.#lastError, attempt);
  }

  /**
   * Settles the call once, and stops every other attempt and the timer. The
   * others are aborted with `reason` when the call ends on an abort (so it passes
   * through unchanged), otherwise with an `AbortError` saying another attempt won.
   */
  #settle(ok: boolean, result: unknown, winner: Attempt | undefined, reason?: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cancelTimer();
    this.#unwatch();
    for (const attempt of this.#attempts) {
      if (attempt === winner) attempt.release();
      else attempt.abort((reason ??= lostError()));
    }
    if (ok) this.#resolve(result as T);
    else this.#reject(result);
  }

  #cancelTimer(): void {
    if (this.#pending !== undefined) {
      this.#policy.timers.remove(this.#pending);
      this.#pending = undefined;
    }
  }

  #unwatch(): void {
    if (this.#watching !== undefined) {
      unwatchAbort(this.#watching, this);
      this.#watching = undefined;
    }
  }
}

/** A hedging policy; create it with {@link hedge}. */
export class HedgePolicy extends PolicyBase {
  /** Always `'hedge'`. */
  readonly kind = 'hedge';
  /** Extra attempts per call at most. */
  readonly maxHedges: number;
  /** The share of calls that may get a hedge (`undefined` when a `budget` is used). */
  readonly maxExtraLoad: number | undefined;
  /** The shared budget, if one was given. */
  readonly budget: RetryBudgetLike | undefined;
  /** @internal */
  readonly clock: Clock;
  /** @internal */
  readonly timers: HedgeTimers;
  readonly #fixedMs: number | undefined;
  readonly #dynamic: Required<HedgeDelay> | undefined;
  readonly #handle: ((error: unknown) => boolean) | undefined;
  /** Recent successful attempts' durations, a ring (dynamic delay only). */
  readonly #samples: Float64Array | undefined;
  /** Where the percentile is selected, so the samples keep their order and nothing is allocated. */
  readonly #scratch: Float64Array | undefined;
  #sampled = 0;
  #sinceRecompute = 0;
  #observedMs = Infinity;
  /** Hedges earned and not spent (the `maxExtraLoad` budget). */
  #balance = 0;
  #hedge: Emitter<HedgeEvent> | undefined;
  #won: Emitter<HedgeWonEvent> | undefined;
  #refused: Emitter<HedgeEvent> | undefined;

  /** Use {@link hedge} instead. @internal */
  constructor(options: HedgeOptions) {
    super();
    this.maxHedges = options.maxHedges ?? 1;
    this.budget = options.budget;
    this.maxExtraLoad = this.budget === undefined ? (options.maxExtraLoad ?? 0.1) : undefined;
    this.clock = options.clock ?? systemClock;
    this.timers = new HedgeTimers(this.clock);
    this.#handle = options.handle;
    const delay = options.delayMs;
    if (typeof delay === 'number') this.#fixedMs = delay;
    else {
      this.#dynamic = { percentile: delay.percentile, minMs: delay.minMs, maxMs: delay.maxMs ?? Infinity, samples: delay.samples ?? 200 };
      this.#samples = new Float64Array(this.#dynamic.samples);
      this.#scratch = new Float64Array(this.#dynamic.samples);
    }
  }

  /** Fires when a hedge starts. */
  get onHedge(): Event<HedgeEvent> {
    return (this.#hedge ??= new Emitter()).subscribe;
  }

  /** Fires when a hedge's result is the one the call took. */
  get onHedgeWon(): Event<HedgeWonEvent> {
    return (this.#won ??= new Emitter()).subscribe;
  }

  /** Fires when a hedge was due but the budget had none left, so it did not start. */
  get onBudgetExhausted(): Event<HedgeEvent> {
    return (this.#refused ??= new Emitter()).subscribe;
  }

  /**
   * The delay before the next hedge now, in ms: the fixed delay, or the observed
   * percentile between `minMs` and `maxMs` (`Infinity`: no hedge yet).
   */
  get currentDelayMs(): number {
    return this.delay();
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    if (this.budget !== undefined) this.budget.recordFirstAttempt();
    else this.#balance = Math.min(MAX_BALANCE, this.#balance + this.maxExtraLoad!);
    return new HedgedCall<T>(this, chain, index, scope, attempt, this.clock.now()).start();
  }

  /** @internal */
  delay(): number {
    if (this.#fixedMs !== undefined) return this.#fixedMs;
    const d = this.#dynamic!;
    const observed = this.#observedMs === Infinity ? d.maxMs : this.#observedMs;
    if (observed === Infinity) return Infinity; // nothing known yet and no cap: no hedge
    return Math.min(MAX_TIMER_MS, Math.max(d.minMs, Math.min(observed, d.maxMs)));
  }

  /** Takes one hedge from the budget; fires the events. @internal */
  spend(attempt: number, afterMs: number): boolean {
    let granted: boolean;
    if (this.budget !== undefined) granted = this.budget.tryRetry();
    else if ((granted = this.#balance >= 1)) this.#balance -= 1;
    const emitter = granted ? this.#hedge : this.#refused;
    if (emitter !== undefined && emitter.active) emitter.emit({ attempt, afterMs });
    return granted;
  }

  /** @internal */
  won(attempt: number): void {
    const emitter = this.#won;
    if (emitter !== undefined && emitter.active) emitter.emit({ attempt });
  }

  /** @internal */
  handles(error: unknown): boolean {
    return this.#handle === undefined || this.#handle(error) === true;
  }

  /** Whether the delay follows the observed latency (then successful attempts are timed). @internal */
  get learns(): boolean {
    return this.#samples !== undefined;
  }

  /** Records a successful attempt's duration (dynamic delay only); recomputes the percentile now and then. @internal */
  observe(durationMs: number): void {
    const samples = this.#samples;
    if (samples === undefined) return;
    samples[this.#sampled++ % samples.length] = durationMs;
    const held = Math.min(this.#sampled, samples.length);
    if (held < samples.length >> 2) return; // too few to say
    if (++this.#sinceRecompute < Math.max(1, samples.length >> 4) && this.#observedMs !== Infinity) return;
    this.#sinceRecompute = 0;
    const scratch = this.#scratch!;
    scratch.set(held === samples.length ? samples : samples.subarray(0, held));
    this.#observedMs = nthSmallest(scratch, held, Math.min(held - 1, Math.ceil(this.#dynamic!.percentile * held) - 1));
  }
}

/**
 * The `k`-th smallest (from 0) of `values[0..n)`, found by Hoare's selection in
 * O(n) on average; reorders those values. Sorting them instead cost about a
 * microsecond per call of a hedge with a percentile delay. @internal
 */
export function nthSmallest(values: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        const t = values[i]!;
        values[i++] = values[j]!;
        values[j--] = t;
      }
    }
    // Now values[lo..j] <= pivot <= values[i..hi], and anything between equals the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return values[k]!;
  }
  return values[k]!;
}

function checkDelay(value: unknown): number | HedgeDelay {
  if (typeof value === 'number') {
    duration(1)('hedge', 'delayMs', value);
    return value;
  }
  satisfies('a number of ms or { percentile, minMs, maxMs?, samples? }', (v) => typeof v === 'object' && v !== null)('hedge', 'delayMs', value);
  const d = checkNested<HedgeDelay>(
    'hedge',
    'delayMs',
    value,
    { percentile: share(false), minMs: duration(1), maxMs: duration(1), samples: integer(8, 10_000) },
    ['percentile', 'minMs'],
  );
  if (d.maxMs !== undefined && d.maxMs < d.minMs!) {
    throw new RangeError(`hedge: option "delayMs.maxMs" must be at least delayMs.minMs (${d.minMs}); received ${received(d.maxMs)}`);
  }
  return value as HedgeDelay;
}

/**
 * Starts a backup attempt when an attempt has not settled after `delayMs`, at
 * most `maxHedges` per call and within a budget of extra load; the first result
 * that is not a failed attempt wins, and the others' signals are aborted at once.
 * For idempotent work only: several attempts of one call may run at the same time.
 *
 * ```ts
 * const search = pipeline({ name: 'search' }, hedge({ delayMs: { percentile: 0.95, minMs: 20 } }), timeout({ ms: 1_000 }));
 * ```
 */
export function hedge(options: HedgeOptions): HedgePolicy {
  const checked = checkOptions<HedgeOptions>(
    'hedge',
    options,
    {
      delayMs: (_owner, _key, value) => void checkDelay(value),
      maxHedges: integer(1, 10),
      maxExtraLoad: share(),
      budget: satisfies(
        'a RetryBudget (from retryBudget() or fleetRetryBudget())',
        (v) => typeof v === 'object' && v !== null && typeof (v as RetryBudgetLike).recordFirstAttempt === 'function' && typeof (v as RetryBudgetLike).tryRetry === 'function',
      ),
      handle: fn,
      clock: clockCheck,
    },
    ['delayMs'],
  );
  if (checked.budget !== undefined && checked.maxExtraLoad !== undefined) {
    throw new TypeError('hedge: give option "maxExtraLoad" or option "budget", not both; received both');
  }
  return new HedgePolicy(checked as HedgeOptions);
}

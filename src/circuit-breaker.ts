/**
 * The circuit breaker: stops calling a dependency that keeps failing, gives it
 * time to recover, then lets a few probe calls decide whether to resume.
 *
 * Cost model (see docs/reference/circuit-breaker.md): recording a result is O(1)
 * whatever the window size; an open breaker rejects with one small error object
 * built without a stack trace; no timer exists, ever (open → half-open is decided
 * when the next call or `state` read comes); a breaker holds about 1 KB.
 */
import { type Schedule, sanitizeDelay } from './backoff.ts';
import { CountWindow, FAILURE, SLOW, TimeWindow, type Window } from './breaker/window.ts';
import { type Clock, type RandomSource, systemClock, systemRandom } from './clock.ts';
import { BrokenCircuitError, IsolatedCircuitError, isRejection } from './errors.ts';
import { Emitter, type Event } from './events.ts';
import { PolicyBase } from './pipeline.ts';
import { type Chain, type Scope, settleWith, start } from './policy.ts';
import { userCodeRuns } from './moment.ts';
import {
  type Check,
  checkOptions,
  clock as clockCheck,
  duration,
  either,
  fn,
  integer,
  oneOf,
  received,
  satisfies,
} from './validate.ts';

/** The state of a circuit breaker. */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/**
 * Why a breaker changed state:
 * - `'failure-rate'`, `'slow-call-rate'`: closed → open, a rate reached its threshold;
 * - `'cooldown-elapsed'`: open → half-open, the open period is over;
 * - `'probes-succeeded'`: half-open → closed;
 * - `'probe-failed'`, `'probe-slow'`: half-open → open;
 * - `'isolated'`: → isolated, by {@link CircuitBreakerPolicy.isolate};
 * - `'released'`: isolated → closed, the last isolation handle was released;
 * - `'reset'`: → closed, by {@link CircuitBreakerPolicy.reset}.
 */
export type StateChangeReason =
  | 'failure-rate'
  | 'slow-call-rate'
  | 'cooldown-elapsed'
  | 'probes-succeeded'
  | 'probe-failed'
  | 'probe-slow'
  | 'isolated'
  | 'released'
  | 'reset';

/** A time-based window: the calls of the last `ms`, counted in `buckets` buckets. */
export interface TimeWindowOptions {
  readonly kind: 'time';
  /** Length of the window in ms (default 10,000). A multiple of `buckets`. */
  readonly ms?: number;
  /**
   * Number of buckets the window is kept in (default 10, at most 1,000). The
   * oldest bucket expires as a whole, so the window holds between
   * `ms − ms / buckets` and `ms` of history.
   */
  readonly buckets?: number;
}

/** A count-based window: the last `calls` calls, however old. */
export interface CountWindowOptions {
  readonly kind: 'count';
  /** How many of the most recent calls the window holds (1 to 100,000). */
  readonly calls: number;
}

/** Options of {@link circuitBreaker}. Every option is optional. */
export interface CircuitBreakerOptions {
  /**
   * The breaker opens when the share of failures among the calls in the window
   * reaches this value (and at least `minimumCalls` calls are in it). Greater
   * than 0, at most 1. Default 0.5.
   */
  readonly failureRateThreshold?: number;
  /** Calls the window must hold before a rate can open the breaker. At least 1. Default 20. */
  readonly minimumCalls?: number;
  /** Which calls the rates are computed over. Default `{ kind: 'time', ms: 10_000, buckets: 10 }`. */
  readonly window?: TimeWindowOptions | CountWindowOptions;
  /** A call that takes `slowCallMs` or longer is slow. Give it together with `slowCallRateThreshold`. */
  readonly slowCallMs?: number;
  /**
   * The breaker opens when the share of slow calls (successful or not) reaches
   * this value. Greater than 0, at most 1. Give it together with `slowCallMs`.
   */
  readonly slowCallRateThreshold?: number;
  /**
   * Decides which errors count as failures. An error it returns `false` for is
   * neither a failure nor a success: it does not enter the statistics at all.
   * Default: every error except Breakwater's own rejections (`isRejection`).
   * The caller's own abort never counts, whatever `handle` says.
   */
  readonly handle?: (error: unknown) => boolean;
  /**
   * How long the breaker stays open before it admits probes, in ms (default
   * 5,000), or a backoff schedule (`exponential(...)`, `constant(...)`, any
   * {@link Schedule}) called with the number of consecutive openings, so a
   * breaker that keeps reopening waits longer each time.
   */
  readonly halfOpenAfterMs?: number | Schedule;
  /** How many probe calls may run at once while half-open (default 1). */
  readonly halfOpenProbes?: number;
  /**
   * How many probes must succeed, in total, for the breaker to close (default:
   * `halfOpenProbes`). One failed probe reopens it.
   */
  readonly successesToClose?: number;
  /** Time source (default: the system clock). Pass a `FakeClock` in tests. */
  readonly clock?: Clock;
  /** Random source handed to a `halfOpenAfterMs` schedule (default `Math.random`). */
  readonly random?: RandomSource;
  /** State to start from, as returned by {@link CircuitBreakerPolicy.toJSON} (default: closed). */
  readonly initialState?: CircuitBreakerSnapshot;
}

/**
 * A breaker's state in a form that survives a restart (JSON-safe). Times are
 * durations, not clock readings, because a restarted process has a new clock.
 */
export interface CircuitBreakerSnapshot {
  /** An isolated breaker is saved as `'closed'`: isolation belongs to whoever holds the handle. */
  readonly state: 'closed' | 'open' | 'half-open';
  /** When `'open'`: ms left until the breaker admits probes. Otherwise 0. Default 0. */
  readonly retryAfterMs?: number;
  /**
   * Openings since the breaker last closed: the attempt number the backoff
   * schedule was last called with. Default 1 when open or half-open, else 0.
   */
  readonly consecutiveOpens?: number;
  /** The length of the last open period in ms (the schedule's previous delay). Default 0. */
  readonly lastOpenMs?: number;
}

/** Payload of `onStateChange`. */
export interface StateChangeEvent {
  /** The state the breaker left. */
  readonly from: CircuitState;
  /** The state the breaker entered. */
  readonly to: CircuitState;
  /** Why. */
  readonly reason: StateChangeReason;
}

/** Payload of `onReject`. */
export interface CircuitRejectEvent {
  /** The state that refused the call. */
  readonly state: 'open' | 'half-open' | 'isolated';
  /** The error the call was rejected with. */
  readonly error: BrokenCircuitError | IsolatedCircuitError;
}

/** Payload of `onSuccess`. */
export interface CircuitSuccessEvent {
  /** How long the call took, in ms. */
  readonly durationMs: number;
}

/** Payload of `onFailure`. */
export interface CircuitFailureEvent {
  /** How long the call took, in ms. */
  readonly durationMs: number;
  /** The error, one that `handle` counts as a failure. */
  readonly error: unknown;
}

/** Returned by {@link CircuitBreakerPolicy.isolate}. */
export interface IsolationHandle {
  /** Ends this isolation; the breaker closes once every isolation is released. Idempotent. */
  release(): void;
}

/** The defaults of {@link circuitBreaker}, in one visible place. */
export const CIRCUIT_BREAKER_DEFAULTS = Object.freeze({
  failureRateThreshold: 0.5,
  minimumCalls: 20,
  window: Object.freeze({ kind: 'time', ms: 10_000, buckets: 10 } as const),
  halfOpenAfterMs: 5_000,
  halfOpenProbes: 1,
  /** Every error except Breakwater's rejections (a full bulkhead is not a failing dependency). */
  handle: (error: unknown): boolean => !isRejection(error),
});

/** How a settled call is classified before the statistics see it. */
const SUCCEEDED = 0;
const FAILED = 1;
const IGNORED = 2;

const OPEN_MESSAGE = 'the circuit is open: the call was not made';
const HALF_OPEN_MESSAGE = 'the circuit is half-open and every probe slot is taken: the call was not made';

/**
 * Builds a rejection error without capturing a stack trace: `new Error()` costs
 * microseconds, nearly all of it stack capture, and the stack of a refusal points into
 * the breaker, not at a fault. The message, `code` and `retryAfterMs` say it all.
 */
function broken(retryAfterMs: number, message: string): BrokenCircuitError {
  return stackless(() => new BrokenCircuitError(retryAfterMs, message));
}

/** The isolated-circuit refusal, built without a stack trace like {@link broken}. */
function isolated(): IsolatedCircuitError {
  return stackless(() => new IsolatedCircuitError());
}

/** Builds an error with stack capture off, restoring the limit whatever happens. */
function stackless<E extends Error>(make: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Settings a breaker is built from, once validated. @internal */
interface Settings {
  readonly failureRateThreshold: number;
  readonly minimumCalls: number;
  readonly window: { readonly kind: 'time'; readonly ms: number; readonly buckets: number } | { readonly kind: 'count'; readonly calls: number };
  readonly slowCallMs: number; // 0: off
  readonly slowCallRateThreshold: number; // 0: off
  readonly handle: (error: unknown) => boolean;
  readonly halfOpenAfterMs: number | Schedule;
  readonly halfOpenProbes: number;
  readonly successesToClose: number;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly initialState: CircuitBreakerSnapshot | undefined;
}

/**
 * A circuit breaker; create it with {@link circuitBreaker}.
 *
 * - **closed**: calls run; their results enter the window. When at least
 *   `minimumCalls` calls are in the window and the failure rate (or slow-call
 *   rate) reaches its threshold, the breaker opens.
 * - **open**: calls are rejected at once with `BrokenCircuitError`. After the
 *   open period, the next call or `state` read finds the breaker half-open.
 * - **half-open**: up to `halfOpenProbes` calls run at once as probes, every
 *   other call is rejected at once. `successesToClose` successful probes close
 *   the breaker; one failed (or slow) probe reopens it.
 * - **isolated**: `isolate()` holds the breaker open by hand: calls are rejected
 *   with `IsolatedCircuitError` until every handle is released.
 *
 * Every transition starts a new generation: a call that started before it
 * settles without touching the new state.
 */
export class CircuitBreakerPolicy extends PolicyBase {
  /** Always `'circuit-breaker'`. */
  readonly kind = 'circuit-breaker';

  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #handle: (error: unknown) => boolean;
  readonly #failureRateThreshold: number;
  readonly #slowCallRateThreshold: number;
  readonly #slowCallMs: number;
  readonly #minimumCalls: number;
  readonly #halfOpenAfterMs: number | Schedule;
  readonly #halfOpenProbes: number;
  readonly #successesToClose: number;
  readonly #window: Window;

  #state: CircuitState = 'closed';
  /** Bumped on every transition and reset: results of older calls are ignored. */
  #generation = 0;
  /** Clock time at which an open breaker becomes half-open. */
  #openUntil = 0;
  /** Probes in flight in the current half-open generation. */
  #probes = 0;
  /** Successful probes in the current half-open generation. */
  #probeSuccesses = 0;
  /** Isolation handles not yet released. */
  #isolations = 0;
  /** Openings since the breaker last closed (the schedule's attempt number). */
  #consecutiveOpens = 0;
  /** The last open period in ms (the schedule's previous delay). */
  #lastOpenMs = 0;

  // Emitters are created on first subscription: an unobserved breaker holds none.
  #stateChange: Emitter<StateChangeEvent> | undefined;
  #reject: Emitter<CircuitRejectEvent> | undefined;
  #success: Emitter<CircuitSuccessEvent> | undefined;
  #failure: Emitter<CircuitFailureEvent> | undefined;

  /** Use {@link circuitBreaker} instead. @internal */
  constructor(settings: Settings) {
    super();
    this.#clock = settings.clock;
    this.#random = settings.random;
    this.#handle = settings.handle;
    this.#failureRateThreshold = settings.failureRateThreshold;
    this.#slowCallRateThreshold = settings.slowCallRateThreshold;
    this.#slowCallMs = settings.slowCallMs;
    this.#minimumCalls = settings.minimumCalls;
    this.#halfOpenAfterMs = settings.halfOpenAfterMs;
    this.#halfOpenProbes = settings.halfOpenProbes;
    this.#successesToClose = settings.successesToClose;
    const window = settings.window;
    this.#window =
      window.kind === 'count' ? new CountWindow(window.calls) : new TimeWindow(window.ms, window.buckets, this.#clock.now());
    const initial = settings.initialState;
    if (initial !== undefined && initial.state !== 'closed') {
      this.#state = initial.state;
      this.#consecutiveOpens = initial.consecutiveOpens ?? 1;
      this.#lastOpenMs = initial.lastOpenMs ?? 0;
      if (initial.state === 'open') this.#openUntil = this.#clock.now() + (initial.retryAfterMs ?? 0);
    }
  }

  /**
   * The current state. Evaluated when read: an open breaker whose open period
   * is over reads as `'half-open'` (and that transition is emitted then), so a
   * metrics scrape always sees the truth without any timer running.
   */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#clock.now() >= this.#openUntil) this.#transition('half-open', 'cooldown-elapsed');
    return this.#state;
  }

  /** Fires on every state change with `{ from, to, reason }`. */
  get onStateChange(): Event<StateChangeEvent> {
    return (this.#stateChange ??= new Emitter()).subscribe;
  }

  /** Fires when a call is refused (open, half-open with every probe slot taken, or isolated). */
  get onReject(): Event<CircuitRejectEvent> {
    return (this.#reject ??= new Emitter()).subscribe;
  }

  /**
   * Fires when a call the breaker let through succeeds, with its duration.
   * Calls are only timed while someone listens (or slow-call detection is on):
   * a call already running when the first listener subscribes is not reported.
   */
  get onSuccess(): Event<CircuitSuccessEvent> {
    return (this.#success ??= new Emitter()).subscribe;
  }

  /** Fires when a call the breaker let through fails with an error `handle` counts; same timing rule as `onSuccess`. */
  get onFailure(): Event<CircuitFailureEvent> {
    return (this.#failure ??= new Emitter()).subscribe;
  }

  /**
   * The manual kill switch: from now on every call is rejected with
   * `IsolatedCircuitError`, until the returned handle is released. Isolations
   * nest: the breaker stays isolated until every handle is released, then it
   * closes with empty statistics.
   */
  isolate(): IsolationHandle {
    if (this.#isolations++ === 0) this.#transition('isolated', 'isolated');
    let released = false;
    return Object.freeze({
      release: (): void => {
        if (released) return;
        released = true;
        if (--this.#isolations === 0) this.#close('released');
      },
    });
  }

  /**
   * Closes the breaker and forgets its statistics and its backoff progress.
   * Calls in flight no longer count. An isolated breaker stays isolated: only
   * releasing every handle ends an isolation (and that closes it anyway).
   */
  reset(): void {
    this.#consecutiveOpens = 0;
    this.#lastOpenMs = 0;
    if (this.#state === 'isolated') return;
    if (this.#state === 'closed') {
      this.#generation++;
      this.#window.clear(this.#window.needsNow ? this.#clock.now() : 0);
    } else {
      this.#close('reset');
    }
  }

  /**
   * The state to persist, for the `initialState` option of a breaker created
   * after a restart. `JSON.stringify(breaker)` calls it. The window's counts are
   * not saved: a restored breaker starts with an empty window.
   */
  toJSON(): CircuitBreakerSnapshot {
    const state = this.state;
    if (state === 'isolated' || state === 'closed') {
      return { state: 'closed', retryAfterMs: 0, consecutiveOpens: 0, lastOpenMs: 0 };
    }
    const retryAfterMs = state === 'open' ? Math.max(0, Math.ceil(this.#openUntil - this.#clock.now())) : 0;
    return { state, retryAfterMs, consecutiveOpens: this.#consecutiveOpens, lastOpenMs: this.#lastOpenMs };
  }

  /** Trust marker of the built-in policies (see `settlesPromptly` in policy.ts). @internal */
  _settlesPromptly(): void {}

  /** @internal */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    let probe = false;
    if (this.#state !== 'closed') {
      const refusal = this.#admit();
      if (refusal !== undefined) {
        const refused = Promise.reject(refusal);
        return chain._claimReport(index, this) ? settleWith(chain, refused) : refused;
      }
      probe = true;
    }
    const generation = this.#generation;
    const startedAt = this.#timed() ? chain._now(this.#clock) : NaN;
    // One derived promise, no extra layer. (Returning the inner promise with the
    // bookkeeping on a side branch would save the rethrow below, about 0.5 µs per
    // failure, but the side branch would mark the work's promise as handled, so an
    // unawaited failing call would no longer report an unhandled rejection.)
    // The outermost layer of a timed pipeline also reports the call's end here.
    const reports = chain._claimReport(index, this);
    return start(chain, index + 1, scope, attempt).then(
      (value) => {
        this.#result(chain, index, generation, probe, startedAt, SUCCEEDED, undefined, reports);
        return value;
      },
      (error: unknown) => {
        this.#result(chain, index, generation, probe, startedAt, chain.isCallerAbort(error) ? IGNORED : FAILED, error, reports);
        throw error;
      },
    );
  }

  /**
   * Records a call's result; as the reporting outermost layer, also reports the
   * call's end. Only a clock that throws can make recording fail: the caller then
   * sees its error, and so does the report.
   */
  #result(
    chain: Chain<unknown>,
    index: number,
    generation: number,
    probe: boolean,
    startedAt: number,
    result: number,
    error: unknown,
    reports: boolean,
  ): void {
    if (!reports) {
      this.#settle(chain, index, generation, probe, startedAt, result, error);
      return;
    }
    try {
      this.#settle(chain, index, generation, probe, startedAt, result, error);
    } catch (bug) {
      chain._settle(false, bug);
      throw bug;
    }
    chain._settle(result === SUCCEEDED, error);
  }

  /** Whether calls must be timed: slow-call detection or a duration listener. */
  #timed(): boolean {
    return this.#slowCallMs > 0 || this.#success?.active === true || this.#failure?.active === true;
  }

  /** A call arrives while not closed: admits it as a probe (undefined) or returns the refusal. */
  #admit(): BrokenCircuitError | IsolatedCircuitError | undefined {
    const state = this.#state;
    if (state === 'isolated') return this.#refuse('isolated', isolated());
    if (state === 'open') {
      const left = this.#openUntil - this.#clock.now();
      if (left > 0) return this.#refuse('open', broken(Math.ceil(left), OPEN_MESSAGE));
      this.#transition('half-open', 'cooldown-elapsed');
    }
    if (this.#probes >= this.#halfOpenProbes) return this.#refuse('half-open', broken(0, HALF_OPEN_MESSAGE));
    this.#probes++;
    return undefined;
  }

  #refuse<E extends BrokenCircuitError | IsolatedCircuitError>(state: CircuitRejectEvent['state'], error: E): E {
    const emitter = this.#reject;
    if (emitter !== undefined && emitter.active) emitter.emit({ state, error });
    return error;
  }

  #settle(chain: Chain<unknown>, index: number, generation: number, probe: boolean, startedAt: number, result: number, error: unknown): void {
    if (result === FAILED && !this.#counts(error)) result = IGNORED;
    let now = NaN;
    let slow = false;
    if (startedAt === startedAt) {
      now = this.#clock.now();
      chain._settledAt(this.#clock, now, index, this);
      const durationMs = now - startedAt;
      slow = this.#slowCallMs > 0 && durationMs >= this.#slowCallMs;
      if (result === SUCCEEDED) {
        const emitter = this.#success;
        if (emitter !== undefined && emitter.active) emitter.emit({ durationMs });
      } else if (result === FAILED) {
        const emitter = this.#failure;
        if (emitter !== undefined && emitter.active) emitter.emit({ durationMs, error });
      }
    }
    // A result from before the last transition never counts.
    if (generation !== this.#generation || result === IGNORED) {
      if (probe && generation === this.#generation) this.#probes--;
      return;
    }
    if (probe) {
      this.#probes--;
      if (result === FAILED) this.#open('probe-failed', now);
      else if (slow) this.#open('probe-slow', now);
      else if (++this.#probeSuccesses >= this.#successesToClose) this.#close('probes-succeeded');
      return;
    }
    const code = (result === FAILED ? FAILURE : 0) | (slow ? SLOW : 0);
    const window = this.#window;
    if (window.needsNow && now !== now) {
      now = this.#clock.now();
      chain._settledAt(this.#clock, now, index, this);
    }
    window.record(now, code);
    if (code === 0 || window.calls < this.#minimumCalls) return;
    if (window.failures / window.calls >= this.#failureRateThreshold) this.#open('failure-rate', now);
    else if (this.#slowCallRateThreshold > 0 && window.slow / window.calls >= this.#slowCallRateThreshold) {
      this.#open('slow-call-rate', now);
    }
  }

  /** Runs `handle`; a `handle` that throws counts the error as a failure and reports its own error asynchronously. */
  #counts(error: unknown): boolean {
    userCodeRuns(); // `handle` is user code: an outer pipeline must not reuse a reading taken before it
    try {
      return this.#handle(error) === true;
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
      return true;
    }
  }

  #open(reason: StateChangeReason, now: number): void {
    const attempt = ++this.#consecutiveOpens;
    const schedule = this.#halfOpenAfterMs;
    const delayMs = typeof schedule === 'number' ? schedule : this.#scheduled(schedule, attempt);
    this.#lastOpenMs = delayMs;
    this.#openUntil = (now === now ? now : this.#clock.now()) + delayMs;
    this.#transition('open', reason);
  }

  /** Asks the schedule for the next open period; a schedule that throws keeps the last period (or the default). */
  #scheduled(schedule: Schedule, attempt: number): number {
    userCodeRuns();
    try {
      return sanitizeDelay(schedule.delayMs(attempt, this.#lastOpenMs, this.#random));
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
      return this.#lastOpenMs > 0 ? this.#lastOpenMs : CIRCUIT_BREAKER_DEFAULTS.halfOpenAfterMs;
    }
  }

  #close(reason: StateChangeReason): void {
    this.#consecutiveOpens = 0;
    this.#lastOpenMs = 0;
    this.#window.clear(this.#window.needsNow ? this.#clock.now() : 0);
    this.#transition('closed', reason);
  }

  #transition(to: CircuitState, reason: StateChangeReason): void {
    const from = this.#state;
    this.#state = to;
    this.#generation++;
    this.#probes = 0;
    this.#probeSuccesses = 0;
    const emitter = this.#stateChange;
    if (emitter !== undefined && emitter.active) emitter.emit({ from, to, reason });
  }
}

// ---------------------------------------------------------------------------
// Validation

const OWNER = 'circuitBreaker';

const RATE_RULE = 'a number greater than 0 and at most 1';
/** A share of calls: (0, 1]. */
const rate: Check = (owner, key, value) => {
  if (typeof value === 'number' && value > 0 && value <= 1) return;
  const message = `${owner}: option "${key}" must be ${RATE_RULE}; received ${received(value)}`;
  throw typeof value === 'number' && !Number.isNaN(value) ? new RangeError(message) : new TypeError(message);
};

const isSchedule = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && typeof (value as Schedule).delayMs === 'function';

const halfOpenAfter = either(
  `a finite number of milliseconds from 0 to 2147483647, or a backoff schedule (exponential(), constant() or an object with a delayMs method)`,
  duration(0),
  satisfies('a schedule', isSchedule),
);

const plainObject: Check = satisfies('an object', (v) => typeof v === 'object' && v !== null && !Array.isArray(v));

/**
 * Checks a nested options object: its keys are reported as `parent.key`, so a
 * message names the exact option (`window.ms`, `initialState.state`).
 */
function checkNested<T extends object>(
  parent: string,
  value: unknown,
  spec: Record<string, Check>,
  required: readonly string[],
): Partial<T> {
  plainObject(OWNER, parent, value);
  const prefixed: Record<string, unknown> = {};
  for (const key of Object.keys(value as object)) prefixed[`${parent}.${key}`] = (value as Record<string, unknown>)[key];
  const prefixedSpec: Record<string, Check> = {};
  for (const key of Object.keys(spec)) prefixedSpec[`${parent}.${key}`] = spec[key]!;
  const checked = checkOptions<Record<string, unknown>>(
    OWNER,
    prefixed,
    prefixedSpec,
    required.map((key) => `${parent}.${key}`),
  ) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(checked)) out[key.slice(parent.length + 1)] = checked[key];
  return out as Partial<T>;
}

function checkWindow(value: unknown): Settings['window'] {
  plainObject(OWNER, 'window', value);
  const kind = (value as { kind?: unknown }).kind;
  oneOf('time', 'count')(OWNER, 'window.kind', kind);
  if (kind === 'count') {
    const w = checkNested<CountWindowOptions>('window', value, { kind: oneOf('count'), calls: integer(1, 100_000) }, ['calls']);
    return { kind: 'count', calls: w.calls! };
  }
  const w = checkNested<TimeWindowOptions>('window', value, { kind: oneOf('time'), ms: duration(1), buckets: integer(1, 1_000) }, []);
  const ms = w.ms ?? CIRCUIT_BREAKER_DEFAULTS.window.ms;
  const buckets = w.buckets ?? CIRCUIT_BREAKER_DEFAULTS.window.buckets;
  if (ms % buckets !== 0) {
    throw new RangeError(
      `${OWNER}: option "window.ms" must be a multiple of window.buckets (${buckets}), so that every bucket spans a whole number of ms; received ${received(ms)}`,
    );
  }
  return { kind: 'time', ms, buckets };
}

function checkSnapshot(value: unknown): CircuitBreakerSnapshot {
  const s = checkNested<CircuitBreakerSnapshot>(
    'initialState',
    value,
    {
      state: oneOf('closed', 'open', 'half-open'),
      retryAfterMs: duration(0),
      consecutiveOpens: integer(0),
      lastOpenMs: duration(0),
    },
    ['state'],
  );
  if (s.state !== 'closed' && s.consecutiveOpens === 0) {
    throw new RangeError(
      `${OWNER}: option "initialState.consecutiveOpens" must be at least 1 when the state is "${s.state}"; received 0`,
    );
  }
  return s as CircuitBreakerSnapshot;
}

/**
 * Creates a circuit breaker. Put it inside a retry, outside the timeout, and
 * create it once per dependency (never per request): its statistics are the
 * memory of how that dependency has been doing.
 *
 * ```ts
 * const breaker = circuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 20, halfOpenAfterMs: 5_000 });
 * const payments = pipeline({ name: 'payments' }, retry(), breaker, timeout({ ms: 2_000 }));
 * ```
 */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreakerPolicy {
  const o = checkOptions<CircuitBreakerOptions>(OWNER, options, {
    failureRateThreshold: rate,
    minimumCalls: integer(1),
    window: plainObject,
    slowCallMs: duration(1),
    slowCallRateThreshold: rate,
    handle: fn,
    halfOpenAfterMs: halfOpenAfter,
    halfOpenProbes: integer(1),
    successesToClose: integer(1),
    clock: clockCheck,
    random: fn,
    initialState: plainObject,
  });
  const window = o.window === undefined ? CIRCUIT_BREAKER_DEFAULTS.window : checkWindow(o.window);
  const minimumCalls = o.minimumCalls ?? CIRCUIT_BREAKER_DEFAULTS.minimumCalls;
  if (window.kind === 'count' && minimumCalls > window.calls) {
    const given = o.minimumCalls === undefined ? ` (the default, ${minimumCalls})` : '';
    throw new RangeError(
      `${OWNER}: option "minimumCalls"${given} must be at most window.calls (${window.calls}), or the breaker could never open; received ${received(minimumCalls)}`,
    );
  }
  if ((o.slowCallMs === undefined) !== (o.slowCallRateThreshold === undefined)) {
    const [missing, given] = o.slowCallMs === undefined ? ['slowCallMs', 'slowCallRateThreshold'] : ['slowCallRateThreshold', 'slowCallMs'];
    throw new TypeError(`${OWNER}: option "${missing}" must be given together with "${given}"; received undefined`);
  }
  const halfOpenProbes = o.halfOpenProbes ?? CIRCUIT_BREAKER_DEFAULTS.halfOpenProbes;
  return new CircuitBreakerPolicy({
    failureRateThreshold: o.failureRateThreshold ?? CIRCUIT_BREAKER_DEFAULTS.failureRateThreshold,
    minimumCalls,
    window,
    slowCallMs: o.slowCallMs ?? 0,
    slowCallRateThreshold: o.slowCallRateThreshold ?? 0,
    handle: o.handle ?? CIRCUIT_BREAKER_DEFAULTS.handle,
    halfOpenAfterMs: o.halfOpenAfterMs ?? CIRCUIT_BREAKER_DEFAULTS.halfOpenAfterMs,
    halfOpenProbes,
    successesToClose: o.successesToClose ?? halfOpenProbes,
    clock: o.clock ?? systemClock,
    random: o.random ?? systemRandom,
    initialState: o.initialState === undefined ? undefined : checkSnapshot(o.initialState),
  });
}

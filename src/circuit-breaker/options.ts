/**
 * The circuit breaker's options, events and defaults, and their validation.
 */
import type { Schedule } from '../backoff.ts';
import { type Clock, type RandomSource, systemClock, systemRandom } from '../core/clock.ts';
import { type BrokenCircuitError, type IsolatedCircuitError, isRejection } from '../core/errors.ts';
import {
  checkNested,
  checkOptions,
  checkTimeWindow,
  clock as clockCheck,
  duration,
  either,
  fn,
  integer,
  oneOf,
  plainObject,
  received,
  share,
  satisfies,
} from '../core/validate.ts';

/** The state of a circuit breaker. */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated';

/**
 * Why a breaker changed state:
 * - `'failure-rate'`, `'slow-call-rate'`: closed → open, a rate reached its threshold;
 * - `'cooldown-elapsed'`: open → half-open, the open period is over;
 * - `'probes-succeeded'`: half-open → closed;
 * - `'probe-failed'`, `'probe-slow'`: half-open → open;
 * - `'probe-deadline'`: half-open → open, a probe did not settle within `probeDeadlineMs`;
 * - `'isolated'`: → isolated, by `CircuitBreakerPolicy.isolate`;
 * - `'released'`: isolated → closed, the last isolation handle was released;
 * - `'reset'`: → closed, by {@link CircuitBreakerPolicy.reset};
 * - `'tripped'`: closed → open, by {@link CircuitBreakerPolicy.trip} (a fleet's breaker hint).
 */
export type StateChangeReason =
  | 'failure-rate'
  | 'slow-call-rate'
  | 'cooldown-elapsed'
  | 'probes-succeeded'
  | 'probe-failed'
  | 'probe-slow'
  | 'probe-deadline'
  | 'isolated'
  | 'released'
  | 'reset'
  | 'tripped';

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

/** Options of `circuitBreaker`. Every option is optional. */
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
  /**
   * A call that takes `slowCallMs` or longer is slow, also one stopped from outside
   * (the caller, a hedge, an outer deadline) that had taken that long when it settled. Give it together with `slowCallRateThreshold`.
   */
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
   * A call the caller, or a layer outside, stopped is never a failure, whatever
   * `handle` says (it is a slow call if it had taken `slowCallMs` when it settled).
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
   * How long a half-open probe may run, in ms (default 60,000; 1 to 2,147,483,647).
   * A probe that has not settled by then counts as failed: the breaker reopens,
   * and a new probe is admitted after the open period, so a probe whose work
   * never settles cannot pin the breaker half-open. It does not abort the work:
   * put a `timeout` inside the breaker for that.
   */
  readonly probeDeadlineMs?: number;
  /**
   * How many probes must succeed, in total, for the breaker to close (default:
   * `halfOpenProbes`). One failed probe reopens it.
   */
  readonly successesToClose?: number;
  /** Time source (default: the system clock). Pass a `FakeClock` in tests. */
  readonly clock?: Clock;
  /** Random source handed to a `halfOpenAfterMs` schedule (default `Math.random`). */
  readonly random?: RandomSource;
  /** State to start from, as returned by `CircuitBreakerPolicy.toJSON` (default: closed). */
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

/** Returned by `CircuitBreakerPolicy.isolate`. */
export interface IsolationHandle {
  /** Ends this isolation; the breaker closes once every isolation is released. Idempotent. */
  release(): void;
  /** The same as {@link IsolationHandle.release}, so the handle works with `using`. */
  [Symbol.dispose](): void;
}

/** The defaults of `circuitBreaker`, in one visible place. */
export const CIRCUIT_BREAKER_DEFAULTS = Object.freeze({
  failureRateThreshold: 0.5,
  minimumCalls: 20,
  window: Object.freeze({ kind: 'time', ms: 10_000, buckets: 10 } as const),
  halfOpenAfterMs: 5_000,
  halfOpenProbes: 1,
  probeDeadlineMs: 60_000,
  /** Every error except Breakwater's rejections (a full bulkhead is not a failing dependency). */
  handle: (error: unknown): boolean => !isRejection(error),
});

/** Settings a breaker is built from, once validated. @internal */
export interface Settings {
  readonly failureRateThreshold: number;
  readonly minimumCalls: number;
  readonly window: { readonly kind: 'time'; readonly ms: number; readonly buckets: number } | { readonly kind: 'count'; readonly calls: number };
  readonly slowCallMs: number; // 0: off
  readonly slowCallRateThreshold: number; // 0: off
  readonly handle: (error: unknown) => boolean;
  readonly halfOpenAfterMs: number | Schedule;
  readonly halfOpenProbes: number;
  readonly probeDeadlineMs: number;
  readonly successesToClose: number;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly initialState: CircuitBreakerSnapshot | undefined;
}

const OWNER = 'circuitBreaker';

/** A share of calls: (0, 1]. */
const rate = share();

const isSchedule = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && typeof (value as Schedule).delayMs === 'function';

const halfOpenAfter = either(
  `a finite number of milliseconds from 0 to 2147483647, or a backoff schedule (exponential(), constant() or an object with a delayMs method)`,
  duration(0),
  satisfies('a schedule', isSchedule),
);

function checkWindow(value: unknown): Settings['window'] {
  plainObject(OWNER, 'window', value);
  const kind = (value as { kind?: unknown }).kind;
  oneOf('time', 'count')(OWNER, 'window.kind', kind);
  if (kind === 'count') {
    const w = checkNested<CountWindowOptions>(OWNER, 'window', value, { kind: oneOf('count'), calls: integer(1, 100_000) }, ['calls']);
    return { kind: 'count', calls: w.calls! };
  }
  return { kind: 'time', ...checkTimeWindow(OWNER, value, CIRCUIT_BREAKER_DEFAULTS.window, { kind: oneOf('time') }) };
}

function checkSnapshot(value: unknown): CircuitBreakerSnapshot {
  const s = checkNested<CircuitBreakerSnapshot>(
    OWNER,
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

/** Option names of opossum and cockatiel, with what to write instead. */
const FOREIGN = {
  errorThresholdPercentage: "opossum's errorThresholdPercentage is failureRateThreshold, a share: 50 becomes 0.5",
  resetTimeout: "opossum's resetTimeout is halfOpenAfterMs",
  volumeThreshold: "opossum's volumeThreshold is minimumCalls (default 20, opossum's 0)",
  rollingCountTimeout: "opossum's rollingCountTimeout is window: { kind: 'time', ms }",
  rollingCountBuckets: "opossum's rollingCountBuckets is window: { kind: 'time', buckets }",
  errorFilter: "opossum's errorFilter is handle, inverted: handle returns true for the errors that count as failures",
  timeout: 'put a timeout({ ms }) inside the breaker instead',
  capacity: 'put a bulkhead({ maxConcurrent }) around the breaker instead',
  halfOpenAfter: "cockatiel's halfOpenAfter is halfOpenAfterMs",
  breaker: "cockatiel's breaker is failureRateThreshold, minimumCalls and window",
};

/** Validates the options of `circuitBreaker` and fills in the defaults. @internal */
export function checkCircuitBreakerOptions(options: CircuitBreakerOptions | undefined): Settings {
  const o = checkOptions<CircuitBreakerOptions>(OWNER, options, {
    failureRateThreshold: rate,
    minimumCalls: integer(1),
    window: plainObject,
    slowCallMs: duration(1),
    slowCallRateThreshold: rate,
    handle: fn,
    halfOpenAfterMs: halfOpenAfter,
    halfOpenProbes: integer(1),
    probeDeadlineMs: duration(1),
    successesToClose: integer(1),
    clock: clockCheck,
    random: fn,
    initialState: plainObject,
  }, [], FOREIGN);
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
  return {
    failureRateThreshold: o.failureRateThreshold ?? CIRCUIT_BREAKER_DEFAULTS.failureRateThreshold,
    minimumCalls,
    window,
    slowCallMs: o.slowCallMs ?? 0,
    slowCallRateThreshold: o.slowCallRateThreshold ?? 0,
    handle: o.handle ?? CIRCUIT_BREAKER_DEFAULTS.handle,
    halfOpenAfterMs: o.halfOpenAfterMs ?? CIRCUIT_BREAKER_DEFAULTS.halfOpenAfterMs,
    halfOpenProbes,
    probeDeadlineMs: o.probeDeadlineMs ?? CIRCUIT_BREAKER_DEFAULTS.probeDeadlineMs,
    successesToClose: o.successesToClose ?? halfOpenProbes,
    clock: o.clock ?? systemClock,
    random: o.random ?? systemRandom,
    initialState: o.initialState === undefined ? undefined : checkSnapshot(o.initialState),
  };
}

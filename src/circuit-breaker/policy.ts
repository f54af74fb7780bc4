/**
 * The circuit breaker: stops calling a dependency that keeps failing, gives it
 * time to recover, then lets a few probe calls decide whether to resume.
 *
 * Cost model (see docs/reference/circuit-breaker.md): recording a result is O(1)
 * whatever the window size; an open breaker rejects with one small error object
 * built without a stack trace; no timer exists, ever (open → half-open is decided
 * when the next call or `state` read comes); a breaker holds about 1 KB.
 */
import { type Schedule, sanitizeDelay } from '../backoff.ts';
import type { Clock, RandomSource } from '../core/clock.ts';
import { BrokenCircuitError, IsolatedCircuitError, stackless } from '../core/errors.ts';
import { Emitter, type Event } from '../core/events.ts';
import { type Chain, PolicyBase, type Scope } from '../core/protocol.ts';
import { CIRCUIT_BREAKER_DEFAULTS, checkCircuitBreakerOptions } from './options.ts';
import type {
  CircuitBreakerOptions,
  CircuitBreakerSnapshot,
  CircuitFailureEvent,
  CircuitRejectEvent,
  CircuitState,
  CircuitSuccessEvent,
  IsolationHandle,
  Settings,
  StateChangeEvent,
  StateChangeReason,
} from './options.ts';
import { CountWindow, FAILURE, SLOW, TimeWindow, type Window } from './window.ts';

/** How a settled call is classified before the statistics see it. */
const SUCCEEDED = 0;
const FAILED = 1;
const IGNORED = 2;
/** The call was stopped from outside (the caller's abort, a hedge's loser, an outer deadline): ignored, unless it had taken `slowCallMs` or longer when it settled (then slow). */
const ABORTED = 3;

const OPEN_MESSAGE = 'the circuit is open: the call was not made';
const HALF_OPEN_MESSAGE = 'the circuit is half-open and every probe slot is taken: the call was not made';

/**
 * Builds a rejection error without capturing a stack trace: `new Error()` costs
 * microseconds, nearly all of it stack capture, and the stack of a refusal points into
 * the breaker, not at a fault. The message, `code` and `retryAfterMs` say it all.
 */
function broken(retryAfterMs: number, message: string, pipeline: string | undefined): BrokenCircuitError {
  return stackless(() => new BrokenCircuitError(retryAfterMs, message, { pipeline }));
}

/** The isolated-circuit refusal, built without a stack trace like {@link broken}. */
function isolated(pipeline: string | undefined): IsolatedCircuitError {
  return stackless(() => new IsolatedCircuitError({ pipeline }));
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
 *   the breaker; one failed (or slow) probe reopens it, and so does a probe
 *   still running after `probeDeadlineMs`.
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
  readonly #probeDeadlineMs: number;
  readonly #successesToClose: number;
  readonly #window: Window;

  #state: CircuitState = 'closed';
  /** Bumped on every transition and reset: results of older calls are ignored. */
  #generation = 0;
  /** Clock time at which an open breaker becomes half-open. */
  #openUntil = 0;
  /** When each probe in flight in the current half-open generation was admitted, oldest first. */
  #probes: number[] = [];
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
    this.#probeDeadlineMs = settings.probeDeadlineMs;
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
    if (this.#state === 'half-open' && this.#probes.length > 0) this.#expireProbes(this.#clock.now());
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
    const release = (): void => {
      if (released) return;
      released = true;
      if (--this.#isolations === 0) this.#close('released');
    };
    return Object.freeze({ release, [Symbol.dispose]: release });
  }

  /**
   * Opens a closed breaker now, as its own statistics would have (reason `'tripped'`):
   * calls are refused for the open period, then half-open probes decide as usual.
   * Returns false and changes nothing unless the breaker was closed. The fleet's
   * breaker hints (`fleetBreakerHints` in `breakwater/redis`) call it when a quorum of
   * replicas sees the dependency fail.
   */
  trip(): boolean {
    if (this.state !== 'closed') return false;
    this.#open('tripped', NaN);
    return true;
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

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    let probe = NaN; // when the call was admitted as a probe; NaN: not a probe
    if (this.#state !== 'closed') {
      const admitted = this.#admit(chain.pipeline);
      if (typeof admitted !== 'number') return Promise.reject(admitted);
      probe = admitted;
    }
    const generation = this.#generation;
    const startedAt = this.#timed() ? this.#clock.now() : NaN;
    // One derived promise, no extra layer. (Returning the inner promise with the
    // bookkeeping on a side branch would save the rethrow below, about 0.5 µs per
    // failure, but the side branch would mark the work's promise as handled, so an
    // unawaited failing call would no longer report an unhandled rejection.)
    return chain.next(index + 1, scope, attempt).then(
      (value) => {
        this.#settle(generation, probe, startedAt, SUCCEEDED, undefined);
        return value;
      },
      (error: unknown) => {
        this.#settle(generation, probe, startedAt, chain.isStoppedFromOutside(error, scope) ? ABORTED : FAILED, error);
        throw error;
      },
    );
  }

  /** Whether calls must be timed: slow-call detection or a duration listener. */
  #timed(): boolean {
    return this.#slowCallMs > 0 || this.#success?.active === true || this.#failure?.active === true;
  }

  /** A call arrives while not closed: admits it as a probe (returns when) or returns the refusal. */
  #admit(pipeline: string | undefined): number | BrokenCircuitError | IsolatedCircuitError {
    if (this.#state === 'isolated') return this.#refuse('isolated', isolated(pipeline));
    const now = this.#clock.now();
    this.#expireProbes(now);
    if (this.#state === 'open') {
      const left = this.#openUntil - now;
      if (left > 0) return this.#refuse('open', broken(Math.ceil(left), OPEN_MESSAGE, pipeline));
      this.#transition('half-open', 'cooldown-elapsed');
    }
    if (this.#probes.length >= this.#halfOpenProbes) return this.#refuse('half-open', broken(0, HALF_OPEN_MESSAGE, pipeline));
    this.#probes.push(now);
    return now;
  }

  /** Half-open with a probe in flight past its deadline: that probe counts as failed, and the breaker reopens. */
  #expireProbes(now: number): void {
    const oldest = this.#probes[0];
    if (this.#state === 'half-open' && oldest !== undefined && now - oldest >= this.#probeDeadlineMs) this.#open('probe-deadline', now);
  }

  #refuse<E extends BrokenCircuitError | IsolatedCircuitError>(state: CircuitRejectEvent['state'], error: E): E {
    const emitter = this.#reject;
    if (emitter !== undefined && emitter.active) emitter.emit({ state, error });
    return error;
  }

  /** Records a call's result in the statistics and the state. */
  #settle(generation: number, probe: number, startedAt: number, result: number, error: unknown): void {
    if (result === FAILED && !this.#counts(error)) result = IGNORED;
    let now = NaN;
    let slow = false;
    if (startedAt === startedAt) {
      now = this.#clock.now();
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
    // A call stopped from outside says nothing of the dependency, except how long it took:
    // past slowCallMs (a hedge's slow losing attempt, a caller who gave up) it is a slow call.
    if (result === ABORTED) result = slow ? SUCCEEDED : IGNORED;
    // A result from before the last transition never counts.
    const current = generation === this.#generation;
    if (current && probe === probe) {
      const at = this.#probes.indexOf(probe);
      if (at >= 0) this.#probes.splice(at, 1);
    }
    if (!current || result === IGNORED) return;
    if (probe === probe) {
      if (result === FAILED) this.#open('probe-failed', now);
      else if (slow) this.#open('probe-slow', now);
      else if (++this.#probeSuccesses >= this.#successesToClose) this.#close('probes-succeeded');
      return;
    }
    const code = (result === FAILED ? FAILURE : 0) | (slow ? SLOW : 0);
    const window = this.#window;
    if (window.needsNow && now !== now) {
      now = this.#clock.now();
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
    this.#probes = [];
    this.#probeSuccesses = 0;
    const emitter = this.#stateChange;
    if (emitter !== undefined && emitter.active) emitter.emit({ from, to, reason });
  }
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
  return new CircuitBreakerPolicy(checkCircuitBreakerOptions(options));
}

/**
 * The guarded rollout: a share of calls goes to an experimental implementation,
 * the rest to the stable one (the work the caller passes). The share is read on
 * every call from a flag, climbs by at most one step per interval, and the
 * experiment runs behind its own circuit breaker with the stable path as its
 * fallback. When the experiment's error rate or reported signal rate is worse
 * than the stable path's by a margin, it is rolled back (isolated) until released.
 *
 * No timer: the ramp moves and the windows expire when calls come.
 */
import { circuitBreaker, type CircuitBreakerPolicy } from './circuit-breaker/policy.ts';
import type { CircuitBreakerOptions, IsolationHandle } from './circuit-breaker/options.ts';
import { FAILURE, TimeWindow } from './circuit-breaker/window.ts';
import { unwatchAbort, watchAbort } from './core/abort.ts';
import { type Clock, type RandomSource, systemClock, systemRandom } from './core/clock.ts';
import { IsolatedCircuitError, isRejection, stackless } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope, type Work } from './core/protocol.ts';
import {
  checkOptions,
  checkTimeWindow,
  clock as clockCheck,
  duration,
  either,
  fn,
  integer,
  plainObject,
  received,
  satisfies,
  share as shareCheck,
} from './core/validate.ts';

/** Which implementation a call (or a reported signal) belongs to. */
export type RolloutPath = 'experimental' | 'stable';

/** Why a rollout rolled its experiment back. */
export type RollbackReason = 'error-rate' | 'signal-rate';

/** Options of {@link rollout}. */
export interface RolloutOptions<E> {
  /** The experimental implementation. The work given to `execute` is the stable one. */
  readonly experimental: Work<E>;
  /**
   * The share of calls to send to the experiment, 0 to 1: a number, or a function
   * read on every call (the feature flag). A value it returns outside 0 to 1 (or a
   * throw) is refused: the last valid share stays in force. 0 is the kill switch.
   */
  readonly share: number | (() => number);
  /** The largest rise of the share at once, and per `rampEveryMs` (default 0.05). 1 turns the ramp off. */
  readonly rampStep?: number;
  /** How long the share stays at a step before the next one, in ms (default 60,000). */
  readonly rampEveryMs?: number;
  /** Experimental calls the health window must hold before the experiment can be judged (default 50). */
  readonly minimumCalls?: number;
  /** Roll back when the experiment's error rate exceeds the stable path's by at least this much (default 0.05). */
  readonly errorRateMargin?: number;
  /** Roll back when reported signals per experimental call exceed the stable path's by at least this much (default 0.05). */
  readonly signalRateMargin?: number;
  /** The health window, a time window as the breaker's (default `{ ms: 60_000, buckets: 6 }`). */
  readonly window?: { readonly ms?: number; readonly buckets?: number };
  /** Options of the experiment's own circuit breaker (default: `circuitBreaker()`'s, on this clock). */
  readonly breaker?: CircuitBreakerOptions;
  /** Time source (default: the system clock); `FakeClock` in tests. */
  readonly clock?: Clock;
  /** Decides which calls go to the experiment (default `Math.random`). */
  readonly random?: RandomSource;
}

/** Payload of `onShareChange`. */
export interface RolloutShareEvent {
  /** The share in force before. */
  readonly from: number;
  /** The share in force now. */
  readonly to: number;
  /** What the flag asks for (the ramp, or a rollback, may hold `to` below it). */
  readonly requested: number;
}

/** Payload of `onShareRefused`: the flag gave something that is not a share. */
export interface RolloutRefusedEvent {
  /** What the flag returned (or threw). */
  readonly value: unknown;
}

/** Payload of `onExperimentFailed`: the experiment could not answer, the stable path did. */
export interface RolloutFailedEvent {
  /** The experiment's error: its own, its breaker's refusal, or the isolation that cut it. */
  readonly error: unknown;
}

/** A rollback: when and why the experiment was cut off. */
export interface RolloutRollback {
  /** Which rate was worse than the stable path's by its margin. */
  readonly reason: RollbackReason;
  /** Clock time of the rollback. */
  readonly atMs: number;
  /** The experiment's rate (errors, or signals, per call) in the window. */
  readonly experimentalRate: number;
  /** The stable path's rate in the window (0 with no stable calls). */
  readonly stableRate: number;
  /** Experimental calls in the window. */
  readonly calls: number;
}

/** The defaults of {@link rollout}, in one visible place. */
export const ROLLOUT_DEFAULTS = Object.freeze({
  rampStep: 0.05,
  rampEveryMs: 60_000,
  minimumCalls: 50,
  errorRateMargin: 0.05,
  signalRateMargin: 0.05,
  window: Object.freeze({ ms: 60_000, buckets: 6 }),
});

/** Counts of one path over the health window: calls (with failures) and reported signals. */
class Health {
  readonly calls: TimeWindow;
  readonly signals: TimeWindow;
  constructor(ms: number, buckets: number, now: number) {
    this.calls = new TimeWindow(ms, buckets, now);
    this.signals = new TimeWindow(ms, buckets, now);
  }
  advance(now: number): void {
    this.calls.advance(now);
    this.signals.advance(now);
  }
  clear(now: number): void {
    this.calls.clear(now);
    this.signals.clear(now);
  }
}

/** One experimental call in flight: its own signal, fed by the scope's and cut by an isolation. */
class Exposure<E> {
  readonly #controller = new AbortController();
  readonly #scope: AbortSignal | undefined;
  #cut!: (error: unknown) => void;
  /** The experimental work started (the breaker let it through). */
  ran = false;
  /** An isolation cut it: its result is not the experiment's. */
  wasCut = false;

  constructor(scope: AbortSignal | undefined) {
    this.#scope = scope;
    if (scope !== undefined) watchAbort(scope, this);
  }

  /** Runs `work` with this exposure's signal, as `breaker` allows; settles at once if cut. */
  run(breaker: CircuitBreakerPolicy, work: Work<E>, attempt: number, started: () => void): Promise<E> {
    const cut = new Promise<never>((_, reject) => {
      this.#cut = reject;
    });
    const signal = this.#controller.signal;
    const result = breaker.execute(
      () => {
        this.ran = true;
        started();
        return work({ signal, attempt });
      },
      this.#scope === undefined ? undefined : { signal: this.#scope },
    );
    // The race observes `result`: a cut call's late failure is never unhandled.
    return Promise.race([result, cut]).finally(() => {
      if (this.#scope !== undefined) unwatchAbort(this.#scope, this);
    });
  }

  /** The scope aborted: the experimental work sees it (the breaker rejects the call with its reason). */
  handleEvent(): void {
    this.#controller.abort(this.#scope!.reason);
  }

  /** An isolation: abort the work and answer from the stable path now. */
  cutOff(error: IsolatedCircuitError): void {
    this.wasCut = true;
    this.#controller.abort(error);
    this.#cut(error);
  }
}

const isShare = (value: unknown): value is number => typeof value === 'number' && value >= 0 && value <= 1;

/** A guarded rollout; create it with {@link rollout}. `E` is the experimental implementation's result type. */
export class RolloutPolicy<E> extends PolicyBase<E> {
  /** Always `'rollout'`. */
  readonly kind = 'rollout';
  /**
   * The experiment's own breaker: it opens when the experiment fails outright, and
   * `isolate()` on it is the kill switch (a rollback isolates it too). Calls it
   * refuses take the stable path.
   */
  readonly breaker: CircuitBreakerPolicy;
  readonly #experimental: Work<E>;
  readonly #flag: number | (() => number);
  readonly #rampStep: number;
  readonly #rampEveryMs: number;
  readonly #minimumCalls: number;
  readonly #errorRateMargin: number;
  readonly #signalRateMargin: number;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #experiment: Health;
  readonly #stable: Health;
  readonly #inFlight = new Set<Exposure<E>>();

  #share = 0;
  #requested = 0;
  /** Clock time from which the ramp may take its next step. */
  #nextStepAt = -Infinity;
  #rollback: RolloutRollback | undefined;
  #rollbackHandle: IsolationHandle | undefined;
  /** Held while the flag reads 0: the flag-driven kill switch. */
  #flagHandle: IsolationHandle | undefined;

  #shareChange: Emitter<RolloutShareEvent> | undefined;
  #refused: Emitter<RolloutRefusedEvent> | undefined;
  #exposure: Emitter<void> | undefined;
  #failed: Emitter<RolloutFailedEvent> | undefined;
  #rolledBack: Emitter<RolloutRollback> | undefined;

  /** Use {@link rollout} instead. @internal */
  constructor(settings: Required<Omit<RolloutOptions<E>, 'breaker' | 'window'>> & {
    readonly breaker: CircuitBreakerOptions;
    readonly window: { readonly ms: number; readonly buckets: number };
  }) {
    super();
    this.#experimental = settings.experimental;
    this.#flag = settings.share;
    this.#rampStep = settings.rampStep;
    this.#rampEveryMs = settings.rampEveryMs;
    this.#minimumCalls = settings.minimumCalls;
    this.#errorRateMargin = settings.errorRateMargin;
    this.#signalRateMargin = settings.signalRateMargin;
    this.#clock = settings.clock;
    this.#random = settings.random;
    const now = this.#clock.now();
    this.#experiment = new Health(settings.window.ms, settings.window.buckets, now);
    this.#stable = new Health(settings.window.ms, settings.window.buckets, now);
    this.breaker = circuitBreaker({ clock: this.#clock, ...settings.breaker });
    // Any isolation of the experiment (rollback, flag at 0, a person) cuts its calls in flight.
    this.breaker.onStateChange((event) => {
      if (event.to === 'isolated') this.#cutInFlight();
    });
  }

  /** The share of calls going to the experiment now: 0 while it is rolled back or isolated. */
  get share(): number {
    return this.breaker.state === 'isolated' ? 0 : this.#share;
  }

  /** The share the flag last asked for (a valid one). */
  get requestedShare(): number {
    return this.#requested;
  }

  /** The rollback in force, or `undefined`. */
  get rolledBack(): RolloutRollback | undefined {
    return this.#rollback;
  }

  /** Experimental calls running now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Fires when the share in force changes (a ramp step, the flag lowered, a rollback). */
  get onShareChange(): Event<RolloutShareEvent> {
    return (this.#shareChange ??= new Emitter()).subscribe;
  }

  /** Fires when the flag gives something that is not a share from 0 to 1 (or throws). */
  get onShareRefused(): Event<RolloutRefusedEvent> {
    return (this.#refused ??= new Emitter()).subscribe;
  }

  /** Fires each time the experimental implementation starts (one exposure). */
  get onExposure(): Event<void> {
    return (this.#exposure ??= new Emitter()).subscribe;
  }

  /** Fires when the experiment failed, was refused by its breaker or was cut, and the stable path answered. */
  get onExperimentFailed(): Event<RolloutFailedEvent> {
    return (this.#failed ??= new Emitter()).subscribe;
  }

  /** Fires when the experiment is rolled back, with when and why. */
  get onRollback(): Event<RolloutRollback> {
    return (this.#rolledBack ??= new Emitter()).subscribe;
  }

  /**
   * Reports `count` health signals (a complaint, a support ticket) from users
   * who were served by `path`. Signals per call are compared like error rates.
   */
  report(path: RolloutPath, count = 1): void {
    if (path !== 'experimental' && path !== 'stable') {
      throw new TypeError(`rollout.report: path must be "experimental" or "stable"; received ${received(path)}`);
    }
    if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
      throw new RangeError(`rollout.report: count must be an integer from 1 to 1000000; received ${received(count)}`);
    }
    const now = this.#clock.now();
    const signals = (path === 'experimental' ? this.#experiment : this.#stable).signals;
    for (let i = 0; i < count; i++) signals.record(now, 0);
    if (path === 'experimental') this.#evaluate(now);
  }

  /**
   * Ends the rollback in force, if any: the experiment's statistics start afresh
   * and the share climbs again from 0, one step at a time.
   */
  release(): void {
    const handle = this.#rollbackHandle;
    if (handle === undefined) return;
    const now = this.#clock.now();
    this.#rollback = undefined;
    this.#rollbackHandle = undefined;
    this.#experiment.clear(now);
    this.#stable.clear(now);
    this.#nextStepAt = -Infinity;
    handle.release();
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | E> {
    const share = this.#route();
    if (share === 0) return chain.next(index + 1, scope, attempt);
    if (!(this.#random() < share) || this.breaker.state === 'isolated') return this.#control(chain, index, scope, attempt);
    const exposure = new Exposure<E>(scope === undefined ? undefined : scope.signal);
    this.#inFlight.add(exposure);
    const started = this.#exposure?.active === true ? () => this.#exposure!.emit() : () => {};
    return exposure.run(this.breaker, this.#experimental, attempt, started).then(
      (value) => {
        this.#inFlight.delete(exposure);
        this.#record(this.#experiment, exposure, 0);
        return value;
      },
      (error: unknown) => {
        this.#inFlight.delete(exposure);
        if (chain.isStoppedFromOutside(error, scope)) throw error;
        if (exposure.ran && !exposure.wasCut && !isRejection(error)) this.#record(this.#experiment, exposure, FAILURE);
        const emitter = this.#failed;
        if (emitter !== undefined && emitter.active) emitter.emit({ error });
        return chain.next(index + 1, scope, attempt);
      },
    );
  }

  /** A stable call while the experiment is on: its result is the baseline the experiment is judged against. */
  #control<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return chain.next(index + 1, scope, attempt).then(
      (value) => {
        this.#stable.calls.record(this.#clock.now(), 0);
        return value;
      },
      (error: unknown) => {
        if (!isRejection(error) && !chain.isStoppedFromOutside(error, scope)) this.#stable.calls.record(this.#clock.now(), FAILURE);
        throw error;
      },
    );
  }

  /** Reads the flag and moves the share in force towards it; returns the share for this call. */
  #route(): number {
    let requested: unknown;
    try {
      requested = typeof this.#flag === 'number' ? this.#flag : this.#flag();
    } catch (error) {
      requested = error;
    }
    if (isShare(requested)) {
      this.#requested = requested;
    } else {
      const emitter = this.#refused;
      if (emitter !== undefined && emitter.active) emitter.emit({ value: requested });
    }
    this.#killSwitch();
    let to = this.#share;
    if (this.#rollback !== undefined || this.#requested <= to) {
      to = this.#rollback !== undefined ? 0 : this.#requested;
    } else {
      const now = this.#clock.now();
      if (now >= this.#nextStepAt) {
        to = Math.min(this.#requested, to + this.#rampStep);
        this.#nextStepAt = now + this.#rampEveryMs;
      }
    }
    if (to !== this.#share) this.#setShare(to);
    return to;
  }

  /** The flag at 0 isolates the experiment (cutting its calls in flight); above 0 it lets go. */
  #killSwitch(): void {
    if (this.#requested === 0) this.#flagHandle ??= this.breaker.isolate();
    else if (this.#flagHandle !== undefined) {
      const handle = this.#flagHandle;
      this.#flagHandle = undefined;
      handle.release();
    }
  }

  #setShare(to: number): void {
    const from = this.#share;
    this.#share = to;
    const emitter = this.#shareChange;
    if (emitter !== undefined && emitter.active) emitter.emit({ from, to, requested: this.#requested });
  }

  #record(health: Health, exposure: Exposure<E>, code: number): void {
    if (exposure.wasCut) return;
    const now = this.#clock.now();
    health.calls.record(now, code);
    this.#evaluate(now);
  }

  /** Compares the experiment with the stable path over the window; rolls back when it is worse by a margin. */
  #evaluate(now: number): void {
    if (this.#rollback !== undefined) return;
    const experiment = this.#experiment;
    const stable = this.#stable;
    experiment.advance(now);
    const calls = experiment.calls.calls;
    if (calls < this.#minimumCalls) return;
    stable.advance(now);
    const stableCalls = stable.calls.calls;
    const errors = experiment.calls.failures / calls;
    const stableErrors = stableCalls > 0 ? stable.calls.failures / stableCalls : 0;
    if (errors - stableErrors >= this.#errorRateMargin) return this.#rollBack('error-rate', now, errors, stableErrors, calls);
    const signals = experiment.signals.calls / calls;
    const stableSignals = stableCalls > 0 ? stable.signals.calls / stableCalls : 0;
    if (signals - stableSignals >= this.#signalRateMargin) this.#rollBack('signal-rate', now, signals, stableSignals, calls);
  }

  #rollBack(reason: RollbackReason, atMs: number, experimentalRate: number, stableRate: number, calls: number): void {
    const rollback: RolloutRollback = Object.freeze({ reason, atMs, experimentalRate, stableRate, calls });
    this.#rollback = rollback;
    if (this.#share !== 0) this.#setShare(0);
    this.#rollbackHandle = this.breaker.isolate();
    const emitter = this.#rolledBack;
    if (emitter !== undefined && emitter.active) emitter.emit(rollback);
  }

  #cutInFlight(): void {
    if (this.#inFlight.size === 0) return;
    const error = stackless(() => new IsolatedCircuitError());
    const exposures = [...this.#inFlight];
    this.#inFlight.clear();
    for (const exposure of exposures) exposure.cutOff(error);
  }
}

const flag = either('a share from 0 to 1, or a function returning one (the feature flag)', satisfies('a share', isShare, 'range'), fn);

/**
 * Sends a share of calls to an experimental implementation, read per call from a
 * flag, ramped by at most `rampStep` per `rampEveryMs`, behind the experiment's
 * own breaker with the stable path (the caller's work) as its fallback, and rolled
 * back when the experiment's health is worse than the stable path's by a margin.
 *
 * ```ts
 * const flags = { newSearch: 0 };
 * const search = rollout({ experimental: () => 'new results', share: () => flags.newSearch });
 * ```
 */
export function rollout<E>(options: RolloutOptions<E>): RolloutPolicy<E> {
  const owner = 'rollout';
  const o = checkOptions<RolloutOptions<E>>(
    owner,
    options,
    {
      experimental: fn,
      share: flag,
      rampStep: shareCheck(),
      rampEveryMs: duration(0),
      minimumCalls: integer(1),
      errorRateMargin: shareCheck(),
      signalRateMargin: shareCheck(),
      window: plainObject,
      breaker: plainObject,
      clock: clockCheck,
      random: fn,
    },
    ['experimental', 'share'],
  );
  return new RolloutPolicy<E>({
    experimental: o.experimental!,
    share: o.share!,
    rampStep: o.rampStep ?? ROLLOUT_DEFAULTS.rampStep,
    rampEveryMs: o.rampEveryMs ?? ROLLOUT_DEFAULTS.rampEveryMs,
    minimumCalls: o.minimumCalls ?? ROLLOUT_DEFAULTS.minimumCalls,
    errorRateMargin: o.errorRateMargin ?? ROLLOUT_DEFAULTS.errorRateMargin,
    signalRateMargin: o.signalRateMargin ?? ROLLOUT_DEFAULTS.signalRateMargin,
    window: o.window === undefined ? { ...ROLLOUT_DEFAULTS.window } : checkTimeWindow(owner, o.window, ROLLOUT_DEFAULTS.window),
    breaker: o.breaker ?? {},
    clock: o.clock ?? systemClock,
    random: o.random ?? systemRandom,
  });
}

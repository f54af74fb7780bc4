/**
 * The policy protocol shared by every layer, and the call plumbing behind
 * `execute`. Users see {@link Policy}, {@link WorkContext} and {@link ExecuteOptions};
 * the rest is the internal protocol policies use to call the next layer without
 * allocating a closure per layer per call.
 */
import { unwatchAbort, watchAbort } from './abort.ts';
import type { Clock } from './clock.ts';
import { isRejection, isTimeoutError } from './errors.ts';
import { moment, userCodeRuns } from './moment.ts';

/** What the work function receives on every attempt. */
export interface WorkContext {
  /**
   * Aborted when the call should stop: the caller aborted, or a timeout expired
   * (its reason is then the `TimeoutError`). Pass it on to `fetch` and friends.
   * Created on first read: work that never reads it costs no AbortController.
   */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, and so on. */
  readonly attempt: number;
}

/** The guarded work: any function returning a value, a promise or a thenable. */
export type Work<T> = (context: WorkContext) => T | PromiseLike<T>;

/** Per-call options of `execute`. */
export interface ExecuteOptions {
  /** The caller's signal. Aborting it rejects the call with the signal's reason, unchanged. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * A resilience policy (timeout, retry, breaker, bulkhead, fallback) or a whole
 * pipeline of them. `R` is what the policy can produce besides the work's own
 * result: `never` for most, the fallback value's type for `fallback`.
 */
export interface Policy<R = never> {
  /** What kind of policy this is: 'timeout', 'retry', 'pipeline' and so on. */
  readonly kind: string;
  /**
   * Type-level marker of `R`, so pipelines can infer it; never set at run time.
   * @internal
   */
  readonly '~extra'?: () => R;
  /** Runs `fn` under this policy. */
  execute<T>(fn: Work<T>, options?: ExecuteOptions): Promise<T | R>;
  /**
   * Returns a function with `fn`'s parameters that runs `fn` under this policy.
   * Use `execute` instead when the work needs the signal or the attempt number.
   */
  wrap<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R>;
  /**
   * Layer protocol: run this policy as layer `index` of `chain`, handing the call
   * on with `chain.next(index + 1, scope, attempt)`. Pipelines call it; to write a
   * custom policy, extend `PolicyBase` (docs/reference/pipeline.md).
   */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R>;
}

/** The extra result type a policy can produce (`never` for most). */
export type ExtraResult<P> = P extends { readonly '~extra'?: () => infer R } ? R : never;

/**
 * A cancellation scope: the signal the layers below see. Its signal may be
 * created on first read (see the timeout policy), so read it only when needed.
 */
export interface Scope {
  readonly signal: AbortSignal;
}

/** One call travelling through a list of layers (the layer protocol). */
export abstract class Chain<T = unknown> {
  /** The caller's own signal, if any: policies never treat its abort as a failure. */
  abstract readonly callerSignal: AbortSignal | undefined;
  /** @internal The layers this chain runs. */
  protected readonly _layers: readonly Policy<unknown>[];
  /** @internal Which layers run no user code on the way in (see {@link descendsPromptly}). */
  protected readonly _trust: number;

  /** @internal */
  constructor(layers: readonly Policy<unknown>[], trust: number) {
    this._layers = layers;
    this._trust = trust;
  }

  /** Runs layer `index` (or, past the last layer, what comes after this chain's layers). */
  next(index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const layer = this._layers[index];
    if (layer === undefined) return this._beyond(scope, attempt);
    if (!trusts(this._trust, index)) userCodeRuns(); // a custom layer may run user code on the way in
    return layer._run(this, index, scope, attempt) as Promise<T>;
  }

  /** @internal Runs what comes after the last layer: the work, or the outer chain's next layer. */
  protected abstract _beyond(scope: Scope | undefined, attempt: number): Promise<T>;
  /** Set by a fallback that produced the result. */
  fellBack = false;
  /** Called by `fallback` when it produced the result. */
  markFallback(): void {
    this.fellBack = true;
  }
  /**
   * A retry starts another attempt: a fallback that ran inside the failed one did
   * not produce the call's result (an outer timeout gave up on it first).
   * @internal
   */
  _clearFallback(): void {
    this.fellBack = false;
  }
  /** True when `error` is the caller's own abort reason. */
  isCallerAbort(error: unknown): boolean {
    const signal = this.callerSignal;
    return signal !== undefined && signal.aborted && signal.reason === error;
  }

  // A pipeline timing its calls lets its outermost layer, when that is a built-in
  // policy, report the call's end from the promise reaction it runs anyway,
  // instead of adding one more promise step to every call (docs/design.md,
  // "Observing a call without another promise step").
  /** @internal Told once when the call settles; cleared when told. */
  _observer: CallObserver | undefined = undefined;
  /** @internal The layer that should report the end through {@link Chain._settle}, if a layer should. */
  _reporter: unknown = undefined;
  /** @internal Set when the reporter took the duty on (see {@link Chain._claimReport}). */
  _claimed = false;
  /** @internal When the observed call started, on the observer's clock. */
  _observedFrom = 0;

  /**
   * True when `policy`, running as layer `index`, must report this call's end
   * through {@link Chain._settle} exactly as the promise it returns settles; it
   * then takes that duty on. A layer that never claims it (a proxy that runs the
   * built-in as another object, say) leaves the pipeline to observe the call
   * with one more promise step.
   * @internal
   */
  _claimReport(index: number, policy: unknown): boolean {
    if (index !== 0 || this._reporter !== policy) return false;
    this._claimed = true;
    return true;
  }

  /**
   * Tells the observer that the call settled: fulfilled (`ok`) or rejected with
   * `error`. Called as the caller's promise settles, before the caller's own
   * reactions run; a second call does nothing. Never throws: a report that
   * fails (a clock whose `now` throws) must not change the call's result, so
   * its error surfaces on its own, on a later microtask.
   * @internal
   */
  _settle(ok: boolean, error: unknown): void {
    const observer = this._observer;
    if (observer === undefined) return;
    this._observer = undefined;
    try {
      observer._callSettled(this, ok, error);
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
    }
  }

  // One clock reading per moment (docs/design.md, "Clock readings"): layers that
  // read the same clock in one synchronous run, with no user code in between,
  // share the reading instead of paying ~45 ns each for another one.
  /** @internal True while the call descends the layers synchronously, before the work runs. */
  _descending = false;
  /** @internal */
  _startClock: Clock | undefined = undefined;
  /** @internal */
  _startAt = 0;
  /** @internal {@link moment} when the start reading was taken. */
  _startMoment = -1;
  /** @internal */
  _endClock: Clock | undefined = undefined;
  /** @internal */
  _endAt = 0;
  /** @internal Layer index of the layer that took the end reading. */
  _endIndex = 0;
  /** @internal {@link moment} when the end reading was taken. */
  _endMoment = -1;

  /**
   * The time on `clock` at which this call reached the calling layer. Layers
   * reached in the same synchronous descent share one reading; a layer reached
   * later (after a queue wait or a retry sleep) reads the clock itself.
   * @internal
   */
  _now(clock: Clock): number {
    if (!this._descending) return clock.now();
    const current = moment();
    if (this._startClock === clock && this._startMoment === current) return this._startAt;
    const now = clock.now();
    this._startClock = clock;
    this._startAt = now;
    this._startMoment = current;
    return now;
  }

  /**
   * Records that `policy`, layer `index`, read `now` on `clock` as the call's
   * result came back through it, so an outer pipeline timing the call can reuse
   * the reading while no user code has run since. A policy run by a custom
   * policy in that custom policy's place is not this chain's layer: its reading
   * is not kept, and no older one either.
   * @internal
   */
  _settledAt(clock: Clock, now: number, index: number, policy: unknown): void {
    if (this._layers[index] !== policy) {
      this._endClock = undefined;
      return;
    }
    this._endClock = clock;
    this._endAt = now;
    this._endIndex = index;
    this._endMoment = moment();
  }

  /**
   * The end reading of this call on `clock`, if layer `_endIndex` took one, no user
   * code has run since, and every layer outside it is one of the built-in
   * policies (`trusted` of them lead the list), which never wait on the way out
   * without running user code; otherwise a fresh reading.
   * @internal
   */
  _endTime(clock: Clock, trusted: number): number {
    if (this._endClock === clock && this._endMoment === moment() && this._endIndex < trusted) return this._endAt;
    return clock.now();
  }
}

/** Who watches a call end: a pipeline timing its calls. @internal */
export interface CallObserver {
  _callSettled(chain: Chain<unknown>, ok: boolean, error: unknown): void;
}

/**
 * Reports `chain`'s end when `promise` settles, passing its result on: how a
 * call is observed when no layer reports it from a reaction of its own (a
 * custom outermost layer, a refusal, a queued or retried call, an asynchronous
 * fallback).
 * @internal
 */
export function settleWith<T>(chain: Chain<unknown>, promise: Promise<T>): Promise<T> {
  return promise.then(
    (value) => {
      chain._settle(true, undefined);
      return value;
    },
    (error: unknown) => {
      chain._settle(false, error);
      throw error;
    },
  );
}

/** @internal */
export class RootChain<T> extends Chain<T> {
  readonly callerSignal: AbortSignal | undefined;
  private readonly fn: Work<T>;
  constructor(fn: Work<T>, layers: readonly Policy<unknown>[], callerSignal: AbortSignal | undefined, trust: number = descendsPromptly(layers)) {
    super(layers, trust);
    this.fn = fn;
    this.callerSignal = callerSignal;
  }
  protected _beyond(scope: Scope | undefined, attempt: number): Promise<T> {
    this._descending = false;
    return invoke(this.fn, scope, attempt);
  }
}

/** A pipeline used as a layer inside another pipeline. @internal */
export class NestedChain<T> extends Chain<T> {
  private readonly outer: Chain<T>;
  private readonly outerIndex: number;
  constructor(outer: Chain<T>, outerIndex: number, layers: readonly Policy<unknown>[], trust: number) {
    super(layers, trust);
    this.outer = outer;
    this.outerIndex = outerIndex;
  }
  get callerSignal(): AbortSignal | undefined {
    return this.outer.callerSignal;
  }
  /** A nested pipeline descends within its outer call: the outer chain holds the shared start reading. */
  override _now(clock: Clock): number {
    return this.outer._now(clock);
  }
  override markFallback(): void {
    this.fellBack = true;
    this.outer.markFallback();
  }
  override _clearFallback(): void {
    this.fellBack = false;
    this.outer._clearFallback();
  }
  protected _beyond(scope: Scope | undefined, attempt: number): Promise<T> {
    return this.outer.next(this.outerIndex + 1, scope, attempt);
  }
}

class Context implements WorkContext {
  readonly attempt: number;
  #scope: Scope | undefined;
  #own: AbortSignal | undefined;
  constructor(scope: Scope | undefined, attempt: number) {
    this.#scope = scope;
    this.attempt = attempt;
  }
  get signal(): AbortSignal {
    if (this.#scope !== undefined) return this.#scope.signal;
    // Nothing can cancel this call: a fresh signal per call, so listeners the
    // work adds to it are collected with it instead of piling up on a shared one.
    return (this.#own ??= new AbortController().signal);
  }
}

/** Calls the work, turning a synchronous throw or a plain value into a promise. @internal */
export function invoke<T>(fn: Work<T>, scope: Scope | undefined, attempt: number): Promise<T> {
  userCodeRuns();
  try {
    return Promise.resolve(fn(new Context(scope, attempt)));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Starts layer `index` of `chain`, turning an unexpected synchronous throw into a rejection. @internal */
export function start<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
  try {
    return chain.next(index, scope, attempt);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Settles with `promise`, or rejects with `signal.reason` as soon as `signal`
 * aborts, whichever comes first. The listener is removed when either happens,
 * and a late rejection of `promise` is observed (never unhandled).
 * @internal
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, chain?: Chain<unknown>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const race = new AbortRace(signal, reject, chain);
    // The work may have aborted the signal while the call descended: that counts at once.
    if (signal.aborted) race.handleEvent();
    else watchAbort(signal, race);
    promise.then(
      (value) => {
        unwatchAbort(signal, race);
        chain?._settle(true, undefined);
        resolve(value);
      },
      (error: unknown) => {
        unwatchAbort(signal, race);
        chain?._settle(false, error);
        reject(error);
      },
    );
  });
}

class AbortRace {
  private readonly signal: AbortSignal;
  private readonly reject: (reason: unknown) => void;
  /** The call, when an observer waits for its end: the race settles the caller's promise, so it reports. */
  private readonly chain: Chain<unknown> | undefined;
  constructor(signal: AbortSignal, reject: (reason: unknown) => void, chain: Chain<unknown> | undefined) {
    this.signal = signal;
    this.reject = reject;
    this.chain = chain;
  }
  handleEvent(): void {
    const reason: unknown = this.signal.reason;
    this.chain?._settle(false, reason);
    this.reject(reason);
  }
}

/**
 * Whether `layer` is a built-in policy: it runs no user code between being
 * entered and calling the next layer, and never waits between its inner call
 * settling and its own without running user code. Only the built-in classes
 * themselves qualify (the marker method must be an own property of the layer's
 * prototype), since a subclass may override `_run`; so does an instance whose
 * `_run` was replaced (a tracing wrapper) when the pipeline was built.
 * @internal
 */
export function settlesPromptly(layer: unknown): boolean {
  return hasOwnMarker(layer, '_settlesPromptly');
}

/** `layer`'s own prototype carries `marker`, and `_run` was not replaced on the instance. */
function hasOwnMarker(layer: unknown, marker: string): boolean {
  if (typeof layer !== 'object' || layer === null || Object.hasOwn(layer, '_run')) return false;
  const proto: unknown = Object.getPrototypeOf(layer);
  return typeof proto === 'object' && proto !== null && Object.hasOwn(proto, marker);
}

/**
 * Bit `i` set: layer `i` runs no user code on the way in (a built-in policy or a
 * pipeline). Checked once per pipeline; kept in a number, so layers past the
 * 31st always count as untrusted.
 * @internal
 */
export function descendsPromptly(layers: readonly unknown[]): number {
  let mask = 0;
  for (let i = 0; i < layers.length && i < 31; i++) {
    const layer = layers[i];
    if (hasOwnMarker(layer, '_settlesPromptly') || hasOwnMarker(layer, '_descendsPromptly')) mask |= 1 << i;
  }
  return mask;
}

function trusts(mask: number, index: number): boolean {
  return index < 31 && ((mask >>> index) & 1) === 1;
}

/** The outcome of a call, as counted in metrics. */
export type Outcome = 'success' | 'failure' | 'timeout' | 'rejected' | 'fallback' | 'cancelled';

/** Classifies a settled call. @internal */
export function outcomeOf(chain: Chain<unknown>, ok: boolean, error: unknown): Outcome {
  if (ok) return chain.fellBack ? 'fallback' : 'success';
  if (chain.isCallerAbort(error)) return 'cancelled';
  if (isTimeoutError(error)) return 'timeout';
  if (isRejection(error)) return 'rejected';
  return 'failure';
}

/** Checks the per-call options of `execute`. @internal */
export function callerSignalOf(owner: string, options: ExecuteOptions | undefined): AbortSignal | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') {
    throw new TypeError(`${owner}.execute: options must be an object; received ${typeof options}`);
  }
  const signal = options.signal;
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) {
    throw new TypeError(`${owner}.execute: option "signal" must be an AbortSignal; received ${signal === null ? 'null' : typeof signal}`);
  }
  return signal;
}

/**
 * The layer protocol: how a policy runs one call and hands it to the next layer.
 *
 * A pipeline is a list of layers. One call walks it with a {@link Chain}: each
 * layer's `_run(chain, index, scope, attempt)` does its work and calls
 * `chain.next(index + 1, scope, attempt)`; past the last layer, `next` calls the
 * work. No closure is allocated per layer per call, and the built-in policies are
 * written exactly as a custom one is (docs/reference/pipeline.md).
 */
import { raceAbort } from './abort.ts';
import { callerSignalOf, received } from './validate.ts';

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
 * A cancellation scope: the signal the layers below see. Its signal may be
 * created on first read (see the timeout policy), so read it only when needed.
 */
export interface Scope {
  readonly signal: AbortSignal;
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
   * Published on purpose: `pipeline(...)` and {@link ExtraResult} read it from
   * the types users hold, so without it a `Policy<R>` would lose its `R`.
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
   * custom policy, extend {@link PolicyBase} (docs/reference/pipeline.md).
   */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R>;
}

/** The extra result type a policy can produce (`never` for most). */
export type ExtraResult<P> = P extends { readonly '~extra'?: () => infer R } ? R : never;

/**
 * One call travelling through a list of layers: the layers, the work, the
 * caller's signal, and whether a fallback produced the result. A pipeline used
 * as a layer of another one gets its own chain, which continues into the outer
 * chain after its last layer.
 */
export class Chain<T = unknown> {
  /** The caller's own signal, if any: policies never treat its abort as a failure. */
  readonly callerSignal: AbortSignal | undefined;
  /** The name of the innermost named pipeline running this call: put it on the errors your policy makes. */
  readonly pipeline: string | undefined;
  readonly #layers: readonly Policy<unknown>[];
  readonly #work: Work<T> | undefined;
  readonly #outer: Chain<T> | undefined;
  readonly #outerIndex: number;
  #fellBack = false;

  /** @internal Either `work` (a call's own chain) or `outer` (a nested pipeline's). */
  constructor(
    layers: readonly Policy<unknown>[],
    work: Work<T> | undefined,
    signal: AbortSignal | undefined,
    pipeline: string | undefined,
    outer?: Chain<T>,
    outerIndex = 0,
  ) {
    this.pipeline = pipeline;
    this.#layers = layers;
    this.#work = work;
    this.callerSignal = signal;
    this.#outer = outer;
    this.#outerIndex = outerIndex;
  }

  /**
   * Runs layer `index`, or past the last layer what comes next: the work, or
   * the outer chain's next layer. Never throws: a synchronous throw of a layer
   * or of the work becomes a rejected promise.
   */
  next(index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    try {
      const layer = this.#layers[index];
      if (layer !== undefined) return layer._run(this, index, scope, attempt) as Promise<T>;
      if (this.#outer !== undefined) return this.#outer.next(this.#outerIndex + 1, scope, attempt);
      return Promise.resolve(this.#work!(new Context(scope, attempt)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * True when a fallback produced the call's result (the `fallback` outcome).
   * A fallback sets it; a policy that starts another attempt clears it, since a
   * fallback inside the abandoned attempt did not produce the result. Setting it
   * on a nested pipeline's chain sets it on the outer chain too.
   */
  get fellBack(): boolean {
    return this.#fellBack;
  }

  set fellBack(value: boolean) {
    this.#fellBack = value;
    if (this.#outer !== undefined) this.#outer.fellBack = value;
  }

  /** True when `error` is the caller's own abort reason. */
  isCallerAbort(error: unknown): boolean {
    const signal = this.callerSignal;
    return signal !== undefined && signal.aborted && signal.reason === error;
  }

  /**
   * True when a call that failed with `error` was stopped from outside the layer
   * that asks, not failed by the dependency: the caller's own abort, or an abort
   * of `scope`, the scope a layer outside gave the call (a hedge stopping its
   * losing attempt, an outer deadline). Policies that judge the dependency by its
   * failures leave such calls out. Reads `scope.signal`: ask on failures only.
   */
  isStoppedFromOutside(error: unknown, scope: Scope | undefined): boolean {
    return this.isCallerAbort(error) || (scope !== undefined && scope.signal.aborted);
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

/**
 * Watches calls end: a pipeline that someone observes (a metrics sink, an
 * `onSettled` listener). It reads the start on its clock before the first layer
 * runs, and the end one promise step after the call settles.
 * @internal
 */
export interface CallObserver {
  /** The start reading; `NaN` when the clock threw (the error surfaces on its own and the call runs unobserved). */
  start(): number;
  watch<T>(chain: Chain<T>, promise: Promise<T>, startedAt: number): Promise<T>;
}

/**
 * Runs `layers` as one call of `fn`: refuses an already-aborted caller signal
 * without calling the work, and rejects with the caller's reason as soon as it
 * aborts. With an `observer`, the call is timed and reported to it.
 * @internal
 */
export function runLayers<T>(
  owner: string,
  layers: readonly Policy<unknown>[],
  fn: Work<T>,
  options: ExecuteOptions | undefined,
  name?: string,
  observer?: CallObserver,
): Promise<T> {
  if (typeof fn !== 'function') {
    throw new TypeError(`${owner}.execute: the work must be a function; received ${received(fn)}`);
  }
  const signal = callerSignalOf(owner, options);
  const chain = new Chain(layers, fn, signal, name);
  const startedAt = observer === undefined ? NaN : observer.start();
  let promise: Promise<T>;
  if (signal === undefined) promise = chain.next(0, undefined, 1);
  else if (signal.aborted) promise = Promise.reject(signal.reason);
  else promise = raceAbort(chain.next(0, { signal }, 1), signal);
  return startedAt !== startedAt ? promise : observer!.watch(chain, promise, startedAt);
}

/**
 * Base class of the built-in policies, and of custom ones: it provides
 * `execute` and `wrap` in terms of `_run`.
 */
export abstract class PolicyBase<R = never> implements Policy<R> {
  abstract readonly kind: string;
  declare readonly '~extra'?: () => R;
  abstract _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R>;
  #self: readonly Policy<unknown>[] | undefined; // made on first execute: most policies only run inside pipelines

  execute<T>(fn: Work<T>, options?: ExecuteOptions): Promise<T | R> {
    return runLayers<T | R>(this.kind, (this.#self ??= [this as Policy<unknown>]), fn, options);
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R> {
    return wrapWith(this, fn);
  }
}

/** `policy.wrap(fn)`. @internal */
export function wrapWith<A extends unknown[], T, R>(policy: Policy<R>, fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R> {
  if (typeof fn !== 'function') {
    throw new TypeError(`${policy.kind}.wrap: expected a function; received ${received(fn)}`);
  }
  return function (this: unknown, ...args: A) {
    return policy.execute(() => fn.apply(this, args));
  };
}

/**
 * Pipelines: policies composed outermost first, themselves a policy.
 */
import { type Clock, systemClock } from './clock.ts';
import { type Disposer, Emitter, type Event } from './events.ts';
import {
  Chain,
  type ExecuteOptions,
  type ExtraResult,
  type Policy,
  runLayers,
  type Scope,
  type Work,
  wrapWith,
} from './protocol.ts';
import { type CallRecorder, type SettledEvent, Timing } from './timing.ts';
import { checkPipelineArguments } from './validate.ts';

/** Options of {@link pipeline}, given as its first argument. */
export interface PipelineOptions {
  /**
   * The dependency this pipeline guards, such as `'auth'` or `'payments-db'`. It
   * becomes the `pipeline` label in metrics, so it must be a valid, stable label
   * value: 1 to 100 characters of letters, digits and `_ . : / -`, starting with a
   * letter or digit. Never derive it from request data.
   */
  readonly name?: string;
  /** Clock used to time calls for `onSettled` (default: the system clock). */
  readonly clock?: Clock;
}

/** Pattern a pipeline name must match. */
export const PIPELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/;

/** A composition of policies, outermost first, that is itself a policy. */
export class Pipeline<R = never> implements Policy<R> {
  /** Always `'pipeline'`. */
  readonly kind = 'pipeline';
  declare readonly '~extra'?: () => R;
  /** The name given in the options; the `pipeline` label in metrics. */
  readonly name: string | undefined;
  /** The policies, outermost first. */
  readonly policies: readonly Policy<unknown>[];
  readonly #clock: Clock;
  // Created on first use: an unobserved pipeline holds no timing and no emitter (~180 B each).
  #timing: Timing | undefined;
  #onDispose: Emitter<void> | undefined;
  #disposed = false;

  /** Use {@link pipeline} instead. @internal */
  constructor(options: PipelineOptions, policies: readonly Policy<unknown>[]) {
    this.name = options.name;
    this.#clock = options.clock ?? systemClock;
    this.policies = Object.freeze([...policies]);
  }

  /**
   * Fires once per call with its outcome and duration, before the caller sees
   * the result. When nobody listens (and no metrics sink is attached), calls are
   * not timed at all.
   */
  get onSettled(): Event<SettledEvent> {
    const timing = (this.#timing ??= new Timing(this.#clock));
    return (timing.settled ??= new Emitter()).subscribe;
  }

  /**
   * Adds a recorder told each call's outcome and duration, as `onSettled`
   * listeners are but without an event object: the Prometheus sink's channel.
   * Returns its remover.
   * @internal
   */
  _record(recorder: CallRecorder): Disposer {
    const timing = (this.#timing ??= new Timing(this.#clock));
    timing.recorders = [...timing.recorders, recorder];
    let done = false;
    return () => {
      if (done) return;
      done = true;
      timing.recorders = timing.recorders.filter((r) => r !== recorder);
    };
  }

  /** Fires when {@link Pipeline.dispose} is called: metrics sinks drop this pipeline's series. */
  get onDispose(): Event<void> {
    return (this.#onDispose ??= new Emitter()).subscribe;
  }

  /** True once {@link Pipeline.dispose} was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Ends this pipeline's life: attached telemetry drops its series, and every
   * later call is refused with an error (calls in flight finish as usual). A
   * second call does nothing.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#onDispose?.emit(undefined);
  }

  execute<T>(fn: Work<T>, options?: ExecuteOptions): Promise<T | R> {
    if (this.#disposed) throw this.#disposedError();
    return runLayers<T | R>('pipeline', this.policies, fn, options, this.name, this.#observer());
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R> {
    return wrapWith(this, fn);
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R> {
    if (this.#disposed) throw this.#disposedError();
    const nested = new Chain<T>(this.policies, undefined, chain.callerSignal, this.name ?? chain.pipeline, chain, index);
    const startedAt = this.#observer()?.start() ?? NaN;
    const promise = nested.next(0, scope, attempt);
    return startedAt !== startedAt ? promise : this.#timing!.watch(nested, promise, startedAt);
  }

  #disposedError(): Error {
    return new Error(`pipeline${this.name === undefined ? '' : ` "${this.name}"`}: disposed; it runs no more calls (create a new pipeline)`);
  }

  /** The timing, when anyone wants calls timed: when nobody does, they are not timed at all. */
  #observer(): Timing | undefined {
    const timing = this.#timing;
    return timing !== undefined && (timing.recorders.length > 0 || timing.settled?.active === true) ? timing : undefined;
  }
}

type AnyPolicy = Policy<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Composes policies into one, outermost first: `pipeline(a, b, c).execute(fn)`
 * runs `a`, which runs `b`, which runs `c`, which runs `fn`. Give options as the
 * first argument to name the pipeline (the `pipeline` label in metrics):
 *
 * ```ts
 * const auth = pipeline({ name: 'auth' }, fallback({ value: null }), retry(), timeout({ ms: 500 }));
 * ```
 *
 * Create one pipeline per dependency, once, and reuse it for every call: the
 * breaker's statistics and the bulkhead's slots live in the policies.
 */
export function pipeline<P extends AnyPolicy[]>(...policies: P): Pipeline<ExtraResult<P[number]>>;
export function pipeline<P extends AnyPolicy[]>(options: PipelineOptions, ...policies: P): Pipeline<ExtraResult<P[number]>>;
export function pipeline(...args: unknown[]): Pipeline<unknown> {
  const { options, policies } = checkPipelineArguments(args, PIPELINE_NAME);
  return new Pipeline(options, policies);
}

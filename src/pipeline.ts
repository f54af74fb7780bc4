import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { type Disposer, Emitter, type Event } from './events.ts';
import {
  type CallObserver,
  type Chain,
  type ExecuteOptions,
  type ExtraResult,
  type Outcome,
  type Policy,
  type Scope,
  type Work,
  callerSignalOf,
  NestedChain,
  outcomeOf,
  raceAbort,
  RootChain,
  settleWith,
  start,
  descendsPromptly,
  settlesPromptly,
} from './policy.ts';
import { checkOptions, clock as clockCheck, satisfies } from './validate.ts';

/** Payload of a pipeline's `onSettled` event. */
export interface SettledEvent {
  /** How the call ended. `cancelled` means the caller aborted it. */
  readonly outcome: Outcome;
  /** Wall time of the whole call through the pipeline, in milliseconds. */
  readonly durationMs: number;
  /** The error the call rejected with (`undefined` on success or fallback). */
  readonly error: unknown;
}

/**
 * How a pipeline times its calls: the clock it reads, whether its outermost
 * layer is a built-in policy that reports each call's end, and what it does
 * with the report.
 * @internal
 */
export interface Timing extends CallObserver {
  readonly clock: Clock;
  readonly outermostReports: boolean;
}

/**
 * Runs `layers` as one call: refuses an already-aborted caller signal without
 * calling the work, and rejects with the caller's reason as soon as it aborts.
 * With `timing`, the call's start is read and its end reported to the observer
 * by whatever settles the caller's promise: the race with the caller's signal,
 * the outermost layer, or failing those one more promise step.
 * @internal
 */
export function executeLayers<T>(
  owner: string,
  layers: readonly Policy<unknown>[],
  fn: Work<T>,
  options: ExecuteOptions | undefined,
  trust: number,
  timing?: Timing,
): Promise<T> {
  if (typeof fn !== 'function') {
    throw new TypeError(`${owner}.execute: the work must be a function; received ${fn === null ? 'null' : typeof fn}`);
  }
  const signal = callerSignalOf(owner, options);
  const chain = new RootChain(fn, layers, signal, trust);
  chain._descending = true;
  if (timing !== undefined) {
    chain._observedFrom = chain._now(timing.clock);
    chain._observer = timing;
    if (signal === undefined && timing.outermostReports) chain._reporter = layers[0];
  }
  let promise: Promise<T>;
  if (signal === undefined) {
    promise = timing === undefined ? start(chain, 0, undefined, 1) : startReported(chain, undefined, 1);
  } else if (signal.aborted) {
    promise = Promise.reject(signal.reason);
    if (timing !== undefined) promise = settleWith(chain, promise);
  } else {
    promise = raceAbort(start(chain, 0, { signal }, 1), signal, timing === undefined ? undefined : chain);
  }
  // The descent is over, whether it reached the work or stopped to wait (a
  // bulkhead queue): layers reached from now on read the clock themselves.
  chain._descending = false;
  return promise;
}

/**
 * Starts a timed call's layers. The outermost layer reports the end if it
 * claimed that duty (see `Chain._claimReport`) and returned its promise; when it
 * did not claim it, or threw instead of returning, one more step reports.
 * @internal
 */
function startReported<T>(chain: Chain<T>, scope: Scope | undefined, attempt: number): Promise<T> {
  let promise: Promise<T>;
  try {
    promise = chain.next(0, scope, attempt);
  } catch (error) {
    return settleWith(chain, Promise.reject(error));
  }
  return chain._claimed ? promise : settleWith(chain, promise);
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
  #selfTrust = -1;

  execute<T>(fn: Work<T>, options?: ExecuteOptions): Promise<T | R> {
    const self = (this.#self ??= [this as Policy<unknown>]);
    if (this.#selfTrust < 0) this.#selfTrust = descendsPromptly(self);
    return executeLayers<T | R>(this.kind, self, fn, options, this.#selfTrust);
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R> {
    return wrapWith(this, fn);
  }
}

function wrapWith<A extends unknown[], T, R>(
  policy: Policy<R>,
  fn: (...args: A) => T | PromiseLike<T>,
): (...args: A) => Promise<T | R> {
  if (typeof fn !== 'function') {
    throw new TypeError(`${policy.kind}.wrap: expected a function; received ${fn === null ? 'null' : typeof fn}`);
  }
  return function (this: unknown, ...args: A) {
    return policy.execute(() => fn.apply(this, args));
  };
}

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
  /** How many leading layers are built-in policies (see `Chain._endTime`). */
  readonly #prompt: number;
  readonly #trust: number;
  // Created on first use: an unobserved pipeline holds no timing and no emitter (~180 B each).
  #timing: PipelineTiming | undefined;
  #disposed: Emitter<void> | undefined;

  /** Use {@link pipeline} instead. @internal */
  constructor(options: PipelineOptions, policies: readonly Policy<unknown>[]) {
    this.name = options.name;
    this.#clock = options.clock ?? systemClock;
    this.policies = Object.freeze([...policies]);
    this.#trust = descendsPromptly(this.policies);
    let prompt = 0;
    while (prompt < policies.length && settlesPromptly(policies[prompt])) prompt++;
    this.#prompt = prompt;
  }

  /**
   * Fires once per call with its outcome and duration, before the caller sees
   * the result. When nobody listens (and no metrics sink is attached), calls are
   * not timed at all.
   */
  get onSettled(): Event<SettledEvent> {
    const timing = this.#timed();
    return (timing.settled ??= new Emitter()).subscribe;
  }

  /**
   * Adds a recorder told each call's outcome and duration, as `onSettled`
   * listeners are but without an event object: the Prometheus sink's channel.
   * Returns its remover.
   * @internal
   */
  _record(recorder: CallRecorder): Disposer {
    const timing = this.#timed();
    timing.recorders = [...timing.recorders, recorder];
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const index = timing.recorders.indexOf(recorder);
      if (index >= 0) timing.recorders = timing.recorders.filter((_, i) => i !== index);
    };
  }

  #timed(): PipelineTiming {
    return (this.#timing ??= new PipelineTiming(this.#clock, this.#prompt));
  }

  /** Fires when {@link Pipeline.dispose} is called: metrics sinks drop this pipeline's series. */
  get onDispose(): Event<void> {
    return (this.#disposed ??= new Emitter()).subscribe;
  }

  /** Tells attached telemetry this pipeline is gone, so its series can be removed. */
  dispose(): void {
    this.#disposed?.emit(undefined);
  }

  execute<T>(fn: Work<T>, options?: ExecuteOptions): Promise<T | R> {
    const timing = this.#timing;
    return executeLayers<T | R>('pipeline', this.policies, fn, options, this.#trust, timing !== undefined && timing.watched() ? timing : undefined);
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R> {
    return wrapWith(this, fn);
  }

  /** Trust marker: a pipeline runs no user code on the way in (see `descendsPromptly` in policy.ts). @internal */
  _descendsPromptly(): void {}

  /** @internal */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R> {
    const nested = new NestedChain<T>(chain, index, this.policies, this.#trust);
    const timing = this.#timing;
    if (timing === undefined || !timing.watched()) return start(nested, 0, scope, attempt);
    // As in executeLayers: the outermost layer reports the end, or one more step does.
    nested._observedFrom = nested._now(this.#clock);
    nested._observer = timing;
    if (this.#prompt > 0) nested._reporter = this.policies[0];
    return startReported(nested, scope, attempt);
  }
}

/**
 * Receives each call's outcome and duration from a pipeline timing its calls.
 * @internal
 */
export interface CallRecorder {
  record(outcome: Outcome, durationMs: number): void;
}

const NO_RECORDERS: readonly CallRecorder[] = Object.freeze([]);

/** A pipeline's timing of its calls: reports each call's outcome and duration to its recorders and `onSettled` listeners. */
class PipelineTiming implements Timing {
  readonly clock: Clock;
  readonly outermostReports: boolean;
  /** Made on the first `onSettled` subscription (~180 B): a pipeline with only a sink attached holds none. */
  settled: Emitter<SettledEvent> | undefined = undefined;
  recorders: readonly CallRecorder[] = NO_RECORDERS;
  readonly #prompt: number;

  constructor(clock: Clock, prompt: number) {
    this.clock = clock;
    this.outermostReports = prompt > 0;
    this.#prompt = prompt;
  }

  /** Whether anyone wants calls timed: when nobody does, they are not timed at all. */
  watched(): boolean {
    return this.recorders.length > 0 || (this.settled !== undefined && this.settled.active);
  }

  _callSettled(chain: Chain<unknown>, ok: boolean, error: unknown): void {
    const durationMs = chain._endTime(this.clock, this.#prompt) - chain._observedFrom;
    const outcome = outcomeOf(chain, ok, error);
    const recorders = this.recorders;
    for (let i = 0; i < recorders.length; i++) recorders[i]!.record(outcome, durationMs);
    const settled = this.settled;
    if (settled !== undefined && settled.active) settled.emit({ outcome, durationMs, error: ok ? undefined : error });
  }
}

type AnyPolicy = Policy<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function isPolicy(value: unknown): value is AnyPolicy {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AnyPolicy)._run === 'function' &&
    typeof (value as AnyPolicy).execute === 'function'
  );
}

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
  let options: PipelineOptions = {};
  let policies = args;
  if (args.length > 0 && !isPolicy(args[0])) {
    options = checkOptions<PipelineOptions>(
      'pipeline',
      args[0],
      {
        name: satisfies(
          'a string of 1 to 100 letters, digits or _ . : / - starting with a letter or digit (it becomes a metrics label value)',
          (v) => typeof v === 'string' && PIPELINE_NAME.test(v),
        ),
        clock: clockCheck,
      },
    );
    policies = args.slice(1);
  }
  policies.forEach((policy, i) => {
    if (!isPolicy(policy)) {
      throw new TypeError(
        `pipeline: argument ${i + (policies === args ? 1 : 2)} must be a policy (timeout(), retry(), …); received ${policy === null ? 'null' : typeof policy}`,
      );
    }
  });
  return new Pipeline(options, policies as AnyPolicy[]);
}

import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { Emitter, type Event } from './events.ts';
import {
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
 * Runs `layers` as one call: refuses an already-aborted caller signal without
 * calling the work, and rejects with the caller's reason as soon as it aborts.
 * @internal
 */
export function executeLayers<T>(
  owner: string,
  layers: readonly Policy<unknown>[],
  fn: Work<T>,
  options: ExecuteOptions | undefined,
  trust: number,
  timing?: Clock,
): { chain: RootChain<T>; promise: Promise<T>; startedAt: number } {
  if (typeof fn !== 'function') {
    throw new TypeError(`${owner}.execute: the work must be a function; received ${fn === null ? 'null' : typeof fn}`);
  }
  const signal = callerSignalOf(owner, options);
  const chain = new RootChain(fn, layers, signal, trust);
  chain._descending = true;
  const startedAt = timing === undefined ? 0 : chain._now(timing);
  let promise: Promise<T>;
  if (signal === undefined) promise = start(chain, 0, undefined, 1);
  else if (signal.aborted) promise = Promise.reject(signal.reason);
  else promise = raceAbort(start(chain, 0, { signal }, 1), signal);
  // The descent is over, whether it reached the work or stopped to wait (a
  // bulkhead queue): layers reached from now on read the clock themselves.
  chain._descending = false;
  return { chain, promise, startedAt };
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
    return executeLayers<T | R>(this.kind, self, fn, options, this.#selfTrust).promise;
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
  // Emitters are created on first subscription: an unobserved pipeline holds none (~180 B each).
  #settled: Emitter<SettledEvent> | undefined;
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
   * Fires once per call with its outcome and duration. Telemetry sinks use it;
   * when nobody listens, calls are not timed at all.
   */
  get onSettled(): Event<SettledEvent> {
    return (this.#settled ??= new Emitter()).subscribe;
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
    const settled = this.#settled;
    if (settled === undefined || !settled.active) return executeLayers<T | R>('pipeline', this.policies, fn, options, this.#trust).promise;
    const { chain, promise, startedAt } = executeLayers<T | R>('pipeline', this.policies, fn, options, this.#trust, this.#clock);
    return this.#observe(promise, chain, settled, startedAt);
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>): (...args: A) => Promise<T | R> {
    return wrapWith(this, fn);
  }

  /** Trust marker: a pipeline runs no user code on the way in (see `descendsPromptly` in policy.ts). @internal */
  _descendsPromptly(): void {}

  /** @internal */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R> {
    const nested = new NestedChain<T>(chain, index, this.policies, this.#trust);
    const settled = this.#settled;
    if (settled === undefined || !settled.active) return start(nested, 0, scope, attempt);
    const startedAt = nested._now(this.#clock);
    return this.#observe(start(nested, 0, scope, attempt), nested, settled, startedAt);
  }

  /** Reports the call's outcome and duration through `onSettled`, passing its result on. */
  #observe<V>(promise: Promise<V>, chain: Chain<unknown>, settled: Emitter<SettledEvent>, startedAt: number): Promise<V> {
    const clock = this.#clock;
    const prompt = this.#prompt;
    return promise.then(
      (value) => {
        const durationMs = chain._endTime(clock, prompt) - startedAt;
        settled.emit({ outcome: outcomeOf(chain, true, undefined), durationMs, error: undefined });
        return value;
      },
      (error: unknown) => {
        const durationMs = chain._endTime(clock, prompt) - startedAt;
        settled.emit({ outcome: outcomeOf(chain, false, error), durationMs, error });
        throw error;
      },
    );
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

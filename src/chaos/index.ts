/**
 * Fault injection as a policy, for game days and tests: throw an error, add
 * latency, or answer with a value, for a share of calls, only while enabled.
 * @packageDocumentation
 */
import { unwatchAbort, watchAbort } from '../core/abort.ts';
import { type Clock, type RandomSource, systemClock, systemRandom, type TimerHandle } from '../core/clock.ts';
import { Emitter, type Event } from '../core/events.ts';
import { type Chain, PolicyBase, type Scope } from '../core/protocol.ts';
import { type Check, checkOptions, clock as clockCheck, duration, either, fn, oneOf, received, satisfies } from '../core/validate.ts';

/** What every kind of injection shares. */
export interface ChaosCommonOptions {
  /** The share of calls to inject into while enabled: 0 to 1 (0.05 is one call in twenty). */
  readonly injectionRate: number;
  /**
   * Whether to inject at all, read on every call so a feature flag can drive it:
   * `true`, or a function returning `true`. Anything else, and the default, is off:
   * chaos never runs unless it is switched on explicitly.
   */
  readonly enabled?: boolean | (() => boolean);
  /** Random source deciding which calls are hit (default `Math.random`); `seededRandom` in tests. */
  readonly random?: RandomSource;
}

/** Throw `error` (or what `error()` returns) instead of calling the work. */
export interface ChaosFaultOptions extends ChaosCommonOptions {
  readonly kind: 'fault';
  /** The error to reject with, or a function making one per call. */
  readonly error: unknown;
}

/** Wait `ms` (abortable by the call's signal), then call the work. */
export interface ChaosLatencyOptions extends ChaosCommonOptions {
  readonly kind: 'latency';
  /** How long to delay, in ms (0 to 2,147,483,647), or a function returning it per call. */
  readonly ms: number | (() => number);
  /** Clock for the delay (default: the system clock). */
  readonly clock?: Clock;
}

/** Answer with `value` (or what `value()` returns) instead of calling the work. */
export interface ChaosOutcomeOptions<V> extends ChaosCommonOptions {
  readonly kind: 'outcome';
  /** The value to answer with, or a function making one per call. */
  readonly value: V | (() => V);
}

/** Options of {@link chaos}: one kind of injection per policy. */
export type ChaosOptions<V = never> = ChaosFaultOptions | ChaosLatencyOptions | ChaosOutcomeOptions<V>;

/** What a chaos policy injects. */
export type ChaosKind = 'fault' | 'latency' | 'outcome';

/** Payload of `onInjected`. */
export interface ChaosEvent {
  /** What was injected. */
  readonly kind: ChaosKind;
}

/** A delay in flight: the listener on the scope's signal while it waits. */
class Delay<T> {
  readonly #chain: Chain<T>;
  readonly #index: number;
  readonly #scope: Scope | undefined;
  readonly #attempt: number;
  readonly #clock: Clock;
  #timer: TimerHandle | undefined;
  #signal: AbortSignal | undefined;
  #resolve!: (value: Promise<T>) => void;
  #reject!: (error: unknown) => void;

  constructor(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number, clock: Clock) {
    this.#chain = chain;
    this.#index = index;
    this.#scope = scope;
    this.#attempt = attempt;
    this.#clock = clock;
  }

  start(ms: number): Promise<T> {
    const promise = new Promise<Promise<T>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const signal = this.#scope?.signal;
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    if (signal !== undefined) watchAbort((this.#signal = signal), this);
    this.#timer = this.#clock.schedule(this.#wake, ms);
    return promise.then((next) => next);
  }

  readonly #wake = (): void => {
    this.#timer = undefined;
    this.#unwatch();
    this.#resolve(this.#chain.next(this.#index + 1, this.#scope, this.#attempt));
  };

  /** The scope aborted during the delay: stop waiting, with its reason. */
  handleEvent(): void {
    const reason = this.#signal?.reason as unknown;
    this.#unwatch();
    if (this.#timer !== undefined) this.#clock.cancel(this.#timer);
    this.#timer = undefined;
    this.#reject(reason);
  }

  #unwatch(): void {
    if (this.#signal !== undefined) unwatchAbort(this.#signal, this);
    this.#signal = undefined;
  }
}

/** A chaos policy; create it with {@link chaos}. `R` is the injected outcome's type (`never` unless `kind: 'outcome'`). */
export class ChaosPolicy<R = never> extends PolicyBase<R> {
  /** Always `'chaos'`. */
  readonly kind = 'chaos';
  /** What this policy injects. */
  readonly injects: ChaosKind;
  /** The share of calls it injects into while enabled. */
  readonly injectionRate: number;
  readonly #enabled: boolean | (() => boolean);
  readonly #random: RandomSource;
  readonly #clock: Clock;
  readonly #make: (() => unknown) | undefined;
  readonly #constant: unknown;
  readonly #ms: number | (() => number);
  #injected: Emitter<ChaosEvent> | undefined;

  /** Use {@link chaos} instead. @internal */
  constructor(options: ChaosOptions<R>) {
    super();
    this.injects = options.kind;
    this.injectionRate = options.injectionRate;
    this.#enabled = options.enabled ?? false;
    this.#random = options.random ?? systemRandom;
    this.#clock = (options.kind === 'latency' ? options.clock : undefined) ?? systemClock;
    this.#ms = options.kind === 'latency' ? options.ms : 0;
    const given = options.kind === 'fault' ? options.error : options.kind === 'outcome' ? options.value : undefined;
    this.#make = typeof given === 'function' ? (given as () => unknown) : undefined;
    this.#constant = given;
  }

  /** Whether it injects now: `enabled` says so (read on every call). */
  get enabled(): boolean {
    const enabled = this.#enabled;
    return typeof enabled === 'function' ? enabled() === true : enabled === true;
  }

  /** Fires for every call it injects into (a metrics sink counts them by kind). */
  get onInjected(): Event<ChaosEvent> {
    return (this.#injected ??= new Emitter()).subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | R> {
    if (this.injectionRate === 0 || !this.enabled || !(this.#random() < this.injectionRate)) {
      return chain.next(index + 1, scope, attempt);
    }
    const emitter = this.#injected;
    if (emitter !== undefined && emitter.active) emitter.emit({ kind: this.injects });
    switch (this.injects) {
      case 'fault':
        return Promise.reject(this.#make !== undefined ? this.#make() : this.#constant);
      case 'outcome':
        return Promise.resolve((this.#make !== undefined ? this.#make() : this.#constant) as R);
      case 'latency': {
        const ms = typeof this.#ms === 'function' ? this.#ms() : this.#ms;
        duration(0)('chaos', 'ms', ms); // a function returning a bad delay rejects this call with a clear error
        return new Delay(chain, index, scope, attempt, this.#clock).start(ms);
      }
    }
  }
}

const rate: Check = (owner, key, value) => {
  if (typeof value === 'number' && value >= 0 && value <= 1) return;
  const message = `${owner}: option "${key}" must be a number from 0 to 1 (a share of calls: 0.05 is one in twenty); received ${received(value)}`;
  throw typeof value === 'number' && !Number.isNaN(value) ? new RangeError(message) : new TypeError(message);
};

const enabled = either('true, false or a function returning whether to inject', satisfies('a boolean', (v) => typeof v === 'boolean'), fn);

/**
 * Injects a fault, latency or an outcome into a share of calls, for game days and
 * resilience tests. Off unless `enabled` says otherwise, on every call.
 *
 * ```ts
 * const gameDay = { on: false };
 * const slowDb = chaos({ kind: 'latency', ms: 2_000, injectionRate: 0.1, enabled: () => gameDay.on });
 * ```
 */
export function chaos<V = never>(options: ChaosOptions<V>): ChaosPolicy<V> {
  const owner = 'chaos';
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${owner}: options must be an object; received ${received(options)}`);
  }
  const kind = (options as { kind?: unknown }).kind;
  oneOf('fault', 'latency', 'outcome')(owner, 'kind', kind);
  const common = { kind: oneOf('fault', 'latency', 'outcome'), injectionRate: rate, enabled, random: fn };
  const anything: Check = () => {};
  const what: Record<string, Check> = {
    fault: { error: anything },
    latency: { ms: either('a number of ms from 0 to 2147483647, or a function returning one', duration(0), fn), clock: clockCheck },
    outcome: { value: anything },
  }[kind as ChaosKind];
  const required = { fault: ['error'], latency: ['ms'], outcome: [] }[kind as ChaosKind];
  checkOptions(owner, options, { ...common, ...what }, ['injectionRate', ...required]);
  if (kind === 'outcome' && !Object.hasOwn(options, 'value')) {
    throw new TypeError(`${owner}: option "value" is required with kind "outcome"; received undefined`);
  }
  return new ChaosPolicy<V>(options);
}

/**
 * `breakwater/opossum`: adopt an existing opossum circuit breaker as a Breakwater
 * policy, so it composes in `pipeline(...)` and reports the same events (and so
 * the same metrics) as Breakwater's own breaker. See docs/reference/opossum.md.
 * @packageDocumentation
 */
import { type Clock, systemClock } from '../core/clock.ts';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  IsolatedCircuitError,
  TimeoutError,
} from '../core/errors.ts';
import { Emitter, type Event } from '../core/events.ts';
import { type Chain, PolicyBase, type Scope } from '../core/protocol.ts';
import type { TimeoutEvent } from '../timeout.ts';
import type { CircuitState, StateChangeReason } from '../circuit-breaker/options.ts';
import { bool, checkOptions, clock as clockCheck, received } from '../core/validate.ts';
import { OpossumCall, type OpossumCallContext, type OpossumRun } from './call.ts';

export type { OpossumCallContext, OpossumRun } from './call.ts';
export type { OpossumPolicy };

/**
 * The action to construct an adoptable opossum breaker with:
 * `new CircuitBreaker(runWork, options)`. It calls the work the adapter passes as
 * its first argument and returns its result. A custom action (to add tracing, say)
 * must do the same: call its first argument, and return what that returns.
 */
export function runWork(run: OpossumRun, context: OpossumCallContext): Promise<unknown> {
  return run(context);
}

// Loose listener type for the structural breaker interface, so that opossum's
// typed `on(...)` overloads (from @types/opossum) are assignable to it.
type AnyListener = (...args: any[]) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The parts of an opossum `CircuitBreaker` (opossum 8, 9 or 10) the adapter uses.
 * A breaker built with `new CircuitBreaker(runWork, options)` matches it; one
 * built around another action does not, because its `fire` takes other arguments.
 */
export interface OpossumBreaker {
  /** Runs the breaker's action with these arguments. */
  fire(run: OpossumRun, context: OpossumCallContext): PromiseLike<unknown>;
  /** Adds an event listener (Node's EventEmitter). */
  on(event: string, listener: AnyListener): unknown;
  /** Removes an event listener (Node's EventEmitter). */
  removeListener(event: string, listener: AnyListener): unknown;
  /** The breaker's name (opossum's `name` option). */
  readonly name: string;
  /** True while the circuit is open. */
  readonly opened: boolean;
  /** True while the circuit is half-open. */
  readonly halfOpen: boolean;
  /** True once `shutdown()` was called. */
  readonly isShutdown: boolean;
  /** False after `disable()`: calls then run unprotected. */
  readonly enabled: boolean;
}

export type { CircuitState } from '../circuit-breaker/options.ts';

/**
 * Why the adopted breaker changed state, in the words of Breakwater's own breaker
 * (`StateChangeReason`), so one dashboard or log reads both:
 * - `'failure-rate'`: closed → open (opossum's failure percentage over its threshold;
 *   also a failed health check or `breaker.open()`, which opossum reports the same way);
 * - `'probe-failed'`: half-open → open;
 * - `'cooldown-elapsed'`: open → half-open after opossum's `resetTimeout`;
 * - `'probes-succeeded'`: half-open → closed, a probe succeeded;
 * - `'reset'`: open or closed → closed by `breaker.close()`;
 * - `'isolated'`: → isolated, by `breaker.shutdown()` (permanent).
 */
export type OpossumStateChangeReason = Extract<
  StateChangeReason,
  'failure-rate' | 'probe-failed' | 'cooldown-elapsed' | 'probes-succeeded' | 'reset' | 'isolated'
>;

/** Payload of `onStateChange`. */
export interface OpossumStateChangeEvent {
  /** The state before the change. */
  readonly from: CircuitState;
  /** The state after the change. */
  readonly to: CircuitState;
  /** What caused it. */
  readonly reason: OpossumStateChangeReason;
}

/** Payload of `onReject`. */
export interface OpossumRejectEvent {
  /** The state that refused the call: 'open', or 'half-open' while its one probe is in flight. */
  readonly state: 'open' | 'half-open';
  /** The `BrokenCircuitError` the caller receives (opossum's error is its `cause`). */
  readonly error: BrokenCircuitError;
}

/** Payload of `onSuccess`. */
export interface OpossumSuccessEvent {
  /** How long the call took, as measured by opossum, in ms. */
  readonly durationMs: number;
}

/** Payload of `onFailure`. */
export interface OpossumFailureEvent {
  /** How long the call took, as measured by opossum, in ms. */
  readonly durationMs: number;
  /** The error, translated like the caller's (a timeout is a `TimeoutError`, a full breaker a `BulkheadRejectedError`). */
  readonly error: unknown;
}

/** Options of {@link fromOpossum}. */
export interface FromOpossumOptions {
  /**
   * Clock used only to compute `BrokenCircuitError.retryAfterMs` from the time the
   * circuit opened. opossum runs its own timers (`setTimeout`), so this clock must
   * tell the same time as they do (default: the system clock).
   */
  readonly clock?: Clock;
  /**
   * Set it when the breaker's action is not {@link runWork} but one of your own
   * that calls its first argument and returns its result (to add tracing, say).
   * Without it, a breaker built around any other action is refused at once,
   * before any of your code runs (default `false`).
   */
  readonly customAction?: boolean;
}

const OPOSSUM_ERROR_CODES = new Set(['EOPENBREAKER', 'ETIMEDOUT', 'ESEMLOCKED', 'ESHUTDOWN']);

/** Options opossum keeps on the breaker (`breaker.options`); not part of @types/opossum. */
interface OpossumOptionsView {
  readonly timeout?: unknown;
  readonly resetTimeout?: unknown;
  readonly capacity?: unknown;
  readonly cache?: unknown;
  readonly coalesce?: unknown;
}

/** One opossum event relayed to a Breakwater event, attached only while someone listens. */
class Relay<E> {
  readonly emitter = new Emitter<E>();
  #attached = false;
  readonly #owner: OpossumPolicy;
  readonly #breaker: OpossumBreaker;
  readonly #event: string;
  readonly #handler: AnyListener;

  constructor(owner: OpossumPolicy, breaker: OpossumBreaker, event: string, handler: AnyListener) {
    this.#owner = owner;
    this.#breaker = breaker;
    this.#event = event;
    this.#handler = handler;
  }

  readonly subscribe: Event<E> = (listener) => {
    this.#owner._assertLive();
    const unsubscribe = this.emitter.subscribe(listener);
    if (!this.#attached) {
      this.#breaker.on(this.#event, this.#handler);
      this.#attached = true;
    }
    return () => {
      unsubscribe();
      if (!this.emitter.active) this.detach();
    };
  };

  detach(): void {
    if (this.#attached) {
      this.#attached = false;
      this.#breaker.removeListener(this.#event, this.#handler);
    }
  }

  /** opossum's `shutdown()` removed every listener itself. */
  forget(): void {
    this.#attached = false;
  }
}

/**
 * An opossum breaker adopted as a Breakwater policy; create it with {@link fromOpossum}.
 * Its events have the shapes of Breakwater's own breaker, so metrics sinks and
 * dashboards treat both alike.
 */
class OpossumPolicy extends PolicyBase {
  /** Always `'opossum'`. */
  readonly kind = 'opossum';
  /** The adopted opossum breaker. */
  readonly breaker: OpossumBreaker;
  readonly #options: OpossumOptionsView | undefined;
  readonly #isOurError: (error: object) => boolean;
  readonly #clock: Clock;
  /** opossum's own errors already translated (by an event listener), so caller and listeners see one instance. */
  readonly #translated = new WeakMap<object, unknown>();
  readonly #stateChange = new Emitter<OpossumStateChangeEvent>();
  readonly #subscribeStateChange: Event<OpossumStateChangeEvent> = (listener) => {
    this._assertLive();
    return this.#stateChange.subscribe(listener);
  };
  readonly #reject: Relay<OpossumRejectEvent>;
  readonly #success: Relay<OpossumSuccessEvent>;
  readonly #failure: Relay<OpossumFailureEvent>;
  readonly #timeout: Relay<TimeoutEvent>;
  readonly #stateListeners: readonly (readonly [string, AnyListener])[];
  #last: CircuitState;
  #openedAt: number | undefined;
  #disposed = false;

  /** Use {@link fromOpossum} instead. @internal */
  constructor(breaker: OpossumBreaker, isOurError: (error: object) => boolean, options: FromOpossumOptions) {
    super();
    this.breaker = breaker;
    this.#options = (breaker as { options?: OpossumOptionsView }).options;
    this.#isOurError = isOurError;
    this.#clock = options.clock ?? systemClock;
    this.#last = this.state;

    this.#reject = new Relay(this, breaker, 'reject', (error: unknown) => {
      const translated = this.#remember(error);
      if (translated instanceof BrokenCircuitError) {
        this.#reject.emitter.emit({ state: this.breaker.halfOpen ? 'half-open' : 'open', error: translated });
      }
    });
    this.#success = new Relay(this, breaker, 'success', (_result: unknown, latencyMs: unknown) => {
      this.#success.emitter.emit({ durationMs: latencyOf(latencyMs) });
    });
    this.#failure = new Relay(this, breaker, 'failure', (error: unknown, latencyMs: unknown) => {
      this.#failure.emitter.emit({ durationMs: latencyOf(latencyMs), error: this.#remember(error) });
    });
    this.#timeout = new Relay(this, breaker, 'timeout', (error: unknown, _latencyMs: unknown, args: unknown) => {
      const call = Array.isArray(args) ? (args[1] as unknown) : undefined;
      const translated = this.#remember(error);
      this.#timeout.emitter.emit({
        timeoutMs: translated instanceof TimeoutError ? translated.timeoutMs : this.#timeoutMs(),
        attempt: call instanceof OpossumCall ? call.attempt : 1,
      });
    });

    // State listeners stay attached until dispose(): they record when the circuit
    // opened (for retryAfterMs) and the state each change comes from.
    this.#stateListeners = [
      [
        'open',
        () => {
          this.#openedAt = this.#clock.now();
          this.#transition('open', this.#last === 'half-open' ? 'probe-failed' : 'failure-rate');
        },
      ],
      ['halfOpen', () => this.#transition('half-open', 'cooldown-elapsed')],
      [
        'close',
        () => {
          this.#openedAt = undefined;
          this.#transition('closed', this.#last === 'half-open' ? 'probes-succeeded' : 'reset');
        },
      ],
      [
        'shutdown',
        () => {
          this.#transition('isolated', 'isolated');
          // opossum removes every listener right after this event.
          for (const relay of this.#relays()) relay.forget();
        },
      ],
    ];
    for (const [event, listener] of this.#stateListeners) breaker.on(event, listener);
  }

  /**
   * The adopted breaker's state, read from it: `'isolated'` once it was shut
   * down, `'open'`, `'half-open'`, else `'closed'`. A disabled opossum breaker
   * (`breaker.disable()`) lets every call through, so it reads `'closed'`.
   */
  get state(): CircuitState {
    const breaker = this.breaker;
    if (breaker.isShutdown) return 'isolated';
    if (!breaker.enabled) return 'closed';
    if (breaker.opened) return 'open';
    if (breaker.halfOpen) return 'half-open';
    return 'closed';
  }

  /** Fires when opossum opens, half-opens, closes or shuts down the circuit. */
  get onStateChange(): Event<OpossumStateChangeEvent> {
    return this.#subscribeStateChange;
  }

  /** Fires when opossum refuses a call because the circuit is open (its `reject` event). */
  get onReject(): Event<OpossumRejectEvent> {
    return this.#reject.subscribe;
  }

  /** Fires when opossum counts a success (its `success` event; see the docs about `errorFilter`). */
  get onSuccess(): Event<OpossumSuccessEvent> {
    return this.#success.subscribe;
  }

  /** Fires when opossum counts a failure, timeouts and full-capacity refusals included (its `failure` event). */
  get onFailure(): Event<OpossumFailureEvent> {
    return this.#failure.subscribe;
  }

  /** Fires when opossum's own `timeout` expires for a call (its `timeout` event). */
  get onTimeout(): Event<TimeoutEvent> {
    return this.#timeout.subscribe;
  }

  /**
   * Removes every listener this adapter added to the opossum breaker, and ends its
   * events. Calls still run through the breaker afterwards (it remains yours), but
   * `retryAfterMs` is then always 0 and subscribing to an event throws. Calling it
   * again does nothing.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const [event, listener] of this.#stateListeners) this.breaker.removeListener(event, listener);
    for (const relay of this.#relays()) relay.detach();
    this.#openedAt = undefined;
  }

  /** @internal */
  _assertLive(): void {
    if (this.#disposed) {
      throw new Error('fromOpossum: this adapter was disposed; adopt the breaker again with fromOpossum(breaker)');
    }
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const call = new OpossumCall(chain as Chain<unknown>, index, scope, attempt, Boolean(this.#options?.timeout));
    let fired: PromiseLike<unknown>;
    try {
      fired = this.breaker.fire(call.run, call);
    } catch (error) {
      // A disabled opossum breaker calls the action outside any try block.
      call.finish();
      return Promise.reject(this.#translate(error));
    }
    return Promise.resolve(fired).then(
      (value) => {
        call.finish();
        if (!call.started && !hasOpossumFallback(this.breaker)) throw actionContractError(this.breaker);
        return value as T;
      },
      (error: unknown) => {
        const translated = this.#translate(error);
        if (translated instanceof TimeoutError && translated !== error) call.expire(translated);
        else call.finish();
        throw translated;
      },
    );
  }

  #relays(): Relay<unknown>[] {
    return [this.#reject, this.#success, this.#failure, this.#timeout] as Relay<unknown>[];
  }

  #transition(to: CircuitState, reason: OpossumStateChangeReason): void {
    const from = this.#last;
    this.#last = to;
    if (from !== to && this.#stateChange.active) this.#stateChange.emit({ from, to, reason });
  }

  #ours(error: unknown): error is Error & { code: string } {
    return (
      typeof error === 'object' &&
      error !== null &&
      OPOSSUM_ERROR_CODES.has((error as { code?: unknown }).code as string) &&
      this.#isOurError(error)
    );
  }

  /** Translates one of opossum's own errors; anything else (the work's errors, the caller's abort reason) is returned unchanged. */
  #translate(error: unknown): unknown {
    if (!this.#ours(error)) return error;
    return this.#translated.get(error) ?? this.#create(error);
  }

  /** Translates and remembers, so the caller later receives the same instance as the event listeners. */
  #remember(error: unknown): unknown {
    if (!this.#ours(error)) return error;
    let translated = this.#translated.get(error);
    if (translated === undefined) {
      translated = this.#create(error);
      this.#translated.set(error, translated);
    }
    return translated;
  }

  #create(error: Error & { code: string }): unknown {
    const name = this.breaker.name;
    let translated: Error;
    const cause = { cause: error }; // opossum's own error stays reachable
    switch (error.code) {
      case 'EOPENBREAKER': {
        const halfOpen = this.breaker.halfOpen;
        translated = new BrokenCircuitError(
          this.#retryAfterMs(),
          halfOpen
            ? `the opossum breaker "${name}" is half-open and its probe is in flight: the call was not made`
            : `the opossum breaker "${name}" is open: the call was not made`,
          cause,
        );
        break;
      }
      case 'ETIMEDOUT':
        translated = new TimeoutError(this.#timeoutMs(), cause);
        break;
      case 'ESEMLOCKED': {
        const capacity = this.#options?.capacity;
        const maxConcurrent = typeof capacity === 'number' ? capacity : Number.MAX_SAFE_INTEGER;
        translated = new BulkheadRejectedError(
          maxConcurrent,
          0,
          `the opossum breaker "${name}" already runs its capacity of ${maxConcurrent} calls: the call was not made`,
          cause,
        );
        break;
      }
      case 'ESHUTDOWN':
        translated = new IsolatedCircuitError(cause);
        break;
      default:
        return error;
    }
    return translated;
  }

  #timeoutMs(): number {
    const timeout = this.#options?.timeout;
    return typeof timeout === 'number' ? timeout : 0;
  }

  /** Time left until opossum half-opens the circuit, when the adapter saw it open; else 0. */
  #retryAfterMs(): number {
    const resetTimeout = this.#options?.resetTimeout;
    if (this.#openedAt === undefined || !this.breaker.opened || typeof resetTimeout !== 'number') return 0;
    return Math.max(0, Math.ceil(this.#openedAt + resetTimeout - this.#clock.now()));
  }
}

function latencyOf(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/**
 * True when opossum has a fallback function (its value, not the work's, may then
 * resolve a call). opossum keeps it under a private symbol; when that symbol
 * cannot be found, assume a fallback rather than accuse the action wrongly.
 */
function hasOpossumFallback(breaker: object): boolean {
  for (const symbol of Object.getOwnPropertySymbols(breaker)) {
    if (symbol.description === 'fallback') return typeof (breaker as Record<symbol, unknown>)[symbol] === 'function';
  }
  return true;
}

/** `runWork` from this copy of Breakwater or from another one (an ESM and a CJS copy, say). */
function isRunWork(action: Function): boolean { // eslint-disable-line @typescript-eslint/no-unsafe-function-type
  return action === runWork || (action.name === 'runWork' && action.length === 2);
}

function actionContractError(breaker: OpossumBreaker): TypeError {
  return new TypeError(
    `fromOpossum: the action of the opossum breaker "${breaker.name}" resolved without calling the work it was given. ` +
      'Create the breaker with new CircuitBreaker(runWork, options) (runWork from breakwater/opossum), or with an ' +
      'action that calls its first argument and returns its result',
  );
}

/** Describes a value that should have been an opossum breaker. */
function describeBreaker(value: unknown): string {
  if (typeof value !== 'object' || value === null) return received(value);
  const missing = ['fire', 'on', 'removeListener'].filter((key) => typeof (value as Record<string, unknown>)[key] !== 'function');
  return missing.length > 0 ? `an object without ${missing.join(', ')}` : 'an object whose class has no static isOurError';
}

/**
 * Adopts an existing opossum `CircuitBreaker` as a Breakwater policy: calls run
 * through `breaker.fire(...)`, opossum's errors become Breakwater's
 * (`BrokenCircuitError`, `TimeoutError`, `BulkheadRejectedError`,
 * `IsolatedCircuitError`, with opossum's error as `cause`), and its events become
 * the events of Breakwater's own breaker.
 *
 * The breaker must be created with the action {@link runWork} (or one that calls
 * its first argument and returns its result), so that each call runs the work
 * given to `execute`; and without opossum's `cache` or `coalesce` options. Call
 * `dispose()` when you drop the adapter but keep the breaker.
 *
 * ```ts
 * const breaker = new CircuitBreaker(runWork, { name: 'auth', timeout: 1_000, resetTimeout: 5_000 });
 * const auth = pipeline({ name: 'auth' }, fallback({ value: null }), fromOpossum(breaker));
 * ```
 */
export function fromOpossum(breaker: OpossumBreaker, options?: FromOpossumOptions): OpossumPolicy {
  const ctor = typeof breaker === 'object' && breaker !== null ? (breaker as { constructor?: unknown }).constructor : undefined;
  const isOurError = typeof ctor === 'function' ? (ctor as { isOurError?: unknown }).isOurError : undefined;
  if (
    typeof breaker !== 'object' ||
    breaker === null ||
    typeof breaker.fire !== 'function' ||
    typeof breaker.on !== 'function' ||
    typeof breaker.removeListener !== 'function' ||
    typeof isOurError !== 'function'
  ) {
    throw new TypeError(`fromOpossum: breaker must be an opossum CircuitBreaker; received ${describeBreaker(breaker)}`);
  }
  const breakerOptions = (breaker as { options?: OpossumOptionsView }).options;
  for (const key of ['cache', 'coalesce'] as const) {
    const value = breakerOptions?.[key];
    if (value !== undefined && value !== false) {
      throw new TypeError(
        `fromOpossum: the breaker's option "${key}" must be off (each call passes new arguments to opossum, ` +
          `so one cached result would answer every call); received ${received(value)}`,
      );
    }
  }
  const checked = checkOptions<FromOpossumOptions>('fromOpossum', options, { clock: clockCheck, customAction: bool });
  const action = (breaker as { action?: unknown }).action;
  if (typeof action === 'function' && !isRunWork(action) && checked.customAction !== true) {
    const name = typeof action.name === 'string' && action.name !== '' ? ` (${action.name})` : '';
    throw new TypeError(
      `fromOpossum: the opossum breaker "${breaker.name}" was built around another action${name}, which would be called with ` +
        "the adapter's arguments instead of its own. Build it with new CircuitBreaker(runWork, options) (runWork from " +
        'breakwater/opossum); if your action calls its first argument and returns its result, pass { customAction: true }',
    );
  }
  const test = isOurError as (error: object) => unknown;
  return new OpossumPolicy(breaker, (error) => test.call(ctor, error) === true, checked);
}

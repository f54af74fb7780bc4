/**
 * The admission gate of `breakwater/http`: how many requests a server works on
 * at once, which class each one belongs to, and which are shed when the limit
 * is reached. The limit itself is a {@link BulkheadPolicy} (fixed) or an
 * {@link AdaptiveLimitPolicy} (learned from the server's own latency); the gate
 * decides admission per class on top of it and holds one of its slots for every
 * admitted request, until the response closes.
 */
import { type AdaptiveLimitOptions, type AdaptiveLimitPolicy, adaptiveLimit } from '../adaptive-limit/policy.ts';
import { isLimitAlgorithm } from '../adaptive-limit/algorithms.ts';
import { bulkhead, type BulkheadPolicy } from '../bulkhead.ts';
import type { Clock } from '../core/clock.ts';
import { Emitter, type Event } from '../core/events.ts';
import { PIPELINE_NAME } from '../core/pipeline.ts';
import { checkNested, checkOptions, clock as clockCheck, fn, integer, plainObject, received, satisfies, share } from '../core/validate.ts';

/** The class of requests that no `classes` entry names (and of every request without `classify`). */
export const DEFAULT_CLASS = 'default';

/** A priority class of {@link HttpGateOptions.classes}. */
export interface HttpGateClass {
  /**
   * The share of the limit kept for this class alone: a number above 0 and at
   * most 1. A limit of 40 with `share: 0.1` keeps 4 slots that only this class
   * may use; at least 1 slot while the limit has room for it.
   */
  readonly share: number;
}

/** How an adaptive gate learns its limit: the options of `adaptiveLimit` that make sense for incoming requests. */
export type HttpGateAdaptiveOptions = Pick<AdaptiveLimitOptions, 'algorithm' | 'minLimit' | 'maxLimit' | 'initialLimit'>;

/** Options of {@link httpGate}. */
export interface HttpGateOptions {
  /**
   * The gate's name: the `gate` label of its metrics. 1 to 100 letters, digits
   * or `_ . : / -`, starting with a letter or digit. Required.
   */
  readonly name: string;
  /** A fixed limit: how many requests may be in flight at once (a `bulkhead`). An integer from 1. Give this or `adaptive`. */
  readonly maxConcurrent?: number;
  /**
   * An adaptive limit (an `adaptiveLimit`) that learns from how long the
   * server takes to answer: `{ algorithm: gradient(), minLimit, maxLimit, initialLimit }`.
   * A response with status 503 from the handler itself counts as a drop.
   * Give this or `maxConcurrent`.
   */
  readonly adaptive?: HttpGateAdaptiveOptions;
  /**
   * Priority classes by name, each with the share of the limit reserved for
   * it, such as `{ health: { share: 0.05 }, checkout: { share: 0.5 } }`. The
   * shares add up to at most 1; what they leave is shared by every class
   * (a class over its own share competes for it too). Requests of the
   * `default` class have only that shared part, so they are shed first.
   * Names follow the `name` rule (they become the `class` label).
   */
  readonly classes?: Readonly<Record<string, HttpGateClass>>;
  /**
   * The class of a request, from its method, URL or headers. It runs before
   * any other work; a result that names no class (or `undefined`) is the
   * `default` class. Default: every request is `default`.
   */
  readonly classify?: (request: GateRequest) => string | undefined;
  /** The `Retry-After` header of a shed request's `503`, in seconds (default 1). An integer from 0 to 86,400. */
  readonly retryAfterSeconds?: number;
  /**
   * Called with the error when a handler throws or its promise rejects. The
   * gate has already answered `500` (or closed the connection, if the response
   * had started) and released the request's slot. Default: the error is
   * rethrown on a later microtask, where the process's normal handling sees it.
   */
  readonly onError?: (error: unknown, request: GateRequest) => void;
  /** Clock for the adaptive limit's timings (default: the system clock). */
  readonly clock?: Clock;
}

/** What the gate reads from an incoming request: a `node:http` `IncomingMessage` has all of it. */
export interface GateRequest {
  /** The request method, such as `'GET'`. */
  readonly method?: string | undefined;
  /** The request target: path and query, such as `'/healthz'`. */
  readonly url?: string | undefined;
  /** The request headers, with lower-case names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** Counts of one class, read live (the metrics sink reads them at scrape time). */
export interface HttpGateClassStats {
  /** The class name. */
  readonly name: string;
  /** The configured share (0 for `default` unless it is configured). */
  readonly share: number;
  /** Slots reserved for this class under the current limit. */
  readonly reserved: number;
  /** Requests of this class in flight now. */
  readonly inFlight: number;
  /** Requests of this class admitted since the gate was created. */
  readonly admitted: number;
  /** Requests of this class shed (answered `503`) since the gate was created. */
  readonly shed: number;
}

/** Payload of `onShed`. */
export interface ShedEvent {
  /** The class of the shed request. */
  readonly class: string;
}

/** An admitted request's hold on the gate; give it back with {@link GatePermit.release} exactly when the request is over. */
export interface GatePermit {
  /** The request's class. */
  readonly class: string;
  /**
   * Gives the slot back; later calls do nothing. `'ok'`: the response was
   * sent; `'dropped'`: the server was overloaded (an adaptive limit lowers
   * itself); `'abandoned'`: the client went away or the handler failed (an
   * adaptive limit learns nothing from it).
   */
  release(outcome?: 'ok' | 'dropped' | 'abandoned'): void;
}

/** The settings a gate runs with, in one visible place. */
export const HTTP_GATE_DEFAULTS: Readonly<{ retryAfterSeconds: number }> = Object.freeze({ retryAfterSeconds: 1 });

/** One class's counts. The reservation is recomputed when the limit changes. */
class ClassState implements HttpGateClassStats {
  readonly name: string;
  readonly share: number;
  reserved = 0;
  inFlight = 0;
  admitted = 0;
  shed = 0;
  readonly shedEvent: ShedEvent;

  constructor(name: string, classShare: number) {
    this.name = name;
    this.share = classShare;
    this.shedEvent = Object.freeze({ class: name });
  }
}

/** Why a held slot ends: the adaptive limit learns from `DROPPED` only. */
const DROPPED = Object.freeze(new Error('the server dropped the request: overloaded'));
const ABANDONED = Object.freeze(new Error('the request ended before its response did'));
const isGateDrop = (error: unknown): boolean => error === DROPPED;
const ignore = (): void => {};

/**
 * One admitted request. While it is in flight it holds a slot of the gate's
 * limiter: the limiter runs {@link Permit.hold} as its work, which settles when
 * the permit is released.
 */
class Permit implements GatePermit {
  readonly #gate: HttpGate;
  readonly #state: ClassState;
  #outcome: 'ok' | 'dropped' | 'abandoned' | undefined = undefined;
  #settle: ((outcome: 'ok' | 'dropped' | 'abandoned') => void) | undefined = undefined;

  constructor(gate: HttpGate, state: ClassState) {
    this.#gate = gate;
    this.#state = state;
  }

  get class(): string {
    return this.#state.name;
  }

  /** The limiter's work: a promise that settles when the request is over. */
  readonly hold = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const settle = (outcome: 'ok' | 'dropped' | 'abandoned'): void => {
        if (outcome === 'ok') resolve();
        else reject(outcome === 'dropped' ? DROPPED : ABANDONED);
      };
      // Released before the limiter got to it (see HttpGate.tryAcquire): settle now.
      if (this.#outcome !== undefined) settle(this.#outcome);
      else this.#settle = settle;
    });

  release(outcome: 'ok' | 'dropped' | 'abandoned' = 'ok'): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = outcome;
    this.#gate._release(this.#state);
    this.#settle?.(outcome);
  }
}

/** An admission gate; create it with {@link httpGate}. */
export class HttpGate {
  /** Always `'http-gate'`. */
  readonly kind = 'http-gate';
  /** The gate's name: the `gate` label of its metrics. */
  readonly name: string;
  /** The `Retry-After` of a shed request, in seconds. */
  readonly retryAfterSeconds: number;
  /**
   * The limiter whose slots admitted requests hold: a `bulkhead` (change its
   * `maxConcurrent` to move a fixed limit) or an `adaptiveLimit`.
   */
  readonly limiter: BulkheadPolicy | AdaptiveLimitPolicy;
  /** Every class, configured ones first in their order, `default` last unless configured. */
  readonly classes: readonly HttpGateClassStats[];
  readonly #states: readonly ClassState[];
  readonly #byName: ReadonlyMap<string, ClassState>;
  readonly #default: ClassState;
  readonly #classify: ((request: GateRequest) => string | undefined) | undefined;
  readonly #onError: ((error: unknown, request: GateRequest) => void) | undefined;
  readonly #shed = new Emitter<ShedEvent>();
  #inFlight = 0;
  /** The limit the reservations were computed for, and their sum. */
  #reservedFor = -1;
  #reservedTotal = 0;

  /** Use {@link httpGate} instead. @internal */
  constructor(
    name: string,
    limiter: BulkheadPolicy | AdaptiveLimitPolicy,
    classes: ReadonlyMap<string, number>,
    options: Pick<HttpGateOptions, 'classify' | 'onError'> & { retryAfterSeconds: number },
  ) {
    this.name = name;
    this.limiter = limiter;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.#classify = options.classify;
    this.#onError = options.onError;
    const states = [...classes].map(([className, classShare]) => new ClassState(className, classShare));
    if (!classes.has(DEFAULT_CLASS)) states.push(new ClassState(DEFAULT_CLASS, 0));
    this.#states = states;
    this.classes = states;
    this.#byName = new Map(states.map((s) => [s.name, s]));
    this.#default = this.#byName.get(DEFAULT_CLASS)!;
  }

  /** The limit now: the bulkhead's `maxConcurrent` or the adaptive limit's `limit`. */
  get limit(): number {
    const limiter = this.limiter;
    return limiter.kind === 'bulkhead' ? limiter.maxConcurrent : limiter.limit;
  }

  /** Requests in flight now, over every class. Never above `limit` when they were admitted. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Fires when a request is shed, with its class. */
  get onShed(): Event<ShedEvent> {
    return this.#shed.subscribe;
  }

  /** The class `classify` gives a request (`default` when it names none). A `classify` that throws counts as `default`; its error goes to `onError`. */
  classOf(request: GateRequest): string {
    const classify = this.#classify;
    if (classify === undefined) return DEFAULT_CLASS;
    let name: string | undefined;
    try {
      name = classify(request);
    } catch (error) {
      this._report(error, request);
    }
    return this.#byName.get(name as string)?.name ?? DEFAULT_CLASS;
  }

  /**
   * Admits one request of class `className` (unknown names are `default`), or
   * sheds it: returns its permit, or `undefined` when it must be answered `503`.
   * A request is admitted while the gate has a free slot that its class may
   * use: one of its class's reserved slots, or one of the shared ones. The
   * permit must be released exactly when the request is over; the `node:http`,
   * Express and Fastify wrappers do that on the response's `close`.
   */
  tryAcquire(className: string = DEFAULT_CLASS): GatePermit | undefined {
    const state = this.#byName.get(className) ?? this.#default;
    const limit = this.limit;
    if (limit !== this.#reservedFor) this.#reserve(limit);
    const admitted = this.#inFlight < limit && (state.inFlight < state.reserved || this.#overflow() < limit - this.#reservedTotal);
    if (!admitted) {
      state.shed++;
      if (this.#shed.active) this.#shed.emit(state.shedEvent);
      return undefined;
    }
    state.inFlight++;
    state.admitted++;
    this.#inFlight++;
    const permit = new Permit(this, state);
    // The limiter takes the slot now (the gate admitted within its limit). A slot
    // given back in this same turn reaches the limiter a microtask later, so the
    // limiter's queue holds the permit until then; it never refuses it.
    this.limiter.execute(permit.hold).then(ignore, ignore);
    return permit;
  }

  /** A permit was released. @internal */
  _release(state: ClassState): void {
    state.inFlight--;
    this.#inFlight--;
  }

  /** Passes a handler's or `classify`'s error to `onError`, or rethrows it on a microtask. @internal */
  _report(error: unknown, request: GateRequest): void {
    const onError = this.#onError;
    if (onError === undefined) {
      queueMicrotask(() => {
        throw error;
      });
      return;
    }
    try {
      onError(error, request);
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
    }
  }

  /** Requests in flight beyond their class's reservation: what the shared slots hold. */
  #overflow(): number {
    let overflow = 0;
    for (const s of this.#states) if (s.inFlight > s.reserved) overflow += s.inFlight - s.reserved;
    return overflow;
  }

  /**
   * Splits `limit` into reservations, in the classes' order: `floor(limit × share)`,
   * at least 1, and never more than the limit has left.
   */
  #reserve(limit: number): void {
    let left = limit;
    for (const s of this.#states) {
      const wanted = s.share > 0 ? Math.max(1, Math.floor(limit * s.share)) : 0;
      s.reserved = Math.min(left, wanted);
      left -= s.reserved;
    }
    this.#reservedFor = limit;
    this.#reservedTotal = limit - left;
  }
}

const OWNER = 'httpGate';
const NAME_RULE = '1 to 100 letters, digits or _ . : / - starting with a letter or digit';
const isName = (v: unknown): boolean => typeof v === 'string' && PIPELINE_NAME.test(v);

/**
 * An admission gate for an HTTP server: at most a fixed (`maxConcurrent`) or
 * adaptive (`adaptive`) number of requests in flight; over it, requests are
 * answered `503` with `Retry-After` at once, before any handler work. Priority
 * classes keep a share of the limit for their own requests (health checks,
 * critical routes); the rest is shared, so the other requests are shed first.
 * Wrap a `node:http` listener with {@link gateListener}, or use
 * `gateMiddleware` (Express) or `gatePlugin` (Fastify). See docs/reference/http.md.
 *
 * ```ts
 * const gate = httpGate({
 *   name: 'api',
 *   maxConcurrent: 64,
 *   classes: { health: { share: 0.05 } },
 *   classify: (request) => (request.url === '/healthz' ? 'health' : undefined),
 * });
 * ```
 */
export function httpGate(options: HttpGateOptions): HttpGate {
  const checked = checkOptions<HttpGateOptions>(
    OWNER,
    options,
    {
      name: satisfies(NAME_RULE, isName),
      maxConcurrent: integer(1),
      adaptive: plainObject,
      classes: plainObject,
      classify: fn,
      retryAfterSeconds: integer(0, 86_400),
      onError: fn,
      clock: clockCheck,
    },
    ['name'],
    {
      limit: 'a fixed limit is maxConcurrent; an adaptive one is adaptive: { algorithm, minLimit, maxLimit }',
      partitions: "concurrency-limits' partitions are classes: { name: { share } }",
      maxQueue: 'the gate never queues: a request over the limit is answered 503 at once',
    },
  );
  if ((checked.maxConcurrent === undefined) === (checked.adaptive === undefined)) {
    throw new TypeError(
      `${OWNER}: give exactly one of the options "maxConcurrent" (a fixed limit) and "adaptive" (a learned one); ` +
        `received maxConcurrent ${received(checked.maxConcurrent)} and adaptive ${received(checked.adaptive)}`,
    );
  }
  const classes = checkClasses(checked.classes);
  let limiter: BulkheadPolicy | AdaptiveLimitPolicy;
  if (checked.maxConcurrent !== undefined) {
    // A queue as long as the limit only bridges the microtask between a release and the bulkhead seeing it.
    limiter = bulkhead({ maxConcurrent: checked.maxConcurrent, maxQueue: checked.maxConcurrent });
  } else {
    const adaptive = checkNested<HttpGateAdaptiveOptions>(
      OWNER,
      'adaptive',
      checked.adaptive,
      { algorithm: satisfies('an algorithm made by aimd() or gradient()', isLimitAlgorithm), minLimit: integer(1), maxLimit: integer(1), initialLimit: integer(1) },
      ['algorithm'],
    );
    const maxLimit = adaptive.maxLimit ?? Math.max(adaptive.minLimit ?? 1, 200);
    limiter = adaptiveLimit({
      ...adaptive,
      algorithm: adaptive.algorithm!,
      maxLimit,
      maxQueue: maxLimit,
      isDrop: isGateDrop,
      ...(checked.clock === undefined ? {} : { clock: checked.clock }),
    });
  }
  return new HttpGate(checked.name!, limiter, classes, {
    classify: checked.classify,
    onError: checked.onError,
    retryAfterSeconds: checked.retryAfterSeconds ?? HTTP_GATE_DEFAULTS.retryAfterSeconds,
  });
}

/** Checks `classes`: valid names, shares above 0 and at most 1, adding up to at most 1. */
function checkClasses(classes: Readonly<Record<string, HttpGateClass>> | undefined): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  if (classes === undefined) return out;
  let total = 0;
  for (const key of Reflect.ownKeys(classes)) {
    if (typeof key === 'symbol' || !PIPELINE_NAME.test(key)) {
      throw new TypeError(`${OWNER}: option "classes" has an invalid class name ${typeof key === 'symbol' ? key.toString() : JSON.stringify(key)}: class names are ${NAME_RULE}`);
    }
    const entry = checkNested<HttpGateClass>(OWNER, `classes.${key}`, (classes as Record<string, unknown>)[key], { share: share() }, ['share']);
    total += entry.share!;
    out.set(key, entry.share!);
  }
  if (total > 1 + 1e-9) {
    throw new RangeError(`${OWNER}: the shares of option "classes" must add up to at most 1; received shares adding up to ${total}`);
  }
  return out;
}

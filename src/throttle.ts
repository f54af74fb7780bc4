/**
 * Client-side adaptive throttling, as in the Google SRE book ("Handling Overload"):
 * when the dependency refuses calls, the client refuses some locally, with probability
 *
 *     max(0, (requests − requestsPerAccept × accepts) / (requests + 1))
 *
 * over a sliding time window, so it backs off in proportion to how much is refused
 * instead of all at once as a breaker does.
 *
 * Cost model (see docs/reference/throttle.md): while nothing in the window was
 * refused, a call costs what a closed breaker's does (one clock read when it
 * settles, an O(1) record); the decision reads the clock and the random source
 * only when the window holds a refusal. A local rejection is one small error
 * built without a stack trace. No timer, ever: the window expires lazily.
 */
import { FAILURE, TimeWindow } from './circuit-breaker/window.ts';
import { type Clock, type RandomSource, systemClock, systemRandom } from './core/clock.ts';
import { isRejection, stackless, ThrottledError } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { checkOptions, checkTimeWindow, clock as clockCheck, finite, fn, integer, plainObject } from './core/validate.ts';

/** The throttle's window: the calls of the last `ms`, counted in `buckets` buckets. */
export interface ThrottleWindowOptions {
  /** Length of the window in ms (default 30,000). A multiple of `buckets`. */
  readonly ms?: number;
  /**
   * Number of buckets the window is kept in (default 20, at most 1,000). The
   * oldest bucket expires as a whole, so the window holds between
   * `ms − ms / buckets` and `ms` of history.
   */
  readonly buckets?: number;
}

/** Options of {@link throttle}. Every option is optional. */
export interface ThrottleOptions {
  /**
   * How many requests the client lets through per call the dependency accepts
   * before it starts refusing calls itself: K in the SRE book (default 2). At
   * least 1, at most 100. Lower is more aggressive: 1.1 sheds as soon as about one
   * call in ten is refused; 2 lets the dependency see about twice what it accepts.
   */
  readonly requestsPerAccept?: number;
  /** The window `requests` and `accepts` are counted over. Default `{ ms: 30_000, buckets: 20 }`. */
  readonly window?: ThrottleWindowOptions;
  /**
   * Requests the window must hold before the throttle refuses anything (default
   * 20; at least 1), so that a client making few calls is not throttled on the
   * strength of two or three errors.
   */
  readonly minimumRequests?: number;
  /**
   * The throttle never refuses a call with a higher probability than this
   * (default 0.9; from 0 to 1, where 1 leaves only the formula's own bound,
   * `requests / (requests + 1)`). Refusals count as requests, so after a full
   * outage the probability falls by about half of what is left of `1 − p` per window;
   * the cap keeps a share of the calls going to the dependency, and the client
   * recovers within about two windows instead of three to five.
   */
  readonly maxRejectionProbability?: number;
  /**
   * Which errors mean that the dependency did not accept the call (it failed,
   * was overloaded, or timed out). An error `handle` returns anything but `true`
   * for counts as an **accept**: the dependency answered (a 404, a validation
   * error), and sending it less traffic would not change that answer.
   * Default: every error. The caller's own abort and Breakwater's rejections
   * from layers inside (`isRejection`) are never counted, whatever `handle` says.
   */
  readonly handle?: (error: unknown) => boolean;
  /** Time source for the window (default: the system clock). Pass a `FakeClock` in tests. */
  readonly clock?: Clock;
  /** Random source for the decision (default `Math.random`). Pass `seededRandom(seed)` in tests. */
  readonly random?: RandomSource;
}

/** Payload of `onReject`. */
export interface ThrottleRejectEvent {
  /** The probability the throttle was refusing calls with when it refused this one. */
  readonly probability: number;
  /** The error the call was rejected with. */
  readonly error: ThrottledError;
}

/** The defaults of {@link throttle}, in one visible place. */
export const THROTTLE_DEFAULTS = Object.freeze({
  requestsPerAccept: 2,
  window: Object.freeze({ ms: 30_000, buckets: 20 }),
  minimumRequests: 20,
  maxRejectionProbability: 0.9,
  /** Every error the dependency's call rejects with counts as not accepted. */
  handle: (_error: unknown): boolean => true,
});

/** Settings a throttle is built from, once validated. @internal */
interface Settings {
  readonly requestsPerAccept: number;
  readonly window: { readonly ms: number; readonly buckets: number };
  readonly minimumRequests: number;
  readonly maxRejectionProbability: number;
  readonly handle: (error: unknown) => boolean;
  readonly clock: Clock;
  readonly random: RandomSource;
}

/**
 * A client-side adaptive throttle; create it with {@link throttle}.
 *
 * Every call it lets through is counted when it settles: as a request and an
 * accept when it succeeds or fails with an error `handle` does not count, as a
 * request only when it fails with one `handle` counts. Every call it refuses is
 * counted at once as a request. A call is refused with the probability the
 * `probability` getter reports, drawn from the `random` source.
 */
export class ThrottlePolicy extends PolicyBase {
  /** Always `'throttle'`. */
  readonly kind = 'throttle';

  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #handle: (error: unknown) => boolean;
  readonly #requestsPerAccept: number;
  readonly #minimumRequests: number;
  readonly #maxProbability: number;
  /** Calls are requests; failures are the requests not accepted (refused by the dependency, or here). */
  readonly #window: TimeWindow;
  #reject: Emitter<ThrottleRejectEvent> | undefined; // created on first subscription

  // One success handler per policy, shared by every call: no closure per call on that path.
  readonly #accepted = (value: unknown): unknown => {
    this.#window.record(this.#clock.now(), 0);
    return value;
  };

  /** Use {@link throttle} instead. @internal */
  constructor(settings: Settings) {
    super();
    this.#clock = settings.clock;
    this.#random = settings.random;
    this.#handle = settings.handle;
    this.#requestsPerAccept = settings.requestsPerAccept;
    this.#minimumRequests = settings.minimumRequests;
    this.#maxProbability = settings.maxRejectionProbability;
    this.#window = new TimeWindow(settings.window.ms, settings.window.buckets, this.#clock.now());
  }

  /** Requests in the window now: the calls let through that settled and counted, plus the calls refused here. */
  get requests(): number {
    this.#window.advance(this.#clock.now());
    return this.#window.calls;
  }

  /** Of those, the calls the dependency accepted. */
  get accepts(): number {
    const window = this.#window;
    window.advance(this.#clock.now());
    return window.calls - window.failures;
  }

  /**
   * The probability that the next call is refused, from the window as it is now:
   * `max(0, (requests − requestsPerAccept × accepts) / (requests + 1))`, 0 while
   * the window holds fewer than `minimumRequests` requests, and at most
   * `maxRejectionProbability`.
   */
  get probability(): number {
    this.#window.advance(this.#clock.now());
    return this.#probability();
  }

  /** Fires when the throttle refuses a call, with the probability it was refusing with. */
  get onReject(): Event<ThrottleRejectEvent> {
    return (this.#reject ??= new Emitter()).subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const window = this.#window;
    // Expiring buckets only takes requests away, so a window that held no refusal, or
    // too few requests, when it was last recorded cannot refuse now: no clock read,
    // no random draw (requestsPerAccept >= 1 makes the formula 0 without refusals).
    if (window.failures > 0 && window.calls >= this.#minimumRequests) {
      const now = this.#clock.now();
      window.advance(now);
      const probability = this.#probability();
      if (probability > 0 && this.#random() < probability) return Promise.reject(this.#refuse(now, probability, chain.pipeline));
    }
    return chain.next(index + 1, scope, attempt).then(this.#accepted as (value: T) => T, (error: unknown) => {
      this.#settleFailed(chain, scope, error);
      throw error;
    });
  }

  #probability(): number {
    const window = this.#window;
    const requests = window.calls;
    if (requests < this.#minimumRequests) return 0;
    const probability = (requests - this.#requestsPerAccept * (requests - window.failures)) / (requests + 1);
    return probability <= 0 ? 0 : Math.min(probability, this.#maxProbability);
  }

  /** Counts a local refusal as a request that was not accepted, and builds its error. */
  #refuse(now: number, probability: number, pipeline: string | undefined): ThrottledError {
    this.#window.record(now, FAILURE);
    const error = stackless(() => new ThrottledError(probability, { pipeline }));
    const emitter = this.#reject;
    if (emitter !== undefined && emitter.active) emitter.emit({ probability, error });
    return error;
  }

  /** A call let through failed: count it, unless the dependency never answered it. */
  #settleFailed(chain: Chain<unknown>, scope: Scope | undefined, error: unknown): void {
    if (isRejection(error) || chain.isStoppedFromOutside(error, scope)) return;
    let refused = true;
    try {
      refused = this.#handle(error) === true;
    } catch (bug) {
      // A `handle` that throws counts the error as a refusal; its own error surfaces on its own.
      queueMicrotask(() => {
        throw bug;
      });
    }
    this.#window.record(this.#clock.now(), refused ? FAILURE : 0);
  }
}

const OWNER = 'throttle';

/** Option names of the SRE book, gRPC, Envoy and Beam, with what to write instead. */
const FOREIGN = {
  k: "the SRE book's K is requestsPerAccept",
  K: "the SRE book's K is requestsPerAccept",
  ratioForAccepts: "gRPC's ratioForAccepts is requestsPerAccept",
  overloadRatio: "Beam's overload_ratio is requestsPerAccept",
  srThreshold: "Envoy's sr_threshold is 1 / requestsPerAccept: 0.5 becomes requestsPerAccept: 2",
  maxRejectionRate: 'maxRejectionRate is maxRejectionProbability',
  requestsPadding: "gRPC's requestsPadding has no equivalent: the padding is 1, and minimumRequests guards low traffic",
  windowMs: 'windowMs is window: { ms }',
};

/**
 * Creates a client-side adaptive throttle: when the dependency refuses calls, it
 * refuses some of them locally with `ThrottledError`, in proportion to how many
 * are refused, and lets all of them through again as the dependency recovers.
 * Put it inside a retry (each attempt counts; retry does not retry its
 * `ThrottledError` by default) and outside the timeout (a timeout counts as a
 * refusal). Create it once per dependency, never per request.
 *
 * ```ts
 * const throttled = throttle({ requestsPerAccept: 2, window: { ms: 30_000, buckets: 20 } });
 * const search = pipeline({ name: 'search' }, retry(), throttled, timeout({ ms: 1_000 }));
 * ```
 */
export function throttle(options?: ThrottleOptions): ThrottlePolicy {
  const o = checkOptions<ThrottleOptions>(OWNER, options, {
    requestsPerAccept: finite(1, 100),
    window: plainObject,
    minimumRequests: integer(1),
    maxRejectionProbability: finite(0, 1),
    handle: fn,
    clock: clockCheck,
    random: fn,
  }, [], FOREIGN);
  return new ThrottlePolicy({
    requestsPerAccept: o.requestsPerAccept ?? THROTTLE_DEFAULTS.requestsPerAccept,
    window: o.window === undefined ? THROTTLE_DEFAULTS.window : checkTimeWindow(OWNER, o.window, THROTTLE_DEFAULTS.window),
    minimumRequests: o.minimumRequests ?? THROTTLE_DEFAULTS.minimumRequests,
    maxRejectionProbability: o.maxRejectionProbability ?? THROTTLE_DEFAULTS.maxRejectionProbability,
    handle: o.handle ?? THROTTLE_DEFAULTS.handle,
    clock: o.clock ?? systemClock,
    random: o.random ?? systemRandom,
  });
}

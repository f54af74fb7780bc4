/**
 * Limit algorithms: how an adaptive limit learns from each call. An algorithm
 * is a value (immutable, shareable by any number of adaptive limits); each
 * policy asks it for a learner of its own, which holds whatever state the rule
 * needs. Where these rules differ from Netflix concurrency-limits and Envoy, and
 * why: docs/design.md, "Adaptive concurrency".
 */
import { checkOptions, duration, finite, integer, received } from '../core/validate.ts';

/**
 * How an adaptive limit learns from each call: made by {@link aimd} or
 * {@link gradient}. Immutable: one algorithm may serve many adaptive limits,
 * each of which keeps its own state.
 */
export interface LimitAlgorithm {
  /** Which rule: `'aimd'` or `'gradient'`. */
  readonly kind: 'aimd' | 'gradient';
  /** A fresh learner for one policy. @internal */
  _learner(): LimitLearner;
}

/**
 * One policy's learner. The policy tells it about every call that held a slot
 * and succeeded or was dropped, and clamps what it returns to
 * `[minLimit, maxLimit]`.
 * @internal
 */
export interface LimitLearner {
  /** Whether it reads `latencyMs`: if not, the policy never reads its clock. */
  readonly timed: boolean;
  /**
   * The next limit, fractional, after a call that held a slot for `latencyMs`
   * and succeeded, or was `dropped` (a timeout, or an error the policy's
   * `isDrop` accepts). `limit` is the current fractional limit; `inFlight` is
   * how many calls held a slot when this one started, itself included;
   * `admittedSinceFall` tells whether it started after the limit last fell.
   */
  next(limit: number, latencyMs: number, inFlight: number, dropped: boolean, admittedSinceFall: boolean): number;
}

/** True for an algorithm made by {@link aimd} or {@link gradient} (from any copy of Breakwater). @internal */
export function isLimitAlgorithm(value: unknown): value is LimitAlgorithm {
  if (typeof value !== 'object' || value === null) return false;
  const { kind, _learner } = value as Partial<LimitAlgorithm>;
  return (kind === 'aimd' || kind === 'gradient') && typeof _learner === 'function';
}

/** Growth only while at least half the limit is in use: an idle limit proves nothing about the dependency. */
function inUse(limit: number, inFlight: number): boolean {
  return inFlight * 2 >= limit;
}

// ---------------------------------------------------------------------------
// AIMD

/** Options of {@link aimd}. */
export interface AimdOptions {
  /**
   * How much the limit grows per limit's worth of successful calls made while at
   * least half the limit was in use (default 1): about `increase` per round trip
   * of a full limit, as TCP's congestion avoidance grows. Above 0, up to 100.
   */
  readonly increase?: number;
  /** The limit is multiplied by this on congestion (default 0.9). From 0.5 to below 1. */
  readonly backoffRatio?: number;
  /**
   * A call that holds its slot this long or longer, in ms, counts as congestion,
   * as a drop does. Default: none (only drops and timeouts count).
   */
  readonly slowCallMs?: number;
}

/** The defaults of {@link aimd}, in one visible place. */
export const AIMD_DEFAULTS: Readonly<Required<Omit<AimdOptions, 'slowCallMs'>>> = Object.freeze({
  increase: 1,
  backoffRatio: 0.9,
});

/**
 * Additive increase, multiplicative decrease; create it with {@link aimd}.
 * Stateless, so it is its own learner.
 */
export class AimdLimit implements LimitAlgorithm {
  /** Always `'aimd'`. */
  readonly kind = 'aimd';
  /** Growth per limit's worth of successful calls near the limit. */
  readonly increase: number;
  /** Factor applied to the limit on congestion. */
  readonly backoffRatio: number;
  /** Latency from which a call counts as congestion, in ms (`undefined`: none). */
  readonly slowCallMs: number | undefined;
  /** Whether calls must be timed: only for `slowCallMs`. @internal */
  readonly timed: boolean;

  /** Use {@link aimd} instead. @internal */
  constructor(options: AimdOptions) {
    this.increase = options.increase ?? AIMD_DEFAULTS.increase;
    this.backoffRatio = options.backoffRatio ?? AIMD_DEFAULTS.backoffRatio;
    this.slowCallMs = options.slowCallMs;
    this.timed = options.slowCallMs !== undefined;
    Object.freeze(this);
  }

  /** @internal */
  _learner(): LimitLearner {
    return this;
  }

  /** @internal */
  next(limit: number, latencyMs: number, inFlight: number, dropped: boolean, admittedSinceFall: boolean): number {
    if (dropped || (this.slowCallMs !== undefined && latencyMs >= this.slowCallMs)) {
      // Calls admitted before the limit fell measured the old limit: that fall
      // already answered them. One decrease per round trip, as TCP does, so a
      // burst of timeouts ending together lowers the limit once, not once each.
      return admittedSinceFall ? limit * this.backoffRatio : limit;
    }
    return inUse(limit, inFlight) ? limit + this.increase / limit : limit;
  }
}

/**
 * The AIMD limit algorithm: each successful call made while at least half the
 * limit was in use raises the limit by `increase / limit` (so a full limit of
 * successful calls raises it by `increase`); a drop, a timeout or a call slower
 * than `slowCallMs` multiplies it by `backoffRatio`.
 *
 * ```ts
 * const limit = adaptiveLimit({ algorithm: aimd({ slowCallMs: 500 }), maxLimit: 100 });
 * ```
 */
export function aimd(options?: AimdOptions): AimdLimit {
  const checked = checkOptions<AimdOptions>('aimd', options, {
    increase: finite(0, 100, 'min'),
    backoffRatio: finite(0.5, 1, 'max'),
    slowCallMs: duration(1),
  }, [], {
    timeout: "concurrency-limits' AIMD timeout is slowCallMs (in ms)",
  });
  return new AimdLimit(checked);
}

// ---------------------------------------------------------------------------
// Gradient

/** Options of {@link gradient}. */
export interface GradientOptions {
  /**
   * How far each call moves the limit toward its new estimate (default 0.2):
   * 1 jumps straight to it. Above 0, up to 1.
   */
  readonly smoothing?: number;
  /**
   * Calls the dependency may queue beyond what the latency ratio allows
   * (default 4): the estimate is `limit × gradient + queueAllowance`, so while
   * latency stays at its long-term level the limit grows by
   * `smoothing × queueAllowance` per call. From 0 to 1,000.
   */
  readonly queueAllowance?: number;
  /** About how many recent calls the short-term latency averages (default 10). An integer from 1. */
  readonly shortWindowCalls?: number;
  /**
   * About how many calls the long-term latency averages (default 500): how long
   * a change in latency takes to become the new normal. An integer above
   * `shortWindowCalls`.
   */
  readonly longWindowCalls?: number;
}

/** The defaults of {@link gradient}, in one visible place. */
export const GRADIENT_DEFAULTS: Readonly<Required<GradientOptions>> = Object.freeze({
  smoothing: 0.2,
  queueAllowance: 4,
  shortWindowCalls: 10,
  longWindowCalls: 500,
});

/** The gradient never cuts the estimate below half the limit: one slow sample is not an outage. */
const MIN_GRADIENT = 0.5;

/**
 * The gradient algorithm, in the manner of Netflix concurrency-limits'
 * Gradient2; create it with {@link gradient}.
 */
export class GradientLimit implements LimitAlgorithm {
  /** Always `'gradient'`. */
  readonly kind = 'gradient';
  /** How far each call moves the limit toward its new estimate. */
  readonly smoothing: number;
  /** Calls the dependency may queue beyond what the latency ratio allows. */
  readonly queueAllowance: number;
  /** Calls averaged by the short-term latency. */
  readonly shortWindowCalls: number;
  /** Calls averaged by the long-term latency. */
  readonly longWindowCalls: number;

  /** Use {@link gradient} instead. @internal */
  constructor(options: GradientOptions) {
    this.smoothing = options.smoothing ?? GRADIENT_DEFAULTS.smoothing;
    this.queueAllowance = options.queueAllowance ?? GRADIENT_DEFAULTS.queueAllowance;
    this.shortWindowCalls = options.shortWindowCalls ?? GRADIENT_DEFAULTS.shortWindowCalls;
    this.longWindowCalls = options.longWindowCalls ?? GRADIENT_DEFAULTS.longWindowCalls;
    Object.freeze(this);
  }

  /** @internal */
  _learner(): LimitLearner {
    return new GradientLearner(this);
  }
}

/** One policy's latencies under the gradient rule. */
class GradientLearner implements LimitLearner {
  readonly timed = true;
  readonly #smoothing: number;
  readonly #queueAllowance: number;
  // Exponential smoothing over about N calls weighs each new call 2 / (N + 1).
  readonly #shortWeight: number;
  readonly #longWeight: number;
  #calls = 0;
  /** Short-term latency, ms: what the dependency answers in now. */
  #short = 0;
  /** Long-term latency, ms: what it normally answers in. */
  #long = 0;

  constructor(settings: GradientLimit) {
    this.#smoothing = settings.smoothing;
    this.#queueAllowance = settings.queueAllowance;
    this.#shortWeight = 2 / (settings.shortWindowCalls + 1);
    this.#longWeight = 2 / (settings.longWindowCalls + 1);
  }

  next(limit: number, latencyMs: number, inFlight: number, dropped: boolean): number {
    // A drop is the strongest sign of queueing there is; its latency (a timeout's
    // deadline, an error's) says nothing about how fast the dependency answers.
    const gradient = dropped ? MIN_GRADIENT : this.#observe(latencyMs);
    if (gradient === 1 && !inUse(limit, inFlight)) return limit;
    // The queue allowance is granted only while no queueing shows (gradient 1):
    // added to a gradient below 1, it lets the limit creep up for as long as the
    // dependency is mildly overloaded.
    const estimate = gradient === 1 ? limit + this.#queueAllowance : limit * gradient;
    // Each call moves the limit 1/limit of a smoothed step toward the estimate:
    // one step per round trip of a full limit, whatever the call rate, and a
    // burst of calls ending together cannot collapse it.
    return limit + ((estimate - limit) * this.#smoothing) / limit;
  }

  /** Records a latency; returns long-term / short-term, within [MIN_GRADIENT, 1]. */
  #observe(latencyMs: number): number {
    // Until a window has seen its N calls, the plain mean of the calls so far
    // (weight 1/n): no bias toward a made-up starting value.
    const n = ++this.#calls;
    this.#short += (latencyMs - this.#short) * Math.max(this.#shortWeight, 1 / n);
    // Back from overload, the long-term latency is far above the short-term one:
    // it then follows at the short window's pace, so the limit is not held down
    // by a normal that no longer holds.
    const longWeight = this.#long > 2 * this.#short ? this.#shortWeight : this.#longWeight;
    this.#long += (latencyMs - this.#long) * Math.max(longWeight, 1 / n);
    if (!(this.#short > 0)) return 1;
    const ratio = this.#long / this.#short;
    return ratio >= 1 ? 1 : ratio > MIN_GRADIENT ? ratio : MIN_GRADIENT;
  }
}

/**
 * The gradient limit algorithm: the limit follows the ratio of the long-term
 * latency to the short-term one (both exponentially smoothed), kept within
 * [0.5, 1], plus a queue allowance, smoothed: after each call,
 * `limit ← limit + smoothing × (limit × gradient + queueAllowance − limit)`.
 * A drop or a timeout counts as the lowest gradient, 0.5.
 *
 * ```ts
 * const limit = adaptiveLimit({ algorithm: gradient({ smoothing: 0.1 }), maxLimit: 200 });
 * ```
 */
export function gradient(options?: GradientOptions): GradientLimit {
  const owner = 'gradient';
  const checked = checkOptions<GradientOptions>(owner, options, {
    smoothing: finite(0, 1, 'min'),
    queueAllowance: finite(0, 1_000),
    shortWindowCalls: integer(1, 1_000_000),
    longWindowCalls: integer(2, 1_000_000),
  }, [], {
    queueSize: "concurrency-limits' queueSize is queueAllowance",
    longWindow: "concurrency-limits' longWindow is longWindowCalls",
  });
  const shortWindowCalls = checked.shortWindowCalls ?? GRADIENT_DEFAULTS.shortWindowCalls;
  const longWindowCalls = checked.longWindowCalls ?? GRADIENT_DEFAULTS.longWindowCalls;
  if (longWindowCalls <= shortWindowCalls) {
    const given = checked.longWindowCalls === undefined ? ` (the default, ${longWindowCalls})` : '';
    throw new RangeError(
      `${owner}: option "longWindowCalls"${given} must be above shortWindowCalls (${shortWindowCalls}); received ${received(longWindowCalls)}`,
    );
  }
  return new GradientLimit(checked);
}

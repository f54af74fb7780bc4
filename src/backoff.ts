/**
 * Backoff schedules: how long to wait before the n-th retry (or the n-th
 * half-open probe of a breaker). A schedule is a value: immutable, shareable
 * between any number of policies, and a pure function of the attempt number,
 * the previous delay and an injected random source.
 */
import type { RandomSource } from './core/clock.ts';
import { checkOptions, duration, finite, MAX_TIMER_MS, oneOf, received } from './core/validate.ts';

/**
 * How a schedule randomizes its delays, as defined in the AWS Architecture Blog
 * post "Exponential Backoff And Jitter", where `d` is the schedule's delay
 * without jitter for this attempt:
 * - `'none'`: exactly `d`;
 * - `'full'`: uniform in `[0, d)`;
 * - `'equal'`: `d / 2` plus uniform in `[0, d / 2)`;
 * - `'decorrelated'`: `min(maxMs, uniform in [initialMs, 3 × previous delay))`:
 *   each delay grows from the one before it, not from the attempt number.
 */
export type Jitter = 'none' | 'full' | 'equal' | 'decorrelated';

/**
 * Anything that can say how long to wait before the n-th retry. The built-in
 * schedules come from {@link exponential} and {@link constant}; any object with a
 * `delayMs` method works too.
 */
export interface Schedule {
  /**
   * The delay in ms before retry number `attempt` (1 for the first retry).
   * `previousDelayMs` is what this schedule returned for `attempt - 1` (0 for the
   * first retry); `random` returns uniform numbers in `[0, 1)`. Must be pure: the
   * same arguments and random numbers give the same delay.
   */
  delayMs(attempt: number, previousDelayMs: number, random: RandomSource): number;
}

/** Options of {@link exponential}. */
export interface ExponentialOptions {
  /** Delay before the first retry, before jitter, in ms (default 100). At least 1. */
  readonly initialMs?: number;
  /** No delay is ever longer than this, in ms (default 30,000). At least `initialMs`. */
  readonly maxMs?: number;
  /**
   * Each retry waits `factor` times longer than the one before, before jitter
   * (default 2). From 1 to 100. Not allowed with `'decorrelated'` jitter, which
   * grows by its own rule.
   */
  readonly factor?: number;
  /** How delays are randomized (default `'full'`). See {@link Jitter}. */
  readonly jitter?: Jitter;
}

/** Options of {@link constant}. */
export interface ConstantOptions {
  /** The delay before every retry, before jitter, in ms. 0 means retry at once, without a timer. */
  readonly ms: number;
  /** How delays are randomized (default `'none'`). Decorrelated jitter needs a growing schedule: use {@link exponential}. */
  readonly jitter?: Exclude<Jitter, 'decorrelated'>;
}

/** The defaults of {@link exponential}, in one visible place. */
export const EXPONENTIAL_DEFAULTS: Readonly<Required<ExponentialOptions>> = Object.freeze({
  initialMs: 100,
  maxMs: 30_000,
  factor: 2,
  jitter: 'full',
});

/** Growth of the upper bound per attempt with decorrelated jitter (the AWS definition). */
const DECORRELATED_GROWTH = 3;

/**
 * A built-in schedule: a delay curve `min(maxMs, initialMs × factor^(attempt − 1))`
 * combined with a {@link Jitter}. `constant({ ms })` is the same curve with
 * `factor` 1. Immutable: `withJitter` and `withMaxMs` return new schedules.
 */
export class BackoffSchedule implements Schedule {
  /** Which factory made this curve. */
  readonly kind: 'exponential' | 'constant';
  /** Delay before the first retry, before jitter, in ms. */
  readonly initialMs: number;
  /** Cap of every delay, in ms. */
  readonly maxMs: number;
  /** Growth per retry, before jitter (1 for a constant schedule). */
  readonly factor: number;
  /** How delays are randomized. */
  readonly jitter: Jitter;

  /** Use {@link exponential} or {@link constant} instead. @internal */
  constructor(kind: 'exponential' | 'constant', initialMs: number, maxMs: number, factor: number, jitter: Jitter) {
    this.kind = kind;
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.jitter = jitter;
    Object.freeze(this);
  }

  /** The delay before retry `attempt` without jitter: the curve itself. */
  baseMs(attempt: number): number {
    const n = attempt >= 1 ? attempt : 1;
    if (this.factor === 1) return this.initialMs;
    return Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, n - 1));
  }

  /** See {@link Schedule.delayMs}. `attempt` below 1 (or NaN) counts as 1. */
  delayMs(attempt: number, previousDelayMs: number, random: RandomSource): number {
    switch (this.jitter) {
      case 'none':
        return this.baseMs(attempt);
      case 'full':
        return random() * this.baseMs(attempt);
      case 'equal': {
        const half = this.baseMs(attempt) / 2;
        return half + random() * half;
      }
      case 'decorrelated': {
        // The previous delay is clamped to what this schedule could have returned
        // for the attempt before, so the result stays within this attempt's bounds
        // whatever the caller passes.
        const n = attempt >= 1 ? attempt : 1;
        const lowest = this.initialMs;
        const highest = n === 1 ? lowest : this.maxDelayMs(n - 1);
        const previous = previousDelayMs > lowest ? Math.min(previousDelayMs, highest) : lowest;
        return Math.min(this.maxMs, lowest + random() * (previous * DECORRELATED_GROWTH - lowest));
      }
    }
  }

  /** The shortest delay this schedule can return for retry `attempt`. */
  minDelayMs(attempt: number): number {
    switch (this.jitter) {
      case 'none':
        return this.baseMs(attempt);
      case 'full':
        return 0;
      case 'equal':
        return this.baseMs(attempt) / 2;
      case 'decorrelated':
        return this.initialMs;
    }
  }

  /** The longest delay this schedule can return for retry `attempt`. */
  maxDelayMs(attempt: number): number {
    if (this.jitter !== 'decorrelated') return this.baseMs(attempt);
    const n = attempt >= 1 ? attempt : 1;
    return Math.min(this.maxMs, this.initialMs * Math.pow(DECORRELATED_GROWTH, n));
  }

  /** The same curve with another jitter. */
  withJitter(jitter: Jitter): BackoffSchedule {
    const owner = `${this.kind}().withJitter`;
    oneOf(...(this.kind === 'constant' ? CONSTANT_JITTERS : JITTERS))(owner, 'jitter', jitter);
    if (jitter === 'decorrelated' && this.factor !== EXPONENTIAL_DEFAULTS.factor) {
      throw new RangeError(
        `${owner}: option "jitter" cannot be "decorrelated" on a schedule with factor ${this.factor}: decorrelated jitter grows by its own rule (up to 3 × the previous delay)`,
      );
    }
    return new BackoffSchedule(this.kind, this.initialMs, this.maxMs, this.factor, jitter);
  }

  /** The same schedule with every delay capped at `maxMs` (at least `initialMs`). */
  withMaxMs(maxMs: number): BackoffSchedule {
    const owner = `${this.kind}().withMaxMs`;
    duration(1)(owner, 'maxMs', maxMs);
    if (maxMs < this.initialMs) {
      throw new RangeError(`${owner}: option "maxMs" must be at least initialMs (${this.initialMs}); received ${received(maxMs)}`);
    }
    return new BackoffSchedule(this.kind, this.initialMs, maxMs, this.factor, this.jitter);
  }
}

const JITTERS: Jitter[] = ['none', 'full', 'equal', 'decorrelated'];
const CONSTANT_JITTERS: Jitter[] = ['none', 'full', 'equal'];

/**
 * An exponential schedule: `initialMs`, then `factor` times longer each retry, up
 * to `maxMs`, randomized by `jitter`. Defaults: 100 ms, ×2, at most 30 s, full
 * jitter (so the first retry waits between 0 and 100 ms).
 *
 * ```ts
 * const backoff = exponential({ initialMs: 200, maxMs: 5_000, jitter: 'equal' });
 * ```
 */
export function exponential(options?: ExponentialOptions): BackoffSchedule {
  const owner = 'exponential';
  const checked = checkOptions<ExponentialOptions>(owner, options, {
    initialMs: duration(1),
    maxMs: duration(1),
    factor: finite(1, 100),
    jitter: oneOf(...JITTERS),
  });
  const initialMs = checked.initialMs ?? EXPONENTIAL_DEFAULTS.initialMs;
  const maxMs = checked.maxMs ?? EXPONENTIAL_DEFAULTS.maxMs;
  const jitter = checked.jitter ?? EXPONENTIAL_DEFAULTS.jitter;
  if (maxMs < initialMs) {
    const given = checked.maxMs === undefined ? ` (the default, ${maxMs})` : '';
    throw new RangeError(`${owner}: option "maxMs"${given} must be at least initialMs (${initialMs}); received ${received(maxMs)}`);
  }
  if (jitter === 'decorrelated' && checked.factor !== undefined) {
    throw new RangeError(
      `${owner}: option "factor" must be left out with jitter "decorrelated" (each delay is drawn up to 3 × the previous one); received ${received(checked.factor)}`,
    );
  }
  return new BackoffSchedule(owner, initialMs, maxMs, checked.factor ?? EXPONENTIAL_DEFAULTS.factor, jitter);
}

/**
 * A constant schedule: `ms` before every retry, optionally jittered.
 * `constant({ ms: 0 })` retries at once, without a timer.
 *
 * ```ts
 * const backoff = constant({ ms: 250, jitter: 'full' });
 * ```
 */
export function constant(options: ConstantOptions): BackoffSchedule {
  const checked = checkOptions<ConstantOptions>(
    'constant',
    options,
    { ms: duration(0), jitter: oneOf(...CONSTANT_JITTERS) },
    ['ms'],
  );
  const ms = checked.ms!;
  return new BackoffSchedule('constant', ms, ms, 1, checked.jitter ?? 'none');
}

/** Clamps whatever a (possibly user-written) schedule returned to a delay a timer can sleep. @internal */
export function sanitizeDelay(delayMs: number): number {
  if (typeof delayMs !== 'number' || !(delayMs > 0)) return 0; // also NaN
  return delayMs > MAX_TIMER_MS ? MAX_TIMER_MS : delayMs;
}

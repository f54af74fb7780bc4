/** Stable codes of the errors Breakwater produces. */
export type BreakwaterErrorCode =
  | 'ERR_BREAKWATER_TIMEOUT'
  | 'ERR_BREAKWATER_BROKEN_CIRCUIT'
  | 'ERR_BREAKWATER_ISOLATED_CIRCUIT'
  | 'ERR_BREAKWATER_BULKHEAD_REJECTED'
  | 'ERR_BREAKWATER_THROTTLED'
  | 'ERR_BREAKWATER_RATE_LIMITED';

const BRAND = Symbol.for('breakwater.error');

/**
 * Base class of every error a policy produces. Test for a kind of error with the
 * type guards (`isTimeoutError` and so on): they check `code` and a registered
 * symbol, so they also work when two copies of Breakwater are loaded.
 */
export abstract class BreakwaterError extends Error {
  /** Stable, documented code of this error. */
  abstract readonly code: BreakwaterErrorCode;
  /**
   * The name of the pipeline whose policy produced this error (also at the start
   * of the message), so logs from several dependencies can be told apart;
   * `undefined` for a policy run on its own or an unnamed pipeline.
   */
  readonly pipeline: string | undefined;
  /** @internal brand shared across package copies */
  readonly [BRAND] = true;

  /** @internal */
  constructor(message: string, options: BreakwaterErrorOptions | undefined) {
    const pipeline = options?.pipeline;
    super(pipeline === undefined ? message : `pipeline "${pipeline}": ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.pipeline = pipeline;
  }
}

/** What every Breakwater error may carry besides its own fields. */
export interface BreakwaterErrorOptions {
  /** The pipeline whose policy produced the error (see {@link BreakwaterError.pipeline}). */
  readonly pipeline?: string | undefined;
  /** The error behind this one (standard `Error.cause`). */
  readonly cause?: unknown;
}

// The guards run on whatever the work rejected with, which may be a revoked Proxy or
// an object whose getters throw: a guard must answer false, never throw.
function hasCode(value: unknown, code: BreakwaterErrorCode): boolean {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return (value as Record<PropertyKey, unknown>)[BRAND] === true && (value as { code?: unknown }).code === code;
  } catch {
    return false;
  }
}

/** The call ran past the deadline of a `timeout` policy. */
export class TimeoutError extends BreakwaterError {
  readonly code = 'ERR_BREAKWATER_TIMEOUT' as const;
  override readonly name = 'TimeoutError';
  /** The deadline that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, options?: BreakwaterErrorOptions) {
    super(`the call did not settle within ${timeoutMs} ms`, options);
    this.timeoutMs = timeoutMs;
  }
}

/** True when `value` is a {@link TimeoutError} from any copy of Breakwater. */
export function isTimeoutError(value: unknown): value is TimeoutError {
  return hasCode(value, 'ERR_BREAKWATER_TIMEOUT');
}

/** The circuit breaker is open (or half-open with every probe slot taken): the call was not made. */
export class BrokenCircuitError extends BreakwaterError {
  readonly code = 'ERR_BREAKWATER_BROKEN_CIRCUIT' as const;
  override readonly name = 'BrokenCircuitError';
  /** Milliseconds until the breaker admits its next probe (0 when a probe may go now). */
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, message = 'the circuit is open: the call was not made', options?: BreakwaterErrorOptions) {
    super(message, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** True when `value` is a {@link BrokenCircuitError} from any copy of Breakwater. */
export function isBrokenCircuitError(value: unknown): value is BrokenCircuitError {
  return hasCode(value, 'ERR_BREAKWATER_BROKEN_CIRCUIT');
}

/** The circuit breaker was isolated by hand (`isolate()`): the call was not made. */
export class IsolatedCircuitError extends BreakwaterError {
  readonly code = 'ERR_BREAKWATER_ISOLATED_CIRCUIT' as const;
  override readonly name = 'IsolatedCircuitError';
  constructor(options?: BreakwaterErrorOptions) {
    super('the circuit is isolated: the call was not made', options);
  }
}

/** True when `value` is an {@link IsolatedCircuitError} from any copy of Breakwater. */
export function isIsolatedCircuitError(value: unknown): value is IsolatedCircuitError {
  return hasCode(value, 'ERR_BREAKWATER_ISOLATED_CIRCUIT');
}

/** The bulkhead had no free slot and no queue space: the call was not made. */
export class BulkheadRejectedError extends BreakwaterError {
  readonly code = 'ERR_BREAKWATER_BULKHEAD_REJECTED' as const;
  override readonly name = 'BulkheadRejectedError';
  /** The bulkhead's concurrency limit when the call was rejected. */
  readonly maxConcurrent: number;
  /** The bulkhead's queue limit when the call was rejected. */
  readonly maxQueue: number;
  constructor(maxConcurrent: number, maxQueue: number, message?: string, options?: BreakwaterErrorOptions) {
    super(message ?? `the bulkhead is full (${maxConcurrent} running, ${maxQueue} queued): the call was not made`, options);
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
  }
}

/** True when `value` is a {@link BulkheadRejectedError} from any copy of Breakwater. */
export function isBulkheadRejectedError(value: unknown): value is BulkheadRejectedError {
  return hasCode(value, 'ERR_BREAKWATER_BULKHEAD_REJECTED');
}

/**
 * The throttle refused the call locally, because the dependency has been refusing
 * calls recently (client-side adaptive throttling): the call was not made.
 */
export class ThrottledError extends BreakwaterError {
  readonly code = 'ERR_BREAKWATER_THROTTLED' as const;
  override readonly name = 'ThrottledError';
  /** The probability with which the throttle was rejecting calls when it refused this one, above 0 and at most 1. */
  readonly probability: number;
  constructor(probability: number, options?: BreakwaterErrorOptions) {
    super('the dependency has been refusing calls, so the client throttled this one: the call was not made', options);
    this.probability = probability;
  }
}

/** True when `value` is a {@link ThrottledError} from any copy of Breakwater. */
export function isThrottledError(value: unknown): value is ThrottledError {
  return hasCode(value, 'ERR_BREAKWATER_THROTTLED');
}

/** The rate limiter had no token for the call and it could not wait: the call was not made. */
export class RateLimitedError extends BreakwaterError {
  readonly code = 'ERR_BREAKWATER_RATE_LIMITED' as const;
  override readonly name = 'RateLimitedError';
  /** Milliseconds until the limiter would admit a call, at the moment this one was refused. */
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, message: string, options?: BreakwaterErrorOptions) {
    super(message, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** True when `value` is a {@link RateLimitedError} from any copy of Breakwater. */
export function isRateLimitedError(value: unknown): value is RateLimitedError {
  return hasCode(value, 'ERR_BREAKWATER_RATE_LIMITED');
}

/** True for any error a Breakwater policy produced (as opposed to one thrown by the work). */
export function isBreakwaterError(value: unknown): value is BreakwaterError {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return (value as Record<PropertyKey, unknown>)[BRAND] === true;
  } catch {
    return false;
  }
}

/** A refusal: the call was not made because a policy refused it. */
export type Rejection = BrokenCircuitError | IsolatedCircuitError | BulkheadRejectedError | ThrottledError | RateLimitedError;

/** True when a policy refused the call without running it (open, isolated, full or throttled). */
export function isRejection(value: unknown): value is Rejection {
  return (
    isBrokenCircuitError(value) ||
    isIsolatedCircuitError(value) ||
    isBulkheadRejectedError(value) ||
    isThrottledError(value) ||
    isRateLimitedError(value)
  );
}

/**
 * Builds a refusal without capturing a stack trace: `new Error()` costs microseconds,
 * nearly all of it stack capture, and the stack of a refusal points into the policy,
 * not at a fault. The message and `code` say it all. Restores the limit whatever happens.
 * @internal
 */
export function stackless<E extends Error>(make: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

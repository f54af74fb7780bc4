/**
 * What counts as a failed HTTP call, which requests may be sent again, and how
 * long a server asked us to wait (`Retry-After`).
 */
import { isRejection, isTimeoutError } from '../core/errors.ts';

/**
 * The methods RFC 9110 (section 9.2.2) defines as idempotent: sending one twice
 * has the same effect on the server as sending it once.
 */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What {@link ResilientFetchOptions.replayable} decides from. */
export interface RequestFacts {
  /** The request method, upper case. */
  readonly method: string;
  /** The request URL. */
  readonly url: URL;
  /** The `Idempotency-Key` header, if the request has one. */
  readonly idempotencyKey: string | undefined;
}

/**
 * The default of `replayable`: an idempotent method (GET, HEAD, OPTIONS, TRACE,
 * PUT, DELETE), or any request with an `Idempotency-Key` header.
 */
export function isIdempotent(request: RequestFacts): boolean {
  return IDEMPOTENT_METHODS.has(request.method) || request.idempotencyKey !== undefined;
}

/** The default of `isFailure`: a 5xx response, or 429 Too Many Requests. */
export function isFailureStatus(response: Response): boolean {
  return response.status >= 500 || response.status === 429;
}

const RESPONSE_BRAND = Symbol.for('breakwater.fetch.failure-response');

/**
 * A response that counts as a failure (by default a 5xx or a 429), thrown inside
 * the pipeline so the retry and the breaker see it. `breakwater/fetch` resolves
 * the caller's call with {@link FailureResponseError.response} when it is the
 * last word, as the bare `fetch` would; a policy such as a fallback may see it.
 */
export class FailureResponseError extends Error {
  /** Always `'ERR_BREAKWATER_FAILURE_RESPONSE'`. */
  readonly code = 'ERR_BREAKWATER_FAILURE_RESPONSE' as const;
  override readonly name = 'FailureResponseError';
  /** The response, body unread (it is cancelled if the response is discarded). */
  readonly response: Response;
  /** Its status code. */
  readonly status: number;
  /** How long the server asked to wait (its `Retry-After`), in ms; `undefined` when it did not say. */
  readonly retryAfterMs: number | undefined;
  /** Whether this request may be sent again (see `replayable`). */
  readonly replayable: boolean;
  /** @internal brand shared across package copies */
  readonly [RESPONSE_BRAND] = true;

  /** @internal */
  constructor(response: Response, retryAfterMs: number | undefined, replayable: boolean) {
    super(`the server answered ${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`);
    this.response = response;
    this.status = response.status;
    this.retryAfterMs = retryAfterMs;
    this.replayable = replayable;
  }
}

/** True when `value` is a {@link FailureResponseError} from any copy of Breakwater. */
export function isFailureResponseError(value: unknown): value is FailureResponseError {
  return branded(value, RESPONSE_BRAND);
}

function branded(value: unknown, brand: symbol): boolean {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return (value as Record<PropertyKey, unknown>)[brand] === true;
  } catch {
    return false;
  }
}

/** Errors of attempts of requests that may not be sent again (network errors, timeouts). @internal */
const notReplayable = new WeakSet<object>();

/** Marks an attempt's error as coming from a request that may not be sent again. @internal */
export function markNotReplayable(error: unknown): void {
  if (typeof error === 'object' && error !== null) notReplayable.add(error);
}

/** An abort that is not a timeout: a hedge's losing attempt, or the caller's own. */
function isAbort(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError';
}

/**
 * Whether an attempt's error says the dependency failed: a failure response, a
 * timeout or a network error (what `fetch` rejects with when it gets no response).
 * Not: an abort (a hedge's losing attempt, the caller's) or a Breakwater
 * refusal (an open breaker, a full bulkhead). The breaker of the default
 * pipeline counts these.
 */
export function isFetchFailure(error: unknown): boolean {
  if (isFailureResponseError(error) || isTimeoutError(error)) return true;
  return !isAbort(error) && !isRejection(error);
}

/**
 * Whether an attempt's error is worth sending the request again: a
 * {@link isFetchFailure} of a request that may be sent again. The `handle` of
 * {@link fetchRetry}; use it in your own retry inside `resilientFetch`.
 */
export function isRetryableFetchError(error: unknown): boolean {
  if (isFailureResponseError(error)) return error.replayable;
  return isFetchFailure(error) && !notReplayable.has(error as object);
}

const SECONDS = /^\s*(\d+)\s*$/;
/** Each of the three HTTP-date forms (RFC 9110 section 5.6.7) starts with the day's name. */
const HTTP_DATE = /^\s*(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /;

/**
 * How long a response asks the client to wait, in ms, from its `Retry-After`
 * header: a number of seconds, or an HTTP-date, counted from the response's own
 * `Date` header when it has one (so the two clocks need not agree), otherwise
 * from `nowMs` (wall-clock milliseconds since the epoch). `undefined` when the
 * header is missing or malformed; 0 for a date in the past.
 */
export function retryAfterMs(response: Response, nowMs: number): number | undefined {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = SECONDS.exec(value);
  if (seconds !== null) return Number(seconds[1]) * 1000;
  const at = HTTP_DATE.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(at)) return undefined;
  const date = response.headers.get('date');
  const sent = date === null ? NaN : Date.parse(date);
  return Math.max(0, at - (Number.isNaN(sent) ? nowMs : sent));
}

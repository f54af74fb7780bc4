/**
 * `resilientFetch`: a `fetch` that runs every request through the pipeline of
 * its origin, and never leaves a discarded response holding a connection.
 */
import { unwatchAbort, watchAbort } from '../core/abort.ts';
import { circuitBreaker } from '../circuit-breaker/policy.ts';
import { PIPELINE_NAME } from '../core/pipeline.ts';
import type { Policy, WorkContext } from '../core/protocol.ts';
import { any, type Check, checkOptions, duration, fn, integer, received, satisfies } from '../core/validate.ts';
import { type KeyedPipeline, keyed } from '../keyed.ts';
import { retry, type RetryOptions, type RetryPolicy } from '../retry.ts';
import { timeout } from '../timeout.ts';
import { exponential } from '../backoff.ts';
import {
  FailureResponseError,
  isFailureResponseError,
  isFailureStatus,
  isFetchFailure,
  isIdempotent,
  isRetryableFetchError,
  markNotReplayable,
  type RequestFacts,
  retryAfterMs,
} from './classify.ts';

/** The shape of `fetch`: the global one (undici in Node) or undici's own. */
export type FetchFunction = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Options of {@link resilientFetch}. */
export interface ResilientFetchOptions {
  /**
   * Base name of the per-origin pipelines: the pipeline of origin key `k` is
   * named `name:k` (its `pipeline` label in metrics). 1 to 60 letters, digits or
   * `_ . : / -`, starting with a letter or digit.
   */
  readonly name: string;
  /**
   * Makes the policies of a new origin's pipeline, outermost first; called once
   * per origin key. Default: {@link defaultFetchPolicies}. Use {@link fetchRetry}
   * (or `handle: isRetryableFetchError`) for retries, so that only requests that
   * may be sent again are retried. Whatever the policies, a request that may not
   * be sent again is sent once: a retry or a hedge of it gets that one outcome.
   */
  readonly policies?: (origin: string) => readonly Policy<any>[];
  /**
   * How many origins may have a pipeline at once (default 100; 1 to 10,000); one
   * more evicts the least recently used (see `keyed`).
   */
  readonly maxOrigins?: number;
  /**
   * Which pipeline a URL's requests go through (default: its host, `name:port`
   * when the port is not the scheme's default). The key becomes part of a label
   * value: characters other than letters, digits and `_ . : / -` become `_`, and
   * a key longer than 39 characters is shortened with a hash of the whole.
   */
  readonly origin?: (url: URL) => string;
  /** Which responses are failures (default: {@link isFailureStatus}, a 5xx or a 429). */
  readonly isFailure?: (response: Response) => boolean;
  /**
   * Which requests may be sent more than once (retried, hedged). Default:
   * {@link isIdempotent}, an idempotent method or an `Idempotency-Key` header. A
   * request whose body is a stream can be sent once only, whatever this says.
   */
  readonly replayable?: (request: RequestFacts) => boolean;
  /** The `fetch` to send requests with (default: `globalThis.fetch`, read on each request). */
  readonly fetch?: FetchFunction;
  /** Wall-clock ms since the epoch, for an HTTP-date `Retry-After` on a response without a `Date` header (default `Date.now`). */
  readonly wallClock?: () => number;
}

/** A `fetch`-compatible function returned by {@link resilientFetch}. */
export interface ResilientFetch {
  /**
   * Sends the request through its origin's pipeline. Resolves with the response
   * the bare `fetch` would give, a failure response included (when no retry is
   * left); rejects with what `fetch` rejects with, a `TimeoutError`, or a
   * refusal of a policy (an open breaker, say).
   */
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** The per-origin pipelines: `onCreate` to attach each to a metrics sink, `keys()`, `dispose()`. */
  readonly pipelines: KeyedPipeline<unknown>;
}

/** The defaults of {@link resilientFetch} and of its policies, in one visible place. */
export const FETCH_DEFAULTS = Object.freeze({
  maxOrigins: 100,
  /** Per attempt, until the response headers arrive. */
  timeoutMs: 10_000,
  maxAttempts: 3,
  /** The longest `Retry-After` honoured; a longer one waits this long. */
  maxRetryAfterMs: 30_000,
});

/** Options of {@link fetchRetry}: those of `retry`, and the cap on `Retry-After`. */
export interface FetchRetryOptions extends RetryOptions {
  /**
   * The longest wait a `Retry-After` header can impose, in ms (default 30,000):
   * a longer one waits this long. The backoff's own delay is used when it is longer.
   */
  readonly maxRetryAfterMs?: number;
}

/**
 * A retry for `resilientFetch`: retries failure responses, network errors and
 * timeouts of requests that may be sent again (`handle: isRetryableFetchError`),
 * waiting what the server's `Retry-After` says when that is longer than the
 * backoff, at most `maxRetryAfterMs`. Defaults: 3 attempts, exponential backoff
 * from 100 ms to 5 s with full jitter. Any `retry` option can be given.
 */
export function fetchRetry(options?: FetchRetryOptions): RetryPolicy {
  const spec: Record<string, Check> = { maxRetryAfterMs: duration(0) };
  for (const key of RETRY_KEYS) spec[key] = any; // checked by retry() itself
  const { maxRetryAfterMs, ...rest } = checkOptions<FetchRetryOptions>('fetchRetry', options, spec);
  const cap = maxRetryAfterMs ?? FETCH_DEFAULTS.maxRetryAfterMs;
  return retry({
    maxAttempts: FETCH_DEFAULTS.maxAttempts,
    backoff: exponential({ initialMs: 100, maxMs: 5_000 }),
    handle: isRetryableFetchError,
    retryAfter: (error) => (isFailureResponseError(error) && error.retryAfterMs !== undefined ? Math.min(error.retryAfterMs, cap) : undefined),
    ...rest,
  });
}

const RETRY_KEYS = ['maxAttempts', 'backoff', 'handle', 'maxElapsedMs', 'retryAfter', 'budget', 'clock', 'random'] as const;

/**
 * The policies of an origin's pipeline when `policies` is not given, outermost
 * first: `fetchRetry()` (3 attempts), a circuit breaker counting
 * {@link isFetchFailure} (so a 404 does not count against it), and a timeout of
 * 10 s per attempt.
 */
export function defaultFetchPolicies(): Policy<never>[] {
  return [fetchRetry(), circuitBreaker({ handle: isFetchFailure }), timeout({ ms: FETCH_DEFAULTS.timeoutMs })];
}

/** One request: its attempts, the responses they got, and which one the caller takes. */
class FetchCall {
  readonly #input: string | URL | Request;
  readonly #init: RequestInit | undefined;
  readonly #callerSignal: AbortSignal | undefined;
  readonly #facts: RequestFacts;
  readonly #replayable: boolean;
  readonly #options: Settings;
  /** Every response an attempt got; all but the one the caller takes are cancelled. */
  readonly #responses: Response[] = [];
  /** The last failure response, while it may still be the call's result. */
  #lastFailed: Response | undefined = undefined;
  /** The one attempt of a request that may not be sent again. */
  #first: Promise<Response> | undefined = undefined;
  #done = false;

  constructor(input: string | URL | Request, init: RequestInit | undefined, signal: AbortSignal | undefined, facts: RequestFacts, replayable: boolean, options: Settings) {
    this.#input = input;
    this.#init = init;
    this.#callerSignal = signal;
    this.#facts = facts;
    this.#replayable = replayable;
    this.#options = options;
  }

  /** The work of each attempt. */
  readonly attempt = (context: WorkContext): Promise<Response> => {
    if (!this.#replayable) {
      // Sent once only: a retry or a hedge of it gets the one attempt's outcome.
      return (this.#first ??= this.#send(context.signal));
    }
    // A new attempt decides the call's result from now on: the last failure is not it.
    this.#discardLastFailed();
    return this.#send(context.signal);
  };

  async #send(signal: AbortSignal): Promise<Response> {
    // The attempt's signal stops the request until its response arrives, and no longer:
    // a hedge's or a timeout's abort after that must not break the body the caller reads.
    // The caller's own signal stops the body too, as with the bare fetch.
    const link = new AttemptSignal(signal, this.#replayable);
    const caller = this.#callerSignal;
    const sendSignal = caller === undefined ? link.controller.signal : AbortSignal.any([link.controller.signal, caller]);
    const input = this.#input instanceof Request && this.#input.body !== null && this.#replayable ? this.#input.clone() : this.#input;
    let response: Response;
    try {
      response = await this.#options.fetch()(input, { ...this.#init, signal: sendSignal });
    } catch (error) {
      if (!this.#replayable) markNotReplayable(error);
      if (!signal.aborted) this.#discardLastFailed();
      throw error;
    } finally {
      link.release();
    }
    this.#responses.push(response);
    if (this.#done || signal.aborted) {
      cancelBody(response); // nobody will take it: the call ended, or this attempt was given up
      return response;
    }
    this.#discardLastFailed();
    if (!this.#options.isFailure(response)) return response;
    this.#lastFailed = response;
    throw new FailureResponseError(response, retryAfterMs(response, this.#options.wallClock()), this.#replayable);
  }

  #discardLastFailed(): void {
    if (this.#lastFailed !== undefined) {
      cancelBody(this.#lastFailed);
      this.#lastFailed = undefined;
    }
  }

  /** The call ended: the caller takes `kept` (or nothing); every other response is cancelled. */
  finish(kept: Response | undefined): void {
    this.#done = true;
    this.#lastFailed = undefined;
    for (const response of this.#responses) if (response !== kept) cancelBody(response);
  }

  /** Whether `response` is one of this call's. */
  owns(response: Response): boolean {
    return this.#responses.includes(response);
  }
}

/** Follows an attempt's signal into the request's own controller while the request waits for its response. */
class AttemptSignal {
  readonly controller = new AbortController();
  readonly #signal: AbortSignal;
  readonly #replayable: boolean;

  constructor(signal: AbortSignal, replayable: boolean) {
    this.#signal = signal;
    this.#replayable = replayable;
    if (signal.aborted) this.handleEvent();
    else watchAbort(signal, this);
  }

  handleEvent(): void {
    const reason: unknown = this.#signal.reason;
    // Tagged before any layer sees the timeout's error, so a fetch retry knows not to retry it.
    if (!this.#replayable) markNotReplayable(reason);
    this.controller.abort(reason);
  }

  release(): void {
    unwatchAbort(this.#signal, this);
  }
}

/** Frees what an unread body holds (its connection); harmless on a body already read or cancelled. */
function cancelBody(response: Response): void {
  const body = response.body;
  if (body !== null && !response.bodyUsed && !body.locked) body.cancel().catch(() => {});
}

interface Settings {
  readonly fetch: () => FetchFunction;
  readonly isFailure: (response: Response) => boolean;
  readonly wallClock: () => number;
}

/** Characters a key may not hold (see `keyed`). */
const KEY_UNSAFE = /[^A-Za-z0-9_.:/-]/g;
const KEY_MAX = 39;

/** A key `keyed` accepts, from whatever the origin function returned. */
function originKey(raw: unknown): string {
  if (typeof raw !== 'string' || raw === '') {
    throw new TypeError(`resilientFetch: option "origin" must return a non-empty string; received ${received(raw)}`);
  }
  const safe = raw.replace(KEY_UNSAFE, '_');
  if (safe.length >= 1 && safe.length <= KEY_MAX) return safe;
  // FNV-1a of the whole: two long hosts sharing their first characters stay apart.
  let hash = 0x811c9dc5;
  for (let i = 0; i < raw.length; i++) hash = Math.imul(hash ^ raw.charCodeAt(i), 0x01000193);
  return `${safe.slice(0, KEY_MAX - 9)}-${(hash >>> 0).toString(16).padStart(8, '0')}`;
}

function urlOf(input: string | URL | Request): URL {
  if (typeof input === 'string') return new URL(input);
  if (input instanceof URL) return input;
  if (input instanceof Request) return new URL(input.url);
  throw new TypeError(`resilientFetch: the input must be a URL string, a URL or a Request; received ${received(input)}`);
}

/** The `Idempotency-Key` header of the request, if any. */
function idempotencyKeyOf(input: string | URL | Request, init: RequestInit | undefined): string | undefined {
  const headers = init?.headers ?? (input instanceof Request ? input.headers : undefined);
  if (headers === undefined) return undefined;
  if (headers instanceof Headers) return headers.get('idempotency-key') ?? undefined;
  if (Array.isArray(headers)) return headers.find(([name]) => name.toLowerCase() === 'idempotency-key')?.[1];
  for (const name of Object.keys(headers)) if (name.toLowerCase() === 'idempotency-key') return (headers as Record<string, string>)[name];
  return undefined;
}

/** A body that can be read once only. */
function isStream(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body instanceof ReadableStream || Symbol.asyncIterator in body);
}

/**
 * A `fetch` with the same arguments and result as the global one, that runs
 * each request through the pipeline of its origin: created on the origin's
 * first request, reused after, at most `maxOrigins` at once. Failure responses
 * (5xx and 429 by default), network errors and timeouts are failures; other 4xx
 * are answers. Only requests that may be sent again (idempotent methods, or an
 * `Idempotency-Key` header) are retried or hedged, honouring `Retry-After`. The
 * body of every response that the caller does not get is cancelled, so no
 * connection is left held by it.
 *
 * ```ts
 * const api = resilientFetch({ name: 'api' });
 * const user = await (await api('https://api.example.com/users/1')).json();
 * ```
 */
export function resilientFetch(options: ResilientFetchOptions): ResilientFetch {
  const checked = checkOptions<ResilientFetchOptions>(
    'resilientFetch',
    options,
    {
      name: satisfies(
        'a string of 1 to 60 letters, digits or _ . : / - starting with a letter or digit (with the origin, it becomes a metrics label value)',
        (v) => typeof v === 'string' && v.length <= 60 && PIPELINE_NAME.test(v),
      ),
      policies: fn,
      maxOrigins: integer(1, 10_000),
      origin: fn,
      isFailure: fn,
      replayable: fn,
      fetch: fn,
      wallClock: fn,
    },
    ['name'],
  );
  const pipelines = keyed({
    name: checked.name!,
    maxKeys: checked.maxOrigins ?? FETCH_DEFAULTS.maxOrigins,
    create: checked.policies ?? defaultFetchPolicies,
  }) as KeyedPipeline<unknown>;
  const origin = checked.origin ?? ((url: URL) => url.host);
  const replayable = checked.replayable ?? isIdempotent;
  const given = checked.fetch;
  const settings: Settings = {
    fetch: given === undefined ? () => globalThis.fetch : () => given,
    isFailure: checked.isFailure ?? isFailureStatus,
    wallClock: checked.wallClock ?? Date.now,
  };

  const call = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = urlOf(input);
    const pipeline = pipelines.get(originKey(origin(url)));
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const facts: RequestFacts = { method, url, idempotencyKey: idempotencyKeyOf(input, init) };
    // A Request's own body can be replayed (each attempt sends a clone); a stream given in init cannot.
    const sendAgain = !isStream(init?.body) && replayable(facts) === true;
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined) ?? undefined;
    const request = new FetchCall(input, init, signal, facts, sendAgain, settings);
    let response: Response;
    try {
      response = (await pipeline.execute(request.attempt, { signal })) as Response;
    } catch (error) {
      if (isFailureResponseError(error) && request.owns(error.response)) {
        request.finish(error.response); // no retry left: the caller gets the answer, as from fetch
        return error.response;
      }
      request.finish(undefined);
      throw error;
    }
    request.finish(response);
    return response;
  };
  return Object.assign(call, { pipelines });
}

/**
 * Shared types of the demo harness: what a service is, what it receives, and
 * what travels between services. The same service code runs on real HTTP
 * (`transport: 'http'`) and on the in-memory transport under `FakeClock`
 * (`transport: 'memory'`); nothing here depends on which.
 */
import type { Clock, Pipeline, RandomSource } from '../../src/index.ts';

/** A request between services (or from the load generator to the entry service). */
export interface HttpRequest {
  /** `GET`, `POST`, ... */
  readonly method: string;
  /** Path with optional query string, starting with `/`. */
  readonly path: string;
  /** Lower-case header names. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A JSON-serialisable body, or `undefined`. */
  readonly body?: unknown;
}

/** A response. A body that is an object or array travels as JSON; a string as text. */
export interface HttpResponse {
  readonly status: number;
  /** Lower-case header names. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
}

/** Options of one call to another service. */
export interface CallOptions {
  /**
   * Aborting it makes the call reject at once with `signal.reason`, and the
   * callee sees its own request signal abort (as a closed connection would).
   */
  readonly signal?: AbortSignal | undefined;
}

/** What a service gets once, when the harness builds it (see {@link ServiceSpec.create}). */
export interface ServiceEnv {
  /** The service's name, as other services address it. */
  readonly name: string;
  /** The clock every policy of this service must use (`FakeClock` in tests, the system clock for real). */
  readonly clock: Clock;
  /** Random source for policies (`random` option): seeded in memory runs. */
  readonly random: RandomSource;
  /**
   * Calls `service` through the transport. Resolves with the response whatever
   * its status (a 503 is a response, not an error); rejects on abort, on a
   * closed deployment, or on a network error.
   */
  call(service: string, request: HttpRequest, options?: CallOptions): Promise<HttpResponse>;
  /** Waits `ms` on {@link ServiceEnv.clock}; rejects with `signal.reason` if `signal` aborts, or when the deployment closes. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Reports this pipeline's Breakwater metrics on the service's own `/metrics`
   * (a prom-client Registry per service). Returns the pipeline for chaining.
   * A no-op when the deployment runs without metrics (memory runs by default).
   */
  instrument<P extends Pipeline<unknown>>(pipeline: P): P;
  /** Milliseconds since the deployment started (the time base of faults and records). */
  elapsedMs(): number;
}

/** What a handler gets per request: the env plus the request's own signal. */
export interface RequestContext extends ServiceEnv {
  /** Aborted when the caller gives up on this request (client timeout, closed connection) or the deployment closes. */
  readonly signal: AbortSignal;
}

/** Handles one request. Throwing (or rejecting) answers 500. */
export type Handler = (request: HttpRequest, context: RequestContext) => HttpResponse | Promise<HttpResponse>;

/**
 * A service, written once. `create` runs once per deployment (build pipelines
 * there, one per dependency) and returns the request handler.
 */
export interface ServiceSpec {
  readonly name: string;
  /**
   * Size of the service's worker pool: at most this many requests are handled
   * at once, like a server's thread or connection pool (default: unbounded).
   * A request waits for a free worker in a queue of at most {@link ServiceSpec.queue}.
   */
  readonly workers?: number;
  /** Requests allowed to wait for a worker; one more is answered 503 at once (default: unbounded). */
  readonly queue?: number;
  /** Builds the service; returns its handler. */
  readonly create: (env: ServiceEnv) => Handler;
}

/** A fault the harness injects in front of a service's handler. */
export type Fault =
  /**
   * Answer `status` (default 503) at once, without running the handler. With `probability` < 1 only that share of requests fails.
   * With `retryAfterMs`, the answer carries `Retry-After` (in whole seconds, rounded up), as a service that knows it is down says.
   */
  | { readonly kind: 'error'; readonly status?: number; readonly probability?: number; readonly retryAfterMs?: number }
  /** Never answer while the fault lasts; held requests are handled when it ends (or dropped when their caller aborts). */
  | { readonly kind: 'hang'; readonly probability?: number }
  /** Add `addMs` of latency before the handler runs. */
  | { readonly kind: 'latency'; readonly addMs: number };

/**
 * One fault on a service's timeline, in ms since the deployment started:
 * active on `[fromMs, toMs)`, then (optionally) fading out linearly over
 * `recoveryRampMs` (slow recovery: an `error`/`hang` hits a falling share of
 * requests; a `latency` shrinks). Held (`hang`) requests are released at the end of the ramp.
 */
export interface FaultWindow {
  readonly service: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly fault: Fault;
  readonly recoveryRampMs?: number;
  /** Only requests whose path starts with this (default: all but `/metrics`). */
  readonly pathPrefix?: string;
}

/** One request the load generator offered, and how it ended. */
export interface RequestRecord {
  /** Sequence number, from 0. */
  readonly id: number;
  /** The endpoint label given by the load plan (used for per-endpoint stats). */
  readonly endpoint: string;
  /** Intended start, ms since the deployment started (the schedule's time, so queueing in the generator counts). */
  readonly startMs: number;
  /** When it settled, ms since the deployment started. */
  readonly endMs: number;
  /** `endMs - startMs`. */
  readonly latencyMs: number;
  /** HTTP status, or 0 when no response came (client timeout or network error). */
  readonly status: number;
  /** 2xx. */
  readonly ok: boolean;
  /** 2xx with header `x-degraded` set: served, but degraded (fallback, cache, anonymous). */
  readonly degraded: boolean;
  /** Why no response came: `'client-timeout'`, `'network'`, or undefined. */
  readonly error?: 'client-timeout' | 'network' | undefined;
}

/**
 * The auth-cascade topology, written once: an auth service, a gateway, and four
 * services that validate the caller's token with auth on (some of) their
 * endpoints. Only how a service calls auth differs between the two variants:
 *
 * - `before`: the code the incident had. Every call to auth goes through
 *   p-retry with `retries: Infinity`, no timeout, no breaker, and ignores the
 *   caller going away, the way such code is usually written.
 * - `after`: every call to auth goes through one Breakwater pipeline per
 *   service: fallback → bulkhead → retry (with the service's retry budget) →
 *   circuit breaker → timeout; the gateway puts a deadline on every request.
 *
 * Each service has a bounded worker pool (`workers` + `queue`), as servers do:
 * that is what lets requests stuck on auth starve the endpoints that never
 * needed auth.
 */
import pRetry from 'p-retry';
import {
  bulkhead,
  circuitBreaker,
  exponential,
  fallback,
  isTimeoutError,
  pipeline,
  retry,
  retryBudget,
  type StateChangeEvent,
  timeout,
} from '../../src/index.ts';
import type { HttpRequest, HttpResponse, RequestContext, ServiceEnv, ServiceSpec } from '../harness/index.ts';

/** Which code the services run. */
export type Variant = 'before' | 'after';

/** Every number of the topology, in one visible place (ms unless the name says otherwise). */
export interface AuthCascadeConfig {
  /** Distinct users (tokens `u0`..`u<n-1>`). */
  readonly users: number;
  /** Time auth spends validating a token. */
  readonly authWorkMs: number;
  /** Time a service spends on a request besides calling auth. */
  readonly serviceWorkMs: number;
  /** Worker pool of each of the four services, and its queue. */
  readonly serviceWorkers: number;
  readonly serviceQueue: number;
  /** Worker pool of the gateway, and its queue. */
  readonly gatewayWorkers: number;
  readonly gatewayQueue: number;
  /** Worker pool of auth, and its queue. */
  readonly authWorkers: number;
  readonly authQueue: number;
  /** before: p-retry backoff, `min(minDelayMs × 2^(n−1), maxDelayMs)`, retries unlimited. */
  readonly naiveMinDelayMs: number;
  readonly naiveMaxDelayMs: number;
  /** after: the gateway's deadline for every request. */
  readonly deadlineMs: number;
  /** after: per-attempt timeout of a call to auth. */
  readonly authTimeoutMs: number;
  /** after: attempts per auth call (first one included), and the backoff between them. */
  readonly maxAttempts: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** after: the retry budget of each service (shared by all its calls to auth). */
  readonly budgetRatio: number;
  readonly budgetMinPerSecond: number;
  readonly budgetWindowMs: number;
  /** after: the breaker of each service's auth pipeline. */
  readonly breakerFailureRate: number;
  readonly breakerMinimumCalls: number;
  readonly breakerWindowMs: number;
  readonly halfOpenAfterMs: number;
  /** after: the bulkhead in front of auth in each service. */
  readonly bulkheadMaxConcurrent: number;
  readonly bulkheadMaxQueue: number;
  readonly bulkheadQueueTimeoutMs: number;
  /** after: how old a cached token validation the profile service may serve when auth is down. */
  readonly profileCacheTtlMs: number;
}

/** The configuration used by the demo and the tests. */
export const DEFAULT_CONFIG: AuthCascadeConfig = Object.freeze({
  users: 50,
  authWorkMs: 2,
  serviceWorkMs: 4,
  serviceWorkers: 32,
  serviceQueue: 32,
  gatewayWorkers: 256,
  gatewayQueue: 256,
  authWorkers: 64,
  authQueue: 1024,
  naiveMinDelayMs: 100,
  naiveMaxDelayMs: 500,
  deadlineMs: 1000,
  authTimeoutMs: 150,
  maxAttempts: 3,
  backoffInitialMs: 25,
  backoffMaxMs: 100,
  budgetRatio: 0.1,
  budgetMinPerSecond: 1,
  budgetWindowMs: 2000,
  breakerFailureRate: 0.5,
  breakerMinimumCalls: 10,
  breakerWindowMs: 2000,
  halfOpenAfterMs: 1000,
  bulkheadMaxConcurrent: 8,
  bulkheadMaxQueue: 8,
  bulkheadQueueTimeoutMs: 100,
  profileCacheTtlMs: 60_000,
});

/** How much an endpoint depends on auth. */
export type AuthNeed = 'none' | 'optional' | 'cached' | 'required';

/** One endpoint of the load mix. */
export interface EndpointSpec {
  /** Label in tables and charts. */
  readonly label: string;
  readonly method: 'GET' | 'POST';
  /** Path on the gateway. */
  readonly path: string;
  readonly need: AuthNeed;
  /** Share of offered requests. */
  readonly weight: number;
}

/** The endpoints, in table order. Degradable: none, optional, cached. */
export const ENDPOINTS: readonly EndpointSpec[] = Object.freeze([
  { label: 'catalog /products', method: 'GET', path: '/api/catalog/products', need: 'none', weight: 0.25 },
  { label: 'catalog /recommendations', method: 'GET', path: '/api/catalog/recommendations', need: 'optional', weight: 0.2 },
  { label: 'reviews /reviews', method: 'GET', path: '/api/reviews/reviews', need: 'optional', weight: 0.15 },
  { label: 'profile /me', method: 'GET', path: '/api/profile/me', need: 'cached', weight: 0.2 },
  { label: 'orders /checkout', method: 'POST', path: '/api/orders/checkout', need: 'required', weight: 0.2 },
] as const);

/** Names of the services that call auth. */
export const DEPENDENTS = ['catalog', 'reviews', 'profile', 'orders'] as const;

/** What a service learned about a token. */
export type AuthResult =
  | { readonly kind: 'valid'; readonly user: string }
  | { readonly kind: 'invalid' }
  /** after only: auth could not answer in time (fallback). */
  | { readonly kind: 'unavailable' };

/** Observation points for tests and the demo's report. */
export interface TopologyHooks {
  /** A dependent's auth breaker changed state (after only), at `atMs` since the deployment started. */
  readonly breakerStateChange?: (service: string, event: StateChangeEvent, atMs: number) => void;
}

const UNAVAILABLE: AuthResult = Object.freeze({ kind: 'unavailable' });

/** Auth answered 5xx: worth a retry. */
class AuthUnavailableError extends Error {
  override readonly name = 'AuthUnavailableError';
  readonly status: number;
  constructor(status: number) {
    super(`auth answered ${status}`);
    this.status = status;
  }
}

function tokenOf(request: HttpRequest): string | undefined {
  const header = request.headers?.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7) : undefined;
}

/** One call to auth, as both variants make it: 200 → valid, 401 → invalid, anything else throws. */
async function askAuth(env: ServiceEnv, token: string, signal?: AbortSignal): Promise<AuthResult> {
  const response = await env.call('auth', { method: 'POST', path: '/validate', body: { token } }, { signal });
  if (response.status === 200) return { kind: 'valid', user: (response.body as { user: string }).user };
  if (response.status === 401) return { kind: 'invalid' };
  throw new AuthUnavailableError(response.status);
}

/** How a service validates tokens: `validate(token, requestSignal)`. */
type Validate = (token: string, signal: AbortSignal) => Promise<AuthResult>;

/** before: p-retry, unlimited retries, no timeout, no breaker, the caller's abort ignored. */
function naiveValidator(env: ServiceEnv, config: AuthCascadeConfig): Validate {
  return (token) =>
    pRetry(() => askAuth(env, token), {
      retries: Infinity,
      // p-retry's own sleep uses setTimeout; the same backoff is slept on the
      // harness clock instead, so this exact code also runs under FakeClock.
      minTimeout: 0,
      onFailedAttempt: ({ attemptNumber }) =>
        env.sleep(Math.min(config.naiveMinDelayMs * 2 ** (attemptNumber - 1), config.naiveMaxDelayMs)),
    });
}

/** after: one Breakwater pipeline per service for every call to auth. */
function guardedValidator(env: ServiceEnv, config: AuthCascadeConfig, hooks: TopologyHooks): Validate {
  const { clock, random } = env;
  const budget = retryBudget({
    ratio: config.budgetRatio,
    minPerSecond: config.budgetMinPerSecond,
    windowMs: config.budgetWindowMs,
    clock,
  });
  const breaker = circuitBreaker({
    failureRateThreshold: config.breakerFailureRate,
    minimumCalls: config.breakerMinimumCalls,
    window: { kind: 'time', ms: config.breakerWindowMs, buckets: 10 },
    halfOpenAfterMs: config.halfOpenAfterMs,
    clock,
    random,
  });
  if (hooks.breakerStateChange !== undefined) {
    const report = hooks.breakerStateChange;
    breaker.onStateChange((event) => report(env.name, event, env.elapsedMs()));
  }
  const auth = env.instrument(
    pipeline(
      { name: 'auth', clock },
      // Outermost: whatever went wrong below (timeout, open breaker, full
      // bulkhead, spent budget), the endpoint gets "unavailable" and degrades.
      fallback<AuthResult>({ value: UNAVAILABLE }),
      // One slot per call, retries included: a slow auth holds at most 8 workers.
      bulkhead({
        maxConcurrent: config.bulkheadMaxConcurrent,
        maxQueue: config.bulkheadMaxQueue,
        queueTimeoutMs: config.bulkheadQueueTimeoutMs,
        clock,
      }),
      // A few quick retries, but never more than the budget: 10% of calls.
      retry({
        maxAttempts: config.maxAttempts,
        backoff: exponential({ initialMs: config.backoffInitialMs, maxMs: config.backoffMaxMs }),
        budget,
        clock,
        random,
      }),
      // Inside retry, so every attempt counts; open, it answers in microseconds.
      breaker,
      // Innermost: per attempt.
      timeout({ ms: config.authTimeoutMs, clock }),
    ),
  );
  return (token, signal) => auth.execute(({ signal: attemptSignal }) => askAuth(env, token, attemptSignal), { signal });
}

function degraded(body: unknown): HttpResponse {
  return { status: 200, headers: { 'x-degraded': '1' }, body };
}

/** A service that validates tokens: builds its validator, then its routes. */
function dependent(
  name: string,
  variant: Variant,
  config: AuthCascadeConfig,
  hooks: TopologyHooks,
  routes: (validate: Validate, env: ServiceEnv) => Record<string, (req: HttpRequest, ctx: RequestContext) => Promise<HttpResponse>>,
): ServiceSpec {
  return {
    name,
    workers: config.serviceWorkers,
    queue: config.serviceQueue,
    create: (env) => {
      const validate = variant === 'before' ? naiveValidator(env, config) : guardedValidator(env, config, hooks);
      const table = routes(validate, env);
      return async (request, ctx) => {
        const route = table[`${request.method} ${request.path.split('?')[0]}`];
        if (route === undefined) return { status: 404, body: { error: `${name}: no route ${request.method} ${request.path}` } };
        return route(request, ctx);
      };
    },
  };
}

/** Validates the request's token; `undefined` token means anonymous. */
async function identify(validate: Validate, request: HttpRequest, ctx: RequestContext): Promise<AuthResult | undefined> {
  const token = tokenOf(request);
  return token === undefined ? undefined : validate(token, ctx.signal);
}

/** The services of the topology for one variant. */
export function authCascadeServices(
  variant: Variant,
  config: AuthCascadeConfig = DEFAULT_CONFIG,
  hooks: TopologyHooks = {},
): ServiceSpec[] {
  const work = (ctx: RequestContext): Promise<void> => ctx.sleep(config.serviceWorkMs, ctx.signal);

  const auth: ServiceSpec = {
    name: 'auth',
    workers: config.authWorkers,
    queue: config.authQueue,
    create: () => async (request, ctx) => {
      await ctx.sleep(config.authWorkMs, ctx.signal);
      const token = (request.body as { token?: unknown } | undefined)?.token;
      if (typeof token === 'string' && /^u\d+$/.test(token)) return { status: 200, body: { user: token } };
      return { status: 401, body: { error: 'invalid token' } };
    },
  };

  const catalog = dependent('catalog', variant, config, hooks, (validate) => ({
    // Anonymous read: never needed auth.
    'GET /products': async (_req, ctx) => {
      await work(ctx);
      return { status: 200, body: { products: ['p1', 'p2', 'p3'] } };
    },
    // Personalised when the user is known; the popular list otherwise.
    'GET /recommendations': async (req, ctx) => {
      const who = await identify(validate, req, ctx);
      await work(ctx);
      if (who?.kind === 'valid') return { status: 200, body: { for: who.user, items: ['r1', 'r2'] } };
      if (who?.kind === 'invalid') return { status: 401, body: { error: 'invalid token' } };
      return who === undefined ? { status: 200, body: { items: ['popular'] } } : degraded({ items: ['popular'] });
    },
  }));

  const reviews = dependent('reviews', variant, config, hooks, (validate) => ({
    // Signed-in users see their own review highlighted; anyone can read.
    'GET /reviews': async (req, ctx) => {
      const who = await identify(validate, req, ctx);
      await work(ctx);
      if (who?.kind === 'valid') return { status: 200, body: { mine: who.user, reviews: 12 } };
      if (who?.kind === 'invalid') return { status: 401, body: { error: 'invalid token' } };
      return who === undefined ? { status: 200, body: { reviews: 12 } } : degraded({ reviews: 12 });
    },
  }));

  const profile = dependent('profile', variant, config, hooks, (validate, env) => {
    // Last successful validation per token: served, marked stale, only when auth cannot answer.
    const cache = new Map<string, { user: string; atMs: number }>();
    return {
      'GET /me': async (req, ctx) => {
        const token = tokenOf(req);
        if (token === undefined) return { status: 401, body: { error: 'sign in' } };
        const who = await validate(token, ctx.signal);
        await work(ctx);
        if (who.kind === 'valid') {
          cache.set(token, { user: who.user, atMs: env.elapsedMs() });
          return { status: 200, body: { user: who.user } };
        }
        if (who.kind === 'invalid') return { status: 401, body: { error: 'invalid token' } };
        const hit = cache.get(token);
        if (hit !== undefined && env.elapsedMs() - hit.atMs <= config.profileCacheTtlMs) return degraded({ user: hit.user, stale: true });
        return { status: 503, headers: { 'retry-after': '1' }, body: { error: 'auth unavailable' } };
      },
    };
  });

  const orders = dependent('orders', variant, config, hooks, (validate) => ({
    // Must know who pays: fails closed, but fast, when auth cannot answer.
    'POST /checkout': async (req, ctx) => {
      const token = tokenOf(req);
      if (token === undefined) return { status: 401, body: { error: 'sign in' } };
      const who = await validate(token, ctx.signal);
      if (who.kind === 'invalid') return { status: 401, body: { error: 'invalid token' } };
      if (who.kind === 'unavailable') return { status: 503, headers: { 'retry-after': '1' }, body: { error: 'auth unavailable' } };
      await work(ctx);
      return { status: 200, body: { order: 'o1', user: who.user } };
    },
  }));

  const gateway: ServiceSpec = {
    name: 'gateway',
    workers: config.gatewayWorkers,
    queue: config.gatewayQueue,
    create: (env) => {
      // after: one deadline for the whole request; the gateway answers 504 when it passes.
      const deadline =
        variant === 'after' ? env.instrument(pipeline({ name: 'upstream', clock: env.clock }, timeout({ ms: config.deadlineMs, clock: env.clock }))) : undefined;
      return async (request, ctx) => {
        const match = /^\/api\/([a-z]+)(\/.*)$/.exec(request.path);
        if (match === null) return { status: 404, body: { error: 'gateway: unknown route' } };
        const [, service, path] = match as unknown as [string, string, string];
        const forward = (signal: AbortSignal): Promise<HttpResponse> =>
          ctx.call(service, { method: request.method, path, headers: request.headers, body: request.body }, { signal });
        try {
          const response = deadline === undefined ? await forward(ctx.signal) : await deadline.execute(({ signal }) => forward(signal), { signal: ctx.signal });
          const headers: Record<string, string> = {};
          for (const key of ['x-degraded', 'retry-after', 'x-overloaded']) {
            const value = response.headers?.[key];
            if (value !== undefined) headers[key] = value;
          }
          return { status: response.status, headers, body: response.body };
        } catch (error) {
          if (isTimeoutError(error)) return { status: 504, body: { error: `gateway: ${service} missed the ${config.deadlineMs} ms deadline` } };
          return { status: 502, body: { error: `gateway: ${service} unreachable` } };
        }
      };
    },
  };

  return [auth, gateway, catalog, reviews, profile, orders];
}

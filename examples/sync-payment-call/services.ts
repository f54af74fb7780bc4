/**
 * The services of the sync-payment-call demo, written once for both transports.
 *
 * Seven microservices take part in a checkout, as in the incident's trace:
 *
 * ```
 * checkout ─┬─ cart            GET  /carts/{id}
 *           ├─ pricing         POST /quotes        ┐
 *           ├─ inventory       POST /reservations  ├ in parallel
 *           ├─ shipping        POST /rates         ┘
 *           ├─ fraud           POST /scores
 *           └─ payment         POST /payments ── payment-provider  POST /v1/charges  (external, ~2.8 s)
 * ```
 *
 * `mode: 'before'` is the code the incident found: payment calls the external
 * API while checkout waits, with no timeout. `mode: 'after'` is the fix: payment
 * puts the order in an outbox and answers 202 at once; a background job charges
 * it through a Breakwater pipeline (bulkhead, circuit breaker, timeout) with the
 * order's idempotency key, its re-attempts spaced by a Breakwater backoff
 * schedule (never sooner than the API's `Retry-After`) and capped by a retry budget.
 *
 * Every service records spans in a shared {@link SpanRecorder}, timed with the
 * deployment's clock, so one request's trace can be printed afterwards.
 */
import {
  bulkhead,
  circuitBreaker,
  type Clock,
  exponential,
  isRejection,
  pipeline,
  retryBudget,
  type StateChangeEvent,
  timeout,
} from '../../src/index.ts';
import { type HttpRequest, type HttpResponse, type RequestContext, retryAfterHeader, type ServiceEnv, type ServiceSpec } from '../harness/index.ts';
import { type ChargeReplyBody, FakePaymentProvider, type ProviderBehaviour, steadyBehaviour } from './external-api.ts';
import {
  type AttemptOutcome,
  ChargeFailedError,
  type PaymentJob,
  PaymentOutbox,
  parseRetryAfter,
  PaymentWorker,
  RetryDeferredError,
  type SendCharge,
} from './payment-job.ts';
import { formatTraceparent, parseTraceparent, SpanRecorder, type TraceContext, TRACEPARENT_HEADER } from './tracing.ts';

/** A latency drawn from a bell-shaped distribution on `[meanMs - spreadMs, meanMs + spreadMs]`. */
export interface LatencySpec {
  readonly meanMs: number;
  readonly spreadMs: number;
}

/** Own processing time of each internal service, in milliseconds (not scaled). */
export interface ServiceLatencies {
  readonly checkout: LatencySpec;
  readonly cart: LatencySpec;
  readonly pricing: LatencySpec;
  readonly inventory: LatencySpec;
  readonly shipping: LatencySpec;
  readonly fraud: LatencySpec;
  /** What payment takes to write an order to its outbox (after) or to prepare the call (before). */
  readonly payment: LatencySpec;
}

/**
 * Defaults chosen so that the internal services add up to about 125 ms, which
 * puts checkout's p95 near the incident report's 150 ms once the external call is gone.
 */
export const DEFAULT_LATENCIES: ServiceLatencies = Object.freeze({
  checkout: { meanMs: 12, spreadMs: 6 },
  cart: { meanMs: 22, spreadMs: 12 },
  pricing: { meanMs: 36, spreadMs: 20 },
  inventory: { meanMs: 40, spreadMs: 22 },
  shipping: { meanMs: 28, spreadMs: 14 },
  fraud: { meanMs: 36, spreadMs: 18 },
  payment: { meanMs: 5, spreadMs: 3 },
});

/** How the background job calls the external API (mode 'after'). */
export interface PaymentJobSettings {
  /** Calls to the external API running at once (bulkhead). */
  readonly maxConcurrent: number;
  /** Calls waiting for a slot (bulkhead queue). */
  readonly maxQueue: number;
  /** Deadline of one call to the external API, in ms. */
  readonly timeoutMs: number;
  /** First delay before a failed job is tried again, in ms (exponential, equal jitter, capped at `retryMaxMs`). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** Retry budget shared by the job's re-attempts: retries per first attempt over 10 s... */
  readonly retryBudgetRatio: number;
  /** ...plus this many retries per second whatever the traffic. */
  readonly retryBudgetMinPerSecond: number;
  /**
   * Put a circuit breaker between bulkhead and timeout (default true). It is what
   * keeps the job from multiplying the load on a failing API: once it opens, jobs
   * wait without calling, and one probe at a time finds out when the API is back.
   * `--no-breaker` in the demo takes it out.
   */
  readonly breaker: boolean;
  /** Breaker: opens when this share of the last `breakerWindowCalls` calls failed... */
  readonly breakerFailureRatio: number;
  /** ...once its window holds at least this many calls. */
  readonly breakerMinimumCalls: number;
  /** Breaker: its window is the last this many calls (a count window: it fills at any rate). */
  readonly breakerWindowCalls: number;
  /** Breaker: how long it stays open before one probe, in ms. */
  readonly breakerHalfOpenAfterMs: number;
}

/** Defaults of {@link PaymentJobSettings}, sized for about 10 checkouts a second at 2.8 s a charge. */
export const DEFAULT_JOB_SETTINGS: PaymentJobSettings = Object.freeze({
  maxConcurrent: 48,
  maxQueue: 16,
  timeoutMs: 5_000,
  retryInitialMs: 500,
  retryMaxMs: 5_000,
  retryBudgetRatio: 0.2,
  retryBudgetMinPerSecond: 5,
  breaker: true,
  breakerFailureRatio: 0.5,
  breakerMinimumCalls: 4,
  breakerWindowCalls: 8,
  breakerHalfOpenAfterMs: 1_000,
});

/** Options of {@link paymentTopology}. */
export interface PaymentTopologyOptions {
  readonly mode: 'before' | 'after';
  /** How the external API behaves apart from injected faults (default: 2.8 s ± 150 ms, always fine). */
  readonly providerBehaviour?: (random: () => number) => ProviderBehaviour;
  readonly latencies?: ServiceLatencies;
  readonly job?: Partial<PaymentJobSettings>;
  /** Called after each attempt of the background job (for series and counters). */
  readonly onAttempt?: (outcome: AttemptOutcome, atMs: number) => void;
  /** Only tests set this: the idempotency key sent on each attempt (default: the order's one key). */
  readonly keyFor?: (job: PaymentJob, attempt: number) => string;
  /** Called at each state change of the background job's circuit breaker (its `onStateChange`), at ms since the deployment started. */
  readonly onBreakerStateChange?: (event: StateChangeEvent, atMs: number) => void;
}

/**
 * The state the services of one deployment share with the demo (and with the
 * tests): the span recorder, the external API's ledger, the outbox and the job.
 * It is bound to the deployment's clock when the first service is built.
 */
export class PaymentWorld {
  readonly mode: 'before' | 'after';
  #clock: Clock | undefined;
  #tracer: SpanRecorder | undefined;
  provider: FakePaymentProvider | undefined;
  readonly outbox = new PaymentOutbox();
  worker: PaymentWorker | undefined;
  /** Order ids payment took (before: charged; after: in the outbox), in order. */
  readonly acceptedOrders: string[] = [];
  #orderSeq = 0;

  constructor(mode: 'before' | 'after') {
    this.mode = mode;
  }

  /** Binds the world to the deployment's clock (the first call wins). */
  bind(env: ServiceEnv): void {
    if (this.#clock !== undefined) return;
    this.#clock = env.clock;
    this.#tracer = new SpanRecorder({ clock: env.clock });
  }

  /** The span recorder; only valid once a service was built. */
  get tracer(): SpanRecorder {
    if (this.#tracer === undefined) throw new Error('PaymentWorld: no service has been built yet');
    return this.#tracer;
  }

  /** A new order id. */
  nextOrderId(): string {
    return `ord_${(++this.#orderSeq).toString().padStart(6, '0')}`;
  }
}

/** Draws a latency: bell-shaped (sum of three uniforms) around the mean. */
export function sampleLatency(spec: LatencySpec, random: () => number): number {
  const bell = (random() + random() + random() - 1.5) / 1.5; // in [-1, 1]
  return Math.max(0, spec.meanMs + bell * spec.spreadMs);
}

function traceOf(request: HttpRequest): TraceContext | undefined {
  return parseTraceparent(request.headers?.[TRACEPARENT_HEADER]);
}

function json(status: number, body: unknown): HttpResponse {
  return { status, body };
}

/** A service that does its own work for a while and answers; `route` names the span. */
function leafService(world: PaymentWorld, name: string, route: string, latency: LatencySpec): ServiceSpec {
  return {
    name,
    create(env) {
      world.bind(env);
      return (request, context) =>
        world.tracer.span(name, route, traceOf(request), async () => {
          await context.sleep(sampleLatency(latency, context.random), context.signal);
          return json(200, { service: name });
        });
    },
  };
}

/** Calls a service with the trace context of `span`; a non-2xx answer throws. */
async function callTraced(
  context: RequestContext,
  span: TraceContext,
  service: string,
  request: HttpRequest,
): Promise<HttpResponse> {
  const response = await context.call(
    service,
    { ...request, headers: { ...request.headers, [TRACEPARENT_HEADER]: formatTraceparent(span) } },
    { signal: context.signal },
  );
  if (response.status < 200 || response.status >= 300) {
    throw new DependencyError(service, response.status);
  }
  return response;
}

/** A dependency answered with an error status. */
class DependencyError extends Error {
  readonly service: string;
  readonly status: number;
  constructor(service: string, status: number) {
    super(`${service} answered ${status}`);
    this.service = service;
    this.status = status;
  }
}

function checkoutService(world: PaymentWorld, latencies: ServiceLatencies): ServiceSpec {
  return {
    name: 'checkout',
    create(env) {
      world.bind(env);
      return (request, context) =>
        world.tracer.span('checkout', 'POST /checkout', traceOf(request), async (span) => {
          const body = (request.body ?? {}) as { cartId?: string };
          const cartId = body.cartId ?? 'cart_1';
          const own = sampleLatency(latencies.checkout, context.random);
          try {
            await context.sleep(own / 2, context.signal);
            await callTraced(context, span, 'cart', { method: 'GET', path: `/carts/${cartId}` });
            await Promise.all([
              callTraced(context, span, 'pricing', { method: 'POST', path: '/quotes', body: { cartId } }),
              callTraced(context, span, 'inventory', { method: 'POST', path: '/reservations', body: { cartId } }),
              callTraced(context, span, 'shipping', { method: 'POST', path: '/rates', body: { cartId } }),
            ]);
            await callTraced(context, span, 'fraud', { method: 'POST', path: '/scores', body: { cartId } });
            const orderId = world.nextOrderId();
            const amountCents = 1_000 + Math.floor(context.random() * 9_000);
            const payment = await callTraced(context, span, 'payment', {
              method: 'POST',
              path: '/payments',
              body: { orderId, amountCents },
            });
            // Payment took the order (before: charged it; after: put it in the outbox): it stands
            // from here on, even if this customer stops waiting for the answer.
            world.acceptedOrders.push(orderId);
            await context.sleep(own / 2, context.signal);
            if (payment.status === 202) return json(202, { orderId, status: 'payment-pending' });
            return json(200, { orderId, status: 'paid', chargeId: (payment.body as { chargeId?: string }).chargeId });
          } catch (error) {
            if (error instanceof DependencyError) {
              return json(502, { error: `checkout failed: ${error.message}` });
            }
            throw error;
          }
        });
    },
  };
}

/** Turns the external API's answer into a charge or a {@link ChargeFailedError}. */
function sendChargeVia(context: ServiceEnv, tracer: () => SpanRecorder): SendCharge {
  return (charge, signal) =>
    tracer().span(
      'payment',
      'POST payment-provider /v1/charges',
      undefined,
      async () => {
        const response = await context.call(
          'payment-provider',
          {
            method: 'POST',
            path: '/v1/charges',
            headers: { 'idempotency-key': charge.idempotencyKey },
            body: { orderId: charge.orderId, amountCents: charge.amountCents },
          },
          { signal },
        );
        if (response.status !== 200) {
          const message = (response.body as { error?: string } | undefined)?.error ?? 'error';
          throw new ChargeFailedError(response.status, message, parseRetryAfter(response.headers?.['retry-after']));
        }
        return response.body as ChargeReplyBody;
      },
      'client',
    );
}

function paymentService(world: PaymentWorld, options: PaymentTopologyOptions, latencies: ServiceLatencies): ServiceSpec {
  const settings: PaymentJobSettings = { ...DEFAULT_JOB_SETTINGS, ...options.job };
  return {
    name: 'payment',
    create(env) {
      world.bind(env);
      if (world.mode === 'after') {
        const clock = env.clock;
        // One pipeline for the one dependency, built once, reused by every attempt:
        // the bulkhead bounds the calls in flight, the breaker stops calling an API that
        // keeps failing (one probe a second finds out when it is back), the timeout frees
        // a slot held by a hung call.
        const breaker = settings.breaker
          ? circuitBreaker({
              clock,
              random: env.random,
              failureRateThreshold: settings.breakerFailureRatio,
              minimumCalls: settings.breakerMinimumCalls,
              window: { kind: 'count', calls: settings.breakerWindowCalls },
              halfOpenAfterMs: settings.breakerHalfOpenAfterMs,
              halfOpenProbes: 1,
              // A 4xx is about our request (409: the same key is still being processed), not the API's
              // health, and a re-attempt the retry budget put off never reached the API.
              handle: (error) =>
                !isRejection(error) &&
                !(error instanceof RetryDeferredError) &&
                !(error instanceof ChargeFailedError && error.status < 500),
            })
          : undefined;
        const guard = env.instrument(
          breaker === undefined
            ? pipeline(
                { name: 'payment-provider', clock },
                bulkhead({ maxConcurrent: settings.maxConcurrent, maxQueue: settings.maxQueue }),
                timeout({ ms: settings.timeoutMs, clock }),
              )
            : pipeline(
                { name: 'payment-provider', clock },
                bulkhead({ maxConcurrent: settings.maxConcurrent, maxQueue: settings.maxQueue }),
                breaker,
                timeout({ ms: settings.timeoutMs, clock }),
              ),
        );
        // Jobs parked because the circuit was open go again as soon as it closes.
        breaker?.onStateChange((event) => {
          options.onBreakerStateChange?.(event, env.elapsedMs());
          if (event.to === 'closed') world.worker?.resumeRejected();
        });
        const budget = retryBudget({
          clock,
          ratio: settings.retryBudgetRatio,
          minPerSecond: settings.retryBudgetMinPerSecond,
          windowMs: 10_000,
        });
        const backoff = exponential({ initialMs: settings.retryInitialMs, maxMs: settings.retryMaxMs, jitter: 'equal' });
        world.worker = new PaymentWorker({
          outbox: world.outbox,
          clock,
          guard,
          sendCharge: sendChargeVia(env, () => world.tracer),
          maxDispatched: settings.maxConcurrent + settings.maxQueue,
          budget,
          retryDelayMs: (setbacks) => backoff.delayMs(setbacks, 0, env.random),
          onAttempt: (_job, outcome) => options.onAttempt?.(outcome, env.elapsedMs()),
          ...(options.keyFor ? { keyFor: options.keyFor } : {}),
        });
        world.worker.start();
      }
      return (request, context) =>
        world.tracer.span('payment', 'POST /payments', traceOf(request), async (span) => {
          const { orderId, amountCents } = (request.body ?? {}) as { orderId?: string; amountCents?: number };
          if (typeof orderId !== 'string' || typeof amountCents !== 'number') {
            return json(400, { error: 'orderId and amountCents are required' });
          }
          await context.sleep(sampleLatency(latencies.payment, context.random), context.signal);
          if (world.mode === 'after') {
            world.outbox.add(orderId, amountCents, context.clock.now());
            world.worker!.notify();
            return json(202, { orderId, status: 'pending' });
          }
          // Before: the external API is called while checkout (and the customer) wait, with no deadline.
          const response = await world.tracer.span(
            'payment',
            'POST payment-provider /v1/charges',
            span,
            () =>
              context.call(
                'payment-provider',
                {
                  method: 'POST',
                  path: '/v1/charges',
                  headers: { 'idempotency-key': `pay_${orderId}` },
                  body: { orderId, amountCents },
                },
                { signal: context.signal },
              ),
            'client',
          );
          if (response.status !== 200) return json(502, { error: `payment provider answered ${response.status}` });
          return json(200, { orderId, status: 'paid', chargeId: (response.body as ChargeReplyBody).chargeId });
        });
    },
  };
}

/** The external API as a service: the harness can inject faults in front of it like any other. */
function providerService(world: PaymentWorld, options: PaymentTopologyOptions): ServiceSpec {
  return {
    name: 'payment-provider',
    create(env) {
      world.bind(env);
      const behaviour = options.providerBehaviour?.(env.random) ?? steadyBehaviour(env.random);
      const provider = (world.provider = new FakePaymentProvider({ clock: env.clock, behaviour }));
      return async (request) => {
        if (request.method !== 'POST' || request.path !== '/v1/charges') return json(404, { error: 'not found' });
        const idempotencyKey = request.headers?.['idempotency-key'];
        const { orderId, amountCents } = (request.body ?? {}) as { orderId?: string; amountCents?: number };
        if (idempotencyKey === undefined || typeof orderId !== 'string' || typeof amountCents !== 'number') {
          return json(400, { error: 'Idempotency-Key header, orderId and amountCents are required' });
        }
        const reply = await provider.charge({ idempotencyKey, orderId, amountCents });
        return reply.retryAfterMs === undefined
          ? json(reply.status, reply.body)
          : { status: reply.status, body: reply.body, headers: retryAfterHeader(reply.retryAfterMs) };
      };
    },
  };
}

/** Builds the demo's services and the world they share. */
export function paymentTopology(options: PaymentTopologyOptions): { services: ServiceSpec[]; world: PaymentWorld } {
  const world = new PaymentWorld(options.mode);
  const latencies = options.latencies ?? DEFAULT_LATENCIES;
  const services: ServiceSpec[] = [
    checkoutService(world, latencies),
    leafService(world, 'cart', 'GET /carts/{id}', latencies.cart),
    leafService(world, 'pricing', 'POST /quotes', latencies.pricing),
    leafService(world, 'inventory', 'POST /reservations', latencies.inventory),
    leafService(world, 'shipping', 'POST /rates', latencies.shipping),
    leafService(world, 'fraud', 'POST /scores', latencies.fraud),
    paymentService(world, options, latencies),
    providerService(world, options),
  ];
  return { services, world };
}

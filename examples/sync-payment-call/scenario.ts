/**
 * One run of the sync-payment-call demo (one "phase": before or after the fix),
 * on either transport: deploy the services, offer steady checkout load, wait
 * for the background job to drain (after), and collect what happened from the
 * load generator's records, the external API's ledger, the outbox and the spans.
 *
 * The property tests call {@link runPhase} on the in-memory transport with a
 * FakeClock; the demo calls it on real HTTP.
 */
import type { Clock, RandomSource, StateChangeEvent } from '../../src/index.ts';
import {
  deploy,
  type Deployment,
  drive,
  type EndpointStats,
  type FaultWindow,
  percentile,
  type RequestRecord,
  runLoad,
  summarize,
} from '../harness/index.ts';
import type { ProviderBehaviour, ProviderStats } from './external-api.ts';
import type { AttemptOutcome, PaymentJob, PaymentWorkerStats } from './payment-job.ts';
import { type PaymentJobSettings, paymentTopology, type PaymentWorld, type ServiceLatencies } from './services.ts';
import type { SpanRecord } from './tracing.ts';

/** A clock the harness can drive (FakeClock) has `advance`. */
type DrivableClock = Clock & { advance(ms: number): Promise<void> };

/** Options of {@link runPhase}. */
export interface PhaseOptions {
  readonly mode: 'before' | 'after';
  readonly transport: 'http' | 'memory';
  /** Required for 'memory' (a FakeClock). */
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /** How long checkout load is offered, in ms. */
  readonly durationMs: number;
  readonly ratePerSecond: number;
  /** In-flight limit of the load generator (default 128). */
  readonly concurrency?: number;
  /** The customer's patience, in ms (default 10,000). */
  readonly clientTimeoutMs?: number;
  /** Faults the harness injects (ms since the deployment started). */
  readonly faults?: readonly FaultWindow[];
  /** The external API's own behaviour (default 2.8 s ± 150 ms, always fine). */
  readonly providerBehaviour?: (random: () => number) => ProviderBehaviour;
  readonly latencies?: ServiceLatencies;
  readonly job?: Partial<PaymentJobSettings>;
  /** Only tests set this: the idempotency key per attempt (to show what a fresh key per attempt does). */
  readonly keyFor?: (job: PaymentJob, attempt: number) => string;
  /** After: how long to wait for the background job to pay every accepted order, in ms (default 60,000). */
  readonly drainTimeoutMs?: number;
  /** Serve /metrics (default: true on http). */
  readonly metrics?: boolean;
  /** Sample the outbox every this many ms for the series (default 250). */
  readonly sampleEveryMs?: number;
  /** Called once the services are up (the demo prints the /metrics URLs and starts its progress line). */
  readonly onDeployed?: (deployment: Deployment, world: PaymentWorld) => void;
  /** Called with each checkout's record as it completes. */
  readonly onRecord?: (record: RequestRecord) => void;
  /** Called at each state change of the background job's breaker, as it happens. */
  readonly onBreakerTransition?: (transition: BreakerTransition) => void;
  /** Called after the run, before the services stop (the demo scrapes /metrics here). */
  readonly beforeClose?: (deployment: Deployment) => Promise<void>;
}

/** One sample of the payment backlog. */
export interface BacklogSample {
  /** ms since the deployment started. */
  readonly atMs: number;
  /** Accepted orders not paid yet (pending + in flight). */
  readonly unpaid: number;
  readonly paid: number;
  readonly accepted: number;
}

/** What a phase produced. */
export interface PhaseResult {
  readonly mode: 'before' | 'after';
  readonly transport: 'http' | 'memory';
  readonly records: readonly RequestRecord[];
  /** Checkout latency and availability over every offered request. */
  readonly checkout: EndpointStats;
  /** Orders payment took (before: charged; after: put in the outbox, "payment pending"). */
  readonly accepted: number;
  /** Accepted orders charged exactly once. */
  readonly paidOnce: number;
  /** Charges beyond the first for the same order (all orders). Must be 0. */
  readonly duplicatePayments: number;
  /** Accepted orders with no charge at the end. */
  readonly unpaidAccepted: number;
  /** Outbox jobs still pending or in flight at the end (after). */
  readonly pendingAtEnd: number;
  /** Orders the external API charged although checkout told the customer it failed. */
  readonly chargedButFailed: number;
  readonly provider: ProviderStats;
  readonly worker: PaymentWorkerStats | undefined;
  /** Background attempts by outcome (after). */
  readonly attempts: Readonly<Record<AttemptOutcome, number>>;
  /** When the load started and stopped, ms since the deployment started. */
  readonly loadFromMs: number;
  readonly loadToMs: number;
  /** ms from the end of the load until every accepted order was paid (after; NaN if it never happened). */
  readonly drainMs: number;
  /** Largest time from acceptance to charge (after), ms. */
  readonly maxTimeToPayMs: number;
  readonly backlog: readonly BacklogSample[];
  /** Every checkout trace, root spans only, with their trace ids. */
  readonly checkoutRoots: readonly SpanRecord[];
  /** The spans of one trace. */
  trace(traceId: string): readonly SpanRecord[];
  /** Per-service arrival times, ms since the deployment started. */
  readonly arrivals: Readonly<Record<string, readonly number[]>>;
  /** When the phase ended, ms since the deployment started. */
  readonly endMs: number;
  /** The background job's breaker state changes (after, with the breaker), from its `onStateChange`, in order. */
  readonly breakerTransitions: readonly BreakerTransition[];
}

/** One state change of the background job's circuit breaker. */
export interface BreakerTransition {
  readonly from: StateChangeEvent['from'];
  readonly to: StateChangeEvent['to'];
  /** ms since the deployment started. */
  readonly atMs: number;
}

/** Runs one phase; see the module comment. */
export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const attempts: Record<AttemptOutcome, number> = { paid: 0, failed: 0, timeout: 0, rejected: 0, deferred: 0 };
  const breakerTransitions: BreakerTransition[] = [];
  const { services, world } = paymentTopology({
    mode: options.mode,
    ...(options.providerBehaviour ? { providerBehaviour: options.providerBehaviour } : {}),
    ...(options.latencies ? { latencies: options.latencies } : {}),
    ...(options.job ? { job: options.job } : {}),
    ...(options.keyFor ? { keyFor: options.keyFor } : {}),
    onAttempt: (outcome) => attempts[outcome]++,
    onBreakerStateChange: (event, atMs) => {
      const transition = { from: event.from, to: event.to, atMs };
      breakerTransitions.push(transition);
      options.onBreakerTransition?.(transition);
    },
  });
  const deployment = await deploy(services, {
    transport: options.transport,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.random ? { random: options.random } : {}),
    faults: options.faults ?? [],
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
  });
  const clock = deployment.clock;
  const drivable = typeof (clock as Partial<DrivableClock>).advance === 'function' ? (clock as DrivableClock) : undefined;
  // Under a FakeClock, timers run in order whatever the step: the step only sets how often we look.
  const wait = <T>(work: Promise<T>): Promise<T> =>
    drivable ? drive(drivable, work, { stepMs: 250, maxMs: 24 * 3_600_000 }) : work;
  let sampler: unknown;
  try {
    options.onDeployed?.(deployment, world);
    const backlog: BacklogSample[] = [];
    const sampleEveryMs = options.sampleEveryMs ?? 250;
    const sample = (): void => {
      const c = world.outbox.counts();
      backlog.push({ atMs: deployment.elapsedMs(), unpaid: c.pending + c.inFlight, paid: c.paid, accepted: c.accepted });
      sampler = clock.schedule(sample, sampleEveryMs);
    };
    sample();

    let cart = 0;
    const load = await wait(
      runLoad(deployment, {
        durationMs: options.durationMs,
        ratePerSecond: options.ratePerSecond,
        concurrency: options.concurrency ?? 128,
        clientTimeoutMs: options.clientTimeoutMs ?? 10_000,
        ...(options.random ? { random: options.random } : {}),
        ...(options.onRecord ? { onRecord: options.onRecord } : {}),
        next: () => ({
          endpoint: 'POST /checkout',
          service: 'checkout',
          request: { method: 'POST', path: '/checkout', body: { cartId: `cart_${++cart}` } },
        }),
      }),
    );
    const loadToMs = deployment.elapsedMs();

    let drainMs = 0;
    if (world.mode === 'after' && world.worker !== undefined) {
      const worker = world.worker;
      const drained = await wait(bounded(worker.whenSettled(), clock, options.drainTimeoutMs ?? 60_000));
      drainMs = drained ? deployment.elapsedMs() - loadToMs : Number.NaN;
      worker.stop();
    }
    // Charges the external API is still processing (for callers that gave up) land
    // later: wait for them, or duplicates made by a late commit would go uncounted.
    await wait(bounded(world.provider!.whenIdle(), clock, options.drainTimeoutMs ?? 60_000));
    clock.cancel(sampler);
    sample();
    clock.cancel(sampler);

    const result = collect(world, deployment, load.records, load.startedAtMs, loadToMs, drainMs, attempts, backlog, breakerTransitions);
    await options.beforeClose?.(deployment);
    return result;
  } finally {
    clock.cancel(sampler);
    world.worker?.stop();
    await deployment.close();
  }
}

/** Resolves true when `work` does within `limitMs` on `clock`, false otherwise. */
async function bounded(work: Promise<void>, clock: Clock, limitMs: number): Promise<boolean> {
  let timer: unknown;
  const expired = new Promise<boolean>((resolve) => {
    timer = clock.schedule(() => resolve(false), limitMs);
  });
  try {
    return await Promise.race([work.then(() => true), expired]);
  } finally {
    clock.cancel(timer);
  }
}

function collect(
  world: PaymentWorld,
  deployment: Deployment,
  records: readonly RequestRecord[],
  loadFromMs: number,
  loadToMs: number,
  drainMs: number,
  attempts: Record<AttemptOutcome, number>,
  backlog: BacklogSample[],
  breakerTransitions: readonly BreakerTransition[],
): PhaseResult {
  const provider = world.provider!;
  const accepted = new Set(world.acceptedOrders);
  let paidOnce = 0;
  let unpaidAccepted = 0;
  for (const orderId of accepted) {
    const charges = provider.chargesFor(orderId);
    if (charges === 1) paidOnce++;
    if (charges === 0) unpaidAccepted++;
  }
  let chargedButFailed = 0;
  const chargedOrders = new Set(provider.ledger().map((e) => e.orderId));
  for (const orderId of chargedOrders) if (!accepted.has(orderId)) chargedButFailed++;
  const counts = world.outbox.counts();
  const times = world.outbox
    .jobs()
    .filter((j) => j.paidAtMs !== undefined)
    .map((j) => j.paidAtMs! - j.acceptedAtMs)
    .sort((a, b) => a - b);
  const arrivals: Record<string, readonly number[]> = {};
  for (const name of ['checkout', 'cart', 'pricing', 'inventory', 'shipping', 'fraud', 'payment', 'payment-provider']) {
    arrivals[name] = [...deployment.arrivals(name)];
  }
  const tracer = world.tracer;
  return {
    mode: world.mode,
    transport: deployment.transport,
    records,
    checkout: summarize('POST /checkout', records),
    accepted: accepted.size,
    paidOnce,
    duplicatePayments: provider.stats.duplicateCharges,
    unpaidAccepted,
    pendingAtEnd: counts.pending + counts.inFlight,
    chargedButFailed,
    provider: provider.stats,
    worker: world.worker?.stats,
    attempts: { ...attempts },
    loadFromMs,
    loadToMs,
    drainMs,
    maxTimeToPayMs: times.length === 0 ? Number.NaN : percentile(times, 100),
    backlog,
    checkoutRoots: tracer.roots('checkout', 'POST /checkout'),
    trace: (traceId) => tracer.trace(traceId),
    arrivals,
    endMs: deployment.elapsedMs(),
    breakerTransitions: [...breakerTransitions],
  };
}

/**
 * The most requests that reached `service` in any one second of `[fromMs, toMs)`
 * (a sliding 1 s window, ms since the deployment started): the peak load an
 * outage saw. Over a window shorter than a second, every request in it.
 */
export function peakPerSecond(result: PhaseResult, service: string, fromMs: number, toMs: number): number {
  const times = (result.arrivals[service] ?? []).filter((t) => t >= fromMs && t < toMs).sort((a, b) => a - b);
  let peak = 0;
  for (let first = 0, i = 0; i < times.length; i++) {
    while (times[i]! - times[first]! >= 1_000) first++;
    peak = Math.max(peak, i - first + 1);
  }
  return peak;
}

/**
 * The checkout trace at the given percentile of trace duration (nearest rank):
 * "one slow request", picked from the recorded spans, not made up.
 */
export function traceAtPercentile(result: PhaseResult, p: number): readonly SpanRecord[] {
  const roots = [...result.checkoutRoots].sort((a, b) => a.endMs! - a.startMs - (b.endMs! - b.startMs));
  if (roots.length === 0) return [];
  const rank = Math.min(roots.length - 1, Math.max(0, Math.ceil((p / 100) * roots.length) - 1));
  return result.trace(roots[rank]!.traceId);
}

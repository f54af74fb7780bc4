/**
 * One run of the feature-flag incident: deploy the shop, its users and support
 * (real HTTP or in memory), offer steady visits, set the flag to the wrong share
 * at `misconfigAtMs`, have a person turn it off at `fixAtMs`, and collect what
 * happened. The demo and the property tests both call {@link runPhase}.
 */
import type { RandomSource, RolloutRollback } from '../../src/index.ts';
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import { type Deployment, deploy, drive, type RequestRecord, runLoad } from '../harness/index.ts';
import { DEFAULT_CONFIG, type FeatureFlagConfig, featureFlagServices, type Variant } from './services.ts';

/** The timeline of a run, ms since the deployment started. */
export interface Timeline {
  /** Visits are offered on `[0, durationMs)`. */
  readonly durationMs: number;
  /** The flag is set to the misconfigured share here... */
  readonly misconfigAtMs: number;
  /** ...and a person notices and sets it back to 0 here (the seed's 30 minutes, compressed). */
  readonly fixAtMs: number;
}

/** The demo's timeline: 2 s as usual, the flag at 20 % from 2 s, turned off by a person 10 s (30 minutes) later. */
export const DEMO_TIMELINE: Timeline = Object.freeze({ durationMs: 14_000, misconfigAtMs: 2_000, fixAtMs: 12_000 });

/** Options of {@link runPhase}. */
export interface PhaseOptions {
  readonly transport: 'http' | 'memory';
  readonly variant: Variant;
  readonly timeline?: Timeline;
  /** The share the flag is set to by mistake (the seed: 0.2 instead of 0). */
  readonly misconfiguredShare?: number;
  /** Visits per second. */
  readonly ratePerSecond?: number;
  readonly config?: FeatureFlagConfig;
  /** Serve /metrics (default: the harness's, on for http). */
  readonly metrics?: boolean;
  /** Seed of the memory run's randomness (default 1). */
  readonly seed?: number;
  /** Random sources of the experiment's faults and of its users' tickets (default: the services'). */
  readonly faultRandom?: RandomSource;
  readonly ticketRandom?: RandomSource;
  readonly onDeployed?: (deployment: Deployment) => void | Promise<void>;
  readonly beforeClose?: (deployment: Deployment) => void | Promise<void>;
  readonly onRecord?: (record: RequestRecord) => void;
  readonly onExposure?: (atMs: number) => void;
  readonly onTicket?: (atMs: number) => void;
}

/** The share in force from `atMs` on. */
export interface ShareStep {
  readonly atMs: number;
  readonly share: number;
}

/** Everything a run produced. */
export interface PhaseResult {
  readonly options: PhaseOptions;
  readonly timeline: Timeline;
  readonly config: FeatureFlagConfig;
  readonly records: readonly RequestRecord[];
  /** When each visit reached the experimental version. */
  readonly exposures: readonly number[];
  /** When each ticket reached support, by the version the user saw. */
  readonly tickets: { readonly experimental: readonly number[]; readonly stable: readonly number[] };
  /** The share of visits going to the experiment over time. */
  readonly shares: readonly ShareStep[];
  /** after: the automatic rollback, with the time it happened (ms since start). */
  readonly rollback: (RolloutRollback & { readonly atRunMs: number }) | undefined;
  /** Wall-clock duration, ms (meaningful for http only). */
  readonly wallMs: number;
}

/** Runs one phase end to end and closes everything it started. */
export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const timeline = options.timeline ?? DEMO_TIMELINE;
  const config = options.config ?? DEFAULT_CONFIG;
  const misconfigured = options.misconfiguredShare ?? 0.2;
  const exposures: number[] = [];
  const tickets = { experimental: [] as number[], stable: [] as number[] };
  const shares: ShareStep[] = [{ atMs: 0, share: 0 }];
  let rollback: PhaseResult['rollback'];
  const services = featureFlagServices({
    variant: options.variant,
    config,
    ...(options.faultRandom !== undefined ? { faultRandom: options.faultRandom } : {}),
    ...(options.ticketRandom !== undefined ? { ticketRandom: options.ticketRandom } : {}),
    hooks: {
      onExposure: (atMs) => {
        exposures.push(atMs);
        options.onExposure?.(atMs);
      },
      onTicket: (variant, atMs) => {
        tickets[variant].push(atMs);
        if (variant === 'experimental') options.onTicket?.(atMs);
      },
      onShareChange: (event, atMs) => shares.push({ atMs, share: event.to }),
      onRollback: (event, atMs) => (rollback = { ...event, atRunMs: atMs }),
    },
  });
  const seed = options.seed ?? 1;
  const memory = options.transport === 'memory';
  const clock = memory ? new FakeClock() : undefined;
  const deployment = await deploy(services, {
    transport: options.transport,
    ...(clock !== undefined ? { clock, random: seededRandom(seed) } : {}),
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
  });
  const wallStart = performance.now();
  const timers: unknown[] = [];
  const setFlag = (share: number) => (): void => {
    // before: the share in force is the flag's; after: the rollout reports its own.
    if (options.variant === 'before') shares.push({ atMs: deployment.elapsedMs(), share });
    void deployment.call('shop', { method: 'POST', path: '/flag', body: { share } }).catch(() => {});
  };
  try {
    await options.onDeployed?.(deployment);
    const at = (ms: number, fn: () => void): void => {
      timers.push(deployment.clock.schedule(fn, ms - deployment.elapsedMs()));
    };
    at(timeline.misconfigAtMs, setFlag(misconfigured));
    at(timeline.fixAtMs, setFlag(0));
    const loadRandom = memory ? seededRandom(seed + 1) : Math.random;
    const load = runLoad(deployment, {
      durationMs: timeline.durationMs,
      ratePerSecond: options.ratePerSecond ?? 100,
      concurrency: 256,
      clientTimeoutMs: 2_000,
      random: loadRandom,
      next: (index) => ({ endpoint: 'GET /visit', service: 'users', request: { method: 'GET', path: `/visit?user=u${index}` } }),
      ...(options.onRecord !== undefined ? { onRecord: options.onRecord } : {}),
    });
    const { records } = clock !== undefined ? await drive(clock, load) : await load;
    // Tickets of the last visits are still on their way: wait for them.
    const settle = new Promise<void>((resolve) => deployment.clock.schedule(resolve, config.ticketDelayMs + 200));
    if (clock !== undefined) await drive(clock, settle);
    else await settle;
    await options.beforeClose?.(deployment);
    return {
      options,
      timeline,
      config,
      records,
      exposures,
      tickets,
      shares,
      rollback,
      wallMs: performance.now() - wallStart,
    };
  } finally {
    for (const timer of timers) deployment.clock.cancel(timer);
    await deployment.close();
  }
}

/** The numbers of the table, for one run. */
export interface PhaseSummary {
  readonly variant: Variant;
  readonly visits: number;
  /** Visits served by (or failed in) the experimental version, from the misconfiguration on. */
  readonly exposed: number;
  /** Tickets filed by users shown the experiment, and by users shown the stable version. */
  readonly tickets: number;
  readonly baselineTickets: number;
  /** Visits not answered 2xx. */
  readonly errors: number;
  /** From the misconfiguration to the last exposure, ms (0 when nobody was exposed). */
  readonly timeToZeroExposureMs: number;
  /** Visits' p95 latency, ms. */
  readonly p95Ms: number;
  readonly rollback: PhaseResult['rollback'];
}

/** The p-th percentile (0..100) of `values`, nearest rank. */
function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Summarizes a run. */
export function summarizePhase(result: PhaseResult): PhaseSummary {
  const from = result.timeline.misconfigAtMs;
  const exposed = result.exposures.filter((t) => t >= from);
  return {
    variant: result.options.variant,
    visits: result.records.length,
    exposed: exposed.length,
    tickets: result.tickets.experimental.length,
    baselineTickets: result.tickets.stable.length,
    errors: result.records.filter((r) => !r.ok).length,
    timeToZeroExposureMs: exposed.length === 0 ? 0 : exposed[exposed.length - 1]! - from,
    p95Ms: percentile(result.records.map((r) => r.latencyMs), 95),
    rollback: result.rollback,
  };
}

/**
 * One run of the db-outage demo (one "phase": before or after Breakwater), on
 * either transport: deploy the service over a {@link Cluster}, offer a steady
 * mix of reads and writes, make the primary fail, (before) let the operator
 * promote the standby after a fixed delay, and count what happened: read and
 * write availability, latency, time to full service, and every acknowledged
 * write against the ledger of the server that is primary at the end.
 *
 * The property tests call {@link runPhase} on the in-memory transport with a
 * FakeClock and {@link memoryCluster}; the demo and the integration test on
 * real HTTP with {@link pgCluster}.
 */
import type { Clock, RandomSource } from '../../src/index.ts';
import {
  deploy,
  type Deployment,
  drive,
  type EndpointStats,
  type RequestRecord,
  runLoad,
  type StateChange,
  summarize,
  timeToRecoverMs,
} from '../harness/index.ts';
import type { Cluster } from './database.ts';
import {
  DEFAULT_CONFIG,
  type DbOutageConfig,
  dbOutageService,
  type DbOutageWorld,
  type FailoverRecord,
  READ_ENDPOINT,
  SERVICE,
  type Variant,
  WRITE_ENDPOINT,
} from './service.ts';

/** A clock the harness can drive (FakeClock) has `advance`. */
type DrivableClock = Clock & { advance(ms: number): Promise<void> };

/** Options of {@link runPhase}. */
export interface PhaseOptions {
  readonly variant: Variant;
  readonly transport: 'http' | 'memory';
  /** The database servers; {@link runPhase} does not close them (the caller does). */
  readonly cluster: Cluster;
  /** Required for 'memory' (a FakeClock). */
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /** How long load is offered, ms. */
  readonly durationMs: number;
  readonly ratePerSecond: number;
  /** Share of requests that are reads (default 0.7). */
  readonly readShare?: number;
  /** Accounts the load spreads over (default 20). */
  readonly accounts?: number;
  /** When the primary fails, ms after the load starts. */
  readonly failAtMs: number;
  /** The primary serves again this long after it failed (default: never, within the run). */
  readonly failForMs?: number;
  /** before: the operator's promotion starts this long after the failure (stands for the seed's 45 minutes). */
  readonly manualFailoverAfterMs: number;
  /** The client's patience, ms (default 5,000). */
  readonly clientTimeoutMs?: number;
  /** In-flight limit of the load generator (default 512). */
  readonly concurrency?: number;
  readonly config?: DbOutageConfig;
  /** Serve /metrics (default: true on http). */
  readonly metrics?: boolean;
  /** Called once the service is up (the demo prints the /metrics URL and starts its progress line). */
  readonly onDeployed?: (deployment: Deployment, world: DbOutageWorld) => void;
  readonly onRecord?: (record: RequestRecord) => void;
  /** Called with what was done to the primary, when it is done. */
  readonly onFailure?: (what: string, atMs: number) => void;
  /** Called when the failed primary serves again (with {@link PhaseOptions.failForMs}). */
  readonly onRecover?: (what: string, atMs: number) => void;
  readonly onFailover?: (record: FailoverRecord) => void;
  readonly onBreakerChange?: (pipeline: 'db-primary' | 'db-replica', change: StateChange) => void;
  /** Called after the load, before the service stops (the demo scrapes /metrics here). */
  readonly beforeClose?: (deployment: Deployment) => Promise<void>;
}

/** One read the service answered 200, as the client saw it. */
export interface ReadObservation {
  readonly account: number;
  readonly startMs: number;
  readonly endMs: number;
  readonly entries: number;
  /** The staleness bound the answer stated (`x-stale-ms`). */
  readonly staleMs: number;
  readonly servedBy: string;
}

/** One acknowledged write, as the client saw it. */
export interface AckedWrite {
  readonly requestId: string;
  readonly account: number;
  readonly startMs: number;
  readonly ackMs: number;
}

/** What a phase produced. */
export interface PhaseResult {
  readonly variant: Variant;
  readonly transport: 'http' | 'memory';
  readonly records: readonly RequestRecord[];
  readonly reads: EndpointStats;
  readonly writes: EndpointStats;
  readonly all: EndpointStats;
  /** The same, for requests sent while the primary was down and before full service came back. */
  readonly readsDuringOutage: EndpointStats;
  readonly writesDuringOutage: EndpointStats;
  /** Writes answered 503 during the outage: how fast (p95, ms), and how many carried Retry-After. */
  readonly refusedWrites: { readonly count: number; readonly p95Ms: number; readonly withRetryAfter: number };
  /** When the load started, and when the primary failed, ms since the deployment started. */
  readonly loadFromMs: number;
  readonly failedAtMs: number;
  /** What was done to the primary, in words. */
  readonly failure: string;
  /** ms from the failure to full service (every later 500 ms bucket ≥ 95% answered in full); Infinity if never. */
  readonly recoveryMs: number;
  readonly failovers: readonly FailoverRecord[];
  /** Writes the client got 201 for. */
  readonly acknowledged: number;
  /** Acknowledged writes missing from the final primary's ledger. Must be 0. */
  readonly lostWrites: number;
  /** Ledger entries beyond the first for one request id. Must be 0. */
  readonly duplicateWrites: number;
  /** Writes in the ledger that the client was not told succeeded (503 or timed out, applied anyway). */
  readonly unacknowledgedApplied: number;
  /** Reads answered 200, with what they said. */
  readonly readObservations: readonly ReadObservation[];
  readonly ackedWrites: readonly AckedWrite[];
  /** Largest staleness an answer stated, ms. */
  readonly maxStatedStaleMs: number;
  /** Reads whose answer missed a write acknowledged more than its stated staleness before the read was sent. Must be 0. */
  readonly staleReadsBeyondBound: number;
  /** Breaker state changes per pipeline (after). */
  readonly breakers: Readonly<Record<'db-primary' | 'db-replica', readonly StateChange[]>>;
  /** Arrival times at the service, ms since the deployment started. */
  readonly arrivals: Readonly<Record<string, readonly number[]>>;
  /** When the phase ended, ms since the deployment started. */
  readonly endMs: number;
}

/** Runs one phase; see the module comment. */
export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const { cluster, variant } = options;
  const config = options.config ?? DEFAULT_CONFIG;
  const breakers: Record<'db-primary' | 'db-replica', StateChange[]> = { 'db-primary': [], 'db-replica': [] };
  const { service, world } = dbOutageService(variant, cluster, config, {
    breakerStateChange: (name, event, atMs) => {
      const change = { atMs, to: event.to };
      breakers[name].push(change);
      options.onBreakerChange?.(name, change);
    },
    ...(options.onFailover ? { failover: options.onFailover } : {}),
  });
  const deployment = await deploy([service], {
    transport: options.transport,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.random ? { random: options.random } : {}),
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
  });
  const clock = deployment.clock;
  const drivable = typeof (clock as Partial<DrivableClock>).advance === 'function' ? (clock as DrivableClock) : undefined;
  const wait = <T>(work: Promise<T>): Promise<T> => (drivable ? drive(drivable, work, { stepMs: 50, maxMs: 3_600_000 }) : work);
  const timers: unknown[] = [];
  const operator: Promise<void>[] = [];
  try {
    options.onDeployed?.(deployment, world);
    const readShare = options.readShare ?? 0.7;
    const accounts = options.accounts ?? 20;
    const loadFromMs = deployment.elapsedMs();
    const failedAtMs = loadFromMs + options.failAtMs;
    let failure = '';
    timers.push(
      clock.schedule(() => {
        failure = cluster.fail();
        options.onFailure?.(failure, deployment.elapsedMs());
        if (options.failForMs !== undefined) {
          timers.push(
            clock.schedule(() => {
              const what = cluster.recover();
              options.onRecover?.(what, deployment.elapsedMs());
            }, options.failForMs),
          );
        }
        if (variant === 'before') {
          timers.push(
            clock.schedule(() => {
              operator.push(world.operatorFailover().catch(() => {}));
            }, options.manualFailoverAfterMs),
          );
        }
      }, options.failAtMs),
    );

    const sent = new Map<number, { kind: 'read' | 'write'; account: number; requestId?: string }>();
    const observations: ReadObservation[] = [];
    const acked: AckedWrite[] = [];
    let retryAfterCount = 0;
    // The load generator only sees status and x-degraded: wrap the deployment to read bodies too.
    const observing: Deployment = {
      ...deployment,
      call: async (name, request, callOptions) => {
        const response = await deployment.call(name, request, callOptions);
        const startMs = Number(request.headers?.['x-sent-at-ms']);
        const id = Number(request.headers?.['x-request-index']);
        const what = sent.get(id)!;
        if (what.kind === 'read' && response.status === 200) {
          const body = response.body as { entries: number; staleMs: number; servedBy: string };
          observations.push({ account: what.account, startMs, endMs: deployment.elapsedMs(), entries: body.entries, staleMs: body.staleMs, servedBy: body.servedBy });
        } else if (what.kind === 'write' && response.status === 201) {
          acked.push({ requestId: what.requestId!, account: what.account, startMs, ackMs: deployment.elapsedMs() });
        } else if (what.kind === 'write' && response.status === 503 && response.headers?.['retry-after'] !== undefined) {
          retryAfterCount++;
        }
        return response;
      },
    };
    const load = await wait(
      runLoad(observing, {
        durationMs: options.durationMs,
        ratePerSecond: options.ratePerSecond,
        concurrency: options.concurrency ?? 512,
        clientTimeoutMs: options.clientTimeoutMs ?? 5_000,
        ...(options.random ? { random: options.random } : {}),
        ...(options.onRecord ? { onRecord: options.onRecord } : {}),
        next: (index, atMs, random) => {
          const account = 1 + Math.floor(random() * accounts);
          const headers = { 'x-request-index': String(index), 'x-sent-at-ms': String(loadFromMs + atMs) };
          if (random() < readShare) {
            sent.set(index, { kind: 'read', account });
            return { endpoint: READ_ENDPOINT, service: SERVICE, request: { method: 'GET', path: `/accounts/${account}`, headers } };
          }
          const requestId = `w${index}`;
          sent.set(index, { kind: 'write', account, requestId });
          return {
            endpoint: WRITE_ENDPOINT,
            service: SERVICE,
            request: { method: 'POST', path: '/ledger', headers, body: { requestId, account, amount: 1 + (index % 9) } },
          };
        },
      }),
    );
    await wait(Promise.all(operator));
    await options.beforeClose?.(deployment);
    const endMs = deployment.elapsedMs();
    for (const t of timers) clock.cancel(t);
    await deployment.close();

    const ledger = await cluster.ledger(world.writeTarget());
    return collect({
      variant,
      transport: deployment.transport,
      records: load.records,
      loadFromMs,
      failedAtMs,
      failure,
      world,
      ledger,
      sent,
      observations,
      acked,
      retryAfterCount,
      breakers,
      arrivals: { [SERVICE]: [...deployment.arrivals(SERVICE)] },
      endMs,
    });
  } finally {
    for (const t of timers) clock.cancel(t);
    await deployment.close();
  }
}

interface Collected {
  readonly variant: Variant;
  readonly transport: 'http' | 'memory';
  readonly records: readonly RequestRecord[];
  readonly loadFromMs: number;
  readonly failedAtMs: number;
  readonly failure: string;
  readonly world: DbOutageWorld;
  readonly ledger: ReadonlyMap<string, number>;
  readonly sent: ReadonlyMap<number, { kind: 'read' | 'write'; account: number; requestId?: string }>;
  readonly observations: readonly ReadObservation[];
  readonly acked: readonly AckedWrite[];
  readonly retryAfterCount: number;
  readonly breakers: Readonly<Record<'db-primary' | 'db-replica', readonly StateChange[]>>;
  readonly arrivals: Readonly<Record<string, readonly number[]>>;
  readonly endMs: number;
}

/**
 * Reads that missed a write acknowledged more than their stated staleness
 * before they were sent: `entries` must count every write to the account whose
 * acknowledgement came before `startMs - staleMs`.
 */
export function staleBeyondBound(observations: readonly ReadObservation[], acked: readonly AckedWrite[]): number {
  const byAccount = new Map<number, number[]>();
  for (const w of acked) {
    let list = byAccount.get(w.account);
    if (list === undefined) byAccount.set(w.account, (list = []));
    list.push(w.ackMs);
  }
  for (const list of byAccount.values()) list.sort((a, b) => a - b);
  let bad = 0;
  for (const read of observations) {
    const acks = byAccount.get(read.account) ?? [];
    const cutoff = read.startMs - read.staleMs;
    let mustSee = 0;
    while (mustSee < acks.length && acks[mustSee]! < cutoff) mustSee++;
    if (read.entries < mustSee) bad++;
  }
  return bad;
}

function collect(c: Collected): PhaseResult {
  const { records } = c;
  const reads = records.filter((r) => r.endpoint === READ_ENDPOINT);
  const writes = records.filter((r) => r.endpoint === WRITE_ENDPOINT);
  const recoveryMs = timeToRecoverMs(records, { recoveredAtMs: c.failedAtMs, bucketMs: 500, threshold: 0.95, fullService: true });
  const outage = { fromMs: c.failedAtMs, toMs: Number.isFinite(recoveryMs) ? c.failedAtMs + recoveryMs : Number.POSITIVE_INFINITY };
  const refused = writes.filter((r) => r.startMs >= outage.fromMs && r.startMs < outage.toMs && r.status === 503);
  const refusedLatencies = refused.map((r) => r.latencyMs).sort((a, b) => a - b);
  const ackedIds = new Set(c.acked.map((w) => w.requestId));
  let lostWrites = 0;
  for (const id of ackedIds) if (!c.ledger.has(id)) lostWrites++;
  let duplicateWrites = 0;
  let unacknowledgedApplied = 0;
  for (const [id, n] of c.ledger) {
    duplicateWrites += n - 1;
    if (!ackedIds.has(id)) unacknowledgedApplied++;
  }
  return {
    variant: c.variant,
    transport: c.transport,
    records,
    reads: summarize(READ_ENDPOINT, reads),
    writes: summarize(WRITE_ENDPOINT, writes),
    all: summarize('all', records),
    readsDuringOutage: summarize(READ_ENDPOINT, reads, outage),
    writesDuringOutage: summarize(WRITE_ENDPOINT, writes, outage),
    refusedWrites: {
      count: refused.length,
      p95Ms: refusedLatencies.length === 0 ? Number.NaN : refusedLatencies[Math.max(0, Math.ceil(0.95 * refusedLatencies.length) - 1)]!,
      withRetryAfter: c.retryAfterCount,
    },
    loadFromMs: c.loadFromMs,
    failedAtMs: c.failedAtMs,
    failure: c.failure,
    recoveryMs,
    failovers: [...c.world.failovers],
    acknowledged: ackedIds.size,
    lostWrites,
    duplicateWrites,
    unacknowledgedApplied,
    readObservations: c.observations,
    ackedWrites: c.acked,
    maxStatedStaleMs: c.observations.reduce((m, o) => Math.max(m, o.staleMs), 0),
    staleReadsBeyondBound: staleBeyondBound(c.observations, c.acked),
    breakers: c.breakers,
    arrivals: c.arrivals,
    endMs: c.endMs,
  };
}

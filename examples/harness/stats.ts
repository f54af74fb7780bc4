/**
 * Numbers from a run's records: availability and latency percentiles per
 * endpoint, amplification, time to recover, and time series for the chart.
 */
import type { RequestRecord } from './types.ts';

/** A time window `[fromMs, toMs)` in ms since the deployment started. */
export interface Window {
  readonly fromMs: number;
  readonly toMs: number;
}

/** Per-endpoint summary. */
export interface EndpointStats {
  readonly endpoint: string;
  readonly requests: number;
  /** 2xx responses (including degraded ones). */
  readonly ok: number;
  /** 2xx responses marked degraded (`x-degraded`). */
  readonly degraded: number;
  /** `ok / requests` (1 when there were no requests). */
  readonly availability: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** The `p`-th percentile (0..100) of ascending `sorted`, nearest-rank; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

function inWindow(atMs: number, window: Window | undefined): boolean {
  return window === undefined || (atMs >= window.fromMs && atMs < window.toMs);
}

/** Summary of records (by scheduled start, within `window` if given) for one group of records. */
export function summarize(endpoint: string, records: readonly RequestRecord[], window?: Window): EndpointStats {
  const chosen = records.filter((r) => inWindow(r.startMs, window));
  const latencies = chosen.map((r) => r.latencyMs).sort((a, b) => a - b);
  const ok = chosen.filter((r) => r.ok).length;
  return {
    endpoint,
    requests: chosen.length,
    ok,
    degraded: chosen.filter((r) => r.ok && r.degraded).length,
    availability: chosen.length === 0 ? 1 : ok / chosen.length,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1]!,
  };
}

/** {@link summarize} per endpoint, endpoints in order of first appearance, plus `'all'` last. */
export function summarizeEndpoints(records: readonly RequestRecord[], window?: Window): EndpointStats[] {
  const groups = new Map<string, RequestRecord[]>();
  for (const r of records) {
    let list = groups.get(r.endpoint);
    if (list === undefined) groups.set(r.endpoint, (list = []));
    list.push(r);
  }
  const out = [...groups].map(([endpoint, list]) => summarize(endpoint, list, window));
  out.push(summarize('all', records, window));
  return out;
}

/** How many of `timestamps` fall in `window`. */
export function countIn(timestamps: readonly number[], window: Window): number {
  let n = 0;
  for (const t of timestamps) if (t >= window.fromMs && t < window.toMs) n++;
  return n;
}

/**
 * Requests that reached a service per offered request, in `window`:
 * `arrivals in window / records started in window`.
 */
export function amplification(arrivals: readonly number[], records: readonly RequestRecord[], window: Window): number {
  const offered = records.filter((r) => inWindow(r.startMs, window)).length;
  return offered === 0 ? Number.NaN : countIn(arrivals, window) / offered;
}

/** Largest number of `timestamps` in any `bucketMs` bucket of `window`, as a per-second rate. */
export function peakRatePerSecond(timestamps: readonly number[], window: Window, bucketMs = 100): number {
  const counts = new Map<number, number>();
  let best = 0;
  for (const t of timestamps) {
    if (t < window.fromMs || t >= window.toMs) continue;
    const b = Math.floor((t - window.fromMs) / bucketMs);
    const n = (counts.get(b) ?? 0) + 1;
    counts.set(b, n);
    if (n > best) best = n;
  }
  return (best * 1000) / bucketMs;
}

/** Options of {@link timeToRecoverMs}. */
export interface RecoveryOptions {
  /** When the dependency came back, ms since the deployment started. */
  readonly recoveredAtMs: number;
  /** Bucket width, ms (default 250). */
  readonly bucketMs?: number;
  /** A bucket is healthy when its success rate is at least this (default 0.95). */
  readonly threshold?: number;
  /** Only records of these endpoints (default all). */
  readonly endpoints?: readonly string[];
  /** Count only non-degraded successes as healthy (default false). */
  readonly fullService?: boolean;
}

/**
 * ms from `recoveredAtMs` to the start of the first bucket (by scheduled start)
 * from which every later bucket is healthy; `Infinity` if the run never gets
 * there. 0 means healthy from the first bucket after recovery.
 */
export function timeToRecoverMs(records: readonly RequestRecord[], options: RecoveryOptions): number {
  const { recoveredAtMs, bucketMs = 250, threshold = 0.95, endpoints, fullService = false } = options;
  const totals: number[] = [];
  const goods: number[] = [];
  for (const r of records) {
    if (r.startMs < recoveredAtMs) continue;
    if (endpoints !== undefined && !endpoints.includes(r.endpoint)) continue;
    const b = Math.floor((r.startMs - recoveredAtMs) / bucketMs);
    totals[b] = (totals[b] ?? 0) + 1;
    if (r.ok && !(fullService && r.degraded)) goods[b] = (goods[b] ?? 0) + 1;
  }
  let healthyFrom = totals.length;
  for (let b = totals.length - 1; b >= 0; b--) {
    const total = totals[b] ?? 0;
    if (total > 0 && (goods[b] ?? 0) / total < threshold) break;
    healthyFrom = b;
  }
  if (healthyFrom >= totals.length) return Number.POSITIVE_INFINITY;
  return healthyFrom * bucketMs;
}

/** Time series of one run, in buckets, ready for the chart and series.json. */
export interface RunSeries {
  readonly bucketMs: number;
  /** Whether success rate and p95 bucket requests by scheduled start or by completion. */
  readonly by: 'start' | 'end';
  /** Bucket start times, seconds since the deployment started. */
  readonly tSeconds: number[];
  /** Requests offered per second (by scheduled start). */
  readonly offeredRps: number[];
  /** Success rate (0..1, 2xx incl. degraded) per endpoint, bucketed as `by` says; null for an empty bucket. */
  readonly successRate: Record<string, (number | null)[]>;
  /** Share (0..1) of the bucket's requests answered 2xx but degraded (`x-degraded`), per endpoint; null for an empty bucket. */
  readonly degradedRate: Record<string, (number | null)[]>;
  /** All endpoints together: shares (0..1) of the bucket's requests answered in full, answered degraded, and not answered 2xx; null for an empty bucket. */
  readonly answers: { readonly full: (number | null)[]; readonly degraded: (number | null)[]; readonly failed: (number | null)[] };
  /** Requests reaching each service per second. */
  readonly arrivalsRps: Record<string, number[]>;
  /** p95 latency (ms) of the bucket's requests (as `by` says), all endpoints; null for an empty bucket. */
  readonly p95Ms: (number | null)[];
}

/**
 * Builds {@link RunSeries} from records and per-service arrivals, over
 * `[0, untilMs)`. Offered load is always by scheduled start; success rate and
 * p95 by scheduled start (`by: 'start'`, default) or by completion
 * (`by: 'end'`: what the users got in each bucket).
 */
export function buildSeries(
  records: readonly RequestRecord[],
  arrivals: Readonly<Record<string, readonly number[]>>,
  { bucketMs = 250, untilMs, by = 'start' }: { bucketMs?: number; untilMs: number; by?: 'start' | 'end' },
): RunSeries {
  const n = Math.max(1, Math.ceil(untilMs / bucketMs));
  const perSecond = 1000 / bucketMs;
  const bucketOf = (t: number): number => Math.floor(t / bucketMs);
  const tSeconds = Array.from({ length: n }, (_, i) => (i * bucketMs) / 1000);
  const offered = new Array<number>(n).fill(0);
  const latencies: number[][] = Array.from({ length: n }, () => []);
  const ok: Record<string, number[]> = {};
  const degraded: Record<string, number[]> = {};
  const total: Record<string, number[]> = {};
  for (const r of records) {
    const started = bucketOf(r.startMs);
    if (started >= 0 && started < n) offered[started]!++;
    const b = by === 'start' ? started : bucketOf(r.endMs);
    if (b < 0 || b >= n) continue;
    latencies[b]!.push(r.latencyMs);
    (total[r.endpoint] ??= new Array<number>(n).fill(0))[b]!++;
    ok[r.endpoint] ??= new Array<number>(n).fill(0);
    degraded[r.endpoint] ??= new Array<number>(n).fill(0);
    if (r.ok) ok[r.endpoint]![b]!++;
    if (r.ok && r.degraded) degraded[r.endpoint]![b]!++;
  }
  const successRate: Record<string, (number | null)[]> = {};
  const degradedRate: Record<string, (number | null)[]> = {};
  const sum = (per: Record<string, number[]>, i: number): number => Object.values(per).reduce((acc, list) => acc + list[i]!, 0);
  const answers = { full: [] as (number | null)[], degraded: [] as (number | null)[], failed: [] as (number | null)[] };
  for (const endpoint of Object.keys(total)) {
    successRate[endpoint] = total[endpoint]!.map((t, i) => (t === 0 ? null : ok[endpoint]![i]! / t));
    degradedRate[endpoint] = total[endpoint]!.map((t, i) => (t === 0 ? null : degraded[endpoint]![i]! / t));
  }
  for (let i = 0; i < n; i++) {
    const t = sum(total, i);
    const good = sum(ok, i);
    const soft = sum(degraded, i);
    answers.full.push(t === 0 ? null : (good - soft) / t);
    answers.degraded.push(t === 0 ? null : soft / t);
    answers.failed.push(t === 0 ? null : (t - good) / t);
  }
  const arrivalsRps: Record<string, number[]> = {};
  for (const [service, times] of Object.entries(arrivals)) {
    const counts = new Array<number>(n).fill(0);
    for (const t of times) {
      const b = bucketOf(t);
      if (b >= 0 && b < n) counts[b]!++;
    }
    arrivalsRps[service] = counts.map((c) => c * perSecond);
  }
  return {
    bucketMs,
    by,
    tSeconds,
    offeredRps: offered.map((c) => c * perSecond),
    successRate,
    degradedRate,
    answers,
    arrivalsRps,
    p95Ms: latencies.map((l) => (l.length === 0 ? null : percentile(l.sort((a, b) => a - b), 95))),
  };
}

/** A state change of something with states (a circuit breaker's `onStateChange`), ms since the deployment started. */
export interface StateChange {
  readonly atMs: number;
  readonly to: string;
}

/** A span of time in one state, ms since the deployment started: `[fromMs, toMs)`. */
export interface StateSpan {
  readonly fromMs: number;
  readonly toMs: number;
  readonly state: string;
}

/**
 * The spans of time spent in each state over `[fromMs, untilMs)`, from the
 * changes in time order, starting in `initial` (a breaker starts closed).
 * Consecutive spans of the same state are merged; a state entered and left
 * at the same moment gives a span of zero length (charts still draw it).
 */
export function stateSpans(
  changes: readonly StateChange[],
  { initial = 'closed', fromMs = 0, untilMs }: { initial?: string; fromMs?: number; untilMs: number },
): StateSpan[] {
  const spans: StateSpan[] = [];
  let state = initial;
  let since = fromMs;
  const close = (atMs: number): void => {
    const last = spans[spans.length - 1];
    if (last !== undefined && last.state === state && last.toMs === since) spans[spans.length - 1] = { ...last, toMs: atMs };
    else spans.push({ fromMs: since, toMs: atMs, state });
  };
  for (const change of [...changes].sort((a, b) => a.atMs - b.atMs)) {
    const at = Math.min(Math.max(change.atMs, fromMs), untilMs);
    if (change.to === state) continue;
    close(at);
    state = change.to;
    since = at;
  }
  close(Math.max(since, untilMs));
  return spans;
}

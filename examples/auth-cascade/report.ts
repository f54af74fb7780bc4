/**
 * Turns runs of the auth cascade into the numbers of the table and the chart.
 */
import {
  amplification,
  buildSeries,
  type ChartPanel,
  type ChartSeries,
  countIn,
  type EndpointStats,
  formatTable,
  ms,
  PALETTE,
  pct,
  peakRatePerSecond,
  percentile,
  renderChart,
  type RequestRecord,
  type RunSeries,
  summarizeEndpoints,
  timeToRecoverMs,
} from '../harness/index.ts';
import type { ScenarioResult } from './scenario.ts';
import { DEPENDENTS, ENDPOINTS } from './topology.ts';

/** The numbers of one run. */
export interface RunSummary {
  readonly label: string;
  readonly variant: ScenarioResult['options']['variant'];
  readonly mode: ScenarioResult['options']['mode'];
  /** Per endpoint (and `all`), requests started during the outage. */
  readonly duringOutage: readonly EndpointStats[];
  /** Lowest availability of the endpoint that needs no auth over any 1 s window inside the outage. */
  readonly worstSecondNoAuth: number;
  /** Lowest availability of all endpoints over any 1 s window inside the outage. */
  readonly worstSecondAll: number;
  /** Per endpoint (and `all`), the whole run. */
  readonly wholeRun: readonly EndpointStats[];
  /** Longest request of the whole run, ms. */
  readonly maxLatencyMs: number;
  /** Requests slower than the `after` deadline, whole run. */
  readonly overDeadline: number;
  /** Requests reaching auth per offered request, during the outage. */
  readonly amplification: number;
  /** Requests reaching auth during the outage. */
  readonly authCallsDuringOutage: number;
  /** Offered requests during the outage. */
  readonly offeredDuringOutage: number;
  /** Auth requests per second before the outage (steady state). */
  readonly authSteadyRps: number;
  /** Highest auth request rate (100 ms buckets) in the second after auth came back. */
  readonly authPeakAfterRecoveryRps: number;
  /** ms from auth's return until every endpoint is back to ≥95% full (not degraded) service; Infinity if never. */
  readonly timeToRecoverMs: number;
  /** after: ms from auth's return until every breaker is closed (0 if none was open); undefined for before. */
  readonly breakersClosedAfterMs: number | undefined;
  /** Wall time of the run, ms. */
  readonly wallMs: number;
}

/** Time from `outage.toMs` until every dependent's breaker is closed; 0 if all were closed then; Infinity if one never closes. */
export function breakersClosedAfterMs(result: ScenarioResult): number {
  const recoveredAt = result.outage.toMs;
  let worst = 0;
  for (const service of DEPENDENTS) {
    const mine = result.breakerTransitions.filter((t) => t.service === service);
    const before = mine.filter((t) => t.atMs <= recoveredAt);
    const stateAtRecovery = before.length === 0 ? 'closed' : before[before.length - 1]!.to;
    if (stateAtRecovery === 'closed') continue;
    const closed = mine.find((t) => t.atMs > recoveredAt && t.to === 'closed');
    worst = Math.max(worst, closed === undefined ? Number.POSITIVE_INFINITY : closed.atMs - recoveredAt);
  }
  return worst;
}

/**
 * Lowest availability (2xx share, by scheduled start) over any `widthMs` window
 * inside `window`, sliding by `stepMs`; only records of `endpoints` if given.
 * 1 when no window holds a request.
 */
export function worstWindowAvailability(
  records: readonly RequestRecord[],
  window: { readonly fromMs: number; readonly toMs: number },
  endpoints?: readonly string[],
  widthMs = 1000,
  stepMs = 250,
): number {
  const chosen = records.filter((r) => endpoints === undefined || endpoints.includes(r.endpoint));
  let worst = 1;
  for (let from = window.fromMs; from + widthMs <= window.toMs; from += stepMs) {
    const inside = chosen.filter((r) => r.startMs >= from && r.startMs < from + widthMs);
    if (inside.length === 0) continue;
    worst = Math.min(worst, inside.filter((r) => r.ok).length / inside.length);
  }
  return worst;
}

/** Computes the {@link RunSummary} of a run. */
export function summarizeRun(result: ScenarioResult): RunSummary {
  const { records, arrivals, outage, options, config } = result;
  const window = { fromMs: outage.fromMs, toMs: outage.toMs };
  const auth = arrivals.auth ?? [];
  const latencies = records.map((r) => r.latencyMs).sort((a, b) => a - b);
  const steadyFrom = Math.min(1000, outage.fromMs / 2);
  return {
    label: `${options.mode}/${options.variant}`,
    variant: options.variant,
    mode: options.mode,
    duringOutage: summarizeEndpoints(records, window),
    worstSecondNoAuth: worstWindowAvailability(records, window, ENDPOINTS.filter((e) => e.need === 'none').map((e) => e.label)),
    worstSecondAll: worstWindowAvailability(records, window),
    wholeRun: summarizeEndpoints(records),
    maxLatencyMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1]!,
    overDeadline: records.filter((r) => r.latencyMs > config.deadlineMs).length,
    amplification: amplification(auth, records, window),
    authCallsDuringOutage: countIn(auth, window),
    offeredDuringOutage: records.filter((r) => r.startMs >= window.fromMs && r.startMs < window.toMs).length,
    authSteadyRps: (countIn(auth, { fromMs: steadyFrom, toMs: outage.fromMs }) * 1000) / Math.max(1, outage.fromMs - steadyFrom),
    authPeakAfterRecoveryRps: peakRatePerSecond(auth, { fromMs: outage.toMs, toMs: outage.toMs + 1000 }),
    timeToRecoverMs: timeToRecoverMs(records, { recoveredAtMs: outage.toMs, fullService: true }),
    breakersClosedAfterMs: options.variant === 'after' ? breakersClosedAfterMs(result) : undefined,
    wallMs: result.wallMs,
  };
}

function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '-';
}

/** The before/after table: one column per run, one row per number. */
export function comparisonTable(runs: readonly RunSummary[], { markdown = false }: { markdown?: boolean } = {}): string {
  const needOf = new Map(ENDPOINTS.map((e) => [e.label, e.need]));
  const rows: Record<string, string>[] = [];
  const row = (metric: string, value: (s: RunSummary) => string): void => {
    const r: Record<string, string> = { metric };
    runs.forEach((s, i) => (r[`c${i}`] = value(s)));
    rows.push(r);
  };
  for (const e of ENDPOINTS) {
    row(`availability: ${e.label} (auth: ${needOf.get(e.label)})`, (s) => {
      const st = s.duringOutage.find((x) => x.endpoint === e.label);
      if (st === undefined) return '-';
      return st.degraded > 0 ? `${pct(st.availability)} (${pct(st.degraded / Math.max(1, st.requests))} degr.)` : pct(st.availability);
    });
  }
  row('availability: all endpoints', (s) => pct(s.duringOutage.find((x) => x.endpoint === 'all')!.availability));
  row(`  worst second of the outage: ${ENDPOINTS[0]!.label}`, (s) => pct(s.worstSecondNoAuth));
  row('  worst second of the outage: all endpoints', (s) => pct(s.worstSecondAll));
  const all = (s: RunSummary): EndpointStats => s.duringOutage.find((x) => x.endpoint === 'all')!;
  row('latency p50 (outage)', (s) => ms(all(s).p50Ms));
  row('latency p95 (outage)', (s) => ms(all(s).p95Ms));
  row('latency p99 (outage)', (s) => ms(all(s).p99Ms));
  row('slowest request (whole run)', (s) => ms(s.maxLatencyMs));
  row('auth requests per offered request (outage)', (s) => `${ratio(s.amplification)} (${s.authCallsDuringOutage}/${s.offeredDuringOutage})`);
  row('auth req/s: steady → peak in 1st s after recovery', (s) => `${Math.round(s.authSteadyRps)} → ${Math.round(s.authPeakAfterRecoveryRps)}`);
  row('time to recover (all endpoints ≥95% full service)', (s) => ms(s.timeToRecoverMs));
  row('breakers closed after recovery', (s) => (s.breakersClosedAfterMs === undefined ? 'n/a (no breaker)' : ms(s.breakersClosedAfterMs)));
  const columns = [{ key: 'metric', title: 'during the outage unless noted' }, ...runs.map((s, i) => ({ key: `c${i}`, title: s.label }))];
  return formatTable(columns, rows, { markdown });
}

/** Series of a run, for series.json and the chart (success rate and p95 by scheduled start, like the table). */
export function seriesOf(result: ScenarioResult, bucketMs = 250): RunSeries {
  return buildSeries(result.records, result.arrivals, { bucketMs, untilMs: result.options.timeline.durationMs + 500 });
}

/** The chart: one column per auth fault mode; rows: load, success before, success after, p95. */
export function chartOf(results: readonly ScenarioResult[], { title, subtitle }: { title: string; subtitle?: string }): string {
  const modes = [...new Set(results.map((r) => r.options.mode))];
  const panels: ChartPanel[][] = [];
  for (const mode of modes) {
    const before = results.find((r) => r.options.mode === mode && r.options.variant === 'before');
    const after = results.find((r) => r.options.mode === mode && r.options.variant === 'after');
    const any = (before ?? after)!;
    const shades = [{ fromX: any.outage.fromMs / 1000, toX: any.outage.toMs / 1000, label: `auth ${mode === 'errors' ? 'returns 503' : mode === 'hang' ? 'hangs' : 'is slow'}` }];
    const sb = before === undefined ? undefined : seriesOf(before);
    const sa = after === undefined ? undefined : seriesOf(after);
    const line = (s: RunSeries, ys: readonly (number | null)[], name: string, color: string, width = 1.6): ChartSeries => ({
      name,
      color,
      width,
      points: s.tSeconds.map((t, i) => [t, ys[i] ?? null] as const),
    });
    const load: ChartSeries[] = [];
    if (sb !== undefined) load.push(line(sb, sb.offeredRps, 'offered', '#555'));
    if (sb !== undefined) load.push(line(sb, sb.arrivalsRps.auth ?? [], 'reaching auth, before', PALETTE[1]!));
    if (sa !== undefined) load.push(line(sa, sa.arrivalsRps.auth ?? [], 'reaching auth, after', PALETTE[0]!));
    const success = (s: RunSeries): ChartSeries[] =>
      // Widest first, so that lines lying on top of each other (all at 100% or 0%) stay visible.
      ENDPOINTS.map((e, i) => line(s, (s.successRate[e.label] ?? []).map((v) => (v === null ? null : v * 100)), e.label, PALETTE[i]!, 5 - i * 0.9));
    const column: ChartPanel[] = [
      { title: `auth ${mode}: requests per second`, yLabel: 'req/s', series: load, shades },
      { title: `auth ${mode}: success rate per endpoint, BEFORE`, yLabel: '% 2xx', yMin: 0, yMax: 100, series: sb === undefined ? [] : success(sb), shades },
      { title: `auth ${mode}: success rate per endpoint, AFTER (incl. degraded)`, yLabel: '% 2xx', yMin: 0, yMax: 100, series: sa === undefined ? [] : success(sa), shades },
      {
        title: `auth ${mode}: p95 latency, all endpoints`,
        yLabel: 'ms',
        xLabel: 'seconds since start',
        series: [
          ...(sb === undefined ? [] : [line(sb, sb.p95Ms, 'before', PALETTE[1]!)]),
          ...(sa === undefined ? [] : [line(sa, sa.p95Ms, 'after', PALETTE[0]!)]),
        ],
        shades,
      },
    ];
    panels.push(column);
  }
  // Interleave so that each mode is one column of the grid.
  const grid: ChartPanel[] = [];
  for (let row = 0; row < 4; row++) for (const column of panels) grid.push(column[row]!);
  return renderChart({ title, ...(subtitle !== undefined ? { subtitle } : {}), panels: grid, columns: modes.length, panelWidth: 600, panelHeight: 230 });
}

/** Overall p-th latency percentile of a run's records (ms). */
export function latencyPercentile(result: ScenarioResult, p: number): number {
  return percentile(
    result.records.map((r) => r.latencyMs).sort((a, b) => a - b),
    p,
  );
}

/**
 * Turns runs of the auth cascade into the numbers of the table and the chart.
 */
import {
  amplification,
  answerAreas,
  breakerBand,
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
  pointsOf,
  renderChart,
  type RequestRecord,
  type RunSeries,
  type StateSpan,
  stateSpans,
  summarizeEndpoints,
  timeToRecoverMs,
} from '../harness/index.ts';
import type { ScenarioResult } from './scenario.ts';
import { type AuthCascadeConfig, DEPENDENTS, ENDPOINTS } from './topology.ts';

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

/** How auth breaks in a mode, in words. */
export function modeTitle(mode: RunSummary['mode']): string {
  return mode === 'errors' ? 'auth errors' : mode === 'hang' ? 'auth hangs' : 'auth slow';
}

/** A run's column title and label: `auth errors, before`. */
export function runTitle(run: { readonly mode: RunSummary['mode']; readonly variant: RunSummary['variant'] }): string {
  return `${modeTitle(run.mode)}, ${run.variant}`;
}

/** What an endpoint's need of auth means, in words. */
const NEED_WORDS: Readonly<Record<string, string>> = Object.freeze({
  none: 'needs auth: no',
  optional: 'auth: optional',
  cached: 'auth: a cached login will do',
  required: 'auth: required',
});

/** The before/after table: one column per run, one row per number. */
export function comparisonTable(runs: readonly RunSummary[], { markdown = false }: { markdown?: boolean } = {}): string {
  const rows: Record<string, string>[] = [];
  const row = (metric: string, value: (s: RunSummary) => string): void => {
    const r: Record<string, string> = { metric };
    runs.forEach((s, i) => (r[`c${i}`] = value(s)));
    rows.push(r);
  };
  for (const e of ENDPOINTS) {
    row(`answered OK: ${e.label} (${NEED_WORDS[e.need]})`, (s) => {
      const st = s.duringOutage.find((x) => x.endpoint === e.label);
      if (st === undefined) return '-';
      return st.degraded > 0 ? `${pct(st.availability)} (${pct(st.degraded / Math.max(1, st.requests))} degraded)` : pct(st.availability);
    });
  }
  row('answered OK: all endpoints', (s) => pct(all(s).availability));
  row(`  worst second of the outage: ${ENDPOINTS[0]!.label}`, (s) => pct(s.worstSecondNoAuth));
  row('  worst second of the outage: all endpoints', (s) => pct(s.worstSecondAll));
  row('latency p50 (half were faster)', (s) => ms(all(s).p50Ms));
  row('latency p95 (95% were faster)', (s) => ms(all(s).p95Ms));
  row('latency p99 (99% were faster)', (s) => ms(all(s).p99Ms));
  row('slowest request (whole run)', (s) => ms(s.maxLatencyMs));
  row('calls reaching auth per request offered', (s) => `${ratio(s.amplification)} (${s.authCallsDuringOutage}/${s.offeredDuringOutage})`);
  row('calls/s to auth: steady → peak in 1st s after it is back', (s) => `${Math.round(s.authSteadyRps)} → ${Math.round(s.authPeakAfterRecoveryRps)}`);
  row('time to full service after auth is back', (s) => ms(s.timeToRecoverMs));
  row('breakers closed again after auth is back', (s) => (s.breakersClosedAfterMs === undefined ? 'n/a (no breaker)' : ms(s.breakersClosedAfterMs)));
  const columns = [{ key: 'metric', title: 'while auth was broken, unless noted' }, ...runs.map((s, i) => ({ key: `c${i}`, title: runTitle(s) }))];
  return formatTable(columns, rows, { markdown });
}

function all(s: RunSummary): EndpointStats {
  return s.duringOutage.find((x) => x.endpoint === 'all')!;
}

/** `a`, `a and b`, `a, b and c` of the distinct values. */
function listOf(values: readonly string[]): string {
  const distinct = [...new Set(values)];
  return distinct.length <= 1 ? (distinct[0] ?? '-') : `${distinct.slice(0, -1).join(', ')} and ${distinct[distinct.length - 1]}`;
}

/**
 * The "how to read this" notes under the table: what the columns are, and the
 * rows that look surprising (checkout at 0% after, recovery slower after), in
 * plain words with the run's own numbers.
 */
export function howToReadNotes(runs: readonly RunSummary[], config: AuthCascadeConfig, outage: { readonly fromMs: number; readonly toMs: number }): string[] {
  const before = runs.filter((r) => r.variant === 'before');
  const after = runs.filter((r) => r.variant === 'after');
  const endpoint = (r: RunSummary, label: string): EndpointStats | undefined => r.duringOutage.find((x) => x.endpoint === label);
  const share = (list: readonly RunSummary[], label: string): string => listOf(list.map((r) => pct(endpoint(r, label)?.availability ?? Number.NaN)));
  const notes: string[] = [];
  notes.push(
    `Each column is one run: auth broken from ${outage.fromMs / 1000} s to ${outage.toMs / 1000} s, answering errors (503) or not answering at all (hangs). ` +
      '"before" is the code the incident had, "after" the same services calling auth through Breakwater. ' +
      `"answered OK" counts the requests sent while auth was broken that got a successful answer; "degraded" ones were served without the personal part ` +
      '(the anonymous view, the popular list, or a cached login).',
  );
  const products = ENDPOINTS[0]!.label;
  if (before.length > 0) {
    notes.push(
      `${products} never calls auth, yet before it fell to ${listOf(before.map((r) => pct(r.worstSecondNoAuth)))} in its worst second: requests stuck retrying auth ` +
        `held all ${config.serviceWorkers} of catalog's workers, and /products waited behind them.` +
        (after.length > 0 ? ` After, its worst second was ${listOf(after.map((r) => pct(r.worstSecondNoAuth)))}.` : ''),
    );
  }
  const checkout = ENDPOINTS.find((e) => e.need === 'required')!.label;
  const profile = ENDPOINTS.find((e) => e.need === 'cached')!.label;
  if (after.length > 0) {
    notes.push(
      `${checkout} ${before.length > 0 ? `goes from ${share(before, checkout)} before to ${share(after, checkout)} after` : `answers ${share(after, checkout)} after`}, on purpose: ` +
        'a payment needs a verified user, so while auth is down checkout answers 503 "try again shortly" at once instead of guessing who pays' +
        (before.length > 0 ? '. Before, a checkout could only succeed once auth was back, so the ones that did were sent in the last 2 s of the outage.' : '.') +
        ` ${profile} serves a cached login when the user had one in the last ${config.profileCacheTtlMs / 1000} s (${share(after, profile)}, all degraded), and fails like checkout otherwise.`,
    );
    notes.push(
      `"time to full service" is ${listOf(before.map((r) => ms(r.timeToRecoverMs)))} before, ${listOf(after.map((r) => ms(r.timeToRecoverMs)))} after: not a regression. ` +
        'Before, nothing remembers the outage, so the stuck retries go through as soon as auth answers. ' +
        `After, a breaker that opened lets a trial call through only ${config.halfOpenAfterMs} ms later; until it closes, answers stay degraded ` +
        '(the breaker band under the chart shows it). That is the price of not hammering a broken auth; a lower halfOpenAfterMs shortens it.',
    );
  }
  const errorsBefore = before.find((r) => r.mode === 'errors');
  const hangBefore = before.find((r) => r.mode === 'hang');
  if (errorsBefore !== undefined || hangBefore !== undefined) {
    notes.push(
      (errorsBefore !== undefined
        ? `When auth answers errors, before made ${errorsBefore.amplification.toFixed(2)} calls to auth per request offered: every stuck request retries ` +
          `every ${config.naiveMinDelayMs}–${config.naiveMaxDelayMs} ms, long after its user gave up. `
        : '') +
        (hangBefore !== undefined ? `When auth hangs, before makes only ${hangBefore.amplification.toFixed(2)}: a call that never returns is never retried, but it holds a worker. ` : '') +
        (after.length > 0 ? `After: ${listOf(after.map((r) => r.amplification.toFixed(2)))}, held down by the retry budget and the open breakers.` : ''),
    );
  }
  notes.push(
    `Latency counts from when a request was sent. Before, requests wait until their user gives up, after 2 s; after, none waits past the gateway's deadline of ${config.deadlineMs} ms.`,
  );
  return notes;
}

/** Series of a run, for series.json and the chart (success rate and p95 by scheduled start, like the table). */
export function seriesOf(result: ScenarioResult, bucketMs = 250): RunSeries {
  return buildSeries(result.records, result.arrivals, { bucketMs, untilMs: chartUntilMs(result) });
}

function chartUntilMs(result: ScenarioResult): number {
  return result.options.timeline.durationMs + 500;
}

/** Each dependent's breaker state over the run (after only; empty for before), from its onStateChange events. */
export function breakerStates(result: ScenarioResult): Record<string, StateSpan[]> {
  if (result.options.variant !== 'after') return {};
  return Object.fromEntries(
    DEPENDENTS.map((service) => [service, stateSpans(result.breakerTransitions.filter((t) => t.service === service), { untilMs: chartUntilMs(result) })]),
  );
}

/** The note under the success panels' titles. */
const SUCCESS_NOTE = 'shaded: all endpoints, answered in full (green) or degraded (amber, hatched); lines drawn 2 px apart';

/**
 * The chart: one column per auth fault mode; rows: load, success before,
 * success after (with each service's breaker state in a band under it), p95.
 */
export function chartOf(results: readonly ScenarioResult[], { title, subtitle }: { title: string; subtitle?: string }): string {
  const modes = [...new Set(results.map((r) => r.options.mode))];
  const panels: ChartPanel[][] = [];
  for (const mode of modes) {
    const before = results.find((r) => r.options.mode === mode && r.options.variant === 'before');
    const after = results.find((r) => r.options.mode === mode && r.options.variant === 'after');
    const any = (before ?? after)!;
    const shades = [{ fromX: any.outage.fromMs / 1000, toX: any.outage.toMs / 1000, label: `auth ${mode === 'errors' ? 'answers 503' : mode === 'hang' ? 'does not answer' : 'is slow'}` }];
    const sb = before === undefined ? undefined : seriesOf(before);
    const sa = after === undefined ? undefined : seriesOf(after);
    const line = (s: RunSeries, ys: readonly (number | null)[], name: string, color: string, dash?: string): ChartSeries => ({
      name,
      color,
      width: 1.8,
      points: pointsOf(s, ys),
      ...(dash !== undefined ? { dash } : {}),
    });
    const load: ChartSeries[] = [];
    if (sb !== undefined) load.push(line(sb, sb.offeredRps, 'requests offered', '#555', '5 3'));
    if (sb !== undefined) load.push(line(sb, sb.arrivalsRps.auth ?? [], 'calls reaching auth, before', PALETTE[1]!));
    if (sa !== undefined) load.push(line(sa, sa.arrivalsRps.auth ?? [], 'calls reaching auth, after', PALETTE[0]!));
    const success = (s: RunSeries): ChartSeries[] =>
      ENDPOINTS.map((e, i) => line(s, (s.successRate[e.label] ?? []).map((v) => (v === null ? null : v * 100)), e.label, PALETTE[i]!));
    const percent = { yLabel: '% answered OK', yMin: 0, yMax: 100, separateOverlaps: true, note: SUCCESS_NOTE } as const;
    const column: ChartPanel[] = [
      { title: `${modeTitle(mode)}: requests per second`, yLabel: 'per second', series: load, shades },
      {
        title: `${modeTitle(mode)}, BEFORE: share answered OK, per endpoint`,
        ...percent,
        series: sb === undefined ? [] : success(sb),
        areas: sb === undefined ? [] : answerAreas(sb),
        shades,
      },
      {
        title: `${modeTitle(mode)}, AFTER (Breakwater): share answered OK, per endpoint`,
        ...percent,
        series: sa === undefined ? [] : success(sa),
        areas: sa === undefined ? [] : answerAreas(sa),
        ...(after === undefined
          ? {}
          : {
              states: breakerBand(
                DEPENDENTS.map((service) => ({ label: service, changes: after.breakerTransitions.filter((t) => t.service === service) })),
                chartUntilMs(after),
                'breaker (one per service)',
              ),
            }),
        shades,
      },
      {
        title: `${modeTitle(mode)}: latency p95 (95% were faster), all endpoints`,
        yLabel: 'ms',
        xLabel: 'seconds since the run started',
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
  return renderChart({ title, ...(subtitle !== undefined ? { subtitle } : {}), panels: grid, columns: modes.length, panelWidth: 620, plotHeight: 150 });
}

/** Overall p-th latency percentile of a run's records (ms). */
export function latencyPercentile(result: ScenarioResult, p: number): number {
  return percentile(
    result.records.map((r) => r.latencyMs).sort((a, b) => a - b),
    p,
  );
}

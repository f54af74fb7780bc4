/**
 * The numbers of a memory-leak run, from its records: latency over the whole
 * run and in its worst window, the share of requests slower than 1 s, when the
 * SLO was first broken, the extra load from hedging; and the table, the notes
 * under it and the chart.
 */
import {
  breakerBand,
  buildSeries,
  type Cell,
  type ChartSeries,
  type ChartShade,
  type ChartSpec,
  type EndpointStats,
  ms,
  pct,
  type RequestRecord,
  summarize,
} from '../harness/index.ts';
import { AFTER_SETTINGS, BEFORE_RETRIES, BEFORE_RETRY_DELAY_MS } from './api.ts';
import { type AlertResult, labelOf } from './alerts.ts';
import type { PhaseResult } from './scenario.ts';

/** The SLO both runs are held to: 95% of requests answered within 1 s, in every window. */
export const SLO_MS = 1_000;

/** The window latency is judged over, ms. */
export const WINDOW_MS = 1_000;

/** The window of a run whose p95 was the highest (by the time requests were sent), and its figures. */
export function worstWindow(records: readonly RequestRecord[], untilMs: number, windowMs = WINDOW_MS): { fromMs: number; stats: EndpointStats } {
  let worst = { fromMs: 0, stats: summarize('GET /api', records, { fromMs: 0, toMs: windowMs }) };
  for (let fromMs = windowMs; fromMs < untilMs; fromMs += windowMs) {
    const stats = summarize('GET /api', records, { fromMs, toMs: fromMs + windowMs });
    if (stats.requests > 0 && !(stats.p95Ms <= worst.stats.p95Ms)) worst = { fromMs, stats };
  }
  return { fromMs: worst.fromMs, stats: worst.stats };
}

/** The p95 of each window, in order (null for an empty one). */
export function windowP95s(records: readonly RequestRecord[], untilMs: number, windowMs = WINDOW_MS): (number | null)[] {
  return buildSeries(records, {}, { bucketMs: windowMs, untilMs }).p95Ms;
}

/** Share of `records` slower than `slowMs` or failed: the users the seed counts as affected. */
export function affectedShare(records: readonly RequestRecord[], slowMs = SLO_MS): number {
  if (records.length === 0) return 0;
  return records.filter((r) => !r.ok || r.latencyMs > slowMs).length / records.length;
}

/**
 * The start of the first window from `fromMs` on (the start of the leak) whose
 * p95 broke the SLO, ms since the load started; undefined if none did.
 */
export function sloBrokenAtMs(records: readonly RequestRecord[], untilMs: number, fromMs = 0, windowMs = WINDOW_MS): number | undefined {
  const p95s = windowP95s(records, untilMs, windowMs);
  const i = p95s.findIndex((p, k) => k * windowMs >= fromMs && p !== null && p > SLO_MS);
  return i < 0 ? undefined : i * windowMs;
}

/** Hedges as a share of the calls that went through the hedge (each retry attempt is one), and the bound the budget keeps. */
export function hedgeLoad(result: PhaseResult): { share: number; hedges: number; hedgedCalls: number; bound: number } {
  const { hedges, requests, retries } = result.counters;
  const hedgedCalls = requests + retries;
  // Each call earns maxExtraLoad of a hedge and at most 10 can be saved up (src/hedge.ts).
  const bound = AFTER_SETTINGS.maxExtraLoad * hedgedCalls + 10;
  return { share: hedgedCalls === 0 ? 0 : hedges / hedgedCalls, hedges, hedgedCalls, bound };
}

/** Deaths by cause. */
export function deathCounts(result: PhaseResult): { outOfMemory: number; restarted: number; crashed: number } {
  const count = (cause: string): number => result.deaths.filter((d) => d.cause === cause).length;
  return { outOfMemory: count('out-of-memory'), restarted: count('restarted'), crashed: count('crashed') };
}

/** Requests that failed (no 2xx, client timeouts included). */
export function failedCount(result: PhaseResult): number {
  return result.records.filter((r) => !r.ok).length;
}

/** When the alert first fired, ms since the load started (one scrape = one incident minute), and on which pipeline. */
export function alertFiredAt(result: PhaseResult, alert: AlertResult): { atMs: number; pipeline: string | undefined } | undefined {
  if (!alert.evaluated || alert.firings.length === 0) return undefined;
  const first = alert.firings[0]!;
  const scrape = result.scrapes[Math.min(result.scrapes.length - 1, Math.round(first.minute))];
  return scrape === undefined ? undefined : { atMs: scrape.atMs, pipeline: labelOf(first.labels, 'pipeline') };
}

/** The spans of time the alert was firing, ms since the load started: consecutive firing minutes joined. */
export function alertSpans(result: PhaseResult, alert: AlertResult): { fromMs: number; toMs: number }[] {
  if (!alert.evaluated) return [];
  const { scrapes } = result;
  const stepMs = scrapes.length > 1 ? (scrapes[scrapes.length - 1]!.atMs - scrapes[0]!.atMs) / (scrapes.length - 1) : 0;
  const minutes = [...new Set(alert.firings.map((f) => Math.round(f.minute)))].filter((m) => m < scrapes.length).sort((a, b) => a - b);
  const spans: { fromMs: number; toMs: number }[] = [];
  for (const minute of minutes) {
    const atMs = scrapes[minute]!.atMs;
    const last = spans[spans.length - 1];
    if (last !== undefined && atMs - last.toMs <= stepMs / 2) last.toMs = atMs + stepMs;
    else spans.push({ fromMs: atMs, toMs: atMs + stepMs });
  }
  return spans;
}

/** `ms` of demo time as incident minutes, `+25 min`. */
export function incidentMinutes(demoMs: number, minutesPerSecond: number): string {
  return `${Math.round((demoMs / 1000) * minutesPerSecond)} min`;
}

/** Everything the table, the notes and the chart need. */
export interface Report {
  readonly before: PhaseResult;
  readonly after: PhaseResult;
  readonly alert: AlertResult;
  /** Incident minutes per demo second. */
  readonly scale: number;
}

/** The columns of the before/after table. */
export const TABLE_COLUMNS = [
  { key: 'metric', title: 'metric' },
  { key: 'before', title: 'before (round-robin + retry)' },
  { key: 'after', title: 'after (Breakwater)' },
] as const;

/** The rows of the before/after table, every figure from the runs. */
export function tableRows({ before, after, alert, scale }: Report): Record<string, Cell>[] {
  const row = (metric: string, f: (r: PhaseResult) => Cell): Record<string, Cell> => ({ metric, before: f(before), after: f(after) });
  const worst = (r: PhaseResult) => worstWindow(r.records, r.durationMs).stats;
  const worstAffected = (r: PhaseResult): number => {
    const { fromMs } = worstWindow(r.records, r.durationMs);
    return affectedShare(r.records.filter((x) => x.startMs >= fromMs && x.startMs < fromMs + WINDOW_MS));
  };
  const slo = (r: PhaseResult): string => {
    const at = sloBrokenAtMs(r.records, r.durationMs, r.leakStartMs);
    return at === undefined ? 'never' : `leak +${incidentMinutes(at - r.leakStartMs, scale)}`;
  };
  const fired = alertFiredAt(after, alert);
  return [
    row('requests', (r) => r.summary.requests.toLocaleString('en-US')),
    row('p50 / p95 / p99, whole run', (r) => `${ms(r.summary.p50Ms)} / ${ms(r.summary.p95Ms)} / ${ms(r.summary.p99Ms)}`),
    row(`p50 / p95 / p99, worst ${WINDOW_MS / 1000} s window`, (r) => `${ms(worst(r).p50Ms)} / ${ms(worst(r).p95Ms)} / ${ms(worst(r).p99Ms)}`),
    row('requests slower than 1 s or failed, whole run', (r) => pct(affectedShare(r.records))),
    row('...in the worst window', (r) => pct(worstAffected(r))),
    row('failed requests', (r) => `${failedCount(r)} (${pct(failedCount(r) / Math.max(1, r.summary.requests))})`),
    row('calls to workers per request', (r) => (r.counters.workerCalls / Math.max(1, r.summary.requests)).toFixed(2)),
    row('hedges (share of calls; budget)', (r) => {
      if (r.mode === 'before') return '-';
      const h = hedgeLoad(r);
      return `${h.hedges} (${pct(h.share)}; ${pct(AFTER_SETTINGS.maxExtraLoad)} + 10)`;
    }),
    row('failed over: breaker open / limit full / error', (r) =>
      r.mode === 'before' ? '-' : `${r.counters.failovers.breaker} / ${r.counters.failovers.limit} / ${r.counters.failovers.failed}`,
    ),
    row('workers killed at the heap limit', (r) => deathCounts(r).outOfMemory),
    row('workers restarted by the supervisor', (r) => (r.mode === 'before' ? '-' : r.counters.restarts.length)),
    row(`SLO broken (p95 > ${ms(SLO_MS)} in a window)`, slo),
    row('alert fired (BreakwaterSlowCalls)', (r) => {
      if (r.mode === 'before') return 'none: no metrics of its calls';
      if (!alert.evaluated) return `not evaluated: ${alert.why}`;
      return fired === undefined ? 'never' : `leak +${incidentMinutes(fired.atMs - r.leakStartMs, scale)} (${fired.pipeline ?? '?'})`;
    }),
  ];
}

/** The "how to read this" notes under the table, with the runs' own numbers. */
export function howToReadNotes({ before, after, alert, scale }: Report): string[] {
  const wb = worstWindow(before.records, before.durationMs).stats;
  const wa = worstWindow(after.records, after.durationMs).stats;
  const sloAt = sloBrokenAtMs(before.records, before.durationMs, before.leakStartMs);
  const fired = alertFiredAt(after, alert);
  const hedges = hedgeLoad(after);
  const notes = [
    `Time is compressed: 1 s of the demo stands for ${scale} minutes of the incident, so the ${before.durationMs / 1000} s of load are the seed's two hours. ` +
      `"Worst window" is the ${WINDOW_MS / 1000} s (${scale} incident minutes) with the highest p95: ${ms(wb.p95Ms)} before, ${ms(wa.p95Ms)} after.`,
    `Before, the leaking worker${before.leaky.length > 1 ? 's' : ''} (${before.leaky.map((w) => `worker-${w}`).join(', ')}) kept getting ${before.leaky.length} in ${before.workers} of the requests however slow ` +
      `${before.leaky.length > 1 ? 'they' : 'it'} got; ${deathCounts(before).outOfMemory} died at the heap limit, and the ${failedCount(before)} failed requests are the ones sent to a dead worker ` +
      `(p-retry tried it ${BEFORE_RETRIES} more times, ${BEFORE_RETRY_DELAY_MS} ms apart, while it was being restarted).`,
    `After, each worker's breaker opened once half of its last ${AFTER_SETTINGS.windowCalls} calls took ${AFTER_SETTINGS.slowCallMs} ms or more, so the slowing worker left the rotation early; ` +
      `hedges (${hedges.hedges}, ${pct(hedges.share)} of calls, within the ${pct(AFTER_SETTINGS.maxExtraLoad)} budget) covered the slow calls before that, and a worker whose breaker stayed open ` +
      `${AFTER_SETTINGS.restartAfterMs / 1000} s was restarted (${after.counters.restarts.length} restarts), before its heap was full: ${deathCounts(after).outOfMemory} died of it. ${failedCount(after)} requests failed.`,
    fired !== undefined && sloAt !== undefined
      ? `Early detection: BreakwaterSlowCalls (docs/prometheus/alerts.yml), evaluated by promtool over the after run's own /metrics, fired ${incidentMinutes(fired.atMs - after.leakStartMs, scale)} after the leak began ` +
        `(on ${fired.pipeline}); the before system broke its SLO ${incidentMinutes(sloAt - before.leakStartMs, scale)} after it, with nothing to warn of it.`
      : alert.evaluated
        ? `BreakwaterSlowCalls ${fired === undefined ? 'did not fire' : `fired ${incidentMinutes(fired.atMs - after.leakStartMs, scale)} after the leak began`}; the before system ${sloAt === undefined ? 'never broke' : `broke its SLO ${incidentMinutes(sloAt - before.leakStartMs, scale)} after the leak began`}.`
        : `The alert was not evaluated: ${alert.why}.`,
  ];
  return notes;
}

const MB = 2 ** 20;

/** The same shades without their labels (the panel above names them). */
function unlabeled(shades: readonly ChartShade[]): ChartShade[] {
  return shades.map(({ label: _label, ...shade }) => shade);
}

function heapSeries(result: PhaseResult, label: (worker: number) => string): ChartSeries[] {
  return Array.from({ length: result.workers }, (_, worker) => ({
    name: label(worker),
    points: result.heap.map((h) => [h.atMs / 1000, h.bytes[worker] === null || h.bytes[worker] === undefined ? null : h.bytes[worker]! / MB] as [number, number | null]),
    dashed: !result.leaky.includes(worker),
  }));
}

/** The chart: p95 over time for both runs, the share of slow requests, and each worker's heap underneath. */
export function chartSpec({ before, after, alert, scale }: Report, when = new Date()): ChartSpec {
  const until = Math.max(before.durationMs, after.durationMs);
  const points = (r: PhaseResult, ys: readonly (number | null)[]) => ys.map((y, i) => [(i * WINDOW_MS) / 1000, y] as [number, number | null]);
  const slowShare = (r: PhaseResult): (number | null)[] =>
    Array.from({ length: Math.ceil(r.durationMs / WINDOW_MS) }, (_, i) => {
      const chosen = r.records.filter((x) => x.startMs >= i * WINDOW_MS && x.startMs < (i + 1) * WINDOW_MS);
      return chosen.length === 0 ? null : affectedShare(chosen) * 100;
    });
  const leak: ChartShade = { fromX: before.leakStartMs / 1000, toX: until / 1000, label: 'leaking', color: '#fdebd0', style: 'edges' };
  const alertShade: ChartShade[] = alertSpans(after, alert).map((span, i) => ({
    fromX: span.fromMs / 1000,
    toX: span.toMs / 1000,
    ...(i === 0 ? { label: 'BreakwaterSlowCalls firing (after)' } : {}),
    color: '#f4cccc',
  }));
  const limit: ChartSeries = {
    name: `heap limit (${before.limitMb} MB)`,
    points: [
      [0, before.limitMb],
      [until / 1000, before.limitMb],
    ],
    dashed: true,
    color: '#000000',
  };
  const deaths = (r: PhaseResult): ChartShade[] =>
    r.deaths.filter((d) => d.cause === 'out-of-memory').map((d) => ({ fromX: d.atMs / 1000, toX: d.atMs / 1000 + 0.15, label: `worker-${d.worker} OOM`, color: '#d7301f' }));
  const label = (worker: number): string => `worker-${worker}${before.leaky.includes(worker) ? ' (leaks)' : ''}`;
  const band = breakerBand(
    Array.from({ length: after.workers }, (_, worker) => ({ label: `worker-${worker}`, changes: after.counters.transitions.filter((t) => t.worker === worker) })),
    until,
    "each worker's breaker (after)",
  );
  return {
    title: 'memory-leak: a worker leaks until it is OOM-killed, before and after Breakwater',
    subtitle:
      `${before.transport === 'http' ? `Measured with ${before.workers} worker processes on 127.0.0.1` : 'Run in memory, in virtual time'}, ${when.toISOString().slice(0, 16).replace('T', ' ')} UTC; ` +
      `${before.ratePerSecond} requests a second for ${before.durationMs / 1000} s per run; 1 s = ${scale} incident minutes. x: seconds since the load started.\n` +
      'Full story: docs/incidents/memory-leak.md',
    columns: 2,
    plotHeight: 150,
    panels: [
      {
        title: `p95 latency per ${WINDOW_MS / 1000} s window (ms)`,
        note: `the SLO: under ${ms(SLO_MS)}; red columns: a worker killed at its heap limit (before)`,
        yLabel: 'ms',
        series: [
          { name: 'before', points: points(before, windowP95s(before.records, before.durationMs)) },
          { name: 'after', points: points(after, windowP95s(after.records, after.durationMs)) },
          { name: `SLO (${ms(SLO_MS)})`, points: [[0, SLO_MS], [until / 1000, SLO_MS]], dashed: true, color: '#000000' },
        ],
        shades: [leak, ...deaths(before)],
      },
      {
        title: 'requests slower than 1 s or failed, per window (%)',
        note: 'the seed: 30% of users affected',
        yLabel: '%',
        yMin: 0,
        separateOverlaps: true,
        series: [
          { name: 'before', points: points(before, slowShare(before)) },
          { name: 'after', points: points(after, slowShare(after)) },
        ],
        shades: [leak, ...alertShade],
      },
      {
        title: "each worker's heap, before (MB, from its own /metrics)",
        note: `killed by V8 at --max-old-space-size=${before.limitMb}; then started again by its supervisor`,
        yLabel: 'MB',
        yMin: 0,
        yMax: before.limitMb,
        series: [...heapSeries(before, label), limit],
        shades: [leak, ...unlabeled(deaths(before))],
      },
      {
        title: "each worker's heap, after (MB, from its own /metrics)",
        note: 'restarted when its breaker stayed open; band: each worker breaker',
        yLabel: 'MB',
        yMin: 0,
        yMax: before.limitMb,
        series: [...heapSeries(after, label), limit],
        shades: [leak, ...unlabeled(alertShade)],
        states: band,
      },
    ],
  };
}

/** The raw numbers of both runs, for series.json. */
export function seriesOf(report: Report): unknown {
  const phase = (r: PhaseResult) => ({
    summary: r.summary,
    worstWindow: worstWindow(r.records, r.durationMs),
    windowP95Ms: windowP95s(r.records, r.durationMs),
    affectedShare: affectedShare(r.records),
    sloBrokenAtMs: sloBrokenAtMs(r.records, r.durationMs, r.leakStartMs) ?? null,
    failed: failedCount(r),
    counters: r.counters,
    hedgeLoad: r.mode === 'after' ? hedgeLoad(r) : null,
    deaths: r.deaths,
    heap: r.heap,
    latenciesMs: r.records.map((x) => Math.round(x.latencyMs * 10) / 10),
    okByRequest: r.records.map((x) => x.ok),
  });
  const fired = alertFiredAt(report.after, report.alert);
  return {
    demo: 'memory-leak',
    timeScale: `1 demo second = ${report.scale} incident minutes`,
    load: { seconds: report.before.durationMs / 1000, requestsPerSecond: report.before.ratePerSecond, workers: report.before.workers, leaky: report.before.leaky },
    leakStartMs: report.before.leakStartMs,
    sloMs: SLO_MS,
    windowMs: WINDOW_MS,
    afterSettings: AFTER_SETTINGS,
    alert: report.alert,
    alertFiredAtMs: fired?.atMs ?? null,
    alertFiringMs: alertSpans(report.after, report.alert),
    before: phase(report.before),
    after: phase(report.after),
  };
}

/**
 * `npm run demo -- sync-payment-call`: the "Distributed Tracing Investigation"
 * incident of the seed, reproduced on real HTTP over 127.0.0.1.
 *
 * Seven services take part in a checkout; payment calls an external payment
 * API that takes about 2.8 s. Two runs, same load, same external behaviour,
 * same injected outage:
 * - before: payment calls the API while checkout waits (the incident);
 * - after: payment writes the order to an outbox and answers "payment
 *   pending"; a background job charges it through bulkhead + breaker + timeout,
 *   retrying with the order's idempotency key, never sooner than the API's
 *   `Retry-After`.
 *
 * Prints the before/after table, the trace of one slow checkout (from the
 * spans the services recorded), and writes chart.svg + series.json.
 *
 * Options (after the demo's name): `--seconds N` load per run (default 12),
 * `--rate N` checkouts per second (default 10), `--no-breaker` to take the
 * circuit breaker out of the background job's pipeline (to see the load it
 * saves the failing API), `--memory` to run the same
 * services on the in-memory transport in virtual time (what the tests do; no
 * /metrics, finishes in about a second).
 */
import {
  buildSeries,
  type Cell,
  type ChartSeries,
  type Deployment,
  type DemoOptions,
  displayPath,
  type FaultWindow,
  formatTable,
  ms,
  pct,
  renderChart,
  writeResults,
} from '../harness/index.ts';
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import type { ProviderBehaviour } from './external-api.ts';
import { peakPerSecond, type PhaseResult, runPhase, traceAtPercentile } from './scenario.ts';
import { DEFAULT_JOB_SETTINGS, DEFAULT_LATENCIES, type PaymentJobSettings } from './services.ts';
import { culprit, renderTrace, type SpanRecord, traceRows } from './tracing.ts';

/** 1 demo second = 1 seed second: the run is short enough without scaling. */
const TIME_SCALE = 1;

/** The external API's own behaviour in both runs. */
const PROVIDER = Object.freeze({
  meanMs: 2_800,
  jitterMs: 150,
  /** Share of requests that charge but lose their answer (502). */
  lostResponseShare: 0.03,
  /** Share of requests that take `slowExtraMs` longer (past the job's 5 s deadline). */
  slowShare: 0.02,
  slowExtraMs: 5_000,
});

/** The injected outage: the external API answers 503 for 2 s, 6 s into each run, asking callers to come back in 1 s. */
const OUTAGE = Object.freeze({ fromMs: 6_000, toMs: 8_000, retryAfterMs: 1_000 });

/** The bound the recommended setup keeps: requests per second to the failing API, at most this times the offered rate. */
export const OUTAGE_LOAD_BOUND = 1.5;

function providerBehaviour(random: () => number): ProviderBehaviour {
  return () => {
    const roll = random();
    const latencyMs =
      (PROVIDER.meanMs + (random() * 2 - 1) * PROVIDER.jitterMs + (roll < PROVIDER.slowShare ? PROVIDER.slowExtraMs : 0)) *
      TIME_SCALE;
    return { latencyMs, outcome: roll >= 1 - PROVIDER.lostResponseShare ? 'lost-response' : 'ok' };
  };
}

function option(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`sync-payment-call: ${name} needs a positive number; received ${argv[i + 1]}`);
  return value;
}

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const log = options.log ?? ((line: string) => console.log(line));
  const seconds = option(options.argv, '--seconds', 12);
  const rate = option(options.argv, '--rate', 10);
  const job = { ...DEFAULT_JOB_SETTINGS, breaker: !options.argv.includes('--no-breaker') };
  const memory = options.argv.includes('--memory');
  const faults: FaultWindow[] = [
    {
      service: 'payment-provider',
      fromMs: OUTAGE.fromMs * TIME_SCALE,
      toMs: OUTAGE.toMs * TIME_SCALE,
      fault: { kind: 'error', status: 503, retryAfterMs: OUTAGE.retryAfterMs * TIME_SCALE },
    },
  ];

  log(
    `sync-payment-call: the seed's "Distributed Tracing Investigation", reproduced ` +
      (memory ? 'on the in-memory transport in virtual time (FakeClock)' : 'on real HTTP (127.0.0.1)'),
  );
  log(`time scale: 1 demo second = ${1 / TIME_SCALE} seed second (no scaling): the external API takes ${PROVIDER.meanMs} ms ± ${PROVIDER.jitterMs} ms, as in the seed`);
  log('topology: checkout -> cart, (pricing | inventory | shipping), fraud, payment -> payment-provider (external)');
  log(
    `external API: ${pct(PROVIDER.lostResponseShare)} of charges lose their answer (502 after charging), ` +
      `${pct(PROVIDER.slowShare)} take ${PROVIDER.slowExtraMs} ms longer; outage (503, Retry-After: ${OUTAGE.retryAfterMs / 1000}) ` +
      `from ${OUTAGE.fromMs / 1000} s to ${OUTAGE.toMs / 1000} s of each run`,
  );
  log(`load: ${rate} checkouts/s for ${seconds} s per run; customers give up after 10 s`);
  log(
    `after: outbox + background job; pipeline 'payment-provider' = bulkhead(${job.maxConcurrent} running, ` +
      `${job.maxQueue} queued)` +
      (job.breaker
        ? ` -> circuitBreaker(opens at ${pct(job.breakerFailureRatio)} of the last ${job.breakerWindowCalls} calls, ` +
          `one probe after ${job.breakerHalfOpenAfterMs} ms)`
        : ' (no breaker: --no-breaker)') +
      ` -> timeout(${job.timeoutMs} ms); ` +
      `a failed job goes again with the same idempotency key after exponential(${job.retryInitialMs}..${job.retryMaxMs} ms) backoff ` +
      `or the API's Retry-After, whichever is later; re-attempts capped by retryBudget(ratio ${job.retryBudgetRatio}, ${job.retryBudgetMinPerSecond}/s)`,
  );

  const common = {
    transport: memory ? ('memory' as const) : ('http' as const),
    durationMs: seconds * 1000,
    ratePerSecond: rate,
    concurrency: 256,
    clientTimeoutMs: 10_000,
    faults,
    providerBehaviour,
    job,
    drainTimeoutMs: 60_000,
  };
  // Virtual time: a fresh FakeClock and a seeded random source per run.
  const virtual = () => (memory ? { clock: new FakeClock(), random: seededRandom(20_251_127) } : {});
  const printUrls = (mode: string) => (d: Deployment) => {
    if (d.transport === 'memory') {
      log(`\n[${mode}] services up (in memory: no /metrics)`);
      return;
    }
    log(
      mode === 'before'
        ? `\n[${mode}] services up; /metrics while it runs (empty here: the incident's code has no Breakwater pipeline):`
        : `\n[${mode}] services up; /metrics while it runs (payment's carries the pipeline "payment-provider"):`,
    );
    for (const [name, url] of Object.entries(d.urls)) log(`  ${name.padEnd(17)} ${url}/metrics`);
  };
  let metricsText = '';
  const scrapePayment = async (d: Deployment): Promise<void> => {
    const response = await d.call('payment', { method: 'GET', path: '/metrics' });
    metricsText = typeof response.body === 'string' ? response.body : '';
  };

  log('\nrun 1/2 (before): payment calls the external API synchronously, no timeout ...');
  const before = await runPhase({ ...common, ...virtual(), mode: 'before', onDeployed: printUrls('before') });
  log(`  done: ${before.checkout.requests} checkouts, p95 ${ms(before.checkout.p95Ms)}`);
  log('\nrun 2/2 (after): payment answers "pending"; a background job charges through Breakwater ...');
  const after = await runPhase({
    ...common,
    ...virtual(),
    mode: 'after',
    onDeployed: printUrls('after'),
    ...(memory ? {} : { beforeClose: scrapePayment }),
  });
  log(`  done: ${after.checkout.requests} checkouts, p95 ${ms(after.checkout.p95Ms)}; all paid ${ms(after.drainMs)} after the load stopped`);

  log('\nBefore / after (latency of every offered checkout, from the load generator):\n');
  log(formatTable(TABLE_COLUMNS, tableRows(before, after, rate)));

  const slowBefore = traceAtPercentile(before, 95);
  const slowAfter = traceAtPercentile(after, 95);
  log(`\n${traceTitle('before', slowBefore)}\n`);
  log(renderTrace(slowBefore));
  log(culpritLine(slowBefore));
  log(`\n${traceTitle('after', slowAfter)}\n`);
  log(renderTrace(slowAfter));
  log(culpritLine(slowAfter));

  const interesting = metricsText
    .split('\n')
    .filter((l) => /^breakwater_(calls_total|timeouts_total|circuit_transitions_total|bulkhead_rejections_total)\{/.test(l));
  if (interesting.length > 0) {
    log('\npayment /metrics at the end of the after run (Breakwater, pipeline "payment-provider"):');
    for (const line of interesting) log(`  ${line}`);
  }

  const series = seriesOf(before, after, slowBefore, slowAfter, seconds, rate, job);
  const svg = renderChart(chartSpec(before, after, seconds, rate));
  const dir = await writeResults('sync-payment-call', { 'chart.svg': svg, 'series.json': `${JSON.stringify(series, null, 2)}\n` }, {
    ...(options.resultsRoot !== undefined ? { root: options.resultsRoot } : {}),
  });
  const ok =
    after.duplicatePayments === 0 && after.unpaidAccepted === 0 && after.pendingAtEnd === 0 && after.paidOnce === after.accepted;
  log(`\nnothing lost, nothing paid twice (after): ${ok ? 'yes' : 'NO'}`);
  log(`results: ${displayPath(dir)} (chart.svg, series.json)`);
  return dir;
}

const TABLE_COLUMNS = [
  { key: 'metric', title: 'metric' },
  { key: 'before', title: 'before (sync call)' },
  { key: 'after', title: 'after (background job)' },
] as const;

/** Requests per second the external API got at worst during the outage (sliding 1 s window). */
export function outagePeak(result: PhaseResult): number {
  return peakPerSecond(result, 'payment-provider', OUTAGE.fromMs * TIME_SCALE, OUTAGE.toMs * TIME_SCALE) / TIME_SCALE;
}

function tableRows(before: PhaseResult, after: PhaseResult, rate: number): Record<string, Cell>[] {
  const row = (metric: string, f: (r: PhaseResult) => Cell): Record<string, Cell> => ({ metric, before: f(before), after: f(after) });
  const count = (n: number): string => n.toLocaleString('en-US');
  return [
    row('checkouts offered', (r) => count(r.checkout.requests)),
    row('checkout answered 2xx', (r) => `${count(r.checkout.ok)} (${pct(r.checkout.availability)})`),
    row('checkout p50', (r) => ms(r.checkout.p50Ms)),
    row('checkout p95', (r) => ms(r.checkout.p95Ms)),
    row('checkout p99', (r) => ms(r.checkout.p99Ms)),
    row('checkout max', (r) => ms(r.checkout.maxMs)),
    row('accepted orders', (r) => count(r.accepted)),
    row('paid exactly once', (r) => count(r.paidOnce)),
    row('duplicate payments', (r) => count(r.duplicatePayments)),
    row('accepted, unpaid at end', (r) => count(r.unpaidAccepted)),
    row('pending at end (outbox)', (r) => (r.mode === 'after' ? count(r.pendingAtEnd) : '-')),
    row('charged, but checkout failed', (r) => count(r.chargedButFailed)),
    row('requests reaching external API', (r) => count(r.arrivals['payment-provider']?.length ?? 0)),
    row('peak req/s to API during outage', (r) => `${outagePeak(r)} (${(outagePeak(r) / rate).toFixed(1)}x offered)`),
    row('retries deduped by key', (r) => count(r.provider.duplicatesPrevented)),
    row('job attempts: timeout/failed', (r) => (r.worker ? `${r.worker.timeouts} / ${r.worker.failures}` : '-')),
    row('job rejections (breaker/bulkhead)', (r) => (r.worker ? count(r.worker.rejections) : '-')),
    row('job retries put off by budget', (r) => (r.worker ? count(r.worker.budgetDeferrals) : '-')),
    row('all paid, after load stopped', (r) => (r.mode === 'after' ? ms(r.drainMs) : '-')),
    row('longest accept -> paid', (r) => (r.mode === 'after' ? ms(r.maxTimeToPayMs) : '-')),
  ];
}

function traceTitle(mode: string, spans: readonly SpanRecord[]): string {
  const root = spans.find((s) => s.parentSpanId === undefined);
  if (root === undefined) return `${mode}: no trace recorded`;
  const services = new Set(spans.map((s) => s.service)).size;
  return (
    `Trace ${root.traceId} (${mode}): the p95 checkout of the run, ${ms(root.endMs! - root.startMs)}, ` +
    `${spans.length} spans across ${services} services`
  );
}

function culpritLine(spans: readonly SpanRecord[]): string {
  const rows = traceRows(spans);
  const top = culprit(rows);
  if (top === undefined || rows.length === 0) return '';
  const share = top.selfMs / Math.max(1e-9, rows[0]!.durationMs);
  return `-> most of its own time: ${top.span.service} ${top.span.operation}, ${ms(top.selfMs)} (${pct(share)} of the request)`;
}

/** Points per 1 s bucket, seconds since the run's start. */
function points(tSeconds: readonly number[], ys: readonly (number | null)[]): [number, number | null][] {
  return tSeconds.map((t, i) => [t, ys[i] ?? null]);
}

function seriesOf(
  before: PhaseResult,
  after: PhaseResult,
  slowBefore: readonly SpanRecord[],
  slowAfter: readonly SpanRecord[],
  seconds: number,
  rate: number,
  job: PaymentJobSettings,
) {
  const phase = (r: PhaseResult) => ({
    series: buildSeries(r.records, r.arrivals, { bucketMs: 1_000, untilMs: r.endMs }),
    backlog: r.backlog,
    checkout: r.checkout,
    accepted: r.accepted,
    paidOnce: r.paidOnce,
    duplicatePayments: r.duplicatePayments,
    unpaidAccepted: r.unpaidAccepted,
    pendingAtEnd: r.pendingAtEnd,
    chargedButFailed: r.chargedButFailed,
    provider: r.provider,
    worker: r.worker ?? null,
    attempts: r.attempts,
    loadFromMs: r.loadFromMs,
    loadToMs: r.loadToMs,
    drainMs: Number.isNaN(r.drainMs) ? null : r.drainMs,
    /** Most requests the external API got in one second of the outage. */
    outagePeakRps: outagePeak(r),
    latenciesMs: r.records.map((x) => Math.round(x.latencyMs * 10) / 10),
  });
  const trace = (spans: readonly SpanRecord[]) =>
    traceRows(spans).map((row) => ({
      service: row.span.service,
      operation: row.span.operation,
      depth: row.depth,
      startOffsetMs: Math.round(row.offsetMs * 10) / 10,
      durationMs: Math.round(row.durationMs * 10) / 10,
      selfMs: Math.round(row.selfMs * 10) / 10,
      status: row.span.status,
    }));
  return {
    demo: 'sync-payment-call',
    timeScale: `1 demo second = ${1 / TIME_SCALE} seed second`,
    load: { seconds, checkoutsPerSecond: rate },
    outageLoadBound: { timesOfferedRate: OUTAGE_LOAD_BOUND, rps: OUTAGE_LOAD_BOUND * rate },
    provider: PROVIDER,
    outage: OUTAGE,
    job,
    latencies: DEFAULT_LATENCIES,
    before: phase(before),
    after: phase(after),
    traces: { before: trace(slowBefore), after: trace(slowAfter) },
  };
}

function chartSpec(before: PhaseResult, after: PhaseResult, seconds: number, rate: number) {
  const sb = buildSeries(before.records, before.arrivals, { bucketMs: 1_000, untilMs: before.endMs });
  const sa = buildSeries(after.records, after.arrivals, { bucketMs: 1_000, untilMs: after.endMs });
  // Latency in 2 s buckets (about 20 checkouts each), so a p95 is more than the bucket's maximum.
  const lb = buildSeries(before.records, before.arrivals, { bucketMs: 2_000, untilMs: before.endMs });
  const la = buildSeries(after.records, after.arrivals, { bucketMs: 2_000, untilMs: after.endMs });
  const shade = [{ fromX: OUTAGE.fromMs / 1000, toX: OUTAGE.toMs / 1000, label: 'external API 503' }];
  const toS = (atMs: number): number => atMs / 1000;
  const backlog: ChartSeries[] = [
    { name: 'accepted (after)', points: after.backlog.map((b) => [toS(b.atMs), b.accepted]) },
    { name: 'paid (after)', points: after.backlog.map((b) => [toS(b.atMs), b.paid]) },
    { name: 'unpaid backlog (after)', points: after.backlog.map((b) => [toS(b.atMs), b.unpaid]), dashed: true },
  ];
  return {
    title: 'sync-payment-call: checkout waiting on a 2.8 s external payment API, before and after',
    subtitle: `${before.transport === 'http' ? 'real HTTP on 127.0.0.1' : 'in-memory transport, virtual time'}, ${rate} checkouts/s for ${seconds} s per run, 1 demo s = 1 seed s; x: seconds since the run started`,
    columns: 2,
    panels: [
      {
        title: 'checkout p95 latency, by start time (2 s buckets, ms)',
        yLabel: 'ms',
        series: [
          { name: 'before (sync call)', points: points(lb.tSeconds, lb.p95Ms) },
          { name: 'after (background job)', points: points(la.tSeconds, la.p95Ms) },
        ],
        shades: shade,
      },
      {
        title: 'checkout p95, after only (2 s buckets, ms)',
        yLabel: 'ms',
        series: [{ name: 'after (background job)', points: points(la.tSeconds, la.p95Ms), color: '#D55E00' }],
        shades: shade,
      },
      {
        title: 'checkout success rate, by start time',
        yMax: 1,
        yFormat: (y: number) => `${Math.round(y * 100)}%`,
        series: [
          { name: 'before', points: points(sb.tSeconds, sb.successRate['POST /checkout'] ?? []) },
          { name: 'after', points: points(sa.tSeconds, sa.successRate['POST /checkout'] ?? []) },
        ],
        shades: shade,
      },
      {
        title: 'orders: accepted, paid, unpaid (after, cumulative)',
        series: backlog,
        shades: shade,
      },
      {
        title: 'requests reaching the external API per second',
        yLabel: 'req/s',
        series: [
          { name: 'before', points: points(sb.tSeconds, sb.arrivalsRps['payment-provider'] ?? []) },
          { name: 'after', points: points(sa.tSeconds, sa.arrivalsRps['payment-provider'] ?? []) },
          {
            name: `${OUTAGE_LOAD_BOUND}x offered (the bound during the outage)`,
            points: [
              [OUTAGE.fromMs / 1000, OUTAGE_LOAD_BOUND * rate] as [number, number],
              [OUTAGE.toMs / 1000, OUTAGE_LOAD_BOUND * rate] as [number, number],
            ],
            dashed: true,
          },
        ],
        shades: shade,
      },
    ],
  };
}

// `npx node examples/sync-payment-call/demo.ts` also works on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  await run({ argv: process.argv.slice(2) });
}

/**
 * `npm run demo -- sync-payment-call`: the "Distributed Tracing Investigation"
 * incident (a published write-up), reproduced on real HTTP over 127.0.0.1.
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
 * Prints a progress line while each run goes, the before/after table with a
 * "how to read this" note, the trace of one slow checkout (from the spans the
 * services recorded), and writes chart.svg + series.json + table.md.
 *
 * Options (after the demo's name): `--seconds N` load per run (default 12),
 * `--rate N` checkouts per second (default 10), `--no-breaker` to take the
 * circuit breaker out of the background job's pipeline (to see the load it
 * saves the failing API), `--memory` to run the same
 * services on the in-memory transport in virtual time (what the tests do; no
 * /metrics, finishes in about a second).
 */
import {
  breakerBand,
  buildSeries,
  type Cell,
  type ChartSeries,
  type ChartSpec,
  type Deployment,
  type DemoOptions,
  demoConsole,
  displayPath,
  type FaultWindow,
  formatTable,
  howToRead,
  incidentDoc,
  liveCounts,
  numberOption,
  ms,
  pct,
  renderChart,
  type RequestRecord,
  stateSpans,
  writeResults,
} from '../harness/index.ts';
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import type { ProviderBehaviour } from './external-api.ts';
import { peakPerSecond, type PhaseOptions, type PhaseResult, runPhase, traceAtPercentile } from './scenario.ts';
import { DEFAULT_JOB_SETTINGS, DEFAULT_LATENCIES, type PaymentJobSettings, type PaymentWorld } from './services.ts';
import { culprit, renderTrace, type SpanRecord, traceRows } from './tracing.ts';

/** 1 demo second = 1 real second of the incident: the run is short enough without scaling. */
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

/** The set-up, in plain words, printed before the runs. */
function preamble(seconds: number, rate: number, memory: boolean, job: PaymentJobSettings): string[] {
  const where = memory
    ? 'the same services in memory, in virtual time: the same delays, not waited for (what the tests run).'
    : 'real HTTP servers on 127.0.0.1, in this process; nothing is sped up.';
  return [
    'sync-payment-call: a checkout that waits for a slow external payment API, and the fix',
    '  Reproduces a published incident: checkout took 3 s (p95) because the payment service charged the card through',
    '  an external API taking 2.8 s while the customer waited. The fix moved the charge to a background job.',
    '',
    'The set-up',
    '  services      checkout calls cart, then pricing, inventory and shipping at once, then fraud, then payment;',
    '                payment charges the card through the external payment API.',
    `                Here: ${where}`,
    `  external API  (simulated) takes ${PROVIDER.meanMs} ms ± ${PROVIDER.jitterMs} ms a charge; ${pct(PROVIDER.lostResponseShare)} of charges go through but their answer`,
    `                is lost (502); ${pct(PROVIDER.slowShare)} take ${PROVIDER.slowExtraMs / 1000} s longer. From ${OUTAGE.fromMs / 1000} s to ${OUTAGE.toMs / 1000} s of each run it is down:`,
    `                it answers 503 "come back in ${OUTAGE.retryAfterMs / 1000} s" (Retry-After).`,
    `  load          ${rate} checkouts a second for ${seconds} s per run; a customer gives up after 10 s.`,
    'The two versions of the code',
    '  before        payment calls the external API while checkout (and the customer) wait, with no time limit.',
    '  after         payment stores the order in an outbox and answers "payment pending" at once; a background job',
    '                charges it through one Breakwater pipeline:',
    `                  bulkhead  at most ${job.maxConcurrent} charges in flight (${job.maxQueue} more may wait)`,
    job.breaker
      ? `                  breaker   stops calling when ${job.breakerFailureRatio * 100}% of the last ${job.breakerWindowCalls} calls failed; then one trial call every ${job.breakerHalfOpenAfterMs / 1000} s`
      : '                  (no circuit breaker: --no-breaker)',
    `                  timeout   gives up on a charge after ${job.timeoutMs / 1000} s`,
    `                A failed charge goes back in the outbox and is tried again ${job.retryInitialMs / 1000} to ${job.retryMaxMs / 1000} s later (growing; never sooner`,
    '                than the API asked), always with the same idempotency key, so the API never charges an order twice;',
    `                retries are limited to ${job.retryBudgetRatio * 100}% of charges plus ${job.retryBudgetMinPerSecond} a second (a retry budget).`,
    `2 runs, same load and same outage: before, then after${memory ? '.' : ' (about 40 s in all, with the wait for the last payments).'}`,
  ];
}

/** The live figure of the progress line. */
function liveFigure(
  mode: 'before' | 'after',
  loadMs: number,
  records: readonly RequestRecord[],
  deployment: Deployment,
  world: PaymentWorld,
  breaker: () => string | undefined,
): () => string {
  return () => {
    const now = deployment.elapsedMs();
    const stage =
      now >= loadMs
        ? mode === 'after'
          ? 'load over, the job pays the last orders'
          : 'load over, the last answers come in'
        : now < OUTAGE.fromMs * TIME_SCALE
          ? 'API up'
          : now < OUTAGE.toMs * TIME_SCALE
            ? `API DOWN (${OUTAGE.fromMs / 1000}–${OUTAGE.toMs / 1000} s)`
            : `API back since ${OUTAGE.toMs / 1000} s`;
    const c = liveCounts(records, now);
    const last =
      now >= loadMs + 1000
        ? ''
        : `; last second: ${c.answered} answered (${c.ok} OK)${c.answered > 0 ? `, slowest ${ms(c.slowestMs)}` : ''}`;
    if (mode === 'before') return `${stage}${last}`;
    const counts = world.outbox.counts();
    const state = breaker();
    return `${stage}${last}; unpaid orders: ${counts.pending + counts.inFlight} of ${counts.accepted}${state === undefined ? '' : `; breaker ${state}`}`;
  };
}

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const out = demoConsole({ log: options.log, terminal: options.terminal });
  const log = (line: string): void => out.log(line);
  const seconds = numberOption(options.argv, '--seconds', 12, 'sync-payment-call');
  const rate = numberOption(options.argv, '--rate', 10, 'sync-payment-call');
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

  for (const line of preamble(seconds, rate, memory, job)) log(line);

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
  let metricsText = '';
  const scrapePayment = async (d: Deployment): Promise<void> => {
    const response = await d.call('payment', { method: 'GET', path: '/metrics' });
    metricsText = typeof response.body === 'string' ? response.body : '';
  };
  const phase = async (mode: 'before' | 'after', label: string, extra: Partial<PhaseOptions>): Promise<PhaseResult> => {
    const records: RequestRecord[] = [];
    let breaker: string | undefined = mode === 'after' && job.breaker ? 'closed' : undefined;
    let progress: { stop(): void } | undefined;
    try {
      return await runPhase({
        ...common,
        ...virtual(),
        ...extra,
        mode,
        onRecord: (record) => records.push(record),
        onBreakerTransition: (transition) => (breaker = transition.to),
        onDeployed: (d, world) => {
          if (d.transport === 'http') {
            const ports = Object.entries(d.urls).map(([name, url]) => `${name} ${url.slice(url.lastIndexOf(':') + 1)}`);
            log(
              '    /metrics while it runs, at http://127.0.0.1:PORT/metrics' +
                (mode === 'before' ? ' (no Breakwater counters before):' : ' (payment\'s has the pipeline "payment-provider"):'),
            );
            log(`      ${ports.join(', ')}`);
          }
          progress = out.progress({
            label,
            clock: d.clock,
            elapsedMs: () => d.elapsedMs(),
            totalMs: common.durationMs,
            figure: liveFigure(mode, common.durationMs, records, d, world, () => breaker),
          });
        },
      });
    } finally {
      progress?.stop();
    }
  };

  log('\n▶ run 1 of 2, before: payment calls the external API while checkout waits, no time limit');
  const before = await phase('before', 'before', {});
  log(`  before: ${before.checkout.requests} checkouts, ${pct(before.checkout.availability)} answered OK; 95% took at most ${ms(before.checkout.p95Ms)}`);
  log('\n▶ run 2 of 2, after: payment answers "payment pending"; a background job charges through Breakwater');
  const after = await phase('after', 'after', memory ? {} : { beforeClose: scrapePayment });
  log(
    `  after: ${after.checkout.requests} checkouts, ${pct(after.checkout.availability)} answered OK; 95% took at most ${ms(after.checkout.p95Ms)}; ` +
      `all paid ${ms(after.drainMs)} after the load`,
  );

  log('\nBefore / after (checkout latency counts from when the customer sent it, failed checkouts included):\n');
  const table = formatTable(TABLE_COLUMNS, tableRows(before, after, rate));
  log(table);
  log('');
  const notes = howToRead(howToReadNotes(before, after, rate, job), 'sync-payment-call');
  for (const line of notes) log(line);

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
    log('\nBreakwater\'s counters on payment\'s /metrics at the end of the after run (pipeline "payment-provider"):');
    for (const line of interesting) log(`  ${line}`);
  }

  const series = seriesOf(before, after, slowBefore, slowAfter, seconds, rate, job);
  const svg = renderChart(chartSpec(before, after, seconds, rate));
  const dir = await writeResults(
    'sync-payment-call',
    {
      'chart.svg': svg,
      'series.json': `${JSON.stringify(series, null, 2)}\n`,
      'table.md': `${formatTable(TABLE_COLUMNS, tableRows(before, after, rate), { markdown: true })}\n\n${notes.join('\n')}\n`,
    },
    {
      ...(options.resultsRoot !== undefined ? { root: options.resultsRoot } : {}),
    },
  );
  const ok =
    after.duplicatePayments === 0 && after.unpaidAccepted === 0 && after.pendingAtEnd === 0 && after.paidOnce === after.accepted;
  log(`\nnothing lost, nothing paid twice (after): ${ok ? 'yes' : 'NO'}`);
  log(`results: ${displayPath(dir)}/ (chart.svg, series.json, table.md)`);
  log(`the story behind it: ${incidentDoc('sync-payment-call')}`);
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
    row('checkouts sent', (r) => count(r.checkout.requests)),
    row('checkouts answered OK (2xx)', (r) => `${count(r.checkout.ok)} (${pct(r.checkout.availability)})`),
    row('checkout p50 (half were faster)', (r) => ms(r.checkout.p50Ms)),
    row('checkout p95 (95% were faster)', (r) => ms(r.checkout.p95Ms)),
    row('checkout p99 (99% were faster)', (r) => ms(r.checkout.p99Ms)),
    row('slowest checkout', (r) => ms(r.checkout.maxMs)),
    row('orders taken', (r) => count(r.accepted)),
    row('orders paid exactly once', (r) => count(r.paidOnce)),
    row('orders paid twice (duplicate payments)', (r) => count(r.duplicatePayments)),
    row('orders taken, never paid', (r) => count(r.unpaidAccepted)),
    row('orders still waiting to be paid at the end', (r) => (r.mode === 'after' ? count(r.pendingAtEnd) : '-')),
    row('customers charged although checkout failed', (r) => count(r.chargedButFailed)),
    row('calls reaching the external API', (r) => count(r.arrivals['payment-provider']?.length ?? 0)),
    row('most calls/s to the API while it was down', (r) => `${outagePeak(r)} (${(outagePeak(r) / rate).toFixed(1)}x the checkout rate)`),
    row('retries answered from the idempotency key', (r) => count(r.provider.duplicatesPrevented)),
    row("job's calls: timed out / failed", (r) => (r.worker ? `${r.worker.timeouts} / ${r.worker.failures}` : '-')),
    row("job's attempts turned away, no call made", (r) => (r.worker ? count(r.worker.rejections) : '-')),
    row("job's retries put off by the retry budget", (r) => (r.worker ? count(r.worker.budgetDeferrals) : '-')),
    row('every order paid, after the load stopped', (r) => (r.mode === 'after' ? ms(r.drainMs) : '-')),
    row('longest wait from order to payment', (r) => (r.mode === 'after' ? ms(r.maxTimeToPayMs) : '-')),
  ];
}

/**
 * The "how to read this" notes under the table: the headline, and the rows
 * that look surprising (more calls to the API after, many rejections, payment
 * confirmed later), in plain words with the run's own numbers.
 */
export function howToReadNotes(before: PhaseResult, after: PhaseResult, rate: number, job: PaymentJobSettings): string[] {
  const calls = (r: PhaseResult): number => r.arrivals['payment-provider']?.length ?? 0;
  const notes = [
    `"checkout p95" is the time 95% of checkouts stayed under: ${ms(before.checkout.p95Ms)} before, because checkout waits for the external API's 2.8 s charge; ` +
      `${ms(after.checkout.p95Ms)} after, because checkout answers "payment pending" at once and a background job charges the card later. ` +
      'Every checkout sent counts, failed ones too. "-" marks rows that do not apply (before has no outbox and no job).',
    `Checkouts answered OK: ${pct(before.checkout.availability)} before, ${pct(after.checkout.availability)} after. Before, a checkout that met the API's outage ` +
      `(${OUTAGE.fromMs / 1000}–${OUTAGE.toMs / 1000} s) or a lost answer failed` +
      (before.chargedButFailed > 0
        ? `, and ${before.chargedButFailed === 1 ? 'one customer was' : `${before.chargedButFailed} customers were`} charged although checkout told them it failed`
        : '') +
      '. After, payment only stores the order, so checkout succeeds whatever the API does, and the job pays once the API is back.',
  ];
  const lead = calls(after) > calls(before) ? `More calls reach the external API after (${calls(before)} before, ${calls(after)} after), and that is not waste: ` : `Calls reaching the external API: ${calls(before)} before, ${calls(after)} after. `;
  notes.push(
    `${lead}the job tries failed and timed-out charges again` +
      (job.breaker ? ', and while the API is down the breaker lets one trial call through at a time' : '') +
      `; ${after.provider.duplicatesPrevented} retries were answered from the order's idempotency key instead of charging it twice. ` +
      `What matters is the load while the API is down: at most ${outagePeak(after)} calls in a second after, ${outagePeak(before)} before ` +
      `(the bound the demo keeps: ${OUTAGE_LOAD_BOUND}x the checkout rate, ${OUTAGE_LOAD_BOUND * rate} a second).`,
  );
  if (job.breaker && after.worker !== undefined) {
    notes.push(
      `"attempts turned away" (${after.worker.rejections}) are charges the open breaker refused without calling the API, so they cost it nothing: ` +
        'those orders waited in the outbox and went again once the breaker closed (the band under the lower panels of the chart shows when it was open).',
    );
  }
  notes.push(
    `The price: payment is confirmed later, not at checkout. Here every order was paid ${ms(after.drainMs)} after the load stopped, ` +
      `the slowest ${ms(after.maxTimeToPayMs)} after it was taken; the shop has to say "payment pending" and follow up.`,
  );
  return notes;
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
    /** The background job's circuit breaker (after, with the breaker): its onStateChange events, and the spans of time in each state. */
    breaker:
      r.mode === 'after' && job.breaker
        ? { transitions: r.breakerTransitions, states: stateSpans(r.breakerTransitions, { untilMs: r.endMs }) }
        : null,
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
    timeScale: `1 demo second = ${1 / TIME_SCALE} real second (not scaled)`,
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

function chartSpec(before: PhaseResult, after: PhaseResult, seconds: number, rate: number): ChartSpec {
  const sb = buildSeries(before.records, before.arrivals, { bucketMs: 1_000, untilMs: before.endMs });
  const sa = buildSeries(after.records, after.arrivals, { bucketMs: 1_000, untilMs: after.endMs });
  // Latency in 2 s buckets (about 20 checkouts each), so a p95 is more than the bucket's maximum.
  const lb = buildSeries(before.records, before.arrivals, { bucketMs: 2_000, untilMs: before.endMs });
  const la = buildSeries(after.records, after.arrivals, { bucketMs: 2_000, untilMs: after.endMs });
  const shade = [{ fromX: OUTAGE.fromMs / 1000, toX: OUTAGE.toMs / 1000, label: 'external API down (503)' }];
  const toS = (atMs: number): number => atMs / 1000;
  const withBreaker = after.breakerTransitions.length > 0 || after.worker !== undefined;
  // The job's breaker, from its onStateChange events (none with --no-breaker: no band then).
  const states =
    withBreaker && after.breakerTransitions.length > 0
      ? { states: breakerBand([{ label: 'job', changes: after.breakerTransitions }], Math.max(after.endMs, before.endMs), "background job's breaker") }
      : {};
  const backlog: ChartSeries[] = [
    { name: 'orders taken', points: after.backlog.map((b) => [toS(b.atMs), b.accepted]) },
    { name: 'orders paid', points: after.backlog.map((b) => [toS(b.atMs), b.paid]) },
    { name: 'orders waiting to be paid', points: after.backlog.map((b) => [toS(b.atMs), b.unpaid]), dashed: true },
  ];
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  return {
    title: 'sync-payment-call: checkout waiting on a 2.8 s external payment API, before and after',
    subtitle:
      `${before.transport === 'http' ? 'Measured on real HTTP servers on 127.0.0.1' : 'Run in memory, in virtual time'}, ${when} UTC; ` +
      `${rate} checkouts a second for ${seconds} s per run; the external API is down from ${OUTAGE.fromMs / 1000} s to ${OUTAGE.toMs / 1000} s (red). ` +
      'x: seconds since the run started.\n' +
      "Bands under the lower panels: the background job's circuit breaker over time (after). Full story: docs/incidents/sync-payment-call.md",
    columns: 2,
    plotHeight: 150,
    panels: [
      {
        title: 'checkout p95 latency, by the time it was sent (ms)',
        note: '95% of the checkouts sent in each 2 s were answered faster than this',
        yLabel: 'ms',
        series: [
          { name: 'before (waits for the charge)', points: points(lb.tSeconds, lb.p95Ms) },
          { name: 'after (answers "payment pending")', points: points(la.tSeconds, la.p95Ms) },
        ],
        shades: shade,
      },
      {
        title: 'checkout p95, after only, zoomed in (ms)',
        note: 'the internal services (cart, pricing, …) are all that is left',
        yLabel: 'ms',
        series: [{ name: 'after (answers "payment pending")', points: points(la.tSeconds, la.p95Ms), color: '#D55E00' }],
        shades: shade,
      },
      {
        title: 'share of checkouts answered OK, by the time they were sent',
        note: 'lines drawn 2 px apart, so that both show where they are equal',
        yMin: 0,
        yMax: 1,
        separateOverlaps: true,
        yFormat: (y: number) => `${Math.round(y * 100)}%`,
        series: [
          { name: 'before', points: points(sb.tSeconds, sb.successRate['POST /checkout'] ?? []) },
          { name: 'after', points: points(sa.tSeconds, sa.successRate['POST /checkout'] ?? []) },
        ],
        shades: shade,
      },
      {
        title: 'orders after: taken, paid, waiting to be paid (running totals)',
        note: 'paying stalls while the breaker is not closed (band: red open, amber a trial call under way)',
        series: backlog,
        shades: shade,
        ...states,
      },
      {
        title: 'calls reaching the external API per second',
        yLabel: 'per second',
        separateOverlaps: 1.5,
        note: `dashed: the bound the job keeps while the API is down, ${OUTAGE_LOAD_BOUND}x the checkout rate`,
        series: [
          { name: 'before', points: points(sb.tSeconds, sb.arrivalsRps['payment-provider'] ?? []) },
          { name: 'after', points: points(sa.tSeconds, sa.arrivalsRps['payment-provider'] ?? []) },
          {
            name: `${OUTAGE_LOAD_BOUND}x the checkout rate (the bound while the API is down)`,
            points: [
              [OUTAGE.fromMs / 1000, OUTAGE_LOAD_BOUND * rate] as [number, number],
              [OUTAGE.toMs / 1000, OUTAGE_LOAD_BOUND * rate] as [number, number],
            ],
            dashed: true,
          },
        ],
        shades: shade,
        ...states,
      },
    ],
  };
}

// `npx node examples/sync-payment-call/demo.ts` also works on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  await run({ argv: process.argv.slice(2) });
}

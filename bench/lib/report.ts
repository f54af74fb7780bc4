/** Renders a run as text tables (stdout) and as docs/benchmarks.md. */
import os from 'node:os';
import { fmtBytes, fmtMs, fmtNs, fmtRatio, mdTable, textTable } from './format.ts';
import type { GroupName, Row, RunResults, TargetResult } from './results.ts';
import { rowOf } from './results.ts';
import { IN_FLIGHT } from './measure.ts';

/** The machine a run was made on. */
export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly v8: string;
  readonly os: string;
  readonly memory: string;
  readonly date: string;
}

/** Describes this machine. */
export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    date: new Date().toISOString(),
  };
}

type Table = { title: string; header: string[]; rows: string[][] };

const libraryName: Record<string, string> = {
  baseline: '(baseline)',
  breakwater: 'Breakwater',
  opossum: 'opossum',
  cockatiel: 'cockatiel',
  'p-limit': 'p-limit',
  'p-retry': 'p-retry',
  'p-timeout': 'p-timeout',
  'hand-composed': 'by hand',
};

function rowsOf(results: RunResults, group: GroupName): Row[] {
  return results.rows.filter((r) => r.group === group);
}

/** The tables of a run, shared by both renderings. */
/** Sizes the titles quote. */
export interface Sizes {
  readonly instances: number;
  readonly scaleCalls: number;
}

const n = (x: number): string => x.toLocaleString('en-US');

export function tables(results: RunResults, sizes: Sizes, targets: readonly TargetResult[] = []): Table[] {
  const out: Table[] = [];
  const target = (r: Row): string =>
    targets
      .filter((t) => t.rowId === r.id)
      .map((t) => `${t.target}: ${t.met === undefined ? 'not measured' : t.met ? 'met' : 'MISSED'}`)
      .join('; ');
  const bare = rowOf(results.rows, 'bare')?.value ?? Number.NaN;
  const over = (value: number, base: number): string => {
    const d = value - base;
    return Number.isFinite(d) ? `${d >= 0 ? '+' : '−'}${fmtNs(Math.abs(d))}` : '';
  };
  out.push({
    title: '1. Success path, per call (one call at a time, each awaited)',
    header: ['scenario', 'library', 'median', 'over bare', '× bare call', 'target'],
    rows: rowsOf(results, 'success').map((r) => [
      r.label,
      libraryName[r.library]!,
      fmtNs(r.value),
      over(r.value, bare),
      fmtRatio(r.ratio!),
      target(r),
    ]),
  });
  const bareConc = rowOf(results.rows, 'conc.bare')?.value ?? Number.NaN;
  out.push({
    title: `1b. Success path, per call, with ${IN_FLIGHT} calls in flight (Promise.all of ${IN_FLIGHT}, repeated)`,
    header: ['scenario', 'library', 'median', 'over bare', '× bare call'],
    rows: rowsOf(results, 'concurrent').map((r) => [
      r.label,
      libraryName[r.library]!,
      fmtNs(r.value),
      over(r.value, bareConc),
      fmtRatio(r.ratio!),
    ]),
  });
  out.push({
    title: '1c. Metrics on versus off, side by side (five policies; paired rounds in processes of their own, median over processes)',
    header: ['scenario', 'metrics off', 'metrics on', 'on − off', 'per process', 'target'],
    rows: rowsOf(results, 'paired').map((r) => [
      r.label,
      fmtNs(r.extra?.['off'] ?? Number.NaN),
      fmtNs(r.extra?.['on'] ?? Number.NaN),
      `${r.value >= 0 ? '+' : ''}${fmtNs(r.value)}`,
      (r.samples ?? []).map((d) => `${d.toFixed(0)}`).join(', ') + ' ns',
      target(r),
    ]),
  });
  out.push({
    title: '1d. This build against the last commit before the core redesign (five policies; processes of their own, median over processes)',
    header: ['figure', 'value', 'this build', 'compared with', 'per process', 'target'],
    rows: rowsOf(results, 'baseline').map((r) => [
      r.label,
      r.unit === 'ns' ? `${r.value >= 0 ? '+' : ''}${fmtNs(r.value)}` : fmtRatio(r.value),
      fmtNs(r.extra?.['now'] ?? Number.NaN),
      fmtNs(r.extra?.['before'] ?? Number.NaN),
      (r.samples ?? []).map((d) => (r.unit === 'ns' ? d.toFixed(0) : d.toFixed(2))).join(', '),
      target(r),
    ]),
  });
  out.push({
    title: "1e. Issue 12's policies alone against the circuit breaker alone of the last commit before the core redesign (each policy side by side with that breaker, in processes of its own; median over processes)",
    header: ['policy alone', 'per call', 'clock reads per call', "× the earlier build's breaker", '× it, clock reads taken out', "× this build's breaker", 'per process', 'target'],
    rows: rowsOf(results, 'alone').map((r) => [
      r.label,
      fmtNs(r.value),
      r.extra?.['reads'] === undefined ? '' : String(r.extra['reads']),
      r.extra?.['xBefore'] === undefined ? '' : fmtRatio(r.extra['xBefore']),
      r.extra?.['xOwn'] === undefined ? '' : fmtRatio(r.extra['xOwn']),
      r.extra?.['xBreaker'] === undefined ? '' : fmtRatio(r.extra['xBreaker']),
      (r.samples ?? []).map((d) => d.toFixed(0)).join(', ') + ' ns',
      target(r),
    ]),
  });
  out.push({
    title: '2. Failure path, per call',
    header: ['scenario', 'library', 'median', '× reference', 'reference', '× bare call', '× new Error()', 'target'],
    rows: rowsOf(results, 'failure').map((r) => [
      r.label,
      libraryName[r.library]!,
      fmtNs(r.value),
      fmtRatio(r.ratio!),
      r.ratioTo ?? '',
      fmtRatio(r.extra?.['xBare'] ?? Number.NaN),
      fmtRatio(r.extra?.['xNewError'] ?? Number.NaN),
      target(r),
    ]),
  });
  out.push({
    title: `3a. Memory retained per instance (${n(sizes.instances)} instances, forced GC)`,
    header: ['scenario', 'library', 'per instance', 'what', 'target'],
    rows: rowsOf(results, 'memory').map((r) => [r.label, libraryName[r.library]!, fmtBytes(r.value), r.note ?? '', target(r)]),
  });
  out.push({
    title: `3b. Timers and handles kept by ${n(sizes.instances)} idle instances`,
    header: ['scenario', 'library', 'timers (incl. unref’d)', 'referenced timers', 'active handles', 'timers after dispose()', 'target'],
    rows: rowsOf(results, 'timers').map((r) => [
      r.label,
      libraryName[r.library]!,
      String(r.value),
      String(r.extra?.['refTimers'] ?? ''),
      String(r.extra?.['activeHandles'] ?? ''),
      String(r.extra?.['liveTimersAfterDispose'] ?? ''),
      target(r),
    ]),
  });
  out.push({
    title: `4. Scale: ${n(sizes.scaleCalls)} calls in flight through a bulkhead with a queue`,
    header: ['scenario', 'library', 'completion', '× bare', 'per call', 'peak heap', 'settled'],
    rows: rowsOf(results, 'scale').map((r) => [
      r.label,
      libraryName[r.library]!,
      fmtMs(r.value),
      r.ratio === undefined ? '' : fmtRatio(r.ratio),
      fmtNs(r.extra?.['nsPerCall'] ?? Number.NaN),
      fmtBytes(r.extra?.['peakHeapBytes'] ?? Number.NaN),
      (r.extra?.['settled'] ?? 0).toLocaleString('en-US'),
    ]),
  });
  out.push({
    title: '5. HTTP over loopback: a GET and its body, to a keep-alive node:http server in another process',
    header: ['scenario', 'in flight', 'wall per request', 'client CPU per request', 'CPU × bare', 'CPU added per request', 'wall × bare'],
    rows: rowsOf(results, 'http').filter((r) => !r.id.startsWith('http.server.')).map((r) => [
      r.label,
      String(r.extra?.['inFlight'] ?? ''),
      fmtNs(r.value),
      fmtNs(r.extra?.['cpuNs'] ?? Number.NaN),
      r.ratio === undefined ? '' : fmtRatio(r.ratio),
      r.ratio === undefined ? '' : signedNs(r.extra?.['addedCpuNs'] ?? Number.NaN),
      r.ratio === undefined ? '' : fmtRatio(r.extra?.['wallRatio'] ?? Number.NaN),
    ]),
  });
  out.push({
    title: "5b. breakwater/http's gate on the server side: the same GET to the server with and without it (limit never reached)",
    header: ['scenario', 'in flight', 'wall per request', 'server CPU per request', 'CPU × no gate', 'CPU added per request', 'wall × no gate'],
    rows: rowsOf(results, 'http').filter((r) => r.id.startsWith('http.server.')).map((r) => [
      r.label,
      String(r.extra?.['inFlight'] ?? ''),
      fmtNs(r.value),
      fmtNs(r.extra?.['serverCpuNs'] ?? Number.NaN),
      r.ratio === undefined ? '' : fmtRatio(r.ratio),
      r.ratio === undefined ? '' : signedNs(r.extra?.['addedServerCpuNs'] ?? Number.NaN),
      r.ratio === undefined ? '' : fmtRatio(r.extra?.['wallRatio'] ?? Number.NaN),
    ]),
  });
  out.push({
    title: '6. breakwater/redis: the shared rate limiter and retry budget against the local ones, and what they ask of Redis',
    header: ['scenario', 'figure', '× local', 'note'],
    rows: rowsOf(results, 'redis').map((r) => [
      r.label,
      r.unit === 'count' ? `${r.value.toFixed(1)} commands/s` : fmtNs(r.value),
      r.ratio === undefined ? '' : fmtRatio(r.ratio),
      r.note ?? '',
    ]),
  });
  return out;
}

function signedNs(ns: number): string {
  return ns < 0 ? `−${fmtNs(-ns)}` : `+${fmtNs(ns)}`;
}

function targetRows(targets: readonly TargetResult[]): string[][] {
  return targets.map((t) => [t.figure, t.target, t.measured, t.met === undefined ? 'not measured' : t.met ? 'met' : 'MISSED']);
}

/** The headline ratios (for the README). */
export function headline(results: RunResults): string[] {
  const r = (id: string): Row | undefined => rowOf(results.rows, id);
  const lines: string[] = [];
  const ratio = (id: string, label: string): void => {
    const row = r(id);
    if (row?.ratio !== undefined) lines.push(`${label}: ${fmtRatio(row.ratio)} the bare call (${fmtNs(row.value)})`);
  };
  const bare = r('bare');
  if (bare !== undefined) lines.push(`bare async call: ${fmtNs(bare.value)}`);
  ratio('bw.pipeline', 'Breakwater full pipeline, metrics off');
  ratio('bw.pipeline+metrics', 'Breakwater full pipeline, metrics on');
  ratio('cockatiel.wrap+prom', 'cockatiel wrap of the same five + prom-client');
  ratio('hand-composed', 'p-limit(p-retry(opossum(p-timeout))) + opossum-prometheus');
  ratio('opossum.default', 'opossum fire, default options');
  const w = r('fail.window.bw.10000');
  const o = r('fail.window.opossum.10000');
  if (w?.ratio !== undefined && o?.ratio !== undefined) {
    lines.push(
      `failing call after 10,000 failures in the window: Breakwater ${fmtRatio(w.ratio)}, opossum ${fmtRatio(o.ratio)} a bare failing call`,
    );
  }
  const mb = r('memory.bw.breaker');
  const mo = r('memory.opossum.breaker');
  if (mb !== undefined && mo !== undefined) lines.push(`memory per breaker: Breakwater ${fmtBytes(mb.value)}, opossum ${fmtBytes(mo.value)}`);
  return lines;
}

/** Plain-text report for stdout. */
export function textReport(results: RunResults, targets: readonly TargetResult[], m: Machine, profileName: string, sizes: Sizes): string {
  const parts = [
    `Breakwater benchmarks (${profileName}) — ${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.date}`,
    '',
  ];
  for (const t of tables(results, sizes, targets)) {
    if (t.rows.length === 0) continue;
    parts.push(t.title, textTable(t.header, t.rows), '');
  }
  parts.push('Targets', textTable(['figure', 'target', 'measured', 'status'], targetRows(targets)), '');
  parts.push('Headline', ...headline(results).map((l) => `  ${l}`), '');
  if (results.notes.length > 0) parts.push('Notes', ...results.notes.map((n) => `  - ${n}`), '');
  if (results.failures.length > 0) {
    parts.push('FAILED SCENARIOS', ...results.failures.map((f) => `  - [${f.group}] ${f.id}: ${f.message}`), '');
  }
  return parts.join('\n');
}

/** docs/benchmarks.md. */
export function markdownReport(
  results: RunResults,
  targets: readonly TargetResult[],
  m: Machine,
  command: string,
  sizes: Sizes,
): string {
  const parts: string[] = [
    '# Benchmarks',
    '',
    `<!-- Generated by \`${command}\` (bench/run.ts). Do not edit by hand: run the command again. -->`,
    '',
    `Generated by \`${command}\` from one run on the machine below, on ${m.date.slice(0, 10)}. Every figure is the`,
    'median of its samples; every time is also given as a ratio to the bare call measured in the',
    'same run, so the ratios carry over to other machines better than the absolute times do.',
    'Shared or virtual machines are noisy: compare ratios, and re-run before drawing conclusions',
    'from a few percent.',
    '',
    '## Machine',
    '',
    mdTable(
      ['', ''],
      [
        ['CPU', m.cpu],
        ['cores', String(m.cores)],
        ['Node.js', `${m.node} (V8 ${m.v8})`],
        ['OS', m.os],
        ['memory', m.memory],
        ['date', m.date],
      ],
    ),
    '',
    '## Headline',
    '',
    ...headline(results).map((l) => `- ${l}`),
    '',
    '## Targets',
    '',
    mdTable(['figure', 'target', 'measured', 'status'], targetRows(targets)),
    '',
  ];
  for (const t of tables(results, sizes, targets)) {
    if (t.rows.length === 0) continue;
    parts.push(`## ${t.title}`, '', mdTable(t.header, t.rows), '');
  }
  parts.push(
    '## How it is measured',
    '',
    '- Everything runs side by side in one run. Per-call figures come from one `node --expose-gc` process;',
    '  memory, idle-timer and scale subjects each run in a fresh `node --expose-gc` child, so heap figures',
    '  are not skewed by the rest of the run.',
    '- The work is the same for every library: an async function that resolves with 42 (on the failure path,',
    '  one that throws `new Error()`). Timeouts are 10 s, so they never fire; bulkheads have 1,000 slots;',
    '  retries allow 3 calls in all (cockatiel `maxAttempts: 2`, p-retry `retries: 2`); cockatiel\'s breaker is',
    '  a `SamplingBreaker` over 10 s; the hand-composed stack turns opossum\'s own timeout off (p-timeout does it)',
    '  and uses `.catch` as its fallback.',
    '- Per-call figures use [mitata](https://github.com/evanwashere/mitata) `measure`: batches of sequential,',
    '  awaited calls (table 1), or batches of 100 calls started together and awaited with `Promise.all`',
    "  (table 1b, divided by 100). Each figure is the median over rounds of mitata's median batch; the",
    '  subject order rotates between rounds, and every subject is warmed up first. mitata times whole',
    '  batches, so the bare call costs what it really costs (about 50 ns here); a harness that times each',
    '  call separately adds its own overhead to every figure (tinybench reports about 110–130 ns for the',
    '  same bare call on this machine), which makes ratios look smaller.',
    '- Table 1c measures what metrics cost the way the metrics issue asks: the five-policy pipeline with',
    '  metrics off and on, side by side, in paired rounds of alternating order, in processes of their own',
    '  (`bench/prometheus-overhead.ts --pair=0`), median over five processes. The two pipeline rows of',
    '  table 1 share one process with every other subject, whose shapes make the call sites Breakwater',
    '  shares between pipelines polymorphic; their gap is printed next to the target for comparison.',
    '- Table 1e (`bench/alone.ts`) runs each policy in three processes of its own, side by side with the',
    "  earlier build's breaker and nothing else, so neither build's shared code sees other policies' shapes",
    '  (run together in one process, a figure moved by up to 1.7× with the order V8 optimised things in).',
    "  Each ratio is the median of the processes' ratios. Clock reads per call are counted through copies of",
    '  the policies on a clock that counts them; what one read costs here is in the notes: a policy that',
    '  times its calls pays it twice, one that only needs the time once pays it once. The column with the',
    "  clock reads taken out subtracts, in each process, each side's reads at that process's cost of one",
    "  read: it estimates the policy's own work against the breaker's, on a machine whose clock is cheaper.",
    '- Failure path: every failing call is made from a call site 12 frames deep, as from a service\'s',
    '  handler, so every `new Error()` captures a full stack (`Error.stackTraceLimit` is 10) whoever makes',
    "  the call. From a shallow call site a wrapper's own frames would make the work's `new Error()` dearer:",
    "  that is stack capture, not the wrapper's bookkeeping (the shallow bare failing call is shown for",
    '  comparison).',
    '- Closed-breaker failure figures: each breaker is created fresh, fed 2,000 or 10,000 failing calls (it is',
    '  configured never to open: Breakwater `minimumCalls` and opossum `volumeThreshold` out of reach, cockatiel',
    '  `minimumRps: Infinity`), then measured over a fixed, small number of further calls, against a bare',
    '  failing call sampled the same way.',
    '- The open-circuit rejection is awaited and caught, like the bare failing call it is compared with.',
    '- Memory: bytes of heap (plus array buffers) retained per instance, after forced GC, with 10,000',
    '  instances alive, each having made one successful call.',
    '- Idle timers: `Timeout` resources alive (counted with `async_hooks`, so unreferenced timers count too),',
    '  the referenced ones, and `process.getActiveResourcesInfo()` entries, after 10,000 instances made one',
    "  call each and went idle. A Breakwater timeout policy leaves its one timer armed but unreferenced after",
    '  its last call (it ends by itself within the timeout, here 10 s) instead of cancelling and re-arming it',
    "  on every call; opossum keeps two unreferenced intervals per breaker until `shutdown()`.",
    '- Scale: 100,000 calls submitted at once; the work waits one event-loop turn (`setImmediate`); peak heap',
    '  is sampled every 1,000 settled calls; every call must settle with the work\'s result.',
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm run bench        # the full run: prints the tables and regenerates this file',
    'npm run bench:quick  # every scenario, very briefly: a smoke test (does not touch this file)',
    '```',
    '',
  );
  if (results.notes.length > 0) parts.push('## Notes', '', ...results.notes.map((n) => `- ${n}`), '');
  return parts.join('\n');
}

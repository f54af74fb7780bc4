/** The targets of issues 6, 11 and 12, evaluated against a run's rows. */
import { WINDOW_FILLS } from '../groups/failure.ts';
import { type Row, rowOf, type TargetResult } from './results.ts';
import { fmtBytes, fmtNs, fmtRatio } from './format.ts';

/** Single policies held to the ≤ 2× target. */
export const SINGLE_POLICIES = [
  ['bw.timeout', 'timeout'],
  ['bw.fallback', 'fallback'],
  ['bw.bulkhead', 'bulkhead'],
  ['bw.retry', 'retry'],
  ['bw.breaker', 'circuitBreaker'],
] as const;

/** How much the 10,000-failure figure may exceed the 2,000 one and still count as "the same" (timing noise). */
export const FLAT_TOLERANCE = 1.15;

const missing = (figure: string, target: string): TargetResult => ({ figure, target, measured: 'not measured', met: undefined });

/** Evaluates every target. */
export function evaluateTargets(rows: readonly Row[]): TargetResult[] {
  const out: TargetResult[] = [];
  const get = (id: string): Row | undefined => rowOf(rows, id);

  const on = get('bw.pipeline+metrics');
  const off = get('bw.pipeline');
  out.push(
    on?.ratio === undefined
      ? missing('full pipeline, metrics on', '≤ 6× the bare call')
      : { rowId: 'bw.pipeline+metrics', figure: 'full pipeline, metrics on', target: '≤ 6× the bare call', measured: `${fmtRatio(on.ratio)} (${fmtNs(on.value)})`, met: on.ratio <= 6 },
  );
  for (const [id, name] of SINGLE_POLICIES) {
    const r = get(id);
    out.push(
      r?.ratio === undefined
        ? missing(`${name} alone`, '≤ 2× the bare call')
        : { rowId: id, figure: `${name} alone`, target: '≤ 2× the bare call', measured: `${fmtRatio(r.ratio)} (${fmtNs(r.value)})`, met: r.ratio <= 2 },
    );
  }
  // The cost of metrics is judged on the paired measurement (table 1c); the two rows of
  // table 1 come from a process shared with every other subject, their gap is shown beside it.
  const paired = get('paired.metrics');
  const signed = (ns: number): string => `${ns >= 0 ? '+' : ''}${ns.toFixed(0)} ns`;
  if (paired === undefined) out.push(missing('metrics on versus off', '≤ +150 ns per call over metrics off'));
  else {
    const gap = on !== undefined && off !== undefined ? `; table 1's two rows differ by ${signed(on.value - off.value)}` : '';
    out.push({
      rowId: paired.id,
      figure: 'metrics on versus off (paired, table 1c)',
      target: '≤ +150 ns per call over metrics off',
      measured: `${signed(paired.value)}${gap}`,
      met: paired.value <= 150,
    });
  }
  // Issue 11's targets: this build against the last commit before the core redesign (table 1d).
  const vs = (id: string, figure: string, target: string, met: (value: number) => boolean, show: (value: number) => string): void => {
    const r = get(`baseline.${id}`);
    out.push(r === undefined ? missing(figure, target) : { rowId: r.id, figure, target, measured: show(r.value), met: met(r.value) });
  };
  vs('off', 'metrics off, against the baseline build', '≤ 1.1× the baseline', (v) => v <= 1.1, fmtRatio);
  vs('on', 'metrics on, against the baseline build', '≤ 1.25× the baseline', (v) => v <= 1.25, fmtRatio);
  // (Table 1d's own on − off row is shown, not judged: it is the difference of two medians over
  // three processes that also run four other subjects; table 1c pairs the two for this.)
  vs('cockatiel', "cockatiel's wrap of the five + prom-client", '≥ 8× dearer than Breakwater, metrics on', (v) => v >= 8, fmtRatio);
  // Issue 12: each of its policies alone costs no more than the breaker did when the issue
  // was written (the last commit before the core redesign), measured side by side (table 1e).
  for (const [key, name] of [['throttle', 'throttle'], ['aimd', 'adaptiveLimit (aimd)'], ['gradient', 'adaptiveLimit (gradient)'], ['hedge', 'hedge']] as const) {
    const r = get(`alone.${key}`);
    const x = r?.extra?.['xBefore'];
    const figure = `${name} alone`;
    const goal = "≤ the breaker alone of the build before the core redesign";
    out.push(
      r === undefined || x === undefined
        ? missing(figure, goal)
        : { rowId: r.id, figure, target: goal, measured: `${fmtRatio(x)} (${fmtNs(r.value)}; ${fmtRatio(r.extra!['xBreaker']!)} this build's breaker)`, met: x <= 1 },
    );
  }
  const windows = WINDOW_FILLS.map((fill) => get(`fail.window.bw.${fill}`));
  WINDOW_FILLS.forEach((fill, i) => {
    const r = windows[i];
    const figure = `failing call, closed breaker, ${fill.toLocaleString('en-US')} failures in window`;
    out.push(
      r?.ratio === undefined
        ? missing(figure, '≤ 1.3× a bare failing call')
        : { rowId: r.id, figure, target: '≤ 1.3× a bare failing call', measured: `${fmtRatio(r.ratio)} (${fmtNs(r.value)})`, met: r.ratio <= 1.3 },
    );
  });
  const [small, large] = windows;
  if (small === undefined || large === undefined) out.push(missing('failing call: 10,000 versus 2,000 failures', 'the same'));
  else {
    const growth = large.value / small.value;
    out.push({
      rowId: large.id,
      figure: 'failing call: 10,000 versus 2,000 failures in window',
      target: `the same as after 2,000 (≤ ${FLAT_TOLERANCE}×: timing noise)`,
      measured: fmtRatio(growth),
      met: growth <= FLAT_TOLERANCE,
    });
  }
  const open = get('fail.open.bw');
  const newError = get('fail.new-error');
  const bareFail = get('fail.bare');
  if (open === undefined || newError === undefined || bareFail === undefined) {
    out.push(missing('open-circuit rejection', 'no more than creating one error'));
  } else {
    out.push({
      rowId: open.id,
      figure: 'open-circuit rejection (awaited)',
      target: 'no more than creating one error: ≤ the bare failing call (new Error() + reject)',
      measured: `${fmtNs(open.value)}: ${fmtRatio(open.value / bareFail.value)} the bare failing call, ${fmtRatio(open.value / newError.value)} new Error()`,
      met: open.value <= bareFail.value,
    });
  }
  const breakerMem = get('memory.bw.breaker');
  out.push(
    breakerMem === undefined
      ? missing('memory per breaker', '≤ 1 KB')
      : { rowId: breakerMem.id, figure: 'memory per breaker', target: '≤ 1 KB', measured: fmtBytes(breakerMem.value), met: breakerMem.value <= 1024 },
  );
  const pipelineMem = get('memory.bw.pipeline');
  out.push(
    pipelineMem === undefined
      ? missing('memory per full pipeline', '≤ 3 KB')
      : { rowId: pipelineMem.id, figure: 'memory per full pipeline', target: '≤ 3 KB', measured: fmtBytes(pipelineMem.value), met: pipelineMem.value <= 3072 },
  );
  const idle = get('timers.bw.breaker');
  out.push(
    idle === undefined
      ? missing('timers with 10,000 idle breakers', '0')
      : {
          rowId: idle.id,
          figure: 'timers and handles with 10,000 idle breakers',
          target: '0',
          measured: `${idle.value} timers, ${idle.extra?.['activeHandles'] ?? '?'} active handles`,
          met: idle.value === 0 && idle.extra?.['activeHandles'] === 0,
        },
  );
  return out;
}

/**
 * Group 1c: metrics on versus off, side by side. The two "full pipeline" rows of
 * the success table are measured among every other subject in one process, so
 * the JIT's feedback for Breakwater's shared call path is shaped by all of them;
 * their difference is not the cost of metrics. This group runs the pair the way
 * `bench/prometheus-overhead.ts` does (it is that script's first pair): five
 * policies with metrics off and on, paired rounds in alternating order, in
 * processes of their own, reporting the median over processes.
 */
import { fileURLToPath } from 'node:url';
import { median, type Profile } from '../lib/measure.ts';
import { runProcesses } from '../lib/processes.ts';
import { checkSane, type RunResults } from '../lib/results.ts';

/** What one child prints (see bench/prometheus-overhead.ts, `--pair`). */
interface PairResult {
  bare: number;
  off: number;
  on: number;
  delta: number;
}

const SCRIPT = fileURLToPath(new URL('../prometheus-overhead.ts', import.meta.url));

/** Measures the pair in `processes` children and adds the row `paired.metrics`. */
export async function pairedGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const processes = profile.name === 'quick' ? 1 : 5;
  const rounds = profile.name === 'quick' ? 3 : 11;
  const args = ['--pair=0', `--rounds=${rounds}`, ...(profile.name === 'quick' ? ['--quick'] : [])];
  const runs = runProcesses<PairResult>(SCRIPT, args, processes, 'metrics on versus off', log);
  for (const run of runs) {
    checkSane('metrics off', run.off);
    checkSane('metrics on', run.on);
  }
  results.rows.push({
    group: 'paired',
    id: 'paired.metrics',
    label: 'full pipeline (5 policies): metrics on − metrics off',
    library: 'breakwater',
    value: median(runs.map((r) => r.delta)),
    unit: 'ns',
    extra: { off: median(runs.map((r) => r.off)), on: median(runs.map((r) => r.on)), bare: median(runs.map((r) => r.bare)), rounds, processes },
    samples: runs.map((r) => r.delta),
  });
}

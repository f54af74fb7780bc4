/**
 * Group 1d: this build against the last commit before the core redesign
 * (bench/baseline.ts, `BASELINE`), side by side in processes of their own:
 * the five-policy pipeline with metrics off and on from both builds, and
 * cockatiel's `wrap` of the same five with prom-client. One row per figure,
 * each the median over processes.
 */
import { fileURLToPath } from 'node:url';
import { median, type Profile } from '../lib/measure.ts';
import { runProcesses } from '../lib/processes.ts';
import { checkSane, type RunResults } from '../lib/results.ts';

/** What one child prints last (see bench/baseline.ts). */
interface BaselineResult {
  rev: string;
  ns: Record<'bare' | 'newOff' | 'newOn' | 'oldOff' | 'oldOn' | 'cockatiel', number>;
  offRatio: number;
  onRatio: number;
  metricsCostNs: number;
  cockatielRatio: number;
}

const SCRIPT = fileURLToPath(new URL('../baseline.ts', import.meta.url));

/** Measures the comparison in a few children and adds the `baseline.*` rows. */
export async function baselineGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const processes = profile.name === 'quick' ? 1 : 3;
  const runs = runProcesses<BaselineResult>(SCRIPT, profile.name === 'quick' ? ['--quick'] : [], processes, 'against the baseline build', log);
  for (const run of runs) for (const [name, ns] of Object.entries(run.ns)) checkSane(`baseline ${name}`, ns);
  const rev = runs[0]!.rev;
  const ns = (key: keyof BaselineResult['ns']): number => median(runs.map((r) => r.ns[key]));
  const row = (id: string, label: string, pick: (r: BaselineResult) => number, unit: 'ns' | 'count', extra?: Record<string, number>) =>
    results.rows.push({
      group: 'baseline',
      id: `baseline.${id}`,
      label,
      library: 'breakwater',
      value: median(runs.map(pick)),
      unit,
      ...(extra === undefined ? {} : { extra }),
      samples: runs.map(pick),
      note: `against ${rev}`,
    });
  row('off', `metrics off: this build ÷ ${rev}`, (r) => r.offRatio, 'count', { now: ns('newOff'), before: ns('oldOff') });
  row('on', `metrics on: this build ÷ ${rev}`, (r) => r.onRatio, 'count', { now: ns('newOn'), before: ns('oldOn') });
  row('cost', 'metrics on − metrics off (this build; judged in table 1c)', (r) => r.metricsCostNs, 'ns', { now: ns('newOn'), before: ns('newOff') });
  row('cockatiel', 'cockatiel wrap of the five + prom-client ÷ this build, metrics on', (r) => r.cockatielRatio, 'count', {
    now: ns('cockatiel'),
    before: ns('newOn'),
  });
}

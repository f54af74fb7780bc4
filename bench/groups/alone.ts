/**
 * Group 1e: the policies of issue 12 (throttle, adaptive limit, hedge), each
 * alone, against the circuit breaker alone, of this build and of the last
 * commit before the core redesign (bench/alone.ts), side by side in processes
 * of their own. One row per policy, each the median over processes.
 */
import { fileURLToPath } from 'node:url';
import { median, type Profile } from '../lib/measure.ts';
import { runProcesses } from '../lib/processes.ts';
import { checkSane, type RunResults } from '../lib/results.ts';

/** What one child prints last (see bench/alone.ts). */
interface AloneResult {
  rev: string;
  ns: Record<'bare' | 'breakerBefore' | 'breaker' | 'throttle' | 'aimd' | 'gradient' | 'hedge', number>;
}

const SCRIPT = fileURLToPath(new URL('../alone.ts', import.meta.url));

const POLICIES = [
  ['throttle', 'throttle'],
  ['aimd', 'adaptiveLimit, aimd'],
  ['gradient', 'adaptiveLimit, gradient'],
  ['hedge', 'hedge (delay 1 s: none starts)'],
] as const;

/** Measures the comparison in a few children and adds the `alone.*` rows. */
export async function aloneGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const processes = profile.name === 'quick' ? 1 : 3;
  const runs = runProcesses<AloneResult>(SCRIPT, profile.name === 'quick' ? ['--quick'] : ['--rounds=7'], processes, 'each alone against the breaker', log);
  for (const run of runs) for (const [name, ns] of Object.entries(run.ns)) checkSane(`alone ${name}`, ns);
  const rev = runs[0]!.rev;
  const ns = (key: keyof AloneResult['ns']): number => median(runs.map((r) => r.ns[key]));
  results.rows.push({
    group: 'alone',
    id: 'alone.breakerBefore',
    label: `circuitBreaker, ${rev}`,
    library: 'breakwater',
    value: ns('breakerBefore'),
    unit: 'ns',
    samples: runs.map((r) => r.ns.breakerBefore),
  });
  results.rows.push({
    group: 'alone',
    id: 'alone.breaker',
    label: 'circuitBreaker, this build',
    library: 'breakwater',
    value: ns('breaker'),
    unit: 'ns',
    extra: { xBefore: median(runs.map((r) => r.ns.breaker / r.ns.breakerBefore)), xBreaker: 1 },
    samples: runs.map((r) => r.ns.breaker),
  });
  for (const [key, label] of POLICIES) {
    results.rows.push({
      group: 'alone',
      id: `alone.${key}`,
      label,
      library: 'breakwater',
      value: ns(key),
      unit: 'ns',
      extra: {
        xBefore: median(runs.map((r) => r.ns[key] / r.ns.breakerBefore)),
        xBreaker: median(runs.map((r) => r.ns[key] / r.ns.breaker)),
      },
      samples: runs.map((r) => r.ns[key]),
      note: `against ${rev}`,
    });
  }
}

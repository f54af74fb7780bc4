/**
 * Group 1e: the policies of issue 12 (throttle, adaptive limit, hedge), and this
 * build's breaker, each alone against the circuit breaker alone of the last
 * commit before the core redesign (bench/alone.ts): each policy in processes of
 * its own, side by side with that breaker. One row per policy, each the median
 * over its processes.
 */
import { fileURLToPath } from 'node:url';
import type { AloneResult, PolicyName } from '../alone.ts';
import { median, type Profile } from '../lib/measure.ts';
import { runProcesses } from '../lib/processes.ts';
import { checkSane, type RunResults } from '../lib/results.ts';

const SCRIPT = fileURLToPath(new URL('../alone.ts', import.meta.url));

const LABELS: Record<PolicyName, string> = {
  breaker: 'circuitBreaker, this build',
  throttle: 'throttle',
  aimd: 'adaptiveLimit, aimd',
  gradient: 'adaptiveLimit, gradient',
  hedge: 'hedge (delay 1 s: none starts)',
};

/** Measures each policy in a few children and adds the `alone.*` rows. */
export async function aloneGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const quick = profile.name === 'quick';
  const processes = quick ? 1 : 3;
  const byPolicy = new Map<PolicyName, AloneResult[]>();
  for (const policy of Object.keys(LABELS) as PolicyName[]) {
    const runs = runProcesses<AloneResult>(SCRIPT, [`--policy=${policy}`, ...(quick ? ['--quick'] : ['--rounds=7'])], processes, `${policy} alone against the breaker`, log);
    for (const run of runs) {
      checkSane(`alone ${policy}`, run.ns.policy);
      checkSane(`alone ${policy}: the earlier breaker`, run.ns.before);
    }
    byPolicy.set(policy, runs);
  }
  const all = [...byPolicy.values()].flat();
  const rev = all[0]!.rev;
  results.rows.push({
    group: 'alone',
    id: 'alone.breakerBefore',
    label: `circuitBreaker, ${rev}`,
    library: 'breakwater',
    value: median(all.map((r) => r.ns.before)),
    unit: 'ns',
    extra: { reads: all[0]!.reads.before },
    samples: all.map((r) => r.ns.before),
    note: `measured in every process below (${all.length})`,
  });
  const xBefore = (runs: readonly AloneResult[]): number => median(runs.map((r) => r.ns.policy / r.ns.before));
  // The same ratio with each side's clock reads taken out at what one read cost in that process:
  // what the policy's own work costs against the breaker's, whatever a clock read costs.
  const xOwn = (runs: readonly AloneResult[]): number =>
    median(runs.map((r) => (r.ns.policy - r.reads.policy * r.clockReadNs) / (r.ns.before - r.reads.before * r.clockReadNs)));
  const breakerX = xBefore(byPolicy.get('breaker')!);
  for (const [policy, runs] of byPolicy) {
    const x = xBefore(runs);
    results.rows.push({
      group: 'alone',
      id: `alone.${policy}`,
      label: LABELS[policy],
      library: 'breakwater',
      value: median(runs.map((r) => r.ns.policy)),
      unit: 'ns',
      extra: { xBefore: x, xBreaker: x / breakerX, reads: runs[0]!.reads.policy, xOwn: xOwn(runs) },
      samples: runs.map((r) => r.ns.policy),
      note: `against ${rev}`,
    });
  }
  results.notes.push(
    `Table 1e: one clock read (performance.now()) took ${median(all.map((r) => r.clockReadNs)).toFixed(0)} ns on this machine (median over the table's processes).`,
  );
}

/**
 * This build against an earlier commit, side by side in one process: the
 * five-policy pipeline with metrics off and on, each from this checkout's src/
 * and from the earlier commit's src/ (extracted with `git archive` into
 * bench/.baseline/<commit>/, ignored by git), plus cockatiel's `wrap` of the
 * same five policies with prom-client metrics. Rounds rotate the order of the
 * subjects; each figure is the median over rounds of mitata's p50.
 *
 *   npx node bench/baseline.ts                  # against BASELINE, one process
 *   npx node bench/baseline.ts --rev=<commit>   # against another commit
 *   options: --rounds=N (default 9), --quick
 *
 * The last line printed is JSON (what bench/groups/baseline.ts reads).
 */
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import * as now from '../src/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { BASELINE, extract } from './lib/build.ts';
import { rotatingRounds } from './lib/measure.ts';
import { cockatielWithPromClient } from './subjects/peers.ts';
import { work } from './subjects/work.ts';
import { withExposedGc } from './lib/processes.ts';

withExposedGc(import.meta.url); // mitata's gc() between measurements
const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = process.argv.includes('--quick');
const rev = arg('rev') ?? BASELINE;
const ROUNDS = Number(arg('rounds') ?? (quick ? 3 : 9));
const MITATA = quick ? { min_cpu_time: 50e6, min_samples: 8 } : { min_cpu_time: 200e6, min_samples: 20 };

type Lib = typeof now;
type Metrics = typeof prometheusMetrics;

const dir = extract(rev);
const old = (await import(pathToFileURL(`${dir}/src/index.ts`).href)) as Lib;
const oldMetrics = ((await import(pathToFileURL(`${dir}/src/prometheus/index.ts`).href)) as { prometheusMetrics: Metrics })
  .prometheusMetrics;

function five(lib: Lib, name: string, metrics: Metrics | undefined): now.Pipeline<number> {
  const p = lib.pipeline(
    { name },
    lib.fallback({ value: 0 }),
    lib.bulkhead({ maxConcurrent: 1_000, maxQueue: 1_000 }),
    lib.retry({ maxAttempts: 3 }),
    lib.circuitBreaker(),
    lib.timeout({ ms: 1_000 }),
  );
  if (metrics !== undefined) metrics({ registry: new Registry() }).attach(p);
  return p;
}

const cockatiel = cockatielWithPromClient();
const subjects: Record<string, () => Promise<unknown>> = {
  bare: work,
  newOff: ((p) => () => p.execute(work))(five(now, 'new-off', undefined)),
  newOn: ((p) => () => p.execute(work))(five(now, 'new-on', prometheusMetrics)),
  oldOff: ((p) => () => p.execute(work))(five(old, 'old-off', undefined)),
  oldOn: ((p) => () => p.execute(work))(five(old, 'old-on', oldMetrics)),
  cockatiel: () => cockatiel.execute(work),
};
const m = await rotatingRounds(subjects, 42, ROUNDS, MITATA);
const names = Object.keys(m);
const result = {
  rev,
  ns: m,
  offRatio: m.newOff! / m.oldOff!,
  onRatio: m.newOn! / m.oldOn!,
  metricsCostNs: m.newOn! - m.newOff!,
  cockatielRatio: m.cockatiel! / m.newOn!,
};
const fmt = (ns: number): string => `${ns.toFixed(0).padStart(6)} ns`;
console.log(`against ${rev} (median of ${ROUNDS} rounds of mitata's p50, on ${process.version})`);
for (const n of names) console.log(`  ${n.padEnd(10)} ${fmt(m[n]!)}`);
console.log(`  metrics off: ${result.offRatio.toFixed(2)}x the old build (target <= 1.10x)`);
console.log(`  metrics on:  ${result.onRatio.toFixed(2)}x the old build (target <= 1.25x), ${result.metricsCostNs.toFixed(0)} ns over off (target <= 150)`);
console.log(`  cockatiel wrap + prom-client: ${result.cockatielRatio.toFixed(1)}x metrics on (target >= 8x)`);
console.log(JSON.stringify(result));

/**
 * Each policy issue 12 added, alone, against the circuit breaker alone: this
 * build's breaker and the breaker of the last commit before the core redesign
 * (`BASELINE`, "the breaker today" when the issue was written), side by side in
 * one process. Rounds rotate the order of the subjects; each figure is the
 * median over rounds of mitata's p50.
 *
 *   npx node bench/alone.ts                  # options: --rounds=N (default 9), --quick
 *
 * The last line printed is JSON (what bench/groups/alone.ts reads).
 */
import { pathToFileURL } from 'node:url';
import * as now from '../src/index.ts';
import { BASELINE, extract } from './lib/build.ts';
import { rotatingRounds } from './lib/measure.ts';
import { work } from './subjects/work.ts';

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = process.argv.includes('--quick');
const ROUNDS = Number(arg('rounds') ?? (quick ? 3 : 9));
const MITATA = quick ? { min_cpu_time: 50e6, min_samples: 8 } : { min_cpu_time: 200e6, min_samples: 20 };

const old = (await import(pathToFileURL(`${extract(BASELINE)}/src/index.ts`).href)) as typeof now;

// The same set-ups as table 1's rows (bench/subjects/breakwater.ts), each policy in a pipeline of its own.
const adaptive = (algorithm: now.LimitAlgorithm) => now.adaptiveLimit({ algorithm, minLimit: 1, maxLimit: 1_000, initialLimit: 1_000, maxQueue: 1_000 });
const policies = {
  bare: undefined,
  breakerBefore: old.pipeline(old.circuitBreaker()),
  breaker: now.pipeline(now.circuitBreaker()),
  throttle: now.pipeline(now.throttle()),
  aimd: now.pipeline(adaptive(now.aimd())),
  gradient: now.pipeline(adaptive(now.gradient())),
  hedge: now.pipeline(now.hedge({ delayMs: 1_000 })),
};
type Name = keyof typeof policies;
const subjects = Object.fromEntries(
  Object.entries(policies).map(([name, p]) => [name, p === undefined ? work : () => p.execute(work)]),
) as Record<Name, () => Promise<unknown>>;
const ns = await rotatingRounds(subjects, 42, ROUNDS, MITATA);
const names = Object.keys(ns) as Name[];
console.log(`each alone, against ${BASELINE}'s breaker and this build's (median of ${ROUNDS} rounds of mitata's p50, on ${process.version})`);
for (const n of names) {
  const vs = n === 'bare' || n === 'breakerBefore' ? '' : `  ${(ns[n] / ns.breakerBefore).toFixed(2)}x ${BASELINE}'s breaker, ${(ns[n] / ns.breaker).toFixed(2)}x this build's`;
  console.log(`  ${n.padEnd(14)} ${ns[n].toFixed(0).padStart(6)} ns${vs}`);
}
console.log(JSON.stringify({ rev: BASELINE, ns }));

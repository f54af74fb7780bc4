/**
 * Each policy issue 12 added, alone, against the circuit breaker alone of the
 * last commit before the core redesign (`BASELINE`, "the breaker today" when the
 * issue was written), and this build's breaker against it too.
 *
 *   npx node bench/alone.ts                   every policy, each in a process of its own
 *   npx node bench/alone.ts --policy=hedge    one policy, in this process (what the children run)
 *
 * Options: --rounds=N (default 9), --processes=N (per policy, default 1), --quick.
 *
 * A process measures two subjects only, side by side: the earlier build's breaker
 * and one policy of this build, each in a pipeline of its own, in rounds whose
 * order rotates; each figure is the median over rounds of mitata's p50. Only one
 * policy of each build runs in a process, so neither build's shared code (the
 * pipeline, the layer protocol) sees other policies' shapes: in a process that
 * ran them all, a policy's figure moved by up to 1.7x from one process to the next
 * with the order V8 happened to optimise things in.
 *
 * It also counts each subject's clock reads per call (through a second copy on a
 * clock that counts them) and times one read of the clock here: on a virtual
 * machine one read can be a quarter of a policy's whole call.
 *
 * The last line printed is JSON (what bench/groups/alone.ts reads).
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as now from '../src/index.ts';
import { BASELINE, extract } from './lib/build.ts';
import { median, rotatingRounds } from './lib/measure.ts';
import { runProcesses, withExposedGc } from './lib/processes.ts';
import { work } from './subjects/work.ts';

/** The policies measured, each against the earlier build's breaker. */
export const POLICIES = ['breaker', 'throttle', 'aimd', 'gradient', 'hedge'] as const;
/** One of {@link POLICIES}. */
export type PolicyName = (typeof POLICIES)[number];

/** What a `--policy` process prints last. */
export interface AloneResult {
  readonly rev: string;
  readonly policy: PolicyName;
  /** Per call, in ns: the earlier build's breaker, and the policy. */
  readonly ns: { readonly before: number; readonly policy: number };
  /** Clock reads per call of each. */
  readonly reads: { readonly before: number; readonly policy: number };
  /** One `performance.now()` in this process, in ns. */
  readonly clockReadNs: number;
}

type Clock = now.Clock;
type Pipeline = { execute(fn: typeof work): Promise<unknown> };

/** The policy, in a pipeline of its own, as table 1's rows set it up (bench/subjects/breakwater.ts). */
function policyPipeline(name: PolicyName, clock?: Clock): Pipeline {
  const c = clock === undefined ? {} : { clock };
  const adaptive = (algorithm: now.LimitAlgorithm) =>
    now.adaptiveLimit({ algorithm, minLimit: 1, maxLimit: 1_000, initialLimit: 1_000, maxQueue: 1_000, ...c });
  switch (name) {
    case 'breaker':
      return now.pipeline(now.circuitBreaker(c));
    case 'throttle':
      return now.pipeline(now.throttle(c));
    case 'aimd':
      return now.pipeline(adaptive(now.aimd()));
    case 'gradient':
      return now.pipeline(adaptive(now.gradient()));
    case 'hedge':
      return now.pipeline(now.hedge({ delayMs: 1_000, ...c }));
  }
}

/** Clock reads per call of `p` (made on `counting`), over a few hundred calls after the first. */
async function readsPerCall(p: Pipeline, counter: { reads: number }): Promise<number> {
  await p.execute(work); // a policy may read the clock once more on its first call
  counter.reads = 0;
  const calls = 500;
  for (let i = 0; i < calls; i++) await p.execute(work);
  return counter.reads / calls;
}

/** What one `performance.now()` costs here, in ns: the median of 7 rounds of a million reads. */
function clockReadNs(): number {
  const rounds: number[] = [];
  let sink = 0;
  for (let r = 0; r < 7; r++) {
    const n = 1_000_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += performance.now();
    rounds.push(Number(process.hrtime.bigint() - t0) / n);
  }
  if (!(sink > 0)) throw new Error('the clock read nothing');
  return median(rounds);
}

/** Measures one policy against the earlier build's breaker, in this process. */
async function measureOne(policy: PolicyName, rounds: number, mitata: { min_cpu_time: number; min_samples: number }): Promise<AloneResult> {
  const old = (await import(pathToFileURL(`${extract(BASELINE)}/src/index.ts`).href)) as typeof now;
  const before = old.pipeline(old.circuitBreaker());
  const p = policyPipeline(policy);
  const ns = await rotatingRounds({ before: () => before.execute(work), policy: () => p.execute(work) }, 42, rounds, mitata);
  // Reads are counted after the timing, on copies of their own: the timed pipelines stay on the system clock.
  const counter = { reads: 0 };
  const counting: Clock = {
    now: () => {
      counter.reads++;
      return now.systemClock.now();
    },
    schedule: (callback, delayMs) => now.systemClock.schedule(callback, delayMs),
    cancel: (handle) => now.systemClock.cancel(handle),
    keepAlive: (handle, keepAlive) => now.systemClock.keepAlive!(handle, keepAlive),
  };
  const reads = {
    before: await readsPerCall(old.pipeline(old.circuitBreaker({ clock: counting })), counter),
    policy: await readsPerCall(policyPipeline(policy, counting), counter),
  };
  return { rev: BASELINE, policy, ns, reads, clockReadNs: clockReadNs() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  withExposedGc(import.meta.url); // mitata's gc() between measurements
  const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = process.argv.includes('--quick');
  const rounds = Number(arg('rounds') ?? (quick ? 3 : 9));
  const policy = arg('policy');
  if (policy !== undefined) {
    if (!(POLICIES as readonly string[]).includes(policy)) throw new Error(`--policy must be one of ${POLICIES.join(', ')}; received ${policy}`);
    const mitata = quick ? { min_cpu_time: 50e6, min_samples: 8 } : { min_cpu_time: 200e6, min_samples: 20 };
    const r = await measureOne(policy as PolicyName, rounds, mitata);
    console.log(
      `${policy} ${r.ns.policy.toFixed(0)} ns (${r.reads.policy} clock reads per call), ${BASELINE}'s breaker ${r.ns.before.toFixed(0)} ns (${r.reads.before}): ` +
        `${(r.ns.policy / r.ns.before).toFixed(2)}x; one clock read ${r.clockReadNs.toFixed(1)} ns`,
    );
    console.log(JSON.stringify(r));
  } else {
    const processes = Number(arg('processes') ?? 1);
    const self = fileURLToPath(import.meta.url);
    const pass = [`--rounds=${rounds}`, ...(quick ? ['--quick'] : [])];
    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    console.log(`each alone against ${BASELINE}'s breaker alone (median of ${rounds} rounds of mitata's p50, ${processes} process(es) each, on ${process.version})`);
    const all: AloneResult[] = [];
    for (const name of POLICIES) {
      const runs = runProcesses<AloneResult>(self, [`--policy=${name}`, ...pass], processes, name, log);
      all.push(...runs);
      const x = median(runs.map((r) => r.ns.policy / r.ns.before));
      const own = median(runs.map((r) => (r.ns.policy - r.reads.policy * r.clockReadNs) / (r.ns.before - r.reads.before * r.clockReadNs)));
      const perCall = median(runs.map((r) => r.ns.policy));
      console.log(
        `  ${name.padEnd(9)} ${perCall.toFixed(0).padStart(5)} ns  ${x.toFixed(2)}x  ${runs[0]!.reads.policy} clock reads per call (the breaker: ${runs[0]!.reads.before}); ` +
          `${own.toFixed(2)}x with the reads taken out`,
      );
    }
    console.log(`  one clock read: ${median(all.map((r) => r.clockReadNs)).toFixed(1)} ns`);
  }
}

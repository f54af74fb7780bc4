/**
 * What breakwater/prometheus costs:
 * 1. the success path of a five-policy pipeline with metrics on versus off,
 *    side by side in one run (mitata, median of rounds, order rotated per round),
 *    plus three pairs that show where the cost goes; each pair runs in a child
 *    process of its own (see successPath);
 * 2. how long one scrape of 1,000 attached pipelines blocks the event loop.
 *
 *   npx node bench/prometheus-overhead.ts            # full run
 *   npx node bench/prometheus-overhead.ts --quick    # a smoke run
 *   options: --rounds=N (success-path rounds per process, default 15), --scrape-only
 *
 * Figures go to docs/metrics.md by hand, with the machine they came from.
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { measure } from 'mitata';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { bulkhead, circuitBreaker, fallback, type Pipeline, pipeline, retry, timeout } from '../src/index.ts';
import type { CallRecorder } from '../src/core/timing.ts';
import { blockTime } from './lib/measure.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { withExposedGc } from './lib/processes.ts';

withExposedGc(import.meta.url); // mitata's gc() between measurements
const quick = process.argv.includes('--quick');
const roundsArg = process.argv.find((a) => a.startsWith('--rounds='));
const ROUNDS = roundsArg !== undefined ? Number(roundsArg.slice('--rounds='.length)) : quick ? 3 : 15;
const MITATA = quick ? { min_cpu_time: 50e6, min_samples: 8 } : { min_cpu_time: 200e6, min_samples: 20 };
const MAIN_PROCESSES = quick ? 1 : 5;
const SCRAPE_PIPELINES = 1_000;
const SCRAPES = quick ? 5 : 25;

const work = async (): Promise<number> => 42;

/** The recommended order for a remote call: fallback → bulkhead → retry → circuitBreaker → timeout. */
function fivePolicies(name: string): Pipeline<number> {
  return pipeline(
    { name },
    fallback({ value: 0 }),
    bulkhead({ maxConcurrent: 100, maxQueue: 100 }),
    retry({ maxAttempts: 3 }),
    circuitBreaker(),
    timeout({ ms: 1_000 }),
  );
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const fmt = (ns: number): string => `${ns.toFixed(1)} ns`;

type Pair = { label: string; off: () => Promise<unknown>; on: () => Promise<unknown> };

/** The pairs, each built only in the process that measures it. */
const PAIRS: { label: string; build: () => Pair }[] = [
  {
    label: '5 policies: metrics on vs off',
    build() {
      const off = fivePolicies('five-off');
      const on = fivePolicies('five-on');
      prometheusMetrics({ registry: new Registry() }).attach(on);
      return { label: this.label, off: () => off.execute(work), on: () => on.execute(work) };
    },
  },
  {
    label: 'empty pipeline: metrics on vs off',
    build() {
      const off = pipeline({ name: 'empty-off' });
      const on = pipeline({ name: 'empty-on' });
      prometheusMetrics({ registry: new Registry() }).attach(on);
      return { label: this.label, off: () => off.execute(work), on: () => on.execute(work) };
    },
  },
  {
    label: '5 policies: no-op onSettled listener vs none',
    build() {
      const off = fivePolicies('five-off');
      const timed = fivePolicies('five-timed');
      timed.onSettled(() => {}); // the pipeline times its calls for any onSettled listener
      return { label: this.label, off: () => off.execute(work), on: () => timed.execute(work) };
    },
  },
  {
    label: 'empty pipeline: no-op onSettled listener vs none',
    build() {
      const off = pipeline({ name: 'empty-off' });
      const timed = pipeline({ name: 'empty-timed' });
      timed.onSettled(() => {});
      return { label: this.label, off: () => off.execute(work), on: () => timed.execute(work) };
    },
  },
];

interface PairResult {
  label: string;
  bare: number;
  off: number;
  on: number;
  delta: number;
  q1: number;
  q3: number;
}

/** Measures one pair side by side: `ROUNDS` rounds, each one paired difference, in alternating order. */
async function measurePair(pair: Pair): Promise<PairResult> {
  if ((await pair.off()) !== 42 || (await pair.on()) !== 42) throw new Error(`${pair.label}: a call did not resolve with 42`);
  const bare: number[] = [];
  const off: number[] = [];
  const on: number[] = [];
  const delta: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    bare.push((await measure(work, MITATA)).p50);
    const first = round % 2 === 0 ? pair.off : pair.on;
    const second = round % 2 === 0 ? pair.on : pair.off;
    const a = (await measure(first, MITATA)).p50;
    const b = (await measure(second, MITATA)).p50;
    const [offNs, onNs] = round % 2 === 0 ? [a, b] : [b, a];
    off.push(offNs);
    on.push(onNs);
    delta.push(onNs - offNs);
  }
  const sorted = [...delta].sort((x, y) => x - y);
  return {
    label: pair.label,
    bare: median(bare),
    off: median(off),
    on: median(on),
    delta: median(delta),
    q1: sorted[Math.floor((sorted.length - 1) / 4)]!,
    q3: sorted[Math.ceil(((sorted.length - 1) * 3) / 4)]!,
  };
}

/** The sink's own share: its recorder (what it does per call), called directly. */
async function recorderAlone(): Promise<number> {
  const probe = pipeline({ name: 'recorder-probe' });
  let recorder: CallRecorder | undefined;
  const original = probe._record.bind(probe);
  Object.defineProperty(probe, '_record', {
    value: (r: CallRecorder) => {
      recorder = r;
      return original(r);
    },
  });
  prometheusMetrics({ registry: new Registry() }).attach(probe);
  if (recorder === undefined) throw new Error('the sink did not attach a recorder');
  const r = recorder;
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) runs.push((await measure(() => r.record('success', 0.4), MITATA)).p50);
  return median(runs);
}

/** Runs pair `index` in a child process and returns its result. */
function inChild(index: number): PairResult {
  const args = [...process.execArgv, fileURLToPath(import.meta.url), `--pair=${index}`, ...process.argv.slice(2).filter((a) => !a.startsWith('--pair='))];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (child.status !== 0) throw new Error(`pair ${index} (${PAIRS[index]!.label}) failed with status ${child.status}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as PairResult;
}

/**
 * Each pair runs in processes of its own, so the JIT's feedback for the shared
 * call path reflects that pair's two pipelines only, as in a service where
 * metrics are on or off: measured together, the empty pipelines and the no-op
 * listener would turn call sites the five-policy pair uses polymorphic. The
 * first pair, the figure of record, runs in {@link MAIN_PROCESSES} processes:
 * on a shared VM the median of one process moves by ±15 ns from one process to
 * the next, more than within one.
 */
async function successPath(): Promise<void> {
  const mainRuns = Array.from({ length: MAIN_PROCESSES }, () => inChild(0));
  const main: PairResult = {
    label: PAIRS[0]!.label,
    bare: median(mainRuns.map((r) => r.bare)),
    off: median(mainRuns.map((r) => r.off)),
    on: median(mainRuns.map((r) => r.on)),
    delta: median(mainRuns.map((r) => r.delta)),
    q1: median(mainRuns.map((r) => r.q1)),
    q3: median(mainRuns.map((r) => r.q3)),
  };
  const results = [main, ...PAIRS.slice(1).map((_, i) => inChild(i + 1))];
  console.log(`\nSuccess path (ns per call; median over ${ROUNDS} rounds of mitata's median; delta = median of paired differences; each pair in processes of its own):`);
  console.log(`  bare async call: ${fmt(median(results.map((r) => r.bare)))}`);
  for (const r of results) {
    console.log(
      `  ${r.label.padEnd(50)} off ${fmt(r.off).padStart(9)}  on ${fmt(r.on).padStart(9)}  ` +
        `delta ${fmt(r.delta).padStart(8)} (IQR ${fmt(r.q1)} .. ${fmt(r.q3)})`,
    );
  }
  if (MAIN_PROCESSES > 1) {
    console.log(`  (first pair: median of ${MAIN_PROCESSES} processes, whose deltas were ${mainRuns.map((r) => r.delta.toFixed(1)).join(', ')} ns)`);
  }
  console.log(`  the sink's recorder alone (count + histogram): ${fmt(await recorderAlone())}`);
}

async function scrape(): Promise<void> {
  const registry = new Registry();
  const metrics = prometheusMetrics({ registry, maxPipelines: 100_000 });
  const pipelines = Array.from({ length: SCRAPE_PIPELINES }, (_, i) => fivePolicies(`dependency-${i}`));
  metrics.attach(...pipelines);
  for (const p of pipelines) for (let i = 0; i < 3; i++) await p.execute(work);
  const text = await registry.metrics();
  const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const results: { longestMs: number; totalMs: number }[] = [];
  for (let i = 0; i < SCRAPES; i++) results.push(await blockTime(() => registry.metrics()));
  const longest = median(results.map((r) => r.longestMs));
  const total = median(results.map((r) => r.totalMs));
  const worst = Math.max(...results.map((r) => r.longestMs));
  console.log(`\nScrape of ${SCRAPE_PIPELINES} pipelines (5 policies each; ${series} series, ${(text.length / 1024).toFixed(0)} KB), ${SCRAPES} scrapes:`);
  console.log(`  longest event-loop block: median ${longest.toFixed(1)} ms, worst ${worst.toFixed(1)} ms`);
  console.log(`  registry.metrics() total: median ${total.toFixed(1)} ms`);

  // For scale: prom-client's own Counter and Histogram holding the same series.
  const native = new Registry();
  const calls = new Counter({ name: 'native_calls_total', help: 'h', labelNames: ['pipeline', 'outcome'], registers: [native] });
  const durations = new Histogram({ name: 'native_call_duration_seconds', help: 'h', labelNames: ['pipeline', 'outcome'], registers: [native] });
  const state = new Gauge({ name: 'native_circuit_state', help: 'h', labelNames: ['pipeline', 'state'], registers: [native] });
  const transitions = new Counter({ name: 'native_circuit_transitions_total', help: 'h', labelNames: ['pipeline', 'to'], registers: [native] });
  const singles = ['bulkhead_active', 'bulkhead_queued', 'bulkhead_rejections_total', 'retries_total', 'retry_budget_exhausted_total', 'timeouts_total', 'fallbacks_total'].map(
    (name) => new Gauge({ name: `native_${name}`, help: 'h', labelNames: ['pipeline'], registers: [native] }),
  );
  for (let i = 0; i < SCRAPE_PIPELINES; i++) {
    const pipeline = `dependency-${i}`;
    for (const outcome of ['success', 'failure', 'timeout', 'fallback', 'cancelled', 'rejected']) calls.inc({ pipeline, outcome }, 0);
    for (const outcome of ['success', 'failure', 'timeout', 'fallback', 'cancelled']) durations.zero({ pipeline, outcome });
    for (const s of ['closed', 'open', 'half_open', 'isolated']) {
      state.set({ pipeline, state: s }, 0);
      transitions.inc({ pipeline, to: s }, 0);
    }
    for (const g of singles) g.set({ pipeline }, 0);
  }
  const nativeText = await native.metrics();
  const nativeSeries = nativeText.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const nativeResults: { longestMs: number; totalMs: number }[] = [];
  for (let i = 0; i < SCRAPES; i++) nativeResults.push(await blockTime(() => native.metrics()));
  console.log(`  for scale, prom-client's own Counter/Gauge/Histogram with the same ${nativeSeries} series:`);
  console.log(
    `  longest event-loop block: median ${median(nativeResults.map((r) => r.longestMs)).toFixed(1)} ms; ` +
      `registry.metrics() total: median ${median(nativeResults.map((r) => r.totalMs)).toFixed(1)} ms`,
  );
}

const pairArg = process.argv.find((a) => a.startsWith('--pair='));
if (pairArg !== undefined) {
  // A child measuring one pair: one JSON line on stdout.
  const pair = PAIRS[Number(pairArg.slice('--pair='.length))];
  if (pair === undefined) throw new Error(`unknown ${pairArg}`);
  console.log(JSON.stringify(await measurePair(pair.build())));
} else {
  console.log(`breakwater/prometheus overhead${quick ? ' (quick)' : ''}`);
  console.log(`Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GB`);
  if (!process.argv.includes('--scrape-only')) await successPath();
  await scrape();
}

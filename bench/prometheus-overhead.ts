/**
 * What breakwater/prometheus costs:
 * 1. the success path of a five-policy pipeline with metrics on versus off,
 *    side by side in one run (mitata, median of rounds, order rotated per round);
 * 2. how long one scrape of 1,000 attached pipelines blocks the event loop.
 *
 *   npx node bench/prometheus-overhead.ts            # full run
 *   npx node bench/prometheus-overhead.ts --quick    # a smoke run
 *   options: --rounds=N (success-path rounds, default 15), --scrape-only
 *
 * Figures go to docs/metrics.md by hand, with the machine they came from.
 */
import { cpus, totalmem } from 'node:os';
import { measure } from 'mitata';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { bulkhead, circuitBreaker, fallback, type Pipeline, pipeline, retry, timeout } from '../src/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';

const quick = process.argv.includes('--quick');
const roundsArg = process.argv.find((a) => a.startsWith('--rounds='));
const ROUNDS = roundsArg !== undefined ? Number(roundsArg.slice('--rounds='.length)) : quick ? 3 : 15;
const MITATA = quick ? { min_cpu_time: 50e6, min_samples: 8 } : { min_cpu_time: 200e6, min_samples: 20 };
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

async function successPath(): Promise<void> {
  const registry = new Registry();
  const metrics = prometheusMetrics({ registry });
  const off = fivePolicies('five-off');
  const on = fivePolicies('five-on');
  metrics.attach(on);
  const timed = fivePolicies('five-timed');
  timed.onSettled(() => {}); // the pipeline times its calls for any onSettled listener
  const emptyOff = pipeline({ name: 'empty-off' });
  const emptyOn = pipeline({ name: 'empty-on' });
  metrics.attach(emptyOn);
  const emptyTimed = pipeline({ name: 'empty-timed' });
  emptyTimed.onSettled(() => {});

  type Pair = { label: string; off: () => Promise<unknown>; on: () => Promise<unknown> };
  const pairs: Pair[] = [
    { label: '5 policies: metrics on vs off', off: () => off.execute(work), on: () => on.execute(work) },
    { label: 'empty pipeline: metrics on vs off', off: () => emptyOff.execute(work), on: () => emptyOn.execute(work) },
    { label: '5 policies: no-op onSettled listener vs none', off: () => off.execute(work), on: () => timed.execute(work) },
    { label: 'empty pipeline: no-op onSettled listener vs none', off: () => emptyOff.execute(work), on: () => emptyTimed.execute(work) },
  ];
  for (const pair of pairs) {
    if ((await pair.off()) !== 42 || (await pair.on()) !== 42) throw new Error(`${pair.label}: a call did not resolve with 42`);
  }
  const bare: number[] = [];
  const results = pairs.map(() => ({ off: [] as number[], on: [] as number[], delta: [] as number[] }));
  for (let round = 0; round < ROUNDS; round++) {
    bare.push((await measure(work, MITATA)).p50);
    for (const [i, pair] of pairs.entries()) {
      // Side by side, in alternating order: each round gives one paired difference.
      const first = round % 2 === 0 ? pair.off : pair.on;
      const second = round % 2 === 0 ? pair.on : pair.off;
      const a = (await measure(first, MITATA)).p50;
      const b = (await measure(second, MITATA)).p50;
      const [offNs, onNs] = round % 2 === 0 ? [a, b] : [b, a];
      results[i]!.off.push(offNs);
      results[i]!.on.push(onNs);
      results[i]!.delta.push(onNs - offNs);
    }
  }
  console.log(`\nSuccess path (ns per call; median over ${ROUNDS} rounds of mitata's median; delta = median of paired differences):`);
  console.log(`  bare async call: ${fmt(median(bare))}`);
  for (const [i, pair] of pairs.entries()) {
    const r = results[i]!;
    const sorted = [...r.delta].sort((x, y) => x - y);
    const q1 = sorted[Math.floor((sorted.length - 1) / 4)]!;
    const q3 = sorted[Math.ceil(((sorted.length - 1) * 3) / 4)]!;
    console.log(
      `  ${pair.label.padEnd(50)} off ${fmt(median(r.off)).padStart(9)}  on ${fmt(median(r.on)).padStart(9)}  ` +
        `delta ${fmt(median(r.delta)).padStart(8)} (IQR ${fmt(q1)} .. ${fmt(q3)})`,
    );
  }

  // The sink's own share: its onSettled listener, called directly.
  const listenerRegistry = new Registry();
  const probe = pipeline({ name: 'listener-probe' });
  let listener: ((event: { outcome: 'success'; durationMs: number; error: undefined }) => void) | undefined;
  const original = probe.onSettled;
  Object.defineProperty(probe, 'onSettled', {
    value: (l: typeof listener) => {
      listener = l;
      return original(l as never);
    },
  });
  prometheusMetrics({ registry: listenerRegistry }).attach(probe);
  const event = { outcome: 'success' as const, durationMs: 0.4, error: undefined };
  const own = median(
    [(await measure(() => listener!(event), MITATA)).p50, (await measure(() => listener!(event), MITATA)).p50, (await measure(() => listener!(event), MITATA)).p50],
  );
  console.log(`  the sink's onSettled listener alone (count + histogram): ${fmt(own)}`);
  const snapshot = await registry.metrics();
  if (!snapshot.includes('breakwater_calls_total{pipeline="five-on",outcome="success"}')) throw new Error('metrics were not recorded');
}

/** Longest gap between event-loop turns while `task` runs, and its total duration, in ms. */
async function blockTime(task: () => Promise<unknown>): Promise<{ longestMs: number; totalMs: number }> {
  let longest = 0;
  let last = performance.now();
  let running = true;
  const probe = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(probe);
  };
  setImmediate(probe);
  await new Promise((resolve) => setImmediate(resolve));
  last = performance.now();
  const started = performance.now();
  await task();
  const totalMs = performance.now() - started;
  const now = performance.now();
  longest = Math.max(longest, now - last);
  running = false;
  return { longestMs: longest, totalMs };
}

async function scrape(): Promise<void> {
  const registry = new Registry();
  const metrics = prometheusMetrics({ registry });
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

console.log(`breakwater/prometheus overhead${quick ? ' (quick)' : ''}`);
console.log(`Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GB`);
if (!process.argv.includes('--scrape-only')) await successPath();
await scrape();

/**
 * Where breakwater/prometheus spends its time on the duration histogram, and
 * what the alternatives would cost, side by side in one run (docs/design.md
 * quotes these figures):
 * 1. per call: the sink's recorder (a Float64Array) against prom-client's own
 *    `histogram.labels(...).observe()`, `histogram.observe(labels, v)` and a
 *    counter child's `inc()`, which a sink calling prom-client per call would pay;
 * 2. per scrape: what replaying the calls recorded since the last scrape costs,
 *    per call, and the longest event-loop block while a large backlog is replayed.
 *
 *   npx node bench/prometheus-histogram.ts
 *   npx node bench/prometheus-histogram.ts --quick    # a smoke run
 */
import { cpus } from 'node:os';
import { bench, do_not_optimize, run, summary } from 'mitata';
import { Counter, Histogram, Registry } from 'prom-client';
import { pipeline } from '../src/index.ts';
import { SettledRecorder } from '../src/prometheus/families.ts';
import { DEFAULT_BUCKETS_SECONDS, prometheusMetrics } from '../src/prometheus/index.ts';
import { blockTime, median } from './lib/measure.ts';

const quick = process.argv.includes('--quick');
const BACKLOG = quick ? 20_000 : 200_000;
const REPEATS = quick ? 3 : 9;

// Durations spread over the default buckets, in ms.
const DURATIONS = Array.from({ length: 1_024 }, (_, i) => (i * 7.3) % 900);
let n = 0;
const nextMs = (): number => DURATIONS[n++ & 1_023]!;

async function perCall(): Promise<void> {
  // The class the sink hands each attached pipeline, over an array of the layout it uses.
  const recorder = new SettledRecorder(new Float64Array(256), Float64Array.from(DEFAULT_BUCKETS_SECONDS));
  const native = new Registry();
  const labels = Object.freeze({ pipeline: 'hot', outcome: 'success' });
  const histogram = new Histogram({
    name: 'h_seconds',
    help: 'h',
    labelNames: ['pipeline', 'outcome'],
    buckets: [...DEFAULT_BUCKETS_SECONDS],
    registers: [native],
  });
  const counter = new Counter({ name: 'c_total', help: 'c', labelNames: ['pipeline', 'outcome'], registers: [native] });
  const histogramChild = histogram.labels(labels);
  const counterChild = counter.labels(labels);
  console.log('\n1. Per call, side by side (mitata, one process):');
  summary(() => {
    bench("the sink's recorder (count + histogram bucket + sum in a Float64Array)", () => recorder.record('success', nextMs()));
    bench('prom-client: cached histogram child, observe(seconds)', () => histogramChild.observe(nextMs() / 1000));
    bench('prom-client: histogram.observe(labels, seconds)', () => histogram.observe(labels, nextMs() / 1000));
    bench('prom-client: cached counter child, inc()', () => counterChild.inc());
    bench('prom-client per call: counter child inc() + histogram child observe()', () => {
      counterChild.inc();
      histogramChild.observe(nextMs() / 1000);
    });
  });
  await run({ throw: true });
  do_not_optimize(n);
}

async function perScrape(): Promise<void> {
  // One attached pipeline on a clock the work moves: each call lasts the next duration.
  let now = 0;
  const clock = { now: () => now, schedule: () => undefined, cancel: () => {} };
  const busy = pipeline({ name: 'busy', clock });
  const registry = new Registry();
  prometheusMetrics({ registry }).attach(busy);
  const work = (): Promise<number> => {
    now += nextMs();
    return Promise.resolve(42);
  };
  await registry.metrics();
  const empty: number[] = [];
  const full: number[] = [];
  const blocks: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    empty.push((await blockTime(() => registry.metrics())).totalMs);
    for (let i = 0; i < BACKLOG; i++) await busy.execute(work);
    const t = await blockTime(() => registry.metrics());
    full.push(t.totalMs);
    blocks.push(t.longestMs);
  }
  const perCallNs = ((median(full) - median(empty)) * 1e6) / BACKLOG;
  console.log(`\n2. Per scrape, one pipeline, ${BACKLOG.toLocaleString('en')} calls recorded since the last scrape (median of ${REPEATS}):`);
  console.log(`  scrape with no backlog: ${median(empty).toFixed(2)} ms; with the backlog: ${median(full).toFixed(1)} ms`);
  console.log(`  replay: ${perCallNs.toFixed(0)} ns per call since the last scrape`);
  console.log(`  longest event-loop block during that scrape: ${median(blocks).toFixed(1)} ms (worst ${Math.max(...blocks).toFixed(1)} ms)`);
}

console.log(`breakwater/prometheus: the duration histogram${quick ? ' (quick)' : ''}`);
console.log(`Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`);
await perCall();
await perScrape();

/**
 * Timing helpers on top of mitata's `measure`: one profile for the full run and
 * one for the quick smoke test, and a bounded sampler for scenarios whose state
 * changes with every call (a breaker's window fills as it is measured).
 */
import { measure } from 'mitata';

/** How long and how often each scenario is measured. */
export interface Profile {
  /** 'full' for `npm run bench`, 'quick' for `npm run bench:quick`. */
  readonly name: 'full' | 'quick';
  /** Rounds of the whole success/failure lists; each figure is the median over rounds. */
  readonly rounds: number;
  /** Warm-up per success-path subject before the measured rounds, in ms. */
  readonly warmupMs: number;
  /** mitata options for one measurement of a per-call figure. */
  readonly mitata: Readonly<Record<string, number>>;
  /** Bounded sampler: samples and calls per sample (breaker windows). */
  readonly windowSamples: number;
  readonly windowBatch: number;
  /** Memory and scale: repetitions per subject in its child process. */
  readonly reps: number;
  /** Instances for the memory and idle-timer scenarios. */
  readonly instances: number;
  /** Calls for the scale scenario. */
  readonly scaleCalls: number;
}

export const fullProfile: Profile = {
  name: 'full',
  rounds: 5,
  warmupMs: 100,
  mitata: { min_cpu_time: 150e6, min_samples: 12 },
  windowSamples: 25,
  windowBatch: 20,
  reps: 3,
  instances: 10_000,
  scaleCalls: 100_000,
};

export const quickProfile: Profile = {
  name: 'quick',
  rounds: 1,
  warmupMs: 0,
  mitata: { min_cpu_time: 2e6, min_samples: 4, batch_samples: 128, warmup_samples: 1 },
  windowSamples: 5,
  windowBatch: 4,
  reps: 1,
  instances: 5_000,
  scaleCalls: 20_000,
};

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Median ns per call of `fn` (awaited when it returns a promise), as mitata
 * measures it: batches of sequential calls, the median batch average.
 */
export async function nsPerCall(fn: () => unknown, profile: Profile): Promise<number> {
  const stats = await measure(fn, { ...profile.mitata });
  return stats.p50;
}

/** Calls in flight at once in the concurrent success-path figures. */
export const IN_FLIGHT = 100;

/**
 * Median ns per call of `fn` with {@link IN_FLIGHT} calls in flight: mitata
 * starts that many calls, awaits them all (Promise.all), and repeats.
 */
export async function nsPerCallConcurrent(fn: () => unknown, profile: Profile): Promise<number> {
  // A batch is `batch_samples` rounds of IN_FLIGHT calls: keep it small so a sample stays short.
  const batch = Math.max(4, Math.floor((profile.mitata['batch_samples'] ?? 4096) / IN_FLIGHT / 4) * 4);
  const stats = await measure(fn, { ...profile.mitata, concurrency: IN_FLIGHT, batch_samples: batch });
  return stats.p50 / IN_FLIGHT;
}

/**
 * Median ns per call over exactly `samples` batches of `batch` sequential awaited
 * calls (plus two warm-up calls): for a subject whose state grows with every
 * call, so the number of calls the measurement adds is known and small.
 */
export async function nsPerCallBounded(fn: () => unknown, samples: number, batch: number): Promise<number> {
  const stats = await measure(fn, {
    min_samples: samples,
    max_samples: samples,
    min_cpu_time: 0,
    batch_samples: batch,
    batch_unroll: 1,
    batch_threshold: Number.POSITIVE_INFINITY,
    warmup_threshold: Number.POSITIVE_INFINITY,
    warmup_samples: 1,
  });
  return stats.p50;
}

/** Calls made by {@link nsPerCallBounded} with these settings. */
export function boundedCalls(samples: number, batch: number): number {
  return samples * batch + 2;
}

/** Longest gap between event-loop turns while `task` runs, and its total duration, in ms. */
export async function blockTime(task: () => Promise<unknown>): Promise<{ longestMs: number; totalMs: number }> {
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

/**
 * Side by side in one process: checks that each subject's call resolves with
 * `expected`, then measures them in `rounds` rounds whose order rotates, and
 * returns each subject's median over rounds of mitata's p50, in ns.
 */
export async function rotatingRounds<K extends string>(
  subjects: Record<K, () => Promise<unknown>>,
  expected: unknown,
  rounds: number,
  options: { min_cpu_time: number; min_samples: number },
): Promise<Record<K, number>> {
  const names = Object.keys(subjects) as K[];
  for (const name of names) {
    const value = await subjects[name]();
    if (value !== expected) throw new Error(`${name}: a call resolved with ${String(value)}, not ${String(expected)}`);
  }
  const samples = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      samples[name].push((await measure(subjects[name], options)).p50);
    }
    process.stderr.write(`  round ${round + 1}/${rounds}\n`);
  }
  return Object.fromEntries(names.map((n) => [n, median(samples[n])])) as Record<K, number>;
}

/**
 * Child process for the memory, idle-timer and scale scenarios: each subject
 * runs in a fresh `node --expose-gc` so that heap figures are not skewed by the
 * rest of the run. Usage (run.ts does this):
 *
 *   node --expose-gc bench/child.ts memory <kind> <instances> <reps>
 *   node --expose-gc bench/child.ts timers <kind> <instances>
 *   node --expose-gc bench/child.ts scale  <subject> <calls> <reps>
 *
 * Prints one line `BENCH_RESULT <json>` and exits.
 */
import { createHook } from 'node:async_hooks';
import { instanceKinds, type Instance } from './subjects/instances.ts';
import { scaleSubjects } from './subjects/scale.ts';
import { median } from './lib/measure.ts';

const gc = globalThis.gc;
if (typeof gc !== 'function') throw new Error('bench/child.ts needs node --expose-gc');

function collect(): void {
  for (let i = 0; i < 4; i++) gc!();
}

function heapBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function createAll(kindId: string, count: number): Promise<{ held: (Instance | undefined)[]; shared: unknown }> {
  const kind = instanceKinds[kindId];
  if (kind === undefined) throw new Error(`unknown instance kind ${kindId}`);
  const shared = kind.setup?.();
  const held: (Instance | undefined)[] = new Array(count).fill(undefined);
  for (let i = 0; i < count; i++) {
    held[i] = await kind.create(i, shared);
  }
  return { held, shared };
}

function disposeAll(held: (Instance | undefined)[]): void {
  for (const h of held) h?.dispose?.();
}

/** Bytes retained per instance after forced GC, median over `reps`. */
async function memory(kindId: string, count: number, reps: number) {
  const perInstance: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    // Warm the code paths (and any module-level caches) before the baseline.
    const warm = await createAll(kindId, 10);
    disposeAll(warm.held);
    await immediate();
    collect();
    const before = heapBytes();
    const { held, shared } = await createAll(kindId, count);
    await immediate();
    collect();
    const after = heapBytes();
    perInstance.push((after - before) / count);
    if (held.length !== count || shared === null) throw new Error('unreachable');
    disposeAll(held);
    held.fill(undefined);
    await immediate();
    collect();
  }
  return { bytesPerInstance: median(perInstance), samples: perInstance };
}

/** Timers and handles alive with `count` idle instances (each made one call, now settled). */
async function timers(kindId: string, count: number) {
  const live = new Map<number, { hasRef?: () => boolean }>();
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (type === 'Timeout') live.set(asyncId, resource as { hasRef?: () => boolean });
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  });
  const referenced = (): number => [...live.values()].filter((t) => t.hasRef?.() !== false).length;
  const activeBefore = process.getActiveResourcesInfo().length;
  hook.enable();
  const { held } = await createAll(kindId, count);
  for (let i = 0; i < 3; i++) await immediate();
  const liveTimers = live.size;
  const refTimers = referenced();
  const activeHandles = process.getActiveResourcesInfo().length - activeBefore;
  disposeAll(held);
  for (let i = 0; i < 3; i++) await immediate();
  const refTimersAfterDispose = referenced();
  const liveTimersAfterDispose = live.size;
  hook.disable();
  return { liveTimers, refTimers, activeHandles, refTimersAfterDispose, liveTimersAfterDispose };
}

/** `calls` calls submitted at once; time to settle them all, peak heap, and how they settled. */
async function scale(subjectId: string, calls: number, reps: number) {
  const subject = scaleSubjects[subjectId];
  if (subject === undefined) throw new Error(`unknown scale subject ${subjectId}`);
  const runs: { ms: number; peakHeapBytes: number; settled: number; fulfilled: number }[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const call = subject.create(calls);
    collect();
    const base = process.memoryUsage().heapUsed;
    let peak = base;
    let settled = 0;
    let fulfilled = 0;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const onSettled = (): void => {
      if (++settled % 1_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
      if (settled === calls) finish();
    };
    const onFulfilled = (value: unknown): void => {
      if (value === 42) fulfilled++;
      onSettled();
    };
    const started = performance.now();
    for (let i = 0; i < calls; i++) (call() as Promise<unknown>).then(onFulfilled, onSettled);
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    await done;
    const ms = performance.now() - started;
    runs.push({ ms, peakHeapBytes: peak - base, settled, fulfilled });
    subject.dispose?.();
  }
  return {
    ms: median(runs.map((r) => r.ms)),
    peakHeapBytes: median(runs.map((r) => r.peakHeapBytes)),
    settled: Math.min(...runs.map((r) => r.settled)),
    fulfilled: Math.min(...runs.map((r) => r.fulfilled)),
    calls,
  };
}

const [mode, id, n, reps] = process.argv.slice(2);
const count = Number(n);
let result: unknown;
if (mode === 'memory') result = await memory(id!, count, Number(reps ?? 1));
else if (mode === 'timers') result = await timers(id!, count);
else if (mode === 'scale') result = await scale(id!, count, Number(reps ?? 1));
else throw new Error(`unknown mode ${mode}`);
process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);

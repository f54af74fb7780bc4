/**
 * The memory-leak demo on real worker processes (127.0.0.1): a leaking worker's
 * heap really grows on its own /metrics until V8 kills it at
 * --max-old-space-size, its supervisor starts it again, and the before run fails
 * the requests sent to it meanwhile; the after run restarts the leaking worker
 * while no request fails. Every worker process is gone afterwards, also when a
 * run fails part-way. Wall clock, kept short: a fast leak, 5 to 6 s of load.
 */
import { describe, expect, it } from 'vitest';
import { leakBytesPerRequest } from '../examples/memory-leak/model.ts';
import type { WorkerPool } from '../examples/memory-leak/pool.ts';
import { deathCounts, failedCount } from '../examples/memory-leak/report.ts';
import { type PhaseOptions, runPhase } from '../examples/memory-leak/scenario.ts';

const RATE = 40;
const MB = 2 ** 20;

/** Whether a process with this id still exists (signal 0 only checks). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `fillSeconds`: worker-1 gets a quarter of the requests, and its heap is full this long after the leak starts. */
function options(mode: 'before' | 'after', durationMs: number, fillSeconds: number, onPool: (pool: WorkerPool) => void): PhaseOptions {
  return {
    mode,
    transport: 'http',
    durationMs,
    ratePerSecond: RATE,
    workers: 4,
    leaky: [1],
    leakBytesPerRequest: leakBytesPerRequest(fillSeconds, RATE / 4),
    leakStartMs: 300,
    scrapeEveryMs: 0,
    onStarted: (_, pool) => onPool(pool),
  };
}

describe('memory-leak on real worker processes', () => {
  it('before: the leaking worker grows, V8 kills it at its heap limit, it is started again; requests sent to it meanwhile fail', async () => {
    let pool: WorkerPool | undefined;
    const result = await runPhase(options('before', 5_000, 1.5, (p) => (pool = p)));
    const death = result.deaths.find((d) => d.worker === 1 && d.cause === 'out-of-memory');
    expect(death, JSON.stringify(result.deaths)).toBeDefined();
    expect(result.deaths.every((d) => d.worker === 1)).toBe(true);
    // Its heap, read from its own /metrics, grew to most of the 64 MB before it died...
    const heapBefore = result.heap.filter((h) => h.atMs < death!.atMs).map((h) => h.bytes[1]).filter((b): b is number => b !== null);
    expect(Math.max(...heapBefore)).toBeGreaterThan(40 * MB);
    expect(heapBefore[0]!).toBeLessThan(25 * MB);
    // ...and it came back as a new process, its heap small again (it leaks again at once).
    const later = result.heap.filter((h) => h.atMs > death!.atMs && h.bytes[1] !== null);
    expect(later.length).toBeGreaterThan(0);
    expect(later[0]!.bytes[1]!).toBeLessThan(Math.max(...heapBefore) - 15 * MB);
    expect(pool!.pids.length).toBeGreaterThan(4);
    // The healthy workers stayed small.
    for (const w of [0, 2, 3]) expect(Math.max(...result.heap.map((h) => h.bytes[w] ?? 0))).toBeLessThan(30 * MB);
    expect(failedCount(result)).toBeGreaterThan(0);
    expect(Object.keys(result.counters.failures).every((m) => m.startsWith('worker 1:'))).toBe(true);
    for (const pid of pool!.pids) expect(alive(pid), `worker process ${pid}`).toBe(false);
  }, 30_000);

  it('after: the slowing worker is taken out of rotation and restarted, and no request fails', async () => {
    let pool: WorkerPool | undefined;
    const result = await runPhase(options('after', 6_000, 3, (p) => (pool = p)));
    expect(result.counters.transitions.some((t) => t.worker === 1 && t.to === 'open')).toBe(true);
    expect(result.counters.restarts.some((r) => r.worker === 1)).toBe(true);
    expect(result.deaths.some((d) => d.worker === 1 && d.cause === 'restarted')).toBe(true);
    expect(deathCounts(result).outOfMemory).toBe(0);
    expect(failedCount(result)).toBe(0);
    for (const pid of pool!.pids) expect(alive(pid), `worker process ${pid}`).toBe(false);
  }, 30_000);

  it('a run that fails part-way still stops every worker process', async () => {
    let pool: WorkerPool | undefined;
    await expect(
      runPhase(
        options('after', 5_000, 3, (p) => {
          pool = p;
          throw new Error('the demo broke');
        }),
      ),
    ).rejects.toThrow('the demo broke');
    expect(pool!.pids).toHaveLength(4);
    for (const pid of pool!.pids) expect(alive(pid), `worker process ${pid}`).toBe(false);
  }, 30_000);
});

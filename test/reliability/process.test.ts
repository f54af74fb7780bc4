/**
 * Leaks and process behaviour, each in a child process (fixtures/), so heap can
 * be measured after forced GC (--expose-gc) and exit can be observed:
 * - SOAK: a full pipeline, mixed outcomes, a long-lived caller signal; heap
 *   after GC grows by at most HEAP_GROWTH_BOUND_BYTES, the signal's listeners
 *   return to where they started, no MaxListenersExceeded warning, nothing left;
 * - LOAD: 100,000 calls at once through a bulkhead and a timeout all settle and
 *   the bulkhead bound holds throughout; peak memory is printed;
 * - EXIT: a process using every policy exits on its own; one awaiting a
 *   timeout, a retry sleep or a queue wait stays alive until it ends.
 *
 * `npm test` runs the soak at SOAK_CALLS (default 60,000); `npm run test:soak`
 * runs it with 1,000,000 (see soak.config.ts). docs/reliability.md has figures.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

/** Heap after forced GC may grow by at most this much over the soak (after warm-up). */
export const HEAP_GROWTH_BOUND_BYTES = 1024 * 1024;
const SOAK_CALLS = Number(process.env.SOAK_CALLS ?? 60_000);
const LOAD_CALLS = Number(process.env.LOAD_CALLS ?? 100_000);
const FULL = SOAK_CALLS >= 1_000_000;

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** ms from the fixture's last output to its exit. */
  readonly exitAfterOutputMs: number;
  readonly timedOut: boolean;
}

/** Runs a fixture with this Node (`process.execPath`); kills it after `limitMs`, or right after its output when `killAfterOutput`. */
function runFixture(
  file: string,
  args: readonly string[],
  options: { env?: Record<string, string>; limitMs: number; exposeGc?: boolean; killAfterOutput?: boolean },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const argv = [...(options.exposeGc ? ['--expose-gc'] : []), fixtures + file, ...args];
    const child = spawn(process.execPath, argv, { cwd: root, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let lastOutputAt = performance.now();
    let timedOut = false;
    const killer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.limitMs);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      lastOutputAt = performance.now();
      if (options.killAfterOutput && stdout.includes('\n')) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, exitAfterOutputMs: performance.now() - lastOutputAt, timedOut });
    });
  });
}

function lastJson<T>(finished: Finished): T {
  const line = finished.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`the fixture printed no JSON (exit ${String(finished.code)}, ${String(finished.signal)}):\n${finished.stdout}\n${finished.stderr}`);
  }
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

describe('soak', () => {
  interface Soak {
    calls: number;
    settled: number;
    outcomes: Record<string, number>;
    transitions: Record<string, number>;
    heapAtWarmupBytes: number;
    heapAtEndBytes: number;
    heapGrowthBytes: number;
    checkpoints: { calls: number; heapBytes: number }[];
    listenersAtStart: number;
    listenersAtEnd: number;
    maxListenersSeen: number;
    warnings: { name: string; message: string }[];
    unhandled: number;
    pendingTimers: number;
    bulkhead: { active: number; queued: number };
    wallMs: number;
  }

  it(
    `${SOAK_CALLS.toLocaleString('en')} calls through a full pipeline leak nothing`,
    async () => {
      const finished = await runFixture('soak.ts', [], { env: { SOAK_CALLS: String(SOAK_CALLS) }, exposeGc: true, limitMs: FULL ? 1_800_000 : 240_000 });
      const soak = lastJson<Soak>(finished);
      console.log(
        `soak: ${soak.calls} calls in ${soak.wallMs} ms; heap after GC ${mib(soak.heapAtWarmupBytes)} after warm-up, ` +
          `${mib(soak.heapAtEndBytes)} at the end (${soak.heapGrowthBytes} bytes); outcomes ${JSON.stringify(soak.outcomes)}; ` +
          `listeners on the long-lived signal ${soak.listenersAtStart} → ${soak.listenersAtEnd} (peak ${soak.maxListenersSeen})`,
      );
      expect(finished.code, finished.stderr).toBe(0);
      // Every call settled, and the metrics counted each exactly once.
      expect(soak.calls).toBe(SOAK_CALLS);
      expect(soak.settled).toBe(SOAK_CALLS);
      expect(Object.values(soak.outcomes).reduce((a, b) => a + b, 0)).toBe(SOAK_CALLS);
      for (const outcome of ['success', 'failure', 'timeout', 'fallback', 'cancelled', 'rejected']) {
        expect(soak.outcomes[outcome], `outcome ${outcome}`).toBeGreaterThan(SOAK_CALLS / 200);
      }
      expect(soak.transitions.open, 'the breaker opened during the outages').toBeGreaterThan(0);
      expect(soak.transitions.closed, 'and closed again').toBeGreaterThan(0);
      // No leak: bounded heap, the long-lived signal back to its listeners, nothing left behind.
      expect(soak.heapGrowthBytes).toBeLessThanOrEqual(HEAP_GROWTH_BOUND_BYTES);
      expect(soak.listenersAtEnd).toBe(soak.listenersAtStart);
      // Calls share one listener per signal (src/core/abort.ts), however many are in flight.
      expect(soak.maxListenersSeen, 'one shared listener on the long-lived signal').toBeLessThanOrEqual(soak.listenersAtStart + 1);
      expect(soak.warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
      expect(soak.unhandled).toBe(0);
      expect(soak.pendingTimers).toBe(0);
      expect(soak.bulkhead).toEqual({ active: 0, queued: 0 });
    },
    FULL ? 1_900_000 : 250_000,
  );
});

describe('load', () => {
  interface Load {
    calls: number;
    settled: number;
    fulfilled: number;
    timeout: number;
    rejected: number;
    other: number;
    maxConcurrent: number;
    maxQueue: number;
    maxRunning: number;
    maxActive: number;
    maxQueued: number;
    boundBroken: number;
    left: { active: number; queued: number; running: number; pendingTimers: number };
    wallMs: number;
    baselineHeapBytes: number;
    peakHeapBytes: number;
    peakRssBytes: number;
    heapWithAllPendingBytes: number;
    retainedPerPendingCallBytes: number;
  }

  it(
    `${LOAD_CALLS.toLocaleString('en')} concurrent calls through a bulkhead and a timeout all settle within the bound`,
    async () => {
      const finished = await runFixture('load.ts', [], { env: { LOAD_CALLS: String(LOAD_CALLS) }, exposeGc: true, limitMs: 240_000 });
      const load = lastJson<Load>(finished);
      console.log(
        `load: ${load.calls} calls in ${load.wallMs} ms: ${load.fulfilled} fulfilled, ${load.timeout} timed out, ${load.rejected} refused; ` +
          `max running ${load.maxRunning}/${load.maxConcurrent}, max queued ${load.maxQueued}/${load.maxQueue}; ` +
          `peak heap ${mib(load.peakHeapBytes)} (baseline ${mib(load.baselineHeapBytes)}), peak RSS ${mib(load.peakRssBytes)}, ` +
          `${load.retainedPerPendingCallBytes} bytes retained per call in flight`,
      );
      expect(finished.code, finished.stderr).toBe(0);
      expect(load.settled).toBe(LOAD_CALLS);
      expect(load.fulfilled + load.timeout + load.rejected).toBe(LOAD_CALLS);
      expect(load.other).toBe(0);
      expect(load.fulfilled).toBeGreaterThan(0);
      expect(load.timeout).toBeGreaterThan(0);
      expect(load.rejected).toBe(LOAD_CALLS - load.maxQueue - load.maxConcurrent);
      // The bound held throughout, and was reached.
      expect(load.boundBroken).toBe(0);
      expect(load.maxRunning).toBe(load.maxConcurrent);
      expect(load.maxActive).toBe(load.maxConcurrent);
      expect(load.maxQueued).toBeLessThanOrEqual(load.maxQueue);
      expect(load.left).toEqual({ active: 0, queued: 0, running: 0, pendingTimers: 0 });
      // Memory, loosely: a call in flight costs a few KB at most, all of it returned.
      expect(load.retainedPerPendingCallBytes).toBeLessThan(4_096);
      expect(load.peakRssBytes).toBeLessThan(2 * 1024 ** 3);
    },
    250_000,
  );
});

describe('process exit', () => {
  interface Exit {
    mode: string;
    seen: string[];
    resources: string[];
  }

  it.each(['breakwater', 'opossum'])('a process that used every policy (%s) exits on its own', async (mode) => {
    const finished = await runFixture('exit.ts', [mode], { limitMs: 60_000 });
    const exit = lastJson<Exit>(finished);
    console.log(`exit (${mode}): active resources before returning: ${JSON.stringify(exit.resources)}; exited ${Math.round(finished.exitAfterOutputMs)} ms after its last output`);
    expect(finished.timedOut, 'the process did not exit on its own').toBe(false);
    expect(finished.code, finished.stderr).toBe(0);
    expect(exit.resources.filter((r) => r === 'Timeout' || r === 'Immediate')).toEqual([]);
    expect(finished.exitAfterOutputMs).toBeLessThan(10_000);
    expect(exit.seen).toEqual(
      expect.arrayContaining([
        'timeout+retry',
        'breaker open',
        'while open: fallback',
        'probe: ok → closed',
        'bulkhead full',
        'aborted in queue',
        'queue-timeout',
        'aborted in backoff',
        'beat the timeout: fast',
        'left open',
        'budget exhausted',
      ]),
    );
    if (mode === 'opossum') expect(exit.seen).toContain('opossum left open');
  }, 70_000);

  it('(control) the check sees a timer left behind', async () => {
    const finished = await runFixture('exit.ts', ['leak'], { limitMs: 60_000, killAfterOutput: true });
    expect(lastJson<Exit>(finished).resources).toContain('Timeout');
  }, 70_000);

  it.each([
    ['timeout', 'TimeoutError'],
    ['backoff', 'attempt 2 succeeded'],
    ['queue-timeout', 'BulkheadRejectedError'],
  ])('a %s the caller awaits keeps the process alive until it ends', async (mode, expected) => {
    const finished = await runFixture('keep-alive.ts', [mode], { limitMs: 60_000 });
    expect(finished.code, finished.stderr).toBe(0);
    expect(lastJson<{ result: string }>(finished).result).toBe(expected);
  }, 70_000);

  it('(control) an awaited timer that does not hold the process makes it exit early, without output', async () => {
    const code = "await new Promise((resolve) => setTimeout(resolve, 300).unref()); console.log('printed');";
    const finished = await new Promise<Finished>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.on('close', (exitCode, signal) => resolve({ code: exitCode, signal, stdout, stderr: '', exitAfterOutputMs: 0, timedOut: false }));
    });
    expect(finished.stdout).toBe('');
    expect(finished.code).toBe(13); // unsettled top-level await
  }, 70_000);
});

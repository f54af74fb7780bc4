/**
 * The memory-leak demo's claims, for any leak: in memory, in virtual time on
 * FakeClock, the same API against modelled workers (examples/memory-leak/pool.ts).
 * For any leak rate (a leaking worker would fill its heap in 8 to 20 s at the
 * rate it gets), any set of leaking workers smaller than the pool and any
 * offered rate from 30 to 80 requests a second (below that, a 1 s window holds
 * too few requests for its p95 to mean much):
 * - after (Breakwater): the p95 of every 1 s window stays under the SLO, no
 *   request fails, and hedges stay within their budget;
 * - before (round-robin + retry): the same schedule breaks the SLO, which
 *   shows that the demo reproduces the degradation rather than assuming it.
 * And nothing is left behind: no referenced timer once a run is over.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leakBytesPerRequest } from '../examples/memory-leak/model.ts';
import { memoryPool } from '../examples/memory-leak/pool.ts';
import { failedCount, hedgeLoad, SLO_MS, worstWindow } from '../examples/memory-leak/report.ts';
import { type PhaseResult, runPhase } from '../examples/memory-leak/scenario.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';

const WORKERS = 4;
const DURATION_MS = 20_000;
const LEAK_START_MS = 2_000;

interface Schedule {
  readonly rate: number;
  readonly leaky: number[];
  readonly secondsToLimit: number;
  readonly seed: number;
}

const schedules = fc.record({
  rate: fc.integer({ min: 30, max: 80 }),
  leaky: fc.uniqueArray(fc.integer({ min: 0, max: WORKERS - 1 }), { minLength: 1, maxLength: WORKERS - 1 }),
  secondsToLimit: fc.double({ min: 8, max: 20, noNaN: true }),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
});

async function run(mode: 'before' | 'after', s: Schedule): Promise<{ result: PhaseResult; clock: FakeClock }> {
  const clock = new FakeClock();
  const result = await runPhase({
    mode,
    transport: 'memory',
    clock,
    random: seededRandom(s.seed),
    durationMs: DURATION_MS,
    ratePerSecond: s.rate,
    workers: WORKERS,
    leaky: s.leaky,
    leakBytesPerRequest: leakBytesPerRequest(s.secondsToLimit, s.rate / WORKERS),
    leakStartMs: LEAK_START_MS,
    scrapeEveryMs: 0,
  });
  return { result, clock };
}

describe('memory-leak: the demo reproduces the degradation, and Breakwater contains it', () => {
  it(`after: every window's p95 under ${SLO_MS} ms, no failed request, hedges within budget; before: the SLO breaks`, async () => {
    await fc.assert(
      fc.asyncProperty(schedules, async (s) => {
        const after = await run('after', s);
        const worstAfter = worstWindow(after.result.records, DURATION_MS).stats;
        expect(worstAfter.p95Ms).toBeLessThan(SLO_MS);
        expect(failedCount(after.result)).toBe(0);
        const load = hedgeLoad(after.result);
        expect(load.hedges).toBeLessThanOrEqual(load.bound);
        expect(after.result.counters.hedges).toBeGreaterThan(0); // the hedge did take part
        expect(after.clock.pendingTimers).toBe(0);

        const before = await run('before', s);
        const worstBefore = worstWindow(before.result.records, DURATION_MS).stats;
        expect(worstBefore.p95Ms).toBeGreaterThan(SLO_MS);
        expect(before.clock.pendingTimers).toBe(0);
      }),
      { numRuns: 12 },
    );
  }, 120_000);

  it('a modelled worker dies at its heap limit, fails what it had in flight, and comes back with a fresh heap', async () => {
    const clock = new FakeClock();
    const pool = memoryPool({ size: 2, leak: { leaky: [1], bytesPerRequest: 10 * 2 ** 20 }, clock, elapsedMs: () => clock.now(), random: seededRandom(3) });
    await pool.start();
    pool.startLeak();
    const first = pool.call(1);
    const outcome = first.then(
      () => 'answered',
      (error: Error) => error.name,
    );
    const heaps: (number | undefined)[] = [];
    // 12 MB at the start, 10 MB a request: the sixth request finds the heap full.
    for (let i = 0; i < 4; i++) {
      heaps.push(await pool.heapBytes(1));
      void pool.call(1).catch(() => {});
    }
    expect(heaps).toEqual([...heaps].sort((a, b) => a! - b!)); // it only grew
    await expect(pool.call(1)).rejects.toThrow(/connection reset/);
    expect(await outcome).toBe('WorkerDownError');
    expect(pool.deaths).toEqual([{ worker: 1, atMs: 0, cause: 'out-of-memory' }]);
    expect(await pool.heapBytes(1)).toBeUndefined();
    await expect(pool.call(1)).rejects.toThrow(/not running/);
    await clock.advance(800); // the supervisor's delay and the start
    expect(await pool.heapBytes(1)).toBe(12 * 2 ** 20);
    expect(await pool.heapBytes(0)).toBe(12 * 2 ** 20); // the healthy one never grew
    await pool.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

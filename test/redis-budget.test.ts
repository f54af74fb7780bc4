/**
 * The fleet-wide retry budget against a real redis-server, several replicas on their
 * own connections, in virtual time: the fleet's retries stay within ratio × the
 * fleet's first attempts plus one floor for the whole fleet.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hedge, pipeline, retry } from '../src/index.ts';
import { type FleetRetryBudget, fleetRetryBudget, redisFleet, type RedisFleet } from '../src/redis/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { RedisProcess, redisServerPath, settle } from './redis-helpers.ts';

const SERVER = redisServerPath();
let redis: RedisProcess;
const connections: Redis[] = [];
let prefixes = 0;

async function replicas(n: number, clock: FakeClock, options: { ratio: number; minPerSecond: number; windowMs: number }, syncIntervalMs: number) {
  const prefix = `budget-${++prefixes}`;
  const fleets: RedisFleet[] = [];
  const budgets: FleetRetryBudget[] = [];
  for (let i = 0; i < n; i++) {
    const connection = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
    await connection.connect();
    connections.push(connection);
    const fleet = redisFleet({ redis: connection, prefix, replicaId: `r${i}`, clock, sharedNow: () => clock.now(), syncIntervalMs });
    fleets.push(fleet);
    budgets.push(fleetRetryBudget(fleet, { name: 'auth', ...options }));
  }
  await settle(clock, fleets, 0);
  return { fleets, budgets, close: () => Promise.all(fleets.map((f) => f.close())) };
}

describe.skipIf(SERVER === undefined)('fleetRetryBudget on a real Redis', () => {
  beforeAll(async () => {
    redis = await RedisProcess.start(SERVER!);
  });
  afterAll(async () => {
    await Promise.allSettled(connections.map((c) => c.quit()));
    await redis?.stop();
  });

  it('one floor for the fleet: ten quiet replicas retry a dependency that is down at the fleet floor, not ten times it', async () => {
    const clock = new FakeClock(2_000_000);
    const fleet = await replicas(10, clock, { ratio: 0, minPerSecond: 2, windowMs: 10_000 }, 250);
    let granted = 0;
    // 30 s of every replica asking for a retry every 50 ms: the floor is 2 a second for the fleet.
    for (let t = 0; t < 30_000; t += 50) {
      for (const budget of fleet.budgets) if (budget.tryRetry()) granted++;
      await settle(clock, fleet.fleets, 50);
    }
    expect(fleet.budgets.every((b) => b.deciding === 'fleet')).toBe(true);
    // 20 per 10 s window, 3 windows (+ one window's worth for the edges); ten local budgets would have allowed 600.
    expect(granted).toBeGreaterThanOrEqual(40);
    expect(granted).toBeLessThanOrEqual(80);
    await fleet.close();
  });

  it('retry() and hedge() draw from it like from a local budget', async () => {
    const clock = new FakeClock(3_000_000);
    const fleet = await replicas(2, clock, { ratio: 0, minPerSecond: 0.1, windowMs: 10_000 }, 250);
    const budget = fleet.budgets[0]!;
    expect(budget.leased).toBe(1); // the floor (1 per window) went to the first to ask
    let calls = 0;
    const failing = pipeline(retry({ maxAttempts: 3, budget, backoff: { delayMs: () => 0 }, clock }));
    await expect(failing.execute(() => Promise.reject(new Error(`down ${++calls}`)))).rejects.toThrow('down 2');
    expect(calls).toBe(2); // one retry, then the budget said no
    await fleet.close();
  });

  it('hedge() draws its hedges from it: one hedge while the lease lasts, then the budget says no', async () => {
    const clock = new FakeClock(3_500_000);
    const fleet = await replicas(1, clock, { ratio: 0, minPerSecond: 0.1, windowMs: 10_000 }, 250);
    const budget = fleet.budgets[0]!;
    expect(budget.leased).toBe(1);
    const hedged = hedge({ delayMs: 10, budget, clock });
    let hedges = 0;
    let refused = 0;
    hedged.onHedge(() => hedges++);
    hedged.onBudgetExhausted(() => refused++);
    const slow = () => new Promise<string>((resolve) => clock.schedule(() => resolve('slow'), 50));
    const first = pipeline(hedged).execute(slow);
    await clock.advance(60);
    expect(await first).toBe('slow');
    expect([hedges, refused]).toEqual([1, 0]);
    const second = pipeline(hedged).execute(slow);
    await clock.advance(60);
    expect(await second).toBe('slow');
    expect([hedges, refused]).toEqual([1, 1]);
    await fleet.close();
  });

  it('property: at every grant, the fleet retries in the window stay within ratio × fleet first attempts + one floor', async () => {
    const windowMs = 1_000;
    const bucketMs = windowMs / 10;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 4 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 20 }),
        fc.array(fc.tuple(fc.nat(3), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 300 })), { minLength: 1, maxLength: 30 }),
        async (n, ratio, minPerSecond, steps) => {
          const clock = new FakeClock(9_000_000);
          const fleet = await replicas(n, clock, { ratio, minPerSecond, windowMs }, bucketMs);
          const firsts: number[] = [];
          const retries: number[] = [];
          const floor = (minPerSecond * windowMs) / 1000;
          const inWindow = (times: number[], bucket: number) => times.filter((t) => Math.floor(t / bucketMs) > bucket - 10).length;
          try {
            for (const [replica, calls, asks, advanceMs] of steps) {
              const budget = fleet.budgets[replica % n]!;
              for (let i = 0; i < calls; i++) {
                budget.recordFirstAttempt();
                firsts.push(clock.now());
              }
              for (let i = 0; i < asks; i++) {
                if (!budget.tryRetry()) continue;
                retries.push(clock.now());
                const bucket = Math.floor(clock.now() / bucketMs);
                expect(inWindow(retries, bucket)).toBeLessThanOrEqual(ratio * inWindow(firsts, bucket) + floor + 1e-9);
              }
              await settle(clock, fleet.fleets, advanceMs);
            }
            expect(fleet.budgets.every((b) => b.deciding === 'fleet')).toBe(true);
          } finally {
            await fleet.close();
          }
        },
      ),
      { numRuns: 30 },
    );
  });
});

/**
 * The fleet-wide rate limiter against a real redis-server: several replicas (fleets
 * on their own connections, ioredis and node-redis) share one Redis; time is virtual
 * (a FakeClock drives the replicas and is the shared time sent to the scripts).
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRateLimitedError, pipeline } from '../src/index.ts';
import { fleetRateLimiter, type FleetRateLimiterPolicy, redisFleet, type RedisFleet } from '../src/redis/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { RedisProcess, redisServerPath, settle } from './redis-helpers.ts';

const SERVER = redisServerPath();
let redis: RedisProcess;
const connections: { quit(): Promise<unknown> }[] = [];
let prefixes = 0;

async function ioredis(): Promise<Redis> {
  const client = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  connections.push(client);
  return client;
}

async function nodeRedis() {
  const client = createClient({ socket: { port: redis.port, host: '127.0.0.1' } });
  client.on('error', () => {});
  await client.connect();
  connections.push({ quit: () => client.quit() });
  return client;
}

/** `n` replicas of one limit, on their own connections (the last one through node-redis), in virtual time. */
async function replicas(n: number, clock: FakeClock, limit: { ratePerSecond: number; burst: number; leaseSize: number }) {
  const prefix = `limiter-${++prefixes}`;
  const fleets: RedisFleet[] = [];
  const limiters: FleetRateLimiterPolicy[] = [];
  for (let i = 0; i < n; i++) {
    const connection = i === n - 1 && n > 1 ? await nodeRedis() : await ioredis();
    const fleet = redisFleet({ redis: connection, prefix, replicaId: `r${i}`, clock, sharedNow: () => clock.now(), syncIntervalMs: 1_000 });
    fleets.push(fleet);
    limiters.push(fleetRateLimiter(fleet, { name: 'partner-api', ...limit }));
  }
  // The first sync of each: every replica holds a lease and knows the others.
  clockOf.set(fleets, clock);
  await settle(clock, fleets, 0);
  // A second round, so that every replica knows how many share the limit.
  for (const limiter of limiters) await limiter.sync();
  return { fleets, limiters, close: () => Promise.all(fleets.map((f) => f.close())) };
}

const idle = (fleets: RedisFleet[]) => settle(clockOf.get(fleets)!, fleets, 0);
const clockOf = new WeakMap<RedisFleet[], FakeClock>();

describe.skipIf(SERVER === undefined)('fleetRateLimiter on a real Redis', () => {
  beforeAll(async () => {
    redis = await RedisProcess.start(SERVER!);
  });
  afterAll(async () => {
    await Promise.allSettled(connections.map((c) => c.quit()));
    await redis?.stop();
  });

  it('one limit for the fleet: four replicas together admit the burst, then the rate, and refuse the rest saying when to come back', async () => {
    const clock = new FakeClock(1_000_000);
    const fleet = await replicas(4, clock, { ratePerSecond: 20, burst: 20, leaseSize: 2 });
    expect(fleet.limiters.map((l) => l.deciding)).toEqual(['fleet', 'fleet', 'fleet', 'fleet']);
    expect(Math.max(...fleet.limiters.map((l) => l.replicas))).toBe(4); // the last to sync saw them all
    let admitted = 0;
    let refused: unknown;
    // 40 calls spread over the replicas in the same instant: at most the burst gets through.
    for (let i = 0; i < 40; i++) {
      const limiter = fleet.limiters[i % 4]!;
      await pipeline(limiter)
        .execute(() => admitted++)
        .catch((error: unknown) => (refused = error));
      await idle(fleet.fleets);
    }
    expect(admitted).toBe(20);
    expect(isRateLimitedError(refused)).toBe(true);
    expect((refused as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    // A second later the fleet has earned 20 more tokens.
    await settle(clock, fleet.fleets, 1_000);
    let later = 0;
    for (let i = 0; i < 40; i++) {
      await fleet.limiters[i % 4]!.execute(() => later++).catch(() => {});
      await idle(fleet.fleets);
    }
    expect(later).toBe(20);
    expect(fleet.limiters.every((l) => l.deciding === 'fleet')).toBe(true);
    await fleet.close();
  });

  it('property: in every window the fleet admits at most burst + rate × window + replicas × (leaseSize + their share of the burst)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.tuple(fc.nat(3), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 400 })), { minLength: 1, maxLength: 25 }),
        async (n, ratePerSecond, leaseSize, steps) => {
          const clock = new FakeClock(5_000_000);
          const burst = Math.max(leaseSize, Math.floor(ratePerSecond / 2));
          const fleet = await replicas(n, clock, { ratePerSecond, burst, leaseSize });
          const admittedAt: number[] = [];
          try {
            for (const [replica, calls, advanceMs] of steps) {
              const limiter = fleet.limiters[replica % n]!;
              // A batch of calls in one instant, without waiting for Redis in between.
              const batch = Array.from({ length: calls }, () => limiter.execute(() => admittedAt.push(clock.now())).catch(() => {}));
              await Promise.all(batch);
              await settle(clock, fleet.fleets, advanceMs);
            }
            expect(fleet.limiters.every((l) => l.deciding === 'fleet')).toBe(true);
            const slack = n * (leaseSize + Math.max(1, Math.floor(burst / n)));
            for (let i = 0; i < admittedAt.length; i++) {
              for (let j = i; j < admittedAt.length; j++) {
                const windowMs = admittedAt[j]! - admittedAt[i]!;
                expect(j - i + 1).toBeLessThanOrEqual(burst + (ratePerSecond * windowMs) / 1000 + slack);
              }
            }
          } finally {
            await fleet.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});

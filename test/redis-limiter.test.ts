/**
 * The fleet-wide rate limiter against a real redis-server: several replicas (fleets
 * on their own connections, ioredis and node-redis) share one Redis; time is virtual
 * (a FakeClock drives the replicas and is the shared time sent to the scripts).
 */
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRateLimitedError, pipeline } from '../src/index.ts';
import { fleetRateLimiter, type FleetRateLimiterOptions, type FleetRateLimiterPolicy, redisFleet, type RedisFleet } from '../src/redis/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { track } from './helpers.ts';
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
async function replicas(n: number, clock: FakeClock, limit: Omit<FleetRateLimiterOptions, 'name'>) {
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

/** In every window the fleet admitted at most burst + rate × window + replicas × (leaseSize + their share of the burst). */
function expectWithinFleetLimit(admittedAt: readonly number[], n: number, { ratePerSecond, burst, leaseSize }: { ratePerSecond: number; burst: number; leaseSize: number }): void {
  const slack = n * (leaseSize + Math.max(1, Math.floor(burst / n)));
  for (let i = 0; i < admittedAt.length; i++) {
    for (let j = i; j < admittedAt.length; j++) {
      const windowMs = admittedAt[j]! - admittedAt[i]!;
      expect(j - i + 1).toBeLessThanOrEqual(burst + (ratePerSecond * windowMs) / 1000 + slack);
    }
  }
}

/** Lets the promise reactions of this instant run (no time passes, no Redis reply is awaited). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
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
            expectWithinFleetLimit(admittedAt, n, { ratePerSecond, burst, leaseSize });
          } finally {
            await fleet.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('calls over the limit wait for a token from this replica, in order; the queue bound holds; close() refuses the waiters and leaves no timer', async () => {
    const clock = new FakeClock(2_000_000);
    const fleet = await replicas(2, clock, { ratePerSecond: 10, burst: 2, leaseSize: 1, maxQueue: 3 });
    const limiter = fleet.limiters[0]!;
    const waited: number[] = [];
    limiter.onAdmit(({ waitedMs }) => waited.push(waitedMs));
    const order: number[] = [];
    // The lease's token and one admitted ahead of the next lease go at once; three wait; the sixth is refused.
    const calls = [1, 2, 3, 4, 5, 6].map((n) => track(limiter.execute(() => order.push(n))));
    await Promise.resolve();
    expect(limiter.queued).toBe(3);
    expect(calls[5]!.error).toMatchObject({ code: 'ERR_BREAKWATER_RATE_LIMITED' });
    expect((calls[5]!.error as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    await settle(clock, fleet.fleets, 2_000);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(limiter.queued).toBe(0);
    expect(waited.filter((ms) => ms > 0)).toHaveLength(3);
    expect(limiter.deciding).toBe('fleet');
    // A waiter when the fleet closes is refused with the limiter's error, and nothing is left behind.
    for (let i = 0; i < 100 && limiter.queued === 0; i++) track(limiter.execute(() => {}));
    expect(limiter.queued).toBe(1);
    const waiting = track(limiter.execute(() => 'never'));
    await fleet.close();
    await Promise.resolve();
    expect(waiting.error).toMatchObject({ code: 'ERR_BREAKWATER_RATE_LIMITED' });
    expect(clock.pendingTimers).toBe(0);
  });

  it("a waiter's abort releases it at once, with the caller's reason and no listener left; maxWaitMs refuses a longer wait at once", async () => {
    const clock = new FakeClock(3_000_000);
    const fleet = await replicas(2, clock, { ratePerSecond: 10, burst: 2, leaseSize: 1, maxQueue: 5, maxWaitMs: 500 });
    const limiter = fleet.limiters[0]!;
    await limiter.execute(() => {});
    await limiter.execute(() => {}); // ahead of the next lease
    const controller = new AbortController();
    const aborted = track(limiter.execute(() => 'never', { signal: controller.signal }));
    const next = track(limiter.execute(() => 'next'));
    await Promise.resolve();
    expect(limiter.queued).toBe(2);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    controller.abort(new Error('caller left'));
    await Promise.resolve();
    expect((aborted.error as Error).message).toBe('caller left');
    expect(limiter.queued).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // Behind one waiter at this replica's share (5 calls/s), a third waits about 400 ms, a fourth 600: refused now.
    const third = track(limiter.execute(() => 'third'));
    const fourth = await limiter.execute(() => 'fourth').catch((e: unknown) => e);
    expect(fourth).toMatchObject({ code: 'ERR_BREAKWATER_RATE_LIMITED', retryAfterMs: 600 });
    await settle(clock, fleet.fleets, 1_000);
    expect([next.value, third.value]).toEqual(['next', 'third']);
    await fleet.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a waiter whose token has not come within maxWaitMs (the fleet spent the bucket) is refused then, saying when to come back', async () => {
    const clock = new FakeClock(4_000_000);
    const fleet = await replicas(2, clock, { ratePerSecond: 10, burst: 2, leaseSize: 1, maxQueue: 5, maxWaitMs: 150 });
    const limiter = fleet.limiters[0]!;
    await limiter.execute(() => {});
    await limiter.execute(() => {}); // ahead of the next lease, which Redis cannot grant: the bucket is spent
    const startedAt = clock.now();
    const waiter = track(limiter.execute(() => 'never'));
    await flush();
    expect(limiter.queued).toBe(1); // its estimate (a lease on its way) was within maxWaitMs
    let refusedAt: number | undefined;
    void waiter.promise.catch(() => (refusedAt = clock.now()));
    await settle(clock, fleet.fleets, 1_000);
    expect(waiter.error).toMatchObject({ code: 'ERR_BREAKWATER_RATE_LIMITED' });
    expect((waiter.error as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    expect(refusedAt! - startedAt).toBe(150);
    await fleet.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('property: with waiters the fleet still admits at most burst + rate × window + the slack; the queue bound and maxWaitMs hold; aborts release at once; close() settles every call', async () => {
    let delayed = 0;
    let abortedWaiters = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 3 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.option(fc.integer({ min: 50, max: 1_500 }), { nil: undefined }),
        fc.array(fc.tuple(fc.nat(3), fc.integer({ min: 0, max: 8 }), fc.nat(8), fc.integer({ min: 0, max: 400 })), { minLength: 1, maxLength: 20 }),
        async (n, ratePerSecond, leaseSize, maxQueue, maxWaitMs, steps) => {
          const clock = new FakeClock(5_000_000);
          const burst = Math.max(leaseSize, Math.floor(ratePerSecond / 2));
          const fleet = await replicas(n, clock, { ratePerSecond, burst, leaseSize, maxQueue, ...(maxWaitMs === undefined ? {} : { maxWaitMs }) });
          const admittedAt: number[] = [];
          const waited: number[] = [];
          for (const limiter of fleet.limiters) limiter.onAdmit(({ waitedMs }) => waited.push(waitedMs));
          const all: ReturnType<typeof track>[] = [];
          const order = fleet.limiters.map(() => [] as number[]);
          let id = 0;
          try {
            for (const [replica, calls, abortEvery, advanceMs] of steps) {
              const r = replica % n;
              const limiter = fleet.limiters[r]!;
              const controllers: AbortController[] = [];
              const batch = Array.from({ length: calls }, (_, i) => {
                const controller = new AbortController();
                if (abortEvery > 0 && (calls - 1 - i) % abortEvery === 0) controllers.push(controller); // the last ones: likely waiting
                const me = id++;
                const entry = { call: undefined as unknown as ReturnType<typeof track>, controller, ran: false };
                const call = track(
                  limiter.execute(
                    () => {
                      entry.ran = true;
                      admittedAt.push(clock.now());
                      order[r]!.push(me);
                    },
                    { signal: controller.signal },
                  ),
                );
                all.push((entry.call = call));
                return entry;
              });
              await flush();
              expect(limiter.queued).toBeLessThanOrEqual(maxQueue);
              // Aborted waiters leave at once, with the reason, in the same instant.
              const waiting = batch.filter((b) => controllers.includes(b.controller) && !b.ran && b.call.status === 'pending');
              const queuedBefore = limiter.queued;
              const reason = new Error('gone');
              for (const c of controllers) c.abort(reason);
              await flush();
              expect(limiter.queued).toBe(queuedBefore - waiting.length); // they left the queue, not only the call
              for (const w of waiting) expect([w.ran, w.call.error]).toEqual([false, reason]);
              abortedWaiters += waiting.length;
              for (const c of controllers) expect(getEventListeners(c.signal, 'abort')).toHaveLength(0);
              await settle(clock, fleet.fleets, advanceMs);
              for (const l of fleet.limiters) expect(l.queued).toBeLessThanOrEqual(maxQueue);
            }
            expect(fleet.limiters.every((l) => l.deciding === 'fleet')).toBe(true);
            if (maxWaitMs !== undefined) for (const ms of waited) expect(ms).toBeLessThanOrEqual(maxWaitMs);
            delayed += waited.filter((ms) => ms > 0).length;
            for (const o of order) expect(o).toEqual([...o].sort((a, b) => a - b)); // FIFO on each replica
            expectWithinFleetLimit(admittedAt, n, { ratePerSecond, burst, leaseSize });
          } finally {
            await fleet.close();
          }
          await Promise.resolve();
          expect(all.every((c) => c.settledCount === 1)).toBe(true);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 25, seed: 16 },
    );
    // The runs did wait and abort waiters (the property is not vacuous).
    expect(delayed).toBeGreaterThan(0);
    expect(abortedWaiters).toBeGreaterThan(0);
  });
});

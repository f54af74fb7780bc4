/**
 * Redis failing under the shared policies, for real: frozen (SIGSTOP), killed and
 * restarted, slowed or partitioned through a TCP proxy on loopback. Calls keep
 * succeeding on local decisions, nothing hangs, the fleet says it is degraded and
 * converges when Redis is back. The system clock runs here (real sockets, real
 * reconnects); the assertions are about outcomes, never about how long things took.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { circuitBreaker, pipeline, retry } from '../src/index.ts';
import { fleetBreakerHints, fleetRateLimiter, fleetRetryBudget, redisFleet, type RedisFleet } from '../src/redis/index.ts';
import { RedisProcess, redisServerPath, TcpProxy } from './redis-helpers.ts';

const SERVER = redisServerPath();
let redis: RedisProcess;
let proxy: TcpProxy;
const cleanups: (() => Promise<unknown>)[] = [];
let prefixes = 0;

/** A service replica: its connection (through the proxy), its fleet, and a pipeline using all three shared policies. */
async function service() {
  const connection = new Redis({ port: proxy.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  connection.on('error', () => {});
  await connection.connect();
  const fleet = redisFleet({ redis: connection, prefix: `faults-${++prefixes}`, syncIntervalMs: 20, redisTimeoutMs: 50, retryRedisAfterMs: 100 });
  cleanups.push(async () => {
    await fleet.close();
    connection.disconnect();
  });
  const limiter = fleetRateLimiter(fleet, { name: 'partner-api', ratePerSecond: 100_000, leaseSize: 50 });
  const budget = fleetRetryBudget(fleet, { name: 'partner-api', ratio: 0.5, minPerSecond: 100 });
  const breaker = circuitBreaker({ minimumCalls: 1000 });
  fleetBreakerHints(fleet, { name: 'partner-api', breaker });
  const calls = pipeline({ name: 'partner-api' }, retry({ maxAttempts: 2, budget, backoff: { delayMs: () => 0 } }), limiter, breaker);
  await until(fleet, () => limiter.deciding === 'fleet' && budget.deciding === 'fleet');
  return { fleet, limiter, budget, calls };
}

/** Polls `done` every 10 ms, for 10 s at most (then the test fails with what it waited for). */
async function until(fleet: RedisFleet, done: () => boolean, what = 'the fleet to converge'): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (done()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what} (degraded: ${fleet.degraded})`);
}

/** Makes `count` calls, 10 at a time; every one must succeed (a flaky first attempt is retried). */
async function callsSucceed(calls: Awaited<ReturnType<typeof service>>['calls'], count: number): Promise<void> {
  let attempt = 0;
  for (let i = 0; i < count; i += 10) {
    const batch = Array.from({ length: 10 }, () => calls.execute(() => (++attempt % 7 === 0 ? Promise.reject(new Error('flaky')) : 'ok')));
    expect(await Promise.all(batch)).toEqual(Array(10).fill('ok'));
    await sleep(5);
  }
}

describe.skipIf(SERVER === undefined)('the shared policies when Redis fails', () => {
  beforeAll(async () => {
    redis = await RedisProcess.start(SERVER!);
    proxy = await TcpProxy.start(redis.port);
  });
  afterEach(async () => {
    redis.thaw();
    proxy.latencyMs = 0;
    proxy.heal();
    await Promise.allSettled(cleanups.splice(0).map((cleanup) => cleanup()));
  });
  afterAll(async () => {
    await proxy?.stop();
    await redis?.stop();
  });

  it('Redis frozen (SIGSTOP): calls go on, on local decisions; the fleet is degraded until Redis thaws, then decides with the fleet again', async () => {
    const { fleet, limiter, budget, calls } = await service();
    const changes: boolean[] = [];
    fleet.onDegradedChange(({ degraded }) => changes.push(degraded));
    redis.freeze();
    await callsSucceed(calls, 200);
    await until(fleet, () => fleet.degraded, 'the fleet to notice');
    expect([limiter.deciding, budget.deciding]).toEqual(['local', 'local']);
    await callsSucceed(calls, 100);
    redis.thaw();
    await until(fleet, () => !fleet.degraded && limiter.deciding === 'fleet' && budget.deciding === 'fleet');
    await callsSucceed(calls, 100);
    expect(changes).toEqual([true, false]);
    expect(limiter.counts.refused).toBe(0);
  });

  it('Redis killed and restarted empty: calls go on; the scripts are loaded again and the fleet converges', async () => {
    const { fleet, limiter, budget, calls } = await service();
    await redis.kill();
    await callsSucceed(calls, 200);
    await until(fleet, () => fleet.degraded, 'the fleet to notice');
    await redis.restart();
    await until(fleet, () => !fleet.degraded && limiter.deciding === 'fleet' && budget.deciding === 'fleet');
    await callsSucceed(calls, 100);
    expect(limiter.counts.refused).toBe(0);
  });

  it('latency above the Redis timeout, then a partition, through a TCP proxy: calls go on; the fleet recovers when the network heals', async () => {
    const { fleet, limiter, calls } = await service();
    proxy.latencyMs = 200;
    await callsSucceed(calls, 100);
    await until(fleet, () => fleet.degraded, 'the fleet to notice the latency');
    proxy.latencyMs = 0;
    await until(fleet, () => !fleet.degraded && limiter.deciding === 'fleet');
    proxy.partition();
    await callsSucceed(calls, 100);
    await until(fleet, () => fleet.degraded, 'the fleet to notice the partition');
    await callsSucceed(calls, 100);
    proxy.heal();
    await until(fleet, () => !fleet.degraded && limiter.deciding === 'fleet');
    await callsSucceed(calls, 100);
    expect(limiter.counts.refused).toBe(0);
  });
});

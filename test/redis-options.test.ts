/**
 * breakwater/redis: bad options are refused at construction with the option, the
 * rule and the value; `close()` leaves no timer, listener or command behind and
 * leaves the service's connection alone.
 */
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { circuitBreaker, pipeline } from '../src/index.ts';
import { fleetBreakerHints, fleetRateLimiter, fleetRetryBudget, REDIS_FLEET_DEFAULTS, redisFleet } from '../src/redis/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { RedisProcess, redisServerPath, settle } from './redis-helpers.ts';

/** A connection-shaped object that never answers (construction never talks to Redis). */
const silent = { eval: () => new Promise(() => {}), evalsha: () => new Promise(() => {}) };

describe('breakwater/redis options', () => {
  it('deciding alone (Redis never answers), calls over the limit wait for the local share\'s tokens, never for Redis; the sink counts them as delayed', async () => {
    const clock = new FakeClock();
    const fleet = redisFleet({ redis: silent, prefix: 'svc', clock });
    const limiter = fleetRateLimiter(fleet, { name: 'api', ratePerSecond: 10, burst: 1, maxQueue: 2 });
    const registry = new Registry();
    const api = pipeline({ name: 'api' }, limiter);
    prometheusMetrics({ registry }).attach(api);
    expect([limiter.maxQueue, limiter.maxWaitMs]).toEqual([2, Infinity]);
    const waited: number[] = [];
    limiter.onAdmit(({ waitedMs }) => waited.push(waitedMs));
    const calls = [1, 2, 3].map((n) => api.execute(() => n));
    expect(limiter.queued).toBe(2);
    expect(await api.execute(() => 4).catch((e: unknown) => e)).toMatchObject({ code: 'ERR_BREAKWATER_RATE_LIMITED', retryAfterMs: 300 });
    await clock.advance(200);
    expect(await Promise.all(calls)).toEqual([1, 2, 3]);
    expect(waited).toEqual([0, 100, 200]);
    const counted = async (name: string) => (await registry.getMetricsAsJSON()).find((m) => m.name === name)?.values[0]?.value;
    expect([await counted('breakwater_rate_limit_admitted_total'), await counted('breakwater_rate_limit_delayed_total'), await counted('breakwater_rate_limit_rejections_total')]).toEqual([3, 2, 1]);
    expect(limiter.deciding).toBe('local');
    const closing = fleet.close();
    await clock.advance(1_000); // the sync's command in flight gives up at the guard's timeout
    await closing;
    expect(clock.pendingTimers).toBe(0);
  });

  it('the defaults, in one visible place', () => {
    expect(REDIS_FLEET_DEFAULTS).toEqual({ syncIntervalMs: 250, redisTimeoutMs: 100, retryRedisAfterMs: 1_000 });
    const fleet = redisFleet({ redis: silent, prefix: 'svc', clock: new FakeClock() });
    expect([fleet.syncIntervalMs, fleet.redisTimeoutMs]).toEqual([250, 100]);
    expect(fleet.replicaId).toMatch(/^[0-9a-f-]{36}$/);
    const limiter = fleetRateLimiter(fleet, { name: 'api', ratePerSecond: 100 });
    expect([limiter.burst, limiter.leaseSize, limiter.deciding]).toEqual([100, 5, 'local']);
    const budget = fleetRetryBudget(fleet, { name: 'api' });
    expect([budget.ratio, budget.minPerSecond, budget.windowMs]).toEqual([0.2, 10, 10_000]);
    const hints = fleetBreakerHints(fleet, { name: 'api', breaker: circuitBreaker() });
    expect([hints.quorum, hints.hintTtlMs]).toEqual([2, 1_000]);
    void fleet.close();
  });

  it('refuses what is not a Redis connection, a prefix it cannot put in a key, and durations out of range', () => {
    expect(() => redisFleet({ redis: {} as never, prefix: 'svc' })).toThrow(/redisFleet: option "redis" must be an ioredis or node-redis connection .*; received/);
    expect(() => redisFleet({ prefix: 'svc' } as never)).toThrow('redisFleet: option "redis" is required; received undefined');
    expect(() => redisFleet({ redis: silent, prefix: 'a b' })).toThrow(/option "prefix" must be 1 to 100 letters, digits or _.:- characters; received "a b"/);
    expect(() => redisFleet({ redis: silent, prefix: 'svc', syncIntervalMs: 5 })).toThrow(RangeError);
    expect(() => redisFleet({ redis: silent, prefix: 'svc', redisTimeoutMs: 20_000 })).toThrow('redisFleet: option "redisTimeoutMs" must be at most 10000 ms; received 20000');
    expect(() => redisFleet({ redis: silent, prefix: 'svc', host: 'x' } as never)).toThrow(/unknown option "host"/);
  });

  it('refuses bad options of the shared policies', () => {
    const fleet = redisFleet({ redis: silent, prefix: 'svc', clock: new FakeClock() });
    expect(() => fleetRateLimiter({} as never, { name: 'a', ratePerSecond: 1 })).toThrow(/fleetRateLimiter: option "fleet" must be a RedisFleet/);
    expect(() => fleetRateLimiter(fleet, { name: 'a', ratePerSecond: 0 })).toThrow(/option "ratePerSecond" must be a finite number above 0/);
    expect(() => fleetRateLimiter(fleet, { name: 'a', ratePerSecond: 10, burst: 5, leaseSize: 6 })).toThrow('fleetRateLimiter: option "leaseSize" must be at most "burst" (5); received 6');
    expect(() => fleetRateLimiter(fleet, { ratePerSecond: 10 } as never)).toThrow('option "name" is required');
    expect(() => fleetRateLimiter(fleet, { name: 'a', ratePerSecond: 10, maxWaitMs: 100 })).toThrow(
      'fleetRateLimiter: option "maxWaitMs" needs a queue: set "maxQueue" above 0; received maxQueue 0',
    );
    expect(() => fleetRateLimiter(fleet, { name: 'a', ratePerSecond: 10, maxQueue: 1.5 })).toThrow(/option "maxQueue" must be an integer/);
    expect(() => fleetRetryBudget(fleet, { name: 'a', ratio: 2 })).toThrow(/option "ratio" must be a finite number from 0 to 1; received 2/);
    expect(() => fleetRetryBudget(fleet, { name: 'a', windowMs: 1_000 })).toThrow(/option "windowMs" must be at least 10 sync intervals \(2500 ms\)/);
    expect(() => fleetBreakerHints(fleet, { name: 'a', breaker: {} as never })).toThrow(/option "breaker" must be a circuit breaker/);
    expect(() => fleetBreakerHints(fleet, { name: 'a', breaker: circuitBreaker(), quorum: 0 })).toThrow(/option "quorum" must be an integer from 1/);
    void fleet.close();
  });

  it('a closed fleet takes no new member', async () => {
    const fleet = redisFleet({ redis: silent, prefix: 'svc', clock: new FakeClock() });
    await fleet.close();
    expect(() => fleetRateLimiter(fleet, { name: 'a', ratePerSecond: 1 })).toThrow('redisFleet "svc": the fleet is closed; create a new one');
  });
});

const SERVER = redisServerPath();

describe.skipIf(SERVER === undefined)('close() on a real Redis', () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await RedisProcess.start(SERVER!);
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('leaves no timer, no listener and no command in flight, and the connection open for the service', async () => {
    const clock = new FakeClock();
    const connection = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
    await connection.connect();
    const fleet = redisFleet({ redis: connection, prefix: 'close', clock, sharedNow: () => clock.now(), syncIntervalMs: 50 });
    const limiter = fleetRateLimiter(fleet, { name: 'api', ratePerSecond: 100 });
    const budget = fleetRetryBudget(fleet, { name: 'api' });
    // The breaker, seen through its onStateChange, to count the listeners the hints hold on it.
    const real = circuitBreaker();
    let listeners = 0;
    const breaker = {
      get state() {
        return real.state;
      },
      trip: () => real.trip(),
      onStateChange: (listener: Parameters<typeof real.onStateChange>[0]) => {
        listeners++;
        const dispose = real.onStateChange(listener);
        return () => {
          listeners--;
          dispose();
        };
      },
    };
    fleetBreakerHints(fleet, { name: 'api', breaker: breaker as never });
    expect(listeners).toBe(1);
    await settle(clock, [fleet], 500);
    expect(limiter.deciding).toBe('fleet');
    expect(budget.deciding).toBe('fleet');
    await pipeline(limiter).execute(() => 'ok');
    const sent = fleet.commands;
    expect(sent).toBeGreaterThan(10);
    void limiter.execute(() => 'one more'); // may start a lease request: close() waits for it
    await fleet.close();
    expect(clock.pendingTimers).toBe(0);
    expect(listeners).toBe(0);
    const after = fleet.commands;
    expect(after - sent).toBeLessThanOrEqual(1);
    await clock.advance(10_000);
    expect(fleet.commands).toBe(after);
    expect(await connection.ping()).toBe('PONG');
    connection.disconnect();
  });
});

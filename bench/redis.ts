/**
 * `breakwater/redis` figures: the per-call cost of the fleet-wide rate limiter and retry
 * budget against the local ones, the round trip of one of their Redis commands (what a
 * "strict" per-call mode would add to every call), and the Redis commands per second
 * one replica sends at a steady 1,000 calls a second. Starts its own redis-server on a
 * free 127.0.0.1 port (Debian's `redis-server`, or REDIS_SERVER) and stops it.
 *
 *   npx node bench/redis.ts            full run (about 20 s)
 *   npx node bench/redis.ts --quick    a smoke run (about 4 s)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisProcess, redisServerBinary } from '../examples/harness/redis.ts';
import { circuitBreaker, pipeline, rateLimiter, retryBudget } from '../src/index.ts';
import { fleetBreakerHints, fleetRateLimiter, fleetRetryBudget, redisFleet } from '../src/redis/index.ts';

const quick = process.argv.includes('--quick');
const binary = redisServerBinary();
if (binary === undefined) {
  console.error('bench/redis.ts: redis-server not found (sudo apt-get install redis-server, or set REDIS_SERVER)');
  process.exit(1);
}
const server = await RedisProcess.start(binary);
const connections: Redis[] = [];
const connect = async (): Promise<Redis> => {
  const redis = new Redis({ port: server.port, host: '127.0.0.1', lazyConnect: true });
  await redis.connect();
  connections.push(redis);
  return redis;
};

/**
 * The ns per iteration of each body, run `n` times per round in alternating rounds (so
 * that drift on a shared machine hits them alike), as the median over the rounds after
 * a warm-up. Every 1,000 iterations it yields to the event loop, as a service does
 * between requests, so that background lease requests and syncs get their replies.
 */
async function nsPerCall(bodies: readonly (() => unknown)[], n: number, rounds = quick ? 3 : 9): Promise<number[]> {
  const loop = async (body: () => unknown) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await body();
      if (i % 1_000 === 999) await new Promise(setImmediate);
    }
    return ((performance.now() - t0) * 1e6) / n;
  };
  for (const body of bodies) await loop(body);
  const samples = bodies.map((): number[] => []);
  for (let r = 0; r < rounds; r++) for (let b = 0; b < bodies.length; b++) samples[b]!.push(await loop(bodies[b]!));
  return samples.map((list) => list.sort((x, y) => x - y)[Math.floor(list.length / 2)]!);
}

const rows: [string, string][] = [];
const n = quick ? 20_000 : 200_000;
try {
  // 1. Per call. The limits are far above the load, so every call is admitted; the fleet
  //    limiter spends its lease and tops it up in the background.
  const local = pipeline({ name: 'local' }, rateLimiter({ ratePerSecond: 1_000_000, burst: 1_000_000 }));
  const fleet = redisFleet({ redis: await connect(), prefix: 'bench' });
  const sharedLimiter = fleetRateLimiter(fleet, { name: 'api', ratePerSecond: 1_000_000, burst: 1_000_000, leaseSize: 10_000 });
  const shared = pipeline({ name: 'shared' }, sharedLimiter);
  await sleep(300);
  const work = () => 1;
  const [bare, localNs, sharedNs] = (await nsPerCall([() => Promise.resolve(1), () => local.execute(work), () => shared.execute(work)], n)) as [number, number, number];
  const localBudget = retryBudget({ ratio: 1, minPerSecond: 1_000_000 });
  const sharedBudget = fleetRetryBudget(fleet, { name: 'api', ratio: 1, minPerSecond: 1_000 });
  await sleep(300);
  const [budgetLocalNs, budgetSharedNs] = (await nsPerCall(
    [() => (localBudget.recordFirstAttempt(), localBudget.tryRetry()), () => (sharedBudget.recordFirstAttempt(), sharedBudget.tryRetry())],
    n,
  )) as [number, number];
  rows.push(
    ['bare async call', `${bare.toFixed(0)} ns`],
    ['pipeline(rateLimiter) per call', `${localNs.toFixed(0)} ns`],
    ['pipeline(fleetRateLimiter) per call', `${sharedNs.toFixed(0)} ns (${sharedLimiter.counts.admittedAhead} of ${sharedLimiter.counts.admitted} admitted ahead of a lease on its way)`],
    ['retryBudget: recordFirstAttempt + tryRetry', `${budgetLocalNs.toFixed(0)} ns`],
    ['fleetRetryBudget: recordFirstAttempt + tryRetry', `${budgetSharedNs.toFixed(0)} ns`],
  );
  await fleet.close();

  // 2. The round trip of one lease command: what asking Redis on every call would cost.
  const probe = redisFleet({ redis: await connect(), prefix: 'bench-rtt', syncIntervalMs: 60_000 });
  const strict = fleetRateLimiter(probe, { name: 'api', ratePerSecond: 1_000_000, burst: 1_000_000, leaseSize: 1 });
  await sleep(100);
  const rtts: number[] = [];
  for (let i = 0; i < (quick ? 200 : 2_000); i++) {
    const t0 = performance.now();
    await strict.sync();
    rtts.push((performance.now() - t0) * 1000);
  }
  rtts.sort((a, b) => a - b);
  rows.push(['one lease command (EVALSHA) round trip, loopback', `median ${rtts[rtts.length >> 1]!.toFixed(0)} µs, p99 ${rtts[Math.floor(rtts.length * 0.99)]!.toFixed(0)} µs`]);
  await probe.close();

  // 3. Redis commands per second of one replica at a steady 1,000 calls a second,
  //    with a shared limiter (default lease), budget and breaker hints on the default interval.
  const steady = redisFleet({ redis: await connect(), prefix: 'bench-steady' });
  const limiter = fleetRateLimiter(steady, { name: 'api', ratePerSecond: 2_000 });
  const budget = fleetRetryBudget(steady, { name: 'api' });
  const breaker = circuitBreaker();
  fleetBreakerHints(steady, { name: 'api', breaker });
  const calls = pipeline({ name: 'steady' }, limiter, breaker);
  await sleep(500);
  const seconds = quick ? 2 : 10;
  const before = steady.commands;
  const end = performance.now() + seconds * 1000;
  let made = 0;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - (end - seconds * 1000)) / 1000) * 1000);
    while (made < due) {
      made++;
      budget.recordFirstAttempt();
      await calls.execute(work).catch(() => {});
    }
    await sleep(1);
  }
  const perSecond = (steady.commands - before) / seconds;
  rows.push([
    `Redis commands per replica at 1,000 calls/s (limiter, lease ${limiter.leaseSize}; budget; hints; sync every ${steady.syncIntervalMs} ms)`,
    `${perSecond.toFixed(1)} commands/s (${limiter.counts.refused} calls refused, ${made} made)`,
  ]);
  await steady.close();
} finally {
  for (const redis of connections) redis.disconnect();
  await server.stop();
}

console.log(`breakwater/redis on Node ${process.version}, redis-server ${binary}${quick ? ' (quick)' : ''}`);
const width = Math.max(...rows.map(([k]) => k.length));
for (const [what, value] of rows) console.log(`${what.padEnd(width)}  ${value}`);

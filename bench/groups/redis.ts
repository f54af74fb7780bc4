/**
 * Group 6: `breakwater/redis`. The per-call cost of the fleet-wide rate limiter and
 * retry budget against the local ones, the round trip of one of their Redis commands
 * (what a "strict" per-call mode would add to every call), and the Redis commands per
 * second one replica sends at a steady 1,000 calls a second. Starts its own
 * redis-server on a free 127.0.0.1 port (Debian's `redis-server`, or REDIS_SERVER) and
 * stops it; without one the group is skipped with one line.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisProcess, redisServerBinary } from '../../examples/harness/redis.ts';
import { circuitBreaker, pipeline, rateLimiter, retryBudget } from '../../src/index.ts';
import { fleetBreakerHints, fleetRateLimiter, fleetRetryBudget, redisFleet } from '../../src/redis/index.ts';
import { median, type Profile } from '../lib/measure.ts';
import { checkSane, type Row, type RunResults } from '../lib/results.ts';

/**
 * The ns per iteration of each body, run `n` times per round in alternating rounds (so
 * that drift on a shared machine hits them alike), as the median over the rounds after
 * a warm-up. Every 1,000 iterations it yields to the event loop, as a service does
 * between requests, so that background lease requests and syncs get their replies.
 */
async function nsPerCall(bodies: readonly (() => unknown)[], n: number, rounds: number): Promise<number[][]> {
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
  return samples;
}

/** A per-call row, with its ratio to the local counterpart measured in the same rounds. */
function perCall(id: string, label: string, samples: readonly number[], local?: readonly number[], note?: string): Row {
  const value = checkSane(`redis ${id}`, median(samples));
  return {
    group: 'redis',
    id: `redis.${id}`,
    label,
    library: local === undefined ? 'baseline' : 'breakwater',
    value,
    unit: 'ns',
    ...(local === undefined ? {} : { ratio: median(samples.map((s, i) => s / local[i]!)), ratioTo: 'the local policy, same round' }),
    samples,
    ...(note === undefined ? {} : { note }),
  };
}

/** Measures the breakwater/redis group. */
export async function redisGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const binary = redisServerBinary();
  if (binary === undefined) {
    const why = 'redis: skipped, redis-server not found (sudo apt-get install redis-server, or set REDIS_SERVER)';
    log(`  ${why}`);
    results.notes.push(`Table 6 (breakwater/redis) was not measured: ${why.slice('redis: '.length)}.`);
    return;
  }
  const quick = profile.name === 'quick';
  // (rounds + 1) × n calls stay under the limiters' burst (1,000,000, the most a limiter
  // takes), so no call is refused however fast this machine runs them.
  const n = quick ? 20_000 : 90_000;
  const rounds = quick ? 3 : 9;
  let server: RedisProcess | undefined;
  const connections: Redis[] = [];
  const connect = async (): Promise<Redis> => {
    const redis = new Redis({ port: server!.port, host: '127.0.0.1', lazyConnect: true });
    connections.push(redis);
    await redis.connect();
    return redis;
  };
  const closing: (() => Promise<void>)[] = [];
  try {
    server = await RedisProcess.start(binary);
    // 1. Per call. The limits are far above the load, so every call is admitted; the fleet
    //    limiter spends its lease and tops it up in the background.
    log(`  redis: ${rounds} round(s) of ${n.toLocaleString('en-US')} calls per subject`);
    const local = pipeline({ name: 'local' }, rateLimiter({ ratePerSecond: 1_000_000, burst: 1_000_000 }));
    const fleet = redisFleet({ redis: await connect(), prefix: 'bench' });
    closing.push(() => fleet.close());
    const sharedLimiter = fleetRateLimiter(fleet, { name: 'api', ratePerSecond: 1_000_000, burst: 1_000_000, leaseSize: 10_000 });
    const shared = pipeline({ name: 'shared' }, sharedLimiter);
    await sleep(300);
    const work = () => 1;
    const [bare, localNs, sharedNs] = (await nsPerCall([() => Promise.resolve(1), () => local.execute(work), () => shared.execute(work)], n, rounds)) as [number[], number[], number[]];
    const localBudget = retryBudget({ ratio: 1, minPerSecond: 1_000_000 });
    const sharedBudget = fleetRetryBudget(fleet, { name: 'api', ratio: 1, minPerSecond: 1_000 });
    await sleep(300);
    const [budgetLocalNs, budgetSharedNs] = (await nsPerCall(
      [() => (localBudget.recordFirstAttempt(), localBudget.tryRetry()), () => (sharedBudget.recordFirstAttempt(), sharedBudget.tryRetry())],
      n,
      rounds,
    )) as [number[], number[]];
    const { admitted, admittedAhead } = sharedLimiter.counts;
    results.rows.push(
      perCall('bare', 'bare async call', bare),
      perCall('rateLimiter', 'pipeline(rateLimiter) per call', localNs),
      perCall('fleetRateLimiter', 'pipeline(fleetRateLimiter) per call, leases of 10,000', sharedNs, localNs, `${admittedAhead.toLocaleString('en-US')} of ${admitted.toLocaleString('en-US')} admitted ahead of a lease on its way`),
      perCall('retryBudget', 'retryBudget: recordFirstAttempt + tryRetry', budgetLocalNs),
      perCall('fleetRetryBudget', 'fleetRetryBudget: recordFirstAttempt + tryRetry', budgetSharedNs, budgetLocalNs),
    );

    // 2. The round trip of one lease command: what asking Redis on every call would cost.
    const probe = redisFleet({ redis: await connect(), prefix: 'bench-rtt', syncIntervalMs: 60_000 });
    closing.push(() => probe.close());
    const strict = fleetRateLimiter(probe, { name: 'api', ratePerSecond: 1_000_000, burst: 1_000_000, leaseSize: 1 });
    await sleep(100);
    const rtts: number[] = [];
    for (let i = 0; i < (quick ? 200 : 2_000); i++) {
      const t0 = performance.now();
      await strict.sync();
      rtts.push((performance.now() - t0) * 1e6);
    }
    if (probe.commandFailures > 0) throw new Error(`${probe.commandFailures} of the lease commands failed`);
    rtts.sort((a, b) => a - b);
    results.rows.push({
      group: 'redis',
      id: 'redis.leaseRoundTrip',
      label: 'one lease command (EVALSHA) round trip, loopback',
      library: 'breakwater',
      value: checkSane('redis lease round trip', rtts[rtts.length >> 1]!),
      unit: 'ns',
      extra: { p99Ns: rtts[Math.floor(rtts.length * 0.99)]! },
      note: `p99 ${(rtts[Math.floor(rtts.length * 0.99)]! / 1000).toFixed(0)} µs`,
    });

    // 3. Redis commands per second of one replica at a steady 1,000 calls a second,
    //    with a shared limiter (default lease), budget and breaker hints on the default interval.
    const steady = redisFleet({ redis: await connect(), prefix: 'bench-steady' });
    closing.push(() => steady.close());
    const limiter = fleetRateLimiter(steady, { name: 'api', ratePerSecond: 2_000 });
    const budget = fleetRetryBudget(steady, { name: 'api' });
    const breaker = circuitBreaker();
    fleetBreakerHints(steady, { name: 'api', breaker });
    const calls = pipeline({ name: 'steady' }, limiter, breaker);
    await sleep(500);
    const seconds = quick ? 2 : 10;
    log(`  redis: ${seconds} s at a steady 1,000 calls/s`);
    const before = steady.commands;
    const start = performance.now();
    const end = start + seconds * 1000;
    let made = 0;
    while (performance.now() < end) {
      const due = Math.floor(performance.now() - start); // one call per ms
      while (made < due) {
        made++;
        budget.recordFirstAttempt();
        await calls.execute(work).catch(() => {});
      }
      await sleep(1);
    }
    const perSecond = (steady.commands - before) / seconds;
    results.rows.push({
      group: 'redis',
      id: 'redis.commandsPerSecond',
      label: `Redis commands of one replica at 1,000 calls/s (limiter at 2,000/s, lease ${limiter.leaseSize}; budget; hints; sync every ${steady.syncIntervalMs} ms)`,
      library: 'breakwater',
      value: checkSane('redis commands per second', perSecond),
      unit: 'count',
      extra: { calls: made, refused: limiter.counts.refused },
      note: `${made.toLocaleString('en-US')} calls made, ${limiter.counts.refused} refused`,
    });
  } catch (error) {
    results.failures.push({ group: 'redis', id: 'redis', message: (error as Error).stack ?? String(error) });
  } finally {
    await Promise.allSettled(closing.map((close) => close()));
    for (const redis of connections) redis.disconnect();
    await server?.stop();
  }
}

/**
 * Breaker hints against a real redis-server, three replicas in virtual time: a hint
 * reaches the others within one sync interval, only a quorum opens their breakers,
 * probing stays local, and a replica that goes away takes its hint with it.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { circuitBreaker, type CircuitBreakerPolicy, pipeline } from '../src/index.ts';
import { fleetBreakerHints, type FleetBreakerHints, redisFleet, type RedisFleet } from '../src/redis/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { RedisProcess, redisServerPath, settle } from './redis-helpers.ts';

const SERVER = redisServerPath();
const SYNC_MS = 100;
let redis: RedisProcess;
const connections: Redis[] = [];
let prefixes = 0;

async function replicas(n: number, clock: FakeClock, quorum: number) {
  const prefix = `hints-${++prefixes}`;
  const fleets: RedisFleet[] = [];
  const breakers: CircuitBreakerPolicy[] = [];
  const hints: FleetBreakerHints[] = [];
  for (let i = 0; i < n; i++) {
    const connection = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
    await connection.connect();
    connections.push(connection);
    const fleet = redisFleet({ redis: connection, prefix, replicaId: `r${i}`, clock, sharedNow: () => clock.now(), syncIntervalMs: SYNC_MS });
    const breaker = circuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 2, window: { kind: 'count', calls: 2 }, halfOpenAfterMs: 5_000, clock });
    fleets.push(fleet);
    breakers.push(breaker);
    hints.push(fleetBreakerHints(fleet, { name: 'payments', breaker, quorum }));
  }
  await settle(clock, fleets, 0);
  return { fleets, breakers, hints, close: () => Promise.all(fleets.map((f) => f.close())) };
}

/** Two failed calls open a breaker on its own statistics. */
async function failTwice(breaker: CircuitBreakerPolicy): Promise<void> {
  const calls = pipeline({ name: 'payments' }, breaker);
  for (let i = 0; i < 2; i++) await calls.execute(() => Promise.reject(new Error('payments down'))).catch(() => {});
}

describe.skipIf(SERVER === undefined)('fleetBreakerHints on a real Redis', () => {
  beforeAll(async () => {
    redis = await RedisProcess.start(SERVER!);
  });
  afterAll(async () => {
    await Promise.allSettled(connections.map((c) => c.quit()));
    await redis?.stop();
  });

  it("one replica's false alarm never opens the others; a quorum does, within one sync interval; probing stays local", async () => {
    const clock = new FakeClock(4_000_000);
    const fleet = await replicas(3, clock, 2);
    const [a, b, c] = fleet.breakers as [CircuitBreakerPolicy, CircuitBreakerPolicy, CircuitBreakerPolicy];

    // A alone sees payments fail (say, its own network is broken).
    await failTwice(a);
    expect(a.state).toBe('open');
    await settle(clock, fleet.fleets, SYNC_MS * 10);
    expect(fleet.hints[1]!.counts).toEqual({ failing: 1, replicas: 3 });
    expect([b.state, c.state]).toEqual(['closed', 'closed']);

    // B sees it too: that is the quorum. C learns it at its next sync, at most one interval later.
    const reasons: string[] = [];
    c.onStateChange(({ reason }) => reasons.push(reason));
    await failTwice(b);
    const openedAt = clock.now();
    await settle(clock, fleet.fleets, SYNC_MS);
    expect(c.state).toBe('open');
    expect(reasons).toEqual(['tripped']);
    expect(clock.now() - openedAt).toBeLessThanOrEqual(SYNC_MS);
    expect(fleet.hints[2]!.trips).toBe(1);

    // C's own probe decides: payments answer C, so C closes, and the same episode does not trip it again.
    await settle(clock, fleet.fleets, 5_000);
    await pipeline(c).execute(() => 'ok');
    expect(c.state).toBe('closed');
    await settle(clock, fleet.fleets, SYNC_MS * 5);
    expect(c.state).toBe('closed');
    expect(fleet.hints[2]!.trips).toBe(1);
    // C never said it saw payments fail: a tripped breaker is not a witness.
    expect(fleet.hints[2]!.counts.failing).toBe(2);
    await fleet.close();
  });

  it('a replica that closes (or dies) takes its hint with it: after the hint lasts, it no longer counts', async () => {
    const clock = new FakeClock(5_000_000);
    const fleet = await replicas(3, clock, 3);
    await failTwice(fleet.breakers[0]!);
    await failTwice(fleet.breakers[1]!);
    await settle(clock, fleet.fleets, SYNC_MS * 2);
    expect(fleet.hints[2]!.counts.failing).toBe(2);
    await fleet.fleets[0]!.close();
    await fleet.fleets[1]!.close();
    await settle(clock, fleet.fleets, fleet.hints[2]!.hintTtlMs + SYNC_MS * 2);
    expect(fleet.hints[2]!.counts).toEqual({ failing: 0, replicas: 1 });
    expect(fleet.breakers[2]!.state).toBe('closed');
    await fleet.close();
  });
});

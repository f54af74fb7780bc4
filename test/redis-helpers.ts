/**
 * The Redis suites' side of test/redis-setup.ts: the binary it found, and virtual time
 * that lets real Redis replies arrive. The servers and the proxy are in
 * examples/harness/redis.ts, shared with the fleet demo and the benchmark.
 */
import { inject } from 'vitest';
import type { RedisFleet } from '../src/redis/index.ts';
import type { FakeClock } from '../src/testing/index.ts';

export { freePort, RedisProcess, TcpProxy } from '../examples/harness/redis.ts';

/**
 * The redis-server the global setup found or installed; undefined when the suite must
 * skip (the setup has printed why). Throws when the setup did not look for it.
 */
export function redisServerPath(): string | undefined {
  const provided = inject('redisServer') as { path: string | undefined } | undefined;
  if (provided === undefined) throw new Error('test/redis-setup.ts did not look for redis-server: name the suite test/redis*.test.ts');
  return provided.path;
}

/**
 * Moves virtual time by `ms`, stopping at each timer that falls due so that the Redis
 * commands it starts reach the real server and come back before time moves on (a
 * guard timeout would otherwise expire in virtual time while the reply is on its way).
 */
export async function settle(clock: FakeClock, fleets: readonly RedisFleet[], ms: number): Promise<void> {
  const end = clock.now() + ms;
  const idle = async () => {
    for (let round = 0; round < 3; round++) for (const fleet of fleets) await fleet._idle();
  };
  for (;;) {
    await idle();
    const next = clock.nextTimerAt;
    await clock.advance(next === undefined || next > end ? end - clock.now() : Math.max(0, next - clock.now()));
    await idle();
    if (clock.now() >= end) return;
  }
}

/**
 * Replicas as separate processes (test/fixtures/redis/replica.ts) sharing one real
 * redis-server: the fleet's admitted rate stays within the limit plus the stated
 * slack, the fleet's retries within the shared budget, a breaker hint reaches the
 * other replicas within the bound, and one replica's false alarm opens no other.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisProcess, redisServerPath } from './redis-helpers.ts';

const SERVER = redisServerPath();
const REPLICA = fileURLToPath(new URL('fixtures/redis/replica.ts', import.meta.url));

interface Report {
  id: string;
  admitted: number[];
  firsts: number[];
  retries: number[];
  failedAt: number | null;
  openedAt: number | null;
  openedBy: string | null;
  degraded: boolean;
  commands: number;
}

function replica(env: object): Promise<Report> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--disable-warning=ExperimentalWarning', REPLICA], { env: { ...process.env, REPLICA: JSON.stringify(env) }, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`replica ${JSON.stringify(env)} failed: ${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Report);
    });
  });
}

/** The most events in any window of `windowMs` (both ends included). */
function busiest(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j]! - sorted[i]! > windowMs) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

describe.skipIf(SERVER === undefined)('replicas as separate processes on one Redis', () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await RedisProcess.start(SERVER!);
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('hold the fleet rate limit and retry budget together; a quorum of hints opens the third breaker, one false alarm does not', async () => {
    const durationMs = 3_000;
    const startAt = Date.now() + 3_000; // every process has loaded and connected by then
    const common = { port: redis.port, prefix: 'processes', startAt, durationMs };
    // r0 sees payments fail from 0.8 s on (alone: a false alarm for the others), r1 from 1.8 s on: the quorum of 2.
    const reports = await Promise.all([
      replica({ ...common, id: 'r0', failAt: 800 }),
      replica({ ...common, id: 'r1', failAt: 1_800 }),
      replica({ ...common, id: 'r2', failAt: null }),
    ]);
    const [r0, r1, r2] = reports as [Report, Report, Report];
    const n = reports.length;
    expect(reports.every((r) => !r.degraded)).toBe(true);

    // Rate limit: 200/s with a burst of 20 for the fleet, leases of 5, each replica's share of the burst.
    const admitted = reports.flatMap((r) => r.admitted);
    const slack = n * (5 + Math.floor(20 / n));
    // Windows of a second and more: shorter ones, timed on the wall clock of three processes on a
    // loaded machine, measure the scheduler (a stalled process admits late what it was granted in
    // time); the property tests in virtual time check every window against the same bound.
    for (const windowMs of [1_000, durationMs]) {
      expect(busiest(admitted, windowMs), `${windowMs} ms`).toBeLessThanOrEqual(20 + (200 * windowMs) / 1000 + slack);
    }
    // Three replicas trying far more than that (about 1,000 calls a second each) got about the limit, not three times it.
    expect(admitted.length).toBeGreaterThan(200 * (durationMs / 1000) * 0.5);

    // Retry budget: ratio 0.1 of the fleet's calls plus a floor of 5/s × 2 s = 10 for the whole fleet, in any 2 s window.
    const firsts = reports.flatMap((r) => r.firsts).sort((a, b) => a - b);
    const retries = reports.flatMap((r) => r.retries).sort((a, b) => a - b);
    // Redis counts in ten buckets of 200 ms on its own clock (the same machine's); first attempts reach it at the
    // next sync (50 ms), and a lease reserved at the edge of a bucket may be spent in the next: one retry per replica.
    for (const at of retries) {
      const bucket = Math.floor(at / 200);
      const inWindow = (times: number[]) => times.filter((t) => Math.floor(t / 200) > bucket - 10 && t <= at).length;
      const reportedLate = firsts.filter((t) => t > at - 100 && t <= at).length;
      expect(inWindow(retries)).toBeLessThanOrEqual(0.1 * (inWindow(firsts) + reportedLate) + 10 + n);
    }
    expect(retries.length).toBeGreaterThan(0);

    // Breaker hints: r0 alone opened on its own failures; r1's opening made the quorum, and r2 followed within the bound.
    expect(r0.openedBy).toBe('failure-rate');
    expect(r1.openedBy).toBe('failure-rate');
    expect(r2.openedBy).toBe('tripped');
    expect(r2.openedAt!).toBeGreaterThan(r1.failedAt!);
    // Bound: one sync interval (50 ms) plus a Redis round trip; 1 s leaves room for a loaded machine.
    expect(r2.openedAt! - r1.openedAt!).toBeLessThan(1_000);
  }, 60_000);
});

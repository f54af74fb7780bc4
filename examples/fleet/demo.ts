/**
 * `npm run demo -- fleet`: four replicas of a service call a partner API that allows
 * 100 requests a second in total, on real HTTP over 127.0.0.1, with a real redis-server.
 * Three runs, same load (each replica offers 50 requests a second: 200 for the fleet):
 * - local limits: every replica has `rateLimiter({ ratePerSecond: 100 })`, the partner's
 *   limit, as each team configured it: the fleet sends twice the quota and gets 429s;
 * - one shared limit: `fleetRateLimiter` through Redis: the fleet keeps to the quota;
 * - Redis dies mid-run (killed, then restarted): calls go on, each replica keeps to its
 *   share on its own, and the fleet decides together again once Redis is back.
 * The replicas run in this process, each with its own Redis connection and fleet, the
 * same code a service runs. Options: `--seconds N` per run (default 8).
 */
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { isRateLimitedError, pipeline, type Pipeline, type Policy, rateLimiter, timeout } from '../../src/index.ts';
import { fleetRateLimiter, type FleetRateLimiterPolicy, redisFleet, type RedisFleet } from '../../src/redis/index.ts';
import { type DemoOptions, displayPath, formatTable, renderChart, writeResults } from '../harness/index.ts';
import { RedisProcess, redisServerBinary } from '../harness/redis.ts';

const QUOTA = 100;
const REPLICAS = 4;
const OFFERED_PER_REPLICA = 50;

/** The partner API: 100 requests per wall-clock second, then 429 until the next second. */
class PartnerApi {
  readonly #server: Server;
  /** Requests received in each wall-clock second (epoch seconds), and how many got a 429. */
  readonly perSecond = new Map<number, number>();
  readonly tooManyPerSecond = new Map<number, number>();
  accepted = 0;
  tooMany = 0;
  port = 0;

  constructor() {
    this.#server = createServer((request, response) => {
      const second = Math.floor(Date.now() / 1000);
      const count = (this.perSecond.get(second) ?? 0) + 1;
      this.perSecond.set(second, count);
      if (count > QUOTA) {
        this.tooMany++;
        this.tooManyPerSecond.set(second, (this.tooManyPerSecond.get(second) ?? 0) + 1);
        response.writeHead(429, { 'retry-after': '1' }).end();
      } else {
        this.accepted++;
        response.writeHead(200).end('quote');
      }
      request.resume();
    });
    this.#server.keepAliveTimeout = 1_000;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
  }

  /** Requests received in the busiest wall-clock second since `from` (epoch ms). */
  busiestSecondSince(from: number): number {
    let most = 0;
    for (const [second, count] of this.perSecond) if (second * 1000 >= from) most = Math.max(most, count);
    return most;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** What one run measured. */
export interface RunResult {
  readonly run: string;
  /** When the run started (epoch ms), and per second of it: requests the partner got, and its 429s. */
  readonly from: number;
  readonly sentPerSecond: readonly number[];
  readonly tooManyPerSecond: readonly number[];
  readonly offered: number;
  readonly sent: number;
  readonly busiest: number;
  readonly tooMany: number;
  readonly refusedLocally: number;
  readonly failed: number;
  readonly degradedReplicaSeconds: number;
  /** When Redis was killed and restarted, in seconds into the run (the third run only). */
  readonly redisDownFromS?: number;
  readonly redisDownToS?: number;
}

/** One run: every replica offers its load through `calls[i]` for `seconds`; `during` runs alongside. */
async function runOnce(
  run: string,
  partner: PartnerApi,
  calls: readonly Pipeline<unknown>[],
  seconds: number,
  fleets: readonly RedisFleet[],
  during: () => Promise<void> = async () => {},
): Promise<RunResult> {
  const from = Date.now();
  const before = { accepted: partner.accepted, tooMany: partner.tooMany };
  let offered = 0;
  let refusedLocally = 0;
  let failed = 0;
  let degradedTicks = 0;
  const end = from + seconds * 1000;
  const intervalMs = 1000 / OFFERED_PER_REPLICA;
  const replicaLoops = calls.map(async (call) => {
    const inFlight: Promise<unknown>[] = [];
    for (let next = Date.now(); next < end; next += intervalMs) {
      await sleep(Math.max(0, next - Date.now()));
      offered++;
      inFlight.push(
        call
          .execute(async ({ signal }) => {
            const response = await fetch(`http://127.0.0.1:${partner.port}/quote`, { signal });
            await response.arrayBuffer();
            if (response.status === 429) throw new Error('429 from the partner');
          })
          .catch((error: unknown) => {
            if (isRateLimitedError(error)) refusedLocally++;
            else if (!String(error).includes('429')) failed++;
          }),
      );
    }
    await Promise.all(inFlight);
  });
  const watch = (async () => {
    while (Date.now() < end) {
      degradedTicks += fleets.filter((f) => f.degraded).length;
      await sleep(100);
    }
  })();
  await Promise.all([...replicaLoops, during(), watch]);
  const firstSecond = Math.floor(from / 1000);
  const span = Array.from({ length: Math.ceil(seconds) + 1 }, (_, i) => firstSecond + i);
  return {
    run,
    from,
    sentPerSecond: span.map((second) => partner.perSecond.get(second) ?? 0),
    tooManyPerSecond: span.map((second) => partner.tooManyPerSecond.get(second) ?? 0),
    offered,
    sent: partner.accepted - before.accepted + (partner.tooMany - before.tooMany),
    busiest: partner.busiestSecondSince(from),
    tooMany: partner.tooMany - before.tooMany,
    refusedLocally,
    failed,
    degradedReplicaSeconds: degradedTicks / 10,
  };
}

function option(argv: readonly string[], name: string, fallback: number): number {
  const at = argv.indexOf(name);
  const value = at >= 0 ? Number(argv[at + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a number above 0; received ${argv[at + 1]}`);
  return value;
}

/** What the three runs measured, and whether the fleet converged after Redis came back. */
export interface FleetDemoResult {
  readonly runs: readonly RunResult[];
  readonly converged: boolean;
}

/** `npm run demo -- fleet [--seconds N]`. */
export async function run(options: DemoOptions): Promise<string | void> {
  const log = options.log ?? ((line: string) => console.log(line));
  const binary = redisServerBinary();
  if (binary === undefined) {
    log('fleet: redis-server not found (REDIS_SERVER, PATH, /usr/bin); install it with: sudo apt-get install redis-server');
    process.exitCode = 1;
    return;
  }
  const seconds = option(options.argv, '--seconds', 8);
  const result = await fleetDemo({ binary, seconds, log });
  const dir = await writeResults('fleet', { 'chart.svg': chart(result, seconds), 'runs.json': `${JSON.stringify(result, null, 2)}\n` }, { root: options.resultsRoot });
  log(`Chart and numbers: ${displayPath(dir)}`);
  return dir;
}

/** One panel per run: what the partner received each second against its quota, and the 429s. */
export function chart(result: FleetDemoResult, seconds: number): string {
  return renderChart({
    title: `Four replicas, one partner quota of ${QUOTA} requests a second`,
    subtitle: `Each replica offers ${OFFERED_PER_REPLICA}/s (${REPLICAS * OFFERED_PER_REPLICA}/s for the fleet). Per wall-clock second, as the partner counts.`,
    columns: 3,
    panelWidth: 360,
    panels: result.runs.map((run) => ({
      title: run.run,
      xLabel: 'seconds',
      yLabel: 'requests / s',
      yMin: 0,
      series: [
        { name: 'received by the partner', points: run.sentPerSecond.map((y, x) => [x, y] as const) },
        { name: '429 from the partner', points: run.tooManyPerSecond.map((y, x) => [x, y] as const) },
        { name: 'quota', points: [[0, QUOTA], [run.sentPerSecond.length - 1, QUOTA]], dashed: true, color: '#888' },
      ],
      shades: run.redisDownFromS === undefined ? [] : [{ fromX: run.redisDownFromS, toX: run.redisDownToS ?? seconds, label: 'Redis killed' }],
    })),
  });
}

/** Runs the three runs and prints the table; resolves with what they measured (the test reads it). */
export async function fleetDemo({ binary, seconds, log }: { binary: string; seconds: number; log: (line: string) => void }): Promise<FleetDemoResult> {
  const redis = await RedisProcess.start(binary);
  const partner = new PartnerApi();
  await partner.start();
  const connections: Redis[] = [];
  const fleets: RedisFleet[] = [];
  try {
    log(`fleet: ${REPLICAS} replicas, each offering ${OFFERED_PER_REPLICA} requests/s to a partner API that allows ${QUOTA}/s in total; ${seconds} s per run`);
    const partnerCall = (limit: Policy) => pipeline({ name: 'partner-api' }, limit, timeout({ ms: 2_000 }));

    log('run 1/3: local limits (each replica allows itself the partner\'s 100/s)');
    const local = await runOnce('local limits', partner, Array.from({ length: REPLICAS }, () => partnerCall(rateLimiter({ ratePerSecond: QUOTA, burst: 10 }))), seconds, []);

    const limiters: FleetRateLimiterPolicy[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      const connection = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      connection.on('error', () => {}); // the fleet reports Redis being down; the demo shows it
      await connection.connect();
      connections.push(connection);
      const fleet = redisFleet({ redis: connection, prefix: 'demo-fleet', replicaId: `replica-${i + 1}`, syncIntervalMs: 100, redisTimeoutMs: 50, retryRedisAfterMs: 500 });
      fleets.push(fleet);
      // A little under the quota: the partner counts in wall-clock seconds, the bucket continuously.
      limiters.push(fleetRateLimiter(fleet, { name: 'partner-api', ratePerSecond: QUOTA * 0.9, burst: 10, leaseSize: 2 }));
    }
    await sleep(300);
    const shared = limiters.map((limiter) => partnerCall(limiter));

    log('run 2/3: one limit shared through Redis (fleetRateLimiter, 90/s for the fleet)');
    const together = await runOnce('one shared limit', partner, shared, seconds, fleets);

    log('run 3/3: the same, and Redis is killed a third of the way in, restarted at two thirds');
    let killedAt = 0;
    let restartedAt = 0;
    const dying = await runOnce('shared, Redis dies', partner, shared, seconds, fleets, async () => {
      await sleep((seconds * 1000) / 3);
      await redis.kill();
      killedAt = Date.now();
      log('  redis-server killed');
      await sleep((seconds * 1000) / 3);
      await redis.restart();
      restartedAt = Date.now();
      log('  redis-server restarted (empty)');
    });
    const startS = Math.floor(dying.from / 1000) * 1000;
    const redisDies: RunResult = { ...dying, redisDownFromS: (killedAt - startS) / 1000, redisDownToS: (restartedAt - startS) / 1000 };
    // Converging takes a reconnect and the guard's next try of Redis: wait for it, 10 s at most.
    const isConverged = () => fleets.every((f) => !f.degraded) && limiters.every((l) => l.deciding === 'fleet');
    for (let i = 0; i < 100 && !isConverged(); i++) await sleep(100);
    const converged = isConverged();

    const rows = [local, together, redisDies].map((r) => ({
      run: r.run,
      offered: `${(r.offered / seconds).toFixed(0)}/s`,
      sent: `${(r.sent / seconds).toFixed(0)}/s`,
      busiest: `${r.busiest}`,
      tooMany: `${r.tooMany}`,
      refused: `${r.refusedLocally}`,
      failed: `${r.failed}`,
      degraded: r.degradedReplicaSeconds.toFixed(1),
    }));
    log('');
    log(
      formatTable(
        [
          { key: 'run', title: 'run' },
          { key: 'offered', title: 'offered' },
          { key: 'sent', title: 'sent to partner' },
          { key: 'busiest', title: 'busiest second' },
          { key: 'tooMany', title: '429 from partner' },
          { key: 'refused', title: 'refused locally' },
          { key: 'failed', title: 'other failures' },
          { key: 'degraded', title: 'replica-seconds deciding alone' },
        ],
        rows,
      ),
    );
    log('');
    log('How to read this');
    log(`  - local limits: each replica keeps to 100/s, so the fleet sends up to ${REPLICAS * QUOTA}/s; the partner answers 429 to all it sends past 100 in a second.`);
    log('  - one shared limit: the fleet sends at most the quota; calls over it are refused at once in the replica (RateLimitedError with retryAfterMs), without a request.');
    log('  - Redis dies: no call fails because of it ("other failures"); while Redis is gone each replica keeps to its share (90/4 a second), and once it is back they decide together again.');
    log('    A few 429s around the kill and the restart are the stated slack: the tokens each replica held, and what it admitted alone while a lease was on its way.');
    log('  - "deciding alone" adds up the replicas that found Redis too slow (50 ms) or gone, sampled every 100 ms; a loaded machine shows a little of it even in run 2.');
    log(`  After the last run the fleet ${converged ? 'decides together again (converged)' : 'HAS NOT converged'}. Guide: docs/guides/fleet-wide-state.md`);
    return { runs: [local, together, redisDies], converged };
  } finally {
    await Promise.all(fleets.map((f) => f.close()));
    for (const connection of connections) connection.disconnect();
    await partner.stop();
    await redis.stop();
  }
}

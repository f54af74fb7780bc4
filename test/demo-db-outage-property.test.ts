/**
 * Property tests of the db-outage demo: the same service code as the demo, on
 * the harness's in-memory transport under a FakeClock, over the in-memory model
 * of a primary and a synchronous standby (examples/db-outage/database.ts).
 *
 * For any failure (frozen, or crashed as on a full disk), failure time, failure
 * length (or none: the primary never comes back),
 * read/write mix, rate, query time and pool size, with Breakwater:
 * - no acknowledged write is lost or applied twice;
 * - every read is answered, and none is staler than the bound it states;
 * - every write that fails, fails fast: 503 with Retry-After within the query timeout;
 * - the standby is promoted within a bound of the failure (if the primary is
 *   still down by then), and full service is back within a bound.
 * Without it (pool + p-retry, no timeout, promotion by hand), the same schedule
 * gives the documented outage: every request sent between the failure and the
 * manual promotion fails.
 * With asynchronous replication, the same service can lose acknowledged writes
 * or state a staleness it does not have: the guarantee above is the synchronous
 * standby's, and the tests show that it is needed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { memoryCluster, type MemoryClusterOptions } from '../examples/db-outage/database.ts';
import { runPhase } from '../examples/db-outage/scenario.ts';
import { DEFAULT_CONFIG, READ_ENDPOINT, WRITE_ENDPOINT } from '../examples/db-outage/service.ts';

const PROMOTE_MS = 300;
const MANUAL_FAILOVER_AFTER_MS = 8_000;

/**
 * From the failure to the promotion, at most: the breaker's window and one
 * timeout (by then the window holds only failures), the time it must stay
 * open, one check interval, the standby's health query, and the promotion.
 */
const FAILOVER_BOUND_MS =
  DEFAULT_CONFIG.breakerWindowMs + DEFAULT_CONFIG.queryTimeoutMs + DEFAULT_CONFIG.promoteAfterMs + DEFAULT_CONFIG.failoverCheckEveryMs + 20 + PROMOTE_MS;

const scheduleArb = fc.record({
  failAtMs: fc.integer({ min: 300, max: 6_000 }),
  /** How long the primary stays down; undefined: for the rest of the run. */
  failForMs: fc.option(fc.integer({ min: 50, max: 15_000 }), { nil: undefined }),
  /** Frozen (holds every query) or crashed, as on a full disk (fails every query). */
  failure: fc.constantFrom<'freeze' | 'crash'>('freeze', 'crash'),
  readShare: fc.double({ min: 0.05, max: 0.95, noNaN: true }),
  ratePerSecond: fc.integer({ min: 10, max: 40 }),
  queryMs: fc.integer({ min: 1, max: 10 }),
  poolSize: fc.integer({ min: 4, max: 10 }),
  seed: fc.integer(),
});

type Schedule = typeof scheduleArb extends fc.Arbitrary<infer S> ? S : never;

async function phase(variant: 'before' | 'after', s: Schedule, cluster: Partial<MemoryClusterOptions> = {}) {
  const clock = new FakeClock();
  const model = memoryCluster(clock, { queryMs: s.queryMs, poolSize: s.poolSize, promoteMs: PROMOTE_MS, failure: s.failure, ...cluster });
  return runPhase({
    variant,
    transport: 'memory',
    cluster: model,
    clock,
    random: seededRandom(s.seed),
    durationMs: s.failAtMs + 14_000,
    ratePerSecond: s.ratePerSecond,
    readShare: s.readShare,
    failAtMs: s.failAtMs,
    ...(s.failForMs !== undefined ? { failForMs: s.failForMs } : {}),
    manualFailoverAfterMs: MANUAL_FAILOVER_AFTER_MS,
  });
}

describe('db-outage, property: with Breakwater', () => {
  it('no acknowledged write is lost or applied twice; every read is answered within its stated staleness; failed writes fail fast', async () => {
    await fc.assert(
      fc.asyncProperty(scheduleArb, async (s) => {
        const r = await phase('after', s);
        expect(r.acknowledged).toBeGreaterThan(0);
        expect(r.lostWrites).toBe(0);
        expect(r.duplicateWrites).toBe(0);
        // Read-only mode: every read answered, none missing a write acknowledged before its stated staleness.
        const reads = r.records.filter((x) => x.endpoint === READ_ENDPOINT);
        expect(reads.filter((x) => !x.ok)).toEqual([]);
        expect(r.readObservations.length).toBe(reads.length);
        expect(r.staleReadsBeyondBound).toBe(0);
        // A write that fails, fails fast and says when to come back.
        const failed = r.records.filter((x) => x.endpoint === WRITE_ENDPOINT && !x.ok);
        for (const w of failed) {
          expect(w.status).toBe(503);
          expect(w.latencyMs).toBeLessThanOrEqual(DEFAULT_CONFIG.queryTimeoutMs + 2 * s.queryMs + 5);
        }
        expect(r.refusedWrites.withRetryAfter).toBe(failed.length);
      }),
      { numRuns: 30 },
    );
  });

  it('the standby is promoted within a bound of the failure when the primary stays down, and full service comes back within a bound', async () => {
    await fc.assert(
      fc.asyncProperty(scheduleArb, async (s) => {
        const r = await phase('after', s);
        const downFor = s.failForMs ?? Number.POSITIVE_INFINITY;
        if (downFor > FAILOVER_BOUND_MS) {
          expect(r.failovers).toHaveLength(1);
          expect(r.failovers[0]!.by).toBe('automation');
          expect(r.failovers[0]!.atMs - r.failedAtMs).toBeLessThanOrEqual(FAILOVER_BOUND_MS);
        }
        // Back in full: the primary's breaker closes at a probe after the primary returns or the standby takes over.
        const back = Math.min(downFor + DEFAULT_CONFIG.queryTimeoutMs, FAILOVER_BOUND_MS);
        expect(r.recoveryMs).toBeLessThanOrEqual(back + DEFAULT_CONFIG.halfOpenAfterMs + DEFAULT_CONFIG.queryTimeoutMs + 1_000);
      }),
      { numRuns: 30 },
    );
  });
});

describe('db-outage, property: without Breakwater (the incident)', () => {
  it('every request sent between the failure and the manual promotion fails, and the service recovers only after it', async () => {
    await fc.assert(
      fc.asyncProperty(scheduleArb, async (schedule) => {
        const s = { ...schedule, failForMs: undefined }; // the primary never comes back by itself
        const r = await phase('before', s);
        expect(r.failovers).toHaveLength(1);
        expect(r.failovers[0]!.by).toBe('operator');
        const promotedAt = r.failovers[0]!.atMs;
        // Sent after the failure and arriving (1 ms of network later) before the service points at the promoted standby.
        const during = r.records.filter((x) => x.startMs >= r.failedAtMs && x.startMs + 1 < promotedAt);
        expect(during.length).toBeGreaterThan(0);
        expect(during.filter((x) => x.ok)).toEqual([]);
        expect(r.recoveryMs).toBeGreaterThanOrEqual(MANUAL_FAILOVER_AFTER_MS);
        expect(r.lostWrites).toBe(0);
      }),
      { numRuns: 20 },
    );
  });
});

describe('db-outage: the guarantee is synchronous replication', () => {
  it('with an asynchronous standby, the same service loses acknowledged writes or reads staler than stated', async () => {
    const s: Schedule = { failAtMs: 4_000, failForMs: undefined, failure: 'freeze', readShare: 0.7, ratePerSecond: 50, queryMs: 2, poolSize: 10, seed: 7 };
    const sync = await phase('after', s);
    expect(sync.lostWrites + sync.staleReadsBeyondBound).toBe(0);
    const async = await phase('after', s, { replication: 'async', replicationDelayMs: 200 });
    expect(async.lostWrites).toBeGreaterThan(0);
    expect(async.staleReadsBeyondBound).toBeGreaterThan(0);
  });

  it('the model freezes, holds and thaws: a query held by a frozen primary goes on when it thaws', async () => {
    const clock = new FakeClock();
    const model = memoryCluster(clock, { queryMs: 5 });
    model.fail();
    let done = false;
    const read = model.primary.read(1).then((x) => {
      done = true;
      return x;
    });
    await clock.advance(10_000);
    expect(done).toBe(false);
    model.recover();
    await clock.advance(5);
    await expect(read).resolves.toEqual({ entries: 0, lagMs: 0 });
    // Aborting a held query rejects with the caller's reason and frees its connection.
    model.fail();
    const controller = new AbortController();
    const held = model.primary.insert({ requestId: 'w1', account: 1, amount: 1 }, controller.signal);
    controller.abort(new Error('gave up'));
    await expect(held).rejects.toThrow('gave up');
    model.recover();
    await clock.advance(10);
    expect((await model.ledger('primary')).size).toBe(0);
  });
});

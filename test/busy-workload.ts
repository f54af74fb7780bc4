/** A workload shared by the metrics tests of both sinks. */
import { expect } from 'vitest';
import {
  adaptiveLimit,
  aimd,
  bulkhead,
  circuitBreaker,
  constant,
  fallback,
  hedge,
  type Pipeline,
  pipeline,
  rateLimiter,
  retry,
  retryBudget,
  rollout,
  throttle,
  timeout,
} from '../src/index.ts';
import { chaos } from '../src/chaos/index.ts';
import { fleetRateLimiter, redisFleet } from '../src/redis/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';

/**
 * Three pipelines with every policy between them, handed to `attach` before
 * any call, then a workload that makes every metric count something and every
 * outcome happen, in virtual time.
 */
export async function busyWorkload(
  attach: (auth: Pipeline<string>, payments: Pipeline<never>, search: Pipeline<never>, ranking: Pipeline<never>, partner: Pipeline<never>) => void,
): Promise<void> {
  const clock = new FakeClock();
  const auth = pipeline(
    { name: 'auth', clock },
    fallback({ value: 'guest', handle: (e) => (e as Error).message === 'use fallback' }),
    bulkhead({ maxConcurrent: 1, maxQueue: 0, clock }),
    retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock }),
    circuitBreaker({ clock, minimumCalls: 5, halfOpenAfterMs: 1_000 }),
    timeout({ ms: 50, clock }),
  );
  const payments = pipeline(
    { name: 'payments-db', clock },
    retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), budget: retryBudget({ ratio: 0, minPerSecond: 0, clock }), clock }),
    timeout({ ms: 5, clock }),
  );
  const search = pipeline(
    { name: 'search', clock },
    rateLimiter({ ratePerSecond: 1_000, burst: 1, maxQueue: 1, clock }),
    throttle({ clock }),
    adaptiveLimit({ algorithm: aimd(), maxQueue: 10, clock }),
    hedge({ delayMs: 5, maxExtraLoad: 1, clock }),
    chaos({ kind: 'latency', ms: 1, injectionRate: 1, enabled: true, clock }),
  );
  const flag = { share: 1 as unknown };
  const feature = rollout({ experimental: () => Promise.reject(new Error('new code broke')), share: () => flag.share as number, rampStep: 1, minimumCalls: 2, clock });
  const ranking = pipeline({ name: 'ranking', clock }, feature);
  // partner: a fleet-wide limit whose Redis never answers, so it decides alone (fleet degraded).
  const unreachable = { eval: () => new Promise(() => {}), evalsha: () => new Promise(() => {}) };
  const fleet = redisFleet({ redis: unreachable, prefix: 'busy', clock });
  const partner = pipeline({ name: 'partner', clock }, fleetRateLimiter(fleet, { name: 'partner', ratePerSecond: 1_000 }));
  attach(auth, payments, search, ranking, partner);
  const controller = new AbortController();
  const calls = [track(auth.execute(({ signal }) => delayed(clock, 10, 'ok', signal))), track(auth.execute(() => 'never runs'))];
  await clock.advance(10);
  calls.push(track(auth.execute(() => Promise.reject(new Error('use fallback')))));
  calls.push(track(auth.execute(() => never(), { signal: controller.signal })));
  controller.abort(new Error('caller left'));
  await clock.advance(10);
  calls.push(track(auth.execute(() => never())));
  await clock.advance(200);
  for (let i = 0; i < 3; i++) {
    calls.push(track(auth.execute(() => Promise.reject(new Error('down')))));
    await clock.advance(10);
  }
  calls.push(track(auth.execute(() => 'short-circuited')));
  calls.push(track(payments.execute(() => never())));
  calls.push(track(payments.execute(() => 'ok')));
  calls.push(track(payments.execute(() => Promise.reject(new Error('db down')))));
  calls.push(track(search.execute(({ attempt }) => delayed(clock, attempt === 1 ? 50 : 1, 'hedged'))));
  calls.push(track(search.execute(({ signal }) => delayed(clock, 20, 'no budget', signal))));
  calls.push(track(search.execute(() => 'queued for a token')));
  calls.push(track(ranking.execute(() => 'stable')), track(ranking.execute(() => 'stable'))); // exposures that fail: rolled back
  flag.share = 7; // refused
  calls.push(track(ranking.execute(() => 'stable')));
  calls.push(track(partner.execute(() => 'decided alone')));
  await clock.advance(100);
  expect(calls.every((c) => c.status !== 'pending')).toBe(true);
  const closed = fleet.close(); // waits for its commands in flight, each bounded by redisTimeoutMs
  await clock.advance(10_000);
  await closed;
}

/**
 * breakwater/prometheus with the stateful policies: circuit breaker (Breakwater's
 * own and an adopted opossum breaker), bulkhead, retry and retry budget.
 */
import CircuitBreaker from 'opossum';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  fallback,
  pipeline,
  retry,
  retryBudget,
  timeout,
} from '../src/index.ts';
import { fromOpossum, runWork } from '../src/opossum/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';
import { type Sample, scrape, select, value } from './prometheus-helpers.ts';

const STATES = ['closed', 'open', 'half_open', 'isolated'];

function oneHot(samples: Sample[], name: string): Record<string, number> {
  return Object.fromEntries(select(samples, 'breakwater_circuit_state', { pipeline: name }).map((s) => [s.labels.state!, s.value]));
}

function transitions(samples: Sample[], name: string): Record<string, number> {
  return Object.fromEntries(select(samples, 'breakwater_circuit_transitions_total', { pipeline: name }).map((s) => [s.labels.to!, s.value]));
}

const fail = (): Promise<never> => Promise.reject(new Error('down'));

describe('circuit breaker metrics', () => {
  function setup() {
    const clock = new FakeClock();
    const registry = new Registry();
    const breaker = circuitBreaker({ clock, minimumCalls: 2, failureRateThreshold: 0.5, halfOpenAfterMs: 1_000 });
    const p = pipeline({ name: 'db', clock }, breaker);
    prometheusMetrics({ registry }).attach(p);
    return { clock, registry, breaker, p };
  }

  it('starts one-hot closed with every transition pre-initialised to 0', async () => {
    const { registry } = setup();
    const samples = await scrape(registry);
    expect(oneHot(samples, 'db')).toEqual({ closed: 1, open: 0, half_open: 0, isolated: 0 });
    expect(transitions(samples, 'db')).toEqual({ closed: 0, open: 0, half_open: 0, isolated: 0 });
    expect(select(samples, 'breakwater_circuit_state').map((s) => s.labels.state)).toEqual(STATES);
  });

  it('reports open, counts rejected calls without observing them, and reads half_open at scrape time with no call after the cooldown', async () => {
    const { clock, registry, p } = setup();
    await p.execute(fail).catch(() => {});
    await p.execute(fail).catch(() => {});
    await p.execute(() => 1).catch(() => {}); // rejected: the circuit is open
    let samples = await scrape(registry);
    expect(oneHot(samples, 'db')).toEqual({ closed: 0, open: 1, half_open: 0, isolated: 0 });
    expect(transitions(samples, 'db')).toMatchObject({ open: 1, half_open: 0 });
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'db', outcome: 'rejected' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'db', outcome: 'failure' })).toBe(2);
    expect(select(samples, 'breakwater_call_duration_seconds_count', { outcome: 'rejected' })).toEqual([]);
    expect(
      select(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'db' }).reduce((sum, s) => sum + s.value, 0),
    ).toBe(2);

    // No call at all: the cooldown ends, and the next scrape tells the truth.
    await clock.advance(1_000);
    samples = await scrape(registry);
    expect(oneHot(samples, 'db')).toEqual({ closed: 0, open: 0, half_open: 1, isolated: 0 });
    expect(transitions(samples, 'db')).toMatchObject({ open: 1, half_open: 1 });

    await p.execute(() => 'probe');
    samples = await scrape(registry);
    expect(oneHot(samples, 'db')).toEqual({ closed: 1, open: 0, half_open: 0, isolated: 0 });
    expect(transitions(samples, 'db')).toEqual({ closed: 1, open: 1, half_open: 1, isolated: 0 });
  });

  it('reports isolated while a kill switch holds it', async () => {
    const { registry, breaker, p } = setup();
    const handle = breaker.isolate();
    await p.execute(() => 1).catch(() => {});
    let samples = await scrape(registry);
    expect(oneHot(samples, 'db')).toEqual({ closed: 0, open: 0, half_open: 0, isolated: 1 });
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'db', outcome: 'rejected' })).toBe(1);
    handle.release();
    samples = await scrape(registry);
    expect(oneHot(samples, 'db')).toMatchObject({ closed: 1, isolated: 0 });
    expect(transitions(samples, 'db')).toMatchObject({ isolated: 1, closed: 1 });
  });

  it('refuses two breakers in one pipeline, and accepts the second in a named nested pipeline', async () => {
    const metrics = prometheusMetrics({ registry: new Registry() });
    expect(() => metrics.attach(pipeline({ name: 'x' }, circuitBreaker(), circuitBreaker()))).toThrow(
      /pipeline "x" has 2 circuit breakers; its state gauges can describe only one/,
    );
    expect(() => metrics.attach(pipeline({ name: 'y' }, circuitBreaker(), pipeline(circuitBreaker())))).toThrow(/2 circuit breakers/);

    const registry = new Registry();
    const hostBreaker = circuitBreaker();
    hostBreaker.isolate();
    const outer = pipeline({ name: 'endpoint' }, circuitBreaker(), pipeline({ name: 'host' }, hostBreaker));
    prometheusMetrics({ registry }).attach(outer);
    const samples = await scrape(registry);
    expect(oneHot(samples, 'endpoint')).toMatchObject({ closed: 1 });
    expect(oneHot(samples, 'host')).toMatchObject({ isolated: 1 });
  });

  it('stops listening to the breaker once detached', async () => {
    const { registry, breaker } = setup();
    const other = pipeline({ name: 'db2' }, breaker);
    const detach = prometheusMetrics({ registry }).attach(other);
    detach();
    breaker.isolate();
    const samples = await scrape(registry);
    expect(select(samples, 'breakwater_circuit_state', { pipeline: 'db2' })).toEqual([]);
    expect(transitions(samples, 'db')).toMatchObject({ isolated: 1 });
  });
});

describe('fromOpossum breaker metrics', () => {
  // opossum runs on the global timers: drive them with vitest's fake timers
  // (setImmediate stays real), as test/opossum.test.ts does.
  const breakers: CircuitBreaker[] = [];
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] });
  });
  afterEach(() => {
    for (const b of breakers.splice(0)) b.shutdown();
    vi.useRealTimers();
  });

  it('reports the same state, transitions and rejected outcome as the built-in breaker', async () => {
    const opossum = new CircuitBreaker(runWork, { name: 'dep', volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 60_000 });
    breakers.push(opossum as CircuitBreaker);
    const registry = new Registry();
    const p = pipeline({ name: 'legacy' }, fromOpossum(opossum));
    prometheusMetrics({ registry }).attach(p);
    let samples = await scrape(registry);
    expect(oneHot(samples, 'legacy')).toEqual({ closed: 1, open: 0, half_open: 0, isolated: 0 });
    expect(transitions(samples, 'legacy')).toEqual({ closed: 0, open: 0, half_open: 0, isolated: 0 });

    await p.execute(fail).catch(() => {});
    await p.execute(fail).catch(() => {});
    await p.execute(() => 1).catch(() => {});
    samples = await scrape(registry);
    expect(oneHot(samples, 'legacy')).toEqual({ closed: 0, open: 1, half_open: 0, isolated: 0 });
    expect(transitions(samples, 'legacy')).toMatchObject({ open: 1 });
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'legacy', outcome: 'rejected' })).toBe(1);
    expect(select(samples, 'breakwater_call_duration_seconds_count', { outcome: 'rejected' })).toEqual([]);

    await vi.advanceTimersByTimeAsync(60_000); // opossum's resetTimeout half-opens it
    samples = await scrape(registry);
    expect(oneHot(samples, 'legacy')).toMatchObject({ open: 0, half_open: 1 });
    expect(transitions(samples, 'legacy')).toMatchObject({ half_open: 1 });

    opossum.close();
    opossum.shutdown();
    samples = await scrape(registry);
    expect(oneHot(samples, 'legacy')).toEqual({ closed: 0, open: 0, half_open: 0, isolated: 1 });
    expect(transitions(samples, 'legacy')).toEqual({ closed: 1, open: 1, half_open: 1, isolated: 1 });
  });

  it('counts opossum timeouts in timeouts_total', async () => {
    const opossum = new CircuitBreaker(runWork, { name: 'slow', timeout: 5, volumeThreshold: 100 });
    breakers.push(opossum as CircuitBreaker);
    const registry = new Registry();
    const p = pipeline({ name: 'slow' }, fromOpossum(opossum));
    prometheusMetrics({ registry }).attach(p);
    const call = track(p.execute(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))));
    await vi.advanceTimersByTimeAsync(5);
    expect(call.status).toBe('rejected');
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_timeouts_total', { pipeline: 'slow' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'slow', outcome: 'timeout' })).toBe(1);
  });
});

describe('bulkhead metrics', () => {
  it('reads active and queued at scrape time and counts rejections of both kinds', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const p = pipeline({ name: 'search', clock }, bulkhead({ maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 50, clock }));
    prometheusMetrics({ registry }).attach(p);
    let samples = await scrape(registry);
    expect(value(samples, 'breakwater_bulkhead_active', { pipeline: 'search' })).toBe(0);
    expect(value(samples, 'breakwater_bulkhead_queued', { pipeline: 'search' })).toBe(0);
    expect(value(samples, 'breakwater_bulkhead_rejections_total', { pipeline: 'search' })).toBe(0);

    const calls = [1, 2, 3, 4].map(() => track(p.execute(({ signal }) => delayed(clock, 100, 'ok', signal))));
    await clock.flush();
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_bulkhead_active', { pipeline: 'search' })).toBe(2);
    expect(value(samples, 'breakwater_bulkhead_queued', { pipeline: 'search' })).toBe(1);
    expect(value(samples, 'breakwater_bulkhead_rejections_total', { pipeline: 'search' })).toBe(1); // full

    await clock.advance(50); // the queued call waited too long
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_bulkhead_queued', { pipeline: 'search' })).toBe(0);
    expect(value(samples, 'breakwater_bulkhead_rejections_total', { pipeline: 'search' })).toBe(2);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'search', outcome: 'rejected' })).toBe(2);

    await clock.advance(50);
    expect(calls.map((c) => c.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected']);
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_bulkhead_active', { pipeline: 'search' })).toBe(0);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'search', outcome: 'success' })).toBe(2);
    expect(value(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'search', outcome: 'success', le: '0.1' })).toBe(2);
  });

  it('refuses two bulkheads in one pipeline', () => {
    const metrics = prometheusMetrics({ registry: new Registry() });
    expect(() => metrics.attach(pipeline({ name: 'x' }, bulkhead({ maxConcurrent: 1 }), bulkhead({ maxConcurrent: 2 })))).toThrow(
      /pipeline "x" has 2 bulkheads/,
    );
  });
});

describe('retry metrics', () => {
  it('counts retries, and retries refused by the budget', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const free = pipeline({ name: 'search', clock }, retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock }));
    const budget = retryBudget({ ratio: 0, minPerSecond: 0, clock });
    const capped = pipeline({ name: 'payments', clock }, retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), budget, clock }));
    prometheusMetrics({ registry }).attach(free, capped);
    let samples = await scrape(registry);
    for (const name of ['search', 'payments']) {
      expect(value(samples, 'breakwater_retries_total', { pipeline: name })).toBe(0);
      expect(value(samples, 'breakwater_retry_budget_exhausted_total', { pipeline: name })).toBe(0);
    }

    const calls = [free, free, capped, capped].map((p) => track(p.execute(fail)));
    await clock.advance(100);
    expect(calls.map((c) => c.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_retries_total', { pipeline: 'search' })).toBe(4);
    expect(value(samples, 'breakwater_retry_budget_exhausted_total', { pipeline: 'search' })).toBe(0);
    expect(value(samples, 'breakwater_retries_total', { pipeline: 'payments' })).toBe(0);
    expect(value(samples, 'breakwater_retry_budget_exhausted_total', { pipeline: 'payments' })).toBe(2);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'payments', outcome: 'failure' })).toBe(2);
  });

  it('adds up counters of several retries and timeouts in one pipeline (an overall and a per-attempt timeout)', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const p = pipeline(
      { name: 'profile', clock },
      fallback({ value: 'cached' }),
      timeout({ ms: 1_000, clock }),
      retry({ maxAttempts: 2, backoff: constant({ ms: 0 }), clock }),
      timeout({ ms: 100, clock }),
    );
    prometheusMetrics({ registry }).attach(p);
    const call = track(p.execute(() => never()));
    await clock.advance(1_000);
    expect(call.value).toBe('cached');
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_timeouts_total', { pipeline: 'profile' })).toBe(2); // two attempts timed out
    expect(value(samples, 'breakwater_retries_total', { pipeline: 'profile' })).toBe(1);
    expect(value(samples, 'breakwater_fallbacks_total', { pipeline: 'profile', cause: 'timeout' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'profile', outcome: 'fallback' })).toBe(1);
  });
});

import fc from 'fast-check';
import { Counter, type Histogram, register, Registry } from 'prom-client';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { bulkhead, BulkheadRejectedError, circuitBreaker, fallback, hedge, type Outcome, type Pipeline, pipeline, rollout, timeout, TimeoutError } from '../src/index.ts';
import { chaos } from '../src/chaos/index.ts';
import { DEFAULT_BUCKETS_SECONDS, type PrometheusMetrics, prometheusMetrics } from '../src/prometheus/index.ts';
import type { Disposer } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';
import { scrape, select, value, FAMILIES } from './prometheus-helpers.ts';

const OUTCOMES: Outcome[] = ['success', 'failure', 'timeout', 'fallback', 'cancelled', 'rejected'];

/** Runs one call per requested outcome through `p`, driving `clock`; each call takes `durationMs`. */
async function drive(p: Pipeline<unknown>, clock: FakeClock, outcome: Outcome, durationMs = 0): Promise<void> {
  const controller = new AbortController();
  const call = track(
    p.execute(
      ({ signal }) => {
        switch (outcome) {
          case 'success':
            return delayed(clock, durationMs, 'ok', signal);
          case 'failure':
            return delayed(clock, durationMs, 0, signal).then(() => Promise.reject(new Error('boom')));
          case 'timeout':
            return delayed(clock, durationMs, 0, signal).then(() => Promise.reject(new TimeoutError(1)));
          case 'rejected':
            return Promise.reject(new BulkheadRejectedError(1, 0));
          case 'cancelled':
            clock.schedule(() => controller.abort(new Error('caller gave up')), durationMs);
            return never();
          case 'fallback':
            return delayed(clock, durationMs, 0, signal).then(() => Promise.reject(new Error('fall back')));
        }
      },
      { signal: controller.signal },
    ),
  );
  await clock.advance(durationMs);
  expect(call.status).not.toBe('pending');
}

function setup(options: { buckets?: number[]; withFallback?: boolean } = {}) {
  const clock = new FakeClock();
  const registry = new Registry();
  const metrics = prometheusMetrics({ registry, ...(options.buckets ? { buckets: options.buckets } : {}) });
  const p = pipeline({ name: 'auth', clock });
  return { clock, registry, metrics, p };
}

describe('prometheusMetrics: options', () => {
  const registry = new Registry();

  it('requires a registry and never falls back to the global one', () => {
    expect(() => prometheusMetrics(undefined as never)).toThrow(/prometheusMetrics: options must be an object; received undefined/);
    expect(() => prometheusMetrics({} as never)).toThrow(/option "registry" is required/);
    expect(() => prometheusMetrics({ registry: {} as never })).toThrow(/option "registry" must be a prom-client Registry.*received an object/);
  });

  it('rejects unknown options', () => {
    expect(() => prometheusMetrics({ registry, bucket: [1] } as never)).toThrow(/unknown option "bucket"/);
  });

  it.each([['1x_'], ['a-b_'], ['é_'], [' breakwater_'], [7]])('rejects prefix %j', (prefix) => {
    expect(() => prometheusMetrics({ registry, prefix: prefix as string })).toThrow(TypeError);
    expect(() => prometheusMetrics({ registry, prefix: prefix as string })).toThrow(/option "prefix" must be a metric-name prefix/);
  });

  it('accepts prefixes that follow metric-name rules, including none', () => {
    for (const prefix of ['', 'svc:', '_x_', 'Bw_9_']) {
      expect(prometheusMetrics({ registry: new Registry(), prefix }).prefix).toBe(prefix);
    }
  });

  it('checks buckets', () => {
    expect(() => prometheusMetrics({ registry, buckets: 0.1 as never })).toThrow(TypeError);
    for (const buckets of [[], [0.1, 0.1], [0.2, 0.1], [0, 1], [-1, 1], [Number.NaN], [1, Infinity], ['1'], Array(101).fill(0).map((_, i) => i + 1)]) {
      expect(() => prometheusMetrics({ registry: new Registry(), buckets: buckets as number[] }), JSON.stringify(buckets)).toThrow(RangeError);
    }
    expect(() => prometheusMetrics({ registry: new Registry(), buckets: [0.1, 0.1] })).toThrow(
      /option "buckets" must be a non-empty array .* strictly increasing; received \[0\.1, 0\.1\]/,
    );
  });

  it('checks constant labels: label-name rules, reserved names, string values', () => {
    const r = new Registry();
    expect(() => prometheusMetrics({ registry: r, labels: 'x' as never })).toThrow(/option "labels" must be an object/);
    expect(() => prometheusMetrics({ registry: r, labels: { 'a-b': 'x' } })).toThrow(/invalid label name "a-b"/);
    expect(() => prometheusMetrics({ registry: r, labels: { '1a': 'x' } })).toThrow(/invalid label name "1a"/);
    expect(() => prometheusMetrics({ registry: r, labels: { __name__: 'x' } })).toThrow(/invalid label name "__name__"/);
    for (const reserved of ['pipeline', 'outcome', 'state', 'to', 'le']) {
      expect(() => prometheusMetrics({ registry: r, labels: { [reserved]: 'x' } })).toThrow(new RegExp(`cannot set the label "${reserved}"`));
    }
    expect(() => prometheusMetrics({ registry: r, labels: { region: 1 as never } })).toThrow(/value of label "region" must be a string; received 1/);
  });

  it('exposes the default buckets, in seconds', () => {
    expect(DEFAULT_BUCKETS_SECONDS).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    expect(Object.isFrozen(DEFAULT_BUCKETS_SECONDS)).toBe(true);
  });
});

describe('prometheusMetrics: types', () => {
  it('accepts prom-client registries (own, global, OpenMetrics) and any pipeline', () => {
    expectTypeOf(prometheusMetrics).parameter(0).toHaveProperty('registry');
    const fromGlobal = (): PrometheusMetrics => prometheusMetrics({ registry: register });
    const fromOpenMetrics = (): PrometheusMetrics =>
      prometheusMetrics({ registry: new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>() });
    const attached = (m: PrometheusMetrics): Disposer =>
      m.attach(pipeline({ name: 'a' }, fallback({ value: 'x' })), pipeline({ name: 'b' }, timeout({ ms: 1 })));
    // @ts-expect-error a policy is not a pipeline
    const wrong = (m: PrometheusMetrics): Disposer => m.attach(timeout({ ms: 1 }));
    // @ts-expect-error the registry is required
    const noRegistry = (): PrometheusMetrics => prometheusMetrics({ prefix: 'x_' });
    expect([fromGlobal, fromOpenMetrics, attached, wrong, noRegistry].every((f) => typeof f === 'function')).toBe(true);
  });
});

describe('prometheusMetrics: attach', () => {
  it('refuses a pipeline without a name, naming the fix', () => {
    const metrics = prometheusMetrics({ registry: new Registry() });
    expect(() => metrics.attach(pipeline(timeout({ ms: 10 })))).toThrow(TypeError);
    expect(() => metrics.attach(pipeline(timeout({ ms: 10 })))).toThrow(/pipeline without a name; name it, as in pipeline\(\{ name: 'auth' \}/);
  });

  it('refuses what is not a pipeline, and no argument at all', () => {
    const metrics = prometheusMetrics({ registry: new Registry() });
    expect(() => metrics.attach(timeout({ ms: 10 }) as never)).toThrow(/argument 1 must be a pipeline created with pipeline\(\)/);
    expect(() => metrics.attach(null as never)).toThrow(/argument 1 must be a pipeline.*received null/);
    expect(() => (metrics.attach as () => void)()).toThrow(/expected at least one pipeline/);
  });

  it('refuses a pipeline name that is not a valid label value (pipeline() refuses it first)', () => {
    expect(() => pipeline({ name: 'a b' })).toThrow(/option "name"/);
    const noop = () => () => {};
    const fake = { kind: 'pipeline', name: 'bad name', policies: [], onSettled: noop, onDispose: noop } as unknown as ReturnType<typeof pipeline>;
    const metrics = prometheusMetrics({ registry: new Registry() });
    expect(() => metrics.attach(fake)).toThrow(/pipeline name "bad name" \(string\) is not a valid label value/);
  });

  it('registers every family of the contract, with its type, on the injected registry only', async () => {
    const registry = new Registry();
    prometheusMetrics({ registry });
    const json = await registry.getMetricsAsJSON();
    expect(json.map((m) => m.name)).toEqual(FAMILIES.map((f) => `breakwater_${f}`));
    const types = Object.fromEntries(json.map((m) => [m.name, m.type as unknown as string]));
    expect(types).toMatchObject({
      breakwater_calls_total: 'counter',
      breakwater_call_duration_seconds: 'histogram',
      breakwater_circuit_state: 'gauge',
      breakwater_circuit_transitions_total: 'counter',
      breakwater_bulkhead_active: 'gauge',
      breakwater_bulkhead_queued: 'gauge',
      breakwater_bulkhead_rejections_total: 'counter',
      breakwater_retries_total: 'counter',
      breakwater_retry_budget_exhausted_total: 'counter',
      breakwater_timeouts_total: 'counter',
      breakwater_fallbacks_total: 'counter',
      breakwater_circuit_rejections_total: 'counter',
      breakwater_hedges_total: 'counter',
      breakwater_hedge_wins_total: 'counter',
      breakwater_hedge_budget_exhausted_total: 'counter',
      breakwater_chaos_injections_total: 'counter',
      breakwater_throttle_rejections_total: 'counter',
      breakwater_throttle_probability: 'gauge',
      breakwater_adaptive_limit: 'gauge',
      breakwater_adaptive_in_flight: 'gauge',
      breakwater_adaptive_rejections_total: 'counter',
      breakwater_rate_limit_admitted_total: 'counter',
      breakwater_rate_limit_delayed_total: 'counter',
      breakwater_rate_limit_rejections_total: 'counter',
      breakwater_rollout_exposures_total: 'counter',
      breakwater_rollout_experiment_failures_total: 'counter',
      breakwater_rollout_rollbacks_total: 'counter',
      breakwater_rollout_share_refusals_total: 'counter',
      breakwater_rollout_share: 'gauge',
      breakwater_rollout_requested_share: 'gauge',
      breakwater_rollout_rolled_back: 'gauge',
      breakwater_fleet_degraded: 'gauge',
    });
    const { register } = await import('prom-client');
    expect(register.getSingleMetric('breakwater_calls_total')).toBeUndefined();
  });

  it('uses the prefix for every name', async () => {
    const registry = new Registry();
    prometheusMetrics({ registry, prefix: 'svc_' }).attach(pipeline({ name: 'a' }));
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(FAMILIES.map((f) => `svc_${f}`));
  });
});

describe('prometheusMetrics: calls and durations', () => {
  it('pre-initialises every outcome to 0 on attach, so rates work from the first scrape', async () => {
    const { registry, metrics, p } = setup();
    metrics.attach(p);
    const samples = await scrape(registry);
    for (const outcome of OUTCOMES) {
      expect(value(samples, 'breakwater_calls_total', { pipeline: 'auth', outcome })).toBe(0);
    }
    for (const outcome of OUTCOMES.filter((o) => o !== 'rejected')) {
      expect(value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'auth', outcome })).toBe(0);
      expect(value(samples, 'breakwater_call_duration_seconds_sum', { pipeline: 'auth', outcome })).toBe(0);
      expect(select(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'auth', outcome })).toHaveLength(12);
    }
  });

  it('counts each outcome, including cancelled (the caller aborted)', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const p = pipeline({ name: 'auth', clock }, fallback({ value: 'fb', handle: (e) => (e as Error).message === 'fall back' }));
    prometheusMetrics({ registry }).attach(p);
    const counts: Record<Outcome, number> = { success: 3, failure: 2, timeout: 4, fallback: 1, cancelled: 2, rejected: 5 };
    for (const outcome of OUTCOMES) for (let i = 0; i < counts[outcome]; i++) await drive(p, clock, outcome, 10);
    const samples = await scrape(registry);
    for (const outcome of OUTCOMES) {
      expect(value(samples, 'breakwater_calls_total', { pipeline: 'auth', outcome }), outcome).toBe(counts[outcome]);
    }
  });

  it('observes durations in seconds in cumulative buckets, and never observes rejected calls', async () => {
    const { clock, registry, metrics, p } = setup();
    metrics.attach(p);
    await drive(p, clock, 'success', 30); // 0.03 s: le 0.05 and up
    await drive(p, clock, 'success', 5); // 0.005 s: exactly on a bound, so le 0.005 and up
    await drive(p, clock, 'success', 20_000); // 20 s: only +Inf
    await drive(p, clock, 'failure', 250);
    await drive(p, clock, 'rejected');
    await drive(p, clock, 'rejected');
    const samples = await scrape(registry);
    const bucket = (le: string, outcome = 'success') =>
      value(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'auth', outcome, le });
    expect(bucket('0.005')).toBe(1);
    expect(bucket('0.025')).toBe(1);
    expect(bucket('0.05')).toBe(2);
    expect(bucket('10')).toBe(2);
    expect(bucket('+Inf')).toBe(3);
    expect(value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'auth', outcome: 'success' })).toBe(3);
    expect(value(samples, 'breakwater_call_duration_seconds_sum', { pipeline: 'auth', outcome: 'success' })).toBeCloseTo(20.035, 9);
    expect(bucket('0.1', 'failure')).toBe(0);
    expect(bucket('0.25', 'failure')).toBe(1);
    expect(value(samples, 'breakwater_call_duration_seconds_sum', { pipeline: 'auth', outcome: 'failure' })).toBeCloseTo(0.25, 9);
    // Rejected: counted, never observed (no histogram series at all).
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'auth', outcome: 'rejected' })).toBe(2);
    expect(select(samples, 'breakwater_call_duration_seconds_count', { outcome: 'rejected' })).toEqual([]);
    expect(select(samples, 'breakwater_call_duration_seconds_bucket', { outcome: 'rejected' })).toEqual([]);
  });

  it('uses custom buckets', async () => {
    const { clock, registry, metrics, p } = setup({ buckets: [0.001, 1] });
    metrics.attach(p);
    await drive(p, clock, 'success', 2);
    const samples = await scrape(registry);
    const les = select(samples, 'breakwater_call_duration_seconds_bucket', { outcome: 'success' }).map((s) => [s.labels.le, s.value]);
    expect(les).toEqual([
      ['0.001', 0],
      ['1', 1],
      ['+Inf', 1],
    ]);
  });

  it('counts timeouts and fallbacks, and reports those families only for pipelines that have the policy', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const guarded = pipeline({ name: 'guarded', clock }, fallback({ value: 0 }), timeout({ ms: 100, clock }));
    const plain = pipeline({ name: 'plain', clock });
    prometheusMetrics({ registry }).attach(guarded, plain);
    let samples = await scrape(registry);
    expect(value(samples, 'breakwater_timeouts_total', { pipeline: 'guarded' })).toBe(0);
    for (const cause of ['failure', 'timeout', 'circuit_open', 'bulkhead_full', 'rejected']) {
      expect(value(samples, 'breakwater_fallbacks_total', { pipeline: 'guarded', cause })).toBe(0);
    }
    const calls = [track(guarded.execute(() => never())), track(guarded.execute(() => never())), track(guarded.execute(() => 1))];
    await clock.advance(100);
    expect(calls.map((c) => c.value)).toEqual([0, 0, 1]);
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_timeouts_total', { pipeline: 'guarded' })).toBe(2);
    expect(value(samples, 'breakwater_fallbacks_total', { pipeline: 'guarded', cause: 'timeout' })).toBe(2); // what the fallback covered for
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'guarded', outcome: 'fallback' })).toBe(2);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'guarded', outcome: 'success' })).toBe(1);
    for (const family of ['timeouts_total', 'fallbacks_total', 'retries_total', 'bulkhead_active', 'circuit_state']) {
      expect(select(samples, `breakwater_${family}`, { pipeline: 'plain' }), family).toEqual([]);
    }
    expect(select(samples, 'breakwater_calls_total', { pipeline: 'plain' })).toHaveLength(6);
  });
});

describe('prometheusMetrics: the duration histogram at scrape time', () => {
  type Probe = Pipeline<unknown> & { record(outcome: 'success' | 'failure' | 'rejected', ms: number, count: number): Promise<void> };

  /** An attached pipeline on a clock the test moves: `record` makes `count` calls of `ms` each. */
  function probe(registry: Registry, name = 'p'): Probe {
    let now = 0;
    const clock = { now: () => now, schedule: () => undefined, cancel: () => {} };
    const p = pipeline({ name, clock });
    prometheusMetrics({ registry, buckets: [0.01, 0.1, 1] }).attach(p);
    const settle = { success: null, failure: new Error('boom'), rejected: new BulkheadRejectedError(1, 0) };
    return Object.assign(p, {
      async record(outcome: keyof typeof settle, ms: number, count: number): Promise<void> {
        const work = (): Promise<number> => {
          now += ms;
          return outcome === 'success' ? Promise.resolve(1) : Promise.reject(settle[outcome]);
        };
        for (let i = 0; i < count; i++) await p.execute(work).catch(() => {});
      },
    });
  }

  /**
   * Watches the duration histogram's `observe()` calls: how many in all, the most
   * in one turn of the event loop, and runs `afterFirst` once the first is made.
   * Call `stop()` when the scrape is done.
   */
  function watchReplay(registry: Registry, afterFirst?: () => void) {
    const histogram = registry.getSingleMetric('breakwater_call_duration_seconds') as Histogram<string>;
    const observe = histogram.observe.bind(histogram) as (labels: object, v: number) => void;
    const seen = { total: 0, mostInOneTurn: 0, stop: () => {} };
    let inThisTurn = 0;
    let watching = true;
    const tick = (): void => {
      inThisTurn = 0;
      if (watching) setImmediate(tick);
    };
    setImmediate(tick);
    seen.stop = () => (watching = false);
    (histogram as unknown as { observe: (labels: object, v: number) => void }).observe = (labels, v) => {
      seen.total++;
      seen.mostInOneTurn = Math.max(seen.mostInOneTurn, ++inThisTurn);
      if (seen.total === 1) afterFirst?.();
      observe(labels, v);
    };
    return seen;
  }

  it('replays a large backlog exactly: every bucket, the count and the sum, a few thousand observations per turn', async () => {
    const registry = new Registry();
    const p = probe(registry);
    await p.record('success', 3, 5_000); // le 0.01
    await p.record('success', 10, 2_000); // exactly on 0.01
    await p.record('success', 400, 3_000); // le 1
    await p.record('success', 7_000, 1); // +Inf
    await p.record('failure', 50, 1_234); // le 0.1
    await p.record('rejected', 0, 9); // counted, never observed
    const replay = watchReplay(registry);
    const samples = await scrape(registry);
    replay.stop();
    expect(replay.total).toBe(11_235);
    expect(replay.mostInOneTurn).toBeLessThanOrEqual(4_096); // I/O gets a turn between chunks
    const bucket = (outcome: string, le: string) => value(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'p', outcome, le });
    expect([bucket('success', '0.01'), bucket('success', '0.1'), bucket('success', '1'), bucket('success', '+Inf')]).toEqual([7_000, 7_000, 10_000, 10_001]);
    expect(value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'p', outcome: 'success' })).toBe(10_001);
    expect(value(samples, 'breakwater_call_duration_seconds_sum', { pipeline: 'p', outcome: 'success' })).toBeCloseTo(5_000 * 0.003 + 2_000 * 0.01 + 3_000 * 0.4 + 7, 6);
    expect([bucket('failure', '0.01'), bucket('failure', '0.1'), bucket('failure', '+Inf')]).toEqual([0, 1_234, 1_234]);
    expect(value(samples, 'breakwater_call_duration_seconds_sum', { pipeline: 'p', outcome: 'failure' })).toBeCloseTo(1_234 * 0.05, 6);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'p', outcome: 'success' })).toBe(10_001);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'p', outcome: 'rejected' })).toBe(9);
    expect(select(samples, 'breakwater_call_duration_seconds_count', { outcome: 'rejected' })).toEqual([]);
  });

  it('keeps each replayed observation in its bucket when the durations of a bucket sit on its bounds', async () => {
    const registry = new Registry();
    const p = probe(registry);
    await p.record('success', 100, 3); // exactly on 0.1
    await p.record('success', 10.000001, 3); // just above 0.01
    const samples = await scrape(registry);
    const bucket = (le: string) => value(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'p', outcome: 'success', le });
    expect([bucket('0.01'), bucket('0.1'), bucket('1')]).toEqual([0, 6, 6]);
  });

  it('two overlapping scrapes never replay one observation twice', async () => {
    const registry = new Registry();
    const p = probe(registry);
    await p.record('success', 3, 10_000);
    const [a, b] = await Promise.all([scrape(registry), scrape(registry)]);
    const count = (samples: typeof a) => value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'p', outcome: 'success' });
    expect(Math.max(count(a), count(b))).toBe(10_000);
    expect(count(await scrape(registry))).toBe(10_000);
  });

  it('a pipeline detached while a scrape replays loses its series; the others are replayed in full', async () => {
    const registry = new Registry();
    const gone = probe(registry, 'gone');
    const kept = probe(registry, 'kept');
    await gone.record('success', 3, 6_000);
    await kept.record('success', 3, 6_000);
    const replay = watchReplay(registry, () => setImmediate(() => gone.dispose()));
    const samples = await scrape(registry);
    replay.stop();
    expect(replay.total).toBeLessThan(12_000);
    expect(select(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'gone' })).toEqual([]);
    expect(select(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'gone' })).toEqual([]);
    expect(value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'kept', outcome: 'success' })).toBe(6_000);
  });

  it('a registry reset while a scrape replays drops what was recorded before it', async () => {
    const registry = new Registry();
    const p = probe(registry);
    await p.record('success', 3, 9_000);
    const replay = watchReplay(registry, () => setImmediate(() => registry.resetMetrics()));
    await registry.metrics();
    replay.stop();
    expect(replay.total).toBeLessThan(9_000);
    await p.record('success', 3, 2);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'p', outcome: 'success' })).toBe(2);
    expect(value(samples, 'breakwater_call_duration_seconds_bucket', { pipeline: 'p', outcome: 'success', le: '0.01' })).toBe(2);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'p', outcome: 'success' })).toBe(2);
  });
});

describe('prometheusMetrics: nested pipelines', () => {
  it('reports the policies of an unnamed nested pipeline under the outer name', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const outer = pipeline({ name: 'outer', clock }, fallback({ value: 0 }), pipeline(timeout({ ms: 10, clock })));
    prometheusMetrics({ registry }).attach(outer);
    track(outer.execute(() => never()));
    await clock.advance(10);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_timeouts_total', { pipeline: 'outer' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'outer', outcome: 'fallback' })).toBe(1);
  });

  it('gives a named nested pipeline its own series', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const inner = pipeline({ name: 'inner', clock }, timeout({ ms: 10, clock }));
    const outer = pipeline({ name: 'outer', clock }, fallback({ value: 0 }), inner);
    const detach = prometheusMetrics({ registry }).attach(outer);
    track(outer.execute(() => never()));
    await clock.advance(10);
    let samples = await scrape(registry);
    expect(value(samples, 'breakwater_timeouts_total', { pipeline: 'inner' })).toBe(1);
    expect(select(samples, 'breakwater_timeouts_total', { pipeline: 'outer' })).toEqual([]);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'inner', outcome: 'timeout' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'outer', outcome: 'fallback' })).toBe(1);
    detach();
    samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total')).toEqual([]);
  });

  it('refuses a nested pipeline whose name is taken by another pipeline', () => {
    const metrics = prometheusMetrics({ registry: new Registry() });
    expect(() => metrics.attach(pipeline({ name: 'a' }, pipeline({ name: 'a' })))).toThrow(/another pipeline named "a" is already reported/);
  });
});

describe('prometheusMetrics: sinks, detach and dispose', () => {
  it('a second sink on the same registry reuses the metrics instead of throwing', async () => {
    const registry = new Registry();
    const first = prometheusMetrics({ registry });
    const second = prometheusMetrics({ registry });
    first.attach(pipeline({ name: 'a' }));
    second.attach(pipeline({ name: 'b' }));
    const samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total', { outcome: 'success' }).map((s) => s.labels.pipeline)).toEqual(['a', 'b']);
    expect((await registry.getMetricsAsJSON()).length).toBe(FAMILIES.length);
  });

  it('reports a pipeline attached twice through one sink once, until its last attachment goes', async () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const p = pipeline({ name: 'a' });
    const d1 = metrics.attach(p);
    const d2 = metrics.attach(pipeline({ name: 'outer' }, p)); // nested: held again
    await p.execute(() => 1);
    let samples = await scrape(registry);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'a', outcome: 'success' })).toBe(1);
    d1();
    d1();
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'a', outcome: 'success' })).toBe(1);
    d2();
    samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total')).toEqual([]);
  });

  it('refuses a pipeline another sink with the same constant labels reports, until that sink lets it go', () => {
    const registry = new Registry();
    const p = pipeline({ name: 'a' });
    const first = prometheusMetrics({ registry });
    const detach = first.attach(p);
    const second = prometheusMetrics({ registry });
    expect(() => second.attach(p)).toThrow(/pipeline "a" is already reported on this registry by another sink with the same constant labels/);
    detach();
    expect(() => second.attach(p)).not.toThrow();
  });

  it('refuses two different pipelines with the same name on one registry, and allows it after a dispose', () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const old = pipeline({ name: 'a' });
    metrics.attach(old);
    expect(() => prometheusMetrics({ registry }).attach(pipeline({ name: 'a' }))).toThrow(TypeError);
    expect(() => metrics.attach(pipeline({ name: 'a' }))).toThrow(/another pipeline named "a" is already reported on this registry/);
    old.dispose();
    expect(() => metrics.attach(pipeline({ name: 'a' }))).not.toThrow();
  });

  it('keeps series apart when sinks have different constant labels', async () => {
    const registry = new Registry();
    const p = pipeline({ name: 'a' });
    prometheusMetrics({ registry, labels: { zone: 'x' } }).attach(p);
    prometheusMetrics({ registry, labels: { zone: 'y' } }).attach(p);
    await p.execute(() => 1);
    const samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total', { outcome: 'success' }).map((s) => [s.labels.zone, s.value])).toEqual([
      ['x', 1],
      ['y', 1],
    ]);
  });

  it('refuses a second sink with other buckets under the same prefix, and allows another prefix', () => {
    const registry = new Registry();
    prometheusMetrics({ registry, buckets: [0.1, 1] });
    expect(() => prometheusMetrics({ registry, buckets: [0.1, 2] })).toThrow(
      /option "buckets" must match the buckets of the metrics already registered under prefix "breakwater_"/,
    );
    expect(() => prometheusMetrics({ registry, buckets: [0.1, 1] })).not.toThrow();
    expect(() => prometheusMetrics({ registry, prefix: 'other_', buckets: [0.1, 2] })).not.toThrow();
  });

  it('refuses a second sink with other constant label names under the same prefix', () => {
    const registry = new Registry();
    prometheusMetrics({ registry, labels: { zone: 'x' } });
    expect(() => prometheusMetrics({ registry, labels: { region: 'x' } })).toThrow(
      /option "labels" must have the label names of the metrics already registered under prefix "breakwater_" on this registry \(\[zone\]\); received \[region\]/,
    );
    expect(() => prometheusMetrics({ registry })).toThrow(TypeError);
    expect(() => prometheusMetrics({ registry, labels: { zone: 'y' } })).not.toThrow();
    expect(() => prometheusMetrics({ registry, prefix: 'other_', labels: { region: 'x' } })).not.toThrow();
  });

  it('refuses a registry where the name is taken by a metric Breakwater did not register', () => {
    const registry = new Registry();
    new Counter({ name: 'breakwater_retries_total', help: 'mine', registers: [registry] });
    expect(() => prometheusMetrics({ registry })).toThrow(/already has a metric named "breakwater_retries_total" that Breakwater did not register/);
  });

  it('re-registers its families after someone removed them from the registry', async () => {
    const registry = new Registry();
    prometheusMetrics({ registry }).attach(pipeline({ name: 'a' }));
    registry.removeSingleMetric('breakwater_calls_total');
    prometheusMetrics({ registry });
    const samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total', { pipeline: 'a' })).toHaveLength(6);
  });

  it('pipeline.dispose() removes its series and stops counting; a new pipeline with that name starts at 0', async () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const a = pipeline({ name: 'a' }, timeout({ ms: 100 }));
    const b = pipeline({ name: 'b' });
    metrics.attach(a, b);
    await a.execute(() => 1);
    a.dispose();
    expect(() => a.execute(() => 1)).toThrow(/pipeline "a": disposed/);
    let samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total', { pipeline: 'a' })).toEqual([]);
    expect(select(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'a' })).toEqual([]);
    expect(select(samples, 'breakwater_timeouts_total', { pipeline: 'a' })).toEqual([]);
    expect(select(samples, 'breakwater_calls_total', { pipeline: 'b' })).toHaveLength(6);
    const again = pipeline({ name: 'a' });
    metrics.attach(again);
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'a', outcome: 'success' })).toBe(0);
  });

  it('the disposer stops counting: a later attach of the same pipeline starts from 0', async () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const a = pipeline({ name: 'a' });
    const detach = metrics.attach(a);
    await a.execute(() => 1);
    detach();
    await a.execute(() => 1);
    metrics.attach(a);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'a', outcome: 'success' })).toBe(0);
  });

  it('sink.dispose() detaches everything attached through that sink only', async () => {
    const registry = new Registry();
    const one = prometheusMetrics({ registry });
    const two = prometheusMetrics({ registry });
    one.attach(pipeline({ name: 'a' }), pipeline({ name: 'b' }));
    two.attach(pipeline({ name: 'c' }));
    one.dispose();
    const samples = await scrape(registry);
    expect([...new Set(select(samples, 'breakwater_calls_total').map((s) => s.labels.pipeline))]).toEqual(['c']);
  });

  it('a disposed nested pipeline loses its series; the outer one reports the calls it now refuses as failures', async () => {
    const registry = new Registry();
    const inner = pipeline({ name: 'inner' });
    const outer = pipeline({ name: 'outer' }, inner);
    prometheusMetrics({ registry }).attach(outer);
    inner.dispose();
    await expect(outer.execute(() => 1)).rejects.toThrow(/pipeline "inner": disposed/);
    const samples = await scrape(registry);
    expect(select(samples, 'breakwater_calls_total', { pipeline: 'inner' })).toEqual([]);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'outer', outcome: 'failure' })).toBe(1);
  });
});

describe('prometheusMetrics: exposition', () => {
  it('adds constant labels and the registry default labels to every series', async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ service: 'checkout' });
    const p = pipeline({ name: 'a' }, timeout({ ms: 100 }));
    prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(p);
    const samples = await scrape(registry);
    expect(samples.length).toBeGreaterThan(0);
    for (const s of samples) expect(s.labels, s.name).toMatchObject({ pipeline: 'a', region: 'eu-1', service: 'checkout' });
  });

  it('escapes constant label values', async () => {
    const registry = new Registry();
    prometheusMetrics({ registry, labels: { note: 'a "quoted"\\ line\nbreak' } }).attach(pipeline({ name: 'a' }));
    const samples = await scrape(registry);
    expect(samples[0]!.labels.note).toBe('a "quoted"\\ line\nbreak');
  });

  it('getMetricsAsJSON reports plain label objects (cluster aggregation reads those)', async () => {
    const registry = new Registry();
    const p = pipeline({ name: 'a' });
    prometheusMetrics({ registry }).attach(p);
    await p.execute(() => 1);
    const json = await registry.getMetricsAsJSON();
    const calls = json.find((m) => m.name === 'breakwater_calls_total')!;
    expect(calls.values).toContainEqual({ value: 1, labels: { pipeline: 'a', outcome: 'success' } });
    const histogram = json.find((m) => m.name === 'breakwater_call_duration_seconds')!;
    expect(histogram.values).toContainEqual(
      expect.objectContaining({ metricName: 'breakwater_call_duration_seconds_bucket', labels: { le: '+Inf', pipeline: 'a', outcome: 'success' }, value: 1 }),
    );
  });

  it('works with an OpenMetrics registry', async () => {
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const p = pipeline({ name: 'a' });
    prometheusMetrics({ registry }).attach(p);
    await p.execute(() => 1);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE breakwater_calls counter');
    expect(text).toContain('breakwater_calls_total{pipeline="a",outcome="success"} 1');
    expect(text.endsWith('# EOF\n')).toBe(true);
    // A second sink after an OpenMetrics scrape (which renames counters in place) reuses the families.
    prometheusMetrics({ registry }).attach(pipeline({ name: 'b' }));
    const again = await registry.metrics();
    expect(again.match(/# TYPE breakwater_calls counter/g)).toHaveLength(1);
    expect(again).toContain('breakwater_calls_total{pipeline="b",outcome="success"} 0');
  });

  it('registry.resetMetrics() zeroes the counts', async () => {
    const registry = new Registry();
    const p = pipeline({ name: 'a' });
    prometheusMetrics({ registry }).attach(p);
    await p.execute(() => 1);
    registry.resetMetrics();
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'a', outcome: 'success' })).toBe(0);
    expect(value(samples, 'breakwater_call_duration_seconds_count', { pipeline: 'a', outcome: 'success' })).toBe(0);
  });
});

describe('prometheusMetrics: counters are monotonic', () => {
  it('never go down between scrapes and match the calls made (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constantFrom(...OUTCOMES), fc.constant('scrape' as const)), { maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 30_000 }), { minLength: 1, maxLength: 5 }),
        async (steps, durations) => {
          const clock = new FakeClock();
          const registry = new Registry();
          const p = pipeline({ name: 'p', clock }, fallback({ value: 0, handle: (e) => (e as Error).message === 'fall back' }));
          prometheusMetrics({ registry }).attach(p);
          const expected = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
          let previous = new Map<string, number>();
          let i = 0;
          const check = async (): Promise<void> => {
            const now = new Map<string, number>();
            for (const s of await scrape(registry)) {
              if (s.name.endsWith('_total') || s.name.endsWith('_bucket') || s.name.endsWith('_count') || s.name.endsWith('_sum')) {
                now.set(`${s.name}${JSON.stringify(s.labels)}`, s.value);
              }
            }
            for (const [key, v] of previous) expect(now.get(key), key).toBeGreaterThanOrEqual(v);
            previous = now;
            for (const o of OUTCOMES) {
              expect(now.get(`breakwater_calls_total${JSON.stringify({ pipeline: 'p', outcome: o })}`)).toBe(expected[o]);
            }
          };
          for (const step of steps) {
            if (step === 'scrape') await check();
            else {
              await drive(p, clock, step, durations[i++ % durations.length]!);
              expected[step]++;
            }
          }
          await check();
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('prometheusMetrics: what fallbacks cover for, refusals, hedges, chaos, bounds', () => {
  it('counts fallbacks by the cause they replaced, and breaker refusals even when a fallback answers them', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const breaker = circuitBreaker({ clock, minimumCalls: 2, halfOpenAfterMs: 60_000 });
    const p = pipeline({ name: 'shop', clock }, fallback({ value: 'cached' }), bulkhead({ maxConcurrent: 1 }), breaker, timeout({ ms: 10, clock }));
    prometheusMetrics({ registry }).attach(p);
    const slow = track(p.execute(() => never())); // holds the slot, then times out
    expect(await p.execute(() => 'x')).toBe('cached'); // bulkhead full
    await clock.advance(10);
    expect(slow.value).toBe('cached');
    expect(await p.execute(() => Promise.reject(new Error('down')))).toBe('cached'); // failure: the breaker opens
    expect(await p.execute(() => 'x')).toBe('cached'); // circuit open
    const samples = await scrape(registry);
    const cause = (c: string) => value(samples, 'breakwater_fallbacks_total', { pipeline: 'shop', cause: c });
    expect([cause('timeout'), cause('bulkhead_full'), cause('failure'), cause('circuit_open'), cause('rejected')]).toEqual([1, 1, 1, 1, 0]);
    expect(value(samples, 'breakwater_circuit_rejections_total', { pipeline: 'shop' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'shop', outcome: 'fallback' })).toBe(4);
  });

  it('counts hedges started, won and refused, and chaos injections by kind', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const p = pipeline(
      { name: 'search', clock },
      hedge({ delayMs: 5, maxExtraLoad: 0.5, clock }),
      chaos({ kind: 'latency', ms: 1, injectionRate: 1, enabled: true, clock }),
    );
    prometheusMetrics({ registry }).attach(p);
    const calls = [
      track(p.execute(({ attempt }) => delayed(clock, attempt === 1 ? 50 : 1, 'ok'))), // no balance yet (0.5): refused
      track(p.execute(({ attempt }) => delayed(clock, attempt === 1 ? 50 : 1, 'ok'))), // balance 1: hedged, the hedge wins
    ];
    await clock.advance(100);
    expect(calls.map((c) => c.value)).toEqual(['ok', 'ok']);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_hedges_total', { pipeline: 'search' })).toBe(1);
    expect(value(samples, 'breakwater_hedge_wins_total', { pipeline: 'search' })).toBe(1);
    expect(value(samples, 'breakwater_hedge_budget_exhausted_total', { pipeline: 'search' })).toBe(1);
    expect(value(samples, 'breakwater_chaos_injections_total', { pipeline: 'search', kind: 'latency' })).toBe(3);
    expect(value(samples, 'breakwater_chaos_injections_total', { pipeline: 'search', kind: 'fault' })).toBe(0);
  });

  it('reports a guarded rollout: exposures, failures answered by the stable path, rollbacks by reason, refused flag values, shares', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const flag = { share: 0.5 as unknown };
    let n = 0;
    const feature = rollout({
      experimental: () => (n++ % 2 === 0 ? Promise.reject(new Error('new code broke')) : 'new'),
      share: () => flag.share as number,
      rampStep: 0.5,
      minimumCalls: 4,
      errorRateMargin: 0.4,
      clock,
      random: () => 0.25, // every call goes to the experiment while the share is above 0.25
    });
    const p = pipeline({ name: 'ranking', clock }, feature);
    prometheusMetrics({ registry }).attach(p);
    const gauges = async (): Promise<number[]> => {
      const samples = await scrape(registry);
      return ['share', 'requested_share', 'rolled_back'].map((g) => value(samples, `breakwater_rollout_${g}`, { pipeline: 'ranking' }));
    };
    expect(await gauges()).toEqual([0, 0, 0]);
    for (let i = 0; i < 3; i++) await p.execute(() => 'stable');
    flag.share = 5; // refused: the share stays 0.5
    await p.execute(() => 'stable');
    // 4 exposures, 2 failed: rate 0.5 against 0, over the margin: rolled back, share 0; the refused 5 left the request at 0.5
    expect(await gauges()).toEqual([0, 0.5, 1]);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_rollout_exposures_total', { pipeline: 'ranking' })).toBe(4);
    expect(value(samples, 'breakwater_rollout_experiment_failures_total', { pipeline: 'ranking' })).toBe(2);
    expect(value(samples, 'breakwater_rollout_share_refusals_total', { pipeline: 'ranking' })).toBe(1);
    expect(value(samples, 'breakwater_rollout_rollbacks_total', { pipeline: 'ranking', reason: 'error_rate' })).toBe(1);
    expect(value(samples, 'breakwater_rollout_rollbacks_total', { pipeline: 'ranking', reason: 'signal_rate' })).toBe(0);
    expect(feature.rolledBack?.reason).toBe('error-rate');
  });

  it('bounds the pipelines per registry, refuses a disposed pipeline, and refuses buckets in milliseconds', () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry, maxPipelines: 3 });
    metrics.attach(pipeline({ name: 'a' }), pipeline({ name: 'b' }), pipeline({ name: 'c' }));
    expect(() => metrics.attach(pipeline({ name: 'user-4' }))).toThrow(
      /pipeline "user-4" would be pipeline number 4 on this registry, over maxPipelines \(3\); name pipelines per dependency, never per request or user/,
    );
    const gone = pipeline({ name: 'gone' });
    gone.dispose();
    expect(() => prometheusMetrics({ registry: new Registry() }).attach(gone)).toThrow(/pipeline "gone", was disposed/);
    expect(() => prometheusMetrics({ registry: new Registry(), buckets: [100, 500, 1000] })).toThrow(
      /option "buckets" looks like milliseconds, but the buckets of call_duration_seconds are in seconds: write \[0.1, 0.5, 1\]/,
    );
    expect(() => prometheusMetrics({ registry: new Registry(), buckets: [1, 2, 5, 10, 30, 60, 120] })).not.toThrow();
    expect(() => prometheusMetrics({ registry: new Registry(), maxPipelines: 0 })).toThrow(/option "maxPipelines" must be/);
  });
});

describe('prometheusMetrics: the pipeline bound and disposed pipelines, nested', () => {
  it('a pipeline already reported does not count again against maxPipelines', () => {
    const m = prometheusMetrics({ registry: new Registry(), maxPipelines: 2 });
    const a = pipeline({ name: 'a' });
    const b = pipeline({ name: 'b' });
    m.attach(a);
    expect(() => m.attach(a, b)).not.toThrow();
    expect(() => m.attach(pipeline({ name: 'c' }))).toThrow(/over maxPipelines \(2\)/);
  });

  it('refuses a disposed pipeline nested in a live one', () => {
    const inner = pipeline({ name: 'inner' });
    const outer = pipeline({ name: 'outer' }, inner);
    inner.dispose();
    expect(() => prometheusMetrics({ registry: new Registry() }).attach(outer)).toThrow(/pipeline "inner" was disposed/);
  });
});

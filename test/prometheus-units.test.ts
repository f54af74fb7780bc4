/**
 * How both metrics sinks (breakwater/prometheus, breakwater/opentelemetry) find
 * and count a pipeline's policies: by the events and getters each exposes, so a
 * policy from another copy of Breakwater, or an adapter such as `fromOpossum`,
 * is measured like a built-in one, and an object that only looks similar is not.
 * Then the counters of the policies whose metrics no other fast suite scrapes:
 * throttle, adaptive limit and rate limiter.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { adaptiveLimit, aimd, pipeline, rateLimiter, throttle } from '../src/index.ts';
import { Emitter } from '../src/core/events.ts';
import { isRateLimitedError, isThrottledError } from '../src/core/errors.ts';
import {
  BUCKETS,
  BULKHEAD_REJECTIONS,
  BUDGET_EXHAUSTED,
  CHAOS,
  checkBuckets,
  causeIndex,
  CIRCUIT_REJECTIONS,
  countInto,
  EXPERIMENT_FAILURES,
  EXPOSURES,
  FALLBACKS,
  HEDGE_BUDGET_EXHAUSTED,
  HEDGE_WINS,
  HEDGES,
  holdAttachment,
  isGateLike,
  isPipelineLike,
  LIMIT_DROPS,
  RATE_ADMITTED,
  RATE_DELAYED,
  RATE_REJECTED,
  RETRIES,
  ROLLBACKS,
  SHARE_REFUSALS,
  stateIndex,
  THROTTLED,
  TIMEOUTS,
  TRANSITIONS,
  type PipelineLike,
  type Unit,
  unitsOf,
} from '../src/prometheus/policies.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { track } from './helpers.ts';
import { scrape, value } from './prometheus-helpers.ts';

type Bag = Record<string, unknown>;

/** An event source shaped like a policy's `onSomething`, with a way to fire it. */
function source<E = unknown>(): Emitter<E> {
  return new Emitter<E>();
}

const ev = () => source().subscribe;

function fakePipeline(name: string | undefined, policies: unknown[], extra: Bag = {}): PipelineLike {
  return { kind: 'pipeline', name, policies, onSettled: ev(), onDispose: ev(), ...extra } as unknown as PipelineLike;
}

/** One shape per kind of policy the sinks measure, each complete. */
const shapes = {
  breaker: () => ({ kind: 'x', state: 'closed', onStateChange: ev() }),
  bulkhead: () => ({ kind: 'x', active: 0, queued: 0, onReject: ev() }),
  retry: () => ({ kind: 'x', onRetry: ev() }),
  hedge: () => ({ kind: 'x', onHedge: ev(), onHedgeWon: ev(), onBudgetExhausted: ev() }),
  chaos: () => ({ kind: 'x', onInjected: ev() }),
  rateLimiter: () => ({ kind: 'x', onAdmit: ev(), onReject: ev(), tokens: 1 }),
  limit: () => ({ kind: 'x', onLimitChange: ev(), onReject: ev(), limit: 1, inFlight: 0 }),
  throttle: () => ({ kind: 'x', onReject: ev(), probability: 0 }),
  rollout: () => ({ kind: 'x', onRollback: ev(), onExposure: ev(), share: 0, onExperimentFailed: ev(), onShareRefused: ev() }),
  shared: () => ({ kind: 'x', deciding: 'fleet' }),
  timeout: () => ({ kind: 'x', onTimeout: ev() }),
  fallback: () => ({ kind: 'x', onFallback: ev() }),
};

const lists = {
  breaker: 'breakers',
  bulkhead: 'bulkheads',
  retry: 'retries',
  hedge: 'hedges',
  chaos: 'chaos',
  rateLimiter: 'rateLimiters',
  limit: 'limits',
  throttle: 'throttles',
  rollout: 'rollouts',
  shared: 'shared',
  timeout: 'timeouts',
  fallback: 'fallbacks',
} as const;

/** The members whose presence (with the right type) makes each shape recognised. */
const required: Record<keyof typeof shapes, string[]> = {
  breaker: ['state', 'onStateChange'],
  bulkhead: ['active', 'queued', 'onReject'],
  retry: ['onRetry'],
  hedge: ['onHedge', 'onHedgeWon'],
  chaos: ['onInjected'],
  rateLimiter: ['onAdmit', 'onReject', 'tokens'],
  limit: ['onLimitChange', 'limit', 'inFlight'],
  throttle: ['onReject', 'probability'],
  rollout: ['onRollback', 'onExposure', 'share'],
  shared: ['deciding'],
  timeout: ['onTimeout'],
  fallback: ['onFallback'],
};

function classified(policy: unknown): string[] {
  const [unit] = unitsOf(fakePipeline('p', [policy]));
  return Object.entries(lists)
    .filter(([, list]) => (unit as unknown as Record<string, unknown[]>)[list]!.includes(policy as never))
    .map(([kind]) => kind);
}

describe('unitsOf: which policies the sinks measure', () => {
  it('recognises each kind of policy by its events and getters, as exactly that kind', () => {
    for (const kind of Object.keys(shapes) as (keyof typeof shapes)[]) {
      expect(classified(shapes[kind]()), kind).toEqual([kind]);
    }
  });

  it('does not recognise a shape with any required member missing or of the wrong type', () => {
    for (const kind of Object.keys(shapes) as (keyof typeof shapes)[]) {
      for (const member of required[kind]) {
        const missing: Bag = shapes[kind]();
        delete missing[member];
        expect(classified(missing), `${kind} without ${member}`).not.toContain(kind);
        const wrong: Bag = { ...shapes[kind](), [member]: typeof shapes[kind]()[member as never] === 'function' ? 1 : () => 1 };
        expect(classified(wrong), `${kind} with ${member} of the wrong type`).not.toContain(kind);
      }
    }
  });

  it('measures a bulkhead that also has a probability as a bulkhead, not a throttle', () => {
    expect(classified({ ...shapes.bulkhead(), probability: 0.5 })).toEqual(['bulkhead']);
  });

  it('reports a fleet-wide budget held by a policy once, even when several policies share it', () => {
    const budget = { deciding: 'alone' };
    const a = { ...shapes.retry(), budget };
    const b = { ...shapes.retry(), budget };
    const [unit] = unitsOf(fakePipeline('p', [a, b, { budget: { deciding: 1 } }, { budget: null }]));
    expect(unit!.shared).toEqual([budget]);
    expect(unit!.retries).toEqual([a, b]);
  });

  it('skips values that are not objects', () => {
    const [unit] = unitsOf(fakePipeline('p', [null, undefined, 1, 'bulkhead', () => 1]));
    expect(Object.values(lists).every((list) => (unit as unknown as Record<string, unknown[]>)[list]!.length === 0)).toBe(true);
  });

  it('reports a named nested pipeline as its own unit, once, and merges unnamed ones into the pipeline around them', () => {
    const inner = shapes.timeout();
    const named = fakePipeline('inner', [inner]);
    const unnamedRetry = shapes.retry();
    const emptyName = shapes.chaos();
    const root = fakePipeline('outer', [named, fakePipeline(undefined, [unnamedRetry, named]), fakePipeline('', [emptyName])]);
    const units = unitsOf(root);
    expect(units.map((u) => u.pipeline.name)).toEqual(['outer', 'inner']);
    expect(units[0]!.retries).toEqual([unnamedRetry]);
    expect(units[0]!.chaos).toEqual([emptyName]);
    expect(units[0]!.timeouts).toEqual([]);
    expect(units[1]!.timeouts).toEqual([inner]);
  });

  it('stops at a cycle of unnamed pipelines instead of looping', () => {
    const policies: unknown[] = [shapes.retry()];
    const a = fakePipeline(undefined, policies);
    policies.push(a);
    const [unit] = unitsOf(fakePipeline('p', [a]));
    expect(unit!.retries).toHaveLength(1);
  });

  it('treats an object as a pipeline only with kind "pipeline", a policies array and both events', () => {
    expect(isPipelineLike(fakePipeline('p', []))).toBe(true);
    expect(isPipelineLike(fakePipeline('p', [], { kind: 'bulkhead' }))).toBe(false);
    expect(isPipelineLike(fakePipeline('p', [], { policies: {} }))).toBe(false);
    expect(isPipelineLike(fakePipeline('p', [], { onSettled: 1 }))).toBe(false);
    expect(isPipelineLike(fakePipeline('p', [], { onDispose: undefined }))).toBe(false);
    expect(isPipelineLike(null)).toBe(false);
    // A pipeline-like object missing an event is measured as a plain policy, not walked.
    const lookalike = { kind: 'pipeline', policies: [shapes.retry()], onSettled: ev() };
    expect(unitsOf(fakePipeline('p', [lookalike]))[0]!.retries).toEqual([]);
  });

  it('treats an object as a gate only with kind "http-gate", a name, a limit and a classes array', () => {
    const gate = { kind: 'http-gate', name: 'api', limit: 10, classes: [] };
    expect(isGateLike(gate)).toBe(true);
    for (const [key, bad] of [['kind', 'gate'], ['name', 1], ['limit', '10'], ['classes', {}]] as const) {
      expect(isGateLike({ ...gate, [key]: bad }), key).toBe(false);
    }
    expect(isGateLike(null)).toBe(false);
    expect(isGateLike(Object.assign(function api() {}, { kind: 'http-gate', limit: 10, classes: [] }))).toBe(false);
    expect(isGateLike('http-gate')).toBe(false);
  });
});

describe('causeIndex and stateIndex: label values', () => {
  it('names the kind of error a fallback replaced by its Breakwater code', () => {
    const code = (c: unknown) => causeIndex({ code: c });
    expect(code('ERR_BREAKWATER_TIMEOUT')).toBe(1);
    expect(code('ERR_BREAKWATER_BROKEN_CIRCUIT')).toBe(2);
    expect(code('ERR_BREAKWATER_ISOLATED_CIRCUIT')).toBe(2);
    expect(code('ERR_BREAKWATER_BULKHEAD_REJECTED')).toBe(3);
    expect(code('ERR_BREAKWATER_THROTTLED')).toBe(4);
    expect(code('ERR_BREAKWATER_')).toBe(4);
    expect(code('X_ERR_BREAKWATER_TIMEOUT')).toBe(0);
    expect(code('ECONNRESET')).toBe(0);
    expect(code(undefined)).toBe(0);
    expect(code(42)).toBe(0);
    expect(causeIndex(null)).toBe(0);
    expect(causeIndex(undefined)).toBe(0);
    expect(causeIndex('ERR_BREAKWATER_TIMEOUT')).toBe(0);
    const hostile = Object.defineProperty({}, 'code', {
      get() {
        throw new Error('no');
      },
    });
    expect(causeIndex(hostile)).toBe(0);
  });

  it('maps breaker states, in either spelling of half-open, and nothing else', () => {
    expect(['closed', 'open', 'half-open', 'half_open', 'isolated', 'shut', ''].map(stateIndex)).toEqual([0, 1, 2, 2, 3, -1, -1]);
  });
});

describe('countInto: each event counted in its own slot', () => {
  it('counts every policy event into the slot the metric families read, and unsubscribes with the disposers', () => {
    const e = {
      state: source<{ to: string }>(),
      circuitReject: source(),
      bulkheadReject: source(),
      retry: source(),
      budget: source(),
      timeout: source(),
      fallback: source<{ error?: unknown } | undefined>(),
      hedge: source(),
      won: source(),
      hedgeBudget: source(),
      injected: source<{ kind?: unknown } | undefined>(),
      throttled: source(),
      dropped: source(),
      admit: source<{ waitedMs?: number } | undefined>(),
      rateReject: source(),
      exposure: source(),
      failed: source(),
      rollback: source<{ reason?: unknown } | undefined>(),
      refused: source(),
    };
    const unit = {
      ...unitsOf(fakePipeline('p', []))[0]!,
      breakers: [{ kind: 'b', state: 'closed', onStateChange: e.state.subscribe, onReject: e.circuitReject.subscribe }, { kind: 'o', state: 'closed', onStateChange: source<{ to: string }>().subscribe }],
      bulkheads: [{ kind: 'k', active: 0, queued: 0, onReject: e.bulkheadReject.subscribe }],
      retries: [{ kind: 'r', onRetry: e.retry.subscribe, onBudgetExhausted: e.budget.subscribe }, { kind: 'r2', onRetry: ev() }],
      timeouts: [{ kind: 't', onTimeout: e.timeout.subscribe }],
      fallbacks: [{ kind: 'f', onFallback: e.fallback.subscribe }],
      hedges: [{ kind: 'h', onHedge: e.hedge.subscribe, onHedgeWon: e.won.subscribe, onBudgetExhausted: e.hedgeBudget.subscribe }],
      chaos: [{ kind: 'c', onInjected: e.injected.subscribe }],
      throttles: [{ kind: 'th', onReject: e.throttled.subscribe, probability: 0 }],
      limits: [{ kind: 'l', onReject: e.dropped.subscribe, limit: 1, inFlight: 0 }],
      rateLimiters: [{ kind: 'rl', onAdmit: e.admit.subscribe, onReject: e.rateReject.subscribe }],
      rollouts: [
        {
          kind: 'ro', share: 0, requestedShare: 0, rolledBack: undefined,
          onExposure: e.exposure.subscribe, onExperimentFailed: e.failed.subscribe, onRollback: e.rollback.subscribe, onShareRefused: e.refused.subscribe,
        },
      ],
    };
    const data = new Float64Array(BUCKETS);
    const disposers: (() => void)[] = [];
    // Payloads may be missing: a policy from elsewhere is trusted for its shape, not its payloads.
    countInto(unit as unknown as Unit, data, disposers);
    // One subscription per event above, plus the second breaker's and the second retry's.
    expect(disposers).toHaveLength(21);

    for (const to of ['closed', 'open', 'open', 'half-open', 'isolated', 'nowhere']) e.state.emit({ to });
    e.circuitReject.emit(undefined);
    e.bulkheadReject.emit(undefined);
    e.retry.emit(undefined);
    e.retry.emit(undefined);
    e.budget.emit(undefined);
    e.timeout.emit(undefined);
    e.fallback.emit({ error: new Error('x') });
    e.fallback.emit(undefined);
    e.fallback.emit({ error: { code: 'ERR_BREAKWATER_TIMEOUT' } });
    e.fallback.emit({ error: { code: 'ERR_BREAKWATER_RATE_LIMITED' } });
    e.hedge.emit(undefined);
    e.hedge.emit(undefined);
    e.won.emit(undefined);
    e.hedgeBudget.emit(undefined);
    for (const kind of ['fault', 'latency', 'latency', 'outcome', 'other']) e.injected.emit({ kind });
    e.injected.emit(undefined);
    e.throttled.emit(undefined);
    e.dropped.emit(undefined);
    e.dropped.emit(undefined);
    e.admit.emit({ waitedMs: 0 });
    e.admit.emit({ waitedMs: 5 });
    e.admit.emit(undefined);
    e.rateReject.emit(undefined);
    e.exposure.emit(undefined);
    e.exposure.emit(undefined);
    e.failed.emit(undefined);
    e.rollback.emit({ reason: 'error-rate' });
    for (let i = 0; i < 3; i++) e.rollback.emit({ reason: 'signal-rate' });
    e.rollback.emit({ reason: 'boredom' });
    e.rollback.emit(undefined);
    e.refused.emit(undefined);

    const expected = new Float64Array(BUCKETS);
    expected.set([1, 2, 1, 1], TRANSITIONS);
    expected[CIRCUIT_REJECTIONS] = 1;
    expected[BULKHEAD_REJECTIONS] = 1;
    expected[RETRIES] = 2;
    expected[BUDGET_EXHAUSTED] = 1;
    expected[TIMEOUTS] = 1;
    expected.set([2, 1, 0, 0, 1], FALLBACKS);
    expected[HEDGES] = 2;
    expected[HEDGE_WINS] = 1;
    expected[HEDGE_BUDGET_EXHAUSTED] = 1;
    expected.set([1, 2, 1], CHAOS);
    expected[THROTTLED] = 1;
    expected[LIMIT_DROPS] = 2;
    expected[RATE_ADMITTED] = 3;
    expected[RATE_DELAYED] = 1;
    expected[RATE_REJECTED] = 1;
    expected[EXPOSURES] = 2;
    expected[EXPERIMENT_FAILURES] = 1;
    expected.set([1, 3], ROLLBACKS);
    expected[SHARE_REFUSALS] = 1;
    expect(Array.from(data)).toEqual(Array.from(expected));

    for (const dispose of disposers) dispose();
    expect(Object.values(e).every((emitter) => !emitter.active)).toBe(true);
  });
});

describe('holdAttachment: one attachment, released once', () => {
  it('releases every entry once, whether the disposer or the pipeline goes first, and forgets its listener', () => {
    const dispose = source<void>();
    const root = fakePipeline('p', [], { onDispose: dispose.subscribe });
    const released: string[] = [];
    const attachments = new Set<() => void>();
    const detach = holdAttachment(root, ['a', 'b'], (entry) => released.push(entry), attachments);
    expect(attachments.has(detach)).toBe(true);
    expect(dispose.active).toBe(true);
    detach();
    detach();
    expect(released).toEqual(['a', 'b']);
    expect(attachments.size).toBe(0);
    expect(dispose.active).toBe(false);

    const second = holdAttachment(root, ['c'], (entry) => released.push(entry), attachments);
    dispose.emit();
    dispose.emit();
    second();
    expect(released).toEqual(['a', 'b', 'c']);
    expect(attachments.size).toBe(0);
  });

  it('releases at once, without throwing, for a pipeline that reports its disposal as the listener subscribes', () => {
    const root = fakePipeline('p', [], {
      onDispose: (listener: () => void) => {
        listener();
        return () => {};
      },
    });
    const released: string[] = [];
    const attachments = new Set<() => void>();
    const detach = holdAttachment(root, ['a'], (entry) => released.push(entry), attachments);
    expect(released).toEqual(['a']);
    expect(attachments.size).toBe(0);
    detach();
    expect(released).toEqual(['a']);
  });
});

describe('checkBuckets: the rule, and what the error shows', () => {
  const check = checkBuckets('call_duration_seconds');
  const run = (value: unknown) => () => check('prometheusMetrics', 'buckets', value);
  const range = (n: number, step = 0.01) => Array.from({ length: n }, (_, i) => (i + 1) * step);

  it('accepts up to 100 strictly increasing bounds of seconds and refuses 101', () => {
    expect(run(range(100))).not.toThrow();
    expect(run([0.5])).not.toThrow();
    expect(run(range(101))).toThrow(/option "buckets" must be a non-empty array of at most 100 finite numbers of seconds, greater than 0 and strictly increasing/);
    expect(run([])).toThrow(RangeError);
    expect(run('0.1')).toThrow(TypeError);
  });

  it('refuses a bound that does not increase, is not finite or is not a number', () => {
    expect(run([0.1, 0.1])).toThrow(/strictly increasing; received \[0\.1, 0\.1\]/);
    expect(run([0.2, 0.1])).toThrow(RangeError);
    expect(run([0, 1])).toThrow(RangeError);
    expect(run([0.1, Infinity])).toThrow(RangeError);
    expect(run([0.1, '1'])).toThrow(/received \[0\.1, "1" \(string\)\]/);
  });

  it('shows at most 12 bounds of a refused array', () => {
    const long = [...range(13), 0];
    expect(run(long)).toThrow(/received \[0\.01, 0\.02, 0\.03, 0\.04, 0\.05, 0\.06, 0\.07, 0\.08, 0\.09, 0\.1, 0\.11, 0\.12, …\]$/);
    const twelve = [...range(11), 0];
    expect(run(twelve)).toThrow(/received \[0\.01, 0\.02, 0\.03, 0\.04, 0\.05, 0\.06, 0\.07, 0\.08, 0\.09, 0\.1, 0\.11, 0\]$/);
  });

  it('refuses milliseconds written by habit, suggesting the same bounds in seconds', () => {
    expect(run([10, 100, 1000])).toThrow(/looks like milliseconds, but the buckets of call_duration_seconds are in seconds: write \[0\.01, 0\.1, 1\]; received \[10, 100, 1000\]$/);
    expect(run([10, 50, 100, 500, 1000])).toThrow(/write \[0\.01, 0\.05, 0\.1, 0\.5, …\]; received/);
    expect(run([10, 50, 100, 1000])).toThrow(/write \[0\.01, 0\.05, 0\.1, 1\]; received/);
    // Seconds are seconds: a long tail alone, or a first bound of 10 s alone, is not milliseconds.
    expect(run([1, 10, 100, 1000])).not.toThrow();
    expect(run([10, 30, 60, 120])).not.toThrow();
  });
});

describe('metrics of the policies that shed load locally', () => {
  it('throttle: counts each local refusal and reads the refusal probability at scrape time', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const policy = throttle({ minimumRequests: 1, requestsPerAccept: 1, clock, random: () => 0 });
    const p = pipeline({ name: 'ads', clock }, policy);
    prometheusMetrics({ registry }).attach(p);
    const errors: unknown[] = [];
    for (let i = 0; i < 6; i++) await p.execute(() => Promise.reject(new Error('503'))).catch((error: unknown) => errors.push(error));
    const refused = errors.filter(isThrottledError).length;
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThan(6);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_throttle_rejections_total', { pipeline: 'ads' })).toBe(refused);
    expect(value(samples, 'breakwater_throttle_probability', { pipeline: 'ads' })).toBe(policy.probability);
    expect(policy.probability).toBeGreaterThan(0);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'ads', outcome: 'rejected' })).toBe(refused);
  });

  it('adaptive limit: reports the limit and the calls in flight now, and counts the calls it refused', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const p = pipeline({ name: 'db', clock }, adaptiveLimit({ algorithm: aimd(), minLimit: 1, maxLimit: 1, initialLimit: 1, clock }));
    prometheusMetrics({ registry }).attach(p);
    let finish!: (value: string) => void;
    const held = track(p.execute(() => new Promise<string>((resolve) => (finish = resolve))));
    const refused = await p.execute(() => 'x').then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(Error);
    let samples = await scrape(registry);
    expect(value(samples, 'breakwater_adaptive_limit', { pipeline: 'db' })).toBe(1);
    expect(value(samples, 'breakwater_adaptive_in_flight', { pipeline: 'db' })).toBe(1);
    expect(value(samples, 'breakwater_adaptive_rejections_total', { pipeline: 'db' })).toBe(1);
    finish('done');
    await clock.advance(0);
    expect(held.value).toBe('done');
    samples = await scrape(registry);
    expect(value(samples, 'breakwater_adaptive_in_flight', { pipeline: 'db' })).toBe(0);
  });

  it('rate limiter: counts calls admitted at once, admitted after a wait, and refused', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const p = pipeline({ name: 'api', clock }, rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 2, clock }));
    prometheusMetrics({ registry }).attach(p);
    const calls = [0, 1, 2].map(() => track(p.execute(() => 'ok')));
    const refused = await p.execute(() => 'ok').then(() => undefined, (error: unknown) => error);
    expect(isRateLimitedError(refused)).toBe(true);
    await clock.advance(200);
    expect(calls.map((c) => c.value)).toEqual(['ok', 'ok', 'ok']);
    const samples = await scrape(registry);
    expect(value(samples, 'breakwater_rate_limit_admitted_total', { pipeline: 'api' })).toBe(3);
    expect(value(samples, 'breakwater_rate_limit_delayed_total', { pipeline: 'api' })).toBe(2);
    expect(value(samples, 'breakwater_rate_limit_rejections_total', { pipeline: 'api' })).toBe(1);
  });
});

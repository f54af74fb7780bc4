/**
 * The model behind the random-pipeline properties: a scenario is a random
 * pipeline (random policies, order, options and nesting), random work per
 * attempt, and random calls with random caller aborts, all in virtual time.
 * `runScenario` plays one scenario on a FakeClock and returns every broken
 * invariant as a sentence (an empty list means the scenario passed), so the
 * properties, the regression tests and the harness's own self-test share it.
 */
import fc from 'fast-check';
import { Registry } from 'prom-client';
import {
  type BackoffSchedule,
  bulkhead,
  type BulkheadPolicy,
  circuitBreaker,
  type CircuitBreakerPolicy,
  constant,
  exponential,
  fallback,
  isBreakwaterError,
  isRejection,
  isTimeoutError,
  type Jitter,
  type Outcome,
  pipeline,
  type Pipeline,
  type Policy,
  retry,
  type RetryBudget,
  retryBudget,
  timeout,
  type Chain,
  PolicyBase,
  type Scope,
  type Work,
} from '../../src/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import { abortListenerCount, delayed } from '../helpers.ts';

// ---------------------------------------------------------------------------
// The model

/** What the work throws or rejects with: Errors and the non-Errors people do throw. */
export type Thrown = 'error' | 'string' | 'undefined' | 'null' | 'zero' | 'object';

/** What one invocation of the work does. */
export type Behaviour =
  | { readonly kind: 'resolve'; readonly afterMs: number } // 0: an already-resolved promise
  | { readonly kind: 'reject'; readonly afterMs: number; readonly thrown: Thrown }
  | { readonly kind: 'throwSync'; readonly thrown: Thrown }
  | { readonly kind: 'value' } // a plain, non-promise value
  | { readonly kind: 'thenable' } // a foreign thenable that resolves at once
  | { readonly kind: 'hang' } // a promise that never settles, signal ignored
  | { readonly kind: 'neverThenable' } // a thenable whose `then` never calls back
  | { readonly kind: 'honourAbort'; readonly afterMs: number; readonly fail: boolean };

/** A backoff schedule's options. */
export type BackoffSpec =
  | { readonly kind: 'constant'; readonly ms: number; readonly jitter: 'none' | 'full' | 'equal' }
  | { readonly kind: 'exponential'; readonly initialMs: number; readonly maxMs: number; readonly factor: number; readonly jitter: Jitter };

/** One policy of a random pipeline, with random valid options. */
export type PolicySpec =
  | { readonly kind: 'timeout'; readonly ms: number }
  | {
      readonly kind: 'fallback';
      readonly mode: 'value' | 'factory' | 'asyncFactory' | 'slowFactory';
      readonly handle: 'all' | 'errorsOnly' | 'notTimeout';
    }
  /** A custom (user-written) policy that waits `ms` on the way out, after its inner call settled. */
  | { readonly kind: 'linger'; readonly ms: number }
  | {
      readonly kind: 'retry';
      readonly maxAttempts: number;
      readonly backoff: BackoffSpec;
      readonly handle: 'default' | 'all' | 'errorsOnly';
      readonly budget: boolean;
      readonly maxElapsedMs: number | undefined;
      readonly retryAfterMs: number | undefined;
    }
  | {
      readonly kind: 'breaker';
      readonly failureRateThreshold: number;
      readonly minimumCalls: number;
      readonly window: { readonly kind: 'count'; readonly calls: number } | { readonly kind: 'time'; readonly buckets: number; readonly bucketMs: number };
      readonly halfOpenAfter: number | BackoffSpec;
      readonly halfOpenProbes: number;
      readonly successesToClose: number;
      readonly slow: { readonly ms: number; readonly rate: number } | undefined;
      readonly handle: 'default' | 'errorsOnly';
    }
  | { readonly kind: 'bulkhead'; readonly maxConcurrent: number; readonly maxQueue: number; readonly queueTimeoutMs: number | undefined }
  | { readonly kind: 'pipeline'; readonly named: boolean; readonly policies: readonly PolicySpec[] }
  /** The last timeout, retry or fallback built so far, used a second time (a shared instance). */
  | { readonly kind: 'again' };

/** Something an operator does mid-run, at `atMs`, to the n-th breaker or bulkhead (modulo their count). */
export type OperatorAction =
  | { readonly atMs: number; readonly op: 'isolate' | 'release' | 'reset'; readonly target: number }
  | { readonly atMs: number; readonly op: 'setMaxConcurrent'; readonly target: number; readonly value: number };

/** One call: its work per attempt, when it starts, its signal and when the caller aborts. */
export interface CallSpec {
  /** Behaviour of invocation n of this call's work (the last one repeats). */
  readonly behaviours: readonly Behaviour[];
  readonly startAtMs: number;
  /** `shared`: one long-lived signal that never aborts, shared by every such call. */
  readonly signal: 'none' | 'shared' | 'own';
  /** Only with an own signal: ms after the start (-1: aborted before `execute`). */
  readonly abortAtMs: number | undefined;
  readonly reason: 'error' | 'string' | 'undefined';
}

/** A random pipeline (outermost policy first) and the calls made through it. */
export interface Scenario {
  readonly policies: readonly PolicySpec[];
  readonly calls: readonly CallSpec[];
  readonly seed: number;
  /** Operator actions during the run (optional). */
  readonly actions?: readonly OperatorAction[];
}

// ---------------------------------------------------------------------------
// Generators

const thrown: fc.Arbitrary<Thrown> = fc.constantFrom('error', 'string', 'undefined', 'null', 'zero', 'object');
const shortMs = fc.integer({ min: 0, max: 120 });

export const behaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('resolve' as const), afterMs: shortMs }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('reject' as const), afterMs: shortMs, thrown }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('throwSync' as const), thrown }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'value' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'thenable' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'neverThenable' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('honourAbort' as const), afterMs: shortMs, fail: fc.boolean() }) },
);

const jitterArb: fc.Arbitrary<Jitter> = fc.constantFrom('none', 'full', 'equal', 'decorrelated');

export const backoffArb: fc.Arbitrary<BackoffSpec> = fc.oneof(
  fc.record({ kind: fc.constant('constant' as const), ms: fc.integer({ min: 0, max: 40 }), jitter: fc.constantFrom('none' as const, 'full' as const, 'equal' as const) }),
  fc
    .record({ initialMs: fc.integer({ min: 1, max: 30 }), extraMs: fc.integer({ min: 0, max: 100 }), factor: fc.integer({ min: 1, max: 4 }), jitter: jitterArb })
    .map(({ initialMs, extraMs, factor, jitter }) => ({ kind: 'exponential' as const, initialMs, maxMs: initialMs + extraMs, factor, jitter })),
);

const rateArb = fc.integer({ min: 1, max: 10 }).map((n) => n / 10);

const leafArb: fc.Arbitrary<PolicySpec> = fc.oneof(
  fc.record({ kind: fc.constant('timeout' as const), ms: fc.integer({ min: 1, max: 150 }) }),
  fc.record({ kind: fc.constant('linger' as const), ms: fc.integer({ min: 1, max: 20 }) }),
  fc.record({
    kind: fc.constant('fallback' as const),
    mode: fc.constantFrom('value' as const, 'factory' as const, 'asyncFactory' as const, 'slowFactory' as const),
    handle: fc.constantFrom('all' as const, 'errorsOnly' as const, 'notTimeout' as const),
  }),
  fc.record({
    kind: fc.constant('retry' as const),
    maxAttempts: fc.integer({ min: 1, max: 4 }),
    backoff: backoffArb,
    handle: fc.constantFrom('default' as const, 'all' as const, 'errorsOnly' as const),
    budget: fc.boolean(),
    maxElapsedMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
    retryAfterMs: fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }),
  }),
  fc
    .record({
      failureRateThreshold: rateArb,
      minimumCalls: fc.integer({ min: 1, max: 4 }),
      windowKind: fc.constantFrom('count' as const, 'time' as const),
      extraCalls: fc.integer({ min: 0, max: 6 }),
      buckets: fc.integer({ min: 1, max: 5 }),
      bucketMs: fc.integer({ min: 5, max: 60 }),
      halfOpenAfter: fc.oneof(fc.integer({ min: 0, max: 150 }), backoffArb),
      halfOpenProbes: fc.integer({ min: 1, max: 3 }),
      successesToClose: fc.integer({ min: 1, max: 3 }),
      slow: fc.option(fc.record({ ms: fc.integer({ min: 1, max: 100 }), rate: rateArb }), { nil: undefined }),
      handle: fc.constantFrom('default' as const, 'errorsOnly' as const),
    })
    .map((b) => ({
      kind: 'breaker' as const,
      failureRateThreshold: b.failureRateThreshold,
      minimumCalls: b.minimumCalls,
      window:
        b.windowKind === 'count'
          ? { kind: 'count' as const, calls: b.minimumCalls + b.extraCalls }
          : { kind: 'time' as const, buckets: b.buckets, bucketMs: b.bucketMs },
      halfOpenAfter: b.halfOpenAfter,
      halfOpenProbes: b.halfOpenProbes,
      successesToClose: b.successesToClose,
      slow: b.slow,
      handle: b.handle,
    })),
  fc
    .record({
      maxConcurrent: fc.integer({ min: 1, max: 3 }),
      maxQueue: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(Infinity)),
      queueTimeoutMs: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }),
    })
    .map((b) => ({ kind: 'bulkhead' as const, ...b, queueTimeoutMs: b.maxQueue > 0 ? b.queueTimeoutMs : undefined })),
);

/** Policies, possibly nested in pipelines up to `depth` levels. */
export function policiesArb(depth = 2, maxLength = 5): fc.Arbitrary<PolicySpec[]> {
  const item: fc.Arbitrary<PolicySpec> =
    depth === 0
      ? leafArb
      : fc.oneof(
          { weight: 5, arbitrary: leafArb },
          { weight: 1, arbitrary: fc.record({ kind: fc.constant('pipeline' as const), named: fc.boolean(), policies: policiesArb(depth - 1, 3) }) },
          { weight: 1, arbitrary: fc.constant({ kind: 'again' as const }) },
        );
  return fc.array(item, { maxLength });
}

export const callArb: fc.Arbitrary<CallSpec> = fc
  .record({
    behaviours: fc.array(behaviourArb, { minLength: 1, maxLength: 3 }),
    startAtMs: fc.integer({ min: 0, max: 100 }),
    signal: fc.constantFrom('none' as const, 'shared' as const, 'own' as const),
    abortAtMs: fc.option(fc.integer({ min: -1, max: 300 }), { nil: undefined }),
    reason: fc.constantFrom('error' as const, 'string' as const, 'undefined' as const),
  })
  .map((c) => ({ ...c, abortAtMs: c.signal === 'own' ? c.abortAtMs : undefined }));

export const actionArb: fc.Arbitrary<OperatorAction> = fc.oneof(
  fc.record({ atMs: fc.integer({ min: 0, max: 300 }), op: fc.constantFrom('isolate' as const, 'release' as const, 'reset' as const), target: fc.nat(3) }),
  fc.record({ atMs: fc.integer({ min: 0, max: 300 }), op: fc.constant('setMaxConcurrent' as const), target: fc.nat(3), value: fc.integer({ min: 1, max: 4 }) }),
);

export const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  policies: policiesArb(),
  calls: fc.array(callArb, { minLength: 1, maxLength: 8 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  actions: fc.array(actionArb, { maxLength: 4 }),
});

// ---------------------------------------------------------------------------
// Building the pipeline

/** What a built pipeline exposes to the checks. */
interface Built {
  readonly root: Pipeline<unknown>;
  readonly named: Pipeline<unknown>[];
  readonly bulkheads: BulkheadPolicy[];
  readonly breakers: CircuitBreakerPolicy[];
  readonly hasTimeout: boolean;
  /** Upper bound of work invocations per call: the product of every retry's maxAttempts. */
  readonly maxInvocations: number;
}

function schedule(spec: BackoffSpec): BackoffSchedule {
  if (spec.kind === 'constant') return constant({ ms: spec.ms, jitter: spec.jitter });
  return spec.jitter === 'decorrelated'
    ? exponential({ initialMs: spec.initialMs, maxMs: spec.maxMs, jitter: 'decorrelated' })
    : exponential({ initialMs: spec.initialMs, maxMs: spec.maxMs, factor: spec.factor, jitter: spec.jitter });
}

function hasStatefulPolicy(specs: readonly PolicySpec[]): boolean {
  // 'again' only ever reuses a timeout, a retry or a fallback, never a breaker or a bulkhead.
  return specs.some((s) => s.kind === 'breaker' || s.kind === 'bulkhead' || (s.kind === 'pipeline' && hasStatefulPolicy(s.policies)));
}

/**
 * Builds the policies. A metrics unit (a named pipeline plus its unnamed nested
 * ones) may hold one breaker and one bulkhead, so a nested pipeline holding
 * either is named, and an extra breaker or bulkhead on one level goes into a
 * named pipeline of its own: the composition stays the same.
 */
function build(specs: readonly PolicySpec[], clock: FakeClock, random: () => number, budget: RetryBudget, extra: Policy<unknown>[]): Built {
  let seq = 0;
  const named: Pipeline<unknown>[] = [];
  const bulkheads: BulkheadPolicy[] = [];
  const breakers: CircuitBreakerPolicy[] = [];
  let hasTimeout = false;
  let maxInvocations = 1;
  let reusable: { policy: Policy<unknown>; maxAttempts: number; isTimeout: boolean } | undefined;
  const reuse = <P extends Policy<unknown>>(policy: P, maxAttempts = 1, isTimeout = false): P => {
    reusable = { policy, maxAttempts, isTimeout };
    return policy;
  };

  const nestNamed = (policies: Policy<unknown>[]): Pipeline<unknown> => {
    const p = pipeline({ name: `nested-${++seq}`, clock }, ...policies) as Pipeline<unknown>;
    named.push(p);
    return p;
  };

  const level = (list: readonly PolicySpec[]): Policy<unknown>[] => {
    let breakerHere = false;
    let bulkheadHere = false;
    const here = new Set<Policy<unknown>>();
    const make = (spec: PolicySpec): Policy<unknown> => {
      switch (spec.kind) {
        case 'timeout':
          hasTimeout = true;
          return reuse(timeout({ ms: spec.ms, clock }), 1, true);
        case 'fallback': {
          const handle =
            spec.handle === 'all' ? undefined : spec.handle === 'errorsOnly' ? (e: unknown) => e instanceof Error : (e: unknown) => !isTimeoutError(e);
          if (spec.mode === 'value') return reuse(fallback({ value: 'fb', handle }));
          if (spec.mode === 'factory') return reuse(fallback({ factory: () => 'fb', handle }));
          if (spec.mode === 'asyncFactory') return reuse(fallback({ factory: () => Promise.resolve('fb'), handle }));
          // Takes 7 ms of virtual time, or stops with the signal's reason.
          return reuse(fallback({ factory: ({ signal }) => delayed(clock, 7, 'fb', signal), handle }));
        }
        case 'linger':
          return new LingerPolicy(clock, spec.ms);
        case 'retry': {
          maxInvocations *= spec.maxAttempts;
          const handle = spec.handle === 'default' ? undefined : spec.handle === 'all' ? () => true : (e: unknown) => e instanceof Error;
          const retryAfterMs = spec.retryAfterMs;
          return reuse(retry({
            maxAttempts: spec.maxAttempts,
            backoff: schedule(spec.backoff),
            handle,
            budget: spec.budget ? budget : undefined,
            maxElapsedMs: spec.maxElapsedMs,
            retryAfter: retryAfterMs === undefined ? undefined : () => retryAfterMs,
            clock,
            random,
          }), spec.maxAttempts);
        }
        case 'again': {
          if (reusable === undefined) {
            hasTimeout = true;
            return reuse(timeout({ ms: 40, clock }), 1, true);
          }
          maxInvocations *= reusable.maxAttempts;
          // One instance appears once per pipeline (pipeline() refuses a second): on the
          // same level, the reused policy runs inside a nested pipeline of its own.
          return here.has(reusable.policy) ? pipeline({ clock }, reusable.policy) : reusable.policy;
        }
        case 'breaker': {
          const breaker = circuitBreaker({
            failureRateThreshold: spec.failureRateThreshold,
            minimumCalls: spec.minimumCalls,
            window: spec.window.kind === 'count' ? spec.window : { kind: 'time', ms: spec.window.buckets * spec.window.bucketMs, buckets: spec.window.buckets },
            halfOpenAfterMs: typeof spec.halfOpenAfter === 'number' ? spec.halfOpenAfter : schedule(spec.halfOpenAfter),
            halfOpenProbes: spec.halfOpenProbes,
            successesToClose: spec.successesToClose,
            slowCallMs: spec.slow?.ms,
            slowCallRateThreshold: spec.slow?.rate,
            handle: spec.handle === 'default' ? undefined : (e: unknown) => e instanceof Error,
            clock,
            random,
          });
          breakers.push(breaker);
          if (!breakerHere) {
            breakerHere = true;
            return breaker;
          }
          return nestNamed([breaker]);
        }
        case 'bulkhead': {
          const b = bulkhead({ maxConcurrent: spec.maxConcurrent, maxQueue: spec.maxQueue, queueTimeoutMs: spec.queueTimeoutMs, clock });
          bulkheads.push(b);
          if (!bulkheadHere) {
            bulkheadHere = true;
            return b;
          }
          return nestNamed([b]);
        }
        case 'pipeline': {
          const inner = level(spec.policies);
          if (spec.named || hasStatefulPolicy(spec.policies)) return nestNamed(inner);
          return pipeline({ clock }, ...inner) as Pipeline<unknown>;
        }
      }
    };
    return list.map((spec) => {
      const layer = make(spec);
      here.add(layer);
      return layer;
    });
  };

  const root = pipeline({ name: 'root', clock }, ...level(specs), ...extra) as Pipeline<unknown>;
  return { root, named, bulkheads, breakers, hasTimeout, maxInvocations };
}

// ---------------------------------------------------------------------------
// Running a scenario

/** Past every timer a scenario can schedule (work ≤ 120 ms, sleeps ≤ 150 ms, ≤ 8 calls × 4⁴ attempts). */
const HORIZON_MS = 10_000_000;

interface CallRecord {
  readonly index: number;
  readonly spec: CallSpec;
  started: boolean;
  settledCount: number;
  status: 'pending' | 'fulfilled' | 'rejected';
  value: unknown;
  error: unknown;
  controller: AbortController | undefined;
  /** The caller's signal was aborted while the call was still pending. */
  abortedWhilePending: boolean;
  abortFired: boolean;
  invocations: number;
  hungInvocations: number;
}

function makeThrown(kind: Thrown, tag: string): unknown {
  switch (kind) {
    case 'error':
      return new Error(`work failed ${tag}`);
    case 'string':
      return `work failed ${tag}`;
    case 'undefined':
      return undefined;
    case 'null':
      return null;
    case 'zero':
      return 0;
    case 'object':
      return { failed: tag };
  }
}

/** True when `error` is something call `tag`'s own work could have thrown. */
function isOwnWorkError(error: unknown, tag: string): boolean {
  if (error === undefined || error === null || error === 0) return true;
  if (error instanceof Error && !isBreakwaterError(error)) return error.message === `work failed ${tag}`;
  if (typeof error === 'string') return error === `work failed ${tag}`;
  if (typeof error === 'object') return (error as { failed?: unknown }).failed === tag;
  return false;
}

/** Options of {@link runScenario}: extra layers to test the harness itself. */
export interface RunOptions {
  /** Extra policies placed innermost (used by the harness's self-test). */
  readonly extra?: (clock: FakeClock) => Policy<unknown>[];
}

/** What a scenario did, for the properties that count outcomes. */
export interface RunResult {
  readonly violations: string[];
  readonly outcomes: Record<Outcome, number>;
  readonly pending: number;
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

/**
 * Starts recording unhandled rejections for the duration of a property (vitest
 * would also fail the run, but only afterwards and without the scenario).
 * Returns the function that stops recording.
 */
export function recordUnhandledRejections(): () => void {
  process.on('unhandledRejection', onUnhandled);
  return () => {
    process.off('unhandledRejection', onUnhandled);
  };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Plays `scenario` in virtual time and returns every invariant it broke. */
export async function runScenario(scenario: Scenario, options: RunOptions = {}): Promise<RunResult> {
  const violations: string[] = [];
  const fail = (message: string): void => {
    if (!violations.includes(message)) violations.push(message);
  };
  const unhandledBefore = unhandled.length;
  const clock = new FakeClock();
  const random = seededRandom(scenario.seed);
  const budget = retryBudget({ ratio: 0.5, minPerSecond: 5, windowMs: 1_000, clock });
  const built = build(scenario.policies, clock, random, budget, options.extra?.(clock) ?? []);
  const root = built.root;

  // Timers of the harness and of the work (not the policies'), counted apart.
  const harnessTimers = new Set<unknown>();
  const later = (callback: () => void, ms: number): unknown => {
    const handle = clock.schedule(() => {
      harnessTimers.delete(handle);
      callback();
    }, ms);
    harnessTimers.add(handle);
    return handle;
  };
  const cancelLater = (handle: unknown): void => {
    clock.cancel(handle);
    harnessTimers.delete(handle);
  };
  const policyTimers = (): number => clock.pendingTimers - harnessTimers.size;

  // Metrics: a fresh registry per scenario, and the events counted independently.
  const registry = new Registry();
  const detach = prometheusMetrics({ registry }).attach(root);
  const settledEvents = new Map<Pipeline<unknown>, Record<Outcome, number>>();
  const countEvents = (p: Pipeline<unknown>): void => {
    const counts: Record<Outcome, number> = { success: 0, failure: 0, timeout: 0, rejected: 0, fallback: 0, cancelled: 0 };
    settledEvents.set(p, counts);
    p.onSettled(({ outcome }) => {
      counts[outcome]++;
    });
  };
  countEvents(root);
  for (const p of built.named) countEvents(p);
  // The durations the root pipeline reports, to compare with what the callers saw.
  const reportedDurations: number[] = [];
  root.onSettled(({ durationMs }) => reportedDurations.push(durationMs));
  const observedDurations: number[] = [];

  const shared = new AbortController();
  const calls: CallRecord[] = scenario.calls.map((spec, index) => ({
    index,
    spec,
    started: false,
    settledCount: 0,
    status: 'pending',
    value: undefined,
    error: undefined,
    controller: undefined,
    abortedWhilePending: false,
    abortFired: false,
    invocations: 0,
    hungInvocations: 0,
  }));
  let settledTotal = 0;
  let hungTotal = 0;
  let timersWhenAllSettled: number | undefined;

  // Lowering maxConcurrent lets the calls already running finish: until they
  // have, the bound is what was running when it was lowered.
  const ceilings = new Map<BulkheadPolicy, number>();
  const checkBounds = (where: string): void => {
    for (const b of built.bulkheads) {
      let ceiling = ceilings.get(b) ?? b.maxConcurrent;
      if (b.active <= b.maxConcurrent) ceilings.set(b, (ceiling = b.maxConcurrent));
      if (b.active > ceiling) fail(`bulkhead bound broken ${where}: ${b.active} active > maxConcurrent ${ceiling}`);
      if (b.queued > b.maxQueue) fail(`bulkhead queue bound broken ${where}: ${b.queued} queued > maxQueue ${b.maxQueue}`);
      if (b.active < 0 || b.queued < 0) fail(`bulkhead count went negative ${where}: active ${b.active}, queued ${b.queued}`);
    }
  };

  const workFor = (call: CallRecord): Work<string> => {
    const tag = String(call.index);
    return (context) => {
      const n = call.invocations++;
      checkBounds('when the work started');
      if (call.abortFired) fail(`call ${tag}: the work was called again after the caller aborted`);
      if (call.status !== 'pending') fail(`call ${tag}: the work was called after the call had settled`);
      const behaviour = call.spec.behaviours[Math.min(n, call.spec.behaviours.length - 1)]!;
      switch (behaviour.kind) {
        case 'resolve':
          if (behaviour.afterMs === 0) return Promise.resolve(`ok ${tag}`);
          return new Promise((resolve) => later(() => resolve(`ok ${tag}`), behaviour.afterMs));
        case 'reject': {
          const error = makeThrown(behaviour.thrown, tag);
          if (behaviour.afterMs === 0) return Promise.reject(error);
          return new Promise((_, reject) => later(() => reject(error), behaviour.afterMs));
        }
        case 'throwSync':
          throw makeThrown(behaviour.thrown, tag);
        case 'value':
          return `plain ${tag}`;
        case 'thenable':
          return { then: (resolve: (value: string) => void) => resolve(`thenable ${tag}`) } as PromiseLike<string>;
        case 'hang':
          call.hungInvocations++;
          hungTotal++;
          return new Promise<string>(() => {});
        case 'neverThenable':
          call.hungInvocations++;
          hungTotal++;
          return { then: () => {} } as unknown as PromiseLike<string>;
        case 'honourAbort': {
          const signal = context.signal;
          return new Promise<string>((resolve, reject) => {
            const onAbort = (): void => {
              cancelLater(handle);
              reject(signal.reason);
            };
            const handle = later(() => {
              signal.removeEventListener('abort', onAbort);
              if (behaviour.fail) reject(new Error(`work failed ${tag}`));
              else resolve(`late ${tag}`);
            }, behaviour.afterMs);
            if (signal.aborted) onAbort();
            else signal.addEventListener('abort', onAbort, { once: true });
          });
        }
      }
    };
  };

  const reasonOf = (spec: CallSpec, tag: string): unknown =>
    spec.reason === 'error' ? new Error(`caller abort ${tag}`) : spec.reason === 'string' ? `caller abort ${tag}` : undefined;

  for (const call of calls) {
    const spec = call.spec;
    later(() => {
      call.started = true;
      const controller = spec.signal === 'own' ? new AbortController() : undefined;
      call.controller = controller;
      if (controller !== undefined && spec.abortAtMs === -1) {
        controller.abort(reasonOf(spec, String(call.index)));
        call.abortFired = true;
      }
      const signal = spec.signal === 'shared' ? shared.signal : controller?.signal;
      let promise: Promise<unknown>;
      const startedAt = clock.now();
      try {
        promise = root.execute(workFor(call), signal === undefined ? undefined : { signal });
      } catch (error) {
        fail(`call ${call.index}: execute threw synchronously: ${String(error)}`);
        return;
      }
      const settle = (status: 'fulfilled' | 'rejected', value: unknown, error: unknown): void => {
        call.settledCount++;
        observedDurations.push(clock.now() - startedAt);
        if (call.settledCount > 1) fail(`call ${call.index} settled ${call.settledCount} times`);
        call.status = status;
        call.value = value;
        call.error = error;
        if (++settledTotal === calls.length) timersWhenAllSettled = policyTimers();
      };
      promise.then(
        (value) => settle('fulfilled', value, undefined),
        (error: unknown) => settle('rejected', undefined, error),
      );
      if (controller !== undefined && spec.abortAtMs !== undefined && spec.abortAtMs >= 0) {
        later(() => {
          call.abortedWhilePending = call.status === 'pending';
          controller.abort(reasonOf(spec, String(call.index)));
          call.abortFired = true;
          // The caller's abort must settle the call at once: by the next turn, not later.
          if (call.abortedWhilePending) {
            later(() => {
              if (call.status === 'pending') fail(`call ${call.index}: still pending after its caller aborted`);
            }, 0);
          }
        }, spec.abortAtMs);
      }
    }, spec.startAtMs);
  }

  const isolations = new Map<CircuitBreakerPolicy, { release(): void }[]>();
  for (const action of scenario.actions ?? []) {
    later(() => {
      if (action.op === 'setMaxConcurrent') {
        const b = built.bulkheads[action.target % Math.max(1, built.bulkheads.length)];
        if (b === undefined) return;
        ceilings.set(b, Math.max(b.active, action.value, ceilings.get(b) ?? 0));
        b.maxConcurrent = action.value;
        checkBounds('after maxConcurrent changed');
        return;
      }
      const breaker = built.breakers[action.target % Math.max(1, built.breakers.length)];
      if (breaker === undefined) return;
      const handles = isolations.get(breaker) ?? [];
      isolations.set(breaker, handles);
      if (action.op === 'isolate') handles.push(breaker.isolate());
      else if (action.op === 'release') handles.pop()?.release();
      else breaker.reset();
    }, action.atMs);
  }

  await clock.advance(HORIZON_MS);
  await turn();
  await turn();

  // 1. Each call settles exactly once, unless nothing can settle it.
  let pending = 0;
  let pendingWithoutOwnHang = 0;
  for (const call of calls) {
    const tag = `call ${call.index}`;
    if (!call.started) fail(`${tag} never started`);
    if (call.settledCount > 1) fail(`${tag} settled more than once`);
    if (call.status === 'pending') {
      pending++;
      if (call.spec.abortAtMs !== undefined) fail(`${tag}: still pending although its caller aborted`);
      else if (built.hasTimeout) fail(`${tag}: still pending although the pipeline has a timeout`);
      else if (call.hungInvocations === 0) pendingWithoutOwnHang++;
    }
    if (call.invocations > built.maxInvocations) {
      fail(`${tag}: the work ran ${call.invocations} times, more than the retries allow (${built.maxInvocations})`);
    }
    // 2. What a call settles with belongs to it.
    const reason = call.controller?.signal.reason as unknown;
    if (call.abortedWhilePending || (call.spec.abortAtMs === -1 && call.started)) {
      if (call.status !== 'rejected' || call.error !== reason) fail(`${tag}: did not reject with its caller's abort reason, unchanged`);
    }
    if (call.spec.abortAtMs === -1 && call.invocations > 0) fail(`${tag}: the work ran although the signal was aborted before the call`);
    if (call.status === 'fulfilled') {
      const v = call.value;
      const own = [`ok ${call.index}`, `plain ${call.index}`, `thenable ${call.index}`, `late ${call.index}`, 'fb'];
      if (!own.includes(v as string)) fail(`${tag}: fulfilled with a value that is not its own: ${String(v)}`);
    } else if (call.status === 'rejected') {
      const e = call.error;
      const callerReason = call.controller !== undefined && call.controller.signal.aborted && e === reason;
      if (!callerReason && !isTimeoutError(e) && !isRejection(e) && !isOwnWorkError(e, String(call.index))) {
        fail(`${tag}: rejected with an error that is not its own: ${String(e)}`);
      }
    }
  }
  if (pendingWithoutOwnHang > 0) {
    const queued = built.bulkheads.reduce((n, b) => n + b.queued, 0);
    if (hungTotal === 0 || pendingWithoutOwnHang > queued) {
      fail(`${pendingWithoutOwnHang} call(s) pending without hanging work of their own, yet not queued behind hanging work`);
    }
  }

  // 2b. The root pipeline times each call exactly as its caller saw it, in virtual
  // time: its readings may be shared between layers (docs/design.md), but never
  // across a wait, a fallback factory or a custom policy.
  const byValue = (a: number, b: number): number => a - b;
  const reported = reportedDurations.toSorted(byValue).join(',');
  const observed = observedDurations.toSorted(byValue).join(',');
  if (reported !== observed) fail(`the pipeline reported durations [${reported}] but the callers saw [${observed}]`);

  // 3. No unhandled rejection.
  if (unhandled.length > unhandledBefore) {
    fail(`unhandled rejection(s): ${unhandled.slice(unhandledBefore).map(String).join(', ')}`);
  }

  // 4. No policy timer once every call has settled, and none at all in the end.
  if (timersWhenAllSettled !== undefined && timersWhenAllSettled !== 0) {
    fail(`${timersWhenAllSettled} policy timer(s) still scheduled when the last call settled`);
  }
  if (clock.pendingTimers !== 0) fail(`${clock.pendingTimers} timer(s) still scheduled at the end`);

  // 5. Every bulkhead permit returns (hanging work that ignores its signal keeps its slot, as it should).
  checkBounds('at the end');
  for (const b of built.bulkheads) {
    if (hungTotal === 0 && (b.active !== 0 || b.queued !== 0)) {
      fail(`bulkhead permits did not return: active ${b.active}, queued ${b.queued}`);
    }
    // A slot is held by a call still pending, or by hanging work its call gave up on (an outer timeout).
    if (b.active > hungTotal + pending) fail(`bulkhead holds ${b.active} slots but only ${hungTotal} invocation(s) hang and ${pending} call(s) are pending`);
  }

  // 6. No listener left on a caller's signal once its calls settled.
  if (calls.every((c) => c.spec.signal !== 'shared' || c.status !== 'pending')) {
    const left = abortListenerCount(shared.signal);
    if (left !== 0) fail(`${left} abort listener(s) left on the long-lived caller signal`);
  }
  for (const call of calls) {
    if (call.controller !== undefined && call.status !== 'pending') {
      const left = abortListenerCount(call.controller.signal);
      if (left !== 0) fail(`call ${call.index}: ${left} abort listener(s) left on its signal after it settled`);
    }
  }

  // 7. The metrics conserve the calls, and agree with what the callers saw.
  const metrics = await registry.getMetricsAsJSON();
  const callsTotal = metrics.find((m) => m.name === 'breakwater_calls_total');
  const durations = metrics.find((m) => m.name === 'breakwater_call_duration_seconds');
  const counted = (pipelineName: string, outcome?: string): number =>
    (callsTotal?.values ?? [])
      .filter((v) => v.labels.pipeline === pipelineName && (outcome === undefined || v.labels.outcome === outcome))
      .reduce((n, v) => n + v.value, 0);
  const settled = calls.length - pending;
  if (counted('root') !== settled) fail(`calls_total for the pipeline sums to ${counted('root')}, but ${settled} calls settled`);
  const expected: Record<Outcome, number> = { success: 0, failure: 0, timeout: 0, rejected: 0, fallback: 0, cancelled: 0 };
  for (const call of calls) {
    if (call.status === 'fulfilled') expected[call.value === 'fb' ? 'fallback' : 'success']++;
    else if (call.status === 'rejected') {
      const e = call.error;
      if (call.controller !== undefined && call.controller.signal.aborted && e === call.controller.signal.reason) expected.cancelled++;
      else if (isTimeoutError(e)) expected.timeout++;
      else if (isRejection(e)) expected.rejected++;
      else expected.failure++;
    }
  }
  for (const outcome of Object.keys(expected) as Outcome[]) {
    const n = counted('root', outcome);
    if (n !== expected[outcome]) fail(`calls_total{outcome="${outcome}"} is ${n}, but callers saw ${expected[outcome]}`);
    if (settledEvents.get(root)![outcome] !== expected[outcome]) {
      fail(`onSettled reported ${settledEvents.get(root)![outcome]} "${outcome}" calls, but callers saw ${expected[outcome]}`);
    }
    if (outcome !== 'rejected') {
      const observed = (durations?.values ?? []).find(
        (v) => v.labels.pipeline === 'root' && v.labels.outcome === outcome && (v as { metricName?: string }).metricName === 'breakwater_call_duration_seconds_count',
      );
      if ((observed?.value ?? 0) !== expected[outcome]) fail(`call_duration_seconds_count{outcome="${outcome}"} disagrees with calls_total`);
    }
  }
  for (const p of built.named) {
    const events = Object.values(settledEvents.get(p)!).reduce((a, b) => a + b, 0);
    if (counted(p.name!) !== events) fail(`calls_total for nested pipeline ${p.name} is ${counted(p.name!)}, but it settled ${events} runs`);
  }
  detach();

  const outcomes = expected;
  return { violations, outcomes, pending };
}

/**
 * A custom policy, written as a user would (docs/reference/pipeline.md), that
 * waits `ms` after its inner call settled before passing the result on: a
 * pipeline timing the call must count that wait.
 */
class LingerPolicy extends PolicyBase {
  readonly kind = 'linger';
  readonly #clock: FakeClock;
  readonly #ms: number;
  constructor(clock: FakeClock, ms: number) {
    super();
    this.#clock = clock;
    this.#ms = ms;
  }
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const signal = scope?.signal;
    return chain.next(index + 1, scope, attempt).then(
      (value) => delayed(this.#clock, this.#ms, value, signal),
      (error: unknown) =>
        delayed(this.#clock, this.#ms, undefined, signal).then(() => {
          throw error;
        }),
    );
  }
}

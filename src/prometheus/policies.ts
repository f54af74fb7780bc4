/**
 * How the metrics sink finds the policies of a pipeline: it walks
 * `pipeline.policies` (and unnamed nested pipelines) and recognises each policy
 * by the events and getters it exposes, so any policy that follows Breakwater's
 * event contract is measured, whatever its `kind` (a `fromOpossum` breaker
 * reports exactly like `circuitBreaker`). Shared by `breakwater/prometheus` and
 * `breakwater/opentelemetry`, so both report the same facts; it imports neither
 * prom-client nor OpenTelemetry.
 */
import type { Disposer, Event } from '../core/events.ts';
import type { SettledEvent } from '../core/timing.ts';
import { type Check, received } from '../core/validate.ts';

/**
 * What `attach` needs from a pipeline: any `Pipeline` from `pipeline(...)`,
 * including one from another copy of Breakwater.
 */
export interface PipelineLike {
  /** Always `'pipeline'`. */
  readonly kind: string;
  /** The pipeline's name: the `pipeline` label, the `breakwater.pipeline` attribute. */
  readonly name: string | undefined;
  /** Its policies, outermost first; named pipelines among them are reported under their own names. */
  readonly policies: readonly unknown[];
  /** Each call's outcome and duration. */
  readonly onSettled: Event<SettledEvent>;
  /** Fires when the pipeline is disposed: its series go. */
  readonly onDispose: Event<void>;
}

/** A circuit breaker: a lazily evaluated `state` and state-change events. @internal */
export interface BreakerLike {
  readonly kind: string;
  readonly state: string;
  readonly onStateChange: Event<{ readonly to: string }>;
  readonly onReject?: Event<unknown>;
}

/** A bulkhead: occupancy getters and rejection events. @internal */
export interface BulkheadLike {
  readonly kind: string;
  readonly active: number;
  readonly queued: number;
  readonly onReject: Event<unknown>;
}

/** A retry policy. @internal */
export interface RetryLike {
  readonly kind: string;
  readonly onRetry: Event<unknown>;
  readonly onBudgetExhausted?: Event<unknown>;
}

/** A guarded rollout: its shares and rollback read at scrape time, its events counted. @internal */
export interface RolloutLike {
  readonly kind: string;
  readonly share: number;
  readonly requestedShare: number;
  readonly rolledBack: unknown;
  readonly onExposure: Event<unknown>;
  readonly onExperimentFailed: Event<unknown>;
  readonly onRollback: Event<{ readonly reason?: unknown }>;
  readonly onShareRefused: Event<unknown>;
}

/** Policies of one measured unit: a named pipeline plus its unnamed nested pipelines. @internal */
export interface Unit {
  readonly pipeline: PipelineLike;
  readonly breakers: BreakerLike[];
  readonly bulkheads: BulkheadLike[];
  readonly retries: RetryLike[];
  readonly timeouts: { readonly kind: string; readonly onTimeout: Event<unknown> }[];
  readonly fallbacks: { readonly kind: string; readonly onFallback: Event<{ readonly error?: unknown }> }[];
  readonly hedges: { readonly kind: string; readonly onHedge: Event<unknown>; readonly onHedgeWon: Event<unknown>; readonly onBudgetExhausted: Event<unknown> }[];
  readonly chaos: { readonly kind: string; readonly onInjected: Event<{ readonly kind?: unknown }> }[];
  readonly throttles: { readonly kind: string; readonly onReject: Event<unknown>; readonly probability: number }[];
  readonly rateLimiters: { readonly kind: string; readonly onAdmit: Event<{ readonly waitedMs?: number }>; readonly onReject: Event<unknown> }[];
  readonly limits: { readonly kind: string; readonly onReject: Event<unknown>; readonly limit: number; readonly inFlight: number }[];
  readonly rollouts: RolloutLike[];
  /** Fleet-wide policies and budgets (`breakwater/redis`): whether each decides with the fleet or alone. */
  readonly shared: { readonly deciding: string }[];
}

type Bag = Record<string, unknown>;

function isObject(value: unknown): value is Bag {
  return typeof value === 'object' && value !== null;
}

/** True for a Breakwater pipeline (or anything shaped like one). @internal */
export function isPipelineLike(value: unknown): value is PipelineLike {
  return (
    isObject(value) &&
    value.kind === 'pipeline' &&
    Array.isArray(value.policies) &&
    typeof value.onSettled === 'function' &&
    typeof value.onDispose === 'function'
  );
}

function isBreaker(p: Bag): boolean {
  return typeof p.onStateChange === 'function' && typeof p.state === 'string';
}

function isBulkhead(p: Bag): boolean {
  return typeof p.onReject === 'function' && typeof p.active === 'number' && typeof p.queued === 'number';
}

/**
 * Splits `root` into measured units: the root itself, and every named pipeline
 * nested in it (each reported under its own name). The policies of unnamed
 * nested pipelines belong to the nearest named pipeline around them.
 * @internal
 */
export function unitsOf(root: PipelineLike): Unit[] {
  const units: Unit[] = [];
  const seen = new Set<PipelineLike>();
  const visit = (named: PipelineLike): void => {
    if (seen.has(named)) return;
    seen.add(named);
    const unit: Unit = { pipeline: named, breakers: [], bulkheads: [], retries: [], timeouts: [], fallbacks: [], hedges: [], chaos: [], throttles: [], limits: [], rateLimiters: [], rollouts: [], shared: [] };
    units.push(unit);
    const collect = (policies: readonly unknown[], path: Set<unknown>): void => {
      for (const policy of policies) {
        if (!isObject(policy)) continue;
        if (isPipelineLike(policy)) {
          if (typeof policy.name === 'string' && policy.name !== '') visit(policy);
          else if (!path.has(policy)) collect(policy.policies, new Set(path).add(policy));
          continue;
        }
        if (isBreaker(policy)) unit.breakers.push(policy as unknown as BreakerLike);
        else if (isBulkhead(policy)) unit.bulkheads.push(policy as unknown as BulkheadLike);
        if (typeof policy.onRetry === 'function') unit.retries.push(policy as unknown as RetryLike);
        if (typeof policy.onHedge === 'function' && typeof policy.onHedgeWon === 'function') unit.hedges.push(policy as unknown as Unit['hedges'][number]);
        if (typeof policy.onInjected === 'function') unit.chaos.push(policy as unknown as Unit['chaos'][number]);
        if (typeof policy.onAdmit === 'function' && typeof policy.onReject === 'function' && typeof policy.tokens === 'number') {
          unit.rateLimiters.push(policy as unknown as Unit['rateLimiters'][number]);
        }
        if (typeof policy.onLimitChange === 'function' && typeof policy.limit === 'number' && typeof policy.inFlight === 'number') {
          unit.limits.push(policy as unknown as Unit['limits'][number]);
        }
        if (typeof policy.onReject === 'function' && typeof policy.probability === 'number' && !isBulkhead(policy)) {
          unit.throttles.push(policy as unknown as Unit['throttles'][number]);
        }
        if (typeof policy.onRollback === 'function' && typeof policy.onExposure === 'function' && typeof policy.share === 'number') {
          unit.rollouts.push(policy as unknown as RolloutLike);
        }
        if (typeof policy.deciding === 'string') unit.shared.push(policy as unknown as Unit['shared'][number]);
        const budget = policy.budget;
        if (isObject(budget) && typeof budget.deciding === 'string' && !unit.shared.includes(budget as never)) {
          unit.shared.push(budget as unknown as Unit['shared'][number]);
        }
        if (typeof policy.onTimeout === 'function') unit.timeouts.push(policy as unknown as Unit['timeouts'][number]);
        if (typeof policy.onFallback === 'function') unit.fallbacks.push(policy as unknown as Unit['fallbacks'][number]);
      }
    };
    collect(named.policies, new Set([named]));
  };
  visit(root);
  return units;
}

/** Values of the `outcome` label; the first {@link OBSERVED} are observed in the histogram. */
export const OUTCOMES = ['success', 'failure', 'timeout', 'fallback', 'cancelled', 'rejected'] as const;
/** Outcomes with a duration observation: all but `rejected`. */
export const OBSERVED = 5;
/** Values of the `state` and `to` labels of the circuit metrics. */
export const STATES = ['closed', 'open', 'half_open', 'isolated'] as const;

/** Values of the `cause` label of `fallbacks_total`: what the fallback covered for. */
export const CAUSES = ['failure', 'timeout', 'circuit_open', 'bulkhead_full', 'rejected'] as const;
/** Values of the `kind` label of `chaos_injections_total`. */
export const CHAOS_KINDS = ['fault', 'latency', 'outcome'] as const;
/** Values of the `reason` label of `rollout_rollbacks_total`. */
export const ROLLBACK_REASONS = ['error_rate', 'signal_rate'] as const;

// Layout of an entry's Float64Array.
export const CALLS = 0; // 6 outcomes
export const TRANSITIONS = 6; // 4 target states
export const BULKHEAD_REJECTIONS = 10;
export const RETRIES = 11;
export const BUDGET_EXHAUSTED = 12;
export const TIMEOUTS = 13;
export const FALLBACKS = 14; // 5 causes
export const CIRCUIT_REJECTIONS = 19;
export const HEDGES = 20;
export const HEDGE_WINS = 21;
export const HEDGE_BUDGET_EXHAUSTED = 22;
export const CHAOS = 23; // 3 kinds
export const THROTTLED = 26;
export const LIMIT_DROPS = 27;
export const RATE_ADMITTED = 28;
export const RATE_DELAYED = 29;
export const RATE_REJECTED = 30;
export const EXPOSURES = 31;
export const EXPERIMENT_FAILURES = 32;
export const ROLLBACKS = 33; // 2 reasons
export const SHARE_REFUSALS = 35;
// Then, per observed outcome and bucket (bounds + 1 of them, not cumulative):
// the number of observations, and after all of those, the sum of their seconds.
export const BUCKETS = 36;


/** The `cause` of a fallback: the kind of error it replaced, as an index into {@link CAUSES}. @internal */
export function causeIndex(error: unknown): number {
  if (typeof error !== 'object' || error === null) return 0;
  let code: unknown;
  try {
    code = (error as { code?: unknown }).code;
  } catch {
    return 0; // a hostile object: a failure like any other
  }
  switch (code) {
    case 'ERR_BREAKWATER_TIMEOUT':
      return 1;
    case 'ERR_BREAKWATER_BROKEN_CIRCUIT':
    case 'ERR_BREAKWATER_ISOLATED_CIRCUIT':
      return 2;
    case 'ERR_BREAKWATER_BULKHEAD_REJECTED':
      return 3;
    default:
      return typeof code === 'string' && code.startsWith('ERR_BREAKWATER_') ? 4 : 0;
  }
}

/** The index of a breaker state in {@link STATES}, or -1. @internal */
export function stateIndex(state: string): number {
  switch (state) {
    case 'closed':
      return 0;
    case 'open':
      return 1;
    case 'half-open':
    case 'half_open':
      return 2;
    case 'isolated':
      return 3;
    default:
      return -1;
  }
}

/**
 * Subscribes listeners that count `unit`'s policy events into `data` (the
 * layout above), pushing each disposer to `disposers`. Calls by outcome are
 * counted by the sink's recorder, not here.
 * @internal
 */
export function countInto(unit: Unit, data: Float64Array, disposers: Disposer[]): void {
  const add = (index: number) => (): void => {
    data[index]!++;
  };
  for (const breaker of unit.breakers) {
    on(breaker.onStateChange, (event) => {
      const i = stateIndex(event.to);
      if (i >= 0) data[TRANSITIONS + i]!++;
    }, disposers);
    if (typeof breaker.onReject === 'function') on(breaker.onReject, add(CIRCUIT_REJECTIONS), disposers);
  }
  for (const bulkhead of unit.bulkheads) on(bulkhead.onReject, add(BULKHEAD_REJECTIONS), disposers);
  for (const retry of unit.retries) {
    on(retry.onRetry, add(RETRIES), disposers);
    if (typeof retry.onBudgetExhausted === 'function') on(retry.onBudgetExhausted, add(BUDGET_EXHAUSTED), disposers);
  }
  for (const t of unit.timeouts) on(t.onTimeout, add(TIMEOUTS), disposers);
  for (const f of unit.fallbacks) {
    on(f.onFallback, (event) => {
      data[FALLBACKS + causeIndex(event?.error)]!++;
    }, disposers);
  }
  for (const h of unit.hedges) {
    on(h.onHedge, add(HEDGES), disposers);
    on(h.onHedgeWon, add(HEDGE_WINS), disposers);
    on(h.onBudgetExhausted, add(HEDGE_BUDGET_EXHAUSTED), disposers);
  }
  for (const c of unit.chaos) {
    on(c.onInjected, (event) => {
      const i = CHAOS_KINDS.indexOf(event?.kind as (typeof CHAOS_KINDS)[number]);
      if (i >= 0) data[CHAOS + i]!++;
    }, disposers);
  }
  for (const t of unit.throttles) on(t.onReject, add(THROTTLED), disposers);
  for (const l of unit.limits) on(l.onReject, add(LIMIT_DROPS), disposers);
  for (const r of unit.rateLimiters) {
    on(r.onAdmit, (event) => {
      data[RATE_ADMITTED]!++;
      if ((event?.waitedMs ?? 0) > 0) data[RATE_DELAYED]!++;
    }, disposers);
    on(r.onReject, add(RATE_REJECTED), disposers);
  }
  for (const r of unit.rollouts) {
    on(r.onExposure, add(EXPOSURES), disposers);
    on(r.onExperimentFailed, add(EXPERIMENT_FAILURES), disposers);
    on(r.onRollback, (event) => {
      const i = event?.reason === 'error-rate' ? 0 : event?.reason === 'signal-rate' ? 1 : -1;
      if (i >= 0) data[ROLLBACKS + i]!++;
    }, disposers);
    on(r.onShareRefused, add(SHARE_REFUSALS), disposers);
  }
}

/**
 * Default buckets of the call-duration histograms (`call_duration_seconds`, `breakwater.call.duration`): 5 ms to 10 s, in seconds
 * (the same as prom-client's defaults).
 */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

const MAX_BUCKETS = 100;

/**
 * Checks a `buckets` option: upper bounds in seconds of the duration histogram
 * named `metric`, strictly increasing, and not milliseconds written by habit.
 * @internal
 */
export const checkBuckets = (metric: string): Check => (owner, key, value) => {
  const rule = `a non-empty array of at most ${MAX_BUCKETS} finite numbers of seconds, greater than 0 and strictly increasing`;
  if (!Array.isArray(value)) throw new TypeError(`${owner}: option "${key}" must be ${rule}; received ${received(value)}`);
  let previous = 0;
  let ok = value.length > 0 && value.length <= MAX_BUCKETS;
  for (const bound of value) {
    if (typeof bound !== 'number' || !Number.isFinite(bound) || bound <= previous) ok = false;
    else previous = bound;
  }
  const shown = (): string => (value.length > 12 ? `[${value.slice(0, 12).map(received).join(', ')}, …]` : `[${value.map(received).join(', ')}]`);
  if (!ok) throw new RangeError(`${owner}: option "${key}" must be ${rule}; received ${shown()}`);
  // The unit is seconds: buckets from 10 to 1,000 and more are milliseconds written by habit.
  if ((value[0] as number) >= 10 && previous >= 1_000) {
    throw new RangeError(
      `${owner}: option "${key}" looks like milliseconds, but the buckets of ${metric} are in seconds: ` +
        `write [${value.slice(0, 4).map((b) => (b as number) / 1000).join(', ')}${value.length > 4 ? ', …' : ''}]; received ${shown()}`,
    );
  }
};

/**
 * Holds `entries` for one attachment of `root` until the returned disposer runs
 * or `root` is disposed, then gives each back with `release`; `attachments`
 * holds the disposer meanwhile (the sink's `dispose()` runs them all).
 * @internal
 */
export function holdAttachment<E>(root: PipelineLike, entries: readonly E[], release: (entry: E) => void, attachments: Set<Disposer>): Disposer {
  let done = false;
  let unsubscribe: Disposer | undefined;
  const detach: Disposer = () => {
    if (done) return;
    done = true;
    attachments.delete(detach);
    unsubscribe?.();
    for (const entry of entries) release(entry);
  };
  // Disposing the pipeline also releases the named pipelines nested in it.
  unsubscribe = root.onDispose(detach);
  if (!done) attachments.add(detach); // a pipeline already disposed calls detach at once
  return detach;
}

/** Subscribes `listener` and records its disposer. @internal */
export function on<E>(event: Event<E>, listener: (event: E) => void, disposers: Disposer[]): void {
  disposers.push(event(listener));
}

/** What both sinks read from a gate made by `httpGate()` (of any copy of Breakwater). */
export interface GateLike {
  /** Always `'http-gate'`. */
  readonly kind: 'http-gate';
  /** The gate's name: the `gate` label, the `breakwater.http.gate` attribute. */
  readonly name: string;
  /** The concurrency limit now. */
  readonly limit: number;
  /** Each class's live counts: in flight now, admitted and shed since the gate was created. */
  readonly classes: readonly { readonly name: string; readonly inFlight: number; readonly admitted: number; readonly shed: number }[];
}

/** True for a gate made by `httpGate()` (or anything shaped like one). @internal */
export function isGateLike(value: unknown): value is GateLike {
  const v = value as Record<string, unknown> | null;
  return typeof v === 'object' && v !== null && v.kind === 'http-gate' && typeof v.name === 'string' && typeof v.limit === 'number' && Array.isArray(v.classes);
}

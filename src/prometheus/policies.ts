/**
 * How the metrics sink finds the policies of a pipeline: it walks
 * `pipeline.policies` (and unnamed nested pipelines) and recognises each policy
 * by the events and getters it exposes, so any policy that follows Breakwater's
 * event contract is measured, whatever its `kind` (a `fromOpossum` breaker
 * reports exactly like `circuitBreaker`).
 */
import type { Disposer, Event } from '../core/events.ts';
import type { SettledEvent } from '../core/timing.ts';

/**
 * What `attach` needs from a pipeline: any `Pipeline` from `pipeline(...)`,
 * including one from another copy of Breakwater.
 */
export interface PipelineLike {
  readonly kind: string;
  readonly name: string | undefined;
  readonly policies: readonly unknown[];
  readonly onSettled: Event<SettledEvent>;
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
    const unit: Unit = { pipeline: named, breakers: [], bulkheads: [], retries: [], timeouts: [], fallbacks: [], hedges: [], chaos: [], throttles: [], limits: [], rateLimiters: [], shared: [] };
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

/** Subscribes `listener` and records its disposer. @internal */
export function on<E>(event: Event<E>, listener: (event: E) => void, disposers: Disposer[]): void {
  disposers.push(event(listener));
}

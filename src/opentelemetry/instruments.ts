/**
 * The OpenTelemetry instruments of `breakwater/opentelemetry`, and how an
 * attached pipeline's counts reach them. Calls and policy events add to one
 * `Float64Array` per pipeline (the layout of `../prometheus/policies.ts`, shared
 * with the Prometheus sink); one batch callback reports every counter and gauge
 * from those arrays and from the policies' getters when the SDK collects. Only
 * the duration histogram is recorded per call: the OpenTelemetry API has no
 * asynchronous histogram.
 */
import type { Attributes, BatchObservableResult, Histogram, Meter, Observable } from '@opentelemetry/api';
import type { CallRecorder, Outcome } from '../core/timing.ts';
import {
  BUDGET_EXHAUSTED,
  BULKHEAD_REJECTIONS,
  CALLS,
  CAUSES,
  CHAOS,
  CHAOS_KINDS,
  CIRCUIT_REJECTIONS,
  EXPERIMENT_FAILURES,
  EXPOSURES,
  FALLBACKS,
  HEDGE_BUDGET_EXHAUSTED,
  HEDGE_WINS,
  HEDGES,
  LIMIT_DROPS,
  OBSERVED,
  OUTCOMES,
  RATE_ADMITTED,
  RATE_DELAYED,
  RATE_REJECTED,
  RETRIES,
  ROLLBACK_REASONS,
  ROLLBACKS,
  SHARE_REFUSALS,
  STATES,
  stateIndex,
  THROTTLED,
  TIMEOUTS,
  TRANSITIONS,
  type GateLike,
  type Unit,
} from '../prometheus/policies.ts';

/** Attribute names Breakwater sets on its metric points and span events. */
export const ATTR = {
  PIPELINE: 'breakwater.pipeline',
  OUTCOME: 'breakwater.outcome',
  CIRCUIT_STATE: 'breakwater.circuit.state',
  FALLBACK_CAUSE: 'breakwater.fallback.cause',
  CHAOS_KIND: 'breakwater.chaos.kind',
  ROLLBACK_REASON: 'breakwater.rollout.reason',
  GATE: 'breakwater.http.gate',
  GATE_CLASS: 'breakwater.http.class',
  GATE_OUTCOME: 'breakwater.http.outcome',
} as const;

/** How each instrument is made, and the Prometheus family that carries the same fact. @internal */
interface InstrumentSpec {
  readonly name: string;
  readonly kind: 'counter' | 'gauge' | 'updowncounter' | 'histogram';
  readonly unit: string;
  readonly description: string;
  /** The `breakwater_`-prefixed Prometheus name of the same fact. */
  readonly prometheus: string;
}

/**
 * Every instrument, in the order of the Prometheus families. Counters are
 * asynchronous (`ObservableCounter`), gauges `ObservableGauge`, occupancies
 * `ObservableUpDownCounter`; the duration is a synchronous `Histogram`.
 * @internal
 */
export const INSTRUMENTS = [
  { name: 'breakwater.calls', kind: 'counter', unit: '{call}', prometheus: 'calls_total', description: 'Calls through a pipeline, by outcome (cancelled: the caller aborted).' },
  { name: 'breakwater.call.duration', kind: 'histogram', unit: 's', prometheus: 'call_duration_seconds', description: 'Duration of calls through a pipeline, by outcome; rejected calls are not recorded.' },
  { name: 'breakwater.circuit.state', kind: 'gauge', unit: '1', prometheus: 'circuit_state', description: 'Circuit breaker state, one-hot: 1 for the current state, 0 for the others.' },
  { name: 'breakwater.circuit.transitions', kind: 'counter', unit: '{transition}', prometheus: 'circuit_transitions_total', description: 'Circuit breaker state changes, by the state entered.' },
  { name: 'breakwater.bulkhead.active', kind: 'updowncounter', unit: '{call}', prometheus: 'bulkhead_active', description: 'Calls holding a bulkhead slot.' },
  { name: 'breakwater.bulkhead.queued', kind: 'updowncounter', unit: '{call}', prometheus: 'bulkhead_queued', description: 'Calls waiting in a bulkhead queue.' },
  { name: 'breakwater.bulkhead.rejections', kind: 'counter', unit: '{call}', prometheus: 'bulkhead_rejections_total', description: 'Calls a bulkhead refused (full, or queue wait timed out).' },
  { name: 'breakwater.retries', kind: 'counter', unit: '{retry}', prometheus: 'retries_total', description: 'Retries (attempts after the first) made by retry policies.' },
  { name: 'breakwater.retry.budget_exhausted', kind: 'counter', unit: '{retry}', prometheus: 'retry_budget_exhausted_total', description: 'Retries refused because the retry budget was spent.' },
  { name: 'breakwater.timeouts', kind: 'counter', unit: '{timeout}', prometheus: 'timeouts_total', description: 'Deadlines that expired in timeout policies (per attempt when inside a retry).' },
  { name: 'breakwater.fallbacks', kind: 'counter', unit: '{fallback}', prometheus: 'fallbacks_total', description: 'Errors replaced by a fallback value, by the cause they covered for.' },
  { name: 'breakwater.circuit.rejections', kind: 'counter', unit: '{call}', prometheus: 'circuit_rejections_total', description: 'Calls a circuit breaker refused without running them (open, half-open full, isolated).' },
  { name: 'breakwater.hedges', kind: 'counter', unit: '{attempt}', prometheus: 'hedges_total', description: 'Hedged attempts started (extra attempts for slow calls).' },
  { name: 'breakwater.hedge.wins', kind: 'counter', unit: '{call}', prometheus: 'hedge_wins_total', description: 'Calls whose result came from a hedged attempt.' },
  { name: 'breakwater.hedge.budget_exhausted', kind: 'counter', unit: '{attempt}', prometheus: 'hedge_budget_exhausted_total', description: 'Hedges that were due but refused by the extra-load budget.' },
  { name: 'breakwater.chaos.injections', kind: 'counter', unit: '{injection}', prometheus: 'chaos_injections_total', description: 'Calls a chaos policy injected into, by kind.' },
  { name: 'breakwater.throttle.rejections', kind: 'counter', unit: '{call}', prometheus: 'throttle_rejections_total', description: 'Calls a client-side throttle refused locally.' },
  { name: 'breakwater.throttle.probability', kind: 'gauge', unit: '1', prometheus: 'throttle_probability', description: 'The probability a client-side throttle refuses the next call.' },
  { name: 'breakwater.adaptive_limit.limit', kind: 'gauge', unit: '{call}', prometheus: 'adaptive_limit', description: 'The current limit of an adaptive concurrency limit.' },
  { name: 'breakwater.adaptive_limit.in_flight', kind: 'updowncounter', unit: '{call}', prometheus: 'adaptive_in_flight', description: 'Calls holding a slot of an adaptive concurrency limit.' },
  { name: 'breakwater.adaptive_limit.rejections', kind: 'counter', unit: '{call}', prometheus: 'adaptive_rejections_total', description: 'Calls an adaptive concurrency limit refused (full, or queue wait timed out).' },
  { name: 'breakwater.rate_limit.admitted', kind: 'counter', unit: '{call}', prometheus: 'rate_limit_admitted_total', description: 'Calls a rate limiter admitted, at once or after a wait.' },
  { name: 'breakwater.rate_limit.delayed', kind: 'counter', unit: '{call}', prometheus: 'rate_limit_delayed_total', description: 'Calls a rate limiter admitted after waiting for a token.' },
  { name: 'breakwater.rate_limit.rejections', kind: 'counter', unit: '{call}', prometheus: 'rate_limit_rejections_total', description: 'Calls a rate limiter refused (no token, and no room or time to wait).' },
  { name: 'breakwater.rollout.exposures', kind: 'counter', unit: '{call}', prometheus: 'rollout_exposures_total', description: 'Calls a guarded rollout sent to its experimental implementation.' },
  { name: 'breakwater.rollout.experiment_failures', kind: 'counter', unit: '{call}', prometheus: 'rollout_experiment_failures_total', description: 'Experimental calls that failed, were refused by their breaker or were cut, and were answered by the stable path.' },
  { name: 'breakwater.rollout.rollbacks', kind: 'counter', unit: '{rollback}', prometheus: 'rollout_rollbacks_total', description: 'Automatic rollbacks of an experiment, by the health signal that triggered them.' },
  { name: 'breakwater.rollout.share_refusals', kind: 'counter', unit: '{refusal}', prometheus: 'rollout_share_refusals_total', description: 'Flag values a guarded rollout refused (not a share from 0 to 1).' },
  { name: 'breakwater.rollout.share', kind: 'gauge', unit: '1', prometheus: 'rollout_share', description: 'The share of calls a guarded rollout sends to its experiment now.' },
  { name: 'breakwater.rollout.requested_share', kind: 'gauge', unit: '1', prometheus: 'rollout_requested_share', description: 'The share the feature flag asks for (the ramp or a rollback may hold the share below it).' },
  { name: 'breakwater.rollout.rolled_back', kind: 'gauge', unit: '1', prometheus: 'rollout_rolled_back', description: '1 while a guarded rollout has rolled its experiment back (until released), else 0.' },
  { name: 'breakwater.fleet.degraded', kind: 'gauge', unit: '1', prometheus: 'fleet_degraded', description: '1 while fleet-wide policies (breakwater/redis) of a pipeline decide on local state, Redis being unavailable, else 0.' },
  { name: 'breakwater.http.requests', kind: 'counter', unit: '{request}', prometheus: 'http_requests_total', description: 'Requests an HTTP admission gate admitted or shed (answered 503 at once), by class.' },
  { name: 'breakwater.http.in_flight', kind: 'updowncounter', unit: '{request}', prometheus: 'http_in_flight', description: 'Requests an HTTP admission gate admitted that are still being answered, by class.' },
  { name: 'breakwater.http.limit', kind: 'gauge', unit: '{request}', prometheus: 'http_limit', description: "The concurrency limit of an HTTP admission gate (fixed, or an adaptive limit's current value)." },
] as const satisfies readonly InstrumentSpec[];

type Name = (typeof INSTRUMENTS)[number]['name'];
type Observables = Record<Exclude<Name, 'breakwater.call.duration'>, Observable>;

/** One attached pipeline: its counts, its attribute sets and the policies whose getters are read at collection. @internal */
export class Entry {
  readonly unit: Unit;
  /** Cumulative counts since attach, in the shared layout (the histogram slots are unused). */
  readonly data = new Float64Array(SHARE_REFUSALS + 1);
  /** `{ breakwater.pipeline, ...attributes }`. */
  readonly base: Attributes;
  /** One set per outcome, in `OUTCOMES` order. */
  readonly outcomes: readonly Attributes[];
  /** One set per circuit state, in `STATES` order. */
  readonly states: readonly Attributes[];
  /** One set per fallback cause, in `CAUSES` order. */
  readonly causes: readonly Attributes[];
  /** One set per chaos kind, in `CHAOS_KINDS` order. */
  readonly kinds: readonly Attributes[];
  /** One set per rollback reason, in `ROLLBACK_REASONS` order. */
  readonly reasons: readonly Attributes[];
  /** How many attachments of its sink hold this entry. */
  holds = 0;
  removed = false;
  readonly disposers: (() => void)[] = [];

  constructor(unit: Unit, constant: Readonly<Record<string, string>>) {
    this.unit = unit;
    const attributes = (extra: Attributes): Attributes => Object.freeze({ [ATTR.PIPELINE]: unit.pipeline.name!, ...extra, ...constant });
    this.base = attributes({});
    this.outcomes = OUTCOMES.map((outcome) => attributes({ [ATTR.OUTCOME]: outcome }));
    this.states = STATES.map((state) => attributes({ [ATTR.CIRCUIT_STATE]: state }));
    this.causes = CAUSES.map((cause) => attributes({ [ATTR.FALLBACK_CAUSE]: cause }));
    this.kinds = CHAOS_KINDS.map((kind) => attributes({ [ATTR.CHAOS_KIND]: kind }));
    this.reasons = ROLLBACK_REASONS.map((reason) => attributes({ [ATTR.ROLLBACK_REASON]: reason }));
  }
}

/**
 * One attached admission gate: its attribute sets, and what it had counted when
 * attached (its counters are reported from the attach on, as the Prometheus
 * sink's are). The gate's own counts are read at collection.
 * @internal
 */
export class GateEntry {
  readonly gate: GateLike;
  /** `{ breakwater.http.gate, ...attributes }`. */
  readonly base: Attributes;
  /** Per class, in the gate's order: `{ gate, class }`, then with the outcome admitted, then shed. */
  readonly classes: readonly Attributes[];
  readonly admitted: readonly Attributes[];
  readonly shed: readonly Attributes[];
  /** Per class: admitted, shed, as counted by the gate at attach. */
  readonly start: Float64Array;
  /** How many attachments of its sink hold this entry. */
  holds = 0;
  readonly disposers: (() => void)[] = [];

  constructor(gate: GateLike, constant: Readonly<Record<string, string>>) {
    this.gate = gate;
    const attributes = (extra: Attributes): Attributes => Object.freeze({ [ATTR.GATE]: gate.name, ...extra, ...constant });
    this.base = attributes({});
    this.classes = gate.classes.map((c) => attributes({ [ATTR.GATE_CLASS]: c.name }));
    this.admitted = gate.classes.map((c) => attributes({ [ATTR.GATE_CLASS]: c.name, [ATTR.GATE_OUTCOME]: 'admitted' }));
    this.shed = gate.classes.map((c) => attributes({ [ATTR.GATE_CLASS]: c.name, [ATTR.GATE_OUTCOME]: 'shed' }));
    this.start = new Float64Array(2 * gate.classes.length);
    gate.classes.forEach((c, k) => {
      this.start[2 * k] = c.admitted;
      this.start[2 * k + 1] = c.shed;
    });
  }
}

/** The index of an outcome in `OUTCOMES`. */
function outcomeIndex(outcome: Outcome): number {
  switch (outcome) {
    case 'success':
      return 0;
    case 'failure':
      return 1;
    case 'timeout':
      return 2;
    case 'fallback':
      return 3;
    case 'cancelled':
      return 4;
    default:
      return 5; // rejected
  }
}

/** Counts each call by outcome and records its duration, in seconds, in the histogram. @internal */
export class MetricRecorder implements CallRecorder {
  readonly #entry: Entry;
  readonly #histogram: Histogram;

  constructor(entry: Entry, histogram: Histogram) {
    this.#entry = entry;
    this.#histogram = histogram;
  }

  record(outcome: Outcome, durationMs: number): void {
    const o = outcomeIndex(outcome);
    this.#entry.data[CALLS + o]!++;
    if (o < OBSERVED && durationMs >= 0) this.#histogram.record(durationMs / 1000, this.#entry.outcomes[o]);
  }
}

/** The instruments of one sink, and the batch callback that reports its entries. @internal */
export class Instruments {
  readonly meter: Meter;
  readonly histogram: Histogram;
  readonly #observables: Observables;
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #gates: ReadonlyMap<string, GateEntry>;

  constructor(meter: Meter, boundaries: readonly number[], entries: ReadonlyMap<string, Entry>, gates: ReadonlyMap<string, GateEntry>) {
    this.meter = meter;
    this.#entries = entries;
    this.#gates = gates;
    const observables: Partial<Record<Name, Observable>> = {};
    let histogram: Histogram | undefined;
    for (const spec of INSTRUMENTS) {
      const options = { description: spec.description, unit: spec.unit };
      if (spec.kind === 'histogram') {
        histogram = meter.createHistogram(spec.name, { ...options, advice: { explicitBucketBoundaries: [...boundaries] } });
      } else if (spec.kind === 'counter') observables[spec.name] = meter.createObservableCounter(spec.name, options);
      else if (spec.kind === 'gauge') observables[spec.name] = meter.createObservableGauge(spec.name, options);
      else observables[spec.name] = meter.createObservableUpDownCounter(spec.name, options);
    }
    this.histogram = histogram!;
    this.#observables = observables as Observables;
    meter.addBatchObservableCallback(this.#observe, Object.values(this.#observables));
  }

  /** Stops reporting: the SDK no longer calls back. */
  dispose(): void {
    this.meter.removeBatchObservableCallback(this.#observe, Object.values(this.#observables));
  }

  /** Reports every entry and gate: cumulative counts, and the gauges read from the policies and gates now. */
  readonly #observe = (result: BatchObservableResult): void => {
    const o = this.#observables;
    for (const entry of this.#entries.values()) {
      const { data, unit } = entry;
      const count = (observable: Observable, slot: number, attributes = entry.base): void => result.observe(observable, data[slot]!, attributes);
      for (let i = 0; i < OUTCOMES.length; i++) count(o['breakwater.calls'], CALLS + i, entry.outcomes[i]);
      const breaker = unit.breakers[0];
      if (breaker !== undefined) {
        const current = stateIndex(breaker.state);
        for (let s = 0; s < STATES.length; s++) {
          result.observe(o['breakwater.circuit.state'], s === current ? 1 : 0, entry.states[s]);
          count(o['breakwater.circuit.transitions'], TRANSITIONS + s, entry.states[s]);
        }
        count(o['breakwater.circuit.rejections'], CIRCUIT_REJECTIONS);
      }
      const bulkhead = unit.bulkheads[0];
      if (bulkhead !== undefined) {
        result.observe(o['breakwater.bulkhead.active'], bulkhead.active, entry.base);
        result.observe(o['breakwater.bulkhead.queued'], bulkhead.queued, entry.base);
        count(o['breakwater.bulkhead.rejections'], BULKHEAD_REJECTIONS);
      }
      if (unit.retries.length > 0) {
        count(o['breakwater.retries'], RETRIES);
        count(o['breakwater.retry.budget_exhausted'], BUDGET_EXHAUSTED);
      }
      if (unit.timeouts.length > 0) count(o['breakwater.timeouts'], TIMEOUTS);
      if (unit.fallbacks.length > 0) {
        for (let c = 0; c < CAUSES.length; c++) count(o['breakwater.fallbacks'], FALLBACKS + c, entry.causes[c]);
      }
      if (unit.hedges.length > 0) {
        count(o['breakwater.hedges'], HEDGES);
        count(o['breakwater.hedge.wins'], HEDGE_WINS);
        count(o['breakwater.hedge.budget_exhausted'], HEDGE_BUDGET_EXHAUSTED);
      }
      if (unit.chaos.length > 0) {
        for (let k = 0; k < CHAOS_KINDS.length; k++) count(o['breakwater.chaos.injections'], CHAOS + k, entry.kinds[k]);
      }
      const throttle = unit.throttles[0];
      if (throttle !== undefined) {
        count(o['breakwater.throttle.rejections'], THROTTLED);
        result.observe(o['breakwater.throttle.probability'], throttle.probability, entry.base);
      }
      const limit = unit.limits[0];
      if (limit !== undefined) {
        result.observe(o['breakwater.adaptive_limit.limit'], limit.limit, entry.base);
        result.observe(o['breakwater.adaptive_limit.in_flight'], limit.inFlight, entry.base);
        count(o['breakwater.adaptive_limit.rejections'], LIMIT_DROPS);
      }
      if (unit.rateLimiters.length > 0) {
        count(o['breakwater.rate_limit.admitted'], RATE_ADMITTED);
        count(o['breakwater.rate_limit.delayed'], RATE_DELAYED);
        count(o['breakwater.rate_limit.rejections'], RATE_REJECTED);
      }
      const rollout = unit.rollouts[0];
      if (rollout !== undefined) {
        count(o['breakwater.rollout.exposures'], EXPOSURES);
        count(o['breakwater.rollout.experiment_failures'], EXPERIMENT_FAILURES);
        for (let r = 0; r < ROLLBACK_REASONS.length; r++) count(o['breakwater.rollout.rollbacks'], ROLLBACKS + r, entry.reasons[r]);
        count(o['breakwater.rollout.share_refusals'], SHARE_REFUSALS);
        result.observe(o['breakwater.rollout.share'], rollout.share, entry.base);
        result.observe(o['breakwater.rollout.requested_share'], rollout.requestedShare, entry.base);
        result.observe(o['breakwater.rollout.rolled_back'], rollout.rolledBack === undefined ? 0 : 1, entry.base);
      }
      if (unit.shared.length > 0) {
        result.observe(o['breakwater.fleet.degraded'], unit.shared.some((policy) => policy.deciding !== 'fleet') ? 1 : 0, entry.base);
      }
    }
    for (const entry of this.#gates.values()) {
      entry.gate.classes.forEach((c, k) => {
        result.observe(o['breakwater.http.requests'], c.admitted - entry.start[2 * k]!, entry.admitted[k]);
        result.observe(o['breakwater.http.requests'], c.shed - entry.start[2 * k + 1]!, entry.shed[k]);
        result.observe(o['breakwater.http.in_flight'], c.inFlight, entry.classes[k]);
      });
      result.observe(o['breakwater.http.limit'], entry.gate.limit, entry.base);
    }
  };
}

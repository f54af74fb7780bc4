/**
 * The metric families `breakwater/prometheus` registers on a prom-client
 * registry. They are not prom-client `Counter`s or `Histogram`s: each is a small
 * object with the shape prom-client's `Registry` reads (`name`, `help`, `type`,
 * `get()`), so calls only bump numbers in a `Float64Array` per pipeline and the
 * registry turns those numbers into series at scrape time. No prom-client code
 * runs on the hot path, and this module needs no runtime import of prom-client.
 */
import type { Disposer } from '../core/events.ts';
import type { BreakerLike, BulkheadLike, PipelineLike } from './policies.ts';

/** Values of the `outcome` label; the first {@link OBSERVED} are observed in the histogram. */
export const OUTCOMES = ['success', 'failure', 'timeout', 'fallback', 'cancelled', 'rejected'] as const;
/** Outcomes with a duration observation: all but `rejected`. */
export const OBSERVED = 5;
/** Values of the `state` and `to` labels of the circuit metrics. */
export const STATES = ['closed', 'open', 'half_open', 'isolated'] as const;

// Layout of an entry's Float64Array.
const CALLS = 0; // 6 outcomes
const SUMS = 6; // 5 observed outcomes, in seconds
const TRANSITIONS = 11; // 4 target states
const BULKHEAD_REJECTIONS = 15;
const RETRIES = 16;
const BUDGET_EXHAUSTED = 17;
const TIMEOUTS = 18;
const FALLBACKS = 19;
const BUCKETS = 20; // 5 observed outcomes × (bounds + 1), not cumulative

/** Label set of one series. */
type Labels = Readonly<Record<string, string>>;

const NO_LABELS: Labels = Object.freeze({});

/** One value row in the shape prom-client's registry formats. */
interface Row {
  value: number;
  labels: Labels;
  sharedLabels?: Labels;
  metricName?: string;
}

/** What prom-client's registry reads from a metric. */
interface Snapshot {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: Row[];
  aggregator: 'sum';
}

/** Marks our families on a registry, across copies of the package. */
export const GROUP = Symbol.for('breakwater.prometheus.group');
/** Bumped when the layout of {@link Group} changes. */
export const GROUP_VERSION = 1;

function stateIndex(state: string): number {
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

/** What one measured pipeline needs at attach time. @internal */
export interface EntrySpec {
  readonly key: string;
  readonly pipeline: PipelineLike;
  readonly constLabels: Labels;
  readonly breaker: BreakerLike | undefined;
  readonly bulkhead: BulkheadLike | undefined;
  readonly hasRetry: boolean;
  readonly hasTimeout: boolean;
  readonly hasFallback: boolean;
}

/**
 * The series of one pipeline on one registry: its counts, its label sets, the
 * breaker and bulkhead whose getters are read at scrape time, and the listeners
 * that feed it.
 * @internal
 */
export class Entry {
  readonly key: string;
  readonly pipeline: PipelineLike;
  readonly data: Float64Array;
  readonly breaker: BreakerLike | undefined;
  readonly bulkhead: BulkheadLike | undefined;
  readonly hasRetry: boolean;
  readonly hasTimeout: boolean;
  readonly hasFallback: boolean;
  /** `{ pipeline, ...constLabels }` */
  readonly baseLabels: Labels;
  /** One label set per outcome, in {@link OUTCOMES} order. */
  readonly outcomeLabels: readonly Labels[];
  /** One label set per circuit state, for `circuit_state`. */
  readonly stateLabels: readonly Labels[];
  /** One label set per target state, for `circuit_transitions_total`. */
  readonly toLabels: readonly Labels[];
  /** Full label sets of the histogram buckets (`le` included), built at the first scrape. */
  #bucketLabels: Labels[] | undefined;
  /** How many attachments hold this entry. */
  holds = 0;
  removed = false;
  readonly disposers: Disposer[] = [];

  constructor(spec: EntrySpec, bucketCount: number) {
    this.key = spec.key;
    this.pipeline = spec.pipeline;
    this.breaker = spec.breaker;
    this.bulkhead = spec.bulkhead;
    this.hasRetry = spec.hasRetry;
    this.hasTimeout = spec.hasTimeout;
    this.hasFallback = spec.hasFallback;
    this.data = new Float64Array(BUCKETS + OBSERVED * (bucketCount + 1));
    const base = Object.freeze({ pipeline: spec.pipeline.name!, ...spec.constLabels });
    this.baseLabels = base;
    this.outcomeLabels = OUTCOMES.map((outcome) => Object.freeze({ pipeline: base.pipeline, outcome, ...spec.constLabels }));
    this.stateLabels = STATES.map((state) => Object.freeze({ pipeline: base.pipeline, state, ...spec.constLabels }));
    this.toLabels = STATES.map((to) => Object.freeze({ pipeline: base.pipeline, to, ...spec.constLabels }));
  }

  /**
   * Label sets of the buckets, outcome by outcome, `le` included. Built once:
   * prom-client formats a label object once and caches the text by identity.
   */
  bucketLabels(le: readonly string[]): Labels[] {
    if (this.#bucketLabels === undefined) {
      const sets: Labels[] = [];
      for (let o = 0; o < OBSERVED; o++) {
        for (const bound of le) sets.push(Object.freeze({ le: bound, ...this.outcomeLabels[o]! }));
      }
      this.#bucketLabels = sets;
    }
    return this.#bucketLabels;
  }

  /** The recorder of calls: counts each call and observes its duration. */
  settledRecorder(bounds: Float64Array): SettledRecorder {
    return new SettledRecorder(this.data, bounds);
  }

  /** Returns a listener that adds one to slot `index`. */
  counter(index: number): () => void {
    const data = this.data;
    return () => {
      data[index]!++;
    };
  }

  /** Returns the `onStateChange` listener. */
  transitionListener(): (event: { readonly to: string }) => void {
    const data = this.data;
    return (event) => {
      const i = stateIndex(event.to);
      if (i >= 0) data[TRANSITIONS + i]!++;
    };
  }
}

/** Slots of the per-pipeline counters, for the listeners. @internal */
export const SLOTS = { BULKHEAD_REJECTIONS, RETRIES, BUDGET_EXHAUSTED, TIMEOUTS, FALLBACKS } as const;

type Emit = (entry: Entry, rows: Row[], splay: boolean) => void;

function row(rows: Row[], value: number, labels: Labels, splay: boolean, metricName?: string): void {
  // Text exposition: the whole label set goes in `sharedLabels`, which prom-client
  // formats once per label object and caches. JSON (`get()`): plain label objects.
  const r: Row = splay ? { value, labels: { ...labels } } : { value, labels: NO_LABELS, sharedLabels: labels };
  if (metricName !== undefined) r.metricName = metricName;
  rows.push(r);
}

/**
 * One metric family. prom-client's registry calls `getForPromString()` (text
 * exposition) or `get()` (JSON), reads `name`, `help`, `type`, and calls
 * `reset()` from `registry.resetMetrics()`.
 * @internal
 */
export class Family {
  /** The name prom-client reads; its OpenMetrics output strips `_total` from it in place. */
  name: string;
  /** The full name, as registered. */
  readonly fullName: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum' as const;
  readonly labelNames: readonly string[];
  readonly [GROUP]: Group;
  readonly #emit: Emit;
  readonly #reset: (entry: Entry) => void;

  constructor(
    group: Group,
    name: string,
    help: string,
    type: 'counter' | 'gauge' | 'histogram',
    labelNames: readonly string[],
    emit: Emit,
    reset: (entry: Entry) => void,
  ) {
    this[GROUP] = group;
    this.name = name;
    this.fullName = name;
    this.help = help;
    this.type = type;
    this.labelNames = labelNames;
    this.#emit = emit;
    this.#reset = reset;
  }

  #snapshot(splay: boolean): Snapshot {
    const rows: Row[] = [];
    for (const entry of this[GROUP].entries.values()) this.#emit(entry, rows, splay);
    return { name: this.name, help: this.help, type: this.type, values: rows, aggregator: this.aggregator };
  }

  /**
   * The current values, for prom-client's text exposition. Each family is read
   * (and then formatted by prom-client) in its own turn of the event loop, so a
   * large scrape lets I/O in between families instead of blocking all along.
   */
  getForPromString(): Promise<Snapshot> {
    return new Promise((resolve, reject) => {
      this[GROUP].later(() => {
        try {
          resolve(this.#snapshot(false));
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** The current values with plain label objects (`registry.getMetricsAsJSON()`, cluster aggregation). */
  get(): Promise<Snapshot> {
    return Promise.resolve(this.#snapshot(true));
  }

  /** `registry.resetMetrics()`: zeroes this family's counts (a counter reset, as Prometheus sees it). */
  reset(): void {
    for (const entry of this[GROUP].entries.values()) this.#reset(entry);
  }
}

function zero(from: number, count: number): (entry: Entry) => void {
  return (entry) => entry.data.fill(0, from, from + count);
}

const noop = (): void => {};

/**
 * Every family under one prefix on one registry, and the pipelines they report.
 * Shared by all sinks created over that registry and prefix.
 * @internal
 */
export class Group {
  readonly version = GROUP_VERSION;
  readonly prefix: string;
  /** Histogram upper bounds in seconds, increasing, without +Inf. */
  readonly bounds: Float64Array;
  /** Measured pipelines by series key, in attach order. */
  readonly entries = new Map<string, Entry>();
  readonly families: readonly Family[];
  readonly #tasks: (() => void)[] = [];
  #scheduled = false;

  /**
   * Runs `task` on a later turn of the event loop, one task per turn: a
   * `setImmediate` queued from a `setImmediate` callback waits for the next
   * turn, so pending I/O is polled between two tasks.
   */
  later(task: () => void): void {
    this.#tasks.push(task);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#runOne);
    }
  }

  readonly #runOne = (): void => {
    const task = this.#tasks.shift();
    if (this.#tasks.length > 0) setImmediate(this.#runOne);
    else this.#scheduled = false;
    task?.();
  };

  constructor(prefix: string, bounds: Float64Array) {
    this.prefix = prefix;
    this.bounds = bounds;
    const le = [...[...bounds].map(String), '+Inf'];
    const width = bounds.length + 1;
    const p = prefix;
    const family = (
      name: string,
      help: string,
      type: 'counter' | 'gauge' | 'histogram',
      labelNames: string[],
      emit: Emit,
      reset: (entry: Entry) => void,
    ): Family => new Family(this, p + name, help, type, labelNames, emit, reset);
    const single =
      (slot: number, present: (e: Entry) => boolean): Emit =>
      (e, rows, splay) => {
        if (present(e)) row(rows, e.data[slot]!, e.baseLabels, splay);
      };
    this.families = [
      family(
        'calls_total',
        'Calls through a pipeline, by outcome (cancelled: the caller aborted).',
        'counter',
        ['pipeline', 'outcome'],
        (e, rows, splay) => {
          for (let o = 0; o < OUTCOMES.length; o++) row(rows, e.data[CALLS + o]!, e.outcomeLabels[o]!, splay);
        },
        zero(CALLS, OUTCOMES.length),
      ),
      family(
        'call_duration_seconds',
        'Duration of calls through a pipeline in seconds, by outcome; rejected calls are not observed.',
        'histogram',
        ['pipeline', 'outcome'],
        (e, rows, splay) => {
          const bucketName = `${p}call_duration_seconds_bucket`;
          const sumName = `${p}call_duration_seconds_sum`;
          const countName = `${p}call_duration_seconds_count`;
          const data = e.data;
          const bucketLabels = e.bucketLabels(le);
          for (let o = 0; o < OBSERVED; o++) {
            const labels = e.outcomeLabels[o]!;
            const start = BUCKETS + o * width;
            let total = 0;
            for (let i = 0; i < width; i++) {
              total += data[start + i]!;
              row(rows, total, bucketLabels[o * width + i]!, splay, bucketName);
            }
            row(rows, data[SUMS + o]!, labels, splay, sumName);
            row(rows, total, labels, splay, countName);
          }
        },
        (e) => {
          e.data.fill(0, SUMS, SUMS + OBSERVED);
          e.data.fill(0, BUCKETS);
        },
      ),
      family(
        'circuit_state',
        'Circuit breaker state, one-hot: 1 for the current state, 0 for the others.',
        'gauge',
        ['pipeline', 'state'],
        (e, rows, splay) => {
          if (e.breaker === undefined) return;
          const current = stateIndex(e.breaker.state);
          for (let s = 0; s < STATES.length; s++) row(rows, s === current ? 1 : 0, e.stateLabels[s]!, splay);
        },
        noop,
      ),
      family(
        'circuit_transitions_total',
        'Circuit breaker state changes, by the state entered.',
        'counter',
        ['pipeline', 'to'],
        (e, rows, splay) => {
          if (e.breaker === undefined) return;
          for (let s = 0; s < STATES.length; s++) row(rows, e.data[TRANSITIONS + s]!, e.toLabels[s]!, splay);
        },
        zero(TRANSITIONS, STATES.length),
      ),
      family(
        'bulkhead_active',
        'Calls holding a bulkhead slot.',
        'gauge',
        ['pipeline'],
        (e, rows, splay) => {
          if (e.bulkhead !== undefined) row(rows, e.bulkhead.active, e.baseLabels, splay);
        },
        noop,
      ),
      family(
        'bulkhead_queued',
        'Calls waiting in a bulkhead queue.',
        'gauge',
        ['pipeline'],
        (e, rows, splay) => {
          if (e.bulkhead !== undefined) row(rows, e.bulkhead.queued, e.baseLabels, splay);
        },
        noop,
      ),
      family(
        'bulkhead_rejections_total',
        'Calls a bulkhead refused (full, or queue wait timed out).',
        'counter',
        ['pipeline'],
        single(BULKHEAD_REJECTIONS, (e) => e.bulkhead !== undefined),
        zero(BULKHEAD_REJECTIONS, 1),
      ),
      family(
        'retries_total',
        'Retries (attempts after the first) made by retry policies.',
        'counter',
        ['pipeline'],
        single(RETRIES, (e) => e.hasRetry),
        zero(RETRIES, 1),
      ),
      family(
        'retry_budget_exhausted_total',
        'Retries refused because the retry budget was spent.',
        'counter',
        ['pipeline'],
        single(BUDGET_EXHAUSTED, (e) => e.hasRetry),
        zero(BUDGET_EXHAUSTED, 1),
      ),
      family(
        'timeouts_total',
        'Deadlines that expired in timeout policies (per attempt when inside a retry).',
        'counter',
        ['pipeline'],
        single(TIMEOUTS, (e) => e.hasTimeout),
        zero(TIMEOUTS, 1),
      ),
      family(
        'fallbacks_total',
        'Errors replaced by a fallback value.',
        'counter',
        ['pipeline'],
        single(FALLBACKS, (e) => e.hasFallback),
        zero(FALLBACKS, 1),
      ),
    ];
  }
}

/** The metric names under `prefix`, in registration order. @internal */
export const FAMILY_SUFFIXES = [
  'calls_total',
  'call_duration_seconds',
  'circuit_state',
  'circuit_transitions_total',
  'bulkhead_active',
  'bulkhead_queued',
  'bulkhead_rejections_total',
  'retries_total',
  'retry_budget_exhausted_total',
  'timeouts_total',
  'fallbacks_total',
] as const;

/**
 * Counts calls by outcome and observes their durations in one pipeline's
 * `Float64Array`. A pipeline from this copy of Breakwater calls `record`
 * directly (`Pipeline._record`); any other gets it through `onSettled`.
 * @internal
 */
export class SettledRecorder {
  readonly #data: Float64Array;
  readonly #bounds: Float64Array;
  readonly #width: number;

  constructor(data: Float64Array, bounds: Float64Array) {
    this.#data = data;
    this.#bounds = bounds;
    this.#width = bounds.length + 1;
  }

  record(outcome: string, durationMs: number): void {
    const data = this.#data;
    let o: number;
    switch (outcome) {
      case 'success':
        o = 0;
        break;
      case 'failure':
        o = 1;
        break;
      case 'timeout':
        o = 2;
        break;
      case 'fallback':
        o = 3;
        break;
      case 'cancelled':
        o = 4;
        break;
      case 'rejected':
        data[CALLS + 5]!++;
        return;
      default:
        return;
    }
    data[CALLS + o]!++;
    let seconds = durationMs / 1000;
    if (!(seconds >= 0)) seconds = 0; // NaN or a clock that went backwards
    data[SUMS + o]! += seconds;
    const bounds = this.#bounds;
    const boundCount = bounds.length;
    let i = 0;
    while (i < boundCount && seconds > bounds[i]!) i++;
    data[BUCKETS + o * this.#width + i]!++;
  }
}

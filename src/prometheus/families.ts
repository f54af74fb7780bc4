/**
 * The metric families `breakwater/prometheus` registers: prom-client `Counter`s,
 * `Gauge`s and one `Histogram`, used only through prom-client's public API. Calls
 * never reach them: a call adds to a `Float64Array` per pipeline, and each
 * family's `collect()` brings prom-client up to date from those arrays (and from
 * the breakers' and bulkheads' getters) when the registry is scraped.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Disposer } from '../core/events.ts';
import {
  BUCKETS,
  BUDGET_EXHAUSTED,
  BULKHEAD_REJECTIONS,
  type BreakerLike,
  type BulkheadLike,
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
  type PipelineLike,
  RATE_ADMITTED,
  RATE_DELAYED,
  RATE_REJECTED,
  RETRIES,
  ROLLBACK_REASONS,
  ROLLBACKS,
  type RolloutLike,
  STATES,
  SHARE_REFUSALS,
  stateIndex,
  THROTTLED,
  TIMEOUTS,
  TRANSITIONS,
} from './policies.ts';

export { CAUSES, CHAOS_KINDS, OBSERVED, OUTCOMES, ROLLBACK_REASONS, STATES };

/**
 * Observations replayed into the histogram per turn of the event loop (about a
 * millisecond of work), so a scrape after a busy interval lets I/O in between.
 */
const REPLAY_CHUNK = 4_096;

/** Label set of one series. */
type Labels = Readonly<Record<string, string>>;

/** What one measured pipeline needs at attach time. @internal */
export interface EntrySpec {
  readonly key: string;
  readonly owner: object;
  readonly pipeline: PipelineLike;
  readonly constLabels: Labels;
  readonly breaker: BreakerLike | undefined;
  readonly bulkhead: BulkheadLike | undefined;
  /** Which of the other policies the pipeline has (their families report it only then). */
  readonly has: Readonly<Record<'retry' | 'timeout' | 'fallback' | 'hedge' | 'chaos' | 'rateLimiter', boolean>>;
  /** The pipeline's client-side throttle, if any: its probability is read at scrape time. */
  readonly throttle: { readonly probability: number } | undefined;
  /** The pipeline's adaptive limit, if any: its limit and calls in flight are read at scrape time. */
  readonly limit: { readonly limit: number; readonly inFlight: number } | undefined;
  /** The pipeline's guarded rollout, if any: its shares and rollback are read at scrape time. */
  readonly rollout: RolloutLike | undefined;
  /** The pipeline's fleet-wide policies and budgets, if any: whether they decide alone is read at scrape time. */
  readonly shared: readonly { readonly deciding: string }[] | undefined;
}

/**
 * The series of one pipeline on one registry: its counts, its label sets, the
 * breaker and bulkhead whose getters are read at scrape time, and the listeners
 * that feed it.
 * @internal
 */
export class Entry {
  readonly key: string;
  /** The sink that attached it. */
  readonly owner: object;
  readonly pipeline: PipelineLike;
  /** Counts since attach, written by calls and policy listeners. */
  readonly data: Float64Array;
  /** The part of {@link data} prom-client has been given (same layout). */
  readonly reported: Float64Array;
  readonly breaker: BreakerLike | undefined;
  readonly bulkhead: BulkheadLike | undefined;
  readonly has: EntrySpec['has'];
  readonly throttle: EntrySpec['throttle'];
  readonly limit: EntrySpec['limit'];
  readonly rollout: EntrySpec['rollout'];
  readonly shared: EntrySpec['shared'];
  /** `{ pipeline, ...constLabels }`, as the only element. */
  readonly baseLabels: readonly Labels[];
  /** One label set per outcome, in {@link OUTCOMES} order. */
  readonly outcomeLabels: readonly Labels[];
  /** One label set per circuit state, for `circuit_state`. */
  readonly stateLabels: readonly Labels[];
  /** One label set per target state, for `circuit_transitions_total`. */
  readonly toLabels: readonly Labels[];
  /** One label set per fallback cause, in {@link CAUSES} order. */
  readonly causeLabels: readonly Labels[];
  /** One label set per chaos kind, in {@link CHAOS_KINDS} order. */
  readonly kindLabels: readonly Labels[];
  /** One label set per rollback reason, in {@link ROLLBACK_REASONS} order. */
  readonly reasonLabels: readonly Labels[];
  /** How many attachments of its sink hold this entry. */
  holds = 0;
  removed = false;
  readonly disposers: Disposer[] = [];

  constructor(spec: EntrySpec, bucketCount: number) {
    this.key = spec.key;
    this.owner = spec.owner;
    this.pipeline = spec.pipeline;
    this.breaker = spec.breaker;
    this.bulkhead = spec.bulkhead;
    this.has = spec.has;
    this.throttle = spec.throttle;
    this.limit = spec.limit;
    this.rollout = spec.rollout;
    this.shared = spec.shared;
    this.data = new Float64Array(BUCKETS + 2 * OBSERVED * (bucketCount + 1));
    this.reported = new Float64Array(this.data.length);
    const pipeline = spec.pipeline.name!;
    const labels = (extra: Record<string, string>): Labels => Object.freeze({ pipeline, ...extra, ...spec.constLabels });
    this.baseLabels = [labels({})];
    this.outcomeLabels = OUTCOMES.map((outcome) => labels({ outcome }));
    this.stateLabels = STATES.map((state) => labels({ state }));
    this.toLabels = STATES.map((to) => labels({ to }));
    this.causeLabels = CAUSES.map((cause) => labels({ cause }));
    this.kindLabels = CHAOS_KINDS.map((kind) => labels({ kind }));
    this.reasonLabels = ROLLBACK_REASONS.map((reason) => labels({ reason }));
  }

}

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
  /** Distance from a bucket's count to its sum. */
  readonly #sums: number;

  constructor(data: Float64Array, bounds: Float64Array) {
    this.#data = data;
    this.#bounds = bounds;
    this.#width = bounds.length + 1;
    this.#sums = OBSERVED * this.#width;
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
    const bounds = this.#bounds;
    const boundCount = bounds.length;
    let i = 0;
    while (i < boundCount && seconds > bounds[i]!) i++;
    const bucket = BUCKETS + o * this.#width + i;
    data[bucket]!++;
    data[bucket + this.#sums]! += seconds;
  }
}

/**
 * One registered family. Besides prom-client's own members each has `fullName`
 * (the registered name: prom-client's OpenMetrics output renames counters in
 * place), `start(entry)`, which creates an entry's series at 0, and
 * `drop(entry)`, which removes them.
 */
export type Family = CounterFamily | GaugeFamily | DurationHistogram;

/** The group of `metric` when it is a family of this copy of Breakwater. @internal */
export function groupOf(metric: unknown): Group | undefined {
  return metric instanceof CounterFamily || metric instanceof GaugeFamily || metric instanceof DurationHistogram ? metric.group : undefined;
}

/** The label sets of an entry in one family, or `undefined` when it lacks the policy. */
type Series = (entry: Entry) => readonly Labels[] | undefined;

function dropSeries(metric: { remove(labels: Labels): void }, series: Series, entry: Entry): void {
  for (const labels of series(entry) ?? []) metric.remove(labels);
}

/**
 * A counter family: the label sets of `series(entry)` count slots `from`,
 * `from + 1`, … of each entry. A scrape adds what was counted since the last one.
 */
class CounterFamily extends Counter<string> {
  readonly fullName: string;
  readonly group: Group;
  readonly from: number;
  readonly series: Series;

  constructor(group: Group, name: string, help: string, labelNames: string[], from: number, series: Series) {
    super({
      name,
      help,
      labelNames,
      registers: [],
      async collect(this: Counter<string>) {
        await group.turn();
        (this as CounterFamily).#catchUp();
      },
    });
    this.fullName = name;
    this.group = group;
    this.from = from;
    this.series = series;
  }

  #catchUp(): void {
    for (const entry of this.group.entries.values()) {
      const sets = this.series(entry);
      if (sets === undefined) continue;
      const { data, reported } = entry;
      for (let k = 0; k < sets.length; k++) {
        const slot = this.from + k;
        const delta = data[slot]! - reported[slot]!;
        if (delta > 0) {
          this.inc(sets[k]!, delta);
          reported[slot] = data[slot]!;
        }
      }
    }
  }

  start(entry: Entry): void {
    for (const labels of this.series(entry) ?? []) this.inc(labels, 0);
  }

  drop(entry: Entry): void {
    dropSeries(this, this.series, entry);
  }

  /**
   * `registry.resetMetrics()`: prom-client forgets the values; what was counted
   * so far counts as reported, and every series starts again at 0.
   */
  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset() before this class's fields exist.
    if (this.group === undefined) return;
    for (const entry of this.group.entries.values()) {
      const sets = this.series(entry);
      if (sets === undefined) continue;
      entry.reported.set(entry.data.subarray(this.from, this.from + sets.length), this.from);
      this.start(entry);
    }
  }
}

/** A gauge family: `read(entry)` gives the values of `series(entry)`, in order, at scrape time. */
class GaugeFamily extends Gauge<string> {
  readonly fullName: string;
  readonly group: Group;
  readonly series: Series;

  constructor(group: Group, name: string, help: string, labelNames: string[], series: Series, read: (entry: Entry) => readonly number[]) {
    super({
      name,
      help,
      labelNames,
      registers: [],
      async collect(this: Gauge<string>) {
        await group.turn();
        for (const entry of group.entries.values()) {
          const sets = series(entry);
          if (sets === undefined) continue;
          const values = read(entry);
          for (let k = 0; k < sets.length; k++) this.set(sets[k]!, values[k]!);
        }
      },
    });
    this.fullName = name;
    this.group = group;
    this.series = series;
  }

  start(): void {
    // Set at every scrape.
  }

  drop(entry: Entry): void {
    dropSeries(this, this.series, entry);
  }
}

/**
 * `call_duration_seconds`. prom-client's public `Histogram` API adds one
 * observation per `observe()` call and has no way to set a count, so a scrape
 * replays the observations made since the last one: for each bucket, as many
 * observations as calls landed in it, each of the mean of their durations. That
 * mean lies in the bucket, so every bucket count, the count and the sum come out
 * as if each call had been observed (the sum up to floating-point rounding).
 */
class DurationHistogram extends Histogram<string> {
  readonly fullName: string;
  readonly group: Group;
  /** Distance from a bucket's count to its sum in an entry's array. */
  readonly sums: number;

  constructor(group: Group, name: string, help: string, labelNames: string[]) {
    super({
      name,
      help,
      labelNames,
      buckets: [...group.bounds],
      registers: [],
      async collect(this: Histogram<string>) {
        await group.turn();
        await (this as DurationHistogram).#catchUp();
      },
    });
    this.fullName = name;
    this.group = group;
    this.sums = OBSERVED * (group.bounds.length + 1);
  }

  /**
   * Replays what was observed before the scrape began, {@link REPLAY_CHUNK}
   * observations per turn of the event loop. Each chunk reads the arrays afresh,
   * so a pipeline detached or a registry reset in between is simply seen as it
   * now is, and two overlapping scrapes never replay one observation twice.
   */
  async #catchUp(): Promise<void> {
    let left = this.#pending();
    while (left > 0) {
      const done = this.#replay(Math.min(left, REPLAY_CHUNK));
      left -= done;
      if (done === 0 || left === 0) return;
      await this.group.turn();
    }
  }

  /** Observations recorded and not yet replayed, over every entry. */
  #pending(): number {
    let pending = 0;
    for (const { data, reported } of this.group.entries.values()) {
      for (let k = BUCKETS; k < BUCKETS + this.sums; k++) pending += data[k]! - reported[k]!;
    }
    return pending;
  }

  /** Replays up to `limit` observations; returns how many it replayed. */
  #replay(limit: number): number {
    const bounds = this.group.bounds;
    const width = bounds.length + 1;
    let done = 0;
    for (const entry of this.group.entries.values()) {
      const { data, reported } = entry;
      for (let o = 0; o < OBSERVED; o++) {
        const labels = entry.outcomeLabels[o]!;
        for (let i = 0; i < width; i++) {
          const k = BUCKETS + o * width + i;
          const pending = data[k]! - reported[k]!;
          if (pending === 0) continue;
          const take = Math.min(pending, limit - done);
          const mean = inBucket((data[k + this.sums]! - reported[k + this.sums]!) / pending, bounds, i);
          reported[k] = reported[k]! + take;
          reported[k + this.sums] = take === pending ? data[k + this.sums]! : reported[k + this.sums]! + take * mean;
          for (let n = 0; n < take; n++) this.observe(labels, mean);
          done += take;
          if (done === limit) return done;
        }
      }
    }
    return done;
  }

  start(entry: Entry): void {
    for (let o = 0; o < OBSERVED; o++) this.zero(entry.outcomeLabels[o]!);
  }

  drop(entry: Entry): void {
    for (let o = 0; o < OBSERVED; o++) this.remove(entry.outcomeLabels[o]!);
  }

  /** `registry.resetMetrics()`: as for the counters, what was observed so far counts as reported. */
  override reset(): void {
    super.reset();
    if (this.group === undefined) return;
    for (const entry of this.group.entries.values()) {
      entry.reported.set(entry.data.subarray(BUCKETS), BUCKETS);
      this.start(entry);
    }
  }
}

/**
 * Keeps a bucket's mean inside the bucket (`(bounds[i - 1], bounds[i]]`, the
 * first from 0), which rounding of the sums could otherwise nudge across a bound.
 */
function inBucket(mean: number, bounds: Float64Array, i: number): number {
  const upper = i < bounds.length ? bounds[i]! : Infinity;
  const lower = i > 0 ? bounds[i - 1]! : 0;
  if (mean > upper) return upper;
  if (i === 0) return mean > 0 ? mean : 0;
  return mean > lower ? mean : lower + lower * Number.EPSILON;
}

/** The metric names under a prefix, in registration order. @internal */
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
  'circuit_rejections_total',
  'hedges_total',
  'hedge_wins_total',
  'hedge_budget_exhausted_total',
  'chaos_injections_total',
  'throttle_rejections_total',
  'throttle_probability',
  'adaptive_limit',
  'adaptive_in_flight',
  'adaptive_rejections_total',
  'rate_limit_admitted_total',
  'rate_limit_delayed_total',
  'rate_limit_rejections_total',
  'rollout_exposures_total',
  'rollout_experiment_failures_total',
  'rollout_rollbacks_total',
  'rollout_share_refusals_total',
  'rollout_share',
  'rollout_requested_share',
  'rollout_rolled_back',
  'fleet_degraded',
] as const;

/**
 * Every family under one prefix on one registry, and the pipelines they report.
 * Shared by all sinks of this copy of Breakwater over that registry and prefix.
 * @internal
 */
export class Group {
  /** Histogram upper bounds in seconds, increasing, without +Inf. */
  readonly bounds: Float64Array;
  /** Names of the constant labels every series of this group carries, sorted. */
  readonly constLabelNames: readonly string[];
  /** Measured pipelines by series key, in attach order. */
  readonly entries = new Map<string, Entry>();
  readonly families: readonly Family[];
  readonly #waiting: (() => void)[] = [];

  /**
   * Resolves on a later turn of the event loop, one caller per turn, in call
   * order: a `setImmediate` queued from a `setImmediate` callback waits for the
   * next turn, so pending I/O is polled in between. Each family catches up (and
   * prom-client then formats it) in a turn of its own, so a large scrape never
   * blocks the event loop for all its series at once.
   */
  turn(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#waiting.push(resolve) === 1) setImmediate(this.#next);
    });
  }

  readonly #next = (): void => {
    const resolve = this.#waiting.shift()!;
    if (this.#waiting.length > 0) setImmediate(this.#next);
    resolve();
  };

  constructor(prefix: string, bounds: Float64Array, constLabelNames: readonly string[]) {
    this.bounds = bounds;
    this.constLabelNames = constLabelNames;
    const names = (extra?: string): string[] => ['pipeline', ...(extra === undefined ? [] : [extra]), ...constLabelNames];
    const counter = (suffix: string, help: string, from: number, extra: string | undefined, series: Series): Family =>
      new CounterFamily(this, prefix + suffix, help, names(extra), from, series);
    const single = (suffix: string, help: string, from: number, present: (e: Entry) => boolean): Family =>
      counter(suffix, help, from, undefined, (e) => (present(e) ? e.baseLabels : undefined));
    const rolloutGauge = (suffix: string, help: string, read: (r: RolloutLike) => number): Family =>
      new GaugeFamily(this, prefix + suffix, help, names(), (e) => (e.rollout ? e.baseLabels : undefined), (e) => [read(e.rollout!)]);
    const occupancy = (suffix: string, help: string, read: (b: BulkheadLike) => number): Family =>
      new GaugeFamily(this, prefix + suffix, help, names(), (e) => (e.bulkhead ? e.baseLabels : undefined), (e) => [read(e.bulkhead!)]);
    this.families = [
      counter('calls_total', 'Calls through a pipeline, by outcome (cancelled: the caller aborted).', CALLS, 'outcome', (e) => e.outcomeLabels),
      new DurationHistogram(
        this,
        `${prefix}call_duration_seconds`,
        'Duration of calls through a pipeline in seconds, by outcome; rejected calls are not observed.',
        names('outcome'),
      ),
      new GaugeFamily(
        this,
        `${prefix}circuit_state`,
        'Circuit breaker state, one-hot: 1 for the current state, 0 for the others.',
        names('state'),
        (e) => (e.breaker ? e.stateLabels : undefined),
        (e) => {
          const current = stateIndex(e.breaker!.state);
          return STATES.map((_, s) => (s === current ? 1 : 0));
        },
      ),
      counter('circuit_transitions_total', 'Circuit breaker state changes, by the state entered.', TRANSITIONS, 'to', (e) =>
        e.breaker ? e.toLabels : undefined,
      ),
      occupancy('bulkhead_active', 'Calls holding a bulkhead slot.', (b) => b.active),
      occupancy('bulkhead_queued', 'Calls waiting in a bulkhead queue.', (b) => b.queued),
      single('bulkhead_rejections_total', 'Calls a bulkhead refused (full, or queue wait timed out).', BULKHEAD_REJECTIONS, (e) => e.bulkhead !== undefined),
      single('retries_total', 'Retries (attempts after the first) made by retry policies.', RETRIES, (e) => e.has.retry),
      single('retry_budget_exhausted_total', 'Retries refused because the retry budget was spent.', BUDGET_EXHAUSTED, (e) => e.has.retry),
      single('timeouts_total', 'Deadlines that expired in timeout policies (per attempt when inside a retry).', TIMEOUTS, (e) => e.has.timeout),
      counter('fallbacks_total', 'Errors replaced by a fallback value, by the cause they covered for.', FALLBACKS, 'cause', (e) =>
        e.has.fallback ? e.causeLabels : undefined,
      ),
      single('circuit_rejections_total', 'Calls a circuit breaker refused without running them (open, half-open full, isolated).', CIRCUIT_REJECTIONS, (e) => e.breaker !== undefined),
      single('hedges_total', 'Hedged attempts started (extra attempts for slow calls).', HEDGES, (e) => e.has.hedge),
      single('hedge_wins_total', 'Calls whose result came from a hedged attempt.', HEDGE_WINS, (e) => e.has.hedge),
      single('hedge_budget_exhausted_total', 'Hedges that were due but refused by the extra-load budget.', HEDGE_BUDGET_EXHAUSTED, (e) => e.has.hedge),
      counter('chaos_injections_total', 'Calls a chaos policy injected into, by kind: a rate left on shows here.', CHAOS, 'kind', (e) =>
        e.has.chaos ? e.kindLabels : undefined,
      ),
      single('throttle_rejections_total', 'Calls a client-side throttle refused locally.', THROTTLED, (e) => e.throttle !== undefined),
      new GaugeFamily(
        this,
        `${prefix}throttle_probability`,
        'The probability a client-side throttle refuses the next call, read when scraped.',
        names(),
        (e) => (e.throttle ? e.baseLabels : undefined),
        (e) => [e.throttle!.probability],
      ),
      new GaugeFamily(this, `${prefix}adaptive_limit`, 'The current limit of an adaptive concurrency limit, read when scraped.', names(), (e) =>
        e.limit ? e.baseLabels : undefined, (e) => [e.limit!.limit]),
      new GaugeFamily(this, `${prefix}adaptive_in_flight`, 'Calls holding a slot of an adaptive concurrency limit, read when scraped.', names(), (e) =>
        e.limit ? e.baseLabels : undefined, (e) => [e.limit!.inFlight]),
      single('adaptive_rejections_total', 'Calls an adaptive concurrency limit refused (full, or queue wait timed out).', LIMIT_DROPS, (e) => e.limit !== undefined),
      single('rate_limit_admitted_total', 'Calls a rate limiter admitted, at once or after a wait.', RATE_ADMITTED, (e) => e.has.rateLimiter),
      single('rate_limit_delayed_total', 'Calls a rate limiter admitted after waiting for a token.', RATE_DELAYED, (e) => e.has.rateLimiter),
      single('rate_limit_rejections_total', 'Calls a rate limiter refused (no token, and no room or time to wait).', RATE_REJECTED, (e) => e.has.rateLimiter),
      single('rollout_exposures_total', 'Calls a guarded rollout sent to its experimental implementation.', EXPOSURES, (e) => e.rollout !== undefined),
      single(
        'rollout_experiment_failures_total',
        'Experimental calls that failed, were refused by their breaker or were cut, and were answered by the stable path.',
        EXPERIMENT_FAILURES,
        (e) => e.rollout !== undefined,
      ),
      counter('rollout_rollbacks_total', 'Automatic rollbacks of an experiment, by the health signal that triggered them.', ROLLBACKS, 'reason', (e) =>
        e.rollout ? e.reasonLabels : undefined,
      ),
      single('rollout_share_refusals_total', 'Flag values a guarded rollout refused (not a share from 0 to 1).', SHARE_REFUSALS, (e) => e.rollout !== undefined),
      rolloutGauge('rollout_share', 'The share of calls a guarded rollout sends to its experiment now, read when scraped.', (r) => r.share),
      rolloutGauge('rollout_requested_share', 'The share the feature flag asks for (the ramp or a rollback may hold the share below it).', (r) => r.requestedShare),
      rolloutGauge('rollout_rolled_back', '1 while a guarded rollout has rolled its experiment back (until released), else 0.', (r) =>
        r.rolledBack === undefined ? 0 : 1,
      ),
      new GaugeFamily(
        this,
        `${prefix}fleet_degraded`,
        'Whether fleet-wide policies (breakwater/redis) of a pipeline decide on local state, Redis being unavailable: 1 yes, 0 no, read when scraped.',
        names(),
        (e) => (e.shared ? e.baseLabels : undefined),
        (e) => [e.shared!.some((policy) => policy.deciding !== 'fleet') ? 1 : 0],
      ),
    ];
  }

  /** The recorder of an entry's calls: counts each call and its duration. */
  recorder(entry: Entry): SettledRecorder {
    return new SettledRecorder(entry.data, this.bounds);
  }

  /** Starts reporting `entry`: its series appear at 0. */
  add(entry: Entry): void {
    this.entries.set(entry.key, entry);
    for (const family of this.families) family.start(entry);
  }

  /** Stops reporting `entry` and removes its series. */
  delete(entry: Entry): void {
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    for (const family of this.families) family.drop(entry);
  }
}

import type { Metric } from 'prom-client';
import type { Disposer } from '../core/events.ts';
import { PIPELINE_NAME, Pipeline } from '../core/pipeline.ts';
import { type Check, checkOptions, integer, received, satisfies } from '../core/validate.ts';
import { Entry, FAMILY_SUFFIXES, Group, groupOf } from './families.ts';
import { checkBuckets, countInto, DEFAULT_BUCKETS_SECONDS, holdAttachment, isPipelineLike, on, type PipelineLike, type Unit, unitsOf } from './policies.ts';
import { GATE_FAMILY_SUFFIXES, GateEntry, GateFamilies, gateFamiliesOf, type GateLike, isGateLike } from './gates.ts';

/**
 * The part of a prom-client `Registry` the sink uses: pass your service's own
 * `new Registry()` (or `register`, prom-client's global registry, if that is the
 * one you serve).
 */
export interface MetricsRegistry {
  /** prom-client's `registry.registerMetric(metric)`. */
  registerMetric(metric: Metric): void;
  /** prom-client's `registry.getSingleMetric(name)`. */
  getSingleMetric(name: string): Metric | undefined;
}

/** Options of {@link prometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /** The prom-client registry to report into. Required: the global registry is used only if you pass it. */
  readonly registry: MetricsRegistry;
  /**
   * Prepended to every metric name (default `'breakwater_'`). Letters, digits,
   * `_` and `:`, not starting with a digit (Prometheus metric-name rules).
   */
  readonly prefix?: string;
  /**
   * Upper bounds of the `call_duration_seconds` histogram buckets, in seconds,
   * strictly increasing (default {@link DEFAULT_BUCKETS_SECONDS}); `+Inf` is added.
   */
  readonly buckets?: readonly number[];
  /**
   * Constant labels added to every series of this sink, such as `{ region: 'eu-1' }`.
   * Names follow Prometheus label-name rules and cannot be `pipeline`, `outcome`,
   * `state`, `to`, `le`, `cause`, `kind`, `gate` or `class`; values are strings.
   */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * The most pipelines this registry and prefix may report at once (default 500;
   * 1 to 100,000). Each pipeline brings up to about 110 series, so this bounds
   * the size of a scrape. Attaching one more throws: pipelines are per
   * dependency, never per request or user (for per-key pipelines, see `keyed`,
   * which bounds itself).
   */
  readonly maxPipelines?: number;
}


export { DEFAULT_BUCKETS_SECONDS };

const METRIC_PREFIX = /^(?:[A-Za-z_:][A-Za-z0-9_:]*)?$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED_LABELS = new Set(['pipeline', 'outcome', 'state', 'to', 'le', 'cause', 'kind', 'gate', 'class']);

function isRegistry(value: unknown): boolean {
  const v = value as Record<string, unknown> | null;
  return typeof v === 'object' && v !== null && typeof v.registerMetric === 'function' && typeof v.getSingleMetric === 'function';
}

function checkLabels(owner: string, key: string, value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${owner}: option "${key}" must be an object of label names to string values; received ${received(value)}`);
  }
  for (const name of Reflect.ownKeys(value)) {
    if (typeof name === 'symbol' || !LABEL_NAME.test(name) || name.startsWith('__')) {
      throw new TypeError(
        `${owner}: option "${key}" has an invalid label name ${typeof name === 'symbol' ? name.toString() : JSON.stringify(name)}: ` +
          'label names are letters, digits and _, not starting with a digit or "__"',
      );
    }
    if (RESERVED_LABELS.has(name)) {
      throw new TypeError(`${owner}: option "${key}" cannot set the label "${name}": Breakwater sets it on its own series`);
    }
    const labelValue = (value as Record<string, unknown>)[name];
    if (typeof labelValue !== 'string') {
      throw new TypeError(`${owner}: option "${key}": the value of label "${name}" must be a string; received ${received(labelValue)}`);
    }
  }
}

const OWNER = 'prometheusMetrics';

/**
 * Finds the families this copy of Breakwater registered under `prefix` on
 * `registry`, or registers new ones.
 */
function groupFor(registry: MetricsRegistry, prefix: string, bounds: Float64Array, constLabelNames: readonly string[]): Group {
  let group: Group | undefined;
  for (const suffix of FAMILY_SUFFIXES) {
    const existing = registry.getSingleMetric(prefix + suffix);
    if (existing === undefined || existing === null) continue;
    const candidate = groupOf(existing);
    if (candidate === undefined) {
      throw new Error(
        `${OWNER}: the registry already has a metric named "${prefix + suffix}" that Breakwater did not register ` +
          '(or that another copy of breakwater/prometheus registered); choose another "prefix" or remove that metric',
      );
    }
    if (group !== undefined && group !== candidate) {
      throw new Error(`${OWNER}: the metrics under prefix "${prefix}" on this registry come from two different sinks' setups; use another "prefix"`);
    }
    group = candidate;
  }
  if (group === undefined) group = new Group(prefix, bounds, constLabelNames);
  else {
    const registered = `already registered under prefix "${prefix}" on this registry`;
    if (group.bounds.length !== bounds.length || group.bounds.some((b, i) => b !== bounds[i])) {
      throw new TypeError(
        `${OWNER}: option "buckets" must match the buckets of the metrics ${registered} ` +
          `([${[...group.bounds].join(', ')}]); received [${[...bounds].join(', ')}]`,
      );
    }
    if (group.constLabelNames.join() !== constLabelNames.join()) {
      throw new TypeError(
        `${OWNER}: option "labels" must have the label names of the metrics ${registered} ` +
          `([${group.constLabelNames.join(', ')}]); received [${constLabelNames.join(', ')}]`,
      );
    }
  }
  // Register every family: a no-op for those already there, and a repair after
  // someone removed one of them from the registry.
  for (const family of group.families) {
    if (registry.getSingleMetric(family.fullName) !== family) registry.registerMetric(family);
  }
  return group;
}

/**
 * A Prometheus metrics sink over one prom-client registry; create it with
 * {@link prometheusMetrics}, then {@link PrometheusMetrics.attach} each pipeline.
 */
export class PrometheusMetrics {
  /** The prefix of every metric name, such as `'breakwater_'`. */
  readonly prefix: string;
  /** The constant labels of this sink's series. */
  readonly labels: Readonly<Record<string, string>>;
  readonly #group: Group;
  readonly #registry: MetricsRegistry;
  #gateFamilies: GateFamilies | undefined; // found or registered on the first attachGate
  readonly #labelsKey: string;
  readonly #attachments = new Set<Disposer>();
  readonly #maxPipelines: number;

  /** Use {@link prometheusMetrics} instead. @internal */
  constructor(registry: MetricsRegistry, prefix: string, bounds: Float64Array, labels: Readonly<Record<string, string>>, maxPipelines = 500) {
    this.#maxPipelines = maxPipelines;
    this.#registry = registry;
    this.prefix = prefix;
    this.labels = labels;
    const sorted = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this.#labelsKey = JSON.stringify(sorted);
    this.#group = groupFor(registry, prefix, bounds, sorted.map(([name]) => name));
  }

  /**
   * Reports `pipelines` (each must have a `name`: it becomes the `pipeline`
   * label) and every named pipeline nested in them, until the returned disposer
   * is called or the pipeline is disposed (`pipeline.dispose()`), which removes
   * its series. A pipeline attached more than once through this sink (directly
   * or nested in another) is reported once, until the last attachment holding it
   * is disposed; another sink with the same constant labels cannot report it too.
   */
  attach(...pipelines: PipelineLike[]): Disposer {
    const where = `${OWNER}.attach`;
    if (pipelines.length === 0) throw new TypeError(`${where}: expected at least one pipeline; received none`);
    // Check everything before subscribing anything: a refused attach changes nothing.
    const planned = new Map<string, PipelineLike>();
    const plans: { root: PipelineLike; units: { key: string; unit: Unit }[] }[] = [];
    for (const [i, p] of pipelines.entries()) {
      if (!isPipelineLike(p)) {
        throw new TypeError(`${where}: argument ${i + 1} must be a pipeline created with pipeline(); received ${received(p)}`);
      }
      if ((p as { disposed?: unknown }).disposed === true) {
        throw new TypeError(`${where}: argument ${i + 1}, pipeline "${p.name}", was disposed; attach a live pipeline`);
      }
      if (p.name === undefined || p.name === '') {
        throw new TypeError(
          `${where}: argument ${i + 1} is a pipeline without a name; name it, as in pipeline({ name: 'auth' }, ...): the name becomes the "pipeline" label`,
        );
      }
      const units = unitsOf(p).map((unit) => ({ key: this.#check(unit, planned), unit }));
      plans.push({ root: p, units });
    }
    const detachers: Disposer[] = [];
    try {
      for (const { root, units } of plans) detachers.push(this.#hold(root, units));
    } catch (error) {
      for (const d of detachers) d();
      throw error;
    }
    const detach: Disposer = () => {
      for (const d of detachers) d();
    };
    return detach;
  }

  /**
   * Reports admission gates made by `httpGate()` from `breakwater/http`: for
   * each gate (its `name` becomes the `gate` label) and class,
   * `http_requests_total{outcome="admitted"|"shed"}` and `http_in_flight`, and
   * the gate's `http_limit`, all read from the gate when scraped. Until the
   * returned disposer is called, which removes their series. Gate names are
   * unique per registry.
   */
  attachGate(...gates: GateLike[]): Disposer {
    const where = `${OWNER}.attachGate`;
    if (gates.length === 0) throw new TypeError(`${where}: expected at least one gate; received none`);
    const keys = new Set<string>();
    for (const [i, gate] of gates.entries()) {
      if (!isGateLike(gate)) throw new TypeError(`${where}: argument ${i + 1} must be a gate created with httpGate(); received ${received(gate)}`);
      const key = `${gate.name}\u0000${this.#labelsKey}`;
      const reported = this.#gates().entries.get(key);
      if (keys.has(key) || (reported !== undefined && reported.gate !== gate)) {
        throw new TypeError(`${where}: another gate named "${gate.name}" is already reported on this registry; gate names must be unique per registry`);
      }
      if (reported !== undefined && reported.owner !== this) {
        throw new TypeError(`${where}: gate "${gate.name}" is already reported on this registry by another sink with the same constant labels; attach it through one sink only`);
      }
      keys.add(key);
    }
    const families = this.#gates();
    const detachers = gates.map((gate) => {
      const key = `${gate.name}\u0000${this.#labelsKey}`;
      return families.entries.has(key) ? () => {} : families.add(key, new GateEntry(gate, this, this.labels));
    });
    const detach: Disposer = () => {
      for (const d of detachers) d();
      this.#attachments.delete(detach);
    };
    this.#attachments.add(detach);
    return detach;
  }

  /** The gate families of this registry and prefix, found or registered. */
  #gates(): GateFamilies {
    if (this.#gateFamilies !== undefined) return this.#gateFamilies;
    const registry = this.#registry;
    const names = this.#group.constLabelNames;
    let families: GateFamilies | undefined;
    for (const suffix of GATE_FAMILY_SUFFIXES) {
      const existing = registry.getSingleMetric(this.prefix + suffix);
      if (existing === undefined || existing === null) continue;
      const found = gateFamiliesOf(existing);
      if (found === undefined) {
        throw new Error(
          `${OWNER}: the registry already has a metric named "${this.prefix + suffix}" that Breakwater did not register ` +
            '(or that another copy of breakwater/prometheus registered); choose another "prefix" or remove that metric',
        );
      }
      families = found;
    }
    if (families !== undefined && families.constLabelNames.join() !== names.join()) {
      throw new TypeError(
        `${OWNER}: option "labels" must have the label names of the gate metrics already registered under prefix "${this.prefix}" ` +
          `([${families.constLabelNames.join(', ')}]); received [${names.join(', ')}]`,
      );
    }
    families ??= new GateFamilies(this.prefix, names);
    for (const family of families.all) if (registry.getSingleMetric(family.fullName) !== family) registry.registerMetric(family);
    this.#gateFamilies = families;
    return families;
  }

  /** Checks one unit and returns its series key. */
  #check(unit: Unit, planned: Map<string, PipelineLike>): string {
    const where = `${OWNER}.attach`;
    const name = unit.pipeline.name;
    if (typeof name !== 'string' || !PIPELINE_NAME.test(name)) {
      throw new TypeError(
        `${where}: pipeline name ${received(name)} is not a valid label value: 1 to 100 letters, digits or _ . : / - starting with a letter or digit`,
      );
    }
    if ((unit.pipeline as { disposed?: unknown }).disposed === true) {
      throw new TypeError(`${where}: pipeline "${name}" was disposed; attach a live pipeline (a disposed one nested in another runs no calls)`);
    }
    if (unit.breakers.length > 1 || unit.bulkheads.length > 1) {
      const what = unit.breakers.length > 1 ? `${unit.breakers.length} circuit breakers` : `${unit.bulkheads.length} bulkheads`;
      throw new TypeError(
        `${where}: pipeline "${name}" has ${what}; its state gauges can describe only one. ` +
          'Put each extra one in its own named pipeline nested inside, as in pipeline({ name: "auth-host" }, circuitBreaker(...)): it gets its own series',
      );
    }
    const key = `${name}\u0000${this.#labelsKey}`;
    const reported = this.#group.entries.get(key);
    const other = reported?.pipeline ?? planned.get(key);
    if (other !== undefined && other !== unit.pipeline) {
      throw new TypeError(
        `${where}: another pipeline named "${name}" is already reported on this registry; ` +
          'pipeline names must be unique per registry: dispose the other pipeline (pipeline.dispose()) or give this one another name',
      );
    }
    if (reported !== undefined && reported.owner !== this) {
      throw new TypeError(
        `${where}: pipeline "${name}" is already reported on this registry by another sink with the same constant labels; ` +
          'attach it through one sink only',
      );
    }
    // Only pipelines not reported yet count against the bound, each once.
    const fresh = reported === undefined && !planned.has(key) ? [...planned.keys()].filter((k) => !this.#group.entries.has(k)).length : -1;
    if (fresh >= 0 && this.#group.entries.size + fresh >= this.#maxPipelines) {
      throw new RangeError(
        `${where}: pipeline "${name}" would be pipeline number ${this.#group.entries.size + fresh + 1} on this registry, over maxPipelines (${this.#maxPipelines}); ` +
          'name pipelines per dependency, never per request or user (keyed() bounds per-key pipelines), or raise maxPipelines',
      );
    }
    planned.set(key, unit.pipeline);
    return key;
  }

  /** Holds the entries of `root`'s units until the returned disposer runs or `root` is disposed. */
  #hold(root: PipelineLike, units: { key: string; unit: Unit }[]): Disposer {
    const held: Entry[] = [];
    try {
      for (const { key, unit } of units) held.push(this.#acquire(key, unit));
    } catch (error) {
      for (const entry of held) this.#release(entry);
      throw error;
    }
    return holdAttachment(root, held, (entry) => this.#release(entry), this.#attachments);
  }

  /** Detaches every pipeline and gate attached through this sink. The metric families stay registered. */
  dispose(): void {
    for (const detach of [...this.#attachments]) detach();
  }

  #acquire(key: string, unit: Unit): Entry {
    const group = this.#group;
    let entry = group.entries.get(key);
    if (entry === undefined) {
      entry = new Entry(
        {
          key,
          owner: this,
          pipeline: unit.pipeline,
          constLabels: this.labels,
          breaker: unit.breakers[0],
          bulkhead: unit.bulkheads[0],
          has: {
            retry: unit.retries.length > 0,
            timeout: unit.timeouts.length > 0,
            fallback: unit.fallbacks.length > 0,
            hedge: unit.hedges.length > 0,
            chaos: unit.chaos.length > 0,
            rateLimiter: unit.rateLimiters.length > 0,
          },
          throttle: unit.throttles[0],
          limit: unit.limits[0],
          rollout: unit.rollouts[0],
          shared: unit.shared.length > 0 ? unit.shared : undefined,
        },
        group.bounds.length,
      );
      const d = entry.disposers;
      try {
        const recorder = group.recorder(entry);
        // A pipeline from this copy of Breakwater takes the recorder directly (no
        // event object per call); any other pipeline-like reports through onSettled.
        if (unit.pipeline instanceof Pipeline) d.push(unit.pipeline._record(recorder));
        else on(unit.pipeline.onSettled, (event) => recorder.record(event.outcome, event.durationMs), d);
        countInto(unit, entry.data, d);
        const created = entry;
        // A disposed pipeline's series go, however many attachments hold them.
        on(unit.pipeline.onDispose, () => this.#remove(created), d);
      } catch (error) {
        // A policy refused a listener (a disposed fromOpossum adapter, say): undo.
        for (const dispose of d) dispose();
        throw error;
      }
      group.add(entry);
    }
    entry.holds++;
    return entry;
  }

  #release(entry: Entry): void {
    if (entry.removed) return;
    if (--entry.holds <= 0) this.#remove(entry);
  }

  #remove(entry: Entry): void {
    if (entry.removed) return;
    entry.removed = true;
    for (const d of entry.disposers) d();
    this.#group.delete(entry);
  }
}

/**
 * Creates a Prometheus metrics sink over `registry`. Attach each pipeline with
 * one line; the pipeline's `name` becomes the `pipeline` label:
 *
 * ```ts
 * const metrics = prometheusMetrics({ registry });
 * metrics.attach(pipeline({ name: 'auth' }, retry(), timeout({ ms: 500 })));
 * ```
 *
 * Calls only bump numbers; the metrics catch up with them when the registry is
 * scraped. A second sink over the same registry and prefix reuses the
 * registered metrics.
 */
export function prometheusMetrics(options: PrometheusMetricsOptions): PrometheusMetrics {
  const checked = checkOptions<PrometheusMetricsOptions>(
    OWNER,
    options,
    {
      registry: satisfies('a prom-client Registry (an object with registerMetric and getSingleMetric functions)', isRegistry),
      prefix: satisfies(
        'a metric-name prefix: letters, digits, _ and :, not starting with a digit',
        (v) => typeof v === 'string' && METRIC_PREFIX.test(v),
      ),
      buckets: checkBuckets('call_duration_seconds'),
      labels: checkLabels,
      maxPipelines: integer(1, 100_000),
    },
    ['registry'],
  );
  const prefix = checked.prefix ?? 'breakwater_';
  const bounds = Float64Array.from(checked.buckets ?? DEFAULT_BUCKETS_SECONDS);
  const labels = Object.freeze({ ...(checked.labels ?? {}) });
  return new PrometheusMetrics(checked.registry!, prefix, bounds, labels, checked.maxPipelines);
}

import { type MeterProvider, metrics } from '@opentelemetry/api';
import type { Disposer } from '../core/events.ts';
import { PIPELINE_NAME, Pipeline } from '../core/pipeline.ts';
import type { CallRecorder } from '../core/timing.ts';
import { bool, checkOptions, integer, received, satisfies } from '../core/validate.ts';
import {
  checkBuckets,
  countInto,
  DEFAULT_BUCKETS_SECONDS,
  type GateLike,
  holdAttachment,
  isGateLike,
  isPipelineLike,
  on,
  type PipelineLike,
  type Unit,
  unitsOf,
} from '../prometheus/policies.ts';
import { ATTR, Entry, GateEntry, Instruments, MetricRecorder } from './instruments.ts';
import { addShedEvents, addSpanEvents, SpanRecorder } from './spans.ts';

/** Options of {@link openTelemetry}. */
export interface OpenTelemetryOptions {
  /**
   * Where the metrics go: your SDK's `MeterProvider` (default: the global one,
   * `metrics.getMeterProvider()` of `@opentelemetry/api`, which records nothing
   * until an SDK is registered).
   */
  readonly meterProvider?: MeterProvider;
  /**
   * Add span events to the caller's active span for what the policies did:
   * retries, hedges, breaker refusals, fallbacks and the call's outcome
   * (default true). Spans come from the global context, as the SDK's context
   * manager keeps it.
   */
  readonly traces?: boolean;
  /**
   * Attributes added to every metric point of this sink, such as
   * `{ 'deployment.environment.name': 'prod' }`. Names are 1 to 255 characters and
   * cannot be one Breakwater sets (`breakwater.pipeline`, `breakwater.outcome`,
   * `breakwater.circuit.state`, `breakwater.fallback.cause`, `breakwater.chaos.kind`,
   * `breakwater.rollout.reason`, `breakwater.http.gate`, `breakwater.http.class`,
   * `breakwater.http.outcome`);
   * values are strings.
   */
  readonly attributes?: Readonly<Record<string, string>>;
  /**
   * Bucket boundaries of `breakwater.call.duration`, in seconds, strictly
   * increasing (default: the Prometheus sink's `DEFAULT_BUCKETS_SECONDS`), given
   * to the SDK as advice: a View you configure takes precedence.
   */
  readonly buckets?: readonly number[];
  /**
   * The most pipelines this sink reports at once (default 500; 1 to 100,000).
   * Attaching one more throws: pipelines are per dependency, never per request.
   */
  readonly maxPipelines?: number;
}


const OWNER = 'openTelemetry';
const RESERVED = new Set<string>(Object.values(ATTR));

function isMeterProvider(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { getMeter?: unknown }).getMeter === 'function';
}

function checkAttributes(owner: string, key: string, value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${owner}: option "${key}" must be an object of attribute names to string values; received ${received(value)}`);
  }
  for (const name of Reflect.ownKeys(value)) {
    if (typeof name === 'symbol' || name.length === 0 || name.length > 255) {
      throw new TypeError(`${owner}: option "${key}" has an invalid attribute name ${typeof name === 'symbol' ? name.toString() : JSON.stringify(name)}: 1 to 255 characters`);
    }
    if (RESERVED.has(name)) throw new TypeError(`${owner}: option "${key}" cannot set the attribute "${name}": Breakwater sets it on its own points`);
    const v = (value as Record<string, unknown>)[name];
    if (typeof v !== 'string') throw new TypeError(`${owner}: option "${key}": the value of attribute "${name}" must be a string; received ${received(v)}`);
  }
}

/**
 * An OpenTelemetry sink: metrics through a `MeterProvider`, and span events on
 * the caller's active span. Create it with {@link openTelemetry}, then
 * {@link OpenTelemetrySink.attach} each pipeline and
 * {@link OpenTelemetrySink.attachGate} each `breakwater/http` gate.
 */
export class OpenTelemetrySink {
  /** The constant attributes of this sink's metric points. */
  readonly attributes: Readonly<Record<string, string>>;
  /** True when this sink adds span events. */
  readonly traces: boolean;
  readonly #instruments: Instruments;
  /** Reported pipelines by name. */
  readonly #entries = new Map<string, Entry>();
  /** Reported admission gates by name. */
  readonly #gates = new Map<string, GateEntry>();
  readonly #attachments = new Set<Disposer>();
  readonly #maxPipelines: number;
  #disposed = false;

  /** Use {@link openTelemetry} instead. @internal */
  constructor(provider: MeterProvider, traces: boolean, attributes: Readonly<Record<string, string>>, boundaries: readonly number[], maxPipelines: number) {
    this.traces = traces;
    this.attributes = attributes;
    this.#maxPipelines = maxPipelines;
    this.#instruments = new Instruments(provider.getMeter('breakwater'), boundaries, this.#entries, this.#gates);
  }

  /**
   * Reports `pipelines` (each must have a `name`: it becomes the
   * `breakwater.pipeline` attribute) and every named pipeline nested in them,
   * until the returned disposer is called or the pipeline is disposed. A
   * pipeline attached more than once is reported once, until its last
   * attachment goes.
   */
  attach(...pipelines: PipelineLike[]): Disposer {
    const where = `${OWNER}.attach`;
    if (this.#disposed) throw new TypeError(`${where}: this sink was disposed; create a new one`);
    if (pipelines.length === 0) throw new TypeError(`${where}: expected at least one pipeline; received none`);
    // Check everything before subscribing anything: a refused attach changes nothing.
    const planned = new Map<string, Unit>();
    const plans: { root: PipelineLike; units: Unit[] }[] = [];
    for (const [i, p] of pipelines.entries()) {
      if (!isPipelineLike(p)) throw new TypeError(`${where}: argument ${i + 1} must be a pipeline created with pipeline(); received ${received(p)}`);
      if (p.name === undefined || p.name === '') {
        throw new TypeError(
          `${where}: argument ${i + 1} is a pipeline without a name; name it, as in pipeline({ name: 'auth' }, ...): the name becomes the "breakwater.pipeline" attribute`,
        );
      }
      const units = unitsOf(p);
      for (const unit of units) this.#check(unit, planned);
      plans.push({ root: p, units });
    }
    const detachers: Disposer[] = [];
    try {
      for (const { root, units } of plans) detachers.push(this.#hold(root, units));
    } catch (error) {
      for (const d of detachers) d();
      throw error;
    }
    return () => {
      for (const d of detachers) d();
    };
  }

  /**
   * Reports admission gates made by `httpGate()` from `breakwater/http`: for
   * each gate (its `name` becomes the `breakwater.http.gate` attribute) and
   * class, `breakwater.http.requests` by `breakwater.http.outcome` (`admitted`,
   * `shed`) and `breakwater.http.in_flight`, and the gate's
   * `breakwater.http.limit`, all read from the gate when the SDK collects;
   * with `traces` on, a `breakwater.http.shed` span event for each shed
   * request. Until the returned disposer is called, or the sink is disposed.
   * Gate names are unique per sink; a gate attached more than once is
   * reported once, until its last attachment goes.
   */
  attachGate(...gates: GateLike[]): Disposer {
    const where = `${OWNER}.attachGate`;
    if (this.#disposed) throw new TypeError(`${where}: this sink was disposed; create a new one`);
    if (gates.length === 0) throw new TypeError(`${where}: expected at least one gate; received none`);
    // Check everything before subscribing anything: a refused attach changes nothing.
    const planned = new Map<string, GateLike>();
    for (const [i, gate] of gates.entries()) {
      if (!isGateLike(gate)) throw new TypeError(`${where}: argument ${i + 1} must be a gate created with httpGate(); received ${received(gate)}`);
      if (!PIPELINE_NAME.test(gate.name)) {
        throw new TypeError(`${where}: gate name ${received(gate.name)} is not valid: 1 to 100 letters, digits or _ . : / - starting with a letter or digit`);
      }
      const other = this.#gates.get(gate.name)?.gate ?? planned.get(gate.name);
      if (other !== undefined && other !== gate) {
        throw new TypeError(`${where}: another gate named "${gate.name}" is already reported by this sink; gate names must be unique per sink`);
      }
      planned.set(gate.name, gate);
    }
    const held: GateEntry[] = [];
    try {
      for (const gate of gates) held.push(this.#acquireGate(gate));
    } catch (error) {
      for (const entry of held) this.#releaseGate(entry);
      throw error;
    }
    let done = false;
    const detach: Disposer = () => {
      if (done) return;
      done = true;
      this.#attachments.delete(detach);
      for (const entry of held) this.#releaseGate(entry);
    };
    this.#attachments.add(detach);
    return detach;
  }

  /** Detaches every pipeline and gate and stops reporting: the SDK no longer calls this sink back. */
  dispose(): void {
    if (this.#disposed) return;
    for (const detach of [...this.#attachments]) detach();
    this.#disposed = true;
    this.#instruments.dispose();
  }

  #check(unit: Unit, planned: Map<string, Unit>): void {
    const where = `${OWNER}.attach`;
    const name = unit.pipeline.name;
    if (typeof name !== 'string' || !PIPELINE_NAME.test(name)) {
      throw new TypeError(`${where}: pipeline name ${received(name)} is not valid: 1 to 100 letters, digits or _ . : / - starting with a letter or digit`);
    }
    if ((unit.pipeline as { disposed?: unknown }).disposed === true) throw new TypeError(`${where}: pipeline "${name}" was disposed; attach a live pipeline`);
    if (unit.breakers.length > 1 || unit.bulkheads.length > 1) {
      const what = unit.breakers.length > 1 ? `${unit.breakers.length} circuit breakers` : `${unit.bulkheads.length} bulkheads`;
      throw new TypeError(
        `${where}: pipeline "${name}" has ${what}; its state gauges can describe only one. ` +
          'Put each extra one in its own named pipeline nested inside, as in pipeline({ name: "auth-host" }, circuitBreaker(...))',
      );
    }
    const other = this.#entries.get(name)?.unit.pipeline ?? planned.get(name)?.pipeline;
    if (other !== undefined && other !== unit.pipeline) {
      throw new TypeError(`${where}: another pipeline named "${name}" is already reported by this sink; dispose it (pipeline.dispose()) or give this one another name`);
    }
    if (!this.#entries.has(name) && !planned.has(name)) {
      const count = this.#entries.size + [...planned.keys()].filter((k) => !this.#entries.has(k)).length;
      if (count >= this.#maxPipelines) {
        throw new RangeError(
          `${where}: pipeline "${name}" would be pipeline number ${count + 1} of this sink, over maxPipelines (${this.#maxPipelines}); ` +
            'name pipelines per dependency, never per request or user, or raise maxPipelines',
        );
      }
    }
    planned.set(name, unit);
  }

  /** Holds the entries of `root`'s units until the returned disposer runs or `root` is disposed. */
  #hold(root: PipelineLike, units: readonly Unit[]): Disposer {
    const held: Entry[] = [];
    try {
      for (const unit of units) held.push(this.#acquire(unit));
    } catch (error) {
      for (const entry of held) this.#release(entry);
      throw error;
    }
    return holdAttachment(root, held, (entry) => this.#release(entry), this.#attachments);
  }

  #acquire(unit: Unit): Entry {
    const name = unit.pipeline.name!;
    let entry = this.#entries.get(name);
    if (entry === undefined) {
      const created = (entry = new Entry(unit, this.attributes));
      const d = entry.disposers;
      const recorders: CallRecorder[] = [new MetricRecorder(entry, this.#instruments.histogram)];
      if (this.traces) recorders.push(new SpanRecorder(name));
      try {
        for (const recorder of recorders) {
          // A pipeline of this copy takes the recorder directly (no event object per call); any other reports through onSettled.
          if (unit.pipeline instanceof Pipeline) d.push(unit.pipeline._record(recorder));
          else on(unit.pipeline.onSettled, (event) => recorder.record(event.outcome, event.durationMs), d);
        }
        countInto(unit, entry.data, d);
        if (this.traces) addSpanEvents(unit, d);
        on(unit.pipeline.onDispose, () => this.#remove(created), d);
      } catch (error) {
        // A policy refused a listener (a disposed fromOpossum adapter, say): undo.
        for (const dispose of d) dispose();
        throw error;
      }
      this.#entries.set(name, entry);
    }
    entry.holds++;
    return entry;
  }

  #acquireGate(gate: GateLike): GateEntry {
    let entry = this.#gates.get(gate.name);
    if (entry === undefined) {
      entry = new GateEntry(gate, this.attributes);
      if (this.traces) addShedEvents(gate, entry.disposers);
      this.#gates.set(gate.name, entry);
    }
    entry.holds++;
    return entry;
  }

  #releaseGate(entry: GateEntry): void {
    if (--entry.holds > 0) return;
    for (const d of entry.disposers) d();
    this.#gates.delete(entry.gate.name);
  }

  #release(entry: Entry): void {
    if (!entry.removed && --entry.holds <= 0) this.#remove(entry);
  }

  #remove(entry: Entry): void {
    if (entry.removed) return;
    entry.removed = true;
    for (const d of entry.disposers) d();
    this.#entries.delete(entry.unit.pipeline.name!);
  }
}

/**
 * Creates an OpenTelemetry sink. Attach each pipeline with one line; its
 * `name` becomes the `breakwater.pipeline` attribute:
 *
 * ```ts
 * const telemetry = openTelemetry({ meterProvider });
 * telemetry.attach(pipeline({ name: 'auth' }, retry(), timeout({ ms: 500 })));
 * ```
 *
 * Counters and gauges are read when the SDK collects; each call adds to plain
 * numbers and records its duration in one histogram.
 */
export function openTelemetry(options?: OpenTelemetryOptions): OpenTelemetrySink {
  const checked = checkOptions<OpenTelemetryOptions>(OWNER, options, {
    meterProvider: satisfies('an OpenTelemetry MeterProvider (an object with a getMeter function)', isMeterProvider),
    traces: bool,
    attributes: checkAttributes,
    buckets: checkBuckets('breakwater.call.duration'),
    maxPipelines: integer(1, 100_000),
  });
  return new OpenTelemetrySink(
    checked.meterProvider ?? metrics.getMeterProvider(),
    checked.traces ?? true,
    Object.freeze({ ...(checked.attributes ?? {}) }),
    checked.buckets ?? DEFAULT_BUCKETS_SECONDS,
    checked.maxPipelines ?? 500,
  );
}

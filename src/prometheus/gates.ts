/**
 * The metric families of `breakwater/http` admission gates: requests admitted
 * and shed, and requests in flight, per gate and class, and each gate's limit.
 * Requests never reach prom-client: a gate counts in plain numbers, and the
 * families read those counts when the registry is scraped.
 */
import { Counter, Gauge } from 'prom-client';
import type { Disposer } from '../core/events.ts';
import type { GateLike } from './policies.ts';

export { type GateLike, isGateLike } from './policies.ts';

type Labels = Readonly<Record<string, string>>;

/** One reported gate: its label sets, and the counts prom-client has been given. @internal */
export class GateEntry {
  readonly gate: GateLike;
  readonly owner: object;
  readonly gateLabels: Labels;
  /** Per class: `{ gate, class }`, then with `outcome` admitted and shed. */
  readonly classLabels: readonly Labels[];
  readonly admittedLabels: readonly Labels[];
  readonly shedLabels: readonly Labels[];
  /** Per class: admitted, shed (what was last given to prom-client). */
  readonly reported: Float64Array;

  constructor(gate: GateLike, owner: object, constLabels: Labels) {
    this.gate = gate;
    this.owner = owner;
    const labels = (extra: Record<string, string>): Labels => Object.freeze({ gate: gate.name, ...extra, ...constLabels });
    this.gateLabels = labels({});
    this.classLabels = gate.classes.map((c) => labels({ class: c.name }));
    this.admittedLabels = gate.classes.map((c) => labels({ class: c.name, outcome: 'admitted' }));
    this.shedLabels = gate.classes.map((c) => labels({ class: c.name, outcome: 'shed' }));
    this.reported = new Float64Array(2 * gate.classes.length);
  }

  /** Marks what the gate counted so far as reported (on attach and on a registry reset). */
  settle(): void {
    this.gate.classes.forEach((c, k) => {
      this.reported[2 * k] = c.admitted;
      this.reported[2 * k + 1] = c.shed;
    });
  }
}

/** `http_requests_total`: a scrape adds what each gate counted since the last one. */
class GateRequests extends Counter<string> {
  /** The registered name (prom-client's OpenMetrics output renames counters in place). */
  readonly fullName: string;
  readonly families: GateFamilies;

  constructor(families: GateFamilies, name: string, labelNames: string[]) {
    super({
      name,
      help: 'Requests an HTTP admission gate admitted or shed (answered 503 at once), by class.',
      labelNames,
      registers: [],
      collect(this: Counter<string>) {
        for (const entry of families.entries.values()) {
          entry.gate.classes.forEach((c, k) => {
            const admitted = c.admitted - entry.reported[2 * k]!;
            const shed = c.shed - entry.reported[2 * k + 1]!;
            if (admitted > 0) this.inc(entry.admittedLabels[k]!, admitted);
            if (shed > 0) this.inc(entry.shedLabels[k]!, shed);
            entry.reported[2 * k] = c.admitted;
            entry.reported[2 * k + 1] = c.shed;
          });
        }
      },
    });
    this.fullName = name;
    this.families = families;
  }

  /** `registry.resetMetrics()`: what was counted so far counts as reported; every series starts again at 0. */
  override reset(): void {
    super.reset();
    if (this.families === undefined) return; // prom-client's constructor calls reset() first
    for (const entry of this.families.entries.values()) {
      entry.settle();
      this.families.start(entry);
    }
  }
}

/** A gauge read from every gate at scrape time. */
class GateGauge extends Gauge<string> {
  /** The registered name. */
  readonly fullName: string;
  readonly families: GateFamilies;

  constructor(families: GateFamilies, name: string, help: string, labelNames: string[], read: (entry: GateEntry, set: (labels: Labels, value: number) => void) => void) {
    super({
      name,
      help,
      labelNames,
      registers: [],
      collect(this: Gauge<string>) {
        for (const entry of families.entries.values()) read(entry, (labels, value) => this.set(labels, value));
      },
    });
    this.fullName = name;
    this.families = families;
  }
}

/** The metric names under a prefix. @internal */
export const GATE_FAMILY_SUFFIXES = ['http_requests_total', 'http_in_flight', 'http_limit'] as const;

/**
 * The gate families under one prefix on one registry, shared by every sink
 * of this copy of Breakwater over that registry and prefix.
 * @internal
 */
export class GateFamilies {
  readonly constLabelNames: readonly string[];
  /** Reported gates by name and constant labels. */
  readonly entries = new Map<string, GateEntry>();
  readonly requests: GateRequests;
  readonly inFlight: GateGauge;
  readonly limit: GateGauge;

  constructor(prefix: string, constLabelNames: readonly string[]) {
    this.constLabelNames = constLabelNames;
    this.requests = new GateRequests(this, `${prefix}http_requests_total`, ['gate', 'class', 'outcome', ...constLabelNames]);
    this.inFlight = new GateGauge(
      this,
      `${prefix}http_in_flight`,
      'Requests an HTTP admission gate admitted that are still being answered, by class, read when scraped.',
      ['gate', 'class', ...constLabelNames],
      (entry, set) => entry.gate.classes.forEach((c, k) => set(entry.classLabels[k]!, c.inFlight)),
    );
    this.limit = new GateGauge(
      this,
      `${prefix}http_limit`,
      "The concurrency limit of an HTTP admission gate (fixed, or an adaptive limit's current value), read when scraped.",
      ['gate', ...constLabelNames],
      (entry, set) => set(entry.gateLabels, entry.gate.limit),
    );
  }

  /** The three families, in {@link GATE_FAMILY_SUFFIXES} order. */
  get all(): readonly (GateRequests | GateGauge)[] {
    return [this.requests, this.inFlight, this.limit];
  }

  /** Makes `entry`'s counter series appear at 0. */
  start(entry: GateEntry): void {
    for (const labels of [...entry.admittedLabels, ...entry.shedLabels]) this.requests.inc(labels, 0);
  }

  /** Reports `entry` until the returned disposer runs. */
  add(key: string, entry: GateEntry): Disposer {
    entry.settle();
    this.entries.set(key, entry);
    this.start(entry);
    let done = false;
    return () => {
      if (done || this.entries.get(key) !== entry) return;
      done = true;
      this.entries.delete(key);
      for (const labels of [...entry.admittedLabels, ...entry.shedLabels]) this.requests.remove(labels);
      for (const labels of entry.classLabels) this.inFlight.remove(labels);
      this.limit.remove(entry.gateLabels);
    };
  }
}

/** The gate families of `metric` when it is one of this copy of Breakwater's. @internal */
export function gateFamiliesOf(metric: unknown): GateFamilies | undefined {
  return metric instanceof GateRequests || metric instanceof GateGauge ? metric.families : undefined;
}

/**
 * Helpers for the breakwater/opentelemetry tests: the real OpenTelemetry SDK
 * (a MeterProvider whose reader exports to an InMemoryMetricExporter), and the
 * collected points read back by instrument name and attributes.
 */
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { expect } from 'vitest';
import { INSTRUMENTS } from '../src/opentelemetry/instruments.ts';
import type { Sample } from './prometheus-helpers.ts';

/** One collected point: a sum or gauge value, or a histogram's count, sum and bucket counts. */
export interface Point {
  readonly name: string;
  readonly unit: string;
  readonly type: 'sum' | 'gauge' | 'histogram';
  readonly monotonic: boolean | undefined;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly value: number;
  readonly histogram?: { readonly count: number; readonly sum: number; readonly boundaries: number[]; readonly counts: number[] };
}

/** A MeterProvider of the SDK that exports on demand, cumulatively, to memory. */
export function sdkMeter(): { meterProvider: MeterProvider; collect(): Promise<Point[]>; shutdown(): Promise<void> } {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // The interval is never reached in a test: forceFlush() collects and exports.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  return {
    meterProvider,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      const exported = exporter.getMetrics();
      return exported.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.flatMap(points)));
    },
    shutdown: () => meterProvider.shutdown(),
  };
}

function points(metric: MetricData): Point[] {
  const { name, unit } = metric.descriptor;
  return metric.dataPoints.map((p): Point => {
    if (metric.dataPointType === DataPointType.HISTOGRAM) {
      const h = p.value as { count: number; sum?: number; buckets: { boundaries: number[]; counts: number[] } };
      return {
        name,
        unit,
        type: 'histogram',
        monotonic: undefined,
        attributes: p.attributes,
        value: h.count,
        histogram: { count: h.count, sum: h.sum ?? NaN, boundaries: h.buckets.boundaries, counts: h.buckets.counts },
      };
    }
    const type = metric.dataPointType === DataPointType.SUM ? 'sum' : 'gauge';
    const monotonic = metric.dataPointType === DataPointType.SUM ? metric.isMonotonic : undefined;
    return { name, unit, type, monotonic, attributes: p.attributes, value: p.value as number };
  });
}

/** The points named `name` whose attributes include `attributes`. */
export function select(points: readonly Point[], name: string, attributes: Record<string, unknown> = {}): Point[] {
  return points.filter((p) => p.name === name && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
}

/** The value of the one point named `name` with `attributes`; throws if there is not exactly one. */
export function value(points: readonly Point[], name: string, attributes: Record<string, unknown> = {}): number {
  const found = select(points, name, attributes);
  if (found.length !== 1) throw new Error(`expected one point ${name}${JSON.stringify(attributes)}, found ${found.length}`);
  return found[0]!.value;
}

/** The OpenTelemetry name and attributes that carry a Prometheus sample's fact. */
const LABEL_TO_ATTRIBUTE: Record<string, string> = {
  pipeline: 'breakwater.pipeline',
  outcome: 'breakwater.outcome',
  state: 'breakwater.circuit.state',
  to: 'breakwater.circuit.state',
  cause: 'breakwater.fallback.cause',
  kind: 'breakwater.chaos.kind',
  reason: 'breakwater.rollout.reason',
  gate: 'breakwater.http.gate',
  class: 'breakwater.http.class',
};
const BY_PROMETHEUS = new Map<string, string>(INSTRUMENTS.map((i) => [`breakwater_${i.prometheus}`, i.name]));

function attributesOf(sample: Sample): Record<string, string> {
  // A gate's outcome (admitted, shed) is not a call's: its own attribute.
  const gate = sample.name.startsWith('breakwater_http_');
  return Object.fromEntries(
    Object.entries(sample.labels)
      .filter(([k]) => k !== 'le')
      .map(([k, v]) => [gate && k === 'outcome' ? 'breakwater.http.outcome' : (LABEL_TO_ATTRIBUTE[k] ?? k), v]),
  );
}

/** Checks that every Prometheus sample has its OpenTelemetry point with the same value, and the other way round. */
export function expectSameFacts(samples: readonly Sample[], points: readonly Point[]): void {
  const matched = new Set<Point>();
  for (const sample of samples) {
    const histogram = /^(breakwater_call_duration_seconds)_(bucket|sum|count)$/.exec(sample.name);
    const name = BY_PROMETHEUS.get(histogram ? histogram[1]! : sample.name);
    expect(name, sample.name).toBeDefined();
    const found = select(points, name!, attributesOf(sample)).filter((p) => Object.keys(p.attributes).length === Object.keys(attributesOf(sample)).length);
    if (histogram) {
      // Prometheus starts the series of every outcome at 0; the SDK has a point once something was recorded.
      if (found.length === 0) {
        expect(sample.value, `${sample.name} ${JSON.stringify(sample.labels)}`).toBe(0);
        continue;
      }
      const h = found[0]!.histogram!;
      matched.add(found[0]!);
      if (histogram[2] === 'count') expect(h.count).toBe(sample.value);
      else if (histogram[2] === 'sum') expect(h.sum).toBeCloseTo(sample.value, 9);
      else {
        const le = sample.labels.le === '+Inf' ? Infinity : Number(sample.labels.le);
        const cumulative = h.counts.filter((_, i) => (i < h.boundaries.length ? h.boundaries[i]! : Infinity) <= le).reduce((a, b) => a + b, 0);
        expect(cumulative, `${sample.name} le=${sample.labels.le}`).toBe(sample.value);
      }
      continue;
    }
    expect(found.length, `${name} ${JSON.stringify(attributesOf(sample))}`).toBe(1);
    expect(found[0]!.value, `${name} ${JSON.stringify(attributesOf(sample))}`).toBe(sample.value);
    matched.add(found[0]!);
  }
  expect(points.filter((p) => !matched.has(p)).map((p) => `${p.name} ${JSON.stringify(p.attributes)}`)).toEqual([]);
}


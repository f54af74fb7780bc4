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

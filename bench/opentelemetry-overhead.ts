/**
 * What breakwater/opentelemetry costs per call, side by side in one run
 * (docs/reference/opentelemetry.md quotes these figures): the full pipeline of
 * five policies unobserved, reported through the Prometheus sink, and through
 * the OpenTelemetry sink into the real SDK, outside any span and inside a
 * recording span; and the SDK's own `histogram.record(value, attributes)`,
 * which the OpenTelemetry sink makes once per call.
 *
 *   npx node bench/opentelemetry-overhead.ts
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { bench, do_not_optimize, run, summary } from 'mitata';
import { Registry } from 'prom-client';
import { pipeline } from '../src/index.ts';
import { openTelemetry } from '../src/opentelemetry/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { fivePolicies } from './subjects/breakwater.ts';

function meterProvider(): MeterProvider {
  // Cumulative, exporting hourly: nothing is exported during the run.
  return new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(0), exportIntervalMillis: 3_600_000 })] });
}

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider()); // spans record, and go nowhere

const off = pipeline({ name: 'off' }, ...fivePolicies());
const prometheus = pipeline({ name: 'prometheus' }, ...fivePolicies());
prometheusMetrics({ registry: new Registry() }).attach(prometheus);
const otel = pipeline({ name: 'otel' }, ...fivePolicies());
openTelemetry({ meterProvider: meterProvider() }).attach(otel);
const histogram = meterProvider().getMeter('direct').createHistogram('direct.duration', { unit: 's' });
const attributes = Object.freeze({ 'breakwater.pipeline': 'direct', 'breakwater.outcome': 'success' });
const span = trace.getTracer('bench').startSpan('request');
const inSpan = trace.setSpan(context.active(), span);
const work = (): number => 1;

summary(() => {
  bench('full pipeline, unobserved', () => off.execute(work));
  bench('full pipeline, Prometheus sink', () => prometheus.execute(work));
  bench('full pipeline, OpenTelemetry sink, no active span', () => otel.execute(work));
  bench('full pipeline, OpenTelemetry sink, in a recording span (one span event per call)', () => context.with(inSpan, () => otel.execute(work)));
  bench('full pipeline, unobserved, in a span (the cost of context.with alone)', () => context.with(inSpan, () => off.execute(work)));
  bench("the SDK's histogram.record(seconds, attributes) alone", () => histogram.record(0.001, attributes));
});
await run({ throw: true });
do_not_optimize(span);

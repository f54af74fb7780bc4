/**
 * Breakwater configured for the benchmarks: each policy alone, and the full
 * pipeline in the recommended order (fallback → bulkhead → retry → breaker →
 * timeout), with metrics off and on.
 */
import { InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import * as bw from '../../src/index.ts';
import { openTelemetry } from '../../src/opentelemetry/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { TIMEOUT_MS } from './peers.ts';
import type { Subject } from './subject.ts';
import { work } from './work.ts';

type AnyPolicy = bw.Policy<unknown>;

/** The breaker type the benchmarks use. */
export type BreakerLike = bw.CircuitBreakerPolicy;

/** A breaker with default options. */
export function defaultBreaker(): BreakerLike {
  return bw.circuitBreaker();
}

/** A breaker that never opens however many calls fail (it never reaches `minimumCalls`). */
export function neverOpeningBreaker(): BreakerLike {
  return bw.circuitBreaker({ minimumCalls: Number.MAX_SAFE_INTEGER });
}

/** A breaker that opens on its first failure and stays open for an hour. */
export function trippingBreaker(): BreakerLike {
  return bw.circuitBreaker({ minimumCalls: 1, failureRateThreshold: 0.5, halfOpenAfterMs: 3_600_000 });
}

/** The five policies of the recommended pipeline, fresh. */
export function fivePolicies() {
  return [
    bw.fallback({ value: 0 }),
    bw.bulkhead({ maxConcurrent: 1_000, maxQueue: 1_000 }),
    bw.retry({ maxAttempts: 3 }),
    defaultBreaker(),
    bw.timeout({ ms: TIMEOUT_MS }),
  ] as const;
}

/** The full pipeline, optionally reported to Prometheus through a fresh registry. */
export function fullPipeline(name = 'bench', metrics = false): bw.Pipeline<number> {
  const p = bw.pipeline({ name }, ...fivePolicies());
  if (metrics) prometheusMetrics({ registry: new Registry() }).attach(p);
  return p;
}

function subject(id: string, label: string, policy: AnyPolicy): Subject {
  return { id, label, library: 'breakwater', call: () => policy.execute(work) };
}

/** An adaptive limit as roomy as the bulkhead subject (it starts at its maximum, 1,000). */
function adaptive(algorithm: bw.LimitAlgorithm): bw.AdaptiveLimitPolicy {
  return bw.adaptiveLimit({ algorithm, maxLimit: 1_000, initialLimit: 1_000, maxQueue: 1_000 });
}

/** Each Breakwater policy alone, on the success path. */
export function singlePolicySubjects(): Subject[] {
  return [
    subject('bw.timeout', 'timeout', bw.timeout({ ms: TIMEOUT_MS })),
    subject('bw.fallback', 'fallback', bw.fallback({ value: 0 })),
    subject('bw.bulkhead', 'bulkhead', bw.bulkhead({ maxConcurrent: 1_000, maxQueue: 1_000 })),
    subject('bw.retry', 'retry', bw.retry({ maxAttempts: 3 })),
    subject('bw.breaker', 'circuitBreaker', defaultBreaker()),
    subject('bw.throttle', 'throttle', bw.throttle()),
    subject('bw.adaptive.aimd', 'adaptiveLimit, aimd', adaptive(bw.aimd())),
    subject('bw.adaptive.gradient', 'adaptiveLimit, gradient', adaptive(bw.gradient())),
    subject('bw.hedge', 'hedge (delay 1 s: none starts)', bw.hedge({ delayMs: 1_000 })),
  ];
}

/**
 * The pipeline docs/guides/slow-not-down.md recommends for a dependency that
 * degrades rather than fails (fallback → throttle → adaptive limit → breaker →
 * hedge → timeout), as roomy as the other subjects so nothing queues or sheds.
 */
export function degradingPipeline(name = 'bench-degrading', metrics = false): bw.Pipeline<number> {
  const p = bw.pipeline(
    { name },
    bw.fallback({ value: 0 }),
    bw.throttle(),
    bw.adaptiveLimit({ algorithm: bw.gradient(), minLimit: 4, maxLimit: 1_000, initialLimit: 1_000, maxQueue: 1_000 }),
    bw.circuitBreaker({ slowCallMs: 2_000, slowCallRateThreshold: 0.5 }),
    bw.hedge({ delayMs: { percentile: 0.95, minMs: 20, maxMs: 500 }, maxExtraLoad: 0.05 }),
    bw.timeout({ ms: TIMEOUT_MS }),
  );
  if (metrics) prometheusMetrics({ registry: new Registry() }).attach(p);
  return p;
}

/** Extra rows: not targets, but what people ask next. */
export function extraSubjects(): Subject[] {
  const budget = bw.retryBudget();
  const p = fullPipeline('bench-signal');
  return [
    subject('bw.retry+budget', 'retry with a retry budget', bw.retry({ maxAttempts: 3, budget })),
    subject('bw.pipeline.degrading', 'slow-not-down pipeline (6 policies, hedge, gradient), metrics off', degradingPipeline()),
    subject('bw.pipeline.degrading+metrics', 'slow-not-down pipeline, metrics on', degradingPipeline('bench-degrading-on', true)),
    {
      id: 'bw.pipeline.signal',
      label: 'full pipeline, work reads its signal',
      library: 'breakwater',
      call: () => p.execute(({ signal }) => (signal.aborted ? -1 : work())),
    },
  ];
}

/**
 * The full pipeline reported through breakwater/opentelemetry into the real SDK
 * (a MeterProvider whose reader would export hourly), calls made outside any span.
 */
function openTelemetryPipeline(): bw.Pipeline<number> {
  const exporter = new InMemoryMetricExporter(0); // AggregationTemporality.CUMULATIVE
  const meterProvider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })] });
  const p = bw.pipeline({ name: 'bench-otel' }, ...fivePolicies());
  openTelemetry({ meterProvider }).attach(p);
  return p;
}

/** The full pipeline with metrics off and on (Prometheus, and OpenTelemetry). */
export function pipelineSubjects(): Subject[] {
  return [
    subject('bw.pipeline', 'full pipeline, metrics off', fullPipeline('bench-off')),
    subject('bw.pipeline+metrics', 'full pipeline, metrics on', fullPipeline('bench-on', true)),
    subject('bw.pipeline+otel', 'full pipeline, OpenTelemetry sink (SDK)', openTelemetryPipeline()),
  ];
}

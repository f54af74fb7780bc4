/**
 * `breakwater/prometheus`: Prometheus metrics for Breakwater pipelines, through
 * the service's own prom-client registry (prom-client 15, an optional peer
 * dependency, used through its public API only). See docs/metrics.md for every
 * metric, its labels and useful PromQL.
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { pipeline, timeout } from 'breakwater';
 * import { prometheusMetrics } from 'breakwater/prometheus';
 *
 * const registry = new Registry();
 * const auth = pipeline({ name: 'auth' }, timeout({ ms: 500 }));
 * prometheusMetrics({ registry }).attach(auth);
 * ```
 * @packageDocumentation
 */
export {
  DEFAULT_BUCKETS_SECONDS,
  type MetricsRegistry,
  type PrometheusMetrics,
  prometheusMetrics,
  type PrometheusMetricsOptions,
} from './sink.ts';
export type { PipelineLike } from './policies.ts';
export type { GateLike } from './gates.ts';

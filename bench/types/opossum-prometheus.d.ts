// Minimal types for opossum-prometheus (it ships none), as the benchmarks use it.
declare module 'opossum-prometheus' {
  import type CircuitBreaker from 'opossum';
  interface PrometheusMetricsOptions {
    readonly circuits?: CircuitBreaker | CircuitBreaker[];
    readonly registry?: unknown;
    readonly metricPrefix?: string;
    readonly exposePerformanceMetrics?: boolean;
  }
  export default class PrometheusMetrics {
    constructor(options?: PrometheusMetricsOptions);
    add(circuits: CircuitBreaker | CircuitBreaker[]): void;
    clear(): void;
    metrics(): Promise<string>;
  }
}

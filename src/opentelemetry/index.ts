/**
 * `breakwater/opentelemetry`: Breakwater's metrics through an OpenTelemetry
 * `MeterProvider`, and span events on the caller's active span for what the
 * policies did (retries, hedges, breaker refusals, fallbacks), through
 * `@opentelemetry/api` (an optional peer dependency). The same facts as
 * `breakwater/prometheus`, named in OpenTelemetry's style; see
 * docs/reference/opentelemetry.md for every instrument and event.
 *
 * ```ts
 * import { MeterProvider } from '@opentelemetry/sdk-metrics';
 * import { pipeline, timeout } from 'breakwater';
 * import { openTelemetry } from 'breakwater/opentelemetry';
 *
 * const meterProvider = new MeterProvider();
 * const auth = pipeline({ name: 'auth' }, timeout({ ms: 500 }));
 * openTelemetry({ meterProvider }).attach(auth);
 * ```
 * @packageDocumentation
 */
export { type OpenTelemetrySink, openTelemetry, type OpenTelemetryOptions } from './sink.ts';
export { DEFAULT_BUCKETS_SECONDS, type GateLike, type PipelineLike } from '../prometheus/policies.ts';

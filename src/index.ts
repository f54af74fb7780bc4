/**
 * Breakwater: resilience policies for Node.js services.
 * @packageDocumentation
 */
export { type Clock, type RandomSource, type TimerHandle, systemClock } from './clock.ts';
export {
  BreakwaterError,
  type BreakwaterErrorCode,
  BrokenCircuitError,
  BulkheadRejectedError,
  IsolatedCircuitError,
  isBreakwaterError,
  isBrokenCircuitError,
  isBulkheadRejectedError,
  isIsolatedCircuitError,
  isRejection,
  isTimeoutError,
  TimeoutError,
} from './errors.ts';
export type { Disposer, Event, Listener } from './events.ts';
export type { ExecuteOptions, ExtraResult, Outcome, Policy, Work, WorkContext } from './policy.ts';
export { pipeline, Pipeline, type PipelineOptions, type SettledEvent } from './pipeline.ts';
export {
  timeout,
  TimeoutPolicy,
  type LateRejectionEvent,
  type TimeoutEvent,
  type TimeoutOptions,
} from './timeout.ts';
export {
  fallback,
  FallbackPolicy,
  type FallbackContext,
  type FallbackEvent,
  type FallbackOptions,
} from './fallback.ts';

/**
 * Breakwater: resilience policies for Node.js services.
 * @packageDocumentation
 */
export { type Clock, type RandomSource, type TimerHandle, systemClock } from './core/clock.ts';
export {
  BreakwaterError,
  type BreakwaterErrorOptions,
  type BreakwaterErrorCode,
  BrokenCircuitError,
  BulkheadRejectedError,
  IsolatedCircuitError,
  isBreakwaterError,
  isBrokenCircuitError,
  isBulkheadRejectedError,
  isIsolatedCircuitError,
  isRejection,
  type Rejection,
  isThrottledError,
  isRateLimitedError,
  RateLimitedError,
  isTimeoutError,
  ThrottledError,
  TimeoutError,
} from './core/errors.ts';
export type { Disposer, Event, Listener } from './core/events.ts';
export type { ExecuteOptions, ExtraResult, Policy, Work, WorkContext } from './core/protocol.ts';
export { pipeline, type Pipeline, type PipelineOptions } from './core/pipeline.ts';
export type { Outcome, SettledEvent } from './core/timing.ts';
// The layer protocol, for writing a custom policy (see docs/reference/pipeline.md).
export { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
export {
  timeout,
  type TimeoutPolicy,
  type LateRejectionEvent,
  type TimeoutEvent,
  type TimeoutOptions,
} from './timeout.ts';
export {
  fallback,
  type FallbackPolicy,
  type FallbackContext,
  type FallbackEvent,
  type FallbackOptions,
} from './fallback.ts';
export {
  type BackoffSchedule,
  constant,
  type ConstantOptions,
  EXPONENTIAL_DEFAULTS,
  exponential,
  type ExponentialOptions,
  type Jitter,
  type Schedule,
} from './backoff.ts';
export { circuitBreaker, type CircuitBreakerPolicy } from './circuit-breaker/policy.ts';
export {
  CIRCUIT_BREAKER_DEFAULTS,
  type CircuitBreakerOptions,
  type CircuitBreakerSnapshot,
  type CircuitFailureEvent,
  type CircuitRejectEvent,
  type CircuitState,
  type CircuitSuccessEvent,
  type CountWindowOptions,
  type IsolationHandle,
  type StateChangeEvent,
  type StateChangeReason,
  type TimeWindowOptions,
} from './circuit-breaker/options.ts';
export {
  bulkhead,
  type BulkheadPolicy,
  type BulkheadOptions,
  type BulkheadRejectEvent,
  type BulkheadRejectReason,
} from './bulkhead.ts';
export {
  adaptiveLimit,
  type AdaptiveLimitPolicy,
  ADAPTIVE_LIMIT_DEFAULTS,
  type AdaptiveLimitOptions,
  type LimitChangeEvent,
} from './adaptive-limit/policy.ts';
export {
  aimd,
  AIMD_DEFAULTS,
  type AimdLimit,
  type AimdOptions,
  gradient,
  GRADIENT_DEFAULTS,
  type GradientLimit,
  type GradientOptions,
  type LimitAlgorithm,
} from './adaptive-limit/algorithms.ts';
export {
  retry,
  RETRY_DEFAULTS,
  type RetryPolicy,
  type GiveUpEvent,
  type GiveUpReason,
  type RetryEvent,
  type RetryOptions,
} from './retry.ts';
export {
  retryBudget,
  RETRY_BUDGET_DEFAULTS,
  type RetryBudget,
  type RetryBudgetExhaustedEvent,
  type RetryBudgetLike,
  type RetryBudgetOptions,
} from './retry-budget.ts';
export { keyed, type KeyedPipeline, type KeyedEvent, type KeyedOptions } from './keyed.ts';
export { hedge, type HedgePolicy, type HedgeDelay, type HedgeEvent, type HedgeOptions, type HedgeWonEvent } from './hedge.ts';
export {
  throttle,
  THROTTLE_DEFAULTS,
  type ThrottlePolicy,
  type ThrottleOptions,
  type ThrottleRejectEvent,
  type ThrottleWindowOptions,
} from './throttle.ts';
export {
  rateLimiter,
  type RateLimiterPolicy,
  type RateLimiterOptions,
  type RateLimitAdmitEvent,
  type RateLimitRejectEvent,
} from './rate-limiter.ts';
export {
  rollout,
  ROLLOUT_DEFAULTS,
  type RolloutPolicy,
  type RolloutOptions,
  type RolloutPath,
  type RollbackReason,
  type RolloutRollback,
  type RolloutShareEvent,
  type RolloutRefusedEvent,
  type RolloutFailedEvent,
} from './rollout.ts';

/**
 * `breakwater/redis`: limits and hints shared by every replica of a service through
 * the Redis it already runs: a fleet-wide rate limiter, a fleet-wide retry (and
 * hedging) budget, and breaker hints with a quorum. Nothing here is on a call's path
 * to Redis, and Redis failing is never a new way for a call to fail: the policies
 * then decide on local state. See docs/reference/redis.md.
 * @packageDocumentation
 */
export type { IoRedisLike, NodeRedisLike, RedisConnection } from './client.ts';
export { type FleetDegradedEvent, REDIS_FLEET_DEFAULTS, redisFleet, RedisFleet, type RedisFleetOptions } from './fleet.ts';
export { fleetRateLimiter, FleetRateLimiterPolicy, type FleetRateLimiterOptions } from './rate-limiter.ts';
export { fleetRetryBudget, FleetRetryBudget, type FleetRetryBudgetOptions } from './retry-budget.ts';
export { fleetBreakerHints, FleetBreakerHints, type FleetBreakerHintsOptions } from './breaker-hints.ts';

/**
 * Breaker hints across the fleet: when a replica's own breaker opens, it says so in
 * Redis; when at least `quorum` replicas say so, the others open theirs. One replica
 * with a broken network cannot take the dependency away from the others, and probing
 * in half-open stays each replica's own.
 */
import type { CircuitBreakerPolicy } from '../circuit-breaker/policy.ts';
import type { Disposer } from '../core/events.ts';
import { checkOptions, duration, integer, satisfies } from '../core/validate.ts';
import { aliveMs, fleetCheck, name, type RedisFleet } from './fleet.ts';
import { HINTS } from './scripts.ts';

/** Options of {@link fleetBreakerHints}. */
export interface FleetBreakerHintsOptions {
  /** The dependency's name in the fleet: replicas using this name share hints. Letters, digits and `_.:-`. */
  readonly name: string;
  /** This replica's breaker for that dependency (from `circuitBreaker()`). */
  readonly breaker: CircuitBreakerPolicy;
  /**
   * How many replicas must see the dependency fail (their own breakers open) before
   * the others open theirs (default 2). 1 to 10,000. With fewer replicas alive than
   * this, hints never open a breaker.
   */
  readonly quorum?: number;
  /**
   * How long a replica's hint lasts unless it renews it, in ms (default: three sync
   * intervals, at least 1,000): the hint of a replica that died or lost Redis goes
   * away by itself. 100 to 3,600,000.
   */
  readonly hintTtlMs?: number;
}

/**
 * Breaker hints shared by a fleet; create them with {@link fleetBreakerHints}. A hint
 * reaches the other replicas at their next sync: within `syncIntervalMs` plus a
 * Redis round trip after the breaker opened.
 */
export class FleetBreakerHints {
  /** The dependency's name in the fleet. */
  readonly name: string;
  /** The breaker the hints open. */
  readonly breaker: CircuitBreakerPolicy;
  /** Replicas that must see the dependency fail. */
  readonly quorum: number;
  /** How long a hint lasts without being renewed, in ms. */
  readonly hintTtlMs: number;
  readonly #fleet: RedisFleet;
  readonly #keys: string[];
  readonly #unsubscribe: Disposer;
  /** This replica's breaker opened on its own calls and has not closed since. */
  #ownFailure = false;
  /** Tripped by the quorum already: not again until the quorum has gone. */
  #tripped = false;
  #failing = 0;
  #replicas = 1;
  #trips = 0;
  #syncing = false;
  #again = false;

  /** Use {@link fleetBreakerHints} instead. @internal */
  constructor(fleet: RedisFleet, options: Required<FleetBreakerHintsOptions>) {
    this.#fleet = fleet;
    this.name = options.name;
    this.breaker = options.breaker;
    this.quorum = options.quorum;
    this.hintTtlMs = options.hintTtlMs;
    this.#keys = [fleet._key(this.name, 'hints'), fleet._key(this.name, 'replicas')];
    this.#unsubscribe = this.breaker.onStateChange(({ to, reason }) => {
      if (to === 'open' && reason !== 'tripped') {
        const fresh = !this.#ownFailure;
        this.#ownFailure = true;
        // Tell the fleet now rather than at the next interval.
        if (fresh) void this.sync();
      } else if (to === 'closed' || to === 'isolated') {
        this.#ownFailure = false;
      }
    });
    fleet._join(this);
  }

  /** Replicas seeing the dependency fail, and replicas alive, at the last sync. */
  get counts(): { readonly failing: number; readonly replicas: number } {
    return { failing: this.#failing, replicas: this.#replicas };
  }

  /** How many times the hints opened this replica's breaker. */
  get trips(): number {
    return this.#trips;
  }

  /** Publishes this replica's view and applies the fleet's. @internal */
  async sync(): Promise<void> {
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = true;
    const fleet = this.#fleet;
    const failing = this.#ownFailure && this.breaker.state !== 'closed';
    const reply = await fleet._command(HINTS, this.#keys, [fleet._now(), fleet.replicaId, aliveMs(fleet), failing ? 1 : 0, this.hintTtlMs], 2);
    this.#syncing = false;
    if (reply !== undefined && !fleet.closed) {
      const [count, replicas] = reply as [number, number];
      this.#failing = count;
      this.#replicas = replicas;
      if (count < this.quorum) this.#tripped = false;
      else if (!this.#tripped) {
        this.#tripped = true;
        if (this.breaker.trip()) this.#trips++;
      }
    }
    if (this.#again) {
      this.#again = false;
      await this.sync();
    }
  }

  /** @internal */
  close(): void {
    this.#unsubscribe();
  }
}

const breakerCheck = satisfies(
  'a circuit breaker (from circuitBreaker())',
  (v) => typeof v === 'object' && v !== null && typeof (v as CircuitBreakerPolicy).trip === 'function' && typeof (v as CircuitBreakerPolicy).onStateChange === 'function',
);

/**
 * Shares `breaker`'s view of a dependency with the fleet: when `quorum` replicas see
 * it fail (their own breakers opened), this replica's closed breaker opens too, once
 * per episode; from there its own half-open probes decide. While Redis is unavailable
 * the breaker simply works on its own.
 *
 * ```ts
 * const breaker = circuitBreaker({ failureRateThreshold: 0.5 });
 * fleetBreakerHints(fleet, { name: 'payments', breaker, quorum: 3 });
 * ```
 */
export function fleetBreakerHints(fleet: RedisFleet, options: FleetBreakerHintsOptions): FleetBreakerHints {
  const owner = 'fleetBreakerHints';
  fleetCheck(owner, 'fleet', fleet);
  const checked = checkOptions<FleetBreakerHintsOptions>(
    owner,
    options,
    { name, breaker: breakerCheck, quorum: integer(1, 10_000), hintTtlMs: duration(100) },
    ['name', 'breaker'],
  );
  const hintTtlMs = checked.hintTtlMs ?? aliveMs(fleet);
  if (hintTtlMs > 3_600_000) throw new RangeError(`${owner}: option "hintTtlMs" must be at most 3600000 ms; received ${hintTtlMs}`);
  return new FleetBreakerHints(fleet, { name: checked.name!, breaker: checked.breaker!, quorum: checked.quorum ?? 2, hintTtlMs });
}

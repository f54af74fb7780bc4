/**
 * The fleet-wide rate limiter: one token bucket in Redis shared by every replica.
 * A replica takes tokens from it in leases of `leaseSize`, in the background, and
 * admits calls from its lease locally, so no call waits for Redis. When the fleet is
 * degraded (Redis down, slow or refusing) or before the first lease has come back,
 * the replica decides alone with its share of the limit.
 */
import { RateLimitedError, stackless } from '../core/errors.ts';
import { Emitter, type Event } from '../core/events.ts';
import { type Chain, PolicyBase, type Scope } from '../core/protocol.ts';
import { checkOptions, finite, integer } from '../core/validate.ts';
import type { RateLimitAdmitEvent, RateLimitRejectEvent } from '../rate-limiter.ts';
import { aliveMs, fleetCheck, name, type RedisFleet } from './fleet.ts';
import { LEASE } from './scripts.ts';

/** Options of {@link fleetRateLimiter}. */
export interface FleetRateLimiterOptions {
  /** The limit's name in the fleet: every replica using this name shares one bucket. Letters, digits and `_.:-`. */
  readonly name: string;
  /** Calls admitted per second by the whole fleet, on average: above 0, at most 1,000,000. */
  readonly ratePerSecond: number;
  /** Calls the fleet may make at once after a quiet spell: the shared bucket's size (default: one second's worth, at least 1). */
  readonly burst?: number;
  /**
   * Tokens a replica takes from Redis at a time (default: a twentieth of a second's
   * worth, at least 1, at most `burst`). Larger leases mean fewer Redis commands and
   * more slack: in any window the fleet may admit, beyond the limit, the tokens the
   * replicas hold (`leaseSize` each) and what each admitted alone while its next lease
   * was on its way (its share of the burst at most), which that lease pays back.
   */
  readonly leaseSize?: number;
  /**
   * The rate this replica allows itself when it decides alone (Redis down or not yet
   * answered), calls per second. Default: `ratePerSecond` divided by the replicas alive
   * at the last answer from Redis (all of it before the first answer).
   */
  readonly localRatePerSecond?: number;
}

/**
 * A rate limiter shared by a fleet; create it with {@link fleetRateLimiter}. It reports
 * like `rateLimiter` (`onAdmit`, `onReject`, so the Prometheus sink counts its calls),
 * and refuses with the same `RateLimitedError`. It never queues: a call over the limit
 * is refused at once, saying when to come back.
 */
export class FleetRateLimiterPolicy extends PolicyBase {
  /** Always `'rate-limiter'`: it measures like the local one. */
  readonly kind = 'rate-limiter';
  /** The limit's name in the fleet. */
  readonly name: string;
  /** Calls per second for the whole fleet. */
  readonly ratePerSecond: number;
  /** The shared bucket's size. */
  readonly burst: number;
  /** Tokens taken from Redis at a time. */
  readonly leaseSize: number;
  readonly #fleet: RedisFleet;
  readonly #keys: string[];
  readonly #localRate: number | undefined;
  /** Tokens of the current lease not spent yet. */
  #leased = 0;
  /** A lease request is in flight. */
  #asking = false;
  /** Calls admitted alone while the lease request was in flight: the lease pays them back. */
  #debt = 0;
  /** When Redis last said the bucket is short: no new request before then (the fleet's clock). */
  #notBefore = -Infinity;
  /** Redis has answered at least once since the last failure. */
  #answered = false;
  #replicas = 1;
  /** The local bucket for deciding alone. */
  #localTokens: number;
  #localAt: number;
  #admitted = 0;
  #admittedAlone = 0;
  #admittedAhead = 0;
  #refused = 0;
  #admit: Emitter<RateLimitAdmitEvent> | undefined;
  #reject: Emitter<RateLimitRejectEvent> | undefined;

  /** Use {@link fleetRateLimiter} instead. @internal */
  constructor(fleet: RedisFleet, options: Required<Omit<FleetRateLimiterOptions, 'localRatePerSecond'>> & { localRatePerSecond: number | undefined }) {
    super();
    this.#fleet = fleet;
    this.name = options.name;
    this.ratePerSecond = options.ratePerSecond;
    this.burst = options.burst;
    this.leaseSize = options.leaseSize;
    this.#localRate = options.localRatePerSecond;
    this.#keys = [fleet._key(this.name, 'bucket'), fleet._key(this.name, 'replicas')];
    this.#localTokens = this.#localBurst();
    this.#localAt = fleet._clock.now();
    fleet._join(this);
  }

  /** Tokens this replica holds from its lease. */
  get leased(): number {
    return this.#leased;
  }

  /** Tokens this replica may spend now without asking Redis (its lease; deciding alone, its local bucket). */
  get tokens(): number {
    return this.deciding === 'fleet' ? Math.max(0, this.#leased) : this.#localTokens;
  }

  /** Replicas using this limit, as Redis last counted them. */
  get replicas(): number {
    return this.#replicas;
  }

  /** `'fleet'` while it spends leases from Redis; `'local'` while the fleet is degraded or Redis has not answered yet. */
  get deciding(): 'fleet' | 'local' {
    return this.#answered && !this.#fleet.degraded ? 'fleet' : 'local';
  }

  /**
   * Calls admitted so far; of them, those decided alone (degraded, or before Redis
   * answered) and those admitted ahead of a lease on its way (paid back from it); and
   * calls refused.
   */
  get counts(): { readonly admitted: number; readonly admittedLocally: number; readonly admittedAhead: number; readonly refused: number } {
    return { admitted: this.#admitted, admittedLocally: this.#admittedAlone, admittedAhead: this.#admittedAhead, refused: this.#refused };
  }

  /** Fires for every call it admits (`waitedMs` is always 0: it never queues). */
  get onAdmit(): Event<RateLimitAdmitEvent> {
    return (this.#admit ??= new Emitter()).subscribe;
  }

  /** Fires for every call it refuses. */
  get onReject(): Event<RateLimitRejectEvent> {
    return (this.#reject ??= new Emitter()).subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    if (this.#leased >= 1 && this.deciding === 'fleet') {
      this.#leased -= 1;
      if (this.#leased * 2 < this.leaseSize) this.#ask();
      this.#pass();
      return chain.next(index + 1, scope, attempt);
    }
    return this.#short(chain, index, scope, attempt);
  }

  /**
   * The sync on the fleet's interval: tops the lease up (unless Redis said the bucket
   * is short), and says this replica is alive. @internal
   */
  sync(): Promise<void> {
    const short = this.deciding === 'fleet' && this.#fleet._clock.now() < this.#notBefore;
    return this.#request(short ? 0 : this.leaseSize - Math.floor(this.#leased) + this.#debt);
  }

  /** @internal */
  close(): void {
    this.#leased = 0;
  }

  /**
   * No token in the lease. If Redis said the bucket is short, the fleet has decided:
   * the call is refused. Otherwise (a new lease is on its way, the fleet is degraded, or
   * Redis has not answered yet) this replica decides alone, with its share of the limit;
   * while a lease is on its way, what it admits alone is a debt the lease pays back.
   */
  #short<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const now = this.#fleet._clock.now();
    const fleet = this.deciding === 'fleet';
    if (fleet) {
      this.#ask();
      if (!this.#asking) return Promise.reject(this.#refuse(Math.max(1, Math.ceil(this.#notBefore - now)), chain));
      // Ahead of the lease by its share of the burst at most: the lease has to be able to pay it back.
      // (A lease below 0 is debt the last lease could not pay yet.)
      if (this.#debt - Math.min(0, this.#leased) >= this.#localBurst()) return Promise.reject(this.#refuse(1, chain));
    }
    const rate = this.#localRatePerMs();
    if (now > this.#localAt) {
      this.#localTokens = Math.min(this.#localBurst(), this.#localTokens + (now - this.#localAt) * rate);
      this.#localAt = now;
    }
    if (this.#localTokens < 1) return Promise.reject(this.#refuse(Math.max(1, Math.ceil((1 - this.#localTokens) / rate)), chain));
    this.#localTokens -= 1;
    if (fleet) {
      this.#debt++;
      this.#admittedAhead++;
    } else {
      this.#admittedAlone++;
    }
    this.#pass();
    return chain.next(index + 1, scope, attempt);
  }

  #localRatePerMs(): number {
    return (this.#localRate ?? this.ratePerSecond / this.#replicas) / 1000;
  }

  #localBurst(): number {
    return Math.max(1, Math.floor(this.#localRate ?? this.burst / this.#replicas));
  }

  /** Starts a lease request unless one is in flight or Redis said the bucket is short. */
  #ask(): void {
    if (!this.#asking && this.#fleet._clock.now() >= this.#notBefore) void this.#request(Math.max(1, this.leaseSize - Math.floor(this.#leased) + this.#debt));
  }

  async #request(want: number): Promise<void> {
    if (this.#asking || this.#fleet.closed) return;
    this.#asking = true;
    const fleet = this.#fleet;
    const reply = await fleet._command(LEASE, this.#keys, [fleet._now(), fleet.replicaId, aliveMs(fleet), this.ratePerSecond / 1000, this.burst, want], 3);
    this.#asking = false;
    if (reply === undefined || fleet.closed) {
      // Redis did not answer: the calls admitted meanwhile were decided alone after all.
      this.#admittedAlone += this.#debt;
      this.#admittedAhead -= this.#debt;
      this.#debt = 0;
      this.#answered = false;
      return;
    }
    const [granted, replicas, fullInMs] = reply as [number, number, number];
    // The debt comes out of the lease; a lease smaller than the debt leaves this replica short until the next one.
    this.#leased += granted - this.#debt;
    this.#debt = 0;
    this.#replicas = Math.max(1, replicas);
    this.#answered = true;
    // Short: come back when the bucket has refilled what was asked for. (A sync that asked
    // for nothing, only saying this replica is alive, changes nothing.)
    if (want > 0) this.#notBefore = granted < want ? fleet._clock.now() + Math.max(fullInMs, 1) : -Infinity;
  }

  #pass(): void {
    this.#admitted++;
    const emitter = this.#admit;
    if (emitter !== undefined && emitter.active) emitter.emit(ADMITTED);
  }

  #refuse(waitMs: number, chain: Chain<unknown>): RateLimitedError {
    this.#refused++;
    const error = stackless(
      () =>
        new RateLimitedError(
          waitMs,
          `the fleet's rate limit "${this.name}" (${this.ratePerSecond} calls/s, burst ${this.burst}) is reached: the call was not made; a token is free in about ${waitMs} ms`,
          { pipeline: chain.pipeline },
        ),
    );
    const emitter = this.#reject;
    if (emitter !== undefined && emitter.active) emitter.emit({ error });
    return error;
  }
}

const ADMITTED: RateLimitAdmitEvent = Object.freeze({ waitedMs: 0 });


/**
 * A rate limit shared by every replica of the fleet, decided atomically in Redis:
 * the fleet admits at most `ratePerSecond` calls a second on average and `burst` at
 * once, plus at most the tokens the replicas hold (`replicas × leaseSize`). Calls over
 * it are refused at once with `RateLimitedError`. No call waits for Redis; while Redis
 * is unavailable each replica keeps to its share of the limit on its own.
 *
 * ```ts
 * const partnerApi = pipeline({ name: 'partner-api' }, fleetRateLimiter(fleet, { name: 'partner-api', ratePerSecond: 100 }));
 * ```
 */
export function fleetRateLimiter(fleet: RedisFleet, options: FleetRateLimiterOptions): FleetRateLimiterPolicy {
  const owner = 'fleetRateLimiter';
  fleetCheck(owner, 'fleet', fleet);
  const checked = checkOptions<FleetRateLimiterOptions>(
    owner,
    options,
    {
      name,
      ratePerSecond: finite(0, 1_000_000, 'min'),
      burst: integer(1, 1_000_000),
      leaseSize: integer(1, 1_000_000),
      localRatePerSecond: finite(0, 1_000_000, 'min'),
    },
    ['name', 'ratePerSecond'],
  );
  const rate = checked.ratePerSecond!;
  const burst = checked.burst ?? Math.max(1, Math.floor(rate));
  const leaseSize = checked.leaseSize ?? Math.min(burst, Math.max(1, Math.floor(rate / 20)));
  if (leaseSize > burst) throw new RangeError(`${owner}: option "leaseSize" must be at most "burst" (${burst}); received ${leaseSize}`);
  return new FleetRateLimiterPolicy(fleet, { name: checked.name!, ratePerSecond: rate, burst, leaseSize, localRatePerSecond: checked.localRatePerSecond });
}

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
import { TokenQueue } from '../core/token-queue.ts';
import { checkOptions, duration, finite, integer, received } from '../core/validate.ts';
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
  /**
   * Calls that may wait for a token on this replica (default 0: a call over the limit
   * is refused at once). 0 to 1,000,000. A waiter gets its token from this replica's
   * lease (or, deciding alone, its local bucket), never by waiting for Redis.
   */
  readonly maxQueue?: number;
  /**
   * The longest a call may wait for its token, in ms (default: no limit but the
   * queue's). A call whose estimated wait is longer is refused at once, and a waiter
   * whose token has not come by then is refused then, both saying when to come back.
   * 0 to 2,147,483,647.
   */
  readonly maxWaitMs?: number;
}

/**
 * A rate limiter shared by a fleet; create it with {@link fleetRateLimiter}. It reports
 * like `rateLimiter` (`onAdmit`, `onReject`, so the Prometheus sink counts its calls),
 * and refuses with the same `RateLimitedError`. A call over the limit waits (with
 * `maxQueue` above 0) or is refused at once, saying when to come back.
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
  /** How many calls may wait for a token on this replica. */
  readonly maxQueue: number;
  /** The longest a call may wait, in ms (`Infinity`: no limit but the queue's). */
  readonly maxWaitMs: number;
  readonly #fleet: RedisFleet;
  readonly #keys: string[];
  readonly #localRate: number | undefined;
  readonly #queue: TokenQueue;
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
    this.maxQueue = options.maxQueue;
    this.maxWaitMs = options.maxWaitMs;
    this.#localRate = options.localRatePerSecond;
    this.#keys = [fleet._key(this.name, 'bucket'), fleet._key(this.name, 'replicas')];
    this.#localTokens = this.#localBurst();
    this.#localAt = fleet._clock.now();
    this.#queue = new TokenQueue(
      { take: (now) => this.#take(now), admitted: (waitedMs) => this.#pass(waitedMs), expired: (chain, retryInMs) => this.#refuse(Math.ceil(retryInMs), chain) },
      fleet._clock,
      this.maxWaitMs,
    );
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

  /** Calls waiting for a token on this replica now. */
  get queued(): number {
    return this.#queue.size;
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

  /** Fires for every call it admits, with how long it waited. */
  get onAdmit(): Event<RateLimitAdmitEvent> {
    return (this.#admit ??= new Emitter()).subscribe;
  }

  /** Fires for every call it refuses. */
  get onReject(): Event<RateLimitRejectEvent> {
    return (this.#reject ??= new Emitter()).subscribe;
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    if (this.#leased >= 1 && this.#queue.size === 0 && this.deciding === 'fleet') {
      this.#leased -= 1;
      if (this.#leased * 2 < this.leaseSize) this.#ask();
      this.#pass(0);
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
    this.#queue.clear((chain) => this.#refuse(1, chain));
  }

  /**
   * No token in the lease, or calls waiting ahead of this one: it takes a token if it
   * can and there is no queue, else waits behind the others if the queue has room and
   * the estimated wait is within `maxWaitMs`, else is refused.
   */
  #short<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    let waitMs: number;
    if (this.queued === 0) {
      waitMs = Math.ceil(this.#take(this.#fleet._clock.now()));
      if (waitMs === 0) {
        this.#pass(0);
        return chain.next(index + 1, scope, attempt);
      }
    } else {
      // Behind the others: an estimate, at this replica's share of the rate.
      waitMs = Math.ceil((this.queued + 1) / this.#localRatePerMs());
    }
    // (A closed fleet's limiter queues nothing: no timer may be left behind.)
    if (this.queued >= this.maxQueue || waitMs > this.maxWaitMs || this.#fleet.closed) return Promise.reject(this.#refuse(waitMs, chain));
    return this.#queue.wait(chain, index, scope, attempt, waitMs);
  }

  /**
   * One token, if this replica may spend one now: 0 when taken, else the ms until it may
   * (at least 1). From the lease first. If Redis said the bucket is short, the fleet has
   * decided: none. Otherwise (a new lease is on its way, the fleet is degraded, or Redis
   * has not answered yet) this replica decides alone, with its share of the limit;
   * while a lease is on its way, what it admits alone is a debt the lease pays back.
   */
  #take(now: number): number {
    const fleet = this.deciding === 'fleet';
    if (fleet && this.#leased >= 1) {
      this.#leased -= 1;
      if (this.#leased * 2 < this.leaseSize) this.#ask();
      return 0;
    }
    if (fleet) {
      this.#ask();
      if (!this.#asking) return Math.max(1, this.#notBefore - now);
      // Ahead of the lease by its share of the burst at most: the lease has to be able to pay it back.
      // (A lease below 0 is debt the last lease could not pay yet.)
      if (this.#debt - Math.min(0, this.#leased) >= this.#localBurst()) return 1;
    }
    const rate = this.#localRatePerMs();
    if (now > this.#localAt) {
      this.#localTokens = Math.min(this.#localBurst(), this.#localTokens + (now - this.#localAt) * rate);
      this.#localAt = now;
    }
    if (this.#localTokens < 1) return Math.max(1, (1 - this.#localTokens) / rate);
    this.#localTokens -= 1;
    if (fleet) {
      this.#debt++;
      this.#admittedAhead++;
    } else {
      this.#admittedAlone++;
    }
    return 0;
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
    this.#answer(reply, want);
    // Tokens may have come (or the fleet is degraded and this replica decides alone): the waiters try again.
    if (this.#queue.size > 0) this.#queue.wake();
  }

  #answer(reply: number[] | undefined, want: number): void {
    const fleet = this.#fleet;
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

  #pass(waitedMs: number): void {
    this.#admitted++;
    const emitter = this.#admit;
    if (emitter !== undefined && emitter.active) emitter.emit(waitedMs === 0 ? ADMITTED : { waitedMs });
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
 * it wait in this replica's queue of `maxQueue` (abortable, at most `maxWaitMs`) or are
 * refused at once with `RateLimitedError`, whose `retryAfterMs` says when to come back. No call waits for Redis; while Redis
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
      maxQueue: integer(0, 1_000_000),
      maxWaitMs: duration(0),
    },
    ['name', 'ratePerSecond'],
  );
  const rate = checked.ratePerSecond!;
  const burst = checked.burst ?? Math.max(1, Math.floor(rate));
  const leaseSize = checked.leaseSize ?? Math.min(burst, Math.max(1, Math.floor(rate / 20)));
  if (checked.maxWaitMs !== undefined && !(checked.maxQueue! > 0)) {
    throw new RangeError(`${owner}: option "maxWaitMs" needs a queue: set "maxQueue" above 0; received maxQueue ${received(checked.maxQueue ?? 0)}`);
  }
  if (leaseSize > burst) throw new RangeError(`${owner}: option "leaseSize" must be at most "burst" (${burst}); received ${leaseSize}`);
  return new FleetRateLimiterPolicy(fleet, {
    name: checked.name!,
    ratePerSecond: rate,
    burst,
    leaseSize,
    localRatePerSecond: checked.localRatePerSecond,
    maxQueue: checked.maxQueue ?? 0,
    maxWaitMs: checked.maxWaitMs ?? Infinity,
  });
}

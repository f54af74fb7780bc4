/**
 * The fleet-wide retry budget: the fleet's retries (and hedges) stay within `ratio`
 * of the fleet's first attempts over the window, plus one floor for the whole fleet
 * (not one per replica). Counts live in Redis in per-bucket fields; a replica reports
 * its counts on the fleet's interval and reserves a small lease of retries at each
 * sync, spent locally, so no call waits for Redis.
 */
import { Emitter, type Event } from '../core/events.ts';
import { checkOptions, duration, finite } from '../core/validate.ts';
import type { RetryBudgetExhaustedEvent, RetryBudgetLike } from '../retry-budget.ts';
import { aliveMs, fleetCheck, name, type RedisFleet } from './fleet.ts';
import { BUDGET } from './scripts.ts';

/** Options of {@link fleetRetryBudget}. */
export interface FleetRetryBudgetOptions {
  /** The budget's name in the fleet: every replica using this name shares one budget. Letters, digits and `_.:-`. */
  readonly name: string;
  /** Retries allowed per first attempt of the fleet in the window, from 0 to 1 (default 0.2). */
  readonly ratio?: number;
  /** Retries per second of window the whole fleet may make whatever the traffic (default 10). 0 to 1,000,000. */
  readonly minPerSecond?: number;
  /** Length of the sliding window in ms (default 10,000), kept in 10 buckets; a bucket must be at least the fleet's sync interval. */
  readonly windowMs?: number;
}

const BUCKETS = 10;

/**
 * A retry budget shared by a fleet; create it with {@link fleetRetryBudget} and pass it
 * to `retry({ budget })` or `hedge({ budget })` like a local one.
 */
export class FleetRetryBudget implements RetryBudgetLike {
  /** The budget's name in the fleet. */
  readonly name: string;
  /** Retries allowed per first attempt of the fleet. */
  readonly ratio: number;
  /** The fleet's retries per second whatever the traffic. */
  readonly minPerSecond: number;
  /** Window length in ms. */
  readonly windowMs: number;
  readonly #fleet: RedisFleet;
  readonly #keys: string[];
  readonly #floor: number;
  readonly #exhausted = new Emitter<RetryBudgetExhaustedEvent>();
  /** Counts not reported to Redis yet. */
  #firsts = 0;
  #extra = 0;
  /** The lease reserved at the last sync: retries granted, spent, and its bucket. */
  #leaseGranted = 0;
  #leaseUsed = 0;
  #leaseBucket = -1;
  #syncing = false;
  #answered = false;
  #replicas = 1;
  #fleetFirsts = 0;
  #fleetRetries = 0;
  /** Deciding alone: counts since `#localFrom`, a window at most. */
  #localFrom: number;
  #localFirsts = 0;
  #localRetries = 0;

  /** Use {@link fleetRetryBudget} instead. @internal */
  constructor(fleet: RedisFleet, options: Required<FleetRetryBudgetOptions>) {
    this.#fleet = fleet;
    this.name = options.name;
    this.ratio = options.ratio;
    this.minPerSecond = options.minPerSecond;
    this.windowMs = options.windowMs;
    this.#floor = (this.minPerSecond * this.windowMs) / 1000;
    this.#keys = [fleet._key(this.name, 'budget'), fleet._key(this.name, 'replicas')];
    this.#localFrom = fleet._clock.now();
    fleet._join(this);
  }

  /** Fires each time a retry is refused. */
  get onExhausted(): Event<RetryBudgetExhaustedEvent> {
    return this.#exhausted.subscribe;
  }

  /** `'fleet'` while it spends what Redis granted; `'local'` while the fleet is degraded or Redis has not answered yet. */
  get deciding(): 'fleet' | 'local' {
    return this.#answered && !this.#fleet.degraded ? 'fleet' : 'local';
  }

  /** Replicas using this budget, as Redis last counted them. */
  get replicas(): number {
    return this.#replicas;
  }

  /** The fleet's first attempts and retries (reserved ones included) in the window, at the last sync. */
  get fleetCounts(): { readonly firstAttempts: number; readonly retries: number } {
    return { firstAttempts: this.#fleetFirsts, retries: this.#fleetRetries };
  }

  /** Retries of the current lease not spent yet. */
  get leased(): number {
    return this.#leaseGranted - this.#leaseUsed;
  }

  /** Counts one first attempt. Retry and hedge policies call this for you. */
  recordFirstAttempt(): void {
    this.#firsts++;
    this.#localFirsts++;
  }

  /**
   * Asks for one retry: from the lease, else from `ratio` of the first attempts made
   * since the last sync; deciding alone, from `ratio` of this replica's first attempts
   * plus its share of the fleet's floor. Retry and hedge policies call this for you.
   */
  tryRetry(error?: unknown): boolean {
    let granted: boolean;
    if (this.deciding === 'fleet') {
      if (this.#leaseUsed < this.#leaseGranted) {
        this.#leaseUsed++;
        granted = true;
      } else {
        granted = this.#extra + 1 <= this.ratio * this.#firsts;
        if (granted) this.#extra++;
      }
    } else {
      this.#rotateLocal();
      granted = this.#localRetries + 1 <= this.ratio * this.#localFirsts + this.#floor / this.#replicas;
      if (granted) {
        this.#localRetries++;
        this.#extra++;
      }
    }
    if (!granted && this.#exhausted.active) this.#exhausted.emit(Object.freeze({ error }));
    return granted;
  }

  /** Reports the counts, hands back the unused lease and takes a new one. @internal */
  async sync(): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    const fleet = this.#fleet;
    const firsts = this.#firsts;
    const extra = this.#extra;
    const used = this.#leaseUsed;
    const unused = this.#leaseGranted - used;
    // The lease closes now: what is spent from here on is reported by the next sync.
    this.#leaseGranted = used;
    const want = Math.max(1, 2 * (used + extra));
    const reply = await fleet._command(BUDGET, this.#keys, [
      fleet._now(), fleet.replicaId, aliveMs(fleet), this.windowMs / BUCKETS, BUCKETS,
      firsts, extra, this.#leaseBucket, unused, this.ratio, this.#floor, want,
    ], 5);
    this.#syncing = false;
    if (reply === undefined) {
      this.#answered = false;
      return;
    }
    const [granted, replicas, bucket, fleetFirsts, fleetRetries] = reply as [number, number, number, number, number];
    this.#firsts -= firsts;
    this.#extra -= extra;
    this.#leaseGranted = granted;
    this.#leaseUsed = 0;
    this.#leaseBucket = bucket;
    this.#replicas = Math.max(1, replicas);
    this.#fleetFirsts = fleetFirsts;
    this.#fleetRetries = fleetRetries;
    if (!this.#answered) this.#restartLocal();
    this.#answered = true;
  }

  /** @internal */
  close(): void {
    this.#leaseGranted = this.#leaseUsed;
  }

  /** Deciding alone, counts cover one window at most: older ones are dropped, reported or not. */
  #rotateLocal(): void {
    if (this.#fleet._clock.now() - this.#localFrom >= this.windowMs) {
      this.#restartLocal();
      this.#firsts = 0;
      this.#extra = 0;
    }
  }

  #restartLocal(): void {
    this.#localFrom = this.#fleet._clock.now();
    this.#localFirsts = 0;
    this.#localRetries = 0;
  }
}


/**
 * A retry budget shared by every replica of the fleet: the fleet's retries stay
 * within `ratio` of the fleet's first attempts in the window plus `minPerSecond`
 * retries a second for the whole fleet. Use it wherever a `retryBudget()` goes.
 * While Redis is unavailable each replica keeps to `ratio` of its own calls plus its
 * share of the floor (the floor divided by the replicas last seen).
 *
 * ```ts
 * const budget = fleetRetryBudget(fleet, { name: 'auth', ratio: 0.1, minPerSecond: 5 });
 * const auth = pipeline({ name: 'auth' }, retry({ budget }), timeout({ ms: 500 }));
 * ```
 */
export function fleetRetryBudget(fleet: RedisFleet, options: FleetRetryBudgetOptions): FleetRetryBudget {
  const owner = 'fleetRetryBudget';
  fleetCheck(owner, 'fleet', fleet);
  const checked = checkOptions<FleetRetryBudgetOptions>(
    owner,
    options,
    { name, ratio: finite(0, 1), minPerSecond: finite(0, 1_000_000), windowMs: duration(10) },
    ['name'],
  );
  const windowMs = checked.windowMs ?? 10_000;
  if (windowMs / BUCKETS < fleet.syncIntervalMs) {
    throw new RangeError(
      `${owner}: option "windowMs" must be at least 10 sync intervals (${fleet.syncIntervalMs * BUCKETS} ms), so that a lease never outlives its bucket; received ${windowMs}`,
    );
  }
  return new FleetRetryBudget(fleet, { name: checked.name!, ratio: checked.ratio ?? 0.2, minPerSecond: checked.minPerSecond ?? 10, windowMs });
}

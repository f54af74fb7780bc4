/**
 * The fleet: one per Redis connection and service. It owns what the shared policies
 * have in common: this replica's id, the key prefix, the one background timer that
 * syncs every member on an interval, and the guard every Redis command goes through
 * (Breakwater's own breaker and timeout), which decides when the fleet is degraded.
 * No user call ever waits for it.
 */
import { randomUUID } from 'node:crypto';
import { circuitBreaker } from '../circuit-breaker/policy.ts';
import { type Clock, systemClock, type TimerHandle } from '../core/clock.ts';
import { Emitter, type Event } from '../core/events.ts';
import { pipeline, type Pipeline } from '../core/pipeline.ts';
import { checkOptions, clock as clockCheck, duration, fn, satisfies } from '../core/validate.ts';
import { timeout } from '../timeout.ts';
import { isRedisConnection, type RedisConnection, type Script, ScriptRunner } from './client.ts';

/** Options of {@link redisFleet}. */
export interface RedisFleetOptions {
  /** The service's own connection: an ioredis `Redis` or `Cluster`, or a node-redis client (connected). */
  readonly redis: RedisConnection;
  /**
   * What every key starts with, and the fleet's identity: replicas with the same
   * prefix and member names share limits. Letters, digits and `_.:-`, 1 to 100 characters.
   */
  readonly prefix: string;
  /** How often the background sync runs, in ms (default 250). 10 to 60,000. */
  readonly syncIntervalMs?: number;
  /** The longest a Redis command may take before the fleet decides locally, in ms (default 100). 1 to 10,000. */
  readonly redisTimeoutMs?: number;
  /** After Redis failed, how long before it is tried again, in ms (default 1,000). 1 to 600,000. */
  readonly retryRedisAfterMs?: number;
  /** This replica's id in Redis (default: a random UUID). Letters, digits and `_.:-`, 1 to 100 characters. */
  readonly replicaId?: string;
  /** Clock for the interval, the guard and the local decisions (default: the system clock). */
  readonly clock?: Clock;
  /**
   * Time shared by every replica, in ms, sent with each command (default: the Redis
   * server's own clock, read inside the scripts, so replicas' clocks do not matter).
   * Tests in virtual time pass a FakeClock's `now`.
   */
  readonly sharedNow?: () => number;
}

/** Payload of `onDegradedChange`. */
export interface FleetDegradedEvent {
  /** True when the shared policies now decide on local state alone. */
  readonly degraded: boolean;
  /** Why Redis was given up on (the command's error), when `degraded` is true. */
  readonly error?: unknown;
}

/** What a shared policy gives the fleet to sync it in the background. @internal */
export interface FleetMember {
  /** One sync with Redis through {@link RedisFleet._command}; never rejects. */
  sync(): Promise<void>;
  /** The fleet is closing: drop listeners and stop. */
  close(): void;
}

const NAME = /^[A-Za-z0-9_.:-]{1,100}$/;
/** The check of a prefix, a replica id or a member's name. @internal */
export const name = satisfies('1 to 100 letters, digits or _.:- characters', (v) => typeof v === 'string' && NAME.test(v));
/** The check of the fleet argument of the shared policies' factories. @internal */
export const fleetCheck = satisfies('a RedisFleet (from redisFleet())', (v) => v instanceof RedisFleet);

/** A replica counts as alive for three sync intervals (and at least a second) after its last sync. @internal */
export function aliveMs(fleet: RedisFleet): number {
  return Math.max(1_000, fleet.syncIntervalMs * 3);
}

/** The defaults of {@link redisFleet}, in one visible place. */
export const REDIS_FLEET_DEFAULTS = Object.freeze({ syncIntervalMs: 250, redisTimeoutMs: 100, retryRedisAfterMs: 1_000 });

/** A fleet of replicas sharing state through one Redis; create it with {@link redisFleet}. */
export class RedisFleet {
  /** The key prefix. */
  readonly prefix: string;
  /** This replica's id. */
  readonly replicaId: string;
  /** The background sync interval, in ms. */
  readonly syncIntervalMs: number;
  /** The budget of one Redis command, in ms. */
  readonly redisTimeoutMs: number;
  /** The fleet's clock. @internal */
  readonly _clock: Clock;
  readonly #sharedNow: (() => number) | undefined;
  readonly #runner: ScriptRunner;
  readonly #guard: Pipeline<unknown>;
  readonly #members: FleetMember[] = [];
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #degradedChange = new Emitter<FleetDegradedEvent>();
  #timer: TimerHandle | undefined = undefined;
  #degraded = false;
  #closed = false;
  #commands = 0;
  #failures = 0;

  /** Use {@link redisFleet} instead. @internal */
  constructor(options: Required<Omit<RedisFleetOptions, 'sharedNow'>> & { sharedNow: (() => number) | undefined }) {
    this.prefix = options.prefix;
    this.replicaId = options.replicaId;
    this.syncIntervalMs = options.syncIntervalMs;
    this.redisTimeoutMs = options.redisTimeoutMs;
    this._clock = options.clock;
    this.#sharedNow = options.sharedNow;
    this.#runner = new ScriptRunner(options.redis);
    // Breakwater guarding itself: a Redis that is slow costs at most the timeout, and a
    // Redis that keeps failing is left alone for retryRedisAfterMs between tries.
    this.#guard = pipeline(
      circuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 2, window: { kind: 'count', calls: 4 }, halfOpenAfterMs: options.retryRedisAfterMs, clock: this._clock }),
      timeout({ ms: this.redisTimeoutMs, clock: this._clock }),
    );
  }

  /** True while the shared policies decide on local state alone (Redis down, slow or refusing). */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** Fires when the fleet becomes degraded and when it recovers. */
  get onDegradedChange(): Event<FleetDegradedEvent> {
    return this.#degradedChange.subscribe;
  }

  /** Redis commands this replica has sent (or tried to), for the commands-per-second figure. */
  get commands(): number {
    return this.#commands;
  }

  /** Redis commands that failed, timed out or were not sent because Redis was being left alone. */
  get commandFailures(): number {
    return this.#failures;
  }

  /** Whether {@link RedisFleet.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The hash-tagged key of a member: every key of one member lands in one Redis Cluster slot. @internal */
  _key(member: string, part: string): string {
    return `{${this.prefix}:${member}}:${part}`;
  }

  /** The shared time to send, or '' for "the server's clock". @internal */
  _now(): string {
    return this.#sharedNow === undefined ? '' : String(this.#sharedNow());
  }

  /** Adds a member and starts the interval with the first one. @internal */
  _join(member: FleetMember): void {
    if (this.#closed) throw new Error(`redisFleet "${this.prefix}": the fleet is closed; create a new one`);
    this.#members.push(member);
    this.#arm(0);
  }

  /**
   * Runs one script through the guard. Resolves with its reply (`replyLength` finite
   * numbers), or with `undefined` when Redis failed, was too slow, answered something
   * else or is being left alone: then the fleet is degraded.
   * @internal
   */
  _command(script: Script, keys: string[], args: (string | number)[], replyLength: number): Promise<number[] | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    this.#commands++;
    const done = this.#guard.execute(() => this.#runner.run(script, keys, args).then((reply) => numbers(reply, replyLength))).then(
      (reply): number[] => {
        this.#setDegraded(false, undefined);
        return reply as number[];
      },
      (error: unknown) => {
        this.#failures++;
        this.#setDegraded(true, error);
        return undefined;
      },
    );
    this.#inFlight.add(done);
    void done.finally(() => this.#inFlight.delete(done));
    return done;
  }

  /** Resolves when no Redis command of this fleet is in flight (tests in virtual time use it). @internal */
  async _idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /**
   * Stops the background sync and every member, and waits for the Redis commands in
   * flight (each bounded by `redisTimeoutMs`). The connection stays open: it is the
   * service's. Afterwards no timer or listener of the fleet is left.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#timer !== undefined) this._clock.cancel(this.#timer);
      this.#timer = undefined;
      for (const member of this.#members) member.close();
      this.#members.length = 0;
    }
    await this._idle();
    this.#guard.dispose();
  }

  #setDegraded(degraded: boolean, error: unknown): void {
    if (this.#degraded === degraded) return;
    this.#degraded = degraded;
    if (this.#degradedChange.active) this.#degradedChange.emit(Object.freeze(degraded ? { degraded, error } : { degraded }));
  }

  #arm(delayMs: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = this._clock.schedule(this.#tick, delayMs);
    this._clock.keepAlive?.(this.#timer, false);
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    void Promise.all(this.#members.map((member) => member.sync())).then(() => this.#arm(this.syncIntervalMs));
  };
}

/** A script's reply as `length` finite numbers; anything else is an error. */
function numbers(reply: unknown, length: number): number[] {
  const values = Array.isArray(reply) && reply.length === length ? reply.map(Number) : [];
  if (values.length !== length || !values.every(Number.isFinite)) {
    throw new TypeError(`unexpected reply from Redis: ${String(reply).slice(0, 100)}`);
  }
  return values;
}

/**
 * Creates the fleet for one Redis connection: make one per service and create its
 * shared policies from it (`fleetRateLimiter`, `fleetRetryBudget`, `fleetBreakerHints`).
 *
 * ```ts
 * const fleet = redisFleet({ redis, prefix: 'checkout' });
 * const partnerApi = fleetRateLimiter(fleet, { name: 'partner-api', ratePerSecond: 100 });
 * ```
 */
export function redisFleet(options: RedisFleetOptions): RedisFleet {
  const checked = checkOptions<RedisFleetOptions>(
    'redisFleet',
    options,
    {
      redis: satisfies('an ioredis or node-redis connection (with eval and evalsha / evalSha)', isRedisConnection),
      prefix: name,
      syncIntervalMs: duration(10),
      redisTimeoutMs: duration(1),
      retryRedisAfterMs: duration(1),
      replicaId: name,
      clock: clockCheck,
      sharedNow: fn,
    },
    ['redis', 'prefix'],
  );
  for (const [key, max] of [['syncIntervalMs', 60_000], ['redisTimeoutMs', 10_000], ['retryRedisAfterMs', 600_000]] as const) {
    const value = checked[key];
    if (value !== undefined && value > max) throw new RangeError(`redisFleet: option "${key}" must be at most ${max} ms; received ${value}`);
  }
  return new RedisFleet({
    redis: checked.redis!,
    prefix: checked.prefix!,
    syncIntervalMs: checked.syncIntervalMs ?? REDIS_FLEET_DEFAULTS.syncIntervalMs,
    redisTimeoutMs: checked.redisTimeoutMs ?? REDIS_FLEET_DEFAULTS.redisTimeoutMs,
    retryRedisAfterMs: checked.retryRedisAfterMs ?? REDIS_FLEET_DEFAULTS.retryRedisAfterMs,
    replicaId: checked.replicaId ?? randomUUID(),
    clock: checked.clock ?? systemClock,
    sharedNow: checked.sharedNow,
  });
}

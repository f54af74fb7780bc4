import { unwatchAbort, watchAbort } from './core/abort.ts';
import { type Clock, type TimerHandle, systemClock } from './core/clock.ts';
import { TimeoutError } from './core/errors.ts';
import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { checkOptions, clock as clockCheck, duration } from './core/validate.ts';

/** Options of {@link timeout}. */
export interface TimeoutOptions {
  /** Deadline of each call (each attempt, when placed inside a retry), in ms. 1 to 2,147,483,647. */
  readonly ms: number;
  /** Clock for deadlines (default: the system clock). */
  readonly clock?: Clock;
}

/** Payload of `onTimeout`. */
export interface TimeoutEvent {
  /** The deadline that expired, in ms. */
  readonly timeoutMs: number;
  /** The attempt that timed out (1 when not under a retry). */
  readonly attempt: number;
}

/** Payload of `onLateRejection`. */
export interface LateRejectionEvent {
  /** What the abandoned work rejected with after its call had already timed out. */
  readonly error: unknown;
}

const noop = (): void => {};

/**
 * One call under a timeout. It is also the cancellation scope of the layers
 * below: its AbortController is only created if someone reads `signal`.
 */
class TimedCall<T> implements Scope {
  readonly deadline: number;
  settled = false;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  private readonly owner: TimeoutPolicy;
  private readonly parent: Scope | undefined;
  private readonly attempt: number;
  private readonly pipeline: string | undefined;
  private controller: AbortController | undefined;
  private error: TimeoutError | undefined;
  private parentSignal: AbortSignal | undefined;

  constructor(owner: TimeoutPolicy, parent: Scope | undefined, attempt: number, deadline: number, pipeline: string | undefined) {
    this.owner = owner;
    this.pipeline = pipeline;
    this.parent = parent;
    this.attempt = attempt;
    this.deadline = deadline;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = (this.controller = new AbortController());
      if (this.error !== undefined) controller.abort(this.error);
      else if (this.parentSignal !== undefined && this.parentSignal.aborted) controller.abort(this.parentSignal.reason);
    }
    return this.controller.signal;
  }

  /** Links to the parent scope; returns false when it is already aborted. */
  link(): boolean {
    if (this.parent === undefined) return true;
    const signal = this.parent.signal;
    if (signal.aborted) return false;
    this.parentSignal = signal;
    watchAbort(signal, this);
    return true;
  }

  /** The parent scope aborted: pass its reason down and settle now. */
  handleEvent(): void {
    if (this.settled) return;
    const reason = this.parentSignal!.reason as unknown;
    const reject = this.reject;
    this.finish();
    this.controller?.abort(reason);
    reject(reason);
  }

  expire(): void {
    if (this.settled) return;
    const error = (this.error = new TimeoutError(this.owner.ms, { pipeline: this.pipeline }));
    const reject = this.reject;
    this.finish();
    this.controller?.abort(error);
    reject(error);
    this.owner.timedOut(this.attempt);
  }

  fulfil = (value: T): void => {
    if (this.settled) return;
    const resolve = this.resolve;
    this.finish();
    resolve(value);
  };

  fail = (error: unknown): void => {
    if (this.settled) {
      if (this.error !== undefined && !this.honoursAbort(error)) this.owner.lateRejection(error);
      return;
    }
    const reject = this.reject;
    this.finish();
    reject(error);
  };

  /**
   * Whether a rejection after the deadline is the work stopping as asked: the
   * `TimeoutError` itself, or, when the work read its signal, an `AbortError` or
   * an error caused by the `TimeoutError`.
   */
  private honoursAbort(error: unknown): boolean {
    if (error === this.error) return true;
    if (this.controller === undefined || typeof error !== 'object' || error === null) return false;
    try {
      return (error as { name?: unknown }).name === 'AbortError' || (error as { cause?: unknown }).cause === this.error;
    } catch {
      return false; // a hostile object (a revoked Proxy): not an abort
    }
  }

  /** Rejects a call that never started (its parent was aborted, or the clock threw), leaving no listener behind. */
  refuse(error: unknown): void {
    const reject = this.reject;
    this.abandon();
    reject(error);
  }

  /** Marks the call settled and lets go of its listener and callbacks. */
  private abandon(): void {
    this.settled = true;
    if (this.parentSignal !== undefined) unwatchAbort(this.parentSignal, this);
    this.resolve = noop;
    this.reject = noop;
  }

  private finish(): void {
    // The entry may stay in the deadline queue behind an older live call until that
    // call's deadline: abandon() drops what would keep this call's result reachable.
    this.abandon();
    this.owner.queue.settled();
  }
}

/**
 * Deadlines of one timeout policy. All its calls have the same duration, so they
 * expire in the order they started: one FIFO and one timer, armed for the oldest
 * live deadline, serve every call in flight.
 *
 * When the last call settles, the timer is not cancelled but left armed and
 * unreferenced (`clock.keepAlive(timer, false)`): it no longer keeps the process
 * alive, and when it fires with nothing to expire it simply ends. A call that
 * starts meanwhile re-references it instead of paying for a new timer, so calls
 * made one after another cost a flag flip each, not a setTimeout + clearTimeout.
 * With a clock that cannot unreference timers, the timer is cancelled instead.
 */
class DeadlineQueue {
  private readonly clock: Clock;
  private entries: TimedCall<unknown>[] = [];
  private head = 0;
  private live = 0;
  private timer: TimerHandle | undefined;
  /** The timer is armed but unreferenced: no call is in flight. */
  private idle = false;
  private firing = false;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** Adds a call that started at `now` (the reading its deadline was computed from). */
  add(call: TimedCall<unknown>, now: number): void {
    // The clock first: if it throws (a custom clock refusing a timer), nothing was added.
    if (this.timer === undefined) {
      if (!this.firing) this.arm(call.deadline, now);
    } else if (this.idle) {
      // The idle timer is due at an older deadline, never a later one (same duration,
      // monotonic clock): it fires early, finds this call not yet due and re-arms.
      this.clock.keepAlive!(this.timer, true);
      this.idle = false;
    }
    this.entries.push(call);
    this.live++;
  }

  /** A call left the queue's care (settled or expired). */
  settled(): void {
    if (--this.live === 0) {
      this.entries = [];
      this.head = 0;
      const timer = this.timer;
      if (timer !== undefined) {
        // A call is settling: a clock that throws here must not stop it from settling.
        try {
          if (this.clock.keepAlive !== undefined) {
            this.clock.keepAlive(timer, false);
            this.idle = true;
          } else {
            this.timer = undefined;
            this.clock.cancel(timer);
          }
        } catch (bug) {
          queueMicrotask(() => {
            throw bug;
          });
        }
      }
    }
  }

  private arm(deadline: number, now: number): void {
    this.idle = false;
    this.timer = this.clock.schedule(this.fire, Math.max(0, deadline - now));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.idle = false;
    this.firing = true;
    const now = this.clock.now();
    try {
      while (this.head < this.entries.length) {
        const call = this.entries[this.head]!;
        if (call.settled) {
          this.head++;
        } else if (call.deadline <= now) {
          this.head++;
          call.expire();
        } else {
          break;
        }
      }
    } finally {
      this.firing = false;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    // Skip calls that settled meanwhile, then arm for the oldest live deadline.
    while (this.head < this.entries.length && this.entries[this.head]!.settled) this.head++;
    const next = this.entries[this.head];
    // A fresh reading: expiring calls ran their listeners.
    if (next !== undefined && this.timer === undefined) this.arm(next.deadline, this.clock.now());
  };
}

/** A timeout policy; create it with {@link timeout}. */
export class TimeoutPolicy extends PolicyBase {
  /** Always `'timeout'`. */
  readonly kind = 'timeout';
  /** The deadline in ms. */
  readonly ms: number;
  /** @internal */
  readonly queue: DeadlineQueue;
  readonly #clock: Clock;
  // Emitters are created on first subscription: an unobserved policy holds none (~180 B each).
  #timeout: Emitter<TimeoutEvent> | undefined;
  #late: Emitter<LateRejectionEvent> | undefined;

  /** Use {@link timeout} instead. @internal */
  constructor(options: TimeoutOptions) {
    super();
    this.ms = options.ms;
    this.#clock = options.clock ?? systemClock;
    this.queue = new DeadlineQueue(this.#clock);
  }

  /** Fires when a call's deadline expires. */
  get onTimeout(): Event<TimeoutEvent> {
    return (this.#timeout ??= new Emitter()).subscribe;
  }

  /**
   * Fires when work abandoned by an expired deadline rejects later with an error
   * of its own; that rejection is otherwise swallowed. It does not fire for work
   * that stopped as asked: a rejection with the `TimeoutError` itself, or, from
   * work that read its signal, an `AbortError` or an error whose `cause` is the
   * `TimeoutError`. So it means "work ignored its signal and failed anyway".
   */
  get onLateRejection(): Event<LateRejectionEvent> {
    return (this.#late ??= new Emitter()).subscribe;
  }

  /** @internal */
  timedOut(attempt: number): void {
    const emitter = this.#timeout;
    if (emitter !== undefined && emitter.active) emitter.emit({ timeoutMs: this.ms, attempt });
  }

  /** @internal */
  lateRejection(error: unknown): void {
    const emitter = this.#late;
    if (emitter !== undefined && emitter.active) emitter.emit({ error });
  }

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    const now = this.#clock.now();
    const call = new TimedCall<T>(this, scope, attempt, now + this.ms, chain.pipeline);
    const promise = new Promise<T>((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
    });
    if (!call.link()) {
      call.refuse(scope!.signal.reason); // the layer above already gave up
    } else {
      try {
        this.queue.add(call as TimedCall<unknown>, now);
        chain.next(index + 1, call, attempt).then(call.fulfil, call.fail);
      } catch (error) {
        call.refuse(error); // the clock refused a timer: the call never started
      }
    }
    return promise;
  }
}

/**
 * Rejects a call with `TimeoutError` when it has not settled within `ms`, and
 * aborts the work's signal with that same error as the reason. On success the
 * signal is left alone, so a response body can still be read afterwards.
 *
 * ```ts
 * const guarded = timeout({ ms: 2_000 });
 * const res = await guarded.execute(({ signal }) => fetch(url, { signal }));
 * ```
 */
export function timeout(options: TimeoutOptions): TimeoutPolicy {
  const checked = checkOptions<TimeoutOptions>('timeout', options, { ms: duration(1), clock: clockCheck }, ['ms'], {
    milliseconds: "p-timeout's milliseconds is ms",
    timeout: 'the deadline is ms',
  });
  return new TimeoutPolicy(checked as TimeoutOptions);
}

import { AsyncResource } from 'node:async_hooks';
import type { Clock, TimerHandle } from '../core/clock.ts';

interface FakeTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
  /** The async context `schedule` was called in: the callback runs in it, as a real timer's does. */
  readonly context: AsyncResource;
  keepAlive: boolean;
}

/** Lets every pending promise callback run: one macrotask turn drains the microtask queue. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that only moves when told to. Pass it as the `clock` option of every
 * policy under test, then drive time with {@link FakeClock.advance}: due timers
 * run in time order, and promise callbacks settle between them, so the code
 * under test sees time pass exactly as it would for real, only instantly.
 *
 * ```ts
 * const clock = new FakeClock();
 * const call = timeout({ ms: 100, clock }).execute(() => new Promise(() => {}));
 * await clock.advance(100); // the call is now rejected with TimeoutError
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, FakeTimer>();

  /** Starts the clock at `startMs` (default 0). */
  constructor(startMs = 0) {
    if (typeof startMs !== 'number' || !Number.isFinite(startMs)) {
      throw new TypeError(`FakeClock: startMs must be a finite number; received ${String(startMs)}`);
    }
    this.#now = startMs;
  }

  /** The current fake time in ms. */
  now(): number {
    return this.#now;
  }

  /**
   * Schedules `callback` at `now() + delayMs` (negative or NaN delays count as 0).
   * Like a real timer, it runs in the async context it was scheduled in, so
   * `AsyncLocalStorage` (and OpenTelemetry's active span) is what it was here.
   */
  schedule(callback: () => void, delayMs: number): TimerHandle {
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const id = ++this.#seq;
    this.#timers.set(id, { id, at: this.#now + delay, callback, context: new AsyncResource('FakeClockTimer', { requireManualDestroy: true }), keepAlive: true });
    return id;
  }

  /** Cancels a timer; unknown or already-run handles are ignored. */
  cancel(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Marks a timer as keeping the process alive or not, like Node's `ref()` / `unref()`. */
  keepAlive(handle: TimerHandle, keepAlive: boolean): void {
    const timer = this.#timers.get(handle as number);
    if (timer !== undefined) timer.keepAlive = keepAlive;
  }

  /**
   * How many timers are scheduled that would keep a process alive: the ones to
   * assert 0 at the end of a test. An idle timeout policy may leave one
   * unreferenced timer that ends by itself (see {@link FakeClock.scheduledTimers}).
   */
  get pendingTimers(): number {
    let n = 0;
    for (const timer of this.#timers.values()) if (timer.keepAlive) n++;
    return n;
  }

  /** How many timers are scheduled at all, referenced or not. */
  get scheduledTimers(): number {
    return this.#timers.size;
  }

  /** The time of the earliest scheduled timer, or `undefined` when none is. */
  get nextTimerAt(): number | undefined {
    return this.#next()?.at;
  }

  /**
   * Moves time forward by `ms`, running each timer that falls due in order of its
   * due time (then of scheduling), with the clock set to that due time, and
   * settling promise callbacks after each. Timers scheduled meanwhile run too if
   * they fall due within the window.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`FakeClock.advance: ms must be a finite number >= 0; received ${String(ms)}`);
    }
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const timer = this.#next();
      if (timer === undefined || timer.at > end) break;
      this.#timers.delete(timer.id);
      if (timer.at > this.#now) this.#now = timer.at;
      timer.context.runInAsyncScope(timer.callback);
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /** Advances to the earliest timer and runs it (and any due at the same time); returns false if none was scheduled. */
  async next(): Promise<boolean> {
    // Let pending promise callbacks run first: they may schedule the next timer.
    await settle();
    const timer = this.#next();
    if (timer === undefined) return false;
    await this.advance(Math.max(0, timer.at - this.#now));
    return true;
  }

  /**
   * Runs timers until none is left, up to `limit` of them (default 10,000), and
   * throws if timers keep coming back, which usually means an endless retry loop.
   */
  async runAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit; i++) {
      if (!(await this.next())) return;
    }
    throw new Error(`FakeClock.runAll: still ${this.#timers.size} timer(s) after running ${limit}`);
  }

  /** Lets pending promise callbacks run without moving time. */
  flush(): Promise<void> {
    return settle();
  }

  #next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const timer of this.#timers.values()) {
      if (best === undefined || timer.at < best.at || (timer.at === best.at && timer.id < best.id)) best = timer;
    }
    return best;
  }
}

/**
 * Time source used by every policy. Production code uses {@link systemClock};
 * tests drive `FakeClock` from `breakwater/testing` instead.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin; never goes backwards. */
  now(): number;
  /** Runs `callback` once after `delayMs` milliseconds and returns a handle for {@link Clock.cancel}. */
  schedule(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer returned by {@link Clock.schedule}; cancelling twice, or after it ran, is harmless. */
  cancel(handle: TimerHandle): void;
  /**
   * Optional. Lets a scheduled timer stop keeping the process alive (`false`) or
   * keep it alive again (`true`), like Node's `timeout.unref()` / `ref()`. A
   * timeout policy uses it to leave its timer armed but unreferenced between
   * calls, which is much cheaper than cancelling and re-arming it on every call.
   * Clocks without it get the timer cancelled instead.
   */
  keepAlive?(handle: TimerHandle, keepAlive: boolean): void;
}

/** Opaque handle of a scheduled timer. */
export type TimerHandle = unknown;

/** A source of uniformly distributed numbers in `[0, 1)`, like `Math.random`. */
export type RandomSource = () => number;

/**
 * The real clock: `performance.now()` for time, `setTimeout` for timers.
 * Timers it creates keep the process alive, because a caller is awaiting each of them.
 * The globals are looked up on every call, not cached, so test tools that replace
 * them (vi.useFakeTimers, @sinonjs/fake-timers) drive this clock too.
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  schedule: (callback: () => void, delayMs: number): TimerHandle => setTimeout(callback, delayMs),
  cancel: (handle: TimerHandle): void => clearTimeout(handle as ReturnType<typeof setTimeout>),
  keepAlive: (handle: TimerHandle, keepAlive: boolean): void => {
    const timer = handle as ReturnType<typeof setTimeout>;
    if (keepAlive) timer.ref();
    else timer.unref();
  },
});

/** The default random source: `Math.random`, read in this one place only. */
export const systemRandom: RandomSource = () => Math.random();

/**
 * A counter of the moments at which user code may run inside Breakwater's own
 * control flow: the work, a fallback factory, a `handle` or `retryAfter`
 * callback, an event listener. Two clock readings taken with no such moment in
 * between, in one chain of promise reactions, describe the same instant closely
 * enough to share (see `Chain._settledAt`).
 * @internal
 */
let current = 0;

/** The current moment. @internal */
export function moment(): number {
  return current;
}

/** Marks that user code is about to run. @internal */
export function userCodeRuns(): void {
  current = (current + 1) | 0;
}

/**
 * Marks a new turn of the event loop entering Breakwater: one of its timers
 * fired, or a signal it watches aborted. Time may have passed since any reading
 * taken before, even though no user code ran in between. @internal
 */
export function newTurn(): void {
  current = (current + 1) | 0;
}

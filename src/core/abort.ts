/**
 * One 'abort' listener per signal, shared by every call watching it.
 *
 * Node's EventTarget finds a listener to remove by walking the signal's list, so
 * when many concurrent calls each add and remove their own listener on one
 * long-lived signal (a server's shutdown signal, a request signal shared by a
 * fan-out), every call pays in proportion to how many others are in flight.
 * Here the signal carries a single listener; calls join and leave a Set in O(1).
 * The listener is removed as soon as the last watcher leaves, so the signal ends
 * with exactly the listeners it started with.
 * @internal
 */

/** Something to notify when a signal aborts (the same shape as an EventListener object). */
export interface AbortWatcher {
  handleEvent(): void;
}

class Fanout {
  readonly signal: AbortSignal;
  readonly watchers = new Set<AbortWatcher>();
  constructor(signal: AbortSignal) {
    this.signal = signal;
  }
  handleEvent(): void {
    fanouts.delete(this.signal);
    const watchers = [...this.watchers];
    this.watchers.clear();
    for (const watcher of watchers) {
      try {
        watcher.handleEvent();
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

const fanouts = new WeakMap<AbortSignal, Fanout>();

/** Notifies `watcher` when `signal` aborts. The caller checks `signal.aborted` first. */
export function watchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  let fanout = fanouts.get(signal);
  if (fanout === undefined) {
    fanout = new Fanout(signal);
    fanouts.set(signal, fanout);
    signal.addEventListener('abort', fanout, { once: true });
  }
  fanout.watchers.add(watcher);
}

/** Stops notifying `watcher`; harmless if it was not watching. */
export function unwatchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  const fanout = fanouts.get(signal);
  if (fanout === undefined || !fanout.watchers.delete(watcher)) return;
  if (fanout.watchers.size === 0) {
    fanouts.delete(signal);
    signal.removeEventListener('abort', fanout);
  }
}

/**
 * Settles with `promise`, or rejects with `signal.reason` as soon as `signal`
 * aborts, whichever comes first. The listener is removed when either happens,
 * and a late rejection of `promise` is observed (never unhandled).
 * @internal
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const race = { handleEvent: () => reject(signal.reason) };
    // The work may have aborted the signal while the call descended: that counts at once.
    if (signal.aborted) race.handleEvent();
    else watchAbort(signal, race);
    promise.then(
      (value) => {
        unwatchAbort(signal, race);
        resolve(value);
      },
      (error: unknown) => {
        unwatchAbort(signal, race);
        reject(error);
      },
    );
  });
}

/** Shared test helpers. */
import type { Clock } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';

/** Tracks how a promise settled, without ever leaving a rejection unhandled. */
export interface Tracked<T> {
  readonly promise: Promise<T>;
  settledCount: number;
  status: 'pending' | 'fulfilled' | 'rejected';
  value: T | undefined;
  error: unknown;
}

/** Observes `promise` and records how (and how often) it settles. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { promise, settledCount: 0, status: 'pending', value: undefined, error: undefined };
  promise.then(
    (value) => {
      t.settledCount++;
      t.status = 'fulfilled';
      t.value = value;
    },
    (error: unknown) => {
      t.settledCount++;
      t.status = 'rejected';
      t.error = error;
    },
  );
  return t;
}

/** A promise that never settles. */
export function never<T = never>(): Promise<T> {
  return new Promise<T>(() => {});
}

/** Resolves with `value` after `ms` of fake time, or rejects with the signal's reason on abort (at once if it already is). */
export function delayed<T>(clock: FakeClock, ms: number, value: T, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const handle = clock.schedule(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    }, ms);
    const onAbort = (): void => {
      clock.cancel(handle);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Counts the 'abort' listeners currently on a signal (Node's internal event target). */
export function abortListenerCount(signal: AbortSignal): number {
  const symbols = Object.getOwnPropertySymbols(signal);
  const kEvents = symbols.find((s) => s.description === 'kEvents');
  const events = kEvents ? (signal as unknown as Record<symbol, Map<string, { size: number }>>)[kEvents] : undefined;
  return events?.get('abort')?.size ?? 0;
}

/** A view of `clock` that counts the timers scheduled through it and still pending. */
export function countingClock(clock: FakeClock): Clock & { readonly pending: number } {
  const live = new Set<unknown>();
  return {
    now: () => clock.now(),
    schedule(callback, delayMs) {
      const handle: unknown = clock.schedule(() => {
        live.delete(handle);
        callback();
      }, delayMs);
      live.add(handle);
      return handle;
    },
    cancel(handle) {
      live.delete(handle);
      clock.cancel(handle);
    },
    get pending() {
      return live.size;
    },
  };
}

/**
 * Runs every timer, giving promise callbacks an extra turn to settle before each
 * one, so that work settling at the same virtual instant as a timer wins the race.
 */
export async function runAllTimers(clock: FakeClock): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    await clock.flush();
    if (!(await clock.next())) return;
  }
  throw new Error('timers keep coming');
}

/**
 * Builds the package's entry points from the sources as they are now into
 * `outDir` (not dist/, which another test may be rebuilding), with the settings
 * of tsup.config.ts, without type declarations.
 */
export async function buildSources(outDir: string, entries: readonly string[], format: ('esm' | 'cjs')[]): Promise<void> {
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('..', import.meta.url));
  const { build } = await import('tsup');
  await build({
    entry: Object.fromEntries(entries.map((e) => [e, join(root, `src/${e}.ts`)])),
    outDir,
    format,
    dts: false,
    config: false,
    silent: true,
    splitting: true,
    treeshake: true,
    target: 'node22',
    platform: 'node',
  });
}

/** Runs `body`, collecting errors rethrown on a later microtask (how Breakwater surfaces a listener's or a clock's bug). */
export async function surfacedErrors(body: () => Promise<void>): Promise<unknown[]> {
  const surfaced: unknown[] = [];
  const original = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (callback) =>
    original(() => {
      try {
        callback();
      } catch (error) {
        surfaced.push(error);
      }
    });
  try {
    await body();
    await null;
  } finally {
    globalThis.queueMicrotask = original;
  }
  return surfaced;
}

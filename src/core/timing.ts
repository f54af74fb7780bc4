/**
 * The timing of an observed pipeline's calls (a metrics sink, an `onSettled`
 * listener): the pipeline reads the start before its first layer runs and the
 * end one promise step after the call settles, and tells its recorders.
 */
import type { Clock } from './clock.ts';
import { isRejection, isTimeoutError } from './errors.ts';
import type { Emitter } from './events.ts';
import type { CallObserver, Chain } from './protocol.ts';

/** The outcome of a call, as counted in metrics. */
export type Outcome = 'success' | 'failure' | 'timeout' | 'rejected' | 'fallback' | 'cancelled';

/** Payload of a pipeline's `onSettled` event. */
export interface SettledEvent {
  /** How the call ended. `cancelled` means the caller aborted it. */
  readonly outcome: Outcome;
  /** Wall time of the whole call through the pipeline, in milliseconds. */
  readonly durationMs: number;
  /** The error the call rejected with (`undefined` on success or fallback). */
  readonly error: unknown;
}

/**
 * Receives each call's outcome and duration from a pipeline timing its calls.
 * @internal
 */
export interface CallRecorder {
  record(outcome: Outcome, durationMs: number): void;
}

const NO_RECORDERS: readonly CallRecorder[] = Object.freeze([]);

/** A pipeline's timing of its calls: reports each call's outcome and duration to its recorders and `onSettled` listeners. @internal */
export class Timing implements CallObserver {
  readonly clock: Clock;
  /** Made on the first `onSettled` subscription (~180 B): a pipeline with only a sink attached holds none. */
  settled: Emitter<SettledEvent> | undefined = undefined;
  recorders: readonly CallRecorder[] = NO_RECORDERS;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  start(): number {
    try {
      return this.clock.now();
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
      return NaN;
    }
  }

  watch<T>(chain: Chain<T>, promise: Promise<T>, startedAt: number): Promise<T> {
    return promise.then(
      (value) => {
        this.#report(chain, true, undefined, startedAt);
        return value;
      },
      (error: unknown) => {
        this.#report(chain, false, error, startedAt);
        throw error;
      },
    );
  }

  /** Never throws: a report that fails (a clock whose `now` throws) must not change the call's result. */
  #report(chain: Chain<unknown>, ok: boolean, error: unknown, startedAt: number): void {
    try {
      const durationMs = this.clock.now() - startedAt;
      const outcome = outcomeOf(chain, ok, error);
      const recorders = this.recorders;
      for (let i = 0; i < recorders.length; i++) recorders[i]!.record(outcome, durationMs);
      const settled = this.settled;
      if (settled !== undefined && settled.active) settled.emit({ outcome, durationMs, error: ok ? undefined : error });
    } catch (bug) {
      queueMicrotask(() => {
        throw bug;
      });
    }
  }
}

/** Classifies a settled call. @internal */
export function outcomeOf(chain: Chain<unknown>, ok: boolean, error: unknown): Outcome {
  if (ok) return chain.fellBack ? 'fallback' : 'success';
  if (chain.isCallerAbort(error)) return 'cancelled';
  if (isTimeoutError(error)) return 'timeout';
  if (isRejection(error)) return 'rejected';
  return 'failure';
}

/**
 * One call travelling through an adopted opossum breaker.
 * @internal
 */
import { unwatchAbort, watchAbort } from '../core/abort.ts';
import type { Chain, Scope } from '../core/protocol.ts';

/** What the breaker's action receives as its first argument: starts the guarded work. */
export type OpossumRun = (context?: unknown) => Promise<unknown>;

/**
 * What the breaker's action receives as its second argument. The work itself gets
 * Breakwater's own context whatever the action does with this one; it is there
 * for actions that want to log the attempt or read the signal.
 */
export interface OpossumCallContext {
  /** Aborted when the caller aborts or, if opossum's `timeout` is on, when opossum times this call out. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, and so on. */
  readonly attempt: number;
}

/**
 * The per-call object the adapter hands to `breaker.fire(run, context)`.
 *
 * When opossum's own `timeout` is on, it is also the cancellation scope of the
 * layers below: opossum never aborts a call it timed out (unless given a shared
 * `abortController`, which aborts every call of the breaker at once), so the
 * adapter aborts this one call's signal with the `TimeoutError` instead. Its
 * AbortController is created only if someone reads `signal`.
 * @internal
 */
export class OpossumCall implements Scope, OpossumCallContext {
  readonly attempt: number;
  /** Set when the breaker's action called `run`. */
  started = false;
  /** The function the breaker's action must call; it ignores its argument. */
  readonly run: OpossumRun;
  readonly #parent: Scope | undefined;
  /** True when this call is the scope of the layers below (opossum's timeout is on). */
  readonly #ownScope: boolean;
  #controller: AbortController | undefined;
  #parentSignal: AbortSignal | undefined;
  #settled = false;
  #timedOut = false;
  #timeoutError: unknown;

  constructor(chain: Chain<unknown>, index: number, parent: Scope | undefined, attempt: number, ownScope: boolean) {
    this.attempt = attempt;
    this.#parent = parent;
    this.#ownScope = ownScope;
    const below = ownScope ? this : parent;
    this.run = () => {
      this.started = true;
      return chain.next(index + 1, below, attempt);
    };
  }

  get signal(): AbortSignal {
    if (!this.#ownScope && this.#parent !== undefined) return this.#parent.signal;
    if (this.#controller === undefined) {
      const controller = (this.#controller = new AbortController());
      if (this.#timedOut) {
        controller.abort(this.#timeoutError);
      } else if (this.#ownScope && this.#parent !== undefined) {
        const parentSignal = this.#parent.signal;
        if (parentSignal.aborted) {
          controller.abort(parentSignal.reason);
        } else if (!this.#settled) {
          this.#parentSignal = parentSignal;
          watchAbort(parentSignal, this);
        }
      }
    }
    return this.#controller.signal;
  }

  /** The parent scope aborted while the call was running: pass its reason down unchanged. */
  handleEvent(): void {
    const parentSignal = this.#parentSignal;
    this.#parentSignal = undefined;
    if (parentSignal !== undefined) this.#controller?.abort(parentSignal.reason);
  }

  /** The call settled: stop listening to the parent scope. */
  finish(): void {
    this.#settled = true;
    const parentSignal = this.#parentSignal;
    if (parentSignal !== undefined) {
      this.#parentSignal = undefined;
      unwatchAbort(parentSignal, this);
    }
  }

  /** opossum timed the call out: abort this call's work with `error` as the reason. */
  expire(error: unknown): void {
    this.#timedOut = true;
    this.#timeoutError = error;
    this.finish();
    if (this.#ownScope) this.#controller?.abort(error);
  }
}

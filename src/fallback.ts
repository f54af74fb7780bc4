import { Emitter, type Event } from './events.ts';
import { type Chain, type Scope, settleWith } from './policy.ts';
import { userCodeRuns } from './moment.ts';
import { PolicyBase } from './pipeline.ts';
import { any, checkOptions, fn } from './validate.ts';

/** What a fallback factory receives. */
export interface FallbackContext {
  /** The error that made the call fall back. */
  readonly error: unknown;
  /** The call's signal at this layer (the caller's, or a fresh one if none was given). */
  readonly signal: AbortSignal;
}

/** Options of {@link fallback}: exactly one of `value` or `factory`. */
export type FallbackOptions<F> =
  | { readonly value: F; readonly factory?: undefined; readonly handle?: (error: unknown) => boolean }
  | {
      readonly factory: (context: FallbackContext) => F | PromiseLike<F>;
      readonly value?: undefined;
      readonly handle?: (error: unknown) => boolean;
    };

/** Payload of `onFallback`. */
export interface FallbackEvent {
  /** The error that was replaced by the fallback. */
  readonly error: unknown;
}

/** A fallback policy; create it with {@link fallback}. */
export class FallbackPolicy<F> extends PolicyBase<F> {
  /** Always `'fallback'`. */
  readonly kind = 'fallback';
  readonly #value: F | undefined;
  readonly #factory: ((context: FallbackContext) => F | PromiseLike<F>) | undefined;
  readonly #handle: ((error: unknown) => boolean) | undefined;
  // Created on first subscription: an unobserved policy holds no emitter (~180 B).
  #fallback: Emitter<FallbackEvent> | undefined;

  /** Use {@link fallback} instead. @internal */
  constructor(options: FallbackOptions<F>) {
    super();
    this.#value = options.value;
    this.#factory = options.factory;
    this.#handle = options.handle;
  }

  /** Fires each time the fallback replaces an error. */
  get onFallback(): Event<FallbackEvent> {
    return (this.#fallback ??= new Emitter()).subscribe;
  }

  /** Trust marker of the built-in policies (see `settlesPromptly` in policy.ts). @internal */
  _settlesPromptly(): void {}

  /** @internal */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | F> {
    let inner: Promise<T>;
    try {
      inner = chain.next(index + 1, scope, attempt);
    } catch (error) {
      inner = Promise.reject(error);
    }
    if (!chain._claimReport(index, this)) return inner.then(undefined, (error: unknown) => this.#recover(chain, scope, error));
    // The outermost layer of a timed pipeline: report the end from this reaction.
    return inner.then(
      (value) => {
        chain._settle(true, undefined);
        return value;
      },
      (error: unknown) => {
        let recovered: F | PromiseLike<F>;
        try {
          recovered = this.#recover(chain, scope, error);
        } catch (thrown) {
          chain._settle(false, thrown);
          throw thrown;
        }
        // An object or function may be a thenable (even one whose `then` getter
        // throws): a promise adopts it, and the end is reported when that settles.
        if (typeof recovered === 'object' ? recovered !== null : typeof recovered === 'function') {
          return settleWith(chain, Promise.resolve(recovered));
        }
        chain._settle(true, undefined);
        return recovered;
      },
    );
  }

  /** Replaces `error` with the fallback's value (or a promise of it), or rethrows it. */
  #recover(chain: Chain<unknown>, scope: Scope | undefined, error: unknown): F | PromiseLike<F> {
    userCodeRuns(); // `handle` and the factory may run below
    // The caller's own abort is never replaced: they asked to stop.
    if (chain.isCallerAbort(error)) throw error;
    if (scope !== undefined && scope.signal.aborted) throw error; // the layer above gave up on this attempt: its result goes nowhere
    if (this.#handle !== undefined && !this.#handle(error)) throw error;
    chain.markFallback();
    const emitter = this.#fallback;
    if (emitter !== undefined && emitter.active) emitter.emit({ error });
    if (this.#factory === undefined) return this.#value as F;
    const signal = scope !== undefined ? scope.signal : new AbortController().signal;
    return this.#factory({ error, signal });
  }
}

/**
 * Replaces a failed call's error with a value: a constant (`value`) or one made
 * from the error (`factory`). By default it handles every error except the
 * caller's own abort; `handle(error)` narrows that.
 *
 * ```ts
 * const profile = pipeline(fallback({ value: { name: 'guest' } }), timeout({ ms: 300 }));
 * ```
 */
export function fallback<F>(options: FallbackOptions<F>): FallbackPolicy<F> {
  const checked = checkOptions<FallbackOptions<F>>('fallback', options, { value: any, factory: fn, handle: fn });
  const hasValue = options !== null && typeof options === 'object' && Object.prototype.hasOwnProperty.call(options, 'value');
  if (hasValue === (checked.factory !== undefined)) {
    throw new TypeError(
      `fallback: give exactly one of the options "value" or "factory"; received ${hasValue ? 'both' : 'neither'}`,
    );
  }
  if (hasValue) (checked as { value?: F }).value = (options as { value: F }).value;
  return new FallbackPolicy(checked as FallbackOptions<F>);
}

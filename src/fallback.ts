import { Emitter, type Event } from './core/events.ts';
import { type Chain, PolicyBase, type Scope } from './core/protocol.ts';
import { any, checkOptions, fn } from './core/validate.ts';

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

  /** Layer protocol: pipelines call it (see {@link Policy._run}). */
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | F> {
    return chain.next(index + 1, scope, attempt).then(undefined, (error: unknown) => this.#recover(chain, scope, error));
  }

  /** Replaces `error` with the fallback's value (or a promise of it), or rethrows it. */
  #recover(chain: Chain<unknown>, scope: Scope | undefined, error: unknown): F | PromiseLike<F> {
    // The caller's own abort is never replaced (they asked to stop), nor a call a layer
    // above gave up on (its result goes nowhere).
    if (chain.isStoppedFromOutside(error, scope)) throw error;
    if (this.#handle !== undefined && !this.#handle(error)) throw error;
    chain.fellBack = true;
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

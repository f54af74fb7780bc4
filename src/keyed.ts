/**
 * Keyed pipelines: one pipeline per host, tenant or other key, created on first
 * use and kept for a bounded number of live keys (the least recently used key is
 * evicted first).
 */
import { Emitter, type Event } from './core/events.ts';
import { type Pipeline, PIPELINE_NAME, pipeline } from './core/pipeline.ts';
import type { ExecuteOptions, ExtraResult, Policy, Work } from './core/protocol.ts';
import { checkOptions, fn, integer, received, satisfies } from './core/validate.ts';

/** Options of {@link keyed}; `P` is the type of the policies `create` returns. */
export interface KeyedOptions<P extends Policy<any> = Policy<any>> {
  /**
   * The base name: the pipeline of key `k` is named `name:k` (its `pipeline` label
   * in metrics). Same rule as a pipeline name, at most 60 characters.
   */
  readonly name: string;
  /**
   * Makes the policies of a new key's pipeline, outermost first. Called once per
   * key when it is first used (and again if it comes back after an eviction); it
   * must return fresh policy instances, never ones another key already uses.
   */
  readonly create: (key: string) => readonly P[];
  /**
   * How many keys may be live at once (default 100; 1 to 10,000). Using one more
   * evicts the least recently used key: its pipeline is disposed, so its series
   * leave the metrics, and its calls still in flight finish on it. The metrics
   * series of a keyed pipeline are bounded by this number, whatever the keys.
   */
  readonly maxKeys?: number;
}

/** Payload of `onCreate` and `onEvict`. */
export interface KeyedEvent {
  /** The key. */
  readonly key: string;
  /** Its pipeline, named `name:key`. */
  readonly pipeline: Pipeline<unknown>;
}

/** The rule a key must follow: it becomes part of a metrics label value. */
const KEY = /^[A-Za-z0-9_.:/-]{1,39}$/;

/** Pipelines per key, created on demand; create them with {@link keyed}. `R` is what the policies can produce besides the work's result. */
export class KeyedPipeline<R = never> {
  /** Always `'keyed'`. */
  readonly kind = 'keyed';
  /** The base name. */
  readonly name: string;
  /** How many keys may be live at once. */
  readonly maxKeys: number;
  readonly #create: (key: string) => readonly Policy<any>[];
  /** Live keys, least recently used first (a Map keeps insertion order). */
  readonly #live = new Map<string, Pipeline<R>>();
  /** Every policy a live or evicted pipeline was built with: a key must never share another's. */
  readonly #used = new WeakSet<Policy<unknown>>();
  readonly #created = new Emitter<KeyedEvent>();
  readonly #evicted = new Emitter<KeyedEvent>();
  #disposed = false;

  /** Use {@link keyed} instead. @internal */
  constructor(options: Required<KeyedOptions>) {
    // R is the extra result of the policies `create` makes: checked by `keyed`'s signature.
    this.name = options.name;
    this.maxKeys = options.maxKeys;
    this.#create = options.create;
  }

  /** Keys live now. */
  get size(): number {
    return this.#live.size;
  }

  /** The live keys, least recently used first. */
  keys(): string[] {
    return [...this.#live.keys()];
  }

  /** Fires when a key's pipeline is created (a metrics sink attaches it then). */
  get onCreate(): Event<KeyedEvent> {
    return this.#created.subscribe;
  }

  /** Fires when a key's pipeline is evicted or deleted, after it was disposed. */
  get onEvict(): Event<KeyedEvent> {
    return this.#evicted.subscribe;
  }

  /** Runs `fn` through the pipeline of `key`, creating it if needed. */
  execute<T>(key: string, fn: Work<T>, options?: ExecuteOptions): Promise<T | R> {
    return this.get(key).execute(fn, options);
  }

  /**
   * The pipeline of `key`, created if needed; it becomes the most recently used.
   * Throws for a key that is not 1 to 39 letters, digits or `_ . : / -`.
   */
  get(key: string): Pipeline<R> {
    if (this.#disposed) throw new Error(`keyed "${this.name}": disposed; it runs no more calls`);
    const found = this.#live.get(key);
    if (found !== undefined) {
      this.#live.delete(key);
      this.#live.set(key, found);
      return found;
    }
    if (typeof key !== 'string' || !KEY.test(key)) {
      throw new TypeError(`keyed "${this.name}": a key must be 1 to 39 letters, digits or _ . : / -; received ${received(key)}`);
    }
    const created = this.#build(key);
    this.#live.set(key, created);
    if (this.#live.size > this.maxKeys) this.#evict(this.#live.keys().next().value!);
    if (this.#created.active) this.#created.emit({ key, pipeline: created as Pipeline<unknown> });
    return created;
  }

  /** Evicts `key` now, if it is live. Returns whether it was. */
  delete(key: string): boolean {
    if (!this.#live.has(key)) return false;
    this.#evict(key);
    return true;
  }

  /** Disposes every key's pipeline and refuses later calls. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const key of [...this.#live.keys()]) this.#evict(key);
  }

  #build(key: string): Pipeline<R> {
    const policies = this.#create(key);
    if (!Array.isArray(policies)) {
      throw new TypeError(`keyed "${this.name}": create("${key}") must return an array of policies; received ${received(policies)}`);
    }
    for (const policy of policies) {
      if (typeof policy === 'object' && policy !== null && this.#used.has(policy)) {
        throw new TypeError(
          `keyed "${this.name}": create("${key}") returned a ${policy.kind} instance another key already uses; make new policies in create`,
        );
      }
    }
    const built = pipeline({ name: `${this.name}:${key}` }, ...policies) as Pipeline<unknown> as Pipeline<R>;
    for (const policy of policies) this.#used.add(policy);
    return built;
  }

  #evict(key: string): void {
    const pipeline = this.#live.get(key)!;
    this.#live.delete(key);
    pipeline.dispose();
    if (this.#evicted.active) this.#evicted.emit({ key, pipeline: pipeline as Pipeline<unknown> });
  }
}

/**
 * One pipeline per key (a host, a tenant), created on first use by `create`,
 * for at most `maxKeys` live keys: using one more evicts the least recently used
 * key and disposes its pipeline, so its timers and metrics series go with it.
 *
 * ```ts
 * const upstreams = keyed({
 *   name: 'upstream',
 *   maxKeys: 50,
 *   create: () => [circuitBreaker(), timeout({ ms: 500 })],
 * });
 * await upstreams.execute('api.example.com', ({ signal }) => fetch('https://api.example.com/', { signal }));
 * ```
 */
export function keyed<P extends Policy<any>>(options: KeyedOptions<P>): KeyedPipeline<ExtraResult<P>> {
  const checked = checkOptions<KeyedOptions>(
    'keyed',
    options,
    {
      name: satisfies(
        'a string of 1 to 60 letters, digits or _ . : / - starting with a letter or digit (with the key, it becomes a metrics label value)',
        (v) => typeof v === 'string' && v.length <= 60 && PIPELINE_NAME.test(v),
      ),
      create: fn,
      maxKeys: integer(1, 10_000),
    },
    ['name', 'create'],
  );
  return new KeyedPipeline({ name: checked.name!, create: checked.create! as KeyedOptions['create'], maxKeys: checked.maxKeys ?? 100 });
}

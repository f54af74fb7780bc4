
/** A function called with an event's payload. */
export type Listener<E> = (event: E) => void;

/** Removes the listener it was returned for; calling it again does nothing. */
export type Disposer = () => void;

/** Subscribes a listener and returns its {@link Disposer}. */
export type Event<E> = (listener: Listener<E>) => Disposer;

const NONE: readonly never[] = Object.freeze([]);

/**
 * A tiny listener set. Policies test {@link Emitter.active} before building a
 * payload, so an event nobody listens to costs one property read.
 * A listener that throws cannot break the call that emitted the event: its error
 * is rethrown on a later microtask, where the process's normal handling sees it.
 */
export class Emitter<E> {
  private listeners: readonly Listener<E>[] = NONE;
  private subscriber: Event<E> | undefined;
  /** True while at least one listener is subscribed. */
  active = false;

  /** The subscribe function to expose as `onSomething` (made on first use, then reused). */
  get subscribe(): Event<E> {
    return (this.subscriber ??= (listener) => this.add(listener));
  }

  private add(listener: Listener<E>): Disposer {
    if (typeof listener !== 'function') {
      throw new TypeError(`listener must be a function; received ${describe(listener)}`);
    }
    this.listeners = [...this.listeners, listener];
    this.active = true;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const index = this.listeners.indexOf(listener);
      if (index >= 0) {
        const rest = this.listeners.filter((_, i) => i !== index);
        this.listeners = rest.length > 0 ? rest : NONE;
        this.active = rest.length > 0;
      }
    };
  }

  /** Calls every listener with `event`. */
  emit(event: E): void {
    const listeners = this.listeners; // copy-on-write: safe if a listener unsubscribes
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i]!(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value;
}

/**
 * The guarded work every scenario runs, shared by Breakwater and the peers so
 * that they all do exactly the same thing.
 */

/** The value a successful call resolves with; scenarios check it. */
export const RESULT = 42;

/** A successful async call that does nothing else: the "bare call". */
export async function work(): Promise<number> {
  return RESULT;
}

/** The error class failing work throws, so scenarios can check what came back. */
export class WorkError extends Error {
  override readonly name = 'WorkError';
}

/** A failing async call: creates one error (with its stack) and rejects with it. */
export async function failingWork(): Promise<number> {
  throw new WorkError('boom');
}

/** Swallows a rejection (the failure-path scenarios expect one). */
export function ignore(): void {}

/** Work that yields to the event loop once, like a call that waits for I/O. */
export function ioWork(): Promise<number> {
  return new Promise((resolve) => setImmediate(resolve, RESULT));
}

/** How deep the failure-path call sites are: deeper than `Error.stackTraceLimit` (10). */
export const CALLER_FRAMES = 12;

/**
 * `fn` called from `frames` nested function frames, like a call made from a
 * service's handler (HTTP server, framework, routing, handler...). Every error
 * then captures a full stack (`Error.stackTraceLimit` frames) whoever made the
 * call, as in production; from a shallow call site, a library's own frames
 * would make the work's `new Error()` dearer, which is stack capture, not the
 * library's work.
 */
export function fromDeepStack<T>(fn: () => T, frames = CALLER_FRAMES): () => T {
  let call = fn;
  for (let i = 0; i < frames; i++) {
    const inner = call;
    call = function frame(): T {
      return inner();
    };
  }
  return call;
}

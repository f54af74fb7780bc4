/**
 * The gate on `node:http`: admitting a request holds its permit until the
 * response closes (sent, or the client went away); shedding answers `503` with
 * `Retry-After` before anything else runs. The Express middleware and the
 * Fastify plugin use the same two steps.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatePermit, GateRequest, HttpGate } from './gate.ts';

/** What the gate does with a response: a `node:http` `ServerResponse` has all of it. */
export interface GateResponse {
  /** Whether the status line and headers went out. */
  readonly headersSent: boolean;
  /** Whether `end()` was called. */
  readonly writableEnded: boolean;
  /** Whether the whole response was handed to the connection. */
  readonly writableFinished: boolean;
  /** The status code sent, or to send. */
  statusCode: number;
  /** Sets a header before the head goes out. */
  setHeader(name: string, value: string): unknown;
  /** Ends the response. */
  end(chunk?: string): unknown;
  /** Closes the connection under the response. */
  destroy(error?: Error): unknown;
  /** `'close'`: the response is over, sent or not. */
  once(event: 'close', listener: () => void): unknown;
}

/** The body of a shed request's `503`. @internal */
export const SHED_BODY = 'Service Unavailable: the server is at its concurrency limit; retry later\n';
const SHED_LENGTH = String(Buffer.byteLength(SHED_BODY));

/** Answers a shed request: `503`, `Retry-After`, a short text body. @internal */
export function shed(gate: HttpGate, res: GateResponse): void {
  res.statusCode = 503;
  res.setHeader('retry-after', String(gate.retryAfterSeconds));
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', SHED_LENGTH);
  res.end(SHED_BODY);
}

/**
 * Admits `req` through `gate` or sheds it (answering `503` itself); see {@link hold}.
 * Returns a function to call when the handler fails, or `undefined` when it was shed.
 * @internal
 */
export function admit(gate: HttpGate, req: GateRequest, res: GateResponse): ((error: unknown) => void) | undefined {
  const permit = gate.tryAcquire(gate.classOf(req));
  if (permit === undefined) {
    shed(gate, res);
    return undefined;
  }
  return hold(gate, permit, req, res);
}

/**
 * Holds an admitted request's permit until `res` closes, then releases it
 * once: as a drop when the handler itself answered `503`, as abandoned when the
 * response did not finish or the returned function was called (the handler
 * failed: it answers `500`, or closes the connection if the response had
 * started, and reports the error), otherwise as a success.
 * @internal
 */
export function hold(gate: HttpGate, permit: GatePermit, req: GateRequest, res: GateResponse): (error: unknown) => void {
  let failed = false;
  res.once('close', () => {
    permit.release(failed || !res.writableFinished ? 'abandoned' : res.statusCode === 503 ? 'dropped' : 'ok');
  });
  return (error) => {
    if (failed) return;
    failed = true;
    if (!res.headersSent && !res.writableEnded) {
      res.statusCode = 500;
      res.end();
    } else if (!res.writableEnded) {
      res.destroy();
    }
    gate._report(error, req);
  };
}

/** A `node:http` request listener, sync or async. */
export type RequestListener<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse> = (
  request: Req,
  response: Res,
) => unknown;

/**
 * Wraps a `node:http` request listener in `gate`: a request over the limit is
 * answered `503` with `Retry-After` and the listener never sees it; an
 * admitted one holds its slot until its response closes. If the listener
 * throws or its promise rejects, the gate answers `500` (or closes the
 * connection if the response had started) and passes the error to the gate's
 * `onError`.
 *
 * ```ts
 * const server = createServer(gateListener(gate, (request, response) => response.end('ok')));
 * ```
 */
export function gateListener<Req extends IncomingMessage, Res extends ServerResponse>(
  gate: HttpGate,
  listener: RequestListener<Req, Res>,
): RequestListener<Req, Res> {
  if (typeof listener !== 'function') throw new TypeError(`gateListener: the listener must be a function; received ${typeof listener}`);
  return (request, response) => {
    const fail = admit(gate, request, response);
    if (fail === undefined) return;
    let result: unknown;
    try {
      result = listener(request, response);
    } catch (error) {
      fail(error);
      return;
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') (result as PromiseLike<unknown>).then(undefined, fail);
  };
}

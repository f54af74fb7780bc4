/**
 * The gate as an Express middleware and as a Fastify plugin. Neither imports
 * its framework: they take the parts of its request and response they use,
 * which Express 5 and Fastify 5 (optional peers) provide.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpGate } from './gate.ts';
import { admit, hold, SHED_BODY } from './node.ts';

/** An Express-style middleware: `(request, response, next)`. */
export type GateMiddleware = (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void;

/**
 * An Express middleware that runs `gate` on every request it sees: over the
 * limit, the request is answered `503` with `Retry-After` and no later
 * middleware runs; admitted, it holds its slot until the response closes.
 * Put it first, before body parsers and routes, so a shed request costs
 * nothing else. Handler errors are left to Express's error handling.
 *
 * ```ts
 * app.use(gateMiddleware(gate));
 * ```
 */
export function gateMiddleware(gate: HttpGate): GateMiddleware {
  checkGate('gateMiddleware', gate);
  return (request, response, next) => {
    if (admit(gate, request, response) !== undefined) next();
  };
}

/** The part of a Fastify reply the plugin uses. */
export interface FastifyReplyLike {
  /** The `node:http` response under the reply. */
  readonly raw: ServerResponse;
  /** Sets the status code. */
  code(statusCode: number): FastifyReplyLike;
  /** Sets a header. */
  header(name: string, value: string): FastifyReplyLike;
  /** Sends the reply. */
  send(payload?: string): FastifyReplyLike;
}

/** The part of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  /** Adds a hook; the plugin adds one `onRequest` hook. */
  addHook(
    name: 'onRequest',
    hook: (request: { readonly raw: IncomingMessage }, reply: FastifyReplyLike, done: (error?: Error) => void) => void,
  ): unknown;
}

/** A Fastify plugin, registered with `app.register(plugin)`; it applies to the whole instance (not encapsulated). */
export interface GatePlugin {
  /** Fastify calls it with the instance the plugin is registered on. */
  (instance: FastifyInstanceLike, options: unknown, done: (error?: Error) => void): void;
}

/**
 * A Fastify plugin that runs `gate` in an `onRequest` hook, the first step of
 * Fastify's request lifecycle: over the limit, the request is answered `503`
 * with `Retry-After` through the reply, before parsing and handlers;
 * admitted, it holds its slot until the response closes. It applies to every
 * route of the instance it is registered on, as `fastify-plugin` would make it.
 *
 * ```ts
 * await app.register(gatePlugin(gate));
 * ```
 */
export function gatePlugin(gate: HttpGate): GatePlugin {
  checkGate('gatePlugin', gate);
  const plugin: GatePlugin = (instance, _options, done) => {
    instance.addHook('onRequest', (request, reply, next) => {
      const permit = gate.tryAcquire(gate.classOf(request.raw));
      if (permit === undefined) {
        reply.code(503).header('retry-after', String(gate.retryAfterSeconds)).header('content-type', 'text/plain; charset=utf-8').send(SHED_BODY);
        return;
      }
      hold(gate, permit, request.raw, reply.raw);
      next();
    });
    done();
  };
  // What fastify-plugin sets: the hook reaches every route, not only this plugin's own context.
  Object.defineProperty(plugin, Symbol.for('skip-override'), { value: true });
  Object.defineProperty(plugin, Symbol.for('fastify.display-name'), { value: `breakwater-http-gate(${gate.name})` });
  return plugin;
}

function checkGate(owner: string, gate: unknown): void {
  if (typeof gate !== 'object' || gate === null || (gate as { kind?: unknown }).kind !== 'http-gate') {
    throw new TypeError(`${owner}: expected a gate made by httpGate(); received ${gate === null ? 'null' : typeof gate}`);
  }
}

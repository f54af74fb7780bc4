/**
 * `breakwater/http`: admission control for HTTP servers. A gate keeps at most
 * a fixed or adaptive number of requests in flight; over it, requests are
 * answered `503` with `Retry-After` at once, before any handler work. Priority
 * classes keep a share of the limit for health checks or critical routes, so
 * the other requests are shed first. For `node:http`, Express 5 and Fastify 5.
 * See docs/reference/http.md.
 *
 * ```ts
 * import { createServer } from 'node:http';
 * import { gateListener, httpGate } from 'breakwater/http';
 *
 * const gate = httpGate({ name: 'api', maxConcurrent: 64 });
 * const server = createServer(gateListener(gate, (request, response) => response.end('ok')));
 * ```
 * @packageDocumentation
 */
export {
  DEFAULT_CLASS,
  type GatePermit,
  type GateRequest,
  HTTP_GATE_DEFAULTS,
  type HttpGate,
  type HttpGateAdaptiveOptions,
  type HttpGateClass,
  type HttpGateClassStats,
  httpGate,
  type HttpGateOptions,
  type ShedEvent,
} from './gate.ts';
export { type GateResponse, gateListener, type RequestListener } from './node.ts';
export { type FastifyInstanceLike, type FastifyReplyLike, gateMiddleware, type GateMiddleware, gatePlugin, type GatePlugin } from './frameworks.ts';

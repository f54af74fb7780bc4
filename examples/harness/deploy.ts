/**
 * Runs a set of services, either as real `node:http` servers on 127.0.0.1
 * (random ports, one process) or on an in-memory transport driven by a clock
 * (`FakeClock` in tests: latency is `clock.schedule`, no sockets). The service
 * code is the same in both; the harness adds what a real deployment has around
 * it: a worker pool per service, the network, injected faults and `/metrics`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { type Clock, type Pipeline, type RandomSource, systemClock } from '../../src/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { FaultPlan } from './faults.ts';
import type {
  CallOptions,
  FaultWindow,
  Handler,
  HttpRequest,
  HttpResponse,
  RequestContext,
  ServiceEnv,
  ServiceSpec,
} from './types.ts';

/** Options of {@link deploy}. */
export interface DeployOptions {
  /** `'http'`: real servers on 127.0.0.1; `'memory'`: in-memory transport on `clock`. */
  readonly transport: 'http' | 'memory';
  /** Required for `'memory'` (a `FakeClock`); `'http'` uses the system clock unless given. */
  readonly clock?: Clock;
  /** Random source for faults and for services' policies (default `Math.random`; pass `seededRandom(n)` in tests). */
  readonly random?: RandomSource;
  /** The fault timeline (ms since the deployment started). */
  readonly faults?: readonly FaultWindow[];
  /** In-memory only: round-trip network time of one call, in ms (default 1). */
  readonly networkLatencyMs?: number;
  /** Serve Breakwater metrics on each service's `/metrics` (default: true for http, false for memory). */
  readonly metrics?: boolean;
}

/** A running set of services. */
export interface Deployment {
  readonly transport: 'http' | 'memory';
  readonly clock: Clock;
  /** The fault timeline; {@link FaultPlan.add} adds faults while it runs. */
  readonly faults: FaultPlan;
  /** ms since the deployment started: the time base of faults, arrivals and records. */
  elapsedMs(): number;
  /** Calls a service from outside (the load generator's entry point). Same semantics as {@link ServiceEnv.call}. */
  call(service: string, request: HttpRequest, options?: CallOptions): Promise<HttpResponse>;
  /** Arrival times (ms since start) of every request that reached `service`, `/metrics` excluded, in order. */
  arrivals(service: string): readonly number[];
  /** Base URL of each service (`http://127.0.0.1:PORT`); empty for memory. */
  readonly urls: Readonly<Record<string, string>>;
  /** The prom-client registry of a service (undefined when metrics are off). */
  registry(service: string): Registry | undefined;
  /** Stops every server, rejects pending sleeps and calls, aborts requests in flight. */
  close(): Promise<void>;
}

/** The body of a harness-made response (fault, overload, crash). */
export interface HarnessErrorBody {
  readonly error: string;
}

class ShutdownError extends Error {
  override readonly name = 'ShutdownError';
  constructor() {
    super('the deployment was closed');
  }
}

/** A worker pool: `size` running, `queueLimit` waiting, waiters leave when their signal aborts. */
class WorkerPool {
  readonly #size: number;
  readonly #queueLimit: number;
  #busy = 0;
  readonly #waiting = new Set<() => void>();
  constructor(size: number, queueLimit: number) {
    this.#size = size;
    this.#queueLimit = queueLimit;
  }
  /** Resolves true with a worker, false when the queue is full; rejects when `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (this.#busy < this.#size) {
      this.#busy++;
      return Promise.resolve(true);
    }
    if (this.#waiting.size >= this.#queueLimit) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      };
      const onAbort = (): void => {
        this.#waiting.delete(grant);
        reject(signal.reason);
      };
      this.#waiting.add(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
  release(): void {
    const next = this.#waiting.values().next();
    if (!next.done) {
      this.#waiting.delete(next.value);
      next.value(); // the worker passes straight to the waiter
    } else {
      this.#busy--;
    }
  }
}

function sleepOn(clock: Clock, ms: number, signals: (AbortSignal | undefined)[]): Promise<void> {
  for (const s of signals) if (s?.aborted) return Promise.reject(s.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (event: Event): void => {
      clock.cancel(handle);
      for (const s of signals) s?.removeEventListener('abort', onAbort);
      reject((event.target as AbortSignal).reason);
    };
    const handle = clock.schedule(() => {
      for (const s of signals) s?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    for (const s of signals) s?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `Retry-After` in whole seconds (HTTP's unit), rounded up so a client never comes back early. */
export function retryAfterHeader(ms: number): Record<string, string> {
  return { 'retry-after': String(Math.ceil(ms / 1000)) };
}

function json(status: number, body: unknown, headers?: Record<string, string>): HttpResponse {
  return headers === undefined ? { status, body } : { status, body, headers };
}

/** One service inside a deployment: faults, worker pool and handler. */
class ServiceHost {
  readonly name: string;
  readonly arrivals: number[] = [];
  readonly registry: Registry | undefined;
  readonly env: ServiceEnv;
  readonly #handler: Handler;
  readonly #pool: WorkerPool | undefined;
  readonly #runtime: Runtime;

  constructor(spec: ServiceSpec, runtime: Runtime, withMetrics: boolean) {
    this.name = spec.name;
    this.#runtime = runtime;
    const workers = spec.workers ?? Infinity;
    this.#pool = Number.isFinite(workers) ? new WorkerPool(workers, spec.queue ?? Infinity) : undefined;
    this.registry = withMetrics ? new Registry() : undefined;
    const sink = this.registry === undefined ? undefined : prometheusMetrics({ registry: this.registry });
    const name = spec.name;
    this.env = Object.freeze({
      name,
      clock: runtime.clock,
      random: runtime.random,
      call: (service: string, request: HttpRequest, options?: CallOptions) => runtime.call(service, request, options),
      sleep: (ms: number, signal?: AbortSignal) => sleepOn(runtime.clock, ms, [signal, runtime.shutdown]),
      instrument: <P extends Pipeline<unknown>>(pipeline: P): P => {
        sink?.attach(pipeline);
        return pipeline;
      },
      elapsedMs: () => runtime.elapsedMs(),
    });
    this.#handler = spec.create(this.env);
  }

  /** Handles one arriving request; `signal` aborts when its caller goes away. */
  async handle(request: HttpRequest, signal: AbortSignal): Promise<HttpResponse> {
    const runtime = this.#runtime;
    if (request.path === '/metrics' && this.registry !== undefined) {
      return { status: 200, headers: { 'content-type': this.registry.contentType }, body: await this.registry.metrics() };
    }
    const now = runtime.elapsedMs();
    this.arrivals.push(now);
    const fault = runtime.faults.decide(this.name, request.path, now);
    if (fault.kind === 'error') {
      const body = { error: 'injected fault' } satisfies HarnessErrorBody;
      return fault.retryAfterMs === undefined ? json(fault.status, body) : json(fault.status, body, retryAfterHeader(fault.retryAfterMs));
    }
    if (fault.kind === 'hang') await sleepOn(runtime.clock, fault.releaseAtMs - now, [signal]);
    else if (fault.kind === 'latency') await sleepOn(runtime.clock, fault.addMs, [signal]);
    const pool = this.#pool;
    if (pool !== undefined && !(await pool.acquire(signal))) {
      return json(503, { error: `${this.name}: overloaded (all workers busy, queue full)` } satisfies HarnessErrorBody, {
        'x-overloaded': '1',
      });
    }
    try {
      const context: RequestContext = { ...this.env, signal };
      return await this.#handler(request, context);
    } catch (error) {
      return json(500, { error: `${this.name}: ${error instanceof Error ? error.message : String(error)}` } satisfies HarnessErrorBody);
    } finally {
      pool?.release();
    }
  }
}

/** What the hosts share. */
interface Runtime {
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly faults: FaultPlan;
  readonly shutdown: AbortSignal;
  elapsedMs(): number;
  call(service: string, request: HttpRequest, options?: CallOptions): Promise<HttpResponse>;
}

/**
 * Starts `services` on the chosen transport. Service names must be unique.
 *
 * ```ts
 * const d = await deploy([auth, gateway], { transport: 'memory', clock: new FakeClock() });
 * ```
 */
export async function deploy(services: readonly ServiceSpec[], options: DeployOptions): Promise<Deployment> {
  const names = new Set<string>();
  for (const s of services) {
    if (names.has(s.name)) throw new TypeError(`deploy: two services are named "${s.name}"`);
    names.add(s.name);
  }
  if (options.transport !== 'http' && options.transport !== 'memory') {
    throw new TypeError(`deploy: "transport" must be "http" or "memory"; received ${String(options.transport)}`);
  }
  if (options.transport === 'memory' && options.clock === undefined) {
    throw new TypeError('deploy: the memory transport needs a "clock" (a FakeClock)');
  }
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const startedAt = clock.now();
  const shutdownController = new AbortController();
  const hosts = new Map<string, ServiceHost>();
  let send: (service: string, request: HttpRequest, options?: CallOptions) => Promise<HttpResponse> = () =>
    Promise.reject(new Error('deploy: not started'));
  const runtime: Runtime = {
    clock,
    random,
    faults: new FaultPlan(options.faults ?? [], random),
    shutdown: shutdownController.signal,
    elapsedMs: () => clock.now() - startedAt,
    call: (service, request, callOptions) => send(service, request, callOptions),
  };
  const withMetrics = options.metrics ?? options.transport === 'http';
  for (const spec of services) hosts.set(spec.name, new ServiceHost(spec, runtime, withMetrics));

  let urls: Record<string, string> = {};
  let stop: () => Promise<void>;
  if (options.transport === 'memory') {
    send = memoryTransport(hosts, runtime, options.networkLatencyMs ?? 1);
    stop = async () => {};
  } else {
    const started = await httpTransport(hosts, runtime);
    send = started.send;
    urls = started.urls;
    stop = started.stop;
  }
  return {
    transport: options.transport,
    clock,
    faults: runtime.faults,
    elapsedMs: runtime.elapsedMs,
    call: runtime.call,
    arrivals: (service) => hosts.get(service)?.arrivals ?? [],
    urls: Object.freeze(urls),
    registry: (service) => hosts.get(service)?.registry,
    close: async () => {
      if (!shutdownController.signal.aborted) shutdownController.abort(new ShutdownError());
      await stop();
    },
  };
}

/** One transport call's way out: settled once, by the transport or by the first signal to abort. */
interface CallEnd {
  /** True once the call has settled either way. */
  readonly done: () => boolean;
  readonly resolve: (response: HttpResponse) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Ends a call at most once: through the returned `resolve`/`reject`, or when the
 * caller's `signal` or the deployment's `shutdown` aborts, after `tearDown(reason)`
 * has dropped the call's network side. Both abort listeners go either way.
 */
function endOnce(
  signal: AbortSignal | undefined,
  shutdown: AbortSignal,
  resolve: (response: HttpResponse) => void,
  reject: (error: unknown) => void,
  tearDown: (reason: unknown) => void,
): CallEnd {
  let done = false;
  const finish = (): boolean => {
    if (done) return false;
    done = true;
    signal?.removeEventListener('abort', onAbort);
    shutdown.removeEventListener('abort', onAbort);
    return true;
  };
  const onAbort = (event: Event): void => {
    if (!finish()) return;
    const reason = (event.target as AbortSignal).reason as unknown;
    tearDown(reason);
    reject(reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  shutdown.addEventListener('abort', onAbort, { once: true });
  return {
    done: () => done,
    resolve: (response) => {
      if (finish()) resolve(response);
    },
    reject: (error) => {
      if (finish()) reject(error);
    },
  };
}

/** The in-memory transport: a call is a clock timer (the network) and a direct call of the host. */
function memoryTransport(
  hosts: Map<string, ServiceHost>,
  runtime: Runtime,
  latencyMs: number,
): (service: string, request: HttpRequest, options?: CallOptions) => Promise<HttpResponse> {
  const { clock, shutdown } = runtime;
  return (service, request, options) => {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (shutdown.aborted) return Promise.reject(shutdown.reason);
    const host = hosts.get(service);
    if (host === undefined) return Promise.reject(new Error(`connect ECONNREFUSED: no service named "${service}"`));
    return new Promise<HttpResponse>((resolve, reject) => {
      // The callee's view of the connection: closed when the caller aborts or the deployment stops.
      const connection = new AbortController();
      let timer: unknown;
      const end = endOnce(signal, shutdown, resolve, reject, (reason) => {
        clock.cancel(timer);
        connection.abort(reason);
      });
      timer = clock.schedule(() => {
        if (end.done()) return;
        host.handle(request, connection.signal).then(end.resolve, () => {
          // Only reachable after the caller aborted (the host answers 500 for handler errors).
          end.reject(new Error(`${service}: connection reset`));
        });
      }, latencyMs);
    });
  };
}

/** The HTTP transport: one `node:http` server per service on 127.0.0.1, a keep-alive client. */
async function httpTransport(
  hosts: Map<string, ServiceHost>,
  runtime: Runtime,
): Promise<{
  send: (service: string, request: HttpRequest, options?: CallOptions) => Promise<HttpResponse>;
  urls: Record<string, string>;
  stop: () => Promise<void>;
}> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
  const servers: http.Server[] = [];
  const ports = new Map<string, number>();
  const urls: Record<string, string> = {};
  for (const [name, host] of hosts) {
    const server = http.createServer((req, res) => {
      const connection = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) connection.abort(new Error('client closed the connection'));
      });
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        if (text !== '') {
          try {
            body = JSON.parse(text);
          } catch {
            body = text;
          }
        }
        host.handle({ method: req.method ?? 'GET', path: req.url ?? '/', headers, body }, connection.signal).then(
          (response) => writeResponse(res, response),
          () => {
            if (!res.headersSent && !res.destroyed) writeResponse(res, json(500, { error: 'aborted' }));
          },
        );
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    ports.set(name, port);
    urls[name] = `http://127.0.0.1:${port}`;
    servers.push(server);
  }
  const { shutdown } = runtime;
  const send = (service: string, request: HttpRequest, options?: CallOptions): Promise<HttpResponse> => {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (shutdown.aborted) return Promise.reject(shutdown.reason);
    const port = ports.get(service);
    if (port === undefined) return Promise.reject(new Error(`connect ECONNREFUSED: no service named "${service}"`));
    return new Promise<HttpResponse>((resolve, reject) => {
      const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body));
      const headers: Record<string, string | number> = { ...request.headers };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = payload.length;
      }
      const end = endOnce(signal, shutdown, resolve, reject, () => req.destroy());
      const req = http.request(
        { host: '127.0.0.1', port, method: request.method, path: request.path, headers, agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            if (end.done()) return;
            const text = Buffer.concat(chunks).toString('utf8');
            const out: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') out[k] = v;
            let body: unknown = text;
            if ((res.headers['content-type'] ?? '').includes('application/json') && text !== '') {
              try {
                body = JSON.parse(text);
              } catch {
                body = text;
              }
            }
            end.resolve({ status: res.statusCode ?? 0, headers: out, body });
          });
          res.on('error', () => {});
        },
      );
      req.on('error', (error) => end.reject(new Error(`${service}: ${error.message}`, { cause: error })));
      req.end(payload);
    });
  };
  const stop = async (): Promise<void> => {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
    agent.destroy();
  };
  return { send, urls, stop };
}

function writeResponse(res: http.ServerResponse, response: HttpResponse): void {
  if (res.destroyed || res.headersSent) return;
  const headers: Record<string, string> = { ...response.headers };
  let text = '';
  if (typeof response.body === 'string') {
    text = response.body;
    headers['content-type'] ??= 'text/plain; charset=utf-8';
  } else if (response.body !== undefined) {
    text = JSON.stringify(response.body);
    headers['content-type'] = 'application/json';
  }
  res.writeHead(response.status, headers);
  res.end(text);
}

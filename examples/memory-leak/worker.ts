/**
 * One worker process of the memory-leak demo: a `node:http` server on
 * 127.0.0.1 that answers `GET /work` after the latency its heap calls for
 * (model.ts), and serves its own process metrics (prom-client's defaults:
 * `nodejs_heap_size_used_bytes`, `process_resident_memory_bytes`, ...) on
 * `/metrics`.
 *
 * A leaking worker keeps `leakBytes` of every request it gets once the leak
 * has started (from its start, or from the parent's `'leak'` message): real JavaScript arrays, so its heap really
 * grows until V8 stops it at `--max-old-space-size` ("JavaScript heap out of
 * memory"). The parent (pool.ts) starts it with `process.execPath`, reads its
 * port from the IPC channel, and restarts it when it dies.
 *
 * It never outlives its parent: it exits when the IPC channel closes, and in
 * any case after `maxLifetimeMs`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { heapFill, latencyMs } from './model.ts';

/** What the parent passes, as JSON in argv[2]. */
export interface WorkerConfig {
  readonly id: number;
  /** Bytes kept per request once leaking; 0 for a healthy worker. */
  readonly leakBytes: number;
  /** Leaking from the start; otherwise from the parent's `'leak'` message on. */
  readonly leaking: boolean;
  /** The heap limit given to `--max-old-space-size`, MB. */
  readonly limitMb: number;
  /** Exit after this long whatever happens, ms. */
  readonly maxLifetimeMs: number;
}

/** The first message on the IPC channel. */
export interface ReadyMessage {
  readonly port: number;
  /** Heap used once listening, bytes: the fill of the heap counts from here. */
  readonly baselineBytes: number;
}

/** The answer to `GET /work`. */
export interface WorkAnswer {
  readonly worker: number;
  readonly heapBytes: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
let leaking = config.leaking;
const kept: number[][] = []; // the leak: never released
const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Keeps about `bytes` in the JavaScript heap (arrays of small integers, 8 bytes an element). */
function leak(bytes: number): void {
  for (let left = Math.floor(bytes / 8); left > 0; left -= 50_000) kept.push(new Array<number>(Math.min(left, 50_000)).fill(kept.length));
}

const server = http.createServer((req, res) => {
  if (req.url === '/metrics') {
    void registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(text);
    });
    return;
  }
  if (leaking && config.leakBytes > 0) leak(config.leakBytes);
  const used = process.memoryUsage().heapUsed;
  const delay = latencyMs(heapFill(used, baselineBytes, config.limitMb * 2 ** 20), Math.random());
  const timer = setTimeout(() => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ worker: config.id, heapBytes: used } satisfies WorkAnswer));
  }, delay);
  res.on('close', () => clearTimeout(timer)); // the caller went away (a hedge that lost, a timeout)
});

let baselineBytes = 0;
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  baselineBytes = process.memoryUsage().heapUsed;
  process.send?.({ port: (server.address() as AddressInfo).port, baselineBytes } satisfies ReadyMessage);
});
process.on('message', (message) => {
  if (message === 'leak') leaking = true;
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(0), config.maxLifetimeMs);

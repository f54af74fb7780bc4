/**
 * A small HTTP service that guards its two downstream calls with Breakwater
 * pipelines and serves Prometheus metrics on /metrics.
 *
 *   npx node examples/metrics-server/server.ts          # listen on PORT (default 3000)
 *   npx node examples/metrics-server/server.ts --load   # and send itself traffic
 *
 * Then: curl localhost:3000/products/42 · curl localhost:3000/metrics
 * Break a dependency: curl -X POST 'localhost:3000/chaos?inventory=down'
 * (inventory=slow, pricing=down, pricing=slow, or =ok to heal.)
 *
 * The two dependencies (inventory, pricing) are simulated by small HTTP servers
 * on loopback in the same process, so the example runs on its own.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { bulkhead, circuitBreaker, fallback, pipeline, retry, retryBudget, timeout } from '../../src/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';

type Mode = 'ok' | 'down' | 'slow';
const modes: Record<'inventory' | 'pricing', Mode> = { inventory: 'ok', pricing: 'ok' };

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** A fake downstream: answers JSON after a few ms, or fails / stalls depending on its mode. */
function downstream(name: 'inventory' | 'pricing', body: (id: string) => unknown): Server {
  return createServer((req, res) => {
    const mode = modes[name];
    const id = req.url?.split('/').pop() ?? '';
    const delayMs = mode === 'slow' ? 2_000 : 5 + Math.random() * 20;
    const timer = setTimeout(() => {
      if (mode === 'down' || Math.random() < 0.02) res.writeHead(503).end('unavailable');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body(id)));
    }, delayMs);
    res.once('close', () => clearTimeout(timer));
  });
}

/** Fetches JSON, treating any non-2xx answer as an error. */
async function getJson(url: string, signal: AbortSignal): Promise<unknown> {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// --- Resilience: one pipeline per dependency, created once. ---------------------

// Shared by every retry in the process: retries stay a fraction of calls.
const budget = retryBudget({ ratio: 0.2 });

// Inventory is optional: without it the page shows "availability unknown".
const inventory = pipeline(
  { name: 'inventory' },
  fallback({ value: { inStock: null } }),
  bulkhead({ maxConcurrent: 20, maxQueue: 50 }),
  retry({ maxAttempts: 3, budget }),
  circuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 10, halfOpenAfterMs: 5_000 }),
  timeout({ ms: 300 }),
);

// Pricing is required: no fallback, the request fails fast with 503 instead.
const pricing = pipeline(
  { name: 'pricing' },
  bulkhead({ maxConcurrent: 20, maxQueue: 50 }),
  retry({ maxAttempts: 2, budget }),
  circuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 10, halfOpenAfterMs: 5_000 }),
  timeout({ ms: 500 }),
);

// --- Metrics: the service's own registry, one line per pipeline. ----------------

const registry = new Registry();
collectDefaultMetrics({ register: registry });
prometheusMetrics({ registry }).attach(inventory, pricing);

// --- The service. ---------------------------------------------------------------

async function main(): Promise<void> {
  const inventoryServer = downstream('inventory', (id) => ({ id, inStock: Number(id) % 3 !== 0 }));
  const pricingServer = downstream('pricing', (id) => ({ id, priceCents: 1_000 + Number(id) }));
  const inventoryUrl = `http://127.0.0.1:${await listen(inventoryServer, 0)}`;
  const pricingUrl = `http://127.0.0.1:${await listen(pricingServer, 0)}`;

  async function product(id: string, res: ServerResponse): Promise<void> {
    try {
      const [stock, price] = await Promise.all([
        inventory.execute(({ signal }) => getJson(`${inventoryUrl}/stock/${id}`, signal)),
        pricing.execute(({ signal }) => getJson(`${pricingUrl}/price/${id}`, signal)),
      ]);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, stock, price }));
    } catch (error) {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (error as Error).message }));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
    } else if (req.method === 'GET' && /^\/products\/\d+$/.test(url.pathname)) {
      await product(url.pathname.split('/')[2]!, res);
    } else if (req.method === 'POST' && url.pathname === '/chaos') {
      for (const name of ['inventory', 'pricing'] as const) {
        const mode = url.searchParams.get(name);
        if (mode === 'ok' || mode === 'down' || mode === 'slow') modes[name] = mode;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(modes));
    } else {
      res.writeHead(404).end('try GET /products/42, GET /metrics or POST /chaos?inventory=down\n');
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => res.writeHead(500).end(String(error)));
  });
  const port = await listen(server, Number(process.env.PORT ?? 3000));
  console.log(`listening on http://127.0.0.1:${port} (GET /products/42, GET /metrics, POST /chaos?inventory=down)`);

  let load: ReturnType<typeof setInterval> | undefined;
  if (process.argv.includes('--load')) {
    load = setInterval(() => {
      const id = Math.floor(Math.random() * 100);
      fetch(`http://127.0.0.1:${port}/products/${id}`).then((r) => r.arrayBuffer(), () => undefined);
    }, 50);
    console.log('sending 20 requests per second to itself');
  }

  const stop = (): void => {
    clearInterval(load);
    for (const s of [server, inventoryServer, pricingServer]) {
      s.closeAllConnections();
      s.close();
    }
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

await main();

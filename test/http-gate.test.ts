/**
 * breakwater/http on real node:http servers on 127.0.0.1: shedding answers 503
 * with Retry-After before the handler runs, classes keep their reserved
 * slots, every admitted request gives its slot back (finished, client gone,
 * handler thrown or rejected), and the options are checked at construction.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { aimd, gradient } from '../src/index.ts';
import { DEFAULT_CLASS, gateListener, gateMiddleware, gatePlugin, type HttpGate, httpGate, type RequestListener } from '../src/http/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { eventually } from './fetch-servers.ts';

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function serve(gate: HttpGate, listener: RequestListener): Promise<string> {
  const server = createServer(gateListener(gate, listener));
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Requests a held response: the handler parks it until `releaseAll()`. */
function parking() {
  const parked: (() => void)[] = [];
  let calls = 0;
  const listener: RequestListener = (_request, response) => {
    calls++;
    parked.push(() => response.end('done'));
  };
  return {
    listener,
    calls: () => calls,
    parked: () => parked.length,
    releaseAll: () => parked.splice(0).forEach((end) => end()),
  };
}

describe('httpGate on node:http', () => {
  it('sheds requests over the limit with 503 and Retry-After, before the handler runs, and admits again once slots free up', async () => {
    const gate = httpGate({ name: 'api', maxConcurrent: 2, retryAfterSeconds: 3 });
    const shedEvents: unknown[] = [];
    const unsubscribe = gate.onShed((event) => shedEvents.push(event));
    const park = parking();
    const url = await serve(gate, park.listener);
    const held = [fetch(url), fetch(url)];
    expect(await eventually(() => park.parked() === 2)).toBe(true);
    const refused = await fetch(url);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('3');
    expect(await refused.text()).toMatch(/concurrency limit/);
    expect(park.calls()).toBe(2);
    expect(gate.inFlight).toBe(2);
    expect(shedEvents).toEqual([{ class: 'default' }]);
    unsubscribe();
    park.releaseAll();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    expect(await eventually(() => gate.inFlight === 0)).toBe(true);
    const again = fetch(url);
    expect(await eventually(() => park.parked() === 1)).toBe(true);
    park.releaseAll();
    expect((await again).status).toBe(200);
    const stats = gate.classes.find((c) => c.name === DEFAULT_CLASS)!;
    expect([stats.admitted, stats.shed, stats.inFlight]).toEqual([3, 1, 0]);
    expect(gate.limiter.kind).toBe('bulkhead');
    expect((gate.limiter as { active: number }).active).toBe(0);
  });

  it('keeps the reserved share for its class: health checks pass while the default class is shed', async () => {
    const gate = httpGate({
      name: 'api',
      maxConcurrent: 10,
      classes: { health: { share: 0.2 } },
      classify: (request) => (request.url === '/healthz' ? 'health' : undefined),
    });
    const park = parking();
    const url = await serve(gate, (request, response) => (request.url === '/healthz' ? response.end('ok') : park.listener(request, response)));
    const held = Array.from({ length: 8 }, () => fetch(url));
    expect(await eventually(() => park.parked() === 8)).toBe(true);
    expect((await fetch(url)).status).toBe(503); // the shared 8 slots are taken
    expect((await fetch(`${url}/healthz`)).status).toBe(200); // the 2 reserved ones are not
    const [health, other] = gate.classes;
    expect(health!.name).toBe('health');
    expect(health!.reserved).toBe(2);
    expect([health!.admitted, health!.shed, other!.admitted, other!.shed]).toEqual([1, 0, 8, 1]);
    park.releaseAll();
    await Promise.all(held);
  });

  it('gives the slot back when the client disconnects before the response', async () => {
    const gate = httpGate({ name: 'api', maxConcurrent: 1 });
    const park = parking();
    const url = await serve(gate, park.listener);
    const { port } = new URL(url);
    const req = httpRequest({ host: '127.0.0.1', port, path: '/' });
    req.on('error', () => {});
    req.end();
    expect(await eventually(() => park.parked() === 1)).toBe(true);
    expect(gate.inFlight).toBe(1);
    req.destroy();
    expect(await eventually(() => gate.inFlight === 0)).toBe(true);
    park.releaseAll(); // ending a closed response is harmless and releases nothing twice
    expect(gate.inFlight).toBe(0);
    expect(gate.classes[0]!.inFlight).toBe(0);
  });

  it('answers 500 and gives the slot back when the handler throws or rejects, reporting the error to onError', async () => {
    const errors: unknown[] = [];
    const gate = httpGate({ name: 'api', maxConcurrent: 1, onError: (error) => errors.push(error) });
    const boom = new Error('boom');
    const url = await serve(gate, async (request) => {
      if (request.url === '/sync') throw boom;
      await Promise.resolve();
      throw boom;
    });
    // `gateListener` calls a sync listener synchronously; an async one rejects.
    const syncUrl = await serve(gate, (request) => {
      if (request.url === '/sync') throw boom;
    });
    for (const target of [`${url}/async`, `${syncUrl}/sync`, `${url}/async`]) {
      const response = await fetch(target);
      expect(response.status).toBe(500);
      expect(await eventually(() => gate.inFlight === 0)).toBe(true);
    }
    expect(errors).toEqual([boom, boom, boom]);
  });

  it('closes the connection when the handler fails after the response started', async () => {
    const errors: unknown[] = [];
    const gate = httpGate({ name: 'api', maxConcurrent: 1, onError: (error) => errors.push(error) });
    const url = await serve(gate, async (_request, response) => {
      response.writeHead(200);
      response.write('partial');
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error('late');
    });
    await expect(fetch(url).then((r) => r.text())).rejects.toThrow();
    expect(await eventually(() => gate.inFlight === 0)).toBe(true);
    expect(errors).toHaveLength(1);
  });

  it('an adaptive gate learns from the handler: 503s it answers itself lower the limit', async () => {
    const clock = new FakeClock();
    const gate = httpGate({ name: 'api', adaptive: { algorithm: aimd({ backoffRatio: 0.5 }), initialLimit: 8, minLimit: 1, maxLimit: 16 }, clock });
    const url = await serve(gate, (_request, response) => {
      response.statusCode = 503;
      response.end();
    });
    expect(gate.limit).toBe(8);
    await fetch(url);
    expect(await eventually(() => gate.limit === 4)).toBe(true);
    expect(gate.limiter.kind).toBe('adaptive-limit');
  });

  it('a throwing classify counts the request as default and reports the error', async () => {
    const errors: unknown[] = [];
    const gate = httpGate({
      name: 'api',
      maxConcurrent: 2,
      classes: { vip: { share: 0.5 } },
      classify: () => {
        throw new Error('bad classify');
      },
      onError: (error) => errors.push(error),
    });
    expect(gate.classOf({ headers: {} })).toBe(DEFAULT_CLASS);
    expect(errors).toHaveLength(1);
    const unknown = httpGate({ name: 'api', maxConcurrent: 1, classify: () => 'nope' });
    expect(unknown.classOf({ headers: {} })).toBe(DEFAULT_CLASS);
  });
});

describe('httpGate options', () => {
  const algorithm = gradient();
  it.each([
    [{}, TypeError, /option "name" is required/],
    [{ name: 'api' }, TypeError, /exactly one of the options "maxConcurrent".*and "adaptive"/],
    [{ name: 'api', maxConcurrent: 2, adaptive: { algorithm } }, TypeError, /exactly one/],
    [{ name: 'a b', maxConcurrent: 2 }, TypeError, /option "name" must be 1 to 100 letters.*received "a b"/],
    [{ name: 'api', maxConcurrent: 0 }, RangeError, /option "maxConcurrent" must be an integer from 1.*received 0/],
    [{ name: 'api', maxConcurrent: 1.5 }, RangeError, /"maxConcurrent".*received 1.5/],
    [{ name: 'api', maxConcurrent: 2, retryAfterSeconds: -1 }, RangeError, /"retryAfterSeconds" must be an integer from 0 to 86400; received -1/],
    [{ name: 'api', maxConcurrent: 2, classes: { health: { share: 0 } } }, RangeError, /"classes.health.share" must be a number greater than 0 and at most 1; received 0/],
    [{ name: 'api', maxConcurrent: 2, classes: { health: {} } }, TypeError, /"classes.health.share" is required/],
    [{ name: 'api', maxConcurrent: 2, classes: { 'bad name': { share: 0.1 } } }, TypeError, /invalid class name "bad name"/],
    [{ name: 'api', maxConcurrent: 2, classes: { a: { share: 0.6 }, b: { share: 0.5 } } }, RangeError, /add up to at most 1; received shares adding up to 1.1/],
    [{ name: 'api', maxConcurrent: 2, classify: 'x' }, TypeError, /"classify" must be a function/],
    [{ name: 'api', maxConcurrent: 2, maxQueue: 5 }, TypeError, /unknown option "maxQueue" \(the gate never queues/],
    [{ name: 'api', adaptive: { algorithm: {} } }, TypeError, /"adaptive.algorithm" must be an algorithm made by aimd\(\) or gradient\(\)/],
    [{ name: 'api', adaptive: { algorithm, maxQueue: 3 } }, TypeError, /unknown option "adaptive.maxQueue"/],
    [{ name: 'api', adaptive: { algorithm, minLimit: 10, maxLimit: 5 } }, RangeError, /"maxLimit" must be at least minLimit \(10\); received 5/],
  ])('%o is refused', (options, type, message) => {
    expect(() => httpGate(options as never)).toThrow(type);
    expect(() => httpGate(options as never)).toThrow(message);
  });

  it('pins the defaults: Retry-After 1 s, one default class, the adaptive maxLimit of adaptiveLimit', () => {
    const gate = httpGate({ name: 'api', maxConcurrent: 4 });
    expect(gate.retryAfterSeconds).toBe(1);
    expect(gate.classes.map((c) => [c.name, c.share])).toEqual([[DEFAULT_CLASS, 0]]);
    const adaptive = httpGate({ name: 'api', adaptive: { algorithm } });
    expect(adaptive.limit).toBe(20);
    expect((adaptive.limiter as { maxLimit: number }).maxLimit).toBe(200);
    expect(() => gateListener(gate, 'x' as never)).toThrow(/listener must be a function/);
    expect(() => gateMiddleware({} as never)).toThrow(/gateMiddleware: expected a gate made by httpGate\(\); received object/);
    expect(() => gatePlugin(null as never)).toThrow(/gatePlugin: expected a gate made by httpGate\(\); received null/);
  });
});

/**
 * The gate in real Express 5 and Fastify 5 apps on 127.0.0.1: requests over
 * the limit get 503 with Retry-After before any route or later middleware
 * runs, a reserved class still passes, and every slot comes back, also when a
 * route throws or the client disconnects.
 */
import type { Server } from 'node:http';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { gateMiddleware, gatePlugin, type HttpGate, httpGate } from '../src/http/index.ts';
import { eventually } from './fetch-servers.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

function gateWithHealth(): HttpGate {
  return httpGate({
    name: 'api',
    maxConcurrent: 3,
    classes: { health: { share: 0.34 } },
    classify: (request) => (request.url === '/healthz' ? 'health' : undefined),
    retryAfterSeconds: 2,
  });
}

/** Routes: /slow parks until released, /healthz answers, /boom throws. */
function parked() {
  const ends: (() => void)[] = [];
  return { park: (end: () => void) => ends.push(end), count: () => ends.length, releaseAll: () => ends.splice(0).forEach((end) => end()) };
}

async function checkShape(url: string, gate: HttpGate, park: ReturnType<typeof parked>, counted: () => number): Promise<void> {
  const slow = [fetch(`${url}/slow`), fetch(`${url}/slow`)];
  expect(await eventually(() => park.count() === 2)).toBe(true);
  const shed = await fetch(`${url}/slow`);
  expect(shed.status).toBe(503);
  expect(shed.headers.get('retry-after')).toBe('2');
  expect(counted()).toBe(2); // the shed request reached no later middleware or route
  expect((await fetch(`${url}/healthz`)).status).toBe(200); // the reserved slot
  park.releaseAll();
  expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
  expect((await fetch(`${url}/boom`)).status).toBe(500);
  expect(await eventually(() => gate.inFlight === 0)).toBe(true);

  // A client that disconnects gives its slot back.
  const { port } = new URL(url);
  const req = httpRequest({ host: '127.0.0.1', port, path: '/slow' });
  req.on('error', () => {});
  req.end();
  expect(await eventually(() => park.count() === 1)).toBe(true);
  req.destroy();
  expect(await eventually(() => gate.inFlight === 0)).toBe(true);
  park.releaseAll();
  const [health, other] = gate.classes;
  expect([health!.admitted, health!.shed, other!.shed]).toEqual([1, 0, 1]);
  expect(other!.admitted).toBe(4);
}

describe('gateMiddleware (Express 5)', () => {
  it('sheds before later middleware and routes, keeps the reserved class, releases on finish, error and disconnect', async () => {
    const gate = gateWithHealth();
    const park = parked();
    let reached = 0;
    const app = express();
    app.use(gateMiddleware(gate));
    app.use((request, _response, next) => {
      if (request.url === '/slow') reached++;
      next();
    });
    app.get('/slow', (_request, response) => park.park(() => response.send('slow')));
    app.get('/healthz', (_request, response) => response.send('ok'));
    app.get('/boom', () => {
      throw new Error('route bug');
    });
    app.use((_error: unknown, _request: express.Request, response: express.Response, _next: express.NextFunction) => {
      response.status(500).send('error');
    });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    cleanups.push(
      () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await checkShape(url, gate, park, () => reached);
  });
});

describe('gatePlugin (Fastify 5)', () => {
  it('sheds in onRequest, before parsing and handlers, on every route; keeps the reserved class; releases on finish, error and disconnect', async () => {
    const gate = gateWithHealth();
    const park = parked();
    let handled = 0;
    const app: FastifyInstance = Fastify();
    await app.register(gatePlugin(gate));
    // Routes registered in an encapsulated child context are gated too.
    await app.register(async (child) => {
      child.get('/slow', (_request, reply) => {
        handled++;
        park.park(() => void reply.send('slow'));
        return reply;
      });
    });
    app.get('/healthz', async () => 'ok');
    app.get('/boom', async () => {
      throw new Error('route bug');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => app.close());
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    await checkShape(url, gate, park, () => handled);
  });
});

/**
 * Real node:http servers on 127.0.0.1 for the breakwater/fetch tests: each one
 * counts the requests it got and the responses still open (a response whose
 * body is held open keeps its connection in use until the client lets go).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a test server answers one request with. */
export type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

export interface TestServer {
  readonly url: string;
  /** Requests received, in order: `METHOD path`. */
  readonly requests: string[];
  /** Responses neither finished nor closed: connections the client still holds. */
  readonly open: () => number;
  /** Connections the server has now. */
  readonly connections: () => Promise<number>;
  close(): Promise<void>;
}

export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: string[] = [];
  let open = 0;
  const server: Server = createServer({ keepAlive: true, keepAliveTimeout: 30_000 }, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    open++;
    res.once('close', () => open--);
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    open: () => open,
    connections: () => new Promise((resolve, reject) => server.getConnections((error, n) => (error ? reject(error) : resolve(n)))),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Waits (at most `ms`, polling) until `condition` holds; returns whether it did. */
export async function eventually(condition: () => boolean, ms = 5_000): Promise<boolean> {
  const until = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/**
 * The loopback server of the HTTP benchmarks, run in its own process so that its
 * work does not share the client's event loop: a keep-alive node:http server on
 * 127.0.0.1 and a free port, answering every request with a small JSON body.
 * With `--gated`, its listener is wrapped in a `breakwater/http` gate whose limit
 * is never reached (what the gate costs when it admits everything). `GET /__cpu`
 * answers the process's CPU time so far, in µs, so the client can tell what the
 * server spent per request. Prints the port on its first line, and exits when its
 * stdin closes (when the benchmark ends, however it ends).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gateListener, httpGate } from '../../src/http/index.ts';

const body = JSON.stringify({ id: 1, name: 'user one', roles: ['reader'] });
const answer = (req: IncomingMessage, res: ServerResponse): void => {
  if (req.url === '/__cpu') {
    const { user, system } = process.cpuUsage();
    res.end(String(user + system));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
};
const gated = process.argv.includes('--gated');
const listener = gated ? gateListener(httpGate({ name: 'bench', maxConcurrent: 100_000, classes: { health: { share: 0.01 } }, classify: (req) => (req.url === '/healthz' ? 'health' : undefined) }), answer) : answer;
const server = createServer({ keepAlive: true, keepAliveTimeout: 60_000 }, listener);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

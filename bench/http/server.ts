/**
 * The loopback server of the HTTP benchmarks, run in its own process so that its
 * work does not share the client's event loop: a keep-alive node:http server on
 * 127.0.0.1 and a free port, answering every request with a small JSON body.
 * Prints the port on its first line, and exits when its stdin closes (when the
 * benchmark ends, however it ends).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = JSON.stringify({ id: 1, name: 'user one', roles: ['reader'] });
const server = createServer({ keepAlive: true, keepAliveTimeout: 60_000 }, (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

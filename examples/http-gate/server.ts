/**
 * The server of examples/http-gate/load.ts, in a process of its own so that
 * the load generator's work does not delay it: a keep-alive node:http server
 * on 127.0.0.1 and a free port whose handler holds one of `slots` backend
 * connections for `serviceMs` per request (waiting, first come first served,
 * when all are busy), behind a gate of `gateLimit` slots or none.
 * Arguments: `gated|ungated slots serviceMs gateLimit`. Prints the port on its first
 * line; exits when its stdin closes.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gateListener, httpGate } from '../../src/http/index.ts';

const [mode, slotsArg, serviceArg, limitArg] = process.argv.slice(2);
const slots = Number(slotsArg);
const serviceMs = Number(serviceArg);
const gateLimit = Number(limitArg);
if (!(mode === 'gated' || mode === 'ungated') || !(slots >= 1) || !(serviceMs >= 0) || !(gateLimit >= 1)) {
  process.stderr.write('usage: server.ts gated|ungated SLOTS SERVICE_MS GATE_LIMIT\n');
  process.exit(2);
}

let busy = 0;
const waiting: (() => void)[] = [];
/** Holds a backend connection for serviceMs: what the request's work is. */
function work(): Promise<void> {
  return new Promise((resolve) => {
    const start = (): void => {
      busy++;
      setTimeout(() => {
        busy--;
        waiting.shift()?.();
        resolve();
      }, serviceMs);
    };
    if (busy < slots) start();
    else waiting.push(start);
  });
}

const handler = async (_request: unknown, response: ServerResponse): Promise<void> => {
  await work();
  if (!response.destroyed) response.end('ok');
};
const server = createServer({ keepAlive: true }, mode === 'gated' ? gateListener(httpGate({ name: 'load', maxConcurrent: gateLimit }), handler) : handler);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));

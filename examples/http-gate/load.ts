/**
 * Overload on loopback, with and without `breakwater/http`'s gate. The server
 * works on each request by holding one of `backendSlots` backend connections
 * (a database pool, say) for `serviceMs`, so it can finish
 * `backendSlots / serviceMs` requests per ms: its capacity. Requests beyond
 * that wait for a connection, as they would in a real server without admission
 * control. An open-loop client offers multiples of that capacity at a steady
 * rate and gives up on a request after `clientTimeoutMs`.
 *
 * Without the gate, every request waits behind the ones before it: past
 * capacity the wait grows for as long as the overload lasts, and the p99
 * reaches the client's timeout. With a gate of twice `backendSlots` slots,
 * requests over the limit get `503` at once and the admitted ones wait one
 * service time at most: their p99 stays near `2 × serviceMs` at any load.
 *
 * The server runs in a child process (./server.ts), so the client's work
 * does not delay it. `npx node examples/http-gate/load.ts [--quick]` prints the table of
 * docs/reference/http.md; test/http-gate-load.test.ts runs a short version.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { percentile } from '../harness/stats.ts';

/** Options of {@link runGateLoad}. */
export interface GateLoadOptions {
  /** Backend connections of the server: how many requests it can work on at once (default 4). */
  readonly backendSlots?: number;
  /** How long a request holds a backend connection, in ms (default 50). */
  readonly serviceMs?: number;
  /** Offered load as multiples of the server's capacity (default 0.5, 1, 2, 4, 8). */
  readonly multiples?: readonly number[];
  /** How long each load level is offered, in ms (default 5,000). */
  readonly durationMs?: number;
  /**
   * The gate's `maxConcurrent` (default twice `backendSlots`): a little above
   * the backend's connections, so that a burst waits one service time at most
   * instead of being shed, while a sustained overload is.
   */
  readonly gateLimit?: number;
  /** The client gives up on a request after this many ms (default 1,000). */
  readonly clientTimeoutMs?: number;
}

/** One run: one load level, gated or not. */
export interface GateLoadRow {
  readonly gated: boolean;
  /** Offered load as a multiple of capacity. */
  readonly multiple: number;
  readonly offeredPerSecond: number;
  readonly sent: number;
  /** Answered 200 in time. */
  readonly ok: number;
  /** Answered 503 by the gate. */
  readonly shed: number;
  /** Given up by the client (its timeout). */
  readonly timedOut: number;
  /** Admitted requests (all that were not shed): percentiles of their latency, a timed-out one counting as the timeout. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p99 of the shed requests' 503s: how fast a refusal comes back. */
  readonly shedP99Ms: number;
  /** 200s in time per second of load. */
  readonly goodputPerSecond: number;
}

/** Starts examples/http-gate/server.ts in a child process; resolves with its URL and a function that stops it. */
async function startServer(gated: boolean, slots: number, serviceMs: number, gateLimit: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL('./server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', script, gated ? 'gated' : 'ungated', String(slots), String(serviceMs), String(gateLimit)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    child.stdin.end();
    const killer = setTimeout(() => child.kill(), 2_000);
    await exited;
    clearTimeout(killer);
  };
  try {
    const port = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the load-test server did not start within 10 s')), 10_000);
      createInterface({ input: child.stdout }).once('line', (line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.once('exit', (code) => reject(new Error(`the load-test server exited (${code})`)));
    });
    return { url: `http://127.0.0.1:${Number(port)}/`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Offers `perSecond` requests a second for `durationMs`, open loop, and records each one. */
async function offer(url: string, perSecond: number, durationMs: number, clientTimeoutMs: number) {
  const records: { status: number | 'timeout'; ms: number }[] = [];
  const pending: Promise<void>[] = [];
  const one = async (): Promise<void> => {
    const started = performance.now();
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(clientTimeoutMs) });
      await response.arrayBuffer();
      records.push({ status: response.status, ms: performance.now() - started });
    } catch {
      records.push({ status: 'timeout', ms: clientTimeoutMs });
    }
  };
  const begun = performance.now();
  let sent = 0;
  // Ticks of 5 ms: each sends what the schedule says is due by now, so a late tick catches up.
  while (performance.now() - begun < durationMs) {
    const due = Math.floor(((performance.now() - begun) / 1000) * perSecond);
    for (; sent < due; sent++) pending.push(one());
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(pending);
  return { sent, records };
}

/** Runs every load level against an ungated and a gated server. */
export async function runGateLoad(options: GateLoadOptions = {}): Promise<GateLoadRow[]> {
  const slots = options.backendSlots ?? 4;
  const serviceMs = options.serviceMs ?? 50;
  const durationMs = options.durationMs ?? 5_000;
  const clientTimeoutMs = options.clientTimeoutMs ?? 1_000;
  const gateLimit = options.gateLimit ?? 2 * slots;
  const capacity = (slots * 1000) / serviceMs;
  const rows: GateLoadRow[] = [];
  for (const multiple of options.multiples ?? [0.5, 1, 2, 4, 8]) {
    for (const gated of [false, true]) {
      const server = await startServer(gated, slots, serviceMs, gateLimit);
      try {
        const offeredPerSecond = capacity * multiple;
        const { sent, records } = await offer(server.url, offeredPerSecond, durationMs, clientTimeoutMs);
        const sorted = (list: typeof records) => list.map((r) => r.ms).sort((a, b) => a - b);
        const admitted = sorted(records.filter((r) => r.status !== 503));
        const shed = sorted(records.filter((r) => r.status === 503));
        const ok = records.filter((r) => r.status === 200).length;
        rows.push({
          gated,
          multiple,
          offeredPerSecond,
          sent,
          ok,
          shed: shed.length,
          timedOut: records.filter((r) => r.status === 'timeout').length,
          p50Ms: percentile(admitted, 50),
          p99Ms: percentile(admitted, 99),
          shedP99Ms: percentile(shed, 99),
          goodputPerSecond: ok / (durationMs / 1000),
        });
      } finally {
        await server.stop();
      }
    }
  }
  return rows;
}

/** The rows as a Markdown table. */
export function formatGateLoad(rows: readonly GateLoadRow[]): string {
  const ms = (n: number) => (Number.isNaN(n) ? '-' : n.toFixed(0));
  const lines = [
    '| offered (× capacity) | server | sent | 200 | 503 (shed) | timed out | admitted p50 ms | admitted p99 ms | 503 p99 ms | goodput /s |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.multiple} (${r.offeredPerSecond.toFixed(0)}/s) | ${r.gated ? 'gated' : 'no gate'} | ${r.sent} | ${r.ok} | ${r.shed} | ${r.timedOut} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.shedP99Ms)} | ${r.goodputPerSecond.toFixed(0)} |`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const rows = await runGateLoad(quick ? { multiples: [0.5, 4], durationMs: 1_500 } : {});
  process.stdout.write(`${formatGateLoad(rows)}\n`);
}

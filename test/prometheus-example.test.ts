/**
 * examples/metrics-server runs: it serves products through its two pipelines,
 * degrades with a fallback when inventory is down, reports both pipelines on
 * /metrics, and exits on SIGTERM. A process-level test on loopback.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, select, value } from './prometheus-helpers.ts';

const server = fileURLToPath(new URL('../examples/metrics-server/server.ts', import.meta.url));

describe('examples/metrics-server', () => {
  let child: ChildProcess;
  let base = '';
  let exited: Promise<number | null>;
  let output = '';

  beforeAll(async () => {
    child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', server], {
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the example did not start:\n${output}`)), 15_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child.once('exit', (code) => reject(new Error(`the example exited with ${code}:\n${output}`)));
    });
  }, 20_000);

  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });

  it('serves, degrades, reports both pipelines and stops on SIGTERM', async () => {
    const ok = await fetch(`${base}/products/7`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ id: '7', stock: { inStock: true }, price: { priceCents: 1007 } });

    await (await fetch(`${base}/chaos?inventory=down`, { method: 'POST' })).arrayBuffer();
    const degraded = await fetch(`${base}/products/8`);
    expect(degraded.status).toBe(200);
    expect(await degraded.json()).toMatchObject({ stock: { inStock: null } });

    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const samples = parseExposition(await metrics.text());
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'inventory', outcome: 'fallback' })).toBe(1);
    expect(value(samples, 'breakwater_calls_total', { pipeline: 'pricing', outcome: 'success' })).toBe(2);
    expect(value(samples, 'breakwater_circuit_state', { pipeline: 'inventory', state: 'closed' })).toBe(1);
    const fallbacks = select(samples, 'breakwater_fallbacks_total', { pipeline: 'inventory' });
    expect(fallbacks.map((s) => s.labels.cause).sort()).toEqual(['bulkhead_full', 'circuit_open', 'failure', 'rejected', 'timeout']);
    expect(fallbacks.reduce((sum, s) => sum + s.value, 0)).toBe(1);

    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    const code = await exited;
    clearTimeout(timer);
    expect(code).toBe(0);
  }, 20_000);
});

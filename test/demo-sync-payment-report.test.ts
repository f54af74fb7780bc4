/**
 * The sync-payment-call demo end to end, in virtual time (`--memory`): it prints
 * the before/after table and the trace of a slow checkout taken from recorded
 * spans, and writes chart.svg and series.json holding the series.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../examples/sync-payment-call/demo.ts';
import { FakeClock } from '../src/testing/index.ts';
import { culprit, renderTrace, SpanRecorder, traceRows } from '../examples/sync-payment-call/tracing.ts';

describe('sync-payment-call demo report', () => {
  it('prints the table and the trace, and writes the chart and the raw series', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sync-payment-'));
    try {
      const lines: string[] = [];
      const dir = await run({ argv: ['--memory', '--seconds', '10', '--rate', '6'], resultsRoot: root, log: (l) => lines.push(l) });
      const out = lines.join('\n');
      expect(out).toMatch(/time scale: 1 demo second = 1 seed second/);
      for (const row of ['checkout p50', 'checkout p95', 'checkout p99', 'accepted orders', 'paid exactly once', 'duplicate payments', 'pending at end', 'peak req/s to API during outage']) {
        expect(out).toContain(row);
      }
      // The culprit of the slow (before) checkout is the external call, found from the spans.
      expect(out).toMatch(/most of its own time: payment POST payment-provider \/v1\/charges/);
      expect(out).toContain('nothing lost, nothing paid twice (after): yes');

      const series = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8'));
      expect(series.timeScale).toBe('1 demo second = 1 seed second');
      expect(series.before.checkout.p95Ms).toBeGreaterThan(2_500);
      expect(series.after.checkout.p95Ms).toBeLessThan(200);
      expect(series.after.duplicatePayments).toBe(0);
      expect(series.after.pendingAtEnd).toBe(0);
      expect(series.after.paidOnce).toBe(series.after.accepted);
      // The job kept the failing API within the bound the demo states (here 1.5 x 6/s).
      expect(series.outageLoadBound).toEqual({ timesOfferedRate: 1.5, rps: 9 });
      expect(series.after.outagePeakRps).toBeGreaterThan(0);
      expect(series.after.outagePeakRps).toBeLessThanOrEqual(series.outageLoadBound.rps);
      expect(out).toMatch(/peak req\/s to API during outage +\d+ \([\d.]+x offered\) +\d+ \([\d.]+x offered\)/);
      expect(series.before.latenciesMs).toHaveLength(60);
      expect(series.after.series.p95Ms.length).toBeGreaterThan(5);
      const slowest = series.traces.before.reduce((a: { selfMs: number }, b: { selfMs: number }) => (b.selfMs > a.selfMs ? b : a));
      expect(slowest.operation).toBe('POST payment-provider /v1/charges');
      expect(new Set(series.traces.before.map((s: { service: string }) => s.service)).size).toBe(7);

      const svg = await readFile(join(dir, 'chart.svg'), 'utf8');
      expect(svg.startsWith('<svg') || svg.startsWith('<?xml')).toBe(true);
      for (const name of ['checkout p95 latency, by start time', 'before (sync call)', 'after (background job)', 'unpaid backlog (after)', '1.5x offered']) {
        expect(svg).toContain(name);
      }
      expect((svg.match(/<(path|polyline)\b/g) ?? []).length).toBeGreaterThanOrEqual(8);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('sync-payment-call tracing', () => {
  it('computes offsets, durations and self time from recorded spans, and names the culprit', async () => {
    const clock = new FakeClock();
    const tracer = new SpanRecorder({ clock });
    const root = tracer.start('checkout', 'POST /checkout', undefined);
    await clock.advance(10);
    const a = tracer.start('cart', 'GET /carts/{id}', root);
    await clock.advance(20);
    a.end();
    const b = tracer.start('payment', 'POST /payments', root);
    const c = tracer.start('payment', 'POST payment-provider /v1/charges', b, 'client');
    await clock.advance(2_800);
    c.end('error');
    b.end('error');
    await clock.advance(5);
    root.end();
    const rows = traceRows(tracer.trace(root.traceId));
    expect(rows.map((r) => [r.span.service, r.depth, r.offsetMs, r.durationMs, r.selfMs])).toEqual([
      ['checkout', 0, 0, 2_835, 15],
      ['cart', 1, 10, 20, 20],
      ['payment', 1, 30, 2_800, 0],
      ['payment', 2, 30, 2_800, 2_800],
    ]);
    expect(culprit(rows)?.span.operation).toBe('POST payment-provider /v1/charges');
    const text = renderTrace(tracer.trace(root.traceId));
    expect(text).toContain('  cart');
    expect(text).toContain('    payment');
    expect(text).toContain('(error)');
    expect(tracer.roots('checkout').map((s) => s.traceId)).toEqual([root.traceId]);
  });
});

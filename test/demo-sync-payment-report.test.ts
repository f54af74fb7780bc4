/**
 * The sync-payment-call demo end to end, in virtual time (`--memory`): it prints
 * a progress line while each run goes, the before/after table with its "how to
 * read this" note, and the trace of a slow checkout taken from recorded spans,
 * and writes chart.svg (every series, the breaker's states) and series.json.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type InspectedPanel, inspectChart } from '../examples/harness/index.ts';
import { run } from '../examples/sync-payment-call/demo.ts';
import { FakeClock } from '../src/testing/index.ts';
import { culprit, renderTrace, SpanRecorder, traceRows } from '../examples/sync-payment-call/tracing.ts';

describe('sync-payment-call demo report', () => {
  it('prints the table, how to read it, progress lines and the trace, and writes the chart and the raw series', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sync-payment-'));
    try {
      const lines: string[] = [];
      const dir = await run({ argv: ['--memory', '--seconds', '10', '--rate', '6'], resultsRoot: root, log: (l) => lines.push(l) });
      const out = lines.join('\n');
      expect(out).not.toMatch(/\bseed\b/);
      expect(out).toContain('in virtual time');
      for (const row of [
        'checkout p50 (half were faster)',
        'checkout p95 (95% were faster)',
        'checkout p99 (99% were faster)',
        'orders taken',
        'orders paid exactly once',
        'orders paid twice (duplicate payments)',
        'orders still waiting to be paid at the end',
        'most calls/s to the API while it was down',
      ]) {
        expect(out).toContain(row);
      }
      // Progress: plain lines every 3 s of each run, elapsed/total and a live figure; the after run goes on while the job pays.
      const before = lines.filter((l) => l.startsWith('  ... before  '));
      const after = lines.filter((l) => l.startsWith('  ... after  '));
      expect(before.slice(0, 3).map((l) => /(\d+\.\d) s of 10\.0 s/.exec(l)?.[1])).toEqual(['3.0', '6.0', '9.0']);
      expect(before[1]).toMatch(/API DOWN \(6–8 s\); last second: \d+ answered \(\d+ OK\)/);
      expect(after[0]).toMatch(/unpaid orders: \d+ of \d+; breaker closed/);
      expect(after.some((l) => /breaker (open|half-open)/.test(l))).toBe(true);
      expect(after.some((l) => /\(the 10\.0 s of load are over\)  \|  load over, the job pays the last orders/.test(l))).toBe(true);
      // Under the table: how to read it, with the surprising rows explained and the link.
      const note = lines.indexOf('How to read this');
      expect(note).toBeGreaterThan(lines.findIndex((l) => l.startsWith('checkouts sent')));
      const text = lines.slice(note, note + 30).join(' ').replace(/\s+/g, ' ');
      expect(text).toMatch(/More calls reach the external API after \(\d+ before, \d+ after\), and that is not waste/);
      expect(text).toMatch(/"attempts turned away" \(\d+\) are charges the open breaker refused without calling the API/);
      expect(text).toMatch(/The price: payment is confirmed later, not at checkout/);
      expect(lines.slice(note).find((l) => l.includes('docs/incidents/'))).toMatch(/docs\/incidents\/sync-payment-call\.md$/);
      // The culprit of the slow (before) checkout is the external call, found from the spans.
      expect(out).toMatch(/most of its own time: payment POST payment-provider \/v1\/charges/);
      expect(out).toContain('nothing lost, nothing paid twice (after): yes');

      const series = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8'));
      expect(series.timeScale).toBe('1 demo second = 1 real second (not scaled)');
      expect(series.before.checkout.p95Ms).toBeGreaterThan(2_500);
      expect(series.after.checkout.p95Ms).toBeLessThan(200);
      expect(series.after.duplicatePayments).toBe(0);
      expect(series.after.pendingAtEnd).toBe(0);
      expect(series.after.paidOnce).toBe(series.after.accepted);
      // The job kept the failing API within the bound the demo states (here 1.5 x 6/s).
      expect(series.outageLoadBound).toEqual({ timesOfferedRate: 1.5, rps: 9 });
      expect(series.after.outagePeakRps).toBeGreaterThan(0);
      expect(series.after.outagePeakRps).toBeLessThanOrEqual(series.outageLoadBound.rps);
      expect(out).toMatch(/most calls\/s to the API while it was down +\d+ \([\d.]+x the checkout rate\) +\d+ \([\d.]+x the checkout rate\)/);
      expect(series.before.latenciesMs).toHaveLength(60);
      expect(series.after.series.p95Ms.length).toBeGreaterThan(5);
      // The breaker's state over time, from its onStateChange events: closed, opened by the outage, closed again.
      const states = series.after.breaker.states.map((s: { state: string }) => s.state);
      expect(states[0]).toBe('closed');
      expect(states).toContain('open');
      expect(states.at(-1)).toBe('closed');
      expect(series.before.breaker).toBeNull();
      const slowest = series.traces.before.reduce((a: { selfMs: number }, b: { selfMs: number }) => (b.selfMs > a.selfMs ? b : a));
      expect(slowest.operation).toBe('POST payment-provider /v1/charges');
      expect(new Set(series.traces.before.map((s: { service: string }) => s.service)).size).toBe(7);

      const svg = await readFile(join(dir, 'chart.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).not.toMatch(/\bseed\b/);
      const panels = inspectChart(svg);
      const named = (title: string): InspectedPanel => panels.find((p) => p.title.startsWith(title))!;
      expect(named('checkout p95 latency').series.map((s) => s.name)).toEqual(['before (waits for the charge)', 'after (answers "payment pending")']);
      expect(named('orders after').series.map((s) => s.name)).toEqual(['orders taken', 'orders paid', 'orders waiting to be paid']);
      expect(named('calls reaching the external API').series.map((s) => s.name)).toEqual(['before', 'after', '1.5x the checkout rate (the bound while the API is down)']);
      // Both success lines are seen where they are equal (100%): apart, and off the frame.
      const success = named('share of checkouts answered OK');
      expect(success.series.map((s) => s.name)).toEqual(['before', 'after']);
      const firstY = success.series.map((s) => s.points[0]![1]);
      expect(Math.abs(firstY[0]! - firstY[1]!)).toBeGreaterThanOrEqual(2);
      for (const s of success.series) for (const [, y] of s.points) expect(y > success.frame.y + 1 && y < success.frame.y + success.frame.height - 1).toBe(true);
      for (const panel of panels) for (const s of panel.series) expect(panel.legend).toContain(s.name);
      // The breaker band under the backlog and the API panels, with the states the run went through.
      for (const title of ['orders after', 'calls reaching the external API']) {
        const band = named(title).bands;
        expect(band.map((b) => b.name)).toEqual(["background job's breaker: job"]);
        expect(new Set(band[0]!.spans.map((s) => s.state))).toEqual(new Set(states));
        expect(named(title).legend).toEqual(expect.arrayContaining(['closed (calls go through)', 'open (calls refused at once)', 'half-open (trial calls)']));
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('with --no-breaker, there is no breaker to draw and the note says nothing of it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sync-payment-'));
    try {
      const lines: string[] = [];
      const dir = await run({ argv: ['--memory', '--seconds', '8', '--rate', '4', '--no-breaker'], resultsRoot: root, log: (l) => lines.push(l) });
      expect(lines.join('\n')).toContain('(no circuit breaker: --no-breaker)');
      expect(lines.join('\n')).not.toContain('attempts turned away" (');
      const svg = await readFile(join(dir, 'chart.svg'), 'utf8');
      expect(inspectChart(svg).flatMap((p) => p.bands)).toEqual([]);
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

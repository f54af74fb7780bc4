/**
 * The memory-leak demo end to end, in virtual time (`--memory`): the set-up with
 * its time scale, a progress line per run, the before/after table and its "how
 * to read this" note; BreakwaterSlowCalls, evaluated by promtool over the after
 * run's own scrapes, fires before the before run breaks its SLO; chart.svg holds
 * both p95 lines, the heaps and the breakers; series.json the raw numbers. And
 * the promtool plumbing: scrapes to input series, promtool's report to firings.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type InspectedPanel, inspectChart } from '../examples/harness/index.ts';
import { evaluateAlert, inputSeries, labelOf, parseFirings } from '../examples/memory-leak/alerts.ts';
import { run } from '../examples/memory-leak/demo.ts';
import { prometheusTools } from './prometheus-tools.ts';

const PROMTOOL = prometheusTools().promtool;

describe('memory-leak: scrapes to promtool and back', () => {
  it('turns scrapes into input series, with _ where a scrape lacked a series', () => {
    const series = inputSeries([
      { atMs: 0, text: '# HELP x\nbreakwater_calls_total{pipeline="a",outcome="success"} 1\nprocess_cpu_seconds_total 3\n' },
      { atMs: 200, text: 'breakwater_calls_total{pipeline="a",outcome="success"} 4\nbreakwater_calls_total{pipeline="b",outcome="success"} 2\n' },
    ]);
    expect(series).toEqual([
      { series: 'breakwater_calls_total{pipeline="a",outcome="success"}', values: '1 4' },
      { series: 'breakwater_calls_total{pipeline="b",outcome="success"}', values: '_ 2' },
    ]);
  });

  it("reads the minutes an alert fired at from promtool's report of unexpected alerts", () => {
    const report = [
      'Unit Testing:  t.json',
      '  FAILED:',
      '    alertname: BreakwaterSlowCalls, time: 1h7m, ',
      '        exp:[], ',
      '        got:[',
      '            0:',
      '              Labels:{alertname="BreakwaterSlowCalls", pipeline="worker-1", severity="warning"}',
      '              Annotations:{summary="..."}',
      '            ]',
      '    alertname: Other, time: 2m, ',
      '        exp:[], ',
      '        got:[ 0: Labels:{alertname="Other"} ]',
      '    alertname: BreakwaterSlowCalls, time: 9m, ',
      '        got:[ 0: Labels:{alertname="BreakwaterSlowCalls", pipeline="worker-2"} ]',
    ].join('\n');
    const firings = parseFirings(report, 'BreakwaterSlowCalls');
    expect(firings.map((f) => [f.minute, labelOf(f.labels, 'pipeline')])).toEqual([
      [9, 'worker-2'],
      [67, 'worker-1'],
    ]);
  });

  it('without promtool, says so instead of guessing', async () => {
    const result = await evaluateAlert([{ atMs: 0, text: '' }], { promtool: null });
    expect(result).toEqual({ evaluated: false, why: expect.stringMatching(/promtool was not found/) });
  });
});

describe.skipIf(PROMTOOL === undefined)('memory-leak demo report', () => {
  it('prints the scale, progress, the table and how to read it; the alert fires before the SLO breaks; writes the chart and the raw series', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memory-leak-'));
    const previous = process.env.PROMTOOL;
    process.env.PROMTOOL = PROMTOOL;
    try {
      const lines: string[] = [];
      const dir = await run({ argv: ['--memory'], resultsRoot: root, log: (l) => lines.push(l) });
      const out = lines.join('\n');
      expect(out).toContain('1 s here = 5 minutes of the incident; 24 s of load = the seed\'s two hours');
      expect(out).toContain('in virtual time');
      const before = lines.filter((l) => l.startsWith('  ... before  '));
      const after = lines.filter((l) => l.startsWith('  ... after  '));
      expect(before[0]).toMatch(/3\.0 s of 24\.0 s  \|  last second: p95 \d+(\.\d)? ms; heap worker-1 \d+ MB; OOM kills 0$/);
      expect(after.some((l) => /open breakers: worker-1/.test(l))).toBe(true);
      for (const row of [
        'p50 / p95 / p99, whole run',
        'p50 / p95 / p99, worst 1 s window',
        'requests slower than 1 s or failed, whole run',
        'failed requests',
        'hedges (share of calls; budget)',
        'workers killed at the heap limit',
        'workers restarted by the supervisor',
        'SLO broken (p95 > 1000 ms in a window)',
        'alert fired (BreakwaterSlowCalls)',
      ]) {
        expect(out).toContain(row);
      }
      const note = lines.indexOf('How to read this');
      expect(note).toBeGreaterThan(lines.findIndex((l) => l.startsWith('alert fired')));
      const text = lines.slice(note).join(' ').replace(/\s+/g, ' ');
      expect(text).toMatch(/Early detection: BreakwaterSlowCalls \(docs\/prometheus\/alerts\.yml\), evaluated by promtool over the after run's own \/metrics, fired \d+ min after the leak began \(on worker-1\)/);
      expect(lines.slice(note).find((l) => l.includes('docs/incidents/'))).toMatch(/docs\/incidents\/memory-leak\.md$/);

      const series = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8'));
      expect(series.timeScale).toBe('1 demo second = 5 incident minutes');
      // Before degrades as the seed did; after stays near the baseline; nothing fails after.
      expect(series.before.worstWindow.stats.p95Ms).toBeGreaterThan(3_000);
      expect(series.before.deaths.filter((d: { cause: string }) => d.cause === 'out-of-memory').length).toBeGreaterThan(0);
      expect(series.before.failed).toBeGreaterThan(0);
      expect(series.after.worstWindow.stats.p95Ms).toBeLessThan(1_000);
      expect(series.after.failed).toBe(0);
      expect(series.after.counters.restarts.length).toBeGreaterThan(0);
      expect(series.after.hedgeLoad.hedges).toBeLessThanOrEqual(series.after.hedgeLoad.bound);
      // The alert fired, from the after run's own metrics, before the before run broke its SLO.
      expect(series.alert.evaluated).toBe(true);
      expect(series.alertFiredAtMs).toBeGreaterThan(series.leakStartMs);
      expect(series.alertFiredAtMs).toBeLessThan(series.before.sloBrokenAtMs);
      expect(series.before.sloBrokenAtMs).toBeGreaterThanOrEqual(series.leakStartMs); // counted from the leak on

      const svg = await readFile(join(dir, 'chart.svg'), 'utf8');
      const panels = inspectChart(svg);
      const named = (title: string): InspectedPanel => panels.find((p) => p.title.startsWith(title))!;
      expect(named('p95 latency per 1 s window').series.map((s) => s.name)).toEqual(['before', 'after', 'SLO (1000 ms)']);
      expect(named("each worker's heap, before").series.map((s) => s.name)).toEqual(['worker-0', 'worker-1 (leaks)', 'worker-2', 'worker-3', 'heap limit (64 MB)']);
      const band = named("each worker's heap, after").bands;
      expect(band.map((b) => b.name)).toEqual([0, 1, 2, 3].map((w) => `each worker's breaker (after): worker-${w}`));
      expect(new Set(band[1]!.spans.map((s) => s.state))).toEqual(new Set(['closed', 'open', 'half-open']));
      for (const panel of panels) for (const s of panel.series) expect(panel.legend).toContain(s.name);
    } finally {
      if (previous === undefined) delete process.env.PROMTOOL;
      else process.env.PROMTOOL = previous;
      await rm(root, { recursive: true, force: true });
    }
  }, 60_000);
});

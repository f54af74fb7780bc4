/**
 * The feature-flag demo: its services on real HTTP (127.0.0.1), a short run
 * (3 s of visits, the flag misconfigured after 0.5 s, a person turning it off
 * 2 s later), before and after, and the whole demo in memory, writing its
 * table, chart and series. The bounds themselves are the property tests'
 * (test/demo-feature-flag-property.test.ts); this checks that the same code
 * does what they say over real sockets, and that the rollout's metrics reach
 * the shop's /metrics.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectChart } from '../examples/harness/index.ts';
import { run as runDemo } from '../examples/feature-flag/demo.ts';
import { runPhase, summarizePhase, type Timeline } from '../examples/feature-flag/scenario.ts';
import { DEFAULT_CONFIG } from '../examples/feature-flag/services.ts';

const SHORT: Timeline = { durationMs: 3_000, misconfigAtMs: 500, fixAtMs: 2_500 };
const CONFIG = { ...DEFAULT_CONFIG, experimentalErrorRate: 0.5, rampEveryMs: 500, minimumCalls: 10, ticketDelayMs: 200 };

/** Which experimental calls fail: a Weyl sequence, so that one call in two does, in every prefix. */
function weyl(): () => number {
  let i = 0;
  return () => (++i * 0.6180339887498949) % 1;
}

describe('feature-flag on real HTTP', () => {
  it('before, the misconfigured share reaches users until the person acts; after, it is ramped and rolled back, with its metrics on /metrics', async () => {
    let metrics = '';
    const after = await runPhase({
      transport: 'http',
      variant: 'after',
      timeline: SHORT,
      config: CONFIG,
      faultRandom: weyl(),
      beforeClose: async (d) => {
        metrics = await (await fetch(`${d.urls.shop}/metrics`)).text();
      },
    });
    const before = await runPhase({ transport: 'http', variant: 'before', timeline: SHORT, config: CONFIG, faultRandom: weyl(), metrics: false });
    const a = summarizePhase(after);
    const b = summarizePhase(before);
    expect(a.visits).toBe(b.visits);
    expect(a.rollback?.reason).toBe('error-rate');
    expect(a.errors).toBe(0); // the experiment's failures were answered by the stable version
    expect(a.exposed).toBeGreaterThanOrEqual(CONFIG.minimumCalls);
    expect(a.exposed).toBeLessThan(b.exposed);
    expect(a.timeToZeroExposureMs).toBeLessThan(SHORT.fixAtMs - SHORT.misconfigAtMs);
    expect(b.errors).toBeGreaterThan(0);
    expect(b.timeToZeroExposureMs).toBeGreaterThan(SHORT.fixAtMs - SHORT.misconfigAtMs - 500);
    expect(after.shares.map((s) => s.share).slice(0, 2)).toEqual([0, CONFIG.rampStep]); // the jump was ramped
    expect(metrics).toContain('breakwater_rollout_rolled_back{pipeline="recommendations"} 1');
    expect(metrics).toContain('breakwater_rollout_rollbacks_total{pipeline="recommendations",reason="error_rate"} 1');
    expect(metrics).toMatch(new RegExp(`breakwater_rollout_exposures_total\\{pipeline="recommendations"\\} ${a.exposed}\\n`));
  }, 30_000);

  it('the demo, in memory: its table, its chart with the three panels, and its series', async () => {
    const root = await mkdtemp(join(tmpdir(), 'feature-flag-'));
    const lines: string[] = [];
    try {
      const dir = await runDemo({ argv: ['--memory'], resultsRoot: root, log: (line) => lines.push(line) });
      const text = lines.join('\n');
      expect(text).toContain('users shown the experiment');
      expect(text).toContain('How to read this');
      expect(text).toContain('docs/incidents/feature-flag.md');
      const panels = inspectChart(await readFile(join(dir!, 'chart.svg'), 'utf8'));
      expect(panels.map((p) => p.title)).toEqual([
        'share of visits sent to the experiment (%)',
        'users shown the experiment, per second',
        'support tickets from users who saw it, running total',
      ]);
      for (const panel of panels) expect(panel.series.map((s) => s.name)).toEqual(['before (flag read as is)', 'after (guarded rollout)']);
      const series = JSON.parse(await readFile(join(dir!, 'series.json'), 'utf8'));
      expect(series.runs.after.rollback.reason).toMatch(/error-rate|signal-rate/);
      expect(series.runs.before.summary.exposed).toBeGreaterThan(series.runs.after.summary.exposed);
      expect(await readFile(join(dir!, 'table.md'), 'utf8')).toMatch(/\| misconfiguration to zero exposure +\|/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 30_000);
});

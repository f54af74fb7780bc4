/**
 * Property tests of the auth-cascade demo: the same services as the demo, on
 * the in-memory transport under FakeClock. For any outage (start, duration,
 * mode, slow recovery) and offered rate in the ranges below, one schedule is
 * run twice, before and after Breakwater, and the claims of the demo are
 * checked on both.
 *
 * Ranges: outages of 4.5–6 s starting at 1–2.5 s, optionally fading out over
 * 1 s (slow recovery); 90–140 offered req/s; a slow auth answers after 5–8 s.
 * Below about 4 s of outage or 80 req/s the 32-worker pools do not fill before
 * auth is back, so the naive system survives on its spare capacity: the
 * cascade needs the pools to fill, and these ranges are where it does.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countIn, type InspectedPanel, inspectChart, summarize, writeResults } from '../examples/harness/index.ts';
import { run as runDemo } from '../examples/auth-cascade/demo.ts';
import { breakersClosedAfterMs, chartOf, seriesOf, summarizeRun, worstWindowAvailability } from '../examples/auth-cascade/report.ts';
import { type AuthFaultMode, runScenario, type ScenarioResult } from '../examples/auth-cascade/scenario.ts';
import { DEFAULT_CONFIG as config, DEPENDENTS, ENDPOINTS } from '../examples/auth-cascade/topology.ts';

const labelsWith = (...needs: string[]): string[] => ENDPOINTS.filter((e) => needs.includes(e.need)).map((e) => e.label);
const NO_AUTH = labelsWith('none');
const DEGRADABLE = labelsWith('none', 'optional');
const NEEDS_AUTH = labelsWith('optional', 'cached', 'required');

/** Stated bounds. */
const DEGRADABLE_MIN_AVAILABILITY = 0.99;
const COLLAPSED_MAX_AVAILABILITY = 0.25;
const NETWORK_MS = 1; // memory transport, one hop client → gateway before the deadline starts
const NUM_RUNS = Number(process.env.AUTH_CASCADE_RUNS ?? 10);
const BREAKER_CLOSE_BOUND_MS = config.halfOpenAfterMs + config.authTimeoutMs + 500;

interface Schedule {
  readonly mode: AuthFaultMode;
  readonly fromMs: number;
  readonly durationMs: number;
  readonly rampMs: number;
  readonly rate: number;
  readonly slowMs: number;
  readonly seed: number;
}

const schedules = fc.record({
  mode: fc.constantFrom<AuthFaultMode>('errors', 'hang', 'slow'),
  fromMs: fc.integer({ min: 1000, max: 2500 }),
  durationMs: fc.integer({ min: 4500, max: 6000 }),
  rampMs: fc.constantFrom(0, 0, 1000),
  rate: fc.integer({ min: 90, max: 140 }),
  slowMs: fc.integer({ min: 5000, max: 8000 }),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

function run(variant: 'before' | 'after', s: Schedule): Promise<ScenarioResult> {
  return runScenario({
    transport: 'memory',
    variant,
    mode: s.mode,
    slowMs: s.slowMs,
    ratePerSecond: s.rate,
    seed: s.seed,
    timeline: {
      outageFromMs: s.fromMs,
      outageToMs: s.fromMs + s.durationMs,
      recoveryRampMs: s.rampMs,
      durationMs: s.fromMs + s.durationMs + s.rampMs + 2500,
    },
  });
}

/**
 * Most requests that can reach auth during the outage with Breakwater: every
 * request needing auth makes at most one first attempt, and each service's
 * retry budget grants at most `ratio × first attempts + minPerSecond × window`
 * retries per window. Cut the outage into pieces of 0.9 window (each inside
 * one sliding window); each first attempt counts in at most 3 such windows.
 */
function budgetBound(result: ScenarioResult): number {
  const { fromMs, toMs } = result.outage;
  const windowMs = config.budgetWindowMs;
  const pieces = Math.ceil((toMs - fromMs) / (0.9 * windowMs));
  const floorPerWindow = (config.budgetMinPerSecond * windowMs) / 1000;
  const offeredNeedingAuth = (from: number): number =>
    result.records.filter((r) => NEEDS_AUTH.includes(r.endpoint) && r.startMs >= from && r.startMs < toMs).length;
  const firstAttempts = offeredNeedingAuth(fromMs - config.deadlineMs);
  const retries = DEPENDENTS.length * pieces * floorPerWindow + 3 * config.budgetRatio * offeredNeedingAuth(fromMs - windowMs - config.deadlineMs);
  return firstAttempts + retries;
}

describe('auth-cascade (property, memory transport, FakeClock)', () => {
  it('with Breakwater the cascade is contained; without it, the same schedule collapses', async () => {
    await fc.assert(
      fc.asyncProperty(schedules, async (s) => {
        const after = await run('after', s);
        const before = await run('before', s);
        const window = { fromMs: after.outage.fromMs, toMs: after.outage.toMs };

        // After: degradable endpoints stay available during the outage.
        const degradable = summarize('degradable', after.records.filter((r) => DEGRADABLE.includes(r.endpoint)), window);
        expect(degradable.availability).toBeGreaterThanOrEqual(DEGRADABLE_MIN_AVAILABILITY);
        // After: the load on auth stays within what the retry budgets allow...
        const authCalls = countIn(after.arrivals.auth!, window);
        expect(authCalls).toBeLessThanOrEqual(budgetBound(after));
        // ...which the naive retries blow through when auth answers errors.
        if (s.mode === 'errors') expect(countIn(before.arrivals.auth!, window)).toBeGreaterThan(budgetBound(before));
        // After: no request waits longer than the gateway's deadline.
        expect(summarizeRun(after).maxLatencyMs).toBeLessThanOrEqual(config.deadlineMs + NETWORK_MS);
        // After: half-open probes close every breaker within a bounded time after auth is back.
        expect(after.breakerTransitions.some((t) => t.to === 'open')).toBe(true);
        expect(breakersClosedAfterMs(after)).toBeLessThanOrEqual(BREAKER_CLOSE_BOUND_MS);

        // Before: the endpoint that never needed auth collapses with the rest, once
        // the worker pools are full (while auth is fully down: the ramp excluded).
        const down = { fromMs: s.fromMs, toMs: s.fromMs + s.durationMs };
        expect(worstWindowAvailability(before.records, down, NO_AUTH)).toBeLessThanOrEqual(COLLAPSED_MAX_AVAILABILITY);
        expect(worstWindowAvailability(after.records, window, NO_AUTH)).toBeGreaterThanOrEqual(DEGRADABLE_MIN_AVAILABILITY);
        // Before: requests wait until the client gives up.
        expect(summarizeRun(before).maxLatencyMs).toBeGreaterThan(config.deadlineMs);
      }),
      { numRuns: NUM_RUNS, endOnFailure: true },
    );
  }, 600_000);

  it('before: when auth answers errors, the naive retries multiply the load on auth', async () => {
    const result = await run('before', { mode: 'errors', fromMs: 2000, durationMs: 4000, rampMs: 0, rate: 100, slowMs: 0, seed: 5 });
    const summary = summarizeRun(result);
    expect(summary.amplification).toBeGreaterThan(2);
    // On recovery, the backlog of stuck retries hits auth at once.
    expect(summary.authPeakAfterRecoveryRps).toBeGreaterThan(5 * summary.authSteadyRps);
  });

  it('after: endpoints that need auth fail fast and closed, never with a stale answer', async () => {
    const result = await run('after', { mode: 'hang', fromMs: 2000, durationMs: 4000, rampMs: 0, rate: 100, slowMs: 0, seed: 9 });
    const window = { fromMs: 2000, toMs: 6000 };
    const checkout = summarize('checkout', result.records.filter((r) => r.endpoint === 'orders /checkout'), window);
    expect(checkout.requests).toBeGreaterThan(0);
    expect(checkout.degraded).toBe(0);
    expect(checkout.p99Ms).toBeLessThanOrEqual(config.maxAttempts * config.authTimeoutMs + 2 * config.backoffMaxMs + 50);
  });
});

describe('auth-cascade chart', () => {
  it('writes chart.svg and series.json holding every run and series, the answers shaded and the breakers drawn', async () => {
    const short = { fromMs: 1000, durationMs: 1500, rampMs: 0, rate: 40, slowMs: 0, seed: 3 } as const;
    const results = [await run('before', { ...short, mode: 'errors' }), await run('after', { ...short, mode: 'errors' })];
    const root = await mkdtemp(join(tmpdir(), 'bw-auth-cascade-'));
    try {
      const svg = chartOf(results, { title: 'test chart' });
      const series = Object.fromEntries(results.map((r) => [r.options.variant, seriesOf(r)]));
      const dir = await writeResults('auth-cascade', { 'chart.svg': svg, 'series.json': JSON.stringify(series) }, { root });
      const written = await readFile(join(dir, 'chart.svg'), 'utf8');
      expect(written.startsWith('<svg')).toBe(true);
      const panels = inspectChart(written);
      expect(panels.map((p) => p.title)).toEqual([
        'auth errors: requests per second',
        'auth errors, BEFORE: share answered OK, per endpoint',
        'auth errors, AFTER (Breakwater): share answered OK, per endpoint',
        'auth errors: latency p95 (95% were faster), all endpoints',
      ]);
      const [load, before, after] = panels as [InspectedPanel, InspectedPanel, InspectedPanel];
      expect(load.series.map((s) => s.name)).toEqual(['requests offered', 'calls reaching auth, before', 'calls reaching auth, after']);
      for (const panel of [before, after]) {
        expect(panel.series.map((s) => s.name)).toEqual(ENDPOINTS.map((e) => e.label));
        expect(panel.areas.map((a) => a.name)).toEqual(['all endpoints: answered in full', 'all endpoints: answered, degraded']);
        // Every line is drawn inside the frame, never on its edge, and no two lines coincide.
        for (const s of panel.series) {
          expect(s.points.length).toBeGreaterThan(0);
          for (const [, y] of s.points) expect(y > panel.frame.y + 1 && y < panel.frame.y + panel.frame.height - 1).toBe(true);
        }
        expect(new Set(panel.series.map((s) => s.attributes.d)).size).toBe(ENDPOINTS.length);
        for (const s of panel.series) expect(panel.legend).toContain(s.name);
      }
      // After: the degraded answers have an area of their own, and each service's breaker a band row.
      expect(after.areas[1]!.d).not.toBe('');
      expect(after.bands.map((b) => b.name)).toEqual(DEPENDENTS.map((d) => `breaker (one per service): ${d}`));
      for (const band of after.bands) {
        expect(band.spans[0]!.state).toBe('closed');
        expect(band.spans.some((s) => s.state === 'open')).toBe(true);
      }
      expect(before.bands).toEqual([]);
      expect(written).toContain('class="shade');
      const parsed = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8')) as Record<string, { tSeconds: number[]; arrivalsRps: { auth: number[] } }>;
      expect(Object.keys(parsed)).toEqual(['before', 'after']);
      expect(parsed.before!.tSeconds.length).toBe(parsed.before!.arrivalsRps.auth.length);
      expect(parsed.before!.arrivalsRps.auth.some((v) => v > 0)).toBe(true);
      // Each path has as many points as buckets with data: the chart really holds the series.
      expect(load.series[0]!.points.length).toBe(parsed.before!.tSeconds.length);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('auth-cascade demo, end to end in virtual time (--memory)', () => {
  it('explains itself: plain set-up, a progress line per run, how to read the table with the link, and the breaker states in the series', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bw-auth-cascade-demo-'));
    try {
      const lines: string[] = [];
      const dir = await runDemo({ argv: ['--memory'], resultsRoot: root, log: (l) => lines.push(l) });
      const out = lines.join('\n');
      // Plain words: no jargon the viewer has not been told.
      expect(out).not.toMatch(/\bseed\b|degr\.|open loop|\+ \d+ queued/);
      expect(out).toContain('each service handles 32 requests at a time and lets 32 more wait');
      // Progress: plain lines (not a terminal) every 2 s of each 11 s run, with elapsed/total and a live figure.
      for (const label of ['auth errors, before', 'auth errors, after', 'auth hangs, before', 'auth hangs, after']) {
        const progress = lines.filter((l) => l.startsWith(`  ... ${label}  `));
        expect(progress.map((l) => /(\d+\.\d) s of 11\.0 s/.exec(l)?.[1])).toEqual(['2.0', '4.0', '6.0', '8.0', '10.0']);
        expect(progress[2]).toMatch(/auth BROKEN \(2–7 s\); last second: \d+% OK.*, \d+ calls to auth/);
        if (label.endsWith('after')) expect(progress[2]).toMatch(/breakers not closed: \d\/4/);
      }
      expect(out).not.toContain('\r');
      // Under the table: how to read it, the surprising rows explained, and the incident doc.
      const table = lines.findIndex((l) => l.startsWith('while auth was broken, unless noted'));
      const note = lines.indexOf('How to read this');
      expect(table).toBeGreaterThan(0);
      expect(note).toBeGreaterThan(table);
      const text = lines.slice(note).join(' ').replace(/\s+/g, ' ');
      expect(text).toMatch(/orders \/checkout goes from [\d.]+% and [\d.]+% before to 0\.0% after, on purpose: a payment needs a verified user/);
      expect(text).toMatch(/"time to full service" is 0 ms before, \d+ ms( and \d+ ms)? after: not a regression/);
      expect(text).toContain('catalog /products never calls auth');
      expect(lines.slice(note).some((l) => l.endsWith('docs/incidents/auth-cascade.md'))).toBe(true);
      expect(out).toContain('(100.0% degraded)');

      const series = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8'));
      const states = series.runs['errors/after'].breakerStates as Record<string, { state: string }[]>;
      expect(Object.keys(states)).toEqual([...DEPENDENTS]);
      for (const spans of Object.values(states)) expect(spans.map((s) => s.state)).toContain('open');
      expect(series.runs['errors/before'].breakerStates).toEqual({});
      expect(series.runs['errors/after'].series.answers.degraded.some((v: number | null) => (v ?? 0) > 0)).toBe(true);
      const svg = await readFile(join(dir, 'chart.svg'), 'utf8');
      expect(svg).not.toMatch(/\bseed\b/);
      expect(inspectChart(svg).flatMap((p) => p.bands)).toHaveLength(2 * DEPENDENTS.length);
      expect(await readFile(join(dir, 'table.md'), 'utf8')).toContain('How to read this');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

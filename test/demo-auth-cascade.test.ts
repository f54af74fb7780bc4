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
import { countIn, summarize, writeResults } from '../examples/harness/index.ts';
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
  it('writes chart.svg and series.json holding every run and series', async () => {
    const short = { fromMs: 1000, durationMs: 1500, rampMs: 0, rate: 40, slowMs: 0, seed: 3 } as const;
    const results = [await run('before', { ...short, mode: 'errors' }), await run('after', { ...short, mode: 'errors' })];
    const root = await mkdtemp(join(tmpdir(), 'bw-auth-cascade-'));
    try {
      const svg = chartOf(results, { title: 'test chart' });
      const series = Object.fromEntries(results.map((r) => [r.options.variant, seriesOf(r)]));
      const dir = await writeResults('auth-cascade', { 'chart.svg': svg, 'series.json': JSON.stringify(series) }, { root });
      const written = await readFile(join(dir, 'chart.svg'), 'utf8');
      expect(written.startsWith('<svg')).toBe(true);
      for (const e of ENDPOINTS) expect(written).toContain(`data-name="${e.label}"`);
      for (const name of ['offered', 'reaching auth, before', 'reaching auth, after']) expect(written).toContain(`data-name="${name}"`);
      expect(written).toContain('class="shade"');
      const parsed = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8')) as Record<string, { tSeconds: number[]; arrivalsRps: { auth: number[] } }>;
      expect(Object.keys(parsed)).toEqual(['before', 'after']);
      expect(parsed.before!.tSeconds.length).toBe(parsed.before!.arrivalsRps.auth.length);
      expect(parsed.before!.arrivalsRps.auth.some((v) => v > 0)).toBe(true);
      // Each path has as many points as buckets with data: the chart really holds the series.
      const offeredPath = /data-name="offered" d="([^"]*)"/.exec(written)![1]!;
      expect(offeredPath.split(/[ML]/).filter(Boolean).length).toBe(parsed.before!.tSeconds.length);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

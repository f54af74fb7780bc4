/**
 * The exposition, the alert rules and the dashboard against the real tools:
 * `promtool check metrics`, `promtool check rules`, `promtool test rules`.
 * test/prometheus-setup.ts finds promtool (or installs Debian's prometheus package);
 * where it cannot be had, these checks are skipped with one line saying why, and
 * under CI the run fails instead.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  adaptiveLimit,
  aimd,
  fallback,
  hedge,
  rateLimiter,
  throttle,
  pipeline,
  retry,
  rollout,
  retryBudget,
  timeout,
} from '../src/index.ts';
import { chaos } from '../src/chaos/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';
import { parseExposition, FAMILIES, GATE_FAMILIES } from './prometheus-helpers.ts';
import { httpGate } from '../src/http/index.ts';
import { prometheusTools } from './prometheus-tools.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const PROMTOOL = prometheusTools().promtool;
const skip = PROMTOOL === undefined;

function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL!, args, { cwd: root, input, encoding: 'utf8', timeout: 30_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}


/** A registry with every family populated and every outcome counted, on two pipelines and two sinks. */
async function busyRegistry(): Promise<Registry> {
  const clock = new FakeClock();
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'checkout' });
  const breaker = circuitBreaker({ clock, minimumCalls: 5, halfOpenAfterMs: 1_000 });
  const auth = pipeline(
    { name: 'auth', clock },
    fallback({ value: 'guest', handle: (e) => (e as Error).message === 'use fallback' }),
    bulkhead({ maxConcurrent: 1, maxQueue: 0, clock }),
    retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock }),
    breaker,
    timeout({ ms: 50, clock }),
  );
  const payments = pipeline(
    { name: 'payments-db', clock },
    retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), budget: retryBudget({ ratio: 0, minPerSecond: 0, clock }), clock }),
    timeout({ ms: 5, clock }),
  );
  prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(auth);
  prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(payments);
  const search = pipeline(
    { name: 'search', clock },
    rateLimiter({ ratePerSecond: 1_000, burst: 1, maxQueue: 1, clock }),
    throttle({ clock }),
    adaptiveLimit({ algorithm: aimd(), maxQueue: 10, clock }),
    hedge({ delayMs: 5, maxExtraLoad: 1, clock }),
    chaos({ kind: 'latency', ms: 1, injectionRate: 1, enabled: true, clock }),
  );
  prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(search);
  const flag = { share: 1 as unknown };
  const feature = rollout({ experimental: () => Promise.reject(new Error('new code broke')), share: () => flag.share as number, rampStep: 1, minimumCalls: 2, clock });
  const ranking = pipeline({ name: 'ranking', clock }, feature);
  prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(ranking);

  const controller = new AbortController();
  const calls = [
    track(auth.execute(({ signal }) => delayed(clock, 10, 'ok', signal))), // success (holds the bulkhead)
    track(auth.execute(() => 'never runs')), // rejected by the bulkhead
  ];
  await clock.advance(10);
  calls.push(track(auth.execute(() => Promise.reject(new Error('use fallback'))))); // fallback
  calls.push(track(auth.execute(() => never(), { signal: controller.signal }))); // cancelled
  controller.abort(new Error('caller left'));
  await clock.advance(10);
  calls.push(track(auth.execute(() => never()))); // timeout, retried
  await clock.advance(200);
  for (let i = 0; i < 3; i++) {
    calls.push(track(auth.execute(() => Promise.reject(new Error('down'))))); // failures: the breaker opens
    await clock.advance(10);
  }
  calls.push(track(auth.execute(() => 'short-circuited'))); // rejected by the open breaker
  calls.push(track(payments.execute(() => never()))); // timeout
  calls.push(track(payments.execute(() => 'ok'))); // success
  calls.push(track(payments.execute(() => Promise.reject(new Error('db down'))))); // failure
  calls.push(track(search.execute(({ attempt }) => delayed(clock, attempt === 1 ? 50 : 1, 'hedged')))); // a hedge wins
  calls.push(track(search.execute(({ signal }) => delayed(clock, 20, 'no budget', signal)))); // a hedge due, refused by the budget
  calls.push(track(ranking.execute(() => 'stable')), track(ranking.execute(() => 'stable'))); // exposures that fail: rolled back
  flag.share = 7; // refused
  calls.push(track(ranking.execute(() => 'stable')));
  await clock.advance(100);
  expect(calls.every((c) => c.status !== 'pending')).toBe(true);
  return registry;
}

describe.skipIf(skip)('promtool', () => {
  it('check metrics: the exposition with every outcome and family reports nothing', async () => {
    const registry = await busyRegistry();
    const text = await registry.metrics();
    const samples = parseExposition(text);
    // Every family has series, and every outcome was counted at least once.
    for (const family of FAMILIES) {
      expect(samples.some((s) => s.name.startsWith(`breakwater_${family}`)), family).toBe(true);
    }
    for (const outcome of ['success', 'failure', 'timeout', 'rejected', 'fallback', 'cancelled']) {
      const counted = samples.filter((s) => s.name === 'breakwater_calls_total' && s.labels.outcome === outcome);
      expect(counted.reduce((sum, s) => sum + s.value, 0), outcome).toBeGreaterThan(0);
    }
    for (const family of ['retries_total', 'retry_budget_exhausted_total', 'timeouts_total', 'fallbacks_total', 'bulkhead_rejections_total']) {
      const total = samples.filter((s) => s.name === `breakwater_${family}`).reduce((sum, s) => sum + s.value, 0);
      expect(total, family).toBeGreaterThan(0);
    }
    // promtool 2.42 does not catch duplicate series: check them here.
    const keys = samples.map((s) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`);
    expect(new Set(keys).size).toBe(keys.length);

    const result = promtool(['check', 'metrics'], text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('check metrics: the HTTP gate families, with classes, constant labels and two sinks, report nothing', async () => {
    const registry = new Registry();
    const gate = httpGate({ name: 'api', maxConcurrent: 2, classes: { health: { share: 0.5 } } });
    const admin = httpGate({ name: 'admin', maxConcurrent: 1 });
    prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attachGate(gate);
    prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attachGate(admin);
    gate.tryAcquire('health');
    gate.tryAcquire();
    gate.tryAcquire(); // shed
    admin.tryAcquire()!.release();
    const text = await registry.metrics();
    for (const family of GATE_FAMILIES) expect(text, family).toContain(`breakwater_${family}{`);
    const result = promtool(['check', 'metrics'], text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('check metrics catches a broken exposition (the check can fail)', () => {
    const result = promtool(['check', 'metrics'], '# HELP x_count c\n# TYPE x_count counter\nx_count 1\n');
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('_total');
  });

  it('check rules: docs/prometheus/alerts.yml is valid', () => {
    const result = promtool(['check', 'rules', 'docs/prometheus/alerts.yml']);
    expect(result.output).toContain('SUCCESS: 13 rules found');
    expect(result.status).toBe(0);
  });

  it('test rules: docs/prometheus/alerts.test.yml passes', () => {
    const result = promtool(['test', 'rules', 'docs/prometheus/alerts.test.yml']);
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});

describe('alert rules and dashboard use only the metric contract', () => {
  const names = new Set([...FAMILIES, ...GATE_FAMILIES].flatMap((f) => (f === 'call_duration_seconds' ? ['_bucket', '_sum', '_count'].map((s) => f + s) : [f])));
  const used = (text: string) => [...text.matchAll(/breakwater_([a-z_]+)/g)].map((m) => m[1]!);

  it('alerts.yml', () => {
    const text = readFileSync(`${root}docs/prometheus/alerts.yml`, 'utf8');
    for (const name of used(text)) expect(names.has(name), name).toBe(true);
    for (const alert of ['BreakwaterCircuitOpen', 'BreakwaterBulkheadRejections', 'BreakwaterRetryBudgetExhausted', 'BreakwaterHighTimeoutRatio']) {
      expect(text).toContain(`alert: ${alert}`);
    }
  });

  it('breakwater.json: one panel per metric family at least, every query templated by $pipeline', () => {
    const dashboard = JSON.parse(readFileSync(`${root}docs/grafana/breakwater.json`, 'utf8')) as {
      templating: { list: { name: string; query: unknown }[] };
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const variable = dashboard.templating.list.find((v) => v.name === 'pipeline');
    expect(JSON.stringify(variable?.query)).toContain('label_values(breakwater_calls_total, pipeline)');
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    for (const expr of exprs) {
      for (const name of used(expr)) expect(names.has(name), name).toBe(true);
      expect(expr).toContain('pipeline=~"$pipeline"');
    }
    for (const family of FAMILIES) {
      expect(
        dashboard.panels.some((p) => p.targets.some((t) => t.expr.includes(`breakwater_${family}`))),
        family,
      ).toBe(true);
    }
  });
});

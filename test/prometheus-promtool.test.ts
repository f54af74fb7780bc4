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
import { busyWorkload } from './busy-workload.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
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


/** A registry with every family populated and every outcome counted, on five pipelines and five sinks. */
async function busyRegistry(): Promise<Registry> {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'checkout' });
  await busyWorkload((...pipelines) => {
    for (const p of pipelines) prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(p);
  });
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
    expect(result.output).toContain('SUCCESS: 15 rules found');
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

  it('breakwater.json: one panel per metric family at least, every query templated by $pipeline (a gate\'s by $gate)', () => {
    const dashboard = JSON.parse(readFileSync(`${root}docs/grafana/breakwater.json`, 'utf8')) as {
      templating: { list: { name: string; query: unknown }[] };
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const variable = dashboard.templating.list.find((v) => v.name === 'pipeline');
    expect(JSON.stringify(variable?.query)).toContain('label_values(breakwater_calls_total, pipeline)');
    const gate = dashboard.templating.list.find((v) => v.name === 'gate');
    expect(JSON.stringify(gate?.query)).toContain('label_values(breakwater_http_requests_total, gate)');
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    for (const expr of exprs) {
      for (const name of used(expr)) expect(names.has(name), name).toBe(true);
      // Every selector of the query is templated: a gate's families by $gate, the others by $pipeline.
      for (const [, family, selector] of expr.matchAll(/breakwater_([a-z_]+)\{([^}]*)\}/g)) {
        expect(selector, expr).toContain((GATE_FAMILIES as readonly string[]).includes(family!) ? 'gate=~"$gate"' : 'pipeline=~"$pipeline"');
      }
      expect(expr).not.toMatch(/breakwater_[a-z_]+(?![a-z_{])/); // no selector without labels
    }
    for (const family of [...FAMILIES, ...GATE_FAMILIES]) {
      expect(
        dashboard.panels.some((p) => p.targets.some((t) => t.expr.includes(`breakwater_${family}`))),
        family,
      ).toBe(true);
    }
  });
});

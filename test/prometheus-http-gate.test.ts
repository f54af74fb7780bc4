/**
 * The HTTP gate's metrics through breakwater/prometheus: admitted and shed
 * requests and requests in flight per class, and the limit, read from the
 * gate at scrape time; registering twice reuses the families; detaching
 * removes the series; a registry reset starts the counters again at 0.
 */
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { aimd } from '../src/index.ts';
import { type GatePermit, httpGate } from '../src/http/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { parseExposition, value as sample } from './prometheus-helpers.ts';

function twoClassGate() {
  return httpGate({ name: 'api', maxConcurrent: 4, classes: { health: { share: 0.25 } } });
}

describe('prometheusMetrics.attachGate', () => {
  it('reports admitted, shed and in-flight requests per class, and the limit, as they are when scraped', async () => {
    const registry = new Registry();
    const gate = twoClassGate();
    const metrics = prometheusMetrics({ registry });
    gate.tryAcquire(); // before attaching: reported from the attach on, counters start at 0
    metrics.attachGate(gate);
    let text = await registry.metrics();
    let samples = parseExposition(text);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'default', outcome: 'admitted' })).toBe(0);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'health', outcome: 'shed' })).toBe(0);
    expect(sample(samples, 'breakwater_http_in_flight', { gate: 'api', class: 'default' })).toBe(1);
    expect(sample(samples, 'breakwater_http_limit', { gate: 'api' })).toBe(4);

    const held: GatePermit[] = [];
    for (let i = 0; i < 5; i++) {
      const p = gate.tryAcquire('default');
      if (p) held.push(p);
    }
    held.push(gate.tryAcquire('health')!);
    expect(gate.tryAcquire('health')).toBeUndefined();
    samples = parseExposition(await registry.metrics());
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'default', outcome: 'admitted' })).toBe(2);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'default', outcome: 'shed' })).toBe(3);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'health', outcome: 'admitted' })).toBe(1);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'health', outcome: 'shed' })).toBe(1);
    expect(sample(samples, 'breakwater_http_in_flight', { gate: 'api', class: 'default' })).toBe(3);
    expect(sample(samples, 'breakwater_http_in_flight', { gate: 'api', class: 'health' })).toBe(1);
    for (const p of held) p.release();
    samples = parseExposition(await registry.metrics());
    expect(sample(samples, 'breakwater_http_in_flight', { gate: 'api', class: 'default' })).toBe(1);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'default', outcome: 'admitted' })).toBe(2); // not counted twice

    registry.resetMetrics();
    gate.tryAcquire('health');
    samples = parseExposition(await registry.metrics());
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'default', outcome: 'admitted' })).toBe(0);
    expect(sample(samples, 'breakwater_http_requests_total', { gate: 'api', class: 'health', outcome: 'admitted' })).toBe(1);
  });

  it("an adaptive gate's limit is read when scraped; constant labels are added", async () => {
    const registry = new Registry();
    const gate = httpGate({ name: 'edge', adaptive: { algorithm: aimd(), initialLimit: 7, maxLimit: 50 } });
    prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attachGate(gate);
    const samples = parseExposition(await registry.metrics());
    expect(sample(samples, 'breakwater_http_limit', { gate: 'edge', region: 'eu-1' })).toBe(7);
  });

  it('two sinks on one registry share the families; a name is reported by one gate only; detaching removes its series', async () => {
    const registry = new Registry();
    const a = prometheusMetrics({ registry });
    const b = prometheusMetrics({ registry });
    const api = twoClassGate();
    const admin = httpGate({ name: 'admin', maxConcurrent: 1 });
    const detachApi = a.attachGate(api);
    const detachAdmin = b.attachGate(admin);
    expect(() => b.attachGate(twoClassGate())).toThrow(/another gate named "api" is already reported/);
    expect(() => b.attachGate(api)).toThrow(/already reported on this registry by another sink/);
    expect(() => a.attachGate(api)).not.toThrow(); // the same gate again through its sink: reported once
    expect(() => a.attachGate({} as never)).toThrow(/argument 1 must be a gate created with httpGate\(\); received an object/);
    expect(() => a.attachGate()).toThrow(/expected at least one gate/);
    let text = await registry.metrics();
    expect(text).toContain('gate="admin"');
    expect(text.match(/^breakwater_http_limit\{gate="api"\}/gm)).toHaveLength(1);
    detachAdmin();
    detachAdmin();
    text = await registry.metrics();
    expect(text).not.toContain('gate="admin"');
    expect(text).toContain('gate="api"');
    detachApi();
    a.dispose();
    expect(await registry.metrics()).not.toContain('gate="api"');
  });

  it('refuses a registry whose metric of that name is not Breakwater\'s, and constant labels that differ from the registered ones', () => {
    const registry = new Registry();
    registry.registerMetric(new Counter({ name: 'breakwater_http_requests_total', help: 'someone else', registers: [] }));
    expect(() => prometheusMetrics({ registry }).attachGate(twoClassGate())).toThrow(/already has a metric named "breakwater_http_requests_total" that Breakwater did not register/);
    const other = new Registry();
    prometheusMetrics({ registry: other, labels: { region: 'eu-1' } }).attachGate(twoClassGate());
    expect(() => prometheusMetrics({ registry: other, labels: { zone: 'a' } }).attachGate(httpGate({ name: 'b', maxConcurrent: 1 }))).toThrow(/option "labels"/);
  });
});

/**
 * breakwater/opentelemetry's metrics, read back through the real OpenTelemetry
 * SDK (sdk-metrics with an in-memory exporter): every instrument, its unit and
 * attributes, the same facts as the Prometheus sink, option checks, and
 * detaching that leaves nothing behind.
 */
import { readFileSync } from 'node:fs';
import CircuitBreaker from 'opossum';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { bulkhead, circuitBreaker, pipeline, retry } from '../src/index.ts';
import { httpGate } from '../src/http/index.ts';
import { fromOpossum, runWork } from '../src/opossum/index.ts';
import { openTelemetry } from '../src/opentelemetry/index.ts';
import { INSTRUMENTS } from '../src/opentelemetry/instruments.ts';
import { SPAN_EVENTS } from '../src/opentelemetry/spans.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { busyWorkload } from './busy-workload.ts';
import { delayed } from './helpers.ts';
import { expectSameFacts, sdkMeter, select, value } from './opentelemetry-helpers.ts';
import { scrape } from './prometheus-helpers.ts';

const sdks: { shutdown(): Promise<void> }[] = [];
function meter() {
  const sdk = sdkMeter();
  sdks.push(sdk);
  return sdk;
}
afterEach(async () => {
  await Promise.all(sdks.splice(0).map((s) => s.shutdown()));
});

/** An admission gate of breakwater/http that has admitted, shed and still holds requests of two classes. */
function busyGate(attach: (gate: ReturnType<typeof httpGate>) => void): void {
  const gate = httpGate({ name: 'api', maxConcurrent: 2, classes: { health: { share: 0.5 } } });
  attach(gate);
  gate.tryAcquire('health');
  gate.tryAcquire('default')?.release();
  gate.tryAcquire('default');
  gate.tryAcquire('default'); // shed
}

describe('openTelemetry metrics', () => {
  it('carry the same facts as the Prometheus sink, for every policy', async () => {
    const sdk = meter();
    const registry = new Registry();
    await busyWorkload((...pipelines) => {
      openTelemetry({ meterProvider: sdk.meterProvider, attributes: { region: 'eu-1' } }).attach(...pipelines);
      prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attach(...pipelines);
    });
    busyGate((gate) => {
      openTelemetry({ meterProvider: sdk.meterProvider, attributes: { region: 'eu-1' } }).attachGate(gate);
      prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attachGate(gate);
    });
    const points = await sdk.collect();
    const samples = await scrape(registry);
    // Every instrument reported something, and every fact of the exposition is there.
    for (const { name } of INSTRUMENTS) expect(points.some((p) => p.name === name), name).toBe(true);
    expectSameFacts(samples, points);
  });

  it('use OpenTelemetry kinds and units: monotonic sums for counts, gauges for states, non-monotonic sums for occupancy, seconds for durations', async () => {
    const sdk = meter();
    await busyWorkload((...p) => openTelemetry({ meterProvider: sdk.meterProvider }).attach(...p));
    busyGate((gate) => openTelemetry({ meterProvider: sdk.meterProvider }).attachGate(gate));
    const points = await sdk.collect();
    for (const spec of INSTRUMENTS) {
      const point = points.find((p) => p.name === spec.name)!;
      expect(point.unit, spec.name).toBe(spec.unit);
      if (spec.kind === 'counter') expect([point.type, point.monotonic], spec.name).toEqual(['sum', true]);
      else if (spec.kind === 'updowncounter') expect([point.type, point.monotonic], spec.name).toEqual(['sum', false]);
      else expect(point.type, spec.name).toBe(spec.kind);
    }
    expect(select(points, 'breakwater.call.duration')[0]!.histogram!.boundaries).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  });

  it('count calls by outcome, record their durations in seconds and read the breaker state when collected', async () => {
    const sdk = meter();
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 2, failureRateThreshold: 0.5, halfOpenAfterMs: 1_000 });
    const db = pipeline({ name: 'db', clock }, breaker);
    openTelemetry({ meterProvider: sdk.meterProvider, buckets: [0.1, 1] }).attach(db);
    const slow = db.execute(() => delayed(clock, 200, 'ok'));
    await clock.advance(200);
    await slow;
    await db.execute(() => Promise.reject(new Error('down'))).catch(() => {}); // 1 of 2 failed: the breaker opens
    await db.execute(() => 1).catch(() => {}); // refused: open
    let points = await sdk.collect();
    const at = (outcome: string) => ({ 'breakwater.pipeline': 'db', 'breakwater.outcome': outcome });
    expect(value(points, 'breakwater.calls', at('success'))).toBe(1);
    expect(value(points, 'breakwater.calls', at('failure'))).toBe(1);
    expect(value(points, 'breakwater.calls', at('rejected'))).toBe(1);
    const success = select(points, 'breakwater.call.duration', at('success'))[0]!.histogram!;
    expect(success).toMatchObject({ count: 1, boundaries: [0.1, 1], counts: [0, 1, 0] });
    expect(success.sum).toBeCloseTo(0.2, 12);
    expect(select(points, 'breakwater.call.duration', at('rejected'))).toEqual([]);
    const state = () => Object.fromEntries(select(points, 'breakwater.circuit.state').map((p) => [p.attributes['breakwater.circuit.state'], p.value]));
    expect(state()).toEqual({ closed: 0, open: 1, half_open: 0, isolated: 0 });
    await clock.advance(1_000); // no call: the state is read lazily at collection
    points = await sdk.collect();
    expect(state()).toEqual({ closed: 0, open: 0, half_open: 1, isolated: 0 });
    expect(value(points, 'breakwater.circuit.transitions', { 'breakwater.circuit.state': 'half_open' })).toBe(1);
  });

  it('report nested named pipelines under their own names', async () => {
    const sdk = meter();
    const host = pipeline({ name: 'auth-host' }, circuitBreaker());
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(pipeline({ name: 'auth' }, retry({ maxAttempts: 1 }), host));
    const points = await sdk.collect();
    expect(select(points, 'breakwater.circuit.state', { 'breakwater.pipeline': 'auth-host' })).toHaveLength(4);
    expect(select(points, 'breakwater.circuit.state', { 'breakwater.pipeline': 'auth' })).toHaveLength(0);
    expect(select(points, 'breakwater.retries', { 'breakwater.pipeline': 'auth' })).toHaveLength(1);
  });

  it('stop timing calls and listening to the policies once detached, and stop reporting the pipeline', async () => {
    const sdk = meter();
    const clock = new FakeClock();
    let reads = 0;
    const reading = { now: () => (reads++, clock.now()), schedule: clock.schedule.bind(clock), cancel: clock.cancel.bind(clock) };
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 0 });
    const p = pipeline({ name: 'api', clock: reading }, b);
    const sink = openTelemetry({ meterProvider: sdk.meterProvider });
    const detach = sink.attach(p);
    await p.execute(() => 1);
    expect(reads).toBe(2); // the pipeline timed the call: start and end
    expect(value(await sdk.collect(), 'breakwater.calls', { 'breakwater.outcome': 'success' })).toBe(1);
    detach();
    detach(); // a second call does nothing
    reads = 0;
    await p.execute(() => 1);
    expect(reads).toBe(0); // unobserved again: not timed at all
    // The call after detaching is not counted. (With cumulative temporality the SDK
    // keeps exporting the last values of points no longer observed.)
    expect(value(await sdk.collect(), 'breakwater.calls', { 'breakwater.outcome': 'success' })).toBe(1);
  });

  it('drop a disposed pipeline, and let a new pipeline of that name be attached', async () => {
    const sdk = meter();
    const sink = openTelemetry({ meterProvider: sdk.meterProvider });
    const first = pipeline({ name: 'api' }, bulkhead({ maxConcurrent: 2 }));
    sink.attach(first);
    expect(() => sink.attach(pipeline({ name: 'api' }))).toThrow(/another pipeline named "api" is already reported by this sink/);
    first.dispose();
    expect(select(await sdk.collect(), 'breakwater.bulkhead.active')).toEqual([]);
    sink.attach(pipeline({ name: 'api' }, bulkhead({ maxConcurrent: 3 })));
    expect(select(await sdk.collect(), 'breakwater.bulkhead.active')).toHaveLength(1);
    sink.dispose();
    expect(() => sink.attach(pipeline({ name: 'other' }))).toThrow(/was disposed/);
  });

  it('undo a refused attach: a policy that refuses a listener leaves the pipeline unobserved and the name free', async () => {
    const sdk = meter();
    const clock = new FakeClock();
    let reads = 0;
    const reading = { now: () => (reads++, clock.now()), schedule: clock.schedule.bind(clock), cancel: clock.cancel.bind(clock) };
    const adopted = fromOpossum(new CircuitBreaker(runWork));
    adopted.dispose(); // refuses new listeners from now on
    const p = pipeline({ name: 'legacy', clock: reading }, retry({ maxAttempts: 1 }), adopted);
    const sink = openTelemetry({ meterProvider: sdk.meterProvider });
    expect(() => sink.attach(p)).toThrow(/disposed/);
    await p.execute(() => 1);
    expect(reads).toBe(0); // the recorders subscribed before the refusal are gone
    expect(select(await sdk.collect(), 'breakwater.calls')).toEqual([]);
    sink.attach(pipeline({ name: 'legacy' }, retry()));
    expect(select(await sdk.collect(), 'breakwater.calls', { 'breakwater.pipeline': 'legacy' })).toHaveLength(6);
  });

  it('refuse what they cannot report, before subscribing anything', async () => {
    const sdk = meter();
    const sink = openTelemetry({ meterProvider: sdk.meterProvider, maxPipelines: 2 });
    expect(() => sink.attach()).toThrow(/expected at least one pipeline/);
    expect(() => sink.attach({} as never)).toThrow(/argument 1 must be a pipeline created with pipeline\(\); received/);
    expect(() => sink.attach(pipeline(retry()))).toThrow(/without a name/);
    expect(() => sink.attach(pipeline({ name: 'x' }, circuitBreaker(), circuitBreaker()))).toThrow(/2 circuit breakers/);
    const ok = pipeline({ name: 'a' });
    expect(() => sink.attach(ok, pipeline({ name: 'b' }), pipeline({ name: 'c' }))).toThrow(RangeError);
    expect((await sdk.collect()).filter((p) => p.name === 'breakwater.calls')).toEqual([]); // nothing of the refused attach
    sink.attach(ok, ok); // one pipeline twice counts once
    sink.attach(pipeline({ name: 'b' }));
    expect(() => sink.attach(pipeline({ name: 'c' }))).toThrow(/over maxPipelines \(2\)/);
  });
});

describe('openTelemetry options', () => {
  it('name the option, the rule and the value received', () => {
    expect(() => openTelemetry({ meterProvider: {} as never })).toThrow(/openTelemetry: option "meterProvider" must be an OpenTelemetry MeterProvider .*; received/);
    expect(() => openTelemetry({ traces: 'yes' as never })).toThrow(/option "traces"/);
    expect(() => openTelemetry({ buckets: [1, 0.5] })).toThrow(/option "buckets" must be a non-empty array .* strictly increasing; received \[1, 0.5\]/);
    expect(() => openTelemetry({ buckets: [10, 100, 1000] })).toThrow(/looks like milliseconds, but the buckets of breakwater.call.duration are in seconds/);
    expect(() => openTelemetry({ attributes: { 'breakwater.pipeline': 'x' } })).toThrow(/cannot set the attribute "breakwater.pipeline"/);
    expect(() => openTelemetry({ attributes: { region: 1 as never } })).toThrow(/the value of attribute "region" must be a string; received 1/);
    expect(() => openTelemetry({ maxPipelines: 0 })).toThrow(/option "maxPipelines"/);
    expect(() => openTelemetry({ prefix: 'x' } as never)).toThrow(/unknown option "prefix"; known options are meterProvider, traces, attributes, buckets, maxPipelines/);
  });

  it('use the global MeterProvider when none is given (a no-op one until an SDK is registered)', async () => {
    const p = pipeline({ name: 'global' }, retry({ maxAttempts: 1 }));
    const sink = openTelemetry();
    sink.attach(p);
    await expect(p.execute(() => 'ok')).resolves.toBe('ok');
    sink.dispose();
  });
});

describe('the OpenTelemetry reference', () => {
  const doc = readFileSync(new URL('../docs/reference/opentelemetry.md', import.meta.url), 'utf8');
  const kinds = { counter: 'ObservableCounter', gauge: 'ObservableGauge', updowncounter: 'ObservableUpDownCounter', histogram: 'Histogram' };

  it('lists every instrument with its kind, unit and Prometheus family, in order', () => {
    const rows = [...doc.matchAll(/^\| `(breakwater\.[a-z_.]+)` \| (\w+) \| `([^`]+)` \| [^|]+ \| `breakwater_([a-z_]+)`/gm)].map((m) => m.slice(1, 5));
    expect(rows).toEqual(INSTRUMENTS.map((i) => [i.name, kinds[i.kind], i.unit, i.prometheus]));
  });

  it('lists every span event', () => {
    const events = [...doc.matchAll(/^\| `(breakwater\.[a-z_.]+)` \| [a-z]/gm)].map((m) => m[1]);
    expect(new Set(events)).toEqual(new Set(SPAN_EVENTS));
  });
});

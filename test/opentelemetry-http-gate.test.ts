/**
 * breakwater/http admission gates through breakwater/opentelemetry, read back
 * through the real SDK (sdk-metrics and sdk-trace-base with in-memory
 * exporters): the same facts as the Prometheus sink's attachGate, read from the
 * gate when collected; the attach rules (unique names, once per gate, the
 * disposer and dispose() detach); and a span event for each shed request on the
 * server span of that request, on a real node:http server on 127.0.0.1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, type Span, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { aimd } from '../src/index.ts';
import { type GatePermit, gateListener, httpGate } from '../src/http/index.ts';
import { openTelemetry } from '../src/opentelemetry/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { expectSameFacts, sdkMeter, select, value } from './opentelemetry-helpers.ts';
import { scrape } from './prometheus-helpers.ts';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('test');
const contextManager = new AsyncLocalStorageContextManager();
const sdks: { shutdown(): Promise<void> }[] = [];
function meter() {
  const sdk = sdkMeter();
  sdks.push(sdk);
  return sdk;
}

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
});
afterAll(async () => {
  trace.disable();
  context.disable();
  await provider.shutdown();
});
beforeEach(() => exporter.reset());
afterEach(async () => {
  await Promise.all(sdks.splice(0).map((s) => s.shutdown()));
});

function twoClassGate(name = 'api') {
  return httpGate({ name, maxConcurrent: 4, classes: { health: { share: 0.25 } } });
}

/** The `breakwater.http.shed` events of the finished span `name`, as their attributes. */
function shedEvents(name: string): unknown[] {
  const span = exporter.getFinishedSpans().find((s) => s.name === name);
  expect(span, name).toBeDefined();
  return span!.events.filter((e) => e.name === 'breakwater.http.shed').map((e) => e.attributes);
}

describe('openTelemetry.attachGate metrics', () => {
  it('carry the same facts as the Prometheus sink: requests by class and outcome, in flight, the limit', async () => {
    const sdk = meter();
    const registry = new Registry();
    const api = twoClassGate();
    const edge = httpGate({ name: 'edge', adaptive: { algorithm: aimd(), initialLimit: 2, maxLimit: 10 } });
    // Before attaching: one request stays in flight; the others, and a shed one on each gate, are over. Neither sink counts them.
    const early = [api.tryAcquire(), api.tryAcquire(), api.tryAcquire(), api.tryAcquire()];
    expect(early[3]).toBeUndefined(); // shed: the health class holds the fourth slot
    early[1]!.release();
    early[2]!.release();
    const edgeEarly = [edge.tryAcquire(), edge.tryAcquire(), edge.tryAcquire()];
    expect(edgeEarly[2]).toBeUndefined();
    edgeEarly[0]!.release();
    edgeEarly[1]!.release();
    await Promise.resolve();
    openTelemetry({ meterProvider: sdk.meterProvider, attributes: { region: 'eu-1' } }).attachGate(api, edge);
    prometheusMetrics({ registry, labels: { region: 'eu-1' } }).attachGate(api, edge);
    expectSameFacts(await scrape(registry), await sdk.collect());
    const held: (GatePermit | undefined)[] = [];
    for (let i = 0; i < 5; i++) held.push(api.tryAcquire('default'));
    held.push(api.tryAcquire('health'), api.tryAcquire('health'), edge.tryAcquire(), edge.tryAcquire(), edge.tryAcquire());
    const points = await sdk.collect();
    expectSameFacts(await scrape(registry), points);
    const at = (gate: string, cls: string, outcome?: string) => ({
      'breakwater.http.gate': gate,
      'breakwater.http.class': cls,
      ...(outcome === undefined ? {} : { 'breakwater.http.outcome': outcome }),
      region: 'eu-1',
    });
    expect(value(points, 'breakwater.http.requests', at('api', 'default', 'admitted'))).toBe(2);
    expect(value(points, 'breakwater.http.requests', at('api', 'default', 'shed'))).toBe(3);
    expect(value(points, 'breakwater.http.requests', at('api', 'health', 'shed'))).toBe(1);
    expect(value(points, 'breakwater.http.in_flight', at('api', 'default'))).toBe(3);
    expect(value(points, 'breakwater.http.requests', at('edge', 'default', 'shed'))).toBe(1);
    expect(value(points, 'breakwater.http.limit', { 'breakwater.http.gate': 'edge' })).toBe(2);
    for (const p of held) p?.release();
    await Promise.resolve();
    expectSameFacts(await scrape(registry), await sdk.collect());
    expect(value(await sdk.collect(), 'breakwater.http.in_flight', at('api', 'health'))).toBe(0);
  });

  it('use OpenTelemetry kinds and units', async () => {
    const sdk = meter();
    openTelemetry({ meterProvider: sdk.meterProvider }).attachGate(twoClassGate());
    const points = await sdk.collect();
    const kind = (name: string) => {
      const p = select(points, name)[0]!;
      return [p.type, p.monotonic, p.unit];
    };
    expect(kind('breakwater.http.requests')).toEqual(['sum', true, '{request}']);
    expect(kind('breakwater.http.in_flight')).toEqual(['sum', false, '{request}']);
    expect(kind('breakwater.http.limit')).toEqual(['gauge', undefined, '{request}']);
    expect(select(points, 'breakwater.http.requests')).toHaveLength(4); // 2 classes × admitted, shed
  });

  it('for any sequence of requests, agree with the Prometheus sink at every collection', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), cls: fc.constantFrom('default', 'health', 'checkout', 'unknown') }),
      fc.record({ kind: fc.constant('release' as const), index: fc.nat(), outcome: fc.constantFrom('ok' as const, 'dropped' as const, 'abandoned' as const) }),
      fc.record({ kind: fc.constant('collect' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), fc.boolean(), async (ops, adaptive) => {
        const classes = { health: { share: 0.2 }, checkout: { share: 0.4 } };
        const gate = adaptive
          ? httpGate({ name: 'g', adaptive: { algorithm: aimd(), initialLimit: 5, minLimit: 1, maxLimit: 8 }, classes })
          : httpGate({ name: 'g', maxConcurrent: 5, classes });
        const sdk = sdkMeter();
        const registry = new Registry();
        const sink = openTelemetry({ meterProvider: sdk.meterProvider, traces: false });
        sink.attachGate(gate);
        prometheusMetrics({ registry }).attachGate(gate);
        const held: GatePermit[] = [];
        try {
          for (const o of ops) {
            if (o.kind === 'acquire') {
              const permit = gate.tryAcquire(o.cls);
              if (permit !== undefined) held.push(permit);
            } else if (o.kind === 'release') {
              if (held.length > 0) held.splice(o.index % held.length, 1)[0]!.release(o.outcome);
              await Promise.resolve();
            } else expectSameFacts(await scrape(registry), await sdk.collect());
          }
          expectSameFacts(await scrape(registry), await sdk.collect());
        } finally {
          for (const p of held) p.release();
          sink.dispose();
          await sdk.shutdown();
        }
      }),
      { numRuns: 40 },
    );
  }, 60_000);
});

describe('openTelemetry.attachGate rules', () => {
  it('refuse what they cannot report, before reporting anything', async () => {
    const sdk = meter();
    const sink = openTelemetry({ meterProvider: sdk.meterProvider });
    expect(() => sink.attachGate()).toThrow(/openTelemetry\.attachGate: expected at least one gate; received none/);
    expect(() => sink.attachGate({} as never)).toThrow(/argument 1 must be a gate created with httpGate\(\); received an object/);
    expect(() => sink.attachGate({ kind: 'http-gate', name: ' bad', limit: 1, classes: [] })).toThrow(/gate name " bad".* is not valid/);
    expect(() => sink.attachGate(twoClassGate(), twoClassGate())).toThrow(/another gate named "api" is already reported by this sink/);
    expect(select(await sdk.collect(), 'breakwater.http.limit')).toEqual([]); // nothing of the refused attaches
    const api = twoClassGate();
    sink.attachGate(api);
    expect(() => sink.attachGate(httpGate({ name: 'other', maxConcurrent: 1 }), twoClassGate())).toThrow(/another gate named "api"/);
    expect(select(await sdk.collect(), 'breakwater.http.limit', { 'breakwater.http.gate': 'other' })).toEqual([]);
  });

  it('report a gate attached twice once, until its last attachment goes; then the name is free', async () => {
    const sdk = meter();
    const sink = openTelemetry({ meterProvider: sdk.meterProvider });
    const api = twoClassGate();
    const first = sink.attachGate(api);
    const second = sink.attachGate(api, api);
    expect(select(await sdk.collect(), 'breakwater.http.limit')).toHaveLength(1);
    first();
    first(); // a second call does nothing
    expect(() => sink.attachGate(twoClassGate())).toThrow(/another gate named "api"/);
    second();
    const replacement = httpGate({ name: 'api', maxConcurrent: 9 });
    sink.attachGate(replacement);
    expect(value(await sdk.collect(), 'breakwater.http.limit', { 'breakwater.http.gate': 'api' })).toBe(9);
  });

  it('stop counting and listening once detached or disposed', async () => {
    const sdk = meter();
    const sink = openTelemetry({ meterProvider: sdk.meterProvider });
    const gate = httpGate({ name: 'api', maxConcurrent: 1 });
    const detach = sink.attachGate(gate);
    const permit = gate.tryAcquire()!;
    tracer.startActiveSpan('detached', (span: Span) => {
      gate.tryAcquire(); // shed, reported
      detach();
      gate.tryAcquire(); // shed, no longer reported
      span.end();
    });
    expect(shedEvents('detached')).toHaveLength(1);
    expect(select(await sdk.collect(), 'breakwater.http.limit')).toEqual([]);
    sink.attachGate(gate); // counted from this attach on
    expect(value(await sdk.collect(), 'breakwater.http.requests', { 'breakwater.http.outcome': 'shed' })).toBe(0);
    tracer.startActiveSpan('disposed', (span: Span) => {
      gate.tryAcquire();
      sink.dispose(); // detaches the gate too
      gate.tryAcquire();
      span.end();
    });
    expect(shedEvents('disposed')).toHaveLength(1);
    expect(() => sink.attachGate(gate)).toThrow(/openTelemetry\.attachGate: this sink was disposed/);
    permit.release();
  });
});

describe('openTelemetry.attachGate span events', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it('add breakwater.http.shed with the gate and class to the server span of each shed request, not of admitted ones', async () => {
    const gate = httpGate({ name: 'api', maxConcurrent: 2, classes: { health: { share: 0.5 } }, classify: (r) => (r.url === '/healthz' ? 'health' : undefined) });
    openTelemetry({ meterProvider: meter().meterProvider }).attachGate(gate);
    let release: (() => void) | undefined;
    const parked = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const gated = gateListener(gate, async (_request, response) => {
      started();
      await parked;
      response.end('ok');
    });
    // What an HTTP server instrumentation does: a span per request, active in its listener, ended on close.
    server = createServer((request, response) =>
      tracer.startActiveSpan(`${request.method} ${request.url}`, (span: Span) => {
        response.on('close', () => span.end());
        gated(request, response);
      }),
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const slow = fetch(`${url}/slow`).then((r) => r.text());
    await running;
    const shed = await fetch(`${url}/other`, { signal: AbortSignal.timeout(5_000) });
    expect(shed.status).toBe(503);
    await shed.text();
    release!();
    expect(await slow).toBe('ok');
    await new Promise((resolve) => setImmediate(resolve)); // the spans end on close
    expect(shedEvents('GET /other')).toEqual([{ 'breakwater.http.gate': 'api', 'breakwater.http.class': 'default' }]);
    expect(shedEvents('GET /slow')).toEqual([]);
  });

  it('are not added with traces off', () => {
    const gate = httpGate({ name: 'api', maxConcurrent: 1 });
    openTelemetry({ meterProvider: meter().meterProvider, traces: false }).attachGate(gate);
    tracer.startActiveSpan('off', (span: Span) => {
      const permit = gate.tryAcquire()!;
      expect(gate.tryAcquire()).toBeUndefined();
      permit.release();
      span.end();
    });
    expect(shedEvents('off')).toEqual([]);
  });
});

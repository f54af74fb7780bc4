/**
 * breakwater/opentelemetry's span events, read back through the real trace SDK
 * (sdk-trace-base with an in-memory exporter, and the AsyncLocalStorage context
 * manager a Node service registers): each call's retries, hedges, breaker
 * refusals and fallbacks land on the caller's own span, also when calls overlap.
 */
import { type Attributes, context, type Span, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bulkhead, circuitBreaker, constant, fallback, hedge, pipeline, rateLimiter, retry, rollout, timeout } from '../src/index.ts';
import { openTelemetry } from '../src/opentelemetry/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';
import { sdkMeter } from './opentelemetry-helpers.ts';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('test');
const contextManager = new AsyncLocalStorageContextManager();
const sdk = sdkMeter();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
});
afterAll(async () => {
  trace.disable();
  context.disable();
  await provider.shutdown();
  await sdk.shutdown();
});
beforeEach(() => exporter.reset());

/** Runs `body` under a new active span named `name`, ends it, and returns what `body` returned. */
async function inSpan<T>(name: string, body: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, async (span: Span) => {
    try {
      return await body();
    } finally {
      span.end();
    }
  });
}

/** The finished span named `name`. */
function spanNamed(name: string): ReadableSpan {
  const found = exporter.getFinishedSpans().filter((s) => s.name === name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
}

/** The events of span `name`, as [event name, attributes]. */
function events(name: string): [string, Attributes | undefined][] {
  return spanNamed(name).events.map((e) => [e.name, e.attributes]);
}

describe('openTelemetry span events', () => {
  it('tell on the caller span why a call took long: each retry with its attempt, delay and error, the give-up, the fallback and the outcome', async () => {
    const clock = new FakeClock();
    const p = pipeline(
      { name: 'auth', clock },
      fallback({ value: 'guest' }),
      retry({ maxAttempts: 3, backoff: constant({ ms: 100 }), clock }),
      timeout({ ms: 50, clock }),
    );
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    const call = track(
      inSpan('GET /profile', () =>
        p.execute(({ attempt }) => (attempt === 1 ? never() : Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' })))),
      ),
    );
    await clock.advance(50); // the first attempt times out
    await clock.advance(100); // the second fails at once after its backoff
    await clock.advance(100); // so does the third
    expect(await call.promise).toBe('guest');
    expect(events('GET /profile')).toEqual([
      ['breakwater.retry', { 'breakwater.pipeline': 'auth', 'breakwater.attempt': 2, 'breakwater.retry.delay_ms': 100, 'error.type': 'ERR_BREAKWATER_TIMEOUT' }],
      ['breakwater.retry', { 'breakwater.pipeline': 'auth', 'breakwater.attempt': 3, 'breakwater.retry.delay_ms': 100, 'error.type': 'ECONNRESET' }],
      ['breakwater.retry.give_up', { 'breakwater.pipeline': 'auth', 'breakwater.attempts': 3, 'breakwater.retry.reason': 'max-attempts', 'error.type': 'ECONNRESET' }],
      ['breakwater.fallback', { 'breakwater.pipeline': 'auth', 'breakwater.fallback.cause': 'failure', 'error.type': 'ECONNRESET' }],
      ['breakwater.call', { 'breakwater.pipeline': 'auth', 'breakwater.outcome': 'fallback', 'breakwater.duration_ms': 250 }],
    ]);
  });

  it('mark the call that opened the breaker, and the calls it refused', async () => {
    const breaker = circuitBreaker({ minimumCalls: 1, failureRateThreshold: 1 });
    const p = pipeline({ name: 'db' }, bulkhead({ maxConcurrent: 1, maxQueue: 0 }), breaker);
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    await inSpan('first', () => p.execute(() => Promise.reject(new Error('down'))).catch(() => {}));
    await inSpan('second', () => p.execute(() => 'not run').catch(() => {}));
    expect(events('first').map(([name, a]) => [name, a?.['breakwater.circuit.state']])).toEqual([
      ['breakwater.circuit.state_change', 'open'],
      ['breakwater.call', undefined],
    ]);
    expect(events('first')[0]![1]).toMatchObject({ 'breakwater.circuit.previous_state': 'closed', 'breakwater.circuit.reason': expect.any(String) });
    expect(events('second')).toEqual([
      ['breakwater.circuit.rejected', { 'breakwater.pipeline': 'db', 'breakwater.circuit.state': 'open' }],
      ['breakwater.call', { 'breakwater.pipeline': 'db', 'breakwater.outcome': 'rejected', 'breakwater.duration_ms': expect.any(Number) }],
    ]);
    // A bulkhead refusal, on the span of the call it refused.
    breaker.reset();
    const holding = p.execute(() => delayed(new FakeClock(), 1, 'x')); // never settles: its clock is never advanced
    await inSpan('third', () => p.execute(() => 'not run').catch(() => {}));
    expect(events('third')[0]).toEqual(['breakwater.bulkhead.rejected', { 'breakwater.pipeline': 'db', 'breakwater.bulkhead.reason': 'full' }]);
    void holding;
  });

  it('keep overlapping calls apart: each span gets its own retries and hedges, and the work of a hedged attempt runs under its caller span', async () => {
    const clock = new FakeClock();
    const p = pipeline(
      { name: 'search', clock },
      retry({ maxAttempts: 2, backoff: constant({ ms: 30 }), clock }),
      hedge({ delayMs: 10, maxExtraLoad: 1, clock }),
    );
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    const seen: [string, number, string | undefined][] = [];
    const work = (caller: string) => ({ attempt }: { attempt: number }) => {
      seen.push([caller, attempt, (trace.getActiveSpan() as unknown as ReadableSpan | undefined)?.name]);
      // Attempt 1 is slow (a hedge starts), the hedge fails, then attempt 1 fails: retried once.
      return attempt === 1 ? delayed(clock, 20, 'x').then(() => Promise.reject(new Error('slow fail'))) : attempt === 2 ? Promise.reject(new Error('hedge fail')) : 'ok';
    };
    const a = track(inSpan('A', () => p.execute(work('A'))));
    await clock.advance(5);
    const b = track(inSpan('B', () => p.execute(work('B'))));
    await clock.advance(200);
    expect([await a.promise, await b.promise]).toEqual(['ok', 'ok']);
    // Every attempt's work ran under its own caller's span, the hedges from the policy's one timer included.
    for (const [caller, , active] of seen) expect(active, `an attempt of ${caller}`).toBe(caller);
    for (const name of ['A', 'B']) {
      expect(events(name).map(([event]) => event), name).toEqual(['breakwater.hedge', 'breakwater.retry', 'breakwater.hedge', 'breakwater.hedge.won', 'breakwater.call']);
      expect(events(name)[0]![1]).toEqual({ 'breakwater.pipeline': 'search', 'breakwater.attempt': 2, 'breakwater.hedge.after_ms': 10 });
    }
  });

  it('run a queued call, and refuse it when its queue wait expires, under its own caller span', async () => {
    const clock = new FakeClock();
    const p = pipeline({ name: 'pool', clock }, bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 50, clock }));
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    const active = () => (trace.getActiveSpan() as unknown as ReadableSpan | undefined)?.name;
    const ran: (string | undefined)[] = [];
    const a = track(inSpan('holder', () => p.execute(() => delayed(clock, 10, 'a'))));
    const b = track(inSpan('queued', () => p.execute(() => (ran.push(active()), 'b'))));
    await clock.advance(10); // the holder releases its slot: the queued call starts
    expect([await a.promise, await b.promise, ran]).toEqual(['a', 'b', ['queued']]);
    const c = track(inSpan('holder-2', () => p.execute(() => delayed(clock, 100, 'c'))));
    const d = track(inSpan('expires', () => p.execute(() => 'never runs').catch((e: Error) => e.name)));
    await clock.advance(100);
    expect([await c.promise, await d.promise]).toEqual(['c', 'BulkheadRejectedError']);
    expect(events('expires').map(([name]) => name)).toEqual(['breakwater.bulkhead.rejected', 'breakwater.call']);
    expect(events('expires')[0]![1]).toEqual({ 'breakwater.pipeline': 'pool', 'breakwater.bulkhead.reason': 'queue-timeout' });
    expect(events('holder-2').map(([name]) => name)).toEqual(['breakwater.call']);
  });

  it('let a call that waited for a rate-limiter token go on under its own caller span, with the wait on it', async () => {
    const clock = new FakeClock();
    const p = pipeline({ name: 'quota', clock }, rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 5, clock }));
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    const ran: (string | undefined)[] = [];
    const work = () => (ran.push((trace.getActiveSpan() as unknown as ReadableSpan | undefined)?.name), 'ok');
    const first = track(inSpan('first', () => p.execute(work)));
    const waits = track(inSpan('waits', () => p.execute(work))); // the limiter's timer is armed here
    const waitsLonger = track(inSpan('waits-longer', () => p.execute(work)));
    await clock.advance(200);
    await Promise.all([first.promise, waits.promise, waitsLonger.promise]);
    expect(ran).toEqual(['first', 'waits', 'waits-longer']);
    expect(events('waits-longer')[0]).toEqual(['breakwater.rate_limit.delayed', { 'breakwater.pipeline': 'quota', 'breakwater.rate_limit.waited_ms': 200 }]);
    expect(events('first').map(([name]) => name)).toEqual(['breakwater.call']);
  });

  it('tell which calls a guarded rollout sent to its experiment, which the stable path answered, and which one rolled it back', async () => {
    const clock = new FakeClock();
    const feature = rollout({ experimental: () => Promise.reject(new Error('new code broke')), share: () => 1, rampStep: 1, minimumCalls: 2, clock });
    const p = pipeline({ name: 'ranking', clock }, feature);
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    expect(await inSpan('r1', () => p.execute(() => 'stable'))).toBe('stable');
    expect(await inSpan('r2', () => p.execute(() => 'stable'))).toBe('stable');
    expect(await inSpan('r3', () => p.execute(() => 'stable'))).toBe('stable');
    const names = (span: string) => events(span).map(([name]) => name);
    expect(names('r1')).toEqual(['breakwater.rollout.exposure', 'breakwater.rollout.experiment_failed', 'breakwater.call']);
    expect(events('r1')[1]![1]).toEqual({ 'breakwater.pipeline': 'ranking', 'error.type': 'Error' });
    // The failure that tips the error rate rolls back first, then the stable path answers.
    expect(names('r2')).toEqual(['breakwater.rollout.exposure', 'breakwater.rollout.rollback', 'breakwater.rollout.experiment_failed', 'breakwater.call']);
    expect(events('r2')[1]![1]).toEqual({ 'breakwater.pipeline': 'ranking', 'breakwater.rollout.reason': 'error_rate' });
    expect(names('r3')).toEqual(['breakwater.call']); // rolled back: the experiment is not tried
  });

  it('add nothing without an active span, or with traces off', async () => {
    const p = pipeline({ name: 'quiet' }, retry({ maxAttempts: 2, backoff: constant({ ms: 0 }) }));
    openTelemetry({ meterProvider: sdk.meterProvider }).attach(p);
    const q = pipeline({ name: 'untraced' }, retry({ maxAttempts: 2, backoff: constant({ ms: 0 }) }));
    openTelemetry({ meterProvider: sdk.meterProvider, traces: false }).attach(q);
    await expect(p.execute(({ attempt }) => (attempt === 1 ? Promise.reject(new Error('x')) : 'ok'))).resolves.toBe('ok');
    await inSpan('off', () => q.execute(({ attempt }) => (attempt === 1 ? Promise.reject(new Error('x')) : 'ok')));
    expect(events('off')).toEqual([]);
  });
});

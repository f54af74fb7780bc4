/**
 * Property: whatever the calls do, breakwater/opentelemetry reports the same
 * facts as breakwater/prometheus on the same pipelines: every counter, gauge and
 * histogram bucket, at every collection. Random workloads over pipelines with
 * every policy, in virtual time (FakeClock), read through the real SDK.
 */
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterAll, describe, it } from 'vitest';
import {
  adaptiveLimit,
  aimd,
  bulkhead,
  circuitBreaker,
  constant,
  fallback,
  hedge,
  pipeline,
  rateLimiter,
  retry,
  throttle,
  timeout,
} from '../src/index.ts';
import { chaos } from '../src/chaos/index.ts';
import { openTelemetry } from '../src/opentelemetry/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { delayed, never } from './helpers.ts';
import { expectSameFacts, sdkMeter } from './opentelemetry-helpers.ts';
import { scrape } from './prometheus-helpers.ts';

const sdks: { shutdown(): Promise<void> }[] = [];
afterAll(async () => {
  await Promise.all(sdks.map((s) => s.shutdown()));
});

type Behaviour = { kind: 'ok' | 'slow'; ms: number } | { kind: 'fail' | 'hang' | 'fallback' | 'abort' };

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.record({ kind: fc.constantFrom('ok' as const, 'slow' as const), ms: fc.integer({ min: 0, max: 80 }) }),
  fc.record({ kind: fc.constantFrom('fail' as const, 'hang' as const, 'fallback' as const, 'abort' as const) }),
);

const step = fc.record({
  target: fc.constantFrom('auth' as const, 'search' as const),
  behaviour,
  advanceMs: fc.integer({ min: 0, max: 60 }),
  collect: fc.boolean(),
});

describe('openTelemetry and Prometheus report the same facts', () => {
  it('for any workload, at every collection', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), fc.integer(), async (steps, seed) => {
        const clock = new FakeClock();
        const random = seededRandom(seed);
        const auth = pipeline(
          { name: 'auth', clock },
          fallback({ value: 'fb', handle: (e) => (e as Error).message === 'use fallback' }),
          bulkhead({ maxConcurrent: 2, maxQueue: 1, queueTimeoutMs: 30, clock }),
          retry({ maxAttempts: 2, backoff: constant({ ms: 5 }), clock }),
          circuitBreaker({ clock, minimumCalls: 3, failureRateThreshold: 0.5, halfOpenAfterMs: 100 }),
          timeout({ ms: 40, clock }),
        );
        const search = pipeline(
          { name: 'search', clock },
          rateLimiter({ ratePerSecond: 50, burst: 2, maxQueue: 2, clock }),
          throttle({ minimumRequests: 2, clock, random }),
          adaptiveLimit({ algorithm: aimd(), maxQueue: 2, clock }),
          hedge({ delayMs: 10, maxExtraLoad: 0.5, clock }),
          chaos({ kind: 'fault', injectionRate: 0.2, enabled: true, random, error: () => new Error('injected') }),
        );
        const sdk = sdkMeter();
        sdks.push(sdk);
        const registry = new Registry();
        openTelemetry({ meterProvider: sdk.meterProvider, traces: false }).attach(auth, search);
        prometheusMetrics({ registry }).attach(auth, search);
        for (const s of steps) {
          const p = s.target === 'auth' ? auth : search;
          const controller = new AbortController();
          const b = s.behaviour;
          const work = ({ signal }: { signal: AbortSignal }): unknown => {
            switch (b.kind) {
              case 'ok':
                return b.ms === 0 ? 'ok' : delayed(clock, b.ms, 'ok', signal);
              case 'slow':
                return delayed(clock, b.ms + 30, 'slow', signal);
              case 'fail':
                return Promise.reject(new Error('down'));
              case 'fallback':
                return Promise.reject(new Error('use fallback'));
              default:
                return never();
            }
          };
          p.execute(work, { signal: controller.signal }).catch(() => {});
          if (b.kind === 'abort') controller.abort(new Error('caller left'));
          await clock.advance(s.advanceMs);
          if (s.collect) expectSameFacts(await scrape(registry), await sdk.collect());
        }
        await clock.advance(10_000); // everything that can settle has (a hung call on 'search', which has no timeout, stays in flight)
        expectSameFacts(await scrape(registry), await sdk.collect());
      }),
      { numRuns: 30 },
    );
  }, 120_000);
});

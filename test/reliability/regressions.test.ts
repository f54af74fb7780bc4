/**
 * Counterexamples the reliability suite found, shrunk by fast-check, kept as
 * explicit tests. Each says what broke; docs and /work/notes hold the details.
 * A scenario here replays through the same harness as the properties
 * (scenario.ts), so it checks every invariant, not only the one that broke.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { circuitBreaker, constant, fallback, pipeline, retry, timeout } from '../../src/index.ts';
import { FakeClock } from '../../src/testing/index.ts';
import { recordUnhandledRejections, runScenario, type Scenario } from './scenario.ts';

let stopRecording: () => void = () => {};
beforeAll(() => {
  stopRecording = recordUnhandledRejections();
});
afterAll(() => stopRecording());

describe('regressions found by the random pipelines', () => {
  /*
   * Broke: "the metrics agree with what the callers saw". A fallback below a
   * timeout ran on an attempt the timeout had already abandoned, and marked the
   * whole call as fallen back. The retry above then succeeded with the work's
   * own value, but the call was counted as `fallback` (calls_total, onSettled,
   * onFallback). Fixed in src/fallback.ts: a fallback whose scope was aborted by
   * the layer above does not fall back (its result would go nowhere).
   */
  it('a fallback on an attempt abandoned by its timeout does not make a retried success count as a fallback', async () => {
    const shrunk: Scenario = {
      policies: [
        {
          kind: 'pipeline',
          named: false,
          policies: [{ kind: 'retry', maxAttempts: 2, backoff: { kind: 'constant', ms: 0, jitter: 'none' }, handle: 'default', budget: false, maxElapsedMs: undefined, retryAfterMs: undefined }],
        },
        { kind: 'timeout', ms: 1 },
        { kind: 'fallback', mode: 'value', handle: 'all' },
      ],
      calls: [
        { behaviours: [{ kind: 'honourAbort', afterMs: 1, fail: false }, { kind: 'honourAbort', afterMs: 0, fail: false }], startAtMs: 0, signal: 'none', abortAtMs: undefined, reason: 'error' },
        { behaviours: [{ kind: 'honourAbort', afterMs: 0, fail: false }], startAtMs: 0, signal: 'none', abortAtMs: undefined, reason: 'error' },
      ],
      seed: 0,
    };
    expect((await runScenario(shrunk)).violations).toEqual([]);
  });

  it('(the same, by hand) the outcome is success and onFallback does not fire', async () => {
    const clock = new FakeClock();
    const fb = fallback({ value: 'fb' });
    let fallbacks = 0;
    fb.onFallback(() => fallbacks++);
    const p = pipeline({ name: 'r', clock }, retry({ maxAttempts: 2, backoff: constant({ ms: 0 }), clock }), timeout({ ms: 10, clock }), fb);
    const outcomes: string[] = [];
    p.onSettled((e) => outcomes.push(e.outcome));
    const result = p.execute(({ signal, attempt }) =>
      attempt === 1 ? new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))) : 'ok',
    );
    await clock.advance(10);
    expect(await result).toBe('ok');
    expect(outcomes).toEqual(['success']);
    expect(fallbacks).toBe(0);
  });

  /*
   * Broke the harness, not a policy: a call queued in an inner bulkhead holds a
   * slot of the outer one, so "slots held ≤ hanging invocations" was wrong; the
   * bound is hanging invocations + pending calls. Kept so the harness stays right.
   */
  it('(harness) a call queued in an inner bulkhead behind hanging work holds its outer slot', async () => {
    const shrunk: Scenario = {
      policies: [
        { kind: 'bulkhead', maxConcurrent: 2, maxQueue: 0, queueTimeoutMs: undefined },
        { kind: 'pipeline', named: false, policies: [{ kind: 'bulkhead', maxConcurrent: 1, maxQueue: Infinity, queueTimeoutMs: undefined }] },
      ],
      calls: [
        { behaviours: [{ kind: 'neverThenable' }, { kind: 'value' }], startAtMs: 0, signal: 'none', abortAtMs: undefined, reason: 'error' },
        { behaviours: [{ kind: 'thenable' }], startAtMs: 0, signal: 'none', abortAtMs: undefined, reason: 'error' },
      ],
      seed: 0,
    };
    const result = await runScenario(shrunk);
    expect(result.violations).toEqual([]);
    expect(result.pending).toBe(2); // both calls stay pending: nothing can settle the hanging one, the other waits behind it
  });
});

describe('regressions found by the bad-input catalogue', () => {
  /*
   * Broke: "NaN is a wrong type" (TypeError), as everywhere else. The breaker's
   * halfOpenAfterMs (a number or a schedule, checked by validate.ts `either`)
   * threw a RangeError for NaN. Fixed in src/validate.ts.
   */
  it('circuitBreaker({ halfOpenAfterMs: NaN }) throws a TypeError like every other NaN option', () => {
    expect(() => circuitBreaker({ halfOpenAfterMs: NaN })).toThrow(TypeError);
    expect(() => circuitBreaker({ halfOpenAfterMs: NaN })).toThrow(/option "halfOpenAfterMs" must be .*; received NaN$/);
    expect(() => circuitBreaker({ halfOpenAfterMs: -1 })).toThrow(RangeError);
  });
});

describe('findings fixed after the first reliability run', () => {
  /*
   * Breaks: "no unbounded memory growth from any input" (docs/security.md), in a
   * time-bounded way. The timeout's deadline queue keeps the TimedCall of every
   * call started after the oldest call still in flight, and a settled TimedCall
   * still holds its promise's resolve/reject functions, hence the promise, hence
   * the call's result (or error). So one slow call under timeout({ ms: 60_000 })
   * keeps every result returned meanwhile reachable for up to 60 s: 40 results
   * of 1 MiB hold 40 MiB. Fixed in src/timeout.ts: TimedCall drops resolve/reject
   * (replaced by a no-op) as soon as the call settles.
   */
  it.each(['resolve', 'reject'])('a settled call does not keep its result (%s) reachable while an older call is in flight', (how) => {
    const fixture = fileURLToPath(new URL('./fixtures/retention.ts', import.meta.url));
    const out = execFileSync(process.execPath, ['--expose-gc', fixture, how], { encoding: 'utf8' });
    const { whileOlderCallInFlightMiB, afterItExpiredMiB } = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>;
    expect(afterItExpiredMiB).toBeLessThan(10); // the fixture itself is sound: everything goes eventually
    expect(whileOlderCallInFlightMiB).toBeLessThan(10);
  }, 60_000);

  /*
   * Breaks: "Breakwater does not trust the work's errors" (docs/security.md).
   * Work that rejects with a value whose every property read throws (a revoked
   * Proxy) reaches the error guards (isRejection, isTimeoutError, ...), which read
   * its properties without a try/catch:
   * - circuitBreaker: the default `handle` throws inside the breaker, which counts
   *   a failure and rethrows the TypeError on a microtask: an uncaughtException,
   *   which ends a process that has no handler;
   * - retry (default `handle`): the call rejects with that TypeError instead of
   *   the work's own value;
   * - a pipeline with an onSettled listener (any attached metrics sink): the call
   *   rejects with the TypeError and onSettled never fires, so the metrics lose it.
   * Fixed in src/core/errors.ts: hasCode / isBreakwaterError return false when
   * reading the value throws.
   */
  it('a rejection value whose property reads throw passes through unchanged, counted, with no uncaught exception', () => {
    const fixture = fileURLToPath(new URL('./fixtures/hostile-error.ts', import.meta.url));
    const out = execFileSync(process.execPath, [fixture], { encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({
      retry: 'unchanged',
      breaker: 'unchanged',
      pipelineWithMetrics: 'unchanged',
      settledEvents: 1,
      uncaught: [],
    });
  }, 60_000);
});

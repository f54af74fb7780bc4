/**
 * A pipeline that someone observes (an `onSettled` listener, a metrics sink)
 * reads each call's start and end itself, around one more promise step. These
 * tests pin what that promises: each call is reported exactly once, before the
 * caller's own reactions run, with the outcome the caller saw and the time it
 * waited (in virtual time), whatever the layers are, built-in or custom.
 */
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  BulkheadRejectedError,
  type Chain,
  circuitBreaker,
  constant,
  fallback,
  isRejection,
  isTimeoutError,
  type Outcome,
  type Pipeline,
  pipeline,
  type Policy,
  PolicyBase,
  retry,
  type Scope,
  type SettledEvent,
  timeout,
} from '../src/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, surfacedErrors } from './helpers.ts';

/** Rejects with `error` after `ms` of fake time. */
function failing(clock: FakeClock, ms: number, error: Error): Promise<never> {
  return new Promise<never>((_, reject) => clock.schedule(() => reject(error), ms));
}

/** A custom layer that hands the call on unchanged. */
class PassThrough extends PolicyBase {
  readonly kind = 'pass-through';
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return chain.next(index + 1, scope, attempt);
  }
}

/** A custom layer that waits on the way in and on the way out, on the fake clock. */
class Linger extends PolicyBase {
  readonly kind = 'linger';
  private readonly clock: FakeClock;
  private readonly ms: number;
  constructor(clock: FakeClock, ms: number) {
    super();
    this.clock = clock;
    this.ms = ms;
  }
  async _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    await delayed(this.clock, this.ms, undefined);
    try {
      return await chain.next(index + 1, scope, attempt);
    } finally {
      await delayed(this.clock, this.ms, undefined);
    }
  }
}

describe('every call is reported once, before its caller sees the result', () => {
  /** Runs one call and records the order of its report and the caller's reaction. */
  async function observe(
    p: Pipeline<unknown>,
    clock: FakeClock,
    run: (p: Pipeline<unknown>) => Promise<unknown>,
    advanceMs = 1_000,
  ): Promise<{ log: string[]; events: SettledEvent[]; result: PromiseSettledResult<unknown>; waitedMs: number }> {
    const log: string[] = [];
    const events: SettledEvent[] = [];
    const stop = p.onSettled((event) => {
      events.push(event);
      log.push(`report ${event.outcome}`);
    });
    const startedAt = clock.now();
    let waitedMs = NaN;
    let result: PromiseSettledResult<unknown> | undefined;
    run(p).then(
      (value) => {
        waitedMs = clock.now() - startedAt;
        result = { status: 'fulfilled', value };
        log.push('caller');
      },
      (reason: unknown) => {
        waitedMs = clock.now() - startedAt;
        result = { status: 'rejected', reason };
        log.push('caller');
      },
    );
    await clock.advance(advanceMs);
    stop();
    return { log, events, result: result!, waitedMs };
  }

  it('fallback outermost, async factory: reported when the factory’s promise settles', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, fallback({ factory: () => delayed(clock, 30, 'late fallback') }), timeout({ ms: 50, clock }));
    const { log, events, result, waitedMs } = await observe(p, clock, (q) => q.execute(() => failing(clock, 10, new Error('x'))));
    expect(result).toEqual({ status: 'fulfilled', value: 'late fallback' });
    expect(log).toEqual(['report fallback', 'caller']);
    expect(events[0]!.durationMs).toBe(40);
    expect(waitedMs).toBe(40);
  });

  it('fallback outermost, a factory that throws: reported as a failure with the thrown error', async () => {
    const clock = new FakeClock();
    const thrown = new Error('factory broke');
    const p = pipeline(
      { clock },
      fallback({
        factory: () => {
          throw thrown;
        },
      }),
      timeout({ ms: 50, clock }),
    );
    const { log, events, result } = await observe(p, clock, (q) => q.execute(() => Promise.reject(new Error('x'))));
    expect(result).toEqual({ status: 'rejected', reason: thrown });
    expect(log).toEqual(['report failure', 'caller']);
    expect(events[0]!.error).toBe(thrown);
  });

  it('retry outermost: a retried call is reported once, when its last attempt settles', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, retry({ maxAttempts: 3, backoff: constant({ ms: 10 }), clock }), timeout({ ms: 50, clock }));
    let attempts = 0;
    const { log, events, result, waitedMs } = await observe(p, clock, (q) =>
      q.execute(() => (++attempts < 3 ? failing(clock, 5, new Error('flaky')) : delayed(clock, 5, 'ok'))),
    );
    expect(result).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(log).toEqual(['report success', 'caller']);
    expect(events[0]!.durationMs).toBe(35);
    expect(waitedMs).toBe(35);
  });

  it('retry outermost: an error it does not retry is reported as it rethrows it', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, retry({ maxAttempts: 3, handle: () => false, clock }));
    const error = new Error('not retried');
    const { log, events } = await observe(p, clock, (q) => q.execute(() => Promise.reject(error)));
    expect(log).toEqual(['report failure', 'caller']);
    expect(events[0]!.error).toBe(error);
  });

  it('bulkhead outermost: a queued call and a refused call are each reported once', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, bulkhead({ maxConcurrent: 1, maxQueue: 1, clock }));
    const events: SettledEvent[] = [];
    p.onSettled((event) => events.push(event));
    const seen: string[] = [];
    const first = p.execute(() => delayed(clock, 10, 'first'));
    const queued = p.execute(() => delayed(clock, 10, 'queued')).then((v) => seen.push(`caller ${String(v)} after ${events.length} reports`));
    const refused = p.execute(() => 'never runs').catch((error: unknown) => seen.push(`refused ${String(error instanceof BulkheadRejectedError)} after ${events.length} reports`));
    await clock.advance(20);
    await Promise.all([first, queued, refused]);
    expect(events.map((e) => [e.outcome, e.durationMs])).toEqual([
      ['rejected', 0],
      ['success', 10],
      ['success', 20],
    ]);
    expect(seen).toEqual(['refused true after 1 reports', 'caller queued after 3 reports']);
  });

  it('circuitBreaker outermost: a refusal while open is reported as rejected', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock });
    breaker.isolate();
    const p = pipeline({ clock }, breaker, timeout({ ms: 50, clock }));
    const { log, events, result } = await observe(p, clock, (q) => q.execute(() => 'never runs'));
    expect(result.status).toBe('rejected');
    expect(isRejection((result as PromiseRejectedResult).reason)).toBe(true);
    expect(log).toEqual(['report rejected', 'caller']);
    expect(events[0]!.durationMs).toBe(0);
  });

  it('timeout outermost: an expired call is reported once, and the work’s late result is not reported again', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, timeout({ ms: 50, clock }), circuitBreaker({ clock }));
    const { log, events, result, waitedMs } = await observe(p, clock, (q) => q.execute(() => delayed(clock, 80, 'too late')));
    expect(isTimeoutError((result as PromiseRejectedResult).reason)).toBe(true);
    expect(log).toEqual(['report timeout', 'caller']);
    expect(events).toHaveLength(1);
    expect(events[0]!.durationMs).toBe(50);
    expect(waitedMs).toBe(50);
  });

  it('a caller abort is reported once as cancelled; the work settling later is not reported', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, fallback({ value: 'fallback' }), circuitBreaker({ clock }));
    const controller = new AbortController();
    clock.schedule(() => controller.abort(new Error('caller gave up')), 20);
    const { log, events, waitedMs } = await observe(p, clock, (q) => q.execute(() => delayed(clock, 60, 'ok'), { signal: controller.signal }));
    expect(log).toEqual(['report cancelled', 'caller']);
    expect(events).toHaveLength(1);
    expect(events[0]!.durationMs).toBe(20);
    expect(waitedMs).toBe(20);
  });

  it('an already-aborted caller signal is reported once as cancelled, without calling the work', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, fallback({ value: 'fallback' }));
    const reason = new Error('already gone');
    let called = false;
    const { log, events } = await observe(p, clock, (q) =>
      q.execute(
        () => {
          called = true;
          return 'ok';
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(called).toBe(false);
    expect(log).toEqual(['report cancelled', 'caller']);
    expect(events[0]!.error).toBe(reason);
  });

  it('a timed pipeline nested in another reports through its own outermost layer', async () => {
    const clock = new FakeClock();
    const inner = pipeline({ clock }, retry({ maxAttempts: 2, backoff: constant({ ms: 5 }), clock }), timeout({ ms: 50, clock }));
    const innerEvents: SettledEvent[] = [];
    inner.onSettled((event) => innerEvents.push(event));
    const outer = pipeline({ clock }, fallback({ value: 'fallback' }), inner);
    let attempts = 0;
    const { log, events } = await observe(outer, clock, (q) =>
      q.execute(() => (++attempts === 1 ? failing(clock, 10, new Error('once')) : delayed(clock, 10, 'ok'))),
    );
    expect(log).toEqual(['report success', 'caller']);
    expect(innerEvents.map((e) => [e.outcome, e.durationMs])).toEqual([['success', 25]]);
    expect(events[0]!.durationMs).toBe(25);
  });

  it('a report that fails (the clock throws at the end) does not change the call’s result; the error surfaces on its own', async () => {
    const clock = new FakeClock();
    let reads = 0;
    const broken = new Error('clock broke');
    const failingClock = {
      now: () => {
        if (++reads === 2) throw broken;
        return clock.now();
      },
      schedule: clock.schedule.bind(clock),
      cancel: clock.cancel.bind(clock),
    };
    const p = pipeline({ clock: failingClock }, fallback({ value: 'fallback' }));
    p.onSettled(() => {});
    const surfaced = await surfacedErrors(async () => {
      expect(await p.execute(() => 'value')).toBe('value');
    });
    expect(reads).toBe(2);
    expect(surfaced).toEqual([broken]);
  });

  it('a metrics sink times calls through its recorder; once detached, calls are not timed at all', async () => {
    const clock = new FakeClock();
    let reads = 0;
    const counting = { now: () => (reads++, clock.now()), schedule: clock.schedule.bind(clock), cancel: clock.cancel.bind(clock) };
    const p = pipeline({ name: 'recorded', clock: counting }, fallback({ value: 'fallback' }));
    const registry = new Registry();
    const detach = prometheusMetrics({ registry }).attach(p);
    await p.execute(() => 'value');
    expect(reads).toBe(2); // start and end: nothing else in this pipeline reads the clock
    expect(await registry.getSingleMetricAsString('breakwater_calls_total')).toContain('breakwater_calls_total{pipeline="recorded",outcome="success"} 1');
    detach();
    reads = 0;
    await p.execute(() => 'value');
    expect(reads).toBe(0);
  });

  it('a pipeline timed by a recorder alone reports to it and raises no error of its own', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, timeout({ ms: 50, clock }));
    const recorded: [Outcome, number][] = [];
    p._record({ record: (outcome, durationMs) => void recorded.push([outcome, durationMs]) });
    const surfaced = await surfacedErrors(async () => {
      expect(await p.execute(() => 'value')).toBe('value');
    });
    expect(recorded).toEqual([['success', 0]]);
    expect(surfaced).toEqual([]);
  });

  it('a listener that throws does not change the call’s result, and the error surfaces on its own', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, fallback({ value: 'fallback' }), timeout({ ms: 50, clock }));
    const thrown = new Error('listener broke');
    p.onSettled(() => {
      throw thrown;
    });
    const surfaced = await surfacedErrors(async () => {
      expect(await p.execute(() => 'value')).toBe('value');
    });
    expect(surfaced).toEqual([thrown]);
  });
});

describe('reports match what callers saw, over random pipelines of built-in and custom layers (property)', () => {
  type Work = { kind: 'ok' | 'fail'; afterMs: number } | { kind: 'sync-throw' };
  const workArb: fc.Arbitrary<Work> = fc.oneof(
    fc.record({ kind: fc.constantFrom<'ok' | 'fail'>('ok', 'fail'), afterMs: fc.integer({ min: 0, max: 120 }) }),
    fc.constant<Work>({ kind: 'sync-throw' }),
  );
  const callArb = fc.record({
    startAtMs: fc.integer({ min: 0, max: 60 }),
    attempts: fc.array(workArb, { minLength: 3, maxLength: 3 }),
    abortAtMs: fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined }),
  });
  /** The layers a random pipeline is drawn from: every built-in policy, two custom ones, and a nested pipeline. */
  const LAYERS: ((clock: FakeClock) => Policy<unknown>)[] = [
    () => fallback({ value: 'fallback' }),
    (clock) => bulkhead({ maxConcurrent: 2, maxQueue: 1, clock }),
    (clock) => retry({ maxAttempts: 2, backoff: constant({ ms: 15 }), clock }),
    (clock) => circuitBreaker({ clock, minimumCalls: 2, failureRateThreshold: 0.5, halfOpenAfterMs: 40 }),
    (clock) => timeout({ ms: 80, clock }),
    () => new PassThrough(),
    (clock) => new Linger(clock, 3),
    (clock) => pipeline({ clock }, new PassThrough(), timeout({ ms: 60, clock })),
  ];

  function expectedOutcome(result: PromiseSettledResult<unknown>, callerReason: unknown): Outcome {
    if (result.status === 'fulfilled') return result.value === 'fallback' ? 'fallback' : 'success';
    const reason: unknown = result.reason;
    if (callerReason !== undefined && reason === callerReason) return 'cancelled';
    if (isTimeoutError(reason)) return 'timeout';
    if (isRejection(reason)) return 'rejected';
    return 'failure';
  }

  it('once per call, before the caller, with its outcome, error and waiting time', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: LAYERS.length - 1 }), { minLength: 0, maxLength: 5 }),
        fc.array(callArb, { minLength: 1, maxLength: 8 }),
        async (layers, calls) => {
          const clock = new FakeClock();
          const p = pipeline({ clock }, ...layers.map((i) => LAYERS[i]!(clock)));
          const unclaimed: { event: SettledEvent; at: number }[] = [];
          let reports = 0;
          p.onSettled((event) => {
            reports++;
            unclaimed.push({ event, at: clock.now() });
          });
          const problems: string[] = [];
          let settled = 0;
          calls.forEach((call, n) => {
            clock.schedule(() => {
              const controller = call.abortAtMs === undefined ? undefined : new AbortController();
              const reason = controller === undefined ? undefined : new Error(`caller ${n} aborted`);
              if (controller !== undefined) clock.schedule(() => controller.abort(reason), call.abortAtMs! - call.startAtMs);
              const startedAt = clock.now();
              let attempt = 0;
              const promise = p.execute(
                () => {
                  const work = call.attempts[Math.min(attempt++, call.attempts.length - 1)]!;
                  if (work.kind === 'sync-throw') throw new Error(`call ${n} threw`);
                  return work.kind === 'ok' ? delayed(clock, work.afterMs, `ok ${n}`) : failing(clock, work.afterMs, new Error(`call ${n} failed`));
                },
                controller === undefined ? undefined : { signal: controller.signal },
              );
              const seen = (result: PromiseSettledResult<unknown>): void => {
                settled++;
                const outcome = expectedOutcome(result, reason);
                const waitedMs = clock.now() - startedAt;
                const error = result.status === 'rejected' ? result.reason : undefined;
                const match = unclaimed.findIndex(
                  ({ event }) => event.outcome === outcome && event.durationMs === waitedMs && event.error === error,
                );
                if (match < 0) {
                  problems.push(`call ${n} (${outcome}, ${waitedMs} ms) had no report before its caller saw it`);
                } else {
                  unclaimed.splice(match, 1);
                }
              };
              promise.then(
                (value) => seen({ status: 'fulfilled', value }),
                (reason: unknown) => seen({ status: 'rejected', reason }),
              );
            }, call.startAtMs);
          });
          await clock.advance(2_000);
          expect(problems).toEqual([]);
          expect(settled).toBe(calls.length);
          expect(reports).toBe(calls.length);
          expect(unclaimed).toEqual([]);
        },
      ),
      {
        numRuns: 300,
      },
    );
  });
});

describe('a clock that throws when the call starts', () => {
  it('does not break the call: it runs unobserved, and the error surfaces on its own', async () => {
    let reads = 0;
    const broken = new Error('clock broke');
    const clock = {
      now: () => {
        if (reads++ === 0) throw broken;
        return 0;
      },
      schedule: (fn: () => void, ms: number) => setTimeout(fn, ms),
      cancel: (t: unknown) => clearTimeout(t as NodeJS.Timeout),
    };
    const p = pipeline({ name: 'x', clock }, retry());
    const events: SettledEvent[] = [];
    p.onSettled((e) => events.push(e));
    const surfaced = await surfacedErrors(async () => {
      expect(await p.execute(() => 'ok')).toBe('ok');
      expect(await pipeline(p).execute(() => 'nested')).toBe('nested'); // the next reading works: observed
    });
    expect(surfaced).toEqual([broken]);
    expect(events.map((e) => e.outcome)).toEqual(['success']);
  });
});

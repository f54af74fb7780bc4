/**
 * Layers share clock readings (docs/design.md, "One clock reading per moment"):
 * the layers a call reaches in one synchronous descent share the first reading,
 * and a pipeline timing its calls reuses the reading a built-in layer took as the
 * result came back, when no user code ran since. These tests pin where sharing
 * must stop: after a wait, across user code, across a custom policy.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import {
  bulkhead,
  circuitBreaker,
  type Clock,
  constant,
  fallback,
  pipeline,
  retry,
  systemClock,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { PolicyBase } from '../src/pipeline.ts';
import { type Chain, type Scope, start } from '../src/policy.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';

/** A clock whose time moves only when a test sets `t`; timers come from a FakeClock. */
function manualClock(): Clock & { t: number; reads: number } {
  const timers = new FakeClock();
  const clock = {
    t: 0,
    reads: 0,
    now(): number {
      clock.reads++;
      return clock.t;
    },
    schedule: (callback: () => void, ms: number) => timers.schedule(callback, ms),
    cancel: (handle: unknown) => timers.cancel(handle),
  };
  return clock;
}

function durations(p: { onSettled(listener: (e: { durationMs: number }) => void): unknown }): number[] {
  const seen: number[] = [];
  p.onSettled((e) => seen.push(e.durationMs));
  return seen;
}

describe('shared clock readings', () => {
  it('a pipeline with metrics on reads the clock no more often than with metrics off (the recommended five policies)', async () => {
    const counted = { ...systemClock, reads: 0, now: () => (counted.reads++, performance.now()) };
    const five = (name: string) =>
      pipeline(
        { name, clock: counted },
        fallback({ value: 0 }),
        bulkhead({ maxConcurrent: 10, maxQueue: 10, clock: counted }),
        retry({ maxAttempts: 3, clock: counted }),
        circuitBreaker({ clock: counted }),
        timeout({ ms: 1_000, clock: counted }),
      );
    const off = five('off');
    const on = five('on');
    prometheusMetrics({ registry: new Registry() }).attach(on);
    const readsPerCall = async (p: typeof off): Promise<number> => {
      await p.execute(async () => 1); // the breaker's window and the timeout's timer start on the first call
      counted.reads = 0;
      for (let i = 0; i < 100; i++) await p.execute(async () => 1);
      return counted.reads / 100;
    };
    const offReads = await readsPerCall(off);
    const onReads = await readsPerCall(on);
    // the timeout's start and the breaker's record; the pipeline reuses both
    expect(offReads).toBe(2);
    expect(onReads).toBe(offReads);
  });

  it('a layer reached after a bulkhead queue wait reads the clock itself: its deadline starts when it does', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 1_000, clock }), timeout({ ms: 100, clock }));
    const seen = durations(p);
    const first = track(p.execute(() => delayed(clock, 50, 'first')));
    const second = track(p.execute(() => never<string>())); // queued at 0, starts at 50
    await clock.advance(149);
    expect(first.value).toBe('first');
    expect(second.status).toBe('pending'); // the deadline is 50 + 100, not 0 + 100
    await clock.advance(1);
    expect(second.error).toBeInstanceOf(TimeoutError);
    expect(seen).toEqual([50, 150]);
  });

  it('a pipeline counts the time a custom policy spends after its inner call settled', async () => {
    const clock = new FakeClock();
    class Linger extends PolicyBase {
      readonly kind = 'linger';
      _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        return start(chain, index + 1, scope, attempt).then((value) => delayed(clock, 30, value));
      }
    }
    const p = pipeline({ clock }, new Linger(), circuitBreaker({ clock }));
    const seen = durations(p);
    const call = track(p.execute(() => delayed(clock, 5, 'ok')));
    await clock.advance(35);
    expect(call.value).toBe('ok');
    expect(seen).toEqual([35]);
  });

  it('a pipeline counts the time a fallback factory takes, with no listener on the fallback', async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock }, fallback({ factory: () => delayed(clock, 20, 'fb') }), circuitBreaker({ clock }));
    const seen = durations(p);
    const call = track(p.execute(() => Promise.reject(new Error('down'))));
    await clock.advance(20);
    expect(call.value).toBe('fb');
    expect(seen).toEqual([20]);
  });

  it('a pipeline counts a retry sleep that ends in a synchronous refusal, with no listener on the retry', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 10_000 });
    const p = pipeline({ clock }, retry({ maxAttempts: 2, backoff: constant({ ms: 40 }), handle: () => true, clock }), breaker);
    const seen = durations(p);
    const call = track(p.execute(() => Promise.reject(new Error('down'))));
    await clock.advance(40);
    expect(breaker.state).toBe('open');
    expect(call.status).toBe('rejected'); // attempt 2 was refused by the open breaker
    expect(seen).toEqual([40]);
  });

  it('a pipeline counts time spent in event listeners between a layer reading the clock and the pipeline', async () => {
    const clock = manualClock();
    const breaker = circuitBreaker({ clock });
    breaker.onSuccess(() => {
      clock.t += 7; // a slow listener, run after the breaker read the clock
    });
    const p = pipeline({ clock }, breaker);
    const seen = durations(p);
    await p.execute(() => 'ok');
    expect(seen).toEqual([7]);
  });

  it('layers reached in one synchronous descent share the first reading; the work runs after it', async () => {
    const clock = manualClock();
    const p = pipeline({ clock }, timeout({ ms: 100, clock }), circuitBreaker({ clock }), timeout({ ms: 50, clock }));
    const seen = durations(p);
    clock.reads = 0; // the breaker's window read the clock when it was created
    await p.execute(() => {
      clock.t += 3; // the work's synchronous part
      return 'ok';
    });
    // one reading for the pipeline and both timeouts; one for the breaker's record, reused by the pipeline
    expect(clock.reads).toBe(2);
    expect(seen).toEqual([3]);
  });

  it('a descent that starts after the work ran (a custom policy calling the next layer twice) reads the clock afresh', async () => {
    const clock = manualClock();
    class Twice extends PolicyBase {
      readonly kind = 'twice';
      _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        const first = start(chain, index + 1, scope, attempt);
        const second = start(chain, index + 1, scope, attempt);
        return Promise.all([first, second]).then(([value]) => value);
      }
    }
    const breaker = circuitBreaker({ clock });
    const measured: number[] = [];
    breaker.onSuccess(({ durationMs }) => measured.push(durationMs));
    const p = pipeline({ clock }, new Twice(), breaker);
    durations(p);
    let runs = 0;
    await p.execute(() => {
      if (runs++ === 0) clock.t += 10; // the first work's synchronous part
      return 'ok';
    });
    // the second breaker call started at 10, after the first work ran
    expect(measured).toEqual([10, 0]);
  });

  it('nested pipelines reached in the descent share the outer reading', async () => {
    const clock = manualClock();
    const inner = pipeline({ clock }, timeout({ ms: 50, clock }));
    const outer = pipeline({ clock }, inner);
    const innerSeen = durations(inner);
    const outerSeen = durations(outer);
    await outer.execute(() => {
      clock.t += 4;
      return 'ok';
    });
    expect(innerSeen).toEqual([4]);
    expect(outerSeen).toEqual([4]);
    // start: one shared reading; end: each pipeline reads once (a nested pipeline is not a built-in layer)
    expect(clock.reads).toBe(3);
  });
});

/**
 * Layers share clock readings (docs/design.md, "One clock reading per moment"):
 * the layers a call reaches in one synchronous descent share the first reading,
 * and a pipeline timing its calls reuses the reading a built-in layer took as the
 * result came back, when no user code ran since. These tests pin where sharing
 * must stop: after a wait, across user code, across a custom policy.
 */
import CircuitBreaker from 'opossum';
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import {
  bulkhead,
  circuitBreaker,
  type Clock,
  constant,
  fallback,
  FallbackPolicy,
  pipeline,
  retry,
  systemClock,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { fromOpossum, type OpossumCallContext, type OpossumRun } from '../src/opossum/index.ts';
import { PolicyBase } from '../src/pipeline.ts';
import { type Chain, type Scope, start } from '../src/policy.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, never, track } from './helpers.ts';

/**
 * A FakeClock-like clock whose time can also move synchronously (`busy(ms)`), the
 * way it does while synchronous code runs: timers keep their due times and run
 * at the next `advance`.
 */
class BusyClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; id: number; callback: () => void }>();
  /** How many times `now()` was read. */
  reads = 0;
  now(): number {
    this.reads++;
    return this.#now;
  }
  /** Synchronous code that takes `ms`: time moves, no timer runs. */
  busy(ms: number): void {
    this.#now += ms;
  }
  schedule(callback: () => void, delayMs: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, delayMs || 0), callback });
    return id;
  }
  cancel(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      let next: { at: number; id: number; callback: () => void } | undefined;
      for (const t of this.#timers.values()) if (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id)) next = t;
      if (next === undefined || next.at > end) break;
      this.#timers.delete(next.id);
      if (next.at > this.#now) this.#now = next.at;
      next.callback();
      await settle();
    }
    if (end > this.#now) this.#now = end;
    await settle();
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Like helpers.delayed, on a BusyClock. */
function later<T>(clock: BusyClock, ms: number, value: T): Promise<T> {
  return new Promise<T>((resolve) => clock.schedule(() => resolve(value), ms));
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
    const clock = new BusyClock();
    const breaker = circuitBreaker({ clock });
    breaker.onSuccess(() => {
      clock.busy(7); // a slow listener, run after the breaker read the clock
    });
    const p = pipeline({ clock }, breaker);
    const seen = durations(p);
    await p.execute(() => 'ok');
    expect(seen).toEqual([7]);
  });

  it('layers reached in one synchronous descent share the first reading; the work runs after it', async () => {
    const clock = new BusyClock();
    const p = pipeline({ clock }, timeout({ ms: 100, clock }), circuitBreaker({ clock }), timeout({ ms: 50, clock }));
    const seen = durations(p);
    clock.reads = 0; // the breaker's window read the clock when it was created
    await p.execute(() => {
      clock.busy(3); // the work's synchronous part
      return 'ok';
    });
    // one reading for the pipeline and both timeouts; one for the breaker's record, reused by the pipeline
    expect(clock.reads).toBe(2);
    expect(seen).toEqual([3]);
  });

  it('a descent that starts after the work ran (a custom policy calling the next layer twice) reads the clock afresh', async () => {
    const clock = new BusyClock();
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
      if (runs++ === 0) clock.busy(10); // the first work's synchronous part
      return 'ok';
    });
    // the second breaker call started at 10, after the first work ran
    expect(measured).toEqual([10, 0]);
  });

  it('nested pipelines reached in the descent share the outer reading', async () => {
    const clock = new BusyClock();
    const inner = pipeline({ clock }, timeout({ ms: 50, clock }));
    const outer = pipeline({ clock }, inner);
    const innerSeen = durations(inner);
    const outerSeen = durations(outer);
    await outer.execute(() => {
      clock.busy(4);
      return 'ok';
    });
    expect(innerSeen).toEqual([4]);
    expect(outerSeen).toEqual([4]);
    // start: one shared reading; end: each pipeline reads once (a nested pipeline is not a built-in layer)
    expect(clock.reads).toBe(3);
  });
});

// ---------------------------------------------------------------------------
// Synchronous user code that takes time (found in review): virtual time alone cannot
// show it, since a FakeClock only moves between macrotasks.

/** A custom policy doing `ms` of synchronous work before handing the call on (signing, a sync cache lookup...). */
class Prep extends PolicyBase {
  readonly kind = 'prep';
  private readonly clock: BusyClock;
  private readonly ms: number;
  constructor(clock: BusyClock, ms: number) {
    super();
    this.clock = clock;
    this.ms = ms;
  }
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    this.clock.busy(this.ms);
    return start(chain, index + 1, scope, attempt);
  }
}

describe('shared readings stop at synchronous user code on the way in', () => {
  it('a custom policy doing sync work does not make the breaker below see a slow call (no metrics attached)', async () => {
    const make = (clock: BusyClock) =>
      circuitBreaker({ clock, window: { kind: 'count', calls: 10 }, minimumCalls: 1, slowCallMs: 50, slowCallRateThreshold: 1 });
    // control: no outer timeout
    const c1 = new BusyClock();
    const b1 = make(c1);
    await pipeline(new Prep(c1, 60), b1).execute(() => 'ok');
    expect(b1.state).toBe('closed');
    // same, with a timeout outside: the breaker reuses the timeout's reading, taken before Prep ran
    const c2 = new BusyClock();
    const b2 = make(c2);
    await pipeline(timeout({ ms: 5_000, clock: c2 }), new Prep(c2, 60), b2).execute(() => 'ok');
    expect(b2.state).toBe('closed');
  });

  it('a half-open listener that takes time does not make the probe slow (built-in policies only)', async () => {
    const run = async (withTimeout: boolean): Promise<string> => {
      const clock = new BusyClock();
      const breaker = circuitBreaker({
        clock,
        window: { kind: 'count', calls: 10 },
        minimumCalls: 1,
        halfOpenAfterMs: 1_000,
        slowCallMs: 50,
        slowCallRateThreshold: 1,
      });
      breaker.onStateChange(({ to }) => {
        if (to === 'half-open') clock.busy(60); // e.g. a listener that logs / flushes synchronously
      });
      const p = withTimeout ? pipeline(timeout({ ms: 5_000, clock }), breaker) : pipeline(breaker);
      await p.execute(() => Promise.reject(new Error('down'))).catch(() => {});
      expect(breaker.state).toBe('open');
      await clock.advance(1_000);
      await p.execute(() => 'ok'); // the probe: the work takes 0 ms
      return breaker.state;
    };
    expect(await run(false)).toBe('closed');
    expect(await run(true)).toBe('closed');
  });

  it('attaching metrics does not shorten a timeout (a custom policy before the timeout, other calls in flight)', async () => {
    const run = async (metrics: boolean): Promise<number> => {
      const clock = new BusyClock();
      const t = timeout({ ms: 100, clock });
      const p = pipeline({ clock }, new Prep(clock, 30), t);
      if (metrics) durations(p);
      void t.execute(() => never()).catch(() => {}); // another call in flight: the timer is armed for 100
      await clock.advance(10);
      const enteredTimeoutAt = clock.now() + 30; // after Prep's 30 ms
      const call = track(p.execute(() => never<string>()));
      while (call.status === 'pending') await clock.advance(1);
      expect(call.error).toBeInstanceOf(TimeoutError);
      return clock.now() - enteredTimeoutAt;
    };
    expect(await run(false)).toBe(100);
    expect(await run(true)).toBe(100);
  });

  it('a custom opossum action (the documented "add tracing" hook) runs before the layers below read the clock', async () => {
    const clock = new BusyClock();
    const action = (run: OpossumRun, context: OpossumCallContext): Promise<unknown> => {
      clock.busy(30); // tracing, synchronous
      return run(context);
    };
    const opossum = new CircuitBreaker(action, { name: 'dep' });
    try {
      const t = timeout({ ms: 100, clock });
      const p = pipeline({ clock }, fromOpossum(opossum), t);
      durations(p); // metrics on
      void t.execute(() => never()).catch(() => {}); // keeps the timer armed for 100
      await clock.advance(10);
      const call = track(p.execute(() => never<string>()));
      const enteredTimeoutAt = clock.now(); // 40: the action already ran
      while (call.status === 'pending') await clock.advance(1);
      expect(clock.now() - enteredTimeoutAt).toBe(100);
    } finally {
      opossum.shutdown();
    }
  });

  it('a nested pipeline times from when it was entered, not from an outer layer’s reading', async () => {
    const clock = new BusyClock();
    const inner = pipeline({ clock }, circuitBreaker({ clock }));
    const innerSeen = durations(inner);
    const outer = pipeline(timeout({ ms: 1_000, clock }), new Prep(clock, 40), inner); // outer not observed
    const call = track(outer.execute(() => later(clock, 5, 'ok')));
    await clock.advance(5);
    expect(call.value).toBe('ok');
    expect(innerSeen).toEqual([5]);
  });
});

describe('shared end readings stop where time may have passed', () => {
  it('an outer breaker’s `handle` callback is user code the pipeline must count (two breakers)', async () => {
    const clock = new BusyClock();
    const outerBreaker = circuitBreaker({
      clock,
      window: { kind: 'count', calls: 100 }, // count window: this breaker reads no clock when untimed
      handle: () => {
        clock.busy(25); // a slow `handle` (user code, after the inner breaker's reading)
        return true;
      },
    });
    const innerBreaker = circuitBreaker({ clock }); // time window: reads the clock on every settle
    const p = pipeline({ clock }, outerBreaker, innerBreaker);
    const seen = durations(p);
    const call = p.execute(() => Promise.reject(new Error('down')));
    let callerSaw = NaN;
    await call.catch(() => (callerSaw = clock.now()));
    expect(callerSaw).toBe(25);
    expect(seen).toEqual([25]);
  });

  it('a bulkhead release that starts a queued call synchronously is counted (queued call stops in a custom layer)', async () => {
    const clock = new BusyClock();
    let calls = 0;
    class Cache extends PolicyBase {
      readonly kind = 'cache';
      _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        if (calls++ === 0) return start(chain, index + 1, scope, attempt); // miss
        clock.busy(20); // hit: decode the cached entry synchronously, the work is not called
        return Promise.resolve('cached' as T);
      }
    }
    const p = pipeline({ clock }, bulkhead({ maxConcurrent: 1, maxQueue: 1, clock }), circuitBreaker({ clock }), new Cache());
    const seen = durations(p);
    let firstDoneAt = NaN;
    const first = p.execute(() => later(clock, 10, 'fresh')).then((v) => ((firstDoneAt = clock.now()), v));
    const second = p.execute(() => 'unused'); // queued; started by the first call's release
    await clock.advance(10);
    expect(await first).toBe('fresh');
    expect(await second).toBe('cached');
    expect(firstDoneAt).toBe(30); // the caller of the first call got its result at 30
    expect(seen[0]).toBe(30);
  });

  it('a late result’s reading is not reused after a timer fires or a signal aborts (no user code in between)', async () => {
    // Attempt 1 outlives its timeout: the retry sleeps, and the breaker reads the clock when
    // the abandoned work settles at 80. Then nothing but time passes until the caller aborts
    // at 81 (a signal) or the outer timeout expires at 100 (a timer): either report must
    // read the clock afresh.
    for (const ending of ['caller abort', 'outer timeout'] as const) {
      const clock = new FakeClock();
      const p = pipeline(
        { clock },
        timeout({ ms: 100, clock }),
        retry({ maxAttempts: 2, backoff: constant({ ms: 50 }), clock }),
        timeout({ ms: 80, clock }),
        circuitBreaker({ clock, slowCallMs: 1_000, slowCallRateThreshold: 1 }),
      );
      const seen = durations(p);
      const controller = new AbortController();
      if (ending === 'caller abort') clock.schedule(() => controller.abort(new Error('caller gave up')), 81);
      let callerSaw = NaN;
      const call = p.execute(() => delayed(clock, 80, 'late'), { signal: controller.signal });
      call.catch(() => (callerSaw = clock.now()));
      await clock.advance(200);
      expect(callerSaw).toBe(ending === 'caller abort' ? 81 : 100);
      expect(seen).toEqual([callerSaw]);
    }
  });

  it('a subclass of a built-in policy that waits on the way out is not trusted', async () => {
    const clock = new FakeClock();
    class SlowFallback extends FallbackPolicy<string> {
      override _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T | string> {
        return super._run(chain, index, scope, attempt).then((v) => delayed(clock, 30, v)); // e.g. an async audit log
      }
    }
    const p = pipeline({ clock }, new SlowFallback({ value: 'fb' }), circuitBreaker({ clock }));
    const seen = durations(p);
    const call = track(p.execute(() => delayed(clock, 5, 'ok')));
    await clock.advance(35);
    expect(call.value).toBe('ok');
    expect(seen).toEqual([35]);
  });

  it('a custom policy that delegates to a built-in breaker (per-key breakers) is not trusted', async () => {
    const clock = new FakeClock();
    class PerHost extends PolicyBase {
      readonly kind = 'per-host';
      readonly breakers = new Map([['a', circuitBreaker({ clock })]]);
      _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        return this.breakers.get('a')!._run(chain, index, scope, attempt).then((v) => delayed(clock, 30, v));
      }
    }
    const p = pipeline({ clock }, new PerHost()); // no built-in layer at all
    const seen = durations(p);
    const call = track(p.execute(() => delayed(clock, 5, 'ok')));
    await clock.advance(35);
    expect(call.value).toBe('ok');
    expect(seen).toEqual([35]);
  });
});

/**
 * Edges of "the outermost layer reports a timed call's end" (docs/design.md,
 * "Observing a call without another promise step"), found by a review of the
 * first version: layers that look built-in but never claim the report (a
 * proxy), layers that throw instead of returning, a built-in subclass or an
 * instance whose `_run` was replaced, and a caller signal aborted during the
 * descent. Each test failed on that version.
 */
import { describe, expect, it } from 'vitest';
import {
  type Clock,
  CircuitBreakerPolicy,
  circuitBreaker,
  fallback,
  pipeline,
  type SettledEvent,
  timeout,
} from '../src/index.ts';
import { PolicyBase } from '../src/pipeline.ts';
import { type Chain, type Scope, start } from '../src/policy.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, surfacedErrors, track } from './helpers.ts';

/** Collects a pipeline's reports, each with the virtual time it was made at. */
function reports(p: { onSettled(listener: (e: SettledEvent) => void): unknown }, clock: FakeClock): { event: SettledEvent; at: number }[] {
  const seen: { event: SettledEvent; at: number }[] = [];
  p.onSettled((event) => seen.push({ event, at: clock.now() }));
  return seen;
}


/**
 * A Proxy that forwards every method to its target, bound to the target (the
 * usual way to wrap a class instance that has #private fields: tracing, mocking,
 * dependency-injection containers).
 */
function forwarding<T extends object>(target: T): T {
  return new Proxy(target, {
    get(t, key) {
      const value: unknown = Reflect.get(t, key, t);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
}

describe('every call is still reported once, with what the caller saw', () => {
  it('a proxied built-in outermost (methods bound to the target) never claims the report: one more step reports the call', async () => {
    const clock = new FakeClock();
    const breaker = forwarding(circuitBreaker({ clock }));
    const p = pipeline({ clock }, breaker);
    const seen = reports(p, clock);
    const call = track(p.execute(() => delayed(clock, 10, 'ok')));
    await clock.advance(10);
    expect(call.value).toBe('ok');
    expect(seen.map((s) => s.event.outcome)).toEqual(['success']);
  });

  it('the same in a nested timed pipeline', async () => {
    const clock = new FakeClock();
    const inner = pipeline({ clock }, forwarding(timeout({ ms: 100, clock })));
    const outer = pipeline({ clock }, fallback({ value: 'fb' }), inner);
    const innerSeen = reports(inner, clock);
    const call = track(outer.execute(() => delayed(clock, 10, 'ok')));
    await clock.advance(10);
    expect(call.value).toBe('ok');
    expect(innerSeen.map((s) => [s.event.outcome, s.event.durationMs])).toEqual([['success', 10]]);
  });

  it('the breaker outermost whose clock throws as the result comes back: the caller’s error is reported', async () => {
    const clock = new FakeClock();
    const broken = new Error('breaker clock broke');
    let failOnRead = false;
    const breakerClock: Clock = {
      now: () => {
        if (failOnRead) throw broken;
        return clock.now();
      },
      schedule: clock.schedule.bind(clock),
      cancel: clock.cancel.bind(clock),
    };
    const p = pipeline({ clock }, circuitBreaker({ clock: breakerClock, slowCallMs: 1_000, slowCallRateThreshold: 1 }));
    const seen = reports(p, clock);
    let call!: ReturnType<typeof track<string>>;
    await surfacedErrors(async () => {
      call = track(
        p.execute(async () => {
          failOnRead = true; // the breaker read its start already; it reads again as the work settles
          return 'ok';
        }),
      );
      await clock.advance(0);
    });
    expect(call.status).toBe('rejected'); // the caller saw a failure...
    expect(seen.map((s) => s.event.outcome)).toEqual(['failure']); // ...and it is reported
  });

  it('a built-in outermost whose _run throws synchronously (its clock refuses a timer): reported as a failure', async () => {
    const clock = new FakeClock();
    const broken = new Error('timer refused');
    const refusing: Clock = {
      now: () => clock.now(),
      schedule: () => {
        throw broken;
      },
      cancel: () => {},
    };
    const p = pipeline({ clock }, timeout({ ms: 100, clock: refusing }));
    const seen = reports(p, clock);
    const call = track(p.execute(() => 'ok'));
    await clock.advance(0);
    expect(call.status).toBe('rejected');
    expect(call.error).toBe(broken);
    expect(seen.map((s) => [s.event.outcome, s.event.error])).toEqual([['failure', broken]]);
  });

  it('a subclass of circuitBreaker that waits on the way out: its reading is not reused, the wait is counted', async () => {
    const clock = new FakeClock();
    class SlowBreaker extends CircuitBreakerPolicy {
      override _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        return super._run(chain, index, scope, attempt).then((v) => delayed(clock, 30, v)); // e.g. an async audit log
      }
    }
    const breaker = circuitBreaker({ clock, slowCallMs: 1_000, slowCallRateThreshold: 1 }); // slow-call detection: the breaker times calls
    Object.setPrototypeOf(breaker, SlowBreaker.prototype); // a subclass instance (the constructor takes internal settings)
    const p = pipeline({ clock }, timeout({ ms: 1_000, clock }), breaker);
    const seen = reports(p, clock);
    const call = track(p.execute(() => delayed(clock, 5, 'ok')));
    await clock.advance(35);
    expect(call.value).toBe('ok');
    expect(seen.map((s) => s.event.durationMs)).toEqual([35]);
  });

  it('the same subclass with a caller signal aborted while it waits', async () => {
    const clock = new FakeClock();
    class SlowBreaker extends CircuitBreakerPolicy {
      override _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        return super._run(chain, index, scope, attempt).then((v) => delayed(clock, 30, v));
      }
    }
    const breaker = circuitBreaker({ clock, slowCallMs: 1_000, slowCallRateThreshold: 1 });
    Object.setPrototypeOf(breaker, SlowBreaker.prototype);
    const p = pipeline({ clock }, breaker);
    const seen = reports(p, clock);
    const controller = new AbortController();
    const call = track(p.execute(() => delayed(clock, 5, 'ok'), { signal: controller.signal }));
    await clock.advance(20);
    controller.abort(new Error('caller gave up'));
    await clock.advance(0);
    expect(call.status).toBe('rejected');
    expect(seen.map((s) => [s.event.outcome, s.event.durationMs])).toEqual([['cancelled', 20]]);
  });

  it('a built-in outermost whose _run was wrapped on the instance (tracing, spying) is not trusted: the caller’s outcome is reported', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock });
    const original = breaker._run.bind(breaker);
    // Instance-level wrapper: the prototype still carries the trust marker.
    (breaker as { _run: typeof breaker._run })._run = <T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number) =>
      original(chain, index, scope, attempt).then(
        (v) => delayed(clock, 30, v),
        () => 'default' as T, // the wrapper recovers
      );
    const p = pipeline({ clock }, breaker);
    const seen = reports(p, clock);
    const call = track(p.execute(() => Promise.reject(new Error('down'))));
    await clock.advance(0);
    expect(call.value).toBe('default'); // the caller saw a success...
    expect(seen.map((s) => s.event.outcome)).toEqual(['success']); // ...and that is what is reported
  });
});

describe('a caller signal aborted while the call descends', () => {
  for (const timed of [false, true]) {
    it(`work that aborts its caller's signal synchronously rejects the call at once with the reason${timed ? ' (timed: reported once, as cancelled)' : ''}`, async () => {
      const clock = new FakeClock();
      const p = pipeline({ clock }, circuitBreaker({ clock }));
      const seen = timed ? reports(p, clock) : [];
      const controller = new AbortController();
      const reason = new Error('the work gave up on its own caller');
      const call = track(
        p.execute(
          () => {
            controller.abort(reason);
            return new Promise<string>(() => {}); // and never settles
          },
          { signal: controller.signal },
        ),
      );
      await clock.advance(0);
      expect(call.status).toBe('rejected');
      expect(call.error).toBe(reason);
      if (timed) expect(seen.map((s) => [s.event.outcome, s.event.durationMs])).toEqual([['cancelled', 0]]);
    });
  }
});

describe('odd but legal shapes', () => {
  it('fallback outermost, factory returns a thenable that calls both callbacks repeatedly: reported once, as fallback', async () => {
    const clock = new FakeClock();
    class Thenable extends PolicyBase {
      readonly kind = 'thenable';
      _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
        return start(chain, index + 1, scope, attempt);
      }
    }
    let calls = 0;
    const p = pipeline(
      { clock },
      fallback({
        factory: () => {
          calls++;
          // a thenable that calls both callbacks, twice
          return {
            then(ok: (v: string) => void, fail: (e: unknown) => void) {
              ok('a');
              fail(new Error('b'));
              ok('c');
            },
          } as PromiseLike<string>;
        },
      }),
      new Thenable(),
    );
    const seen = reports(p, clock);
    const call = track(p.execute(() => Promise.reject(new Error('down'))));
    await clock.advance(0);
    expect(calls).toBe(1);
    expect(call.value).toBe('a');
    expect(seen.map((s) => [s.event.outcome, s.at])).toEqual([['fallback', 0]]);
  });

  it('a nested timed pipeline at layer 0 of a timed pipeline: both report once, before the caller, with caller abort mid-queue', async () => {
    const clock = new FakeClock();
    const inner = pipeline({ clock }, timeout({ ms: 50, clock }));
    const outer = pipeline({ clock }, inner, circuitBreaker({ clock }));
    const innerSeen = reports(inner, clock);
    const outerSeen = reports(outer, clock);
    const log: string[] = [];
    inner.onSettled((e) => log.push(`inner ${e.outcome}`));
    outer.onSettled((e) => log.push(`outer ${e.outcome}`));
    const controller = new AbortController();
    const reason = new Error('stop');
    const p = outer.execute(() => delayed(clock, 100, 'late'), { signal: controller.signal });
    p.then(
      () => log.push('caller'),
      () => log.push('caller'),
    );
    await clock.advance(10);
    controller.abort(reason);
    await clock.advance(200);
    expect(log[log.length - 1]).toBe('caller');
    expect(outerSeen.map((s) => [s.event.outcome, s.event.durationMs])).toEqual([['cancelled', 10]]);
    expect(innerSeen.map((s) => [s.event.outcome, s.event.durationMs])).toEqual([['cancelled', 10]]);
  });
});

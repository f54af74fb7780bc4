import { describe, expect, it } from 'vitest';
import { type Chain, isTimeoutError, pipeline, PolicyBase, type Scope, timeout, TimeoutError } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { abortListenerCount, delayed, never, surfacedErrors, track } from './helpers.ts';

describe('timeout', () => {
  it('rejects with TimeoutError at the deadline, not before', async () => {
    const clock = new FakeClock();
    const t = track(timeout({ ms: 100, clock }).execute(() => never()));
    await clock.advance(99);
    expect(t.status).toBe('pending');
    await clock.advance(1);
    expect(t.status).toBe('rejected');
    expect(t.error).toBeInstanceOf(TimeoutError);
    expect(isTimeoutError(t.error)).toBe(true);
    expect((t.error as TimeoutError).timeoutMs).toBe(100);
    expect((t.error as TimeoutError).code).toBe('ERR_BREAKWATER_TIMEOUT');
    expect(clock.pendingTimers).toBe(0);
  });

  it('aborts the work signal with the TimeoutError as its reason', async () => {
    const clock = new FakeClock();
    let signal: AbortSignal | undefined;
    const t = track(
      timeout({ ms: 50, clock }).execute((ctx) => {
        signal = ctx.signal;
        return never();
      }),
    );
    await clock.advance(50);
    expect(signal!.aborted).toBe(true);
    expect(signal!.reason).toBe(t.error);
  });

  it('gives work that reads its signal late an already-aborted signal', async () => {
    const clock = new FakeClock();
    let read: (() => AbortSignal) | undefined;
    const t = track(
      timeout({ ms: 10, clock }).execute((ctx) => {
        read = () => ctx.signal;
        return never();
      }),
    );
    await clock.advance(10);
    expect(read!().aborted).toBe(true);
    expect(read!().reason).toBe(t.error);
  });

  it('does not abort the signal after success, so a body can still be read', async () => {
    const clock = new FakeClock();
    let signal: AbortSignal | undefined;
    const value = await timeout({ ms: 50, clock }).execute(async (ctx) => {
      signal = ctx.signal;
      return 'ok';
    });
    expect(value).toBe('ok');
    await clock.advance(1000);
    expect(signal!.aborted).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it('clears its timer as soon as the call settles', async () => {
    const clock = new FakeClock();
    const t = track(timeout({ ms: 1000, clock }).execute(() => delayed(clock, 10, 'x')));
    await clock.advance(10);
    expect(t.value).toBe('x');
    expect(clock.pendingTimers).toBe(0);
  });

  it('leaves an idle policy one unreferenced timer that ends by itself, and reuses it', async () => {
    const clock = new FakeClock();
    let schedules = 0;
    const counting = Object.assign(Object.create(clock) as FakeClock, {
      schedule: (cb: () => void, ms: number) => {
        schedules++;
        return clock.schedule(cb, ms);
      },
      now: () => clock.now(),
      cancel: (h: unknown) => clock.cancel(h),
      keepAlive: (h: unknown, k: boolean) => clock.keepAlive(h, k),
    });
    const policy = timeout({ ms: 100, clock: counting });
    for (let i = 0; i < 10; i++) {
      await policy.execute(async () => i);
      expect(clock.pendingTimers).toBe(0); // nothing keeps a process alive
      expect(clock.scheduledTimers).toBe(1); // the idle timer, unreferenced
    }
    expect(schedules).toBe(1);
    // A call started while the idle timer is armed still expires at its own deadline.
    await clock.advance(50);
    const t = track(policy.execute(() => never()));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(50); // t = 100: the idle timer fires at its old deadline and re-arms
    expect(t.status).toBe('pending');
    await clock.advance(49); // t = 149
    expect(t.status).toBe('pending');
    await clock.advance(1); // t = 150: 100 ms after the call started
    expect(isTimeoutError(t.error)).toBe(true);
    expect(clock.scheduledTimers).toBe(0);
  });

  it('cancels its timer when the clock cannot unreference timers', async () => {
    const fake = new FakeClock();
    const clock = { now: () => fake.now(), schedule: (cb: () => void, ms: number) => fake.schedule(cb, ms), cancel: (h: unknown) => fake.cancel(h) };
    await timeout({ ms: 100, clock }).execute(async () => 1);
    expect(fake.scheduledTimers).toBe(0);
  });

  describe('a clock that throws', () => {
    /** A FakeClock whose schedule, cancel or keepAlive throws while `failing` says so. */
    function flakyClock(fake: FakeClock, failing: { schedule?: boolean; keepAlive?: boolean; cancel?: boolean }, withKeepAlive = true) {
      const broken = new Error('clock broke');
      const clock = {
        now: () => fake.now(),
        schedule: (cb: () => void, ms: number) => {
          if (failing.schedule === true) throw broken;
          return fake.schedule(cb, ms);
        },
        cancel: (h: unknown) => {
          if (failing.cancel === true) throw broken;
          fake.cancel(h);
        },
        ...(withKeepAlive
          ? {
              keepAlive: (h: unknown, k: boolean) => {
                if (failing.keepAlive === true) throw broken;
                fake.keepAlive(h, k);
              },
            }
          : {}),
      };
      return { clock, broken };
    }

    it('refusing a timer rejects the call with its error, leaving no listener and no phantom call behind', async () => {
      const fake = new FakeClock();
      const failing = { schedule: true };
      const { clock, broken } = flakyClock(fake, failing);
      const policy = timeout({ ms: 100, clock });
      const caller = new AbortController();
      const t = track(policy.execute(() => 'never called', { signal: caller.signal }));
      await fake.advance(0);
      expect(t.error).toBe(broken);
      expect(abortListenerCount(caller.signal)).toBe(0);
      failing.schedule = false; // the clock recovers: the policy works as before
      const later = track(policy.execute(() => never()));
      await fake.advance(100);
      expect(isTimeoutError(later.error)).toBe(true);
      expect(fake.scheduledTimers).toBe(0); // no phantom entry keeps a timer alive
    });

    it('failing to unreference or cancel the idle timer still settles the call; the error surfaces on its own', async () => {
      for (const [failing, withKeepAlive] of [[{ keepAlive: true }, true], [{ cancel: true }, false]] as const) {
        const fake = new FakeClock();
        const { clock, broken } = flakyClock(fake, failing, withKeepAlive);
        const surfaced = await surfacedErrors(async () => {
          expect(await timeout({ ms: 100, clock }).execute(async () => 'value')).toBe('value');
        });
        expect(surfaced).toEqual([broken]);
      }
    });
  });

  it('uses one timer for many calls in flight and expires each at its own deadline', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 100, clock });
    const a = track(policy.execute(() => never()));
    await clock.advance(30);
    const b = track(policy.execute(() => never()));
    const c = track(policy.execute(() => delayed(clock, 50, 'c')));
    expect(clock.pendingTimers).toBe(2); // the deadline timer + the work's own delay
    await clock.advance(70);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('pending');
    expect(c.value).toBe('c');
    await clock.advance(29);
    expect(b.status).toBe('pending');
    await clock.advance(1);
    expect(b.status).toBe('rejected');
    expect(clock.pendingTimers).toBe(0);
  });

  it('observes a late rejection of abandoned work and reports it as an event', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 10, clock });
    const late: unknown[] = [];
    policy.onLateRejection((e) => late.push(e.error));
    const boom = new Error('late');
    const t = track(policy.execute(() => delayed(clock, 20, undefined).then(() => Promise.reject(boom))));
    await clock.advance(30);
    expect(isTimeoutError(t.error)).toBe(true);
    expect(late).toEqual([boom]);
  });

  it('onLateRejection stays quiet for work that stops as asked, and fires for work that ignored its signal', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 10, clock });
    const late: unknown[] = [];
    policy.onLateRejection((e) => late.push(e.error));
    const ignored = new Error('ignored the signal');
    const honoured = [
      // rejects with the signal's reason (what fetch does)
      ({ signal }: { signal: AbortSignal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      // rejects with an AbortError of its own
      ({ signal }: { signal: AbortSignal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(new DOMException('stopped', 'AbortError')))),
      // wraps the reason as its cause
      ({ signal }: { signal: AbortSignal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('wrapped', { cause: signal.reason })))),
    ];
    for (const work of honoured) track(policy.execute(work));
    // never reads its signal, fails later with an error of its own; and an AbortError from work that never read the signal
    track(policy.execute(() => delayed(clock, 20, undefined).then(() => Promise.reject(ignored))));
    const unrelated = new DOMException('some other abort', 'AbortError');
    track(policy.execute(() => delayed(clock, 20, undefined).then(() => Promise.reject(unrelated))));
    await clock.advance(30);
    expect(late).toEqual([ignored, unrelated]);
  });

  it('reports timeouts through onTimeout with the attempt', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 5, clock });
    const events: unknown[] = [];
    const dispose = policy.onTimeout((e) => events.push(e));
    track(policy.execute(() => never()));
    await clock.advance(5);
    expect(events).toEqual([{ timeoutMs: 5, attempt: 1 }]);
    dispose();
    track(policy.execute(() => never()));
    await clock.advance(5);
    expect(events).toHaveLength(1);
  });

  it('passes the caller abort reason through unchanged and removes its listeners', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const reason = { mine: true };
    let workSignal: AbortSignal | undefined;
    const t = track(
      pipeline(timeout({ ms: 100, clock })).execute(
        (ctx) => {
          workSignal = ctx.signal;
          return never();
        },
        { signal: controller.signal },
      ),
    );
    await clock.flush();
    expect(abortListenerCount(controller.signal)).toBeGreaterThan(0);
    controller.abort(reason);
    await clock.flush();
    expect(t.error).toBe(reason);
    expect(workSignal!.reason).toBe(reason);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('never calls the work when the caller signal is already aborted', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    controller.abort('gone');
    let called = false;
    const t = track(
      timeout({ ms: 10, clock }).execute(
        () => {
          called = true;
        },
        { signal: controller.signal },
      ),
    );
    await clock.flush();
    expect(called).toBe(false);
    expect(t.error).toBe('gone');
    expect(clock.pendingTimers).toBe(0);
  });

  it('links the work signal to the caller signal even when read late', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    let ctxRef: { signal: AbortSignal } | undefined;
    const t = track(
      timeout({ ms: 100, clock }).execute(
        (ctx) => {
          ctxRef = ctx;
          return never();
        },
        { signal: controller.signal },
      ),
    );
    controller.abort('stop');
    await clock.flush();
    expect(t.error).toBe('stop');
    expect(ctxRef!.signal.aborted).toBe(true);
    expect(ctxRef!.signal.reason).toBe('stop');
  });

  it('handles synchronous throws, non-Error throws and plain values', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 10, clock });
    await expect(policy.execute(() => { throw 'str'; })).rejects.toBe('str');
    await expect(policy.execute(() => { throw undefined; })).rejects.toBeUndefined();
    await expect(policy.execute(() => 42)).resolves.toBe(42);
    await expect(policy.execute(() => ({ then: (ok: ((v: number) => unknown) | null | undefined) => ok?.(7) }) as PromiseLike<number>)).resolves.toBe(7);
    expect(clock.pendingTimers).toBe(0);
  });

  it('times out a thenable that never settles', async () => {
    const clock = new FakeClock();
    const t = track(timeout({ ms: 10, clock }).execute(() => ({ then() {} }) as PromiseLike<number>));
    await clock.advance(10);
    expect(isTimeoutError(t.error)).toBe(true);
  });

  it('nested timeouts: the inner one sees the outer deadline as its parent', async () => {
    const clock = new FakeClock();
    const outer = timeout({ ms: 20, clock });
    const inner = timeout({ ms: 100, clock });
    let signal: AbortSignal | undefined;
    const t = track(
      pipeline(outer, inner).execute((ctx) => {
        signal = ctx.signal;
        return never();
      }),
    );
    await clock.advance(20);
    expect(isTimeoutError(t.error)).toBe(true);
    expect((t.error as TimeoutError).timeoutMs).toBe(20);
    expect(signal!.reason).toBe(t.error);
    await clock.flush();
    expect(clock.pendingTimers).toBe(0);
  });

  it('wrap keeps the arguments and guards each call', async () => {
    const clock = new FakeClock();
    const add = timeout({ ms: 10, clock }).wrap(async (a: number, b: number) => a + b);
    await expect(add(2, 3)).resolves.toBe(5);
  });

  it('rejects bad options at construction', () => {
    expect(() => timeout({ ms: 0 })).toThrow(RangeError);
    expect(() => timeout({ ms: -1 })).toThrow(/option "ms" must be a finite number of milliseconds from 1 to 2147483647.*received -1/);
    expect(() => timeout({ ms: Number.NaN })).toThrow(TypeError);
    expect(() => timeout({ ms: Infinity })).toThrow(RangeError);
    expect(() => timeout({ ms: 2 ** 31 })).toThrow(/timer limit/);
    expect(() => timeout({ ms: '5' as unknown as number })).toThrow(/received "5" \(string\)/);
    expect(() => timeout({ ms: 5, mss: 1 } as never)).toThrow(/unknown option "mss"/);
    expect(() => timeout(null as never)).toThrow(/options must be an object; received null/);
    expect(() => timeout({} as never)).toThrow(/option "ms" is required/);
    expect(() => timeout({ ms: 5, clock: {} as never })).toThrow(/option "clock" must be a Clock/);
    expect(() => timeout(JSON.parse('{"ms": 5, "__proto__": {"x": 1}}'))).toThrow(/unknown option "__proto__"/);
  });
});

describe('timeout: what mutation testing showed unpinned', () => {
  /** A layer that hands the layers below it a scope that has already given up. */
  class GaveUp extends PolicyBase {
    readonly kind = 'gave-up';
    readonly reason = new Error('the layer above gave up');
    _run<T>(chain: Chain<T>, index: number, _scope: Scope | undefined, attempt: number): Promise<T> {
      const controller = new AbortController();
      controller.abort(this.reason);
      return chain.next(index + 1, { signal: controller.signal }, attempt);
    }
  }

  it('refuses at once, without calling the work, when the layer above hands it a scope already aborted', async () => {
    const clock = new FakeClock();
    const above = new GaveUp();
    let called = false;
    const t = track(
      pipeline(above, timeout({ ms: 100, clock })).execute(() => {
        called = true;
        return never();
      }),
    );
    await clock.flush();
    expect(t.error).toBe(above.reason);
    expect(called).toBe(false);
    expect(clock.scheduledTimers).toBe(0); // no deadline was armed for it
  });

  it('onLateRejection stays quiet for work the caller abandoned: only an expired deadline makes a rejection late', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 100, clock });
    const late: unknown[] = [];
    policy.onLateRejection((e) => late.push(e.error));
    const caller = new AbortController();
    const t = track(policy.execute(() => delayed(clock, 20, undefined).then(() => Promise.reject(new Error('failed anyway'))), { signal: caller.signal }));
    caller.abort('caller left');
    await clock.advance(200);
    expect(t.error).toBe('caller left');
    expect(late).toEqual([]);
  });

  it('onLateRejection fires for work that read its signal and still failed later with an error of its own', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 10, clock });
    const late: unknown[] = [];
    policy.onLateRejection((e) => late.push(e.error));
    const own = new Error('read the signal, ignored it');
    const { proxy: unreadable, revoke } = Proxy.revocable({}, {});
    revoke(); // reading any property of it throws
    for (const error of [own, unreadable]) {
      track(
        policy.execute(({ signal }) => {
          void signal.aborted; // reads it, does not act on it
          return delayed(clock, 20, undefined).then(() => Promise.reject(error));
        }),
      );
    }
    await clock.advance(30);
    expect(late).toHaveLength(2);
    expect(late[0]).toBe(own);
    expect(late[1]).toBe(unreadable); // a rejection that cannot be inspected is not taken for an abort
  });

  it('a call started by an onTimeout listener does not push back the deadline of a call already in flight', async () => {
    const clock = new FakeClock();
    const policy = timeout({ ms: 100, clock });
    const started: ReturnType<typeof track>[] = [];
    policy.onTimeout(() => {
      if (started.length === 0) started.push(track(policy.execute(() => never())));
    });
    const a = track(policy.execute(() => never()));
    await clock.advance(50);
    const b = track(policy.execute(() => never()));
    await clock.advance(50); // t = 100: a expires, its listener starts c (deadline 200)
    expect(a.status).toBe('rejected');
    expect(started).toHaveLength(1);
    await clock.advance(50); // t = 150: b's own deadline
    expect(isTimeoutError(b.error)).toBe(true);
    expect(started[0]!.status).toBe('pending');
    await clock.advance(50); // t = 200
    expect(isTimeoutError(started[0]!.error)).toBe(true);
  });

  it('a call started while others are in flight neither schedules a timer nor touches the one armed', async () => {
    const fake = new FakeClock();
    const counts = { schedule: 0, keepAlive: 0 };
    const clock = {
      now: () => fake.now(),
      schedule: (cb: () => void, ms: number) => {
        counts.schedule++;
        return fake.schedule(cb, ms);
      },
      cancel: (h: unknown) => fake.cancel(h),
      keepAlive: (h: unknown, k: boolean) => {
        counts.keepAlive++;
        fake.keepAlive(h, k);
      },
    };
    const policy = timeout({ ms: 100, clock });
    await policy.execute(async () => 1); // arms the timer, then leaves it idle
    expect(counts).toEqual({ schedule: 1, keepAlive: 1 });
    const a = track(policy.execute(() => never())); // re-references the idle timer
    expect(counts).toEqual({ schedule: 1, keepAlive: 2 });
    const b = track(policy.execute(() => never())); // one in flight already: nothing to do
    expect(counts).toEqual({ schedule: 1, keepAlive: 2 });
    await fake.advance(100);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    const c = track(policy.execute(() => never())); // a fresh timer
    expect(counts).toEqual({ schedule: 2, keepAlive: 2 });
    const d = track(policy.execute(() => never()));
    expect(counts).toEqual({ schedule: 2, keepAlive: 2 });
    await fake.advance(100);
    expect(isTimeoutError(c.error) && isTimeoutError(d.error)).toBe(true);
  });

  it('runs concurrent calls on a clock that cannot unreference timers', async () => {
    const fake = new FakeClock();
    const clock = { now: () => fake.now(), schedule: (cb: () => void, ms: number) => fake.schedule(cb, ms), cancel: (h: unknown) => fake.cancel(h) };
    const policy = timeout({ ms: 100, clock });
    const a = track(policy.execute(() => delayed(fake, 10, 'a')));
    const b = track(policy.execute(() => delayed(fake, 20, 'b')));
    const c = track(policy.execute(() => never()));
    await fake.advance(100);
    expect([a.value, b.value]).toEqual(['a', 'b']);
    expect(isTimeoutError(c.error)).toBe(true);
    expect(fake.scheduledTimers).toBe(0);
  });

  it("points p-timeout's and other option names at ms", () => {
    expect(() => timeout({ milliseconds: 5 } as never)).toThrow(/unknown option "milliseconds" \(p-timeout's milliseconds is ms\)/);
    expect(() => timeout({ timeout: 5 } as never)).toThrow(/unknown option "timeout" \(the deadline is ms\)/);
  });
});

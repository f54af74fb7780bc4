import { describe, expect, it } from 'vitest';
import { bulkhead, fallback, type Outcome, pipeline, retry, timeout, TimeoutError, type WorkContext } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { abortListenerCount, delayed, never, track } from './helpers.ts';

describe('pipeline', () => {
  it('runs the first policy outermost', async () => {
    const clock = new FakeClock();
    // fallback outside timeout: the timeout's error is replaced.
    const outer = pipeline(fallback({ value: 'fb' }), timeout({ ms: 5, clock }));
    const a = track(outer.execute(() => never()));
    // timeout outside fallback: the fallback answers first, the timeout never fires.
    const inner = pipeline(timeout({ ms: 5, clock }), fallback({ value: 'fb' }));
    const b = track(inner.execute(() => Promise.reject(new Error('x'))));
    await clock.advance(5);
    expect(a.value).toBe('fb');
    expect(b.value).toBe('fb');
  });

  it('an empty pipeline just runs the work', async () => {
    await expect(pipeline().execute(({ attempt }) => attempt)).resolves.toBe(1);
  });

  it('gives the work a context with a signal and attempt 1', async () => {
    let ctx: WorkContext | undefined;
    await pipeline().execute((c) => {
      ctx = c;
    });
    expect(ctx!.attempt).toBe(1);
    expect(ctx!.signal).toBeInstanceOf(AbortSignal);
    expect(ctx!.signal.aborted).toBe(false);
  });

  it('gives each call without a caller signal its own never-aborted signal', async () => {
    const signals: AbortSignal[] = [];
    const p = pipeline();
    await p.execute(({ signal }) => signals.push(signal));
    await p.execute(({ signal }) => signals.push(signal));
    expect(signals[0]).not.toBe(signals[1]);
  });

  it('passes the caller signal itself to the work when no layer needs its own', async () => {
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    await pipeline(fallback({ value: 0 })).execute(({ signal }) => { seen = signal; }, { signal: controller.signal });
    expect(seen).toBe(controller.signal);
  });

  it('rejects at once with the caller reason when the caller aborts, even if the work ignores it', async () => {
    const controller = new AbortController();
    const reason = new Error('client went away');
    const t = track(pipeline().execute(() => never(), { signal: controller.signal }));
    controller.abort(reason);
    await new Promise((r) => setImmediate(r));
    expect(t.error).toBe(reason);
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('removes its listener from a long-lived caller signal after each call', async () => {
    const controller = new AbortController();
    const clock = new FakeClock();
    const p = pipeline(fallback({ value: 0 }), timeout({ ms: 10, clock }));
    for (let i = 0; i < 50; i++) {
      await p.execute(async ({ signal }) => signal.aborted, { signal: controller.signal });
    }
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('nests: a pipeline is a policy', async () => {
    const clock = new FakeClock();
    const inner = pipeline({ name: 'inner' }, timeout({ ms: 5, clock }));
    const outer = pipeline({ name: 'outer' }, fallback({ value: 'fb' }), inner);
    const outcomes: string[] = [];
    inner.onSettled((e) => outcomes.push(`inner:${e.outcome}`));
    outer.onSettled((e) => outcomes.push(`outer:${e.outcome}`));
    const t = track(outer.execute(() => never()));
    await clock.advance(5);
    expect(t.value).toBe('fb');
    expect(outcomes).toEqual(['inner:timeout', 'outer:fallback']);
  });

  it('reports each call once through onSettled with outcome and duration', async () => {
    const clock = new FakeClock();
    const p = pipeline({ name: 'dep', clock }, timeout({ ms: 50, clock }));
    const events: { outcome: Outcome; durationMs: number }[] = [];
    p.onSettled(({ outcome, durationMs }) => events.push({ outcome, durationMs }));
    const controller = new AbortController();
    track(p.execute(() => 1));
    track(p.execute(() => Promise.reject(new Error('x'))));
    track(p.execute(() => never()));
    track(p.execute(() => never(), { signal: controller.signal }));
    await clock.advance(10);
    controller.abort();
    await clock.advance(40);
    expect(events).toEqual([
      { outcome: 'success', durationMs: 0 },
      { outcome: 'failure', durationMs: 0 },
      { outcome: 'cancelled', durationMs: 10 },
      { outcome: 'timeout', durationMs: 50 },
    ]);
  });

  it('counts an already-aborted call as cancelled without running the work', async () => {
    const p = pipeline({ name: 'dep' });
    const outcomes: Outcome[] = [];
    p.onSettled((e) => outcomes.push(e.outcome));
    let ran = false;
    await expect(p.execute(() => { ran = true; }, { signal: AbortSignal.abort('no') })).rejects.toBe('no');
    expect(ran).toBe(false);
    expect(outcomes).toEqual(['cancelled']);
  });

  it('wrap keeps parameters and this', async () => {
    const clock = new FakeClock();
    const p = pipeline(timeout({ ms: 10, clock }));
    const obj = {
      base: 10,
      add: p.wrap(function (this: { base: number }, n: number) {
        return this.base + n;
      }),
    };
    await expect(obj.add(5)).resolves.toBe(15);
  });

  it('fires onDispose', () => {
    const p = pipeline({ name: 'x' });
    let disposed = 0;
    p.onDispose(() => disposed++);
    p.dispose();
    expect(disposed).toBe(1);
  });

  it('keeps a throwing listener from breaking the call', async () => {
    const p = pipeline({ name: 'x' });
    p.onSettled(() => {
      throw new Error('listener bug');
    });
    const errors: unknown[] = [];
    const onError = (e: unknown): void => { errors.push(e); };
    process.on('uncaughtException', onError);
    try {
      await expect(p.execute(() => 3)).resolves.toBe(3);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(errors).toHaveLength(1);
  });

  it('rejects bad arguments', () => {
    expect(() => pipeline({ name: '' })).toThrow(/option "name" must be a string of 1 to 100/);
    expect(() => pipeline({ name: 'has space' })).toThrow(/received "has space" \(string\)/);
    expect(() => pipeline({ name: 'x'.repeat(101) })).toThrow(TypeError);
    expect(() => pipeline({ nam: 'x' } as never)).toThrow(/unknown option "nam"/);
    expect(() => pipeline(timeout({ ms: 1 }), {} as never)).toThrow(/argument 2 must be a policy/);
    expect(() => pipeline({ name: 'a' }, 5 as never)).toThrow(/argument 2 must be a policy/);
    expect(() => pipeline().execute(5 as never)).toThrow(/the work must be a function/);
    expect(() => pipeline().execute(() => 1, { signal: 'x' as never })).toThrow(/option "signal" must be an AbortSignal/);
  });

  it('TimeoutError survives as the rejection through layers', async () => {
    const clock = new FakeClock();
    const t = track(pipeline(timeout({ ms: 1, clock })).execute(() => never()));
    await clock.advance(1);
    expect(t.error).toBeInstanceOf(TimeoutError);
  });
});

describe('pipeline: mistakes are refused with an error that says what to write', () => {
  it('an unknown per-call option, or a bare AbortSignal where the options belong', () => {
    const p = pipeline({ name: 'p' });
    expect(() => p.execute(() => 1, { sigal: new AbortController().signal } as never)).toThrow(
      /pipeline\.execute: unknown option "sigal"; the only option is "signal"/,
    );
    expect(() => p.execute(() => 1, new AbortController().signal as never)).toThrow(/received an AbortSignal: pass it as \{ signal \}/);
    expect(() => timeout({ ms: 5 }).execute(() => 1, { timeout: 5 } as never)).toThrow(/timeout\.execute: unknown option "timeout"/);
  });

  it('a policy factory passed without calling it', () => {
    expect(() => pipeline(timeout as never)).toThrow(/argument 1 is a function \(timeout\), not a policy: a policy factory passed without calling it\?/);
    expect(() => pipeline({ name: 'p' }, retry(), fallback as never)).toThrow(/argument 3 is a function \(fallback\)/);
  });

  it('the same policy instance twice in one pipeline; in a nested pipeline it is fine', () => {
    const t = timeout({ ms: 5 });
    expect(() => pipeline(t, retry(), t)).toThrow(/argument 3 is the same timeout instance as argument 1/);
    expect(() => pipeline(t, pipeline(t))).not.toThrow();
  });

  it('dispose() ends the pipeline: later calls are refused, calls in flight finish', async () => {
    const clock = new FakeClock();
    const p = pipeline({ name: 'orders', clock }, timeout({ ms: 50, clock }));
    const inFlight = p.execute(() => delayed(clock, 10, 'done'));
    p.dispose();
    p.dispose(); // idempotent
    expect(p.disposed).toBe(true);
    expect(() => p.execute(() => 'never')).toThrow(/^pipeline "orders": disposed; it runs no more calls/);
    await clock.advance(10);
    expect(await inFlight).toBe('done');
  });

  it('Breakwater errors name the pipeline, in a field and in the message', async () => {
    const clock = new FakeClock();
    const p = pipeline({ name: 'inventory', clock }, bulkhead({ maxConcurrent: 1 }), timeout({ ms: 5, clock }));
    const slow = p.execute(() => delayed(clock, 10, 'late')).catch((e: unknown) => e);
    const full = await p.execute(() => 'x').catch((e: unknown) => e);
    expect(full).toMatchObject({ pipeline: 'inventory', message: expect.stringMatching(/^pipeline "inventory": the bulkhead is full/) });
    await clock.advance(5);
    expect(await slow).toMatchObject({ pipeline: 'inventory', message: 'pipeline "inventory": the call did not settle within 5 ms' });
    // a nested unnamed pipeline inherits the name; a policy on its own has none
    const nested = pipeline({ name: 'outer', clock }, pipeline(timeout({ ms: 5, clock })));
    const late = nested.execute(() => delayed(clock, 10, 'late')).catch((e: unknown) => e);
    await clock.advance(5);
    expect(await late).toMatchObject({ pipeline: 'outer' });
    const alone = timeout({ ms: 5, clock }).execute(() => delayed(clock, 10, 'late')).catch((e: unknown) => e);
    await clock.advance(5);
    expect(await alone).toMatchObject({ pipeline: undefined, message: 'the call did not settle within 5 ms' });
  });
});

describe('pipeline: what mutation testing showed unpinned', () => {
  /** What `body` throws (vitest's toThrow(regex) lets a thrown `undefined` pass). */
  function thrownBy(body: () => unknown): unknown {
    try {
      body();
    } catch (error) {
      return error;
    }
    throw new Error('did not throw');
  }

  it('a disposed pipeline refuses calls with an Error naming it, or saying "pipeline" when it has no name', () => {
    const named = pipeline({ name: 'orders' });
    named.dispose();
    const refusal = thrownBy(() => named.execute(() => 1));
    expect(refusal).toBeInstanceOf(Error);
    expect((refusal as Error).message).toBe('pipeline "orders": disposed; it runs no more calls (create a new pipeline)');
    const unnamed = pipeline();
    unnamed.dispose();
    expect((thrownBy(() => unnamed.execute(() => 1)) as Error).message).toBe('pipeline: disposed; it runs no more calls (create a new pipeline)');
  });

  it('a second dispose() does nothing: onDispose fires once', () => {
    const p = pipeline({ name: 'x' });
    let disposed = 0;
    p.onDispose(() => disposed++);
    p.dispose();
    p.dispose();
    expect(disposed).toBe(1);
  });

  it("a recorder's remover removes that recording only, however often it is called", async () => {
    const clock = new FakeClock();
    const p = pipeline({ clock });
    const seen = { a: 0, b: 0 };
    const a = { record: () => void seen.a++ };
    const b = { record: () => void seen.b++ };
    const removeA = p._record(a);
    p._record(b);
    await p.execute(() => 1);
    removeA();
    await p.execute(() => 2);
    expect(seen).toEqual({ a: 1, b: 2 }); // b keeps recording
    const again = p._record(a); // a records again, through a new remover
    removeA(); // the old remover does nothing now
    await p.execute(() => 3);
    expect(seen).toEqual({ a: 2, b: 3 });
    again();
  });

  it('runs calls, untimed, once every recorder is removed and nobody listens', async () => {
    const p = pipeline();
    const remove = p._record({ record: () => {} });
    remove();
    await expect(p.execute(() => 'still runs')).resolves.toBe('still runs');
  });
});

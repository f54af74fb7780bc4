import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chaos } from '../src/chaos/index.ts';
import { type Chain, pipeline, PolicyBase, retry, type Scope, timeout } from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { abortListenerCount, track } from './helpers.ts';

describe('chaos', () => {
  it('is off unless enabled: nothing is injected by default', async () => {
    const fault = chaos({ kind: 'fault', error: new Error('injected'), injectionRate: 1 });
    expect(fault.enabled).toBe(false);
    expect(await fault.execute(() => 'real')).toBe('real');
  });

  it('a fault: the call rejects with the error and the work is not called', async () => {
    const injected = new Error('injected');
    const kinds: string[] = [];
    const fault = chaos({ kind: 'fault', error: injected, injectionRate: 1, enabled: true });
    fault.onInjected(({ kind }) => kinds.push(kind));
    let called = false;
    await expect(fault.execute(() => (called = true))).rejects.toBe(injected);
    expect(called).toBe(false);
    expect(kinds).toEqual(['fault']);
    const made = chaos({ kind: 'fault', error: () => new Error('fresh'), injectionRate: 1, enabled: true });
    await expect(made.execute(() => 1)).rejects.toThrow('fresh');
  });

  it('an outcome: answers with the value', async () => {
    const outcome = chaos({ kind: 'outcome', value: 'canned', injectionRate: 1, enabled: true });
    expect(await outcome.execute(() => 'real')).toBe('canned');
  });

  it('latency: delays the call on the clock, then runs it; an abort cuts the delay short', async () => {
    const clock = new FakeClock();
    const slow = chaos({ kind: 'latency', ms: 100, injectionRate: 1, enabled: true, clock });
    const call = track(slow.execute(() => 'late'));
    await clock.advance(99);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(call.value).toBe('late');
    // inside a timeout: the delay is aborted with the timeout's error, and no timer is left
    const guarded = pipeline(timeout({ ms: 30, clock }), slow);
    const cut = track(guarded.execute(() => 'never'));
    await clock.advance(30);
    expect(cut.error).toMatchObject({ code: 'ERR_BREAKWATER_TIMEOUT' });
    await clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
  });

  it('the enabled switch is read on every call, so a flag can drive it', async () => {
    const flag = { on: false };
    const fault = chaos({ kind: 'fault', error: new Error('x'), injectionRate: 1, enabled: () => flag.on });
    expect(await fault.execute(() => 1)).toBe(1);
    flag.on = true;
    await expect(fault.execute(() => 1)).rejects.toThrow('x');
    flag.on = false;
    expect(await fault.execute(() => 1)).toBe(1);
  });

  it('refuses bad settings with a clear error', () => {
    expect(() => chaos({ kind: 'fault', error: 1, injectionRate: 20 })).toThrow(
      /chaos: option "injectionRate" must be a number from 0 to 1 \(a share of calls: 0.05 is one in twenty\); received 20/,
    );
    expect(() => chaos({ kind: 'fault', error: 1, injectionRate: -0.1 })).toThrow(RangeError);
    expect(() => chaos({ kind: 'fault', injectionRate: 0.1 } as never)).toThrow(/option "error" is required/);
    expect(() => chaos({ kind: 'latency', injectionRate: 0.1 } as never)).toThrow(/option "ms" is required/);
    expect(() => chaos({ kind: 'outcome', injectionRate: 0.1 } as never)).toThrow(/option "value" is required/);
    expect(() => chaos({ kind: 'boom', injectionRate: 0.1 } as never)).toThrow(/option "kind" must be one of "fault", "latency", "outcome"/);
    expect(() => chaos({ kind: 'fault', error: 1, injectionRate: 0.1, enabled: 'yes' } as never)).toThrow(/option "enabled" must be true, false or a function/);
    expect(() => chaos({ kind: 'latency', ms: 5, injectionRate: 0.1, value: 1 } as never)).toThrow(/unknown option "value"/);
  });

  it('a latency function returning a bad delay rejects that call with a clear error', async () => {
    const slow = chaos({ kind: 'latency', ms: () => -5, injectionRate: 1, enabled: true });
    await expect(slow.execute(() => 1)).rejects.toThrow(/chaos: option "ms" must be a finite number of milliseconds from 0/);
  });

  it('a retry sees an injected fault like a real one', async () => {
    const clock = new FakeClock();
    const random = seededRandom(1);
    const p = pipeline(retry({ maxAttempts: 5, clock, backoff: { delayMs: () => 0 } }), chaos({ kind: 'fault', error: new Error('x'), injectionRate: 0.5, enabled: true, random }));
    expect(await p.execute(() => 'through')).toBe('through');
  });

  it('property: the injected share converges to the rate; with enabled false nothing is injected', async () => {
    await fc.assert(
      fc.asyncProperty(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer(), fc.boolean(), async (injectionRate, seed, on) => {
        const policy = chaos({ kind: 'outcome', value: 'injected', injectionRate, enabled: on, random: seededRandom(seed) });
        let injected = 0;
        const n = 2_000;
        for (let i = 0; i < n; i++) if ((await policy.execute(() => 'real')) === 'injected') injected++;
        if (!on) expect(injected).toBe(0);
        else expect(Math.abs(injected / n - injectionRate)).toBeLessThan(0.05); // > 4 standard deviations at n = 2,000
      }),
      { numRuns: 40 },
    );
  });
});

describe('chaos: what mutation testing showed unpinned', () => {
  /** A layer recording what the layers below it answered, and when. */
  class Probe extends PolicyBase {
    readonly kind = 'probe';
    readonly seen: unknown[] = [];
    _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
      return chain.next(index + 1, scope, attempt).then(
        (value) => (this.seen.push(['value', value]), value),
        (error: unknown) => {
          this.seen.push(['error', error]);
          throw error;
        },
      );
    }
  }

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

  it("is of kind 'chaos'", () => {
    expect(chaos({ kind: 'outcome', value: 1, injectionRate: 1 }).kind).toBe('chaos');
  });

  it('an abort during an injected delay rejects the layers above with its reason at once, cancels the timer, and never runs the work', async () => {
    const clock = new FakeClock();
    const probe = new Probe();
    let called = false;
    const slow = chaos({ kind: 'latency', ms: 100, injectionRate: 1, enabled: true, clock });
    const caller = new AbortController();
    const call = track(pipeline(probe, slow).execute(() => (called = true), { signal: caller.signal }));
    await clock.advance(10);
    const reason = new Error('caller left');
    caller.abort(reason);
    expect(clock.scheduledTimers).toBe(0);
    await clock.flush();
    expect(probe.seen).toEqual([['error', reason]]);
    expect(call.error).toBe(reason);
    await clock.advance(200);
    expect(called).toBe(false);
  });

  it('a delayed call that completes leaves no listener on a long-lived caller signal', async () => {
    const clock = new FakeClock();
    const slow = chaos({ kind: 'latency', ms: 10, injectionRate: 1, enabled: true, clock });
    const shutdown = new AbortController();
    const call = track(slow.execute(() => 'done', { signal: shutdown.signal }));
    await clock.advance(10);
    expect(call.value).toBe('done');
    expect(abortListenerCount(shutdown.signal)).toBe(0);
  });

  it('a scope already aborted when the delay would start rejects at once, without a timer or the work', async () => {
    const clock = new FakeClock();
    const above = new GaveUp();
    let called = false;
    const call = track(pipeline(above, chaos({ kind: 'latency', ms: 100, injectionRate: 1, enabled: true, clock })).execute(() => (called = true)));
    await clock.flush();
    expect(call.error).toBe(above.reason);
    expect(clock.scheduledTimers).toBe(0);
    await clock.advance(200);
    expect(called).toBe(false);
  });

  it('a latency function gives the delay of each call', async () => {
    const clock = new FakeClock();
    const delays = [50, 20];
    const slow = chaos({ kind: 'latency', ms: () => delays.shift()!, injectionRate: 1, enabled: true, clock });
    const first = track(slow.execute(() => 'first'));
    await clock.advance(49);
    expect(first.status).toBe('pending');
    await clock.advance(1);
    expect(first.value).toBe('first');
    const second = track(slow.execute(() => 'second'));
    await clock.advance(20);
    expect(second.value).toBe('second');
  });

  it('injects only when the draw is below the rate, and never draws at rate 0', async () => {
    let draws = 0;
    const at = (draw: number) => () => (draws++, draw);
    const half = chaos({ kind: 'outcome', value: 'injected', injectionRate: 0.5, enabled: true, random: at(0.5) });
    expect(await half.execute(() => 'real')).toBe('real'); // 0.5 is not below 0.5
    const off = chaos({ kind: 'outcome', value: 'injected', injectionRate: 0, enabled: true, random: at(0) });
    draws = 0;
    expect(await off.execute(() => 'real')).toBe('real');
    expect(draws).toBe(0);
  });

  it('checks the rate, the options object and the delay, naming what is wrong', () => {
    expect(chaos({ kind: 'outcome', value: 1, injectionRate: 0 }).injectionRate).toBe(0);
    expect(() => chaos({ kind: 'fault', error: 1, injectionRate: 20 })).toThrow(RangeError);
    for (const bad of [Number.NaN, '0.5', '5']) {
      expect(() => chaos({ kind: 'fault', error: 1, injectionRate: bad as never })).toThrow(TypeError);
    }
    expect(() => chaos(undefined as never)).toThrow('chaos: options must be an object; received undefined');
    expect(() => chaos(null as never)).toThrow('chaos: options must be an object; received null');
    expect(() => chaos({ kind: 'latency', ms: 'soon' as never, injectionRate: 1 })).toThrow(
      /option "ms" must be a number of ms from 0 to 2147483647, or a function returning one/,
    );
  });
});

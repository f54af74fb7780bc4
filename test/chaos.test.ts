import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chaos } from '../src/chaos/index.ts';
import { pipeline, retry, timeout } from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { track } from './helpers.ts';

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

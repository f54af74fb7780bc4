import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hedge, pipeline, retryBudget, timeout, type WorkContext } from '../src/index.ts';
import { nthSmallest } from '../src/hedge.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { delayed, track } from './helpers.ts';

describe('hedge', () => {
  it('a slow attempt gets a hedge after delayMs; the first result wins and the loser is aborted', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const started: number[] = [];
    const signals: AbortSignal[] = [];
    const events: unknown[] = [];
    h.onHedge((e) => events.push(['hedge', e]));
    h.onHedgeWon((e) => events.push(['won', e]));
    const call = track(
      h.execute(({ attempt, signal }) => {
        started.push(clock.now());
        signals.push(signal);
        return delayed(clock, attempt === 1 ? 500 : 20, `attempt ${attempt}`, signal);
      }),
    );
    await clock.advance(49);
    expect(started).toEqual([0]);
    await clock.advance(1);
    expect(started).toEqual([0, 50]);
    await clock.advance(20);
    expect(call.value).toBe('attempt 2');
    expect(signals[0]!.aborted).toBe(true);
    expect((signals[0]!.reason as DOMException).name).toBe('AbortError');
    expect(signals[1]!.aborted).toBe(false);
    expect(events).toEqual([
      ['hedge', { attempt: 2, afterMs: 50 }],
      ['won', { attempt: 2 }],
    ]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a fast call gets no hedge and leaves no timer', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, clock });
    expect(await h.execute(() => 'fast')).toBe('fast');
    expect(clock.pendingTimers).toBe(0);
  });

  it('the hedge timer never holds the process open, and ends by itself once nothing is pending', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const slow = track(h.execute(({ signal }) => delayed(clock, 500, 'slow', signal)));
    expect(clock.scheduledTimers).toBe(2); // the work's own timer, and the hedge's
    expect(clock.pendingTimers).toBe(1); // only the work's holds the process open
    expect(await h.execute(() => 'fast')).toBe('fast');
    await clock.advance(60); // the hedge started; the timer has nothing more to do
    await clock.advance(500);
    expect(slow.value).toBe('slow');
    expect(clock.scheduledTimers).toBe(0);
    for (let i = 0; i < 3; i++) await h.execute(() => i); // calls one after another: one idle timer, due at the first one's delay
    expect(clock.scheduledTimers).toBe(1);
    await clock.advance(50);
    expect(clock.scheduledTimers).toBe(0);
  });

  it('with a clock that cannot unreference timers, the timer is cancelled when no hedge is pending', async () => {
    const fake = new FakeClock();
    const clock = { now: () => fake.now(), schedule: fake.schedule.bind(fake), cancel: fake.cancel.bind(fake) };
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const a = track(h.execute(({ signal }) => delayed(fake, 20, 'a', signal)));
    const b = track(h.execute(({ signal }) => delayed(fake, 10, 'b', signal)));
    expect(fake.scheduledTimers).toBe(3);
    await fake.advance(10);
    expect(b.value).toBe('b');
    expect(fake.scheduledTimers).toBe(2); // a's work and the hedge timer, still due for a
    await fake.advance(10);
    expect(a.value).toBe('a');
    expect(fake.scheduledTimers).toBe(0);
  });

  it('a failed attempt with nothing else running hedges at once; when every attempt fails, the last error is the result', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxHedges: 2, maxExtraLoad: 1, clock });
    await h.execute(() => 'earns a hedge'); // each call earns maxExtraLoad (1) of a hedge: two in the bank, plus this call's
    const started: number[] = [];
    const call = track(
      h.execute(({ attempt }) => {
        started.push(clock.now());
        return delayed(clock, 10, undefined).then(() => Promise.reject(new Error(`attempt ${attempt} failed`)));
      }),
    );
    await clock.advance(100);
    expect(started).toEqual([0, 10, 20]);
    expect((call.error as Error).message).toBe('attempt 3 failed');
  });

  it('an error handle does not count is the result at once, and stops the others', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 10, maxExtraLoad: 1, handle: (e) => (e as Error).message !== 'fatal', clock });
    const signals: AbortSignal[] = [];
    const call = track(
      h.execute(({ attempt, signal }) => {
        signals.push(signal);
        return attempt === 1 ? delayed(clock, 100, 'slow', signal) : delayed(clock, 5, undefined).then(() => Promise.reject(new Error('fatal')));
      }),
    );
    await clock.advance(15);
    expect((call.error as Error).message).toBe('fatal');
    expect(signals[0]!.aborted).toBe(true);
  });

  it('the caller aborting ends the call with its reason, passed to every attempt, and no hedge starts', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const call = track(h.execute(({ signal }) => (signals.push(signal), delayed(clock, 500, 'x', signal)), { signal: controller.signal }));
    await clock.advance(10);
    const reason = new Error('client left');
    controller.abort(reason);
    await clock.advance(100);
    expect(call.error).toBe(reason);
    expect(signals).toHaveLength(1);
    expect(signals[0]!.reason).toBe(reason);
    expect(clock.pendingTimers).toBe(0);
  });

  it('an outer timeout ends the call; the pending hedge never starts', async () => {
    const clock = new FakeClock();
    let attempts = 0;
    const p = pipeline(timeout({ ms: 30, clock }), hedge({ delayMs: 50, maxExtraLoad: 1, clock }));
    const call = track(p.execute(({ signal }) => (attempts++, delayed(clock, 500, 'x', signal))));
    await clock.advance(100);
    expect(call.error).toMatchObject({ code: 'ERR_BREAKWATER_TIMEOUT' });
    expect(attempts).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('the budget: with maxExtraLoad 0.1, no hedge for the first nine calls, then one per ten calls', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 5, clock });
    let refused = 0;
    h.onBudgetExhausted(() => refused++);
    let attempts = 0;
    const calls = Array.from({ length: 30 }, () => h.execute(({ signal }) => (attempts++, delayed(clock, 20, 'ok', signal))));
    await clock.advance(50);
    await Promise.all(calls);
    expect(attempts).toBe(33);
    expect(refused).toBe(27);
  });

  it('a shared retry budget can pay for hedges', async () => {
    const clock = new FakeClock();
    const budget = retryBudget({ ratio: 0.5, minPerSecond: 1, windowMs: 1_000, clock });
    const h = hedge({ delayMs: 5, budget, clock });
    let attempts = 0;
    const calls = Array.from({ length: 4 }, () => h.execute(({ signal }) => (attempts++, delayed(clock, 20, 'ok', signal))));
    await clock.advance(50);
    await Promise.all(calls);
    expect(attempts).toBe(4 + 3); // ratio 0.5 × 4 calls + a floor of 1
  });

  it('a dynamic delay follows the observed percentile, with its floor and cap', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: { percentile: 0.9, minMs: 5, maxMs: 400, samples: 40 }, clock });
    expect(h.currentDelayMs).toBe(400); // nothing observed yet: the cap
    for (let i = 1; i <= 40; i++) {
      const call = h.execute(() => delayed(clock, i, i));
      await clock.advance(i);
      await call;
    }
    expect(h.currentDelayMs).toBe(36);
    const noCap = hedge({ delayMs: { percentile: 0.5, minMs: 5 }, clock });
    expect(noCap.currentDelayMs).toBe(Infinity); // no hedge until enough is known
  });

  it('selects the k-th smallest value as sorting would, whatever the values (ties, order, size)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), fc.double({ min: 0, max: 1e6, noNaN: true })), { minLength: 1, maxLength: 300 }),
        fc.nat(),
        (values, pick) => {
          const k = pick % values.length;
          const expected = Float64Array.from(values).sort()[k];
          const scratch = Float64Array.from(values);
          expect(nthSmallest(scratch, values.length, k)).toBe(expected);
          expect(Float64Array.from(scratch).sort()).toEqual(Float64Array.from(values).sort()); // only reordered
        },
      ),
    );
  });

  it('a dynamic delay is the percentile of the recent durations, as sorted, once enough are known', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 8, maxLength: 60 }), fc.constantFrom(0.5, 0.9, 0.99), async (durations, percentile) => {
        const clock = new FakeClock();
        const samples = 16;
        const h = hedge({ delayMs: { percentile, minMs: 1, maxMs: 10_000, samples }, maxExtraLoad: 0.001, clock }); // too little budget for a hedge: each duration is the first attempt's
        const recent: number[] = [];
        for (const d of durations) {
          const call = h.execute(() => delayed(clock, d, d));
          await clock.advance(d);
          await call;
          recent.push(d);
        }
        // with 16 samples the percentile is recomputed on every call once 4 are held
        const held = recent.slice(-samples).sort((a, b) => a - b);
        expect(h.currentDelayMs).toBe(held[Math.min(held.length - 1, Math.ceil(percentile * held.length) - 1)]);
      }),
      { numRuns: 60 },
    );
  });

  it('one timer serves the pending hedges of a policy, also when a later call is due sooner', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: { percentile: 0.5, minMs: 5, maxMs: 100, samples: 8 }, maxExtraLoad: 1, clock });
    const started: string[] = [];
    const slow = (name: string) => track(h.execute(({ attempt, signal }) => (started.push(`${name}${attempt}@${clock.now()}`), delayed(clock, attempt === 1 ? 500 : 1, name, signal))));
    const a = slow('a'); // nothing observed yet: its hedge is due at 100
    for (let i = 0; i < 2; i++) {
      const quick = h.execute(() => delayed(clock, 1, 'q'));
      await clock.advance(1);
      await quick;
    }
    expect(h.currentDelayMs).toBe(5); // two quick successes: the median is 1 ms, the floor 5
    const b = slow('b'); // due at 2 + 5 = 7, before a's hedge
    expect(clock.scheduledTimers).toBe(3); // the two slow attempts' own timers, and one for both hedges
    expect(clock.pendingTimers).toBe(2); // which never holds the process open: the attempts do
    await clock.advance(5);
    expect(started).toEqual(['a1@0', 'b1@2', 'b2@7']);
    await clock.advance(1);
    expect(b.value).toBe('b');
    await clock.advance(92);
    expect(started.at(-1)).toBe('a2@100');
    await clock.advance(1);
    expect(a.value).toBe('a');
    expect(clock.pendingTimers).toBe(0);
  });

  it('validates its options', () => {
    expect(() => hedge({} as never)).toThrow(/hedge: option "delayMs" is required/);
    expect(() => hedge({ delayMs: 0 })).toThrow(/hedge: option "delayMs" must be a finite number of milliseconds from 1/);
    expect(() => hedge({ delayMs: { percentile: 1, minMs: 5 } })).toThrow(/"delayMs.percentile" must be a number greater than 0 and below 1; received 1/);
    expect(() => hedge({ delayMs: { percentile: 0.9 } as never })).toThrow(/"delayMs.minMs" is required/);
    expect(() => hedge({ delayMs: { percentile: 0.9, minMs: 50, maxMs: 10 } })).toThrow(/"delayMs.maxMs" must be at least delayMs.minMs \(50\); received 10/);
    expect(() => hedge({ delayMs: { percentile: 0.9, minMs: 5, p: 1 } as never })).toThrow(/unknown option "delayMs.p"/);
    expect(() => hedge({ delayMs: 5, maxHedges: 11 })).toThrow(/"maxHedges" must be/);
    expect(() => hedge({ delayMs: 5, maxExtraLoad: 0 })).toThrow(/"maxExtraLoad" must be a number greater than 0 and at most 1; received 0/);
    expect(() => hedge({ delayMs: 5, maxExtraLoad: 0.1, budget: retryBudget() })).toThrow(/not both/);
  });
});

describe('hedge: properties', () => {
  const attemptArb = fc.record({ afterMs: fc.integer({ min: 0, max: 200 }), fails: fc.boolean() });
  it('each call settles exactly once, hedges stay within budget, every loser is aborted, no timer is left', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 300 }), attempts: fc.array(attemptArb, { minLength: 4, maxLength: 4 }), abortAt: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }) }), { minLength: 1, maxLength: 20 }),
        async (maxHedges, delayMs, maxExtraLoad, calls) => {
          const clock = new FakeClock();
          const h = hedge({ delayMs, maxHedges, maxExtraLoad, clock });
          let hedges = 0;
          h.onHedge(() => hedges++);
          const settledCounts: number[] = [];
          /** Per call: each attempt's signal, whether it ended by itself, and whether it was still running when the call settled but not aborted. */
          const perCall: { signals: AbortSignal[]; ended: boolean[] }[] = [];
          const problems: string[] = [];
          calls.forEach((spec, n) => {
            settledCounts.push(0);
            perCall.push({ signals: [], ended: [] });
            clock.schedule(() => {
              const controller = spec.abortAt === undefined ? undefined : new AbortController();
              if (controller !== undefined) clock.schedule(() => controller.abort(new Error('gone')), spec.abortAt! );
              const work = ({ attempt, signal }: WorkContext) => {
                const i = perCall[n]!.signals.push(signal) - 1;
                perCall[n]!.ended.push(false);
                const a = spec.attempts[Math.min(i, 3)]!;
                return delayed(clock, a.afterMs, i, signal).then((v) => {
                  perCall[n]!.ended[i] = true;
                  if (a.fails) throw new Error(`attempt ${attempt} failed`);
                  return v;
                });
              };
              const settled = (winner: number | undefined): void => {
                settledCounts[n]!++;
                // every attempt still running when the call settled must be aborted by now
                perCall[n]!.signals.forEach((signal, i) => {
                  if (i !== winner && !perCall[n]!.ended[i] && !signal.aborted) problems.push(`call ${n}: attempt ${i + 1} still running, not aborted`);
                });
              };
              h.execute(work, controller === undefined ? undefined : { signal: controller.signal }).then(
                (v) => settled(v),
                () => settled(undefined),
              );
            }, spec.at);
          });
          await clock.advance(5_000);
          expect(settledCounts).toEqual(calls.map(() => 1));
          expect(hedges).toBeLessThanOrEqual(Math.floor(maxExtraLoad * calls.length + 1e-9));
          expect(problems).toEqual([]);
          for (const { signals } of perCall) expect(signals.length).toBeLessThanOrEqual(maxHedges + 1);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('with a slow tail, the p99 callers see falls', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), async (seed) => {
        const p99 = async (withHedge: boolean): Promise<number> => {
          const clock = new FakeClock();
          const random = seededRandom(seed);
          // Until 25 attempts are observed, hedge after maxMs; then after the observed p90.
          const h = hedge({ delayMs: { percentile: 0.9, minMs: 5, maxMs: 100, samples: 100 }, maxExtraLoad: 0.2, clock });
          const durations: number[] = [];
          for (let i = 0; i < 400; i++) {
            const work = ({ signal }: WorkContext) => delayed(clock, random() < 0.04 ? 1_000 : 10 + Math.floor(random() * 10), 'ok', signal);
            const start = clock.now();
            const call = (withHedge ? h.execute(work) : work({ signal: new AbortController().signal, attempt: 1 })).then(() => durations.push(clock.now() - start));
            await clock.advance(5);
            void call;
          }
          await clock.advance(2_000);
          durations.sort((a, b) => a - b);
          return durations[Math.ceil(0.99 * durations.length) - 1]!;
        };
        const without = await p99(false);
        const withHedge = await p99(true);
        expect(without).toBeGreaterThanOrEqual(1_000);
        expect(withHedge).toBeLessThan(without / 5);
      }),
      { numRuns: 10, examples: [[4]] },
    );
  });
});

describe('hedge: the layer above gave up', () => {
  it('a failed attempt with nothing left running starts no hedge once the outer timeout has aborted', async () => {
    const clock = new FakeClock();
    let hedges = 0;
    const h = hedge({ delayMs: { percentile: 0.9, minMs: 5 }, maxExtraLoad: 1, clock });
    h.onHedge(() => hedges++);
    const p = pipeline(timeout({ ms: 50, clock }), h);
    let calls = 0;
    const call = track(p.execute(({ signal }) => (calls++, new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))))));
    await clock.advance(60);
    expect(call.error).toMatchObject({ code: 'ERR_BREAKWATER_TIMEOUT' });
    expect(calls).toBe(1);
    expect(hedges).toBe(0);
  });
});

/**
 * Hedge details the main suite leaves implicit: abort-listener hygiene, what a
 * losing attempt's signal says, the layer above aborting while a hedge is
 * pending, option messages, the percentile delay's recomputation and the one
 * timer's order with mixed delays. All in virtual time.
 */
import { createHook } from 'node:async_hooks';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Chain, hedge, pipeline, PolicyBase, retryBudget, type Scope, type WorkContext } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { abortListenerCount, delayed, never, track } from './helpers.ts';

/**
 * An outer layer that hands the layers below a scope of its own and races
 * nothing: what the hedge does when that scope aborts is the call's outcome,
 * and every 'abort' listener on its signal is the hedge's.
 */
class Scoped extends PolicyBase {
  readonly kind = 'scoped';
  readonly controller = new AbortController();
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  _run<T>(chain: Chain<T>, index: number, _scope: Scope | undefined, attempt: number): Promise<T> {
    return chain.next(index + 1, { signal: this.controller.signal }, attempt);
  }
}

/** Lets promise callbacks run without moving virtual time. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('hedge: no abort listener outlives the call', () => {
  it('the first attempt succeeds before its hedge: neither it nor the pending hedge still listens', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const p = pipeline(outer, hedge({ delayMs: 50, maxExtraLoad: 1, clock }));
    const call = track(p.execute(({ signal }) => delayed(clock, 10, 'ok', signal)));
    expect(abortListenerCount(outer.signal)).toBe(1); // one shared listener while the call runs
    await clock.advance(10);
    expect(call.value).toBe('ok');
    expect(abortListenerCount(outer.signal)).toBe(0);
  });

  it('the first attempt succeeds without reading its signal: the pending hedge stops listening', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const p = pipeline(outer, hedge({ delayMs: 50, maxExtraLoad: 1, clock }));
    const call = track(p.execute(() => delayed(clock, 10, 'ok')));
    await clock.advance(10);
    expect(call.value).toBe('ok');
    expect(abortListenerCount(outer.signal)).toBe(0);
  });

  it('the hedge wins: the winner and the aborted loser both stop listening', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const p = pipeline(outer, hedge({ delayMs: 50, maxExtraLoad: 1, clock }));
    const call = track(p.execute(({ attempt, signal }) => delayed(clock, attempt === 1 ? 500 : 20, attempt, signal)));
    await clock.advance(70);
    expect(call.value).toBe(2);
    expect(abortListenerCount(outer.signal)).toBe(0);
  });

  it('the hedge wins while the loser ignores its abort: the loser still stops listening', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const p = pipeline(outer, hedge({ delayMs: 50, maxExtraLoad: 1, clock }));
    const call = track(p.execute(({ attempt, signal }) => (void signal, attempt === 1 ? never() : delayed(clock, 20, attempt))));
    await clock.advance(70);
    expect(call.value).toBe(2);
    expect(abortListenerCount(outer.signal)).toBe(0);
  });

  it('every attempt fails: nothing listens', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const p = pipeline(outer, hedge({ delayMs: 50, maxExtraLoad: 1, clock }));
    const call = track(p.execute(({ signal }) => delayed(clock, 5, undefined, signal).then(() => Promise.reject(new Error('down')))));
    await clock.advance(20);
    expect((call.error as Error).message).toBe('down');
    expect(abortListenerCount(outer.signal)).toBe(0);
  });

  it('the budget refuses the hedge: the call stops listening at once, though its attempt still runs', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const h = hedge({ delayMs: 50, maxExtraLoad: 0.05, clock });
    let refused = 0;
    h.onBudgetExhausted(() => refused++);
    const call = track(pipeline(outer, h).execute(() => delayed(clock, 100, 'slow')));
    expect(abortListenerCount(outer.signal)).toBe(1);
    await clock.advance(50);
    expect(refused).toBe(1);
    expect(call.status).toBe('pending');
    expect(abortListenerCount(outer.signal)).toBe(0);
    await clock.advance(50);
    expect(call.value).toBe('slow');
  });

  it('through execute with a caller signal: no listener is left once the call ends', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const controller = new AbortController();
    const won = track(h.execute(({ attempt, signal }) => delayed(clock, attempt === 1 ? 500 : 20, attempt, signal), { signal: controller.signal }));
    await clock.advance(70);
    expect(won.value).toBe(2);
    expect(abortListenerCount(controller.signal)).toBe(0);
  });
});

describe('hedge: the layer above aborts', () => {
  it('while a hedge is pending: the call ends at once with that reason, no hedge starts, nothing is left', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    let hedges = 0;
    h.onHedge(() => hedges++);
    let attempts = 0;
    const call = track(pipeline(outer, h).execute(() => (attempts++, never()))); // ignores its signal
    await clock.advance(10);
    const reason = new Error('gave up');
    outer.controller.abort(reason);
    await flush();
    expect(call.status).toBe('rejected');
    expect(call.error).toBe(reason);
    await clock.advance(100);
    expect(attempts).toBe(1);
    expect(hedges).toBe(0);
    expect(clock.scheduledTimers).toBe(0);
    expect(abortListenerCount(outer.signal)).toBe(0);
  });

  it('before the call starts: no hedge is armed, and the attempt reads its signal aborted with that reason', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const reason = new Error('already gone');
    outer.controller.abort(reason);
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const signals: AbortSignal[] = [];
    const call = track(pipeline(outer, h).execute(({ signal }) => (signals.push(signal), delayed(clock, 100, 'late'))));
    expect(clock.scheduledTimers).toBe(1); // the work's own timer only
    await clock.advance(100);
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(true);
    expect(signals[0]!.reason).toBe(reason);
    expect(call.value).toBe('late');
  });

  it('with no hedge pending: an attempt that fails afterwards is the result, and no hedge starts for it', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    // no maxMs and nothing observed: no hedge is armed, so nothing watches the scope
    const h = hedge({ delayMs: { percentile: 0.9, minMs: 5 }, maxExtraLoad: 1, clock });
    let attempts = 0;
    const failure = new Error('socket closed');
    const call = track(pipeline(outer, h).execute(() => (attempts++, delayed(clock, 20, undefined).then(() => Promise.reject(failure)))));
    expect(clock.scheduledTimers).toBe(1); // the work's own timer: no hedge timer
    await clock.advance(10);
    outer.controller.abort(new Error('gave up'));
    await clock.advance(10);
    expect(call.status).toBe('rejected');
    expect(call.error).toBe(failure);
    expect(attempts).toBe(1);
  });

  it('an attempt that first reads its signal after the scope aborted sees it aborted with that reason', async () => {
    const clock = new FakeClock();
    const outer = new Scoped();
    const h = hedge({ delayMs: { percentile: 0.9, minMs: 5 }, clock }); // no hedge armed
    const reason = new Error('gave up');
    let seen: AbortSignal | undefined;
    const call = track(pipeline(outer, h).execute((ctx: WorkContext) => delayed(clock, 20, undefined).then(() => ((seen = ctx.signal), 'done'))));
    await clock.advance(10);
    outer.controller.abort(reason);
    await clock.advance(10);
    expect(call.value).toBe('done');
    expect(seen!.aborted).toBe(true);
    expect(seen!.reason).toBe(reason);
  });
});

describe("hedge: a losing attempt's signal", () => {
  it('is aborted with an AbortError saying another attempt settled first', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const signals: AbortSignal[] = [];
    const call = track(h.execute(({ attempt, signal }) => (signals.push(signal), delayed(clock, attempt === 1 ? 500 : 20, attempt, signal))));
    await clock.advance(70);
    expect(call.value).toBe(2);
    const reason = signals[0]!.reason as DOMException;
    expect(reason).toBeInstanceOf(DOMException);
    expect(reason.name).toBe('AbortError');
    expect(reason.message).toBe('another attempt of this hedged call settled first');
  });

  it('read for the first time after it lost, is aborted all the same, with that reason', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    let late: AbortSignal | undefined;
    const call = track(
      h.execute((ctx: WorkContext) => {
        if (ctx.attempt === 2) return delayed(clock, 20, 2);
        clock.schedule(() => (late = ctx.signal), 100); // reads its signal only after losing at 70
        return never<number>();
      }),
    );
    await clock.advance(100);
    expect(call.value).toBe(2);
    expect(late!.aborted).toBe(true);
    expect((late!.reason as DOMException).message).toBe('another attempt of this hedged call settled first');
  });

  it('is one signal however often it is read, and that one is aborted', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const reads: AbortSignal[] = [];
    const call = track(
      h.execute((ctx: WorkContext) => {
        if (ctx.attempt === 2) return delayed(clock, 20, 2);
        reads.push(ctx.signal);
        clock.schedule(() => reads.push(ctx.signal), 30); // read again before losing
        return never<number>();
      }),
    );
    await clock.advance(70);
    expect(call.value).toBe(2);
    expect(reads).toHaveLength(2);
    expect(reads[1]).toBe(reads[0]);
    expect(reads[0]!.aborted).toBe(true);
  });
});

describe('hedge: attempts in flight', () => {
  it('an attempt that fails while another still runs leaves the call to that one', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const call = track(
      h.execute(({ attempt, signal }) =>
        attempt === 1 ? delayed(clock, 60, undefined, signal).then(() => Promise.reject(new Error('first failed'))) : delayed(clock, 30, 'hedge', signal),
      ),
    );
    await clock.advance(60);
    expect(call.status).toBe('pending'); // the hedge still runs
    await clock.advance(20);
    expect(call.value).toBe('hedge');
  });

  it('the hedge failing first leaves the call to the first attempt', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const call = track(
      h.execute(({ attempt, signal }) =>
        attempt === 1 ? delayed(clock, 100, 'first', signal) : delayed(clock, 10, undefined, signal).then(() => Promise.reject(new Error('hedge failed'))),
      ),
    );
    await clock.advance(100);
    expect(call.value).toBe('first');
  });

  it('with maxHedges 2, a second hedge starts a delay after the first', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxHedges: 2, maxExtraLoad: 1, clock });
    await h.execute(() => 'earns a hedge'); // a call earns one hedge; two are needed
    const events: unknown[] = [];
    h.onHedge((e) => events.push(e));
    const started: number[] = [];
    const call = track(h.execute(({ attempt, signal }) => (started.push(clock.now()), delayed(clock, attempt === 3 ? 10 : 500, attempt, signal))));
    await clock.advance(110);
    expect(started).toEqual([0, 50, 100]);
    expect(events).toEqual([
      { attempt: 2, afterMs: 50 },
      { attempt: 3, afterMs: 100 },
    ]);
    expect(call.value).toBe(3);
  });

  it('a failure with nothing else running hedges at once, numbered and timed from the call, and arms the next hedge', async () => {
    const clock = new FakeClock();
    await clock.advance(1_000); // the call starts at 1000, not 0
    const h = hedge({ delayMs: 50, maxHedges: 2, maxExtraLoad: 1, clock });
    await h.execute(() => 'earns a hedge'); // a call earns one hedge; two are needed
    const events: unknown[] = [];
    h.onHedge((e) => events.push(e));
    const started: number[] = [];
    const call = track(
      h.execute(({ attempt, signal }) => {
        started.push(clock.now() - 1_000);
        return attempt === 1 ? delayed(clock, 5, undefined, signal).then(() => Promise.reject(new Error('fast failure'))) : delayed(clock, 500, attempt, signal);
      }),
    );
    await clock.advance(60);
    expect(started).toEqual([0, 5, 55]);
    expect(events).toEqual([
      { attempt: 2, afterMs: 5 },
      { attempt: 3, afterMs: 55 },
    ]);
    await clock.advance(500);
    expect(call.value).toBe(2);
  });

  it('an error handle accepts is a failed attempt: another attempt may still win', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, handle: (e) => (e as Error).message === 'retryable', clock });
    const call = track(
      h.execute(({ attempt, signal }) => (attempt === 1 ? delayed(clock, 5, undefined, signal).then(() => Promise.reject(new Error('retryable'))) : delayed(clock, 10, 'second', signal))),
    );
    await clock.advance(15);
    expect(call.value).toBe('second');
  });
});

describe('hedge: its public fields', () => {
  it("kind is 'hedge'; with a budget, maxExtraLoad is undefined", () => {
    const budget = retryBudget();
    const withBudget = hedge({ delayMs: 5, budget });
    expect(withBudget.kind).toBe('hedge');
    expect(withBudget.budget).toBe(budget);
    expect(withBudget.maxExtraLoad).toBeUndefined();
    expect(hedge({ delayMs: 5 }).maxExtraLoad).toBe(0.1);
  });
});

describe('hedge: option messages name the option, the rule and the value', () => {
  const message = (options: unknown): string => {
    try {
      hedge(options as never);
    } catch (error) {
      return `${(error as Error).constructor.name}: ${(error as Error).message}`;
    }
    return 'accepted';
  };

  it('delayMs that is neither a number nor an object', () => {
    for (const [value, shown] of [['"fast" (string)', 'fast'], ['null', null], ['true', true]] as const) {
      expect(message({ delayMs: shown })).toMatch(/^TypeError: hedge: option "delayMs" must be a number of ms or \{ percentile, minMs, maxMs\?, samples\? \}; received /);
      expect(message({ delayMs: shown })).toContain(value);
    }
  });

  it("delayMs's fields are checked as delayMs.<field> of hedge", () => {
    expect(message({ delayMs: { percentile: 0.9, minMs: 0 } })).toMatch(/^RangeError: hedge: option "delayMs.minMs" must be/);
    expect(message({ delayMs: [] })).toMatch(/^TypeError: hedge: option "delayMs" must be an object; received/);
  });

  it('maxMs must be at least minMs: equal is fine, below is refused', () => {
    expect(message({ delayMs: { percentile: 0.9, minMs: 50, maxMs: 50 } })).toBe('accepted');
    expect(message({ delayMs: { percentile: 0.9, minMs: 50, maxMs: 51 } })).toBe('accepted');
    expect(message({ delayMs: { percentile: 0.9, minMs: 50, maxMs: 49 } })).toBe('RangeError: hedge: option "delayMs.maxMs" must be at least delayMs.minMs (50); received 49');
  });

  it('budget must have both recordFirstAttempt and tryRetry functions', () => {
    const refused = /^TypeError: hedge: option "budget" must be a RetryBudget \(from retryBudget\(\) or fleetRetryBudget\(\)\); received /;
    const fn = (): boolean => true;
    for (const budget of [null, 5, 'budget', {}, { tryRetry: fn }, { recordFirstAttempt: fn }, { recordFirstAttempt: 1, tryRetry: fn }, { recordFirstAttempt: fn, tryRetry: 1 }]) {
      expect(message({ delayMs: 5, budget })).toMatch(refused);
    }
    expect(message({ delayMs: 5, budget: { recordFirstAttempt: fn, tryRetry: fn } })).toBe('accepted');
    expect(message({ delayMs: 5, budget: Object.assign(() => {}, { recordFirstAttempt: fn, tryRetry: fn }) })).toMatch(refused); // a function is not a budget object
  });
});

describe('hedge: the percentile delay', () => {
  /**
   * What the delay must be after each success, as stated: the percentile
   * (rank ceil(p × n), from 1) of the last `samples` successful durations, taken
   * once a quarter of `samples` are held and then again every samples/16
   * successes (every one below 32 samples), and kept within minMs and maxMs;
   * maxMs (or no hedge) before that.
   */
  function expectedDelays(durations: readonly number[], p: number, samples: number, minMs: number, maxMs: number | undefined): number[] {
    const ring: number[] = [];
    let sampled = 0;
    let since = 0;
    let observed = Infinity;
    const out: number[] = [];
    for (const d of durations) {
      ring[sampled++ % samples] = d;
      const held = Math.min(sampled, samples);
      if (held >= samples >> 2) {
        since++;
        if (observed === Infinity || since >= Math.max(1, samples >> 4)) {
          since = 0;
          const sorted = ring.slice(0, held).sort((a, b) => a - b);
          observed = sorted[Math.ceil(p * held) - 1]!;
        }
      }
      const base = observed === Infinity ? (maxMs ?? Infinity) : observed;
      out.push(base === Infinity ? Infinity : Math.max(minMs, Math.min(base, maxMs ?? Infinity)));
    }
    return out;
  }

  it('after each success is the chosen percentile of the recent durations, recomputed on schedule, within minMs and maxMs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(8, 16, 33, 48, 64),
        fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        fc.integer({ min: 1, max: 150 }),
        fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 120 }),
        async (samples, percentile, minMs, extra, durations) => {
          const maxMs = extra === undefined ? undefined : minMs + extra;
          const clock = new FakeClock();
          const delayMs = maxMs === undefined ? { percentile, minMs, samples } : { percentile, minMs, maxMs, samples };
          const h = hedge({ delayMs, maxExtraLoad: 0.001, clock }); // too little budget for a hedge: each duration is the first attempt's
          expect(h.currentDelayMs).toBe(maxMs ?? Infinity);
          const seen: number[] = [];
          for (const d of durations) {
            const call = h.execute(() => delayed(clock, d, d));
            await clock.advance(d);
            await call;
            seen.push(h.currentDelayMs);
          }
          expect(seen).toEqual(expectedDelays(durations, percentile, samples, minMs, maxMs));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('with 64 samples: maxMs until 16 are held, then recomputed at once, and again every 4th success', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: { percentile: 0.5, minMs: 1, maxMs: 1_000, samples: 64 }, maxExtraLoad: 0.001, clock });
    const seen: number[] = [];
    for (let i = 1; i <= 24; i++) {
      const d = i; // rising durations: each recomputation moves the median
      const call = h.execute(() => delayed(clock, d, d));
      await clock.advance(d);
      await call;
      seen.push(h.currentDelayMs);
    }
    // 15 × maxMs; at 16 the median (8th of 16) is 8; kept until the 20th (10th of 20), then the 24th (12th of 24)
    expect(seen).toEqual([...Array(15).fill(1_000), 8, 8, 8, 8, 10, 10, 10, 10, 12]);
  });
});

describe('hedge: the one timer with mixed delays', () => {
  it('hedges due at the same time start in the order their calls were made', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const started: string[] = [];
    const calls = ['a', 'b', 'c'].map((name) =>
      track(h.execute(({ attempt, signal }) => (attempt === 2 && started.push(name), delayed(clock, attempt === 1 ? 500 : 10, name, signal)))),
    );
    await clock.advance(50);
    expect(started).toEqual(['a', 'b', 'c']);
    await clock.advance(10);
    expect(calls.map((c) => c.value)).toEqual(['a', 'b', 'c']);
  });

  it('a hedge armed while hedges fire does not hold back an earlier one already pending', async () => {
    const clock = new FakeClock();
    const h = hedge({ delayMs: 50, maxHedges: 2, maxExtraLoad: 1, clock });
    await h.execute(() => 'earns a hedge');
    const started: string[] = [];
    const slow = (name: string) => track(h.execute(({ attempt, signal }) => (started.push(`${name}${attempt}@${clock.now()}`), delayed(clock, 1_000, name, signal))));
    const a = slow('a'); // hedges due at 50, then 100
    await clock.advance(30);
    const b = slow('b'); // its hedge is due at 80: after a's first, before a's second
    await clock.advance(100);
    expect(started).toEqual(['a1@0', 'b1@30', 'a2@50', 'b2@80', 'a3@100']);
    await clock.advance(1_000);
    expect([a.value, b.value]).toEqual(['a', 'b']);
  });

  it('with a clock that cannot unreference timers, no timer is left once a fired hedge and a later call are done', async () => {
    const fake = new FakeClock();
    const clock = { now: () => fake.now(), schedule: fake.schedule.bind(fake), cancel: fake.cancel.bind(fake) };
    const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
    const a = track(h.execute(({ attempt, signal }) => delayed(fake, attempt === 1 ? 500 : 10, 'a', signal)));
    await fake.advance(60); // a's hedge fired and won
    expect(a.value).toBe('a');
    expect(fake.scheduledTimers).toBe(0);
    const b = track(h.execute(({ signal }) => delayed(fake, 10, 'b', signal)));
    expect(fake.scheduledTimers).toBe(2); // b's work and its hedge timer
    await fake.advance(10);
    expect(b.value).toBe('b');
    expect(fake.scheduledTimers).toBe(0);
  });

  it('each hedge starts exactly at its call’s start plus the delay read when it started, whatever the mix of delays', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 400 }), quickMs: fc.option(fc.integer({ min: 1, max: 19 }), { nil: undefined }) }), { minLength: 1, maxLength: 40 }),
        async (percentile, specs) => {
          const clock = new FakeClock();
          // 8 samples: the delay is recomputed after every quick success once two are held, so it keeps changing
          const unlimited = { recordFirstAttempt: () => {}, tryRetry: () => true }; // every hedge is granted, however many are due at once
          const h = hedge({ delayMs: { percentile, minMs: 20, maxMs: 200, samples: 8 }, budget: unlimited, clock });
          const expected: { seq: number; dueAt: number }[] = [];
          const actual: { seq: number; at: number }[] = [];
          let seq = 0;
          for (const spec of [...specs].sort((x, y) => x.at - y.at)) {
            clock.schedule(() => {
              const n = seq++;
              if (spec.quickMs !== undefined) {
                // always done before its hedge (the delay is at least 20): a success that teaches the delay
                void h.execute(({ signal }) => delayed(clock, spec.quickMs!, 'q', signal));
                return;
              }
              expected.push({ seq: n, dueAt: clock.now() + h.currentDelayMs });
              void h.execute(({ attempt, signal }) => {
                if (attempt === 2) actual.push({ seq: n, at: clock.now() });
                return delayed(clock, 5_000, 's', signal); // still running when every hedge is due
              });
            }, spec.at);
          }
          await clock.advance(1_000);
          const inDueOrder = [...expected].sort((x, y) => x.dueAt - y.dueAt || x.seq - y.seq).map(({ seq, dueAt }) => ({ seq, at: dueAt }));
          expect(actual).toEqual(inDueOrder);
          await clock.advance(10_000);
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe('hedge: the one timer is scheduled only for an entry due sooner than it', () => {
  it('a call due no sooner than the armed timer, a dead entry and a hedge armed while firing cost no extra schedule', async () => {
    const fake = new FakeClock();
    const schedules: [number, number][] = [];
    const clock = {
      now: () => fake.now(),
      schedule: (callback: () => void, delayMs: number) => (schedules.push([fake.now(), delayMs]), fake.schedule(callback, delayMs)),
      cancel: (handle: unknown) => fake.cancel(handle),
      keepAlive: (handle: unknown, keepAlive: boolean) => fake.keepAlive(handle, keepAlive),
    };
    const unlimited = { recordFirstAttempt: () => {}, tryRetry: () => true };
    const h = hedge({ delayMs: 50, maxHedges: 2, budget: unlimited, clock });
    const slow = () => void h.execute(({ signal }) => delayed(fake, 10_000, 'slow', signal));
    const at = (ms: number, run: () => void) => fake.schedule(run, ms); // the test's and the work's timers go to the fake directly: `schedules` holds the hedge timer's only
    at(0, slow); // a: hedges due at 50 and 100
    at(0, slow); // d: due at 50 too, which the armed timer serves
    at(10, () => void h.execute(({ signal }) => delayed(fake, 5, 'quick', signal))); // b: due at 60, settles at 15, a dead entry between live ones
    at(12, slow); // c: due at 62, then 112
    await fake.advance(200);
    expect(schedules).toEqual([
      [0, 50], // a
      [50, 50], // a's second hedge, armed while firing; d's joins it
      [50, 12], // then re-armed for c, sooner (b's dead entry is skipped)
      [62, 50], // c's second hedge, armed while firing
      [62, 38], // re-armed for a's and d's second hedges, sooner
      [100, 12], // c's second hedge
    ]);
    schedules.length = 0;
    await fake.advance(800); // at 1000
    slow(); // e, alone: due at 1050, then 1100
    await fake.advance(200);
    expect(schedules).toEqual([
      [1000, 50],
      [1050, 50], // armed while firing, and already the soonest: not re-armed
    ]);
    await fake.advance(20_000);
  });
});

describe('hedge: at scale and under async hooks', () => {
  it('after more than 1024 hedges fire at once, the next pending one is still served at its due time, with one schedule', async () => {
    const fake = new FakeClock();
    const schedules: [number, number][] = [];
    const clock = {
      now: () => fake.now(),
      schedule: (callback: () => void, delayMs: number) => (schedules.push([fake.now(), delayMs]), fake.schedule(callback, delayMs)),
      cancel: (handle: unknown) => fake.cancel(handle),
      keepAlive: (handle: unknown, keepAlive: boolean) => fake.keepAlive(handle, keepAlive),
    };
    const unlimited = { recordFirstAttempt: () => {}, tryRetry: () => true };
    const h = hedge({ delayMs: 50, budget: unlimited, clock });
    let hedges = 0;
    h.onHedge(() => hedges++);
    const slow = () => void h.execute(({ signal }) => delayed(fake, 10_000, 'slow', signal));
    for (let i = 0; i < 1_100; i++) slow(); // all due at 50
    fake.schedule(slow, 1); // due at 51
    await fake.advance(50);
    expect(hedges).toBe(1_100);
    await fake.advance(1);
    expect(hedges).toBe(1_101);
    expect(schedules).toEqual([
      [0, 50],
      [50, 1], // straight to the next live entry, past the 1,100 fired ones
    ]);
    await fake.advance(20_000);
  });

  it("arms its hedges in an async resource of type 'breakwater.hedge', also while an init hook listens", async () => {
    const types: string[] = [];
    const hook = createHook({ init: (_id, type) => void types.push(type) }).enable();
    try {
      const clock = new FakeClock();
      const h = hedge({ delayMs: 50, maxExtraLoad: 1, clock });
      const call = track(h.execute(({ attempt, signal }) => delayed(clock, attempt === 1 ? 500 : 10, attempt, signal)));
      await clock.advance(60);
      expect(call.value).toBe(2);
    } finally {
      hook.disable();
    }
    expect(types).toContain('breakwater.hedge');
  });
});

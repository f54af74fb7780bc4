import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRateLimitedError, isRejection, pipeline, rateLimiter, retry, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { track } from './helpers.ts';

describe('rateLimiter', () => {
  it('admits a burst, then one call per 1/rate seconds; over the limit it refuses at once, saying when to come back', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 2, clock });
    expect(await limiter.execute(() => 1)).toBe(1);
    expect(await limiter.execute(() => 2)).toBe(2);
    const refused = await limiter.execute(() => 3).catch((e: unknown) => e);
    expect(isRateLimitedError(refused)).toBe(true);
    expect(isRejection(refused)).toBe(true);
    expect(refused).toMatchObject({ retryAfterMs: 100 });
    await clock.advance(100);
    expect(await limiter.execute(() => 4)).toBe(4);
    expect(limiter.burst).toBe(2);
  });

  it('a queue: calls wait for their token in order; the one timer goes when the queue is empty', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 3, clock });
    const waited: number[] = [];
    limiter.onAdmit(({ waitedMs }) => waited.push(waitedMs));
    const calls = [1, 2, 3, 4].map((n) => track(limiter.execute(() => n)));
    const fifth = await limiter.execute(() => 5).catch((e: unknown) => e); // the queue is full
    expect(isRateLimitedError(fifth)).toBe(true);
    await clock.advance(300);
    expect(calls.map((c) => c.value)).toEqual([1, 2, 3, 4]);
    expect(waited).toEqual([0, 100, 200, 300]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('maxWaitMs: a call that would wait longer is refused at once', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 10, maxWaitMs: 150, clock });
    const calls = [track(limiter.execute(() => 1)), track(limiter.execute(() => 2))];
    const third = await limiter.execute(() => 3).catch((e: unknown) => e);
    expect(third).toMatchObject({ code: 'ERR_BREAKWATER_RATE_LIMITED', retryAfterMs: 200 });
    await clock.advance(100);
    expect(calls.map((c) => c.value)).toEqual([1, 2]);
  });

  it('an aborted waiter leaves the queue at once with its reason, and its token goes to the next', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 5, clock });
    const p = pipeline({ name: 'partner', clock }, timeout({ ms: 50, clock }), limiter);
    track(p.execute(() => 'first'));
    const cut = track(p.execute(() => 'too late')); // waits 100 ms, the timeout cuts it at 50
    const controller = new AbortController();
    const aborted = track(limiter.execute(() => 'never', { signal: controller.signal }));
    controller.abort(new Error('caller left'));
    await clock.advance(50);
    expect(cut.error).toMatchObject({ code: 'ERR_BREAKWATER_TIMEOUT' });
    expect((aborted.error as Error).message).toBe('caller left');
    expect(limiter.queued).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    const next = track(limiter.execute(() => 'next')); // the freed place: half a token is back, the other half in 50 ms
    await clock.advance(50);
    expect(next.value).toBe('next');
  });

  it('a retry does not retry its refusals by default; the refusal names the pipeline', async () => {
    const clock = new FakeClock();
    const p = pipeline({ name: 'partner', clock }, retry({ clock }), rateLimiter({ ratePerSecond: 1, burst: 1, clock }));
    let calls = 0;
    await p.execute(() => calls++);
    const refused = await p.execute(() => calls++).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect((refused as Error).message).toMatch(/^pipeline "partner": the rate limit \(1 calls\/s, burst 1\) is reached/);
  });

  it('validates its options', () => {
    expect(() => rateLimiter({} as never)).toThrow(/option "ratePerSecond" is required/);
    expect(() => rateLimiter({ ratePerSecond: 0 })).toThrow(/option "ratePerSecond" must be a finite number above 0, up to 1000000; received 0/);
    expect(() => rateLimiter({ ratePerSecond: 5, burst: 0 })).toThrow(/option "burst" must be/);
    expect(() => rateLimiter({ ratePerSecond: 5, maxWaitMs: 10 })).toThrow(/option "maxWaitMs" needs a queue/);
    expect(() => rateLimiter({ rps: 5 } as never)).toThrow(/unknown option "rps" \(write ratePerSecond\)/);
    expect(rateLimiter({ ratePerSecond: 0.5 }).burst).toBe(1);
    expect(rateLimiter({ ratePerSecond: 50 }).burst).toBe(50);
  });

  it('property: in any window of T ms it admits at most burst + rate × T calls, every call settles once, nothing is left behind', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 2_000 }), abortAfter: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }) }), { maxLength: 60 }),
        async (ratePerSecond, burst, maxQueue, calls) => {
          const clock = new FakeClock();
          const limiter = rateLimiter({ ratePerSecond, burst, maxQueue, clock });
          const admitted: number[] = [];
          const settled = calls.map(() => 0);
          calls.forEach((call, n) => {
            clock.schedule(() => {
              const controller = call.abortAfter === undefined ? undefined : new AbortController();
              if (controller !== undefined) clock.schedule(() => controller.abort(new Error('gone')), call.abortAfter!);
              limiter
                .execute(() => void admitted.push(clock.now()), controller === undefined ? undefined : { signal: controller.signal })
                .then(
                  () => settled[n]!++,
                  () => settled[n]!++,
                );
            }, call.at);
          });
          await clock.advance(2_400 + ((maxQueue + 1) * 1000) / ratePerSecond);
          expect(settled).toEqual(calls.map(() => 1));
          for (let i = 0; i < admitted.length; i++) {
            for (let j = i; j < admitted.length; j++) {
              const windowMs = admitted[j]! - admitted[i]!;
              expect(j - i + 1).toBeLessThanOrEqual(burst + (ratePerSecond * windowMs) / 1000 + 1e-9);
            }
          }
          expect(limiter.queued).toBe(0);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('rateLimiter: a very low rate', () => {
  it('waits with one timer capped at the platform limit, not a busy loop', async () => {
    const clock = new FakeClock();
    let scheduled = 0;
    const counting = { now: () => clock.now(), schedule: (fn: () => void, ms: number) => (scheduled++, expect(ms).toBeLessThanOrEqual(2 ** 31 - 1), clock.schedule(fn, ms)), cancel: (t: unknown) => clock.cancel(t) };
    const limiter = rateLimiter({ ratePerSecond: 1e-7, burst: 1, maxQueue: 1, clock: counting });
    await limiter.execute(() => 1);
    const waiting = track(limiter.execute(() => 2));
    await clock.advance(1_000);
    expect(scheduled).toBe(1);
    expect(waiting.status).toBe('pending');
  });
});

describe('rateLimiter: what mutation testing showed unpinned', () => {
  /** A FakeClock view that records the delays asked for, and can run its timers `lateMs` late (a busy event loop). */
  function recordingClock(lateMs = 0) {
    const fake = new FakeClock();
    const delays: number[] = [];
    const clock = {
      now: () => fake.now(),
      schedule: (fn: () => void, ms: number) => {
        delays.push(ms);
        return fake.schedule(fn, ms + lateMs);
      },
      cancel: (t: unknown) => fake.cancel(t),
    };
    return { fake, clock, delays };
  }

  it("is a policy of kind 'rate-limiter' whose tokens refill with time, read or not", async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 5, clock });
    expect(limiter.kind).toBe('rate-limiter');
    for (let i = 0; i < 5; i++) await limiter.execute(() => i);
    expect(limiter.tokens).toBe(0);
    await clock.advance(600);
    expect(limiter.tokens).toBe(3); // 5 per second for 0.6 s
    await clock.advance(10_000);
    expect(limiter.tokens).toBe(5); // never above the burst
  });

  it('a call arriving while others wait never jumps the queue, even when the timer of the token is late', async () => {
    const { fake, clock } = recordingClock(50);
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 5, clock });
    const order: string[] = [];
    await limiter.execute(() => order.push('first'));
    const waiter = track(limiter.execute(() => order.push('waiter'))); // its token is due at 100, its timer runs at 150
    await fake.advance(120); // a token is in the bucket, the waiter not yet woken
    const later = track(limiter.execute(() => order.push('later')));
    await fake.advance(200);
    expect(waiter.status).toBe('fulfilled');
    expect(later.status).toBe('fulfilled');
    expect(order).toEqual(['first', 'waiter', 'later']);
  });

  it('asks the clock to wake it when the next token is due, one timer per waiter', async () => {
    // 3 per second: a token every 333.3 ms, so the bucket holds fractions between wake-ups
    const { fake, clock, delays } = recordingClock();
    const limiter = rateLimiter({ ratePerSecond: 3, burst: 2, maxQueue: 5, clock });
    const waited: number[] = [];
    limiter.onAdmit(({ waitedMs }) => waited.push(waitedMs));
    const calls = [1, 2, 3, 4].map((n) => track(limiter.execute(() => n)));
    await fake.advance(1_000);
    expect(calls.map((c) => c.value)).toEqual([1, 2, 3, 4]);
    expect(delays).toEqual([334, 333]); // 334: 1.002 tokens at the first wake-up, 0.002 left for the next
    expect(waited).toEqual([0, 0, 334, 667]);
  });

  it('says how long to wait from the fraction of a token already back, and lets a call wait exactly maxWaitMs', async () => {
    const clock = new FakeClock();
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 1, clock });
    const rejects: unknown[] = [];
    limiter.onReject(({ error }) => rejects.push(error));
    await limiter.execute(() => 1);
    await clock.advance(40); // 0.4 of a token is back
    const refused = await limiter.execute(() => 2).catch((e: unknown) => e);
    expect(refused).toMatchObject({ retryAfterMs: 60 });
    expect(rejects).toEqual([refused]);
    expect(rejects[0]).toBe(refused);

    const queued = rateLimiter({ ratePerSecond: 10, burst: 1, maxQueue: 5, maxWaitMs: 100, clock });
    await queued.execute(() => 1);
    const exact = track(queued.execute(() => 'waited 100 ms')); // waits exactly maxWaitMs: allowed
    await clock.advance(100);
    expect(exact.value).toBe('waited 100 ms');
  });

  it('a clock that went backwards takes no tokens away', async () => {
    const clock = { at: 1_000, now: () => clock.at, schedule: () => 0, cancel: () => {} };
    const limiter = rateLimiter({ ratePerSecond: 10, burst: 4, clock });
    await limiter.execute(() => 1);
    await limiter.execute(() => 2);
    expect(limiter.tokens).toBe(2);
    clock.at = 500;
    expect(limiter.tokens).toBe(2);
    clock.at = 600; // still before the last reading: nothing comes back yet
    expect(limiter.tokens).toBe(2);
    clock.at = 1_100; // 100 ms after the last reading: one token more
    expect(limiter.tokens).toBe(3);
  });

  it('names itself in its option errors, with hints for other names of the rate', () => {
    expect(() => rateLimiter({ ratePerSecond: 0 })).toThrow(/^rateLimiter: option "ratePerSecond"/);
    expect(() => rateLimiter({ limit: 5 } as never)).toThrow(/unknown option "limit" \(the limit is ratePerSecond\)/);
    expect(() => rateLimiter({ interval: 5 } as never)).toThrow(/unknown option "interval" \(the rate is per second: write ratePerSecond\)/);
    expect(() => rateLimiter({ ratePerSecond: 5, maxWaitMs: 10 })).toThrow(
      'rateLimiter: option "maxWaitMs" needs a queue: set "maxQueue" above 0; received maxQueue 0',
    );
    expect(() => rateLimiter({ ratePerSecond: 5, maxQueue: 0, maxWaitMs: 10 })).toThrow(/option "maxWaitMs" needs a queue/);
  });
});

import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  ADAPTIVE_LIMIT_DEFAULTS,
  adaptiveLimit,
  AIMD_DEFAULTS,
  aimd,
  type BulkheadRejectEvent,
  BulkheadRejectedError,
  GRADIENT_DEFAULTS,
  gradient,
  isRejection,
  type LimitChangeEvent,
  pipeline,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, surfacedErrors, track } from './helpers.ts';

/** `n` calls through `policy`, each taking `ms` of fake time, started together. */
function burst(policy: { execute: (fn: (ctx: { signal: AbortSignal }) => Promise<string>) => Promise<string> }, clock: FakeClock, n: number, ms: number) {
  return Array.from({ length: n }, () => track(policy.execute(({ signal }) => delayed(clock, ms, 'ok', signal))));
}

/** A `burst` that runs to its end. */
async function round(...args: Parameters<typeof burst>) {
  const calls = burst(...args);
  await args[1].advance(args[3]);
  return calls;
}

describe('adaptiveLimit: options', () => {
  it('pins its defaults and the algorithms\' defaults', () => {
    expect(ADAPTIVE_LIMIT_DEFAULTS).toEqual({ minLimit: 1, maxLimit: 200, initialLimit: 20, maxQueue: 0 });
    expect(AIMD_DEFAULTS).toEqual({ increase: 1, backoffRatio: 0.9 });
    expect(GRADIENT_DEFAULTS).toEqual({ smoothing: 0.2, queueAllowance: 4, shortWindowCalls: 10, longWindowCalls: 500 });
    const p = adaptiveLimit({ algorithm: gradient() });
    expect([p.kind, p.limit, p.minLimit, p.maxLimit, p.maxQueue, p.queueTimeoutMs, p.inFlight, p.queued]).toEqual([
      'adaptive-limit', 20, 1, 200, 0, undefined, 0, 0,
    ]);
    expect(aimd()).toMatchObject({ kind: 'aimd', increase: 1, backoffRatio: 0.9, slowCallMs: undefined });
    expect(gradient()).toMatchObject({ kind: 'gradient', ...GRADIENT_DEFAULTS });
    expect(Object.isFrozen(aimd())).toBe(true);
    expect(Object.isFrozen(gradient())).toBe(true);
  });

  it('brings the default initial limit within the bounds given', () => {
    expect(adaptiveLimit({ algorithm: aimd(), maxLimit: 5 }).limit).toBe(5);
    expect(adaptiveLimit({ algorithm: aimd(), minLimit: 30 })).toMatchObject({ limit: 30, maxLimit: 200 });
    expect(adaptiveLimit({ algorithm: aimd(), minLimit: 300 })).toMatchObject({ limit: 300, maxLimit: 300 });
  });

  it('rejects bad options, naming the option, the rule and the value', () => {
    const algorithm = aimd();
    const cases: [unknown, ErrorConstructor, RegExp][] = [
      [undefined, TypeError, /^adaptiveLimit: options must be an object; received undefined$/],
      [{}, TypeError, /option "algorithm" is required; received undefined/],
      [{ algorithm: { kind: 'aimd' } }, TypeError, /option "algorithm" must be an algorithm made by aimd\(\) or gradient\(\); received an object/],
      [{ algorithm: 'aimd' }, TypeError, /option "algorithm" must be an algorithm made by aimd\(\) or gradient\(\); received "aimd" \(string\)/],
      [{ algorithm, minLimit: 0 }, RangeError, /option "minLimit" must be an integer from 1 to \d+; received 0/],
      [{ algorithm, maxLimit: 2.5 }, RangeError, /option "maxLimit" must be an integer from 1 to \d+; received 2.5/],
      [{ algorithm, initialLimit: NaN }, TypeError, /option "initialLimit" must be an integer from 1 to \d+; received NaN/],
      [{ algorithm, minLimit: 10, maxLimit: 5 }, RangeError, /option "maxLimit" must be at least minLimit \(10\); received 5/],
      [{ algorithm, minLimit: 2, maxLimit: 5, initialLimit: 6 }, RangeError, /option "initialLimit" must be from minLimit \(2\) to maxLimit \(5\); received 6/],
      [{ algorithm, minLimit: 2, initialLimit: 1 }, RangeError, /option "initialLimit" must be from minLimit \(2\) to maxLimit \(200\); received 1/],
      [{ algorithm, maxQueue: -1 }, RangeError, /option "maxQueue" must be an integer from 0 or Infinity; received -1/],
      [{ algorithm, queueTimeoutMs: 100 }, RangeError, /option "queueTimeoutMs" needs a queue: set "maxQueue" above 0; received maxQueue 0/],
      [{ algorithm, maxQueue: 1, queueTimeoutMs: 0 }, RangeError, /option "queueTimeoutMs" must be a finite number of milliseconds from 1/],
      [{ algorithm, isDrop: true }, TypeError, /option "isDrop" must be a function; received true \(boolean\)/],
      [{ algorithm, clock: {} }, TypeError, /option "clock" must be a Clock/],
      [{ algorithm, maxConcurrent: 10 }, TypeError, /unknown option "maxConcurrent" \(a fixed maxConcurrent is bulkhead\(\); .*\); known options are algorithm, minLimit/],
      [{ algorithm, maxConcurrency: 10 }, TypeError, /unknown option "maxConcurrency" \(concurrency-limits' maxConcurrency is maxLimit\)/],
    ];
    for (const [options, kind, message] of cases) {
      expect(() => adaptiveLimit(options as never), JSON.stringify(options)).toThrow(kind);
      expect(() => adaptiveLimit(options as never), JSON.stringify(options)).toThrow(message);
    }
  });

  it('rejects bad algorithm options the same way', () => {
    const cases: [() => unknown, ErrorConstructor, RegExp][] = [
      [() => aimd({ increase: 0 }), RangeError, /^aimd: option "increase" must be a finite number above 0, up to 100; received 0$/],
      [() => aimd({ backoffRatio: 1 }), RangeError, /^aimd: option "backoffRatio" must be a finite number from 0.5 to below 1; received 1$/],
      [() => aimd({ backoffRatio: 0.4 }), RangeError, /option "backoffRatio" must be a finite number from 0.5 to below 1; received 0.4/],
      [() => aimd({ backoffRatio: '0.9' as never }), TypeError, /option "backoffRatio" must be a finite number from 0.5 to below 1; received "0.9" \(string\)/],
      [() => aimd({ slowCallMs: Infinity }), RangeError, /option "slowCallMs" must be a finite number of milliseconds from 1/],
      [() => aimd({ timeout: 5 } as never), TypeError, /unknown option "timeout" \(concurrency-limits' AIMD timeout is slowCallMs \(in ms\)\)/],
      [() => gradient({ smoothing: 0 }), RangeError, /^gradient: option "smoothing" must be a finite number above 0, up to 1; received 0$/],
      [() => gradient({ smoothing: 1.5 }), RangeError, /option "smoothing" must be a finite number above 0, up to 1; received 1.5/],
      [() => gradient({ queueAllowance: -1 }), RangeError, /option "queueAllowance" must be a finite number from 0 to 1000; received -1/],
      [() => gradient({ shortWindowCalls: 0 }), RangeError, /option "shortWindowCalls" must be an integer from 1 to 1000000; received 0/],
      [() => gradient({ longWindowCalls: 10 }), RangeError, /option "longWindowCalls" must be above shortWindowCalls \(10\); received 10/],
      [() => gradient({ shortWindowCalls: 600 }), RangeError, /option "longWindowCalls" \(the default, 500\) must be above shortWindowCalls \(600\); received 500/],
      [() => gradient({ queueSize: 4 } as never), TypeError, /unknown option "queueSize" \(concurrency-limits' queueSize is queueAllowance\)/],
      [() => gradient(null as never), TypeError, /^gradient: options must be an object; received null$/],
    ];
    for (const [make, kind, message] of cases) {
      expect(make, String(make)).toThrow(kind);
      expect(make, String(make)).toThrow(message);
    }
  });
});

describe('adaptiveLimit: AIMD', () => {
  it('grows by increase / limit per successful call made near the limit, and not while mostly idle', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: aimd({ increase: 2 }), initialLimit: 10, clock });
    await round(p, clock, 10, 5);
    // the 6 calls that started with at least half the limit in use each add 2 / limit
    expect(p.limit).toBe(11);
    for (let i = 0; i < 20; i++) {
      await round(p, clock, 2, 5); // 2 of 11: under half the limit in use
    }
    expect(p.limit).toBe(11);
  });

  it('multiplies the limit by backoffRatio on a timeout, once for a burst of timeouts that ended together', async () => {
    const clock = new FakeClock();
    const limit = adaptiveLimit({ algorithm: aimd({ backoffRatio: 0.5 }), initialLimit: 16, clock });
    const changes: LimitChangeEvent[] = [];
    limit.onLimitChange((e) => changes.push(e));
    const p = pipeline(limit, timeout({ ms: 50, clock }));
    const calls = burst(p, clock, 16, 100);
    await clock.advance(50);
    expect(calls.every((c) => c.error instanceof TimeoutError)).toBe(true);
    expect(changes).toEqual([{ from: 16, to: 8 }]);
    expect(Object.isFrozen(changes[0])).toBe(true);
    // calls admitted after the fall can lower it again
    burst(p, clock, 8, 100);
    await clock.advance(50);
    expect(changes).toEqual([{ from: 16, to: 8 }, { from: 8, to: 4 }]);
    await clock.runAll();
    expect([limit.inFlight, clock.pendingTimers]).toEqual([0, 0]);
  });

  it('reads no clock without slowCallMs: only drops and timeouts matter to it', async () => {
    const fake = new FakeClock();
    let reads = 0;
    const clock = { now: () => (reads++, fake.now()), schedule: fake.schedule.bind(fake), cancel: fake.cancel.bind(fake) };
    const p = adaptiveLimit({ algorithm: aimd(), initialLimit: 1, clock });
    await p.execute(async () => 'a');
    expect([reads, p.limit]).toEqual([0, 2]);
    const timed = adaptiveLimit({ algorithm: aimd({ slowCallMs: 10 }), clock });
    await timed.execute(async () => 'c');
    expect(reads).toBe(2);
  });

  it('treats a call at or over slowCallMs as congestion', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: aimd({ slowCallMs: 100 }), initialLimit: 10, clock });
    await round(p, clock, 1, 99);
    expect(p.limit).toBe(10);
    await round(p, clock, 1, 100);
    expect(p.limit).toBe(9);
  });

  it('never lowers the limit below minLimit nor raises it above maxLimit', async () => {
    const clock = new FakeClock();
    const p = pipeline(adaptiveLimit({ algorithm: aimd({ increase: 100 }), minLimit: 3, maxLimit: 4, initialLimit: 3, clock }), timeout({ ms: 10, clock }));
    const limit = p.policies[0] as ReturnType<typeof adaptiveLimit>;
    for (let i = 0; i < 5; i++) {
      await round(p, clock, limit.limit, 1);
    }
    expect(limit.limit).toBe(4);
    for (let i = 0; i < 5; i++) {
      await round(p, clock, limit.limit, 20);
    }
    expect(limit.limit).toBe(3);
  });
});

describe('adaptiveLimit: gradient', () => {
  it('rises while latency holds at its long-term level and the limit is in use', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: gradient({ smoothing: 1, queueAllowance: 4 }), initialLimit: 10, clock });
    await round(p, clock, 10, 20);
    // each call that started with at least half the limit in use (the last 6 of
    // the 10) moves it 1/limit of the way to limit + 4: 10 + 6 × about 4/11
    expect(p.limit).toBe(12);
  });

  it('falls when the short-term latency rises above the long-term one, and on drops', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: gradient({ smoothing: 1, shortWindowCalls: 1, longWindowCalls: 100 }), initialLimit: 20, maxLimit: 20, clock });
    for (let i = 0; i < 5; i++) {
      await round(p, clock, 20, 10);
    }
    expect(p.limit).toBe(20);
    await round(p, clock, 20, 20); // twice as slow: a gradient of about 0.5
    expect(p.limit).toBeLessThanOrEqual(13);
    const before = p.limit;
    const dropped = pipeline(p, timeout({ ms: 5, clock }));
    burst(dropped, clock, before, 50);
    await clock.advance(5);
    expect(p.limit).toBeLessThan(before);
  });

  it('keeps one state per policy: an algorithm is a value that policies may share', async () => {
    const clock = new FakeClock();
    const algorithm = gradient({ smoothing: 1, shortWindowCalls: 1, longWindowCalls: 100 });
    const a = adaptiveLimit({ algorithm, initialLimit: 10, maxLimit: 10, clock });
    const b = adaptiveLimit({ algorithm, initialLimit: 10, maxLimit: 10, clock });
    burst(a, clock, 10, 10);
    await round(b, clock, 10, 100);
    burst(a, clock, 10, 20); // slower for a, which learnt 10 ms
    await round(b, clock, 10, 20); // faster for b, which learnt 100 ms
    expect([a.limit < 10, b.limit]).toEqual([true, 10]);
  });
});

describe('adaptiveLimit: what counts', () => {
  it('never learns from the caller\'s abort nor from ordinary failures; does from isDrop', async () => {
    const clock = new FakeClock();
    const dropError = new Error('503');
    const p = adaptiveLimit({ algorithm: aimd(), initialLimit: 4, clock, isDrop: (e) => e === dropError });
    const controller = new AbortController();
    const aborted = track(p.execute(({ signal }) => delayed(clock, 100, 'x', signal), { signal: controller.signal }));
    controller.abort(new TimeoutError(1)); // even a TimeoutError, when it is the caller's own reason
    await clock.flush();
    expect(aborted.error).toBeInstanceOf(TimeoutError);
    const failed = track(p.execute(() => Promise.reject(new Error('404'))));
    await clock.flush();
    expect([failed.status, p.limit, p.inFlight]).toEqual(['rejected', 4, 0]);
    const dropped = track(p.execute(() => Promise.reject(dropError)));
    await clock.flush();
    expect([dropped.error, p.limit]).toEqual([dropError, 3]);
  });

  it('counts an error as a drop when isDrop throws, and surfaces the exception', async () => {
    const clock = new FakeClock();
    const bug = new Error('bug in isDrop');
    const p = adaptiveLimit({ algorithm: aimd(), initialLimit: 4, clock, isDrop: () => { throw bug; } });
    const surfaced = await surfacedErrors(async () => {
      await p.execute(() => Promise.reject(new Error('x'))).catch(() => undefined);
    });
    expect(surfaced).toEqual([bug]);
    expect([p.limit, p.inFlight]).toEqual([3, 0]);
  });

  it('gives the slot back when the clock throws, and surfaces the exception', async () => {
    const fake = new FakeClock();
    const bug = new Error('clock broke');
    let broken = false;
    const clock = { now: () => { if (broken) throw bug; return fake.now(); }, schedule: fake.schedule.bind(fake), cancel: fake.cancel.bind(fake) };
    const p = adaptiveLimit({ algorithm: gradient(), initialLimit: 1, clock });
    broken = true;
    const surfaced = await surfacedErrors(async () => {
      expect(await p.execute(async () => 'ok')).toBe('ok');
    });
    expect(surfaced).toEqual([bug, bug]);
    expect([p.inFlight, p.limit]).toEqual([0, 1]);
    broken = false;
    expect(await p.execute(async () => 'again')).toBe('again');
  });
});

describe('adaptiveLimit: over the limit', () => {
  it('refuses with BulkheadRejectedError (a rejection) carrying the limit, and fires onReject', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: aimd(), initialLimit: 2, clock });
    const events: BulkheadRejectEvent[] = [];
    p.onReject((e) => events.push(e));
    burst(p, clock, 2, 10);
    const refused = await p.execute(async () => 'never').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BulkheadRejectedError);
    expect(isRejection(refused)).toBe(true);
    expect(refused).toMatchObject({ maxConcurrent: 2, maxQueue: 0 });
    expect(events).toEqual([{ reason: 'full' }]);
    await clock.runAll();
  });

  it('queues calls over the limit, starts them as the limit rises, and times them out of the queue', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: aimd({ increase: 1 }), initialLimit: 1, maxQueue: 2, queueTimeoutMs: 30, clock });
    const events: BulkheadRejectEvent[] = [];
    p.onReject((e) => events.push(e));
    const calls = burst(p, clock, 3, 10);
    expect([p.inFlight, p.queued]).toEqual([1, 2]);
    await clock.advance(10); // the first succeeds at a full limit of 1: the limit becomes 2, both waiting calls start
    expect([p.limit, p.inFlight, p.queued]).toEqual([2, 2, 0]);
    await clock.advance(10);
    expect(calls.map((c) => c.value)).toEqual(['ok', 'ok', 'ok']);
    const slow = burst(p, clock, p.limit, 100);
    const waiting = burst(p, clock, 1, 1);
    await clock.advance(30);
    expect(waiting[0]!.error).toBeInstanceOf(BulkheadRejectedError);
    expect(events).toEqual([{ reason: 'queue-timeout' }]);
    await clock.runAll();
    expect(slow.every((c) => c.value === 'ok')).toBe(true);
    expect([p.inFlight, p.queued, clock.pendingTimers]).toEqual([0, 0, 0]);
  });

  it('a waiting call whose caller aborts leaves the queue at once and no listener behind', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: gradient(), initialLimit: 1, maxQueue: 5, clock });
    burst(p, clock, 1, 10);
    const controller = new AbortController();
    const waiting = track(p.execute(async () => 'never', { signal: controller.signal }));
    expect(p.queued).toBe(1);
    controller.abort(new Error('gone'));
    expect(p.queued).toBe(0);
    await clock.runAll();
    expect((waiting.error as Error).message).toBe('gone');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('creates no emitter until someone listens; a listener that throws cannot break a call', async () => {
    const clock = new FakeClock();
    const p = adaptiveLimit({ algorithm: aimd({ increase: 1 }), initialLimit: 1, clock });
    const bug = new Error('listener bug');
    p.onLimitChange(() => { throw bug; });
    const surfaced = await surfacedErrors(async () => {
      const call = p.execute(({ signal }) => delayed(clock, 1, 'ok', signal));
      await clock.advance(1);
      expect(await call).toBe('ok');
    });
    expect(surfaced).toEqual([bug]);
    expect(p.limit).toBe(2);
  });
});

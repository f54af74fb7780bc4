import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  circuitBreaker,
  constant,
  exponential,
  type GiveUpEvent,
  IsolatedCircuitError,
  isBrokenCircuitError,
  isIsolatedCircuitError,
  pipeline,
  retry,
  RETRY_DEFAULTS,
  type RetryEvent,
  type Schedule,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';

/** A work function that fails `failures` times (with the given errors) and then returns 'ok'. */
function flaky(failures: number, error: unknown = new Error('down')) {
  const work = (context: { attempt: number }) => {
    work.attempts.push(context.attempt);
    if (work.attempts.length <= failures) return Promise.reject(error);
    return Promise.resolve('ok');
  };
  work.attempts = [] as number[];
  return work;
}

describe('retry: defaults', () => {
  it('pins its defaults: 3 attempts, exponential full jitter, every error but rejections', () => {
    expect(RETRY_DEFAULTS.maxAttempts).toBe(3);
    expect(RETRY_DEFAULTS.backoff).toEqual(exponential());
    expect(Object.isFrozen(RETRY_DEFAULTS)).toBe(true);
    const policy = retry();
    expect(policy.kind).toBe('retry');
    expect(policy.maxAttempts).toBe(3);
    expect(policy.backoff).toBe(RETRY_DEFAULTS.backoff);
    expect(policy.budget).toBeUndefined();
    expect(policy.maxElapsedMs).toBeUndefined();
    expect(RETRY_DEFAULTS.handle(new Error('x'))).toBe(true);
    expect(RETRY_DEFAULTS.handle(new TypeError('fetch failed'))).toBe(true);
    expect(RETRY_DEFAULTS.handle(new TimeoutError(5))).toBe(true);
    expect(RETRY_DEFAULTS.handle('a string')).toBe(true);
    expect(RETRY_DEFAULTS.handle(undefined)).toBe(true);
    expect(RETRY_DEFAULTS.handle(new BrokenCircuitError(100))).toBe(false);
    expect(RETRY_DEFAULTS.handle(new IsolatedCircuitError())).toBe(false);
    expect(RETRY_DEFAULTS.handle(new BulkheadRejectedError(1, 0))).toBe(false);
  });

  it('makes 3 calls in all by default and rethrows the last error unchanged', async () => {
    const clock = new FakeClock();
    const errors = [new Error('1'), new Error('2'), new Error('3')];
    let calls = 0;
    const result = retry({ clock, random: () => 0.5 }).execute(() => Promise.reject(errors[calls++]));
    const caught = result.catch((e: unknown) => e);
    await clock.advance(50); // full jitter: 0.5 x 100
    await clock.advance(100); // 0.5 x 200
    expect(await caught).toBe(errors[2]);
    expect(calls).toBe(3);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('retry: attempts', () => {
  it('succeeds at once without a timer or a retry', async () => {
    const clock = new FakeClock();
    const work = flaky(0);
    const policy = retry({ clock });
    const events: RetryEvent[] = [];
    policy.onRetry((e) => events.push(e));
    await expect(policy.execute(work)).resolves.toBe('ok');
    expect(work.attempts).toEqual([1]);
    expect(events).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('gives the work its 1-based attempt number and waits as the schedule says', async () => {
    const clock = new FakeClock();
    const work = flaky(2);
    const result = retry({ clock, backoff: constant({ ms: 100 }) }).execute(work);
    await clock.flush();
    expect(work.attempts).toEqual([1]);
    await clock.advance(99);
    expect(work.attempts).toEqual([1]);
    await clock.advance(1);
    expect(work.attempts).toEqual([1, 2]);
    await clock.advance(100);
    expect(work.attempts).toEqual([1, 2, 3]);
    await expect(result).resolves.toBe('ok');
    expect(clock.pendingTimers).toBe(0);
  });

  it('never calls the work more than maxAttempts times', async () => {
    const clock = new FakeClock();
    const work = flaky(100);
    const result = retry({ clock, maxAttempts: 5, backoff: constant({ ms: 10 }) }).execute(work);
    const caught = result.catch((e: unknown) => e);
    await clock.advance(1_000);
    expect(await caught).toBeInstanceOf(Error);
    expect(work.attempts).toEqual([1, 2, 3, 4, 5]);
  });

  it('maxAttempts 1 never retries', async () => {
    const work = flaky(1);
    await expect(retry({ maxAttempts: 1 }).execute(work)).rejects.toThrow('down');
    expect(work.attempts).toEqual([1]);
  });

  it('retries synchronous throws and non-Error throws, rethrowing them unchanged', async () => {
    const clock = new FakeClock();
    const policy = retry({ clock, backoff: constant({ ms: 0 }) });
    for (const thrown of ['a string', 42, undefined, null, { code: 'E' }]) {
      let calls = 0;
      const result = policy.execute(() => {
        calls++;
        throw thrown;
      });
      await expect(result).rejects.toBe(thrown);
      expect(calls).toBe(3);
    }
  });

  it('retries with zero delay without any timer', async () => {
    const clock = new FakeClock();
    const work = flaky(4);
    const result = retry({ clock, maxAttempts: 5, backoff: constant({ ms: 0 }) }).execute(work);
    expect(clock.pendingTimers).toBe(0);
    await expect(result).resolves.toBe('ok');
    expect(work.attempts).toEqual([1, 2, 3, 4, 5]);
    expect(clock.pendingTimers).toBe(0);
    expect(clock.now()).toBe(0);
  });

  it('allows Infinity attempts together with maxElapsedMs', async () => {
    const clock = new FakeClock();
    const work = flaky(Infinity);
    const policy = retry({ clock, maxAttempts: Infinity, maxElapsedMs: 1_000, backoff: constant({ ms: 100 }) });
    const giveUps: GiveUpEvent[] = [];
    policy.onGiveUp((e) => giveUps.push(e));
    const caught = policy.execute(work).catch((e: unknown) => e);
    await clock.advance(5_000);
    expect(await caught).toBeInstanceOf(Error);
    // attempts start at 0, 100, ..., 1000: the one at 1100 would be past maxElapsedMs
    expect(work.attempts).toHaveLength(11);
    expect(giveUps).toEqual([{ attempts: 11, error: expect.any(Error), reason: 'max-elapsed' }]);
  });

  it('works through wrap, keeping the arguments', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const add = retry({ clock, backoff: constant({ ms: 0 }) }).wrap(async (a: number, b: number) => {
      if (++calls < 2) throw new Error('once');
      return a + b;
    });
    await expect(add(2, 3)).resolves.toBe(5);
    expect(calls).toBe(2);
  });
});

describe('retry: which errors', () => {
  it('does not retry what handle refuses, and rethrows it at once', async () => {
    const clock = new FakeClock();
    const fatal = new Error('fatal');
    const work = flaky(5, fatal);
    const policy = retry({ clock, handle: (e) => e !== fatal });
    const giveUps: GiveUpEvent[] = [];
    policy.onGiveUp((e) => giveUps.push(e));
    await expect(policy.execute(work)).rejects.toBe(fatal);
    expect(work.attempts).toEqual([1]);
    expect(giveUps).toEqual([]); // not a limit: the error was never retryable
  });

  it('by default does not retry Breakwater rejections', async () => {
    for (const rejection of [new BrokenCircuitError(10), new IsolatedCircuitError(), new BulkheadRejectedError(1, 0)]) {
      const work = flaky(5, rejection);
      await expect(retry().execute(work)).rejects.toBe(rejection);
      expect(work.attempts).toEqual([1]);
    }
  });

  it('retries rejections when a handle of yours says so (it replaces the default)', async () => {
    const clock = new FakeClock();
    const work = flaky(2, new BrokenCircuitError(0));
    await expect(retry({ clock, handle: () => true, backoff: constant({ ms: 0 }) }).execute(work)).resolves.toBe('ok');
    expect(work.attempts).toEqual([1, 2, 3]);
  });

  it('retries a TypeError (no hidden rule: fetch reports network errors as TypeError)', async () => {
    const work = flaky(1, new TypeError('fetch failed'));
    await expect(retry({ backoff: constant({ ms: 0 }) }).execute(work)).resolves.toBe('ok');
  });

  it('rejects with the callback error when handle throws', async () => {
    const bug = new Error('bug in handle');
    const policy = retry({
      handle: () => {
        throw bug;
      },
    });
    await expect(policy.execute(flaky(1))).rejects.toBe(bug);
    // also on a later attempt
    let n = 0;
    const later = retry({
      backoff: constant({ ms: 0 }),
      handle: () => {
        if (++n === 2) throw bug;
        return true;
      },
    });
    await expect(later.execute(flaky(5))).rejects.toBe(bug);
  });
});

describe('retry: aborts', () => {
  it('never calls the work for an already-aborted signal', async () => {
    const controller = new AbortController();
    const reason = new Error('gone');
    controller.abort(reason);
    const work = flaky(0);
    await expect(retry().execute(work, { signal: controller.signal })).rejects.toBe(reason);
    expect(work.attempts).toEqual([]);
  });

  it('an abort during the backoff sleep rejects at once with the reason, cancels the timer and never calls the work again', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const work = flaky(10);
    const policy = retry({ clock, maxAttempts: 10, backoff: constant({ ms: 1_000 }) });
    let settledAt: number | undefined;
    let outcome: unknown;
    policy.execute(work, { signal: controller.signal }).then(
      () => undefined,
      (e: unknown) => {
        settledAt = clock.now();
        outcome = e;
      },
    );
    await clock.advance(1_500); // attempt 2 ran at 1000, now sleeping until 2000
    expect(work.attempts).toEqual([1, 2]);
    expect(clock.pendingTimers).toBe(1);
    const reason = new Error('user left');
    controller.abort(reason);
    expect(clock.pendingTimers).toBe(0); // cancelled synchronously
    await clock.flush();
    expect(outcome).toBe(reason);
    expect(settledAt).toBe(1_500);
    await clock.advance(60_000);
    expect(work.attempts).toEqual([1, 2]);
  });

  it('listens to the signal only while sleeping', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const work = flaky(1);
    const result = retry({ clock, backoff: constant({ ms: 100 }) }).execute(work, { signal: controller.signal });
    await clock.flush();
    // the pipeline's own race and the sleep share one listener on the signal (src/core/abort.ts)
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await clock.advance(100);
    await expect(result).resolves.toBe('ok');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('never retries the caller\'s abort, whatever handle says', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    let calls = 0;
    const policy = retry({ clock, handle: () => true, backoff: constant({ ms: 0 }) });
    const result = policy.execute(
      ({ signal }) =>
        new Promise((_, reject) => {
          calls++;
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
      { signal: controller.signal },
    );
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(result).rejects.toBe(reason);
    await clock.flush();
    expect(calls).toBe(1);
  });

  it('an outer timeout during the sleep ends the call with TimeoutError; no timer remains', async () => {
    const clock = new FakeClock();
    const work = flaky(10);
    const guarded = pipeline(timeout({ ms: 150, clock }), retry({ clock, maxAttempts: 10, backoff: constant({ ms: 100 }) }));
    const caught = guarded.execute(work).catch((e: unknown) => e);
    await clock.advance(150);
    expect(await caught).toBeInstanceOf(TimeoutError);
    expect(work.attempts).toEqual([1, 2]);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(1_000);
    expect(work.attempts).toEqual([1, 2]);
  });

  it('does not retry once the scope is aborted, even if the work ignored the abort', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const guarded = pipeline(timeout({ ms: 100, clock }), retry({ clock, backoff: constant({ ms: 0 }) }));
    const caught = guarded
      .execute(() => {
        calls++;
        // ignores its signal and fails late
        return new Promise((_, reject) => clock.schedule(() => reject(new Error('late')), 200));
      })
      .catch((e: unknown) => e);
    await clock.advance(300);
    expect(await caught).toBeInstanceOf(TimeoutError);
    expect(calls).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a timeout inside the retry is per attempt, and timeouts are retried', async () => {
    const clock = new FakeClock();
    const attempts: number[] = [];
    const inner = timeout({ ms: 100, clock });
    const timedOut: number[] = [];
    inner.onTimeout(({ attempt }) => timedOut.push(attempt));
    const guarded = pipeline(retry({ clock, backoff: constant({ ms: 0 }) }), inner);
    const result = guarded.execute(({ attempt, signal }) => {
      attempts.push(attempt);
      if (attempt === 3) return 'third time';
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    await clock.advance(200);
    await expect(result).resolves.toBe('third time');
    expect(attempts).toEqual([1, 2, 3]);
    expect(timedOut).toEqual([1, 2]);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('retry: schedules, pushback and elapsed time', () => {
  it('calls the schedule with the retry number, the previous delay and the random source', async () => {
    const clock = new FakeClock();
    const random = seededRandom(1);
    const calls: [number, number][] = [];
    const schedule: Schedule = {
      delayMs(attempt, previousDelayMs, r) {
        expect(r).toBe(random);
        calls.push([attempt, previousDelayMs]);
        return attempt * 10;
      },
    };
    const result = retry({ clock, random, maxAttempts: 4, backoff: schedule }).execute(flaky(3));
    await clock.advance(60);
    await expect(result).resolves.toBe('ok');
    expect(calls).toEqual([
      [1, 0],
      [2, 10],
      [3, 20],
    ]);
  });

  it('treats a schedule returning NaN, a negative number or a non-number as 0, and caps huge delays', async () => {
    const clock = new FakeClock();
    const values: unknown[] = [Number.NaN, -5, 'soon', Infinity];
    let i = 0;
    const policy = retry({ clock, maxAttempts: 5, backoff: { delayMs: () => values[i++] as number } });
    const events: RetryEvent[] = [];
    policy.onRetry((e) => events.push(e));
    const caught = policy.execute(flaky(10)).catch(() => 'failed');
    await clock.flush();
    expect(events.map((e) => e.delayMs)).toEqual([0, 0, 0, 2_147_483_647]);
    await clock.advance(2_147_483_647);
    expect(await caught).toBe('failed');
  });

  it('treats a schedule returning a numeric string or a boolean as 0, not as a number', async () => {
    // '250' > 0 and true > 0 hold in JavaScript: only the type check keeps them out.
    const clock = new FakeClock();
    const values: unknown[] = ['250', true];
    let i = 0;
    const policy = retry({ clock, maxAttempts: 3, backoff: { delayMs: () => values[i++] as number } });
    const events: RetryEvent[] = [];
    policy.onRetry((e) => events.push(e));
    const caught = policy.execute(flaky(10)).catch(() => 'failed');
    await clock.flush();
    expect(events.map((e) => e.delayMs)).toEqual([0, 0]);
    expect(await caught).toBe('failed');
  });

  it('fires onRetry once per retry, before the sleep, with frozen payloads', async () => {
    const clock = new FakeClock();
    const error = new Error('down');
    const policy = retry({ clock, backoff: exponential({ initialMs: 100, jitter: 'none' }) });
    const events: RetryEvent[] = [];
    policy.onRetry((e) => events.push(e));
    const result = policy.execute(flaky(2, error));
    await clock.flush();
    expect(events).toEqual([{ attempt: 2, delayMs: 100, error }]);
    expect(Object.isFrozen(events[0])).toBe(true);
    await clock.advance(100);
    expect(events).toHaveLength(2);
    expect(events[1]).toEqual({ attempt: 3, delayMs: 200, error });
    await clock.advance(200);
    await expect(result).resolves.toBe('ok');
  });

  it('fires onGiveUp with the attempts and the last error when attempts run out', async () => {
    const clock = new FakeClock();
    const policy = retry({ clock, maxAttempts: 2, backoff: constant({ ms: 0 }) });
    const giveUps: GiveUpEvent[] = [];
    policy.onGiveUp((e) => giveUps.push(e));
    const error = new Error('x');
    await expect(policy.execute(flaky(5, error))).rejects.toBe(error);
    expect(giveUps).toEqual([{ attempts: 2, error, reason: 'max-attempts' }]);
    expect(Object.isFrozen(giveUps[0])).toBe(true);
  });

  it('lets the server pushback win when it is longer than the backoff', async () => {
    const clock = new FakeClock();
    const pushback = Object.assign(new Error('429'), { retryAfterMs: 500 });
    const policy = retry({
      clock,
      backoff: constant({ ms: 100 }),
      retryAfter: (e) => (e as { retryAfterMs?: number }).retryAfterMs,
    });
    const events: RetryEvent[] = [];
    policy.onRetry((e) => events.push(e));
    const work = flaky(1, pushback);
    const result = policy.execute(work);
    await clock.advance(499);
    expect(work.attempts).toEqual([1]);
    await clock.advance(1);
    await expect(result).resolves.toBe('ok');
    expect(events.map((e) => e.delayMs)).toEqual([500]);
  });

  it('keeps the backoff when the pushback is shorter, missing or invalid', async () => {
    for (const value of [50, undefined, Number.NaN, -1, '900']) {
      const clock = new FakeClock();
      const policy = retry({ clock, backoff: constant({ ms: 100 }), retryAfter: () => value as number | undefined });
      const events: RetryEvent[] = [];
      policy.onRetry((e) => events.push(e));
      const result = policy.execute(flaky(1));
      await clock.advance(100);
      await expect(result).resolves.toBe('ok');
      expect(events.map((e) => e.delayMs)).toEqual([100]);
    }
  });

  it('gives up with the last error when the pushback would pass maxElapsedMs', async () => {
    const clock = new FakeClock();
    const error = new Error('503');
    const policy = retry({ clock, backoff: constant({ ms: 10 }), maxElapsedMs: 1_000, retryAfter: () => 5_000 });
    const giveUps: GiveUpEvent[] = [];
    policy.onGiveUp((e) => giveUps.push(e));
    const work = flaky(5, error);
    await expect(policy.execute(work)).rejects.toBe(error);
    expect(work.attempts).toEqual([1]);
    expect(giveUps).toEqual([{ attempts: 1, error, reason: 'max-elapsed' }]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('measures maxElapsedMs from the start of the first attempt, including slow attempts', async () => {
    const clock = new FakeClock();
    const policy = retry({ clock, maxAttempts: 10, backoff: constant({ ms: 100 }), maxElapsedMs: 1_000 });
    const starts: number[] = [];
    const caught = policy
      .execute(() => {
        starts.push(clock.now());
        return new Promise((_, reject) => clock.schedule(() => reject(new Error('slow failure')), 300));
      })
      .catch((e: unknown) => e);
    await clock.advance(5_000);
    expect(await caught).toBeInstanceOf(Error);
    // 0, 400, 800; the next would start at 1200 > 1000
    expect(starts).toEqual([0, 400, 800]);
  });

  it('rejects with the callback error when retryAfter throws', async () => {
    const bug = new Error('parse error');
    const policy = retry({
      retryAfter: () => {
        throw bug;
      },
    });
    await expect(policy.execute(flaky(1))).rejects.toBe(bug);
  });
});

describe('retry: options', () => {
  it('rejects bad options, naming the option, the rule and the value', () => {
    expect(() => retry({ maxAttempts: 0 })).toThrow(/retry: option "maxAttempts" must be an integer from 1 or Infinity; received 0/);
    expect(() => retry({ maxAttempts: 2.5 })).toThrow(RangeError);
    expect(() => retry({ maxAttempts: Number.NaN })).toThrow(TypeError);
    expect(() => retry({ maxAttempts: -Infinity })).toThrow(RangeError);
    expect(() => retry({ maxAttempts: Infinity })).toThrow(
      /retry: option "maxAttempts" can be Infinity only together with "maxElapsedMs".*received Infinity/,
    );
    expect(() => retry({ backoff: 100 as never })).toThrow(/option "backoff" must be a backoff schedule.*received 100/);
    expect(() => retry({ backoff: {} as never })).toThrow(TypeError);
    expect(() => retry({ handle: true as never })).toThrow(/option "handle" must be a function; received true \(boolean\)/);
    expect(() => retry({ retryAfter: 5 as never })).toThrow(/"retryAfter" must be a function/);
    expect(() => retry({ maxElapsedMs: -1 })).toThrow(RangeError);
    expect(() => retry({ maxElapsedMs: Infinity })).toThrow(RangeError);
    expect(() => retry({ maxElapsedMs: Number.NaN })).toThrow(TypeError);
    expect(() => retry({ budget: {} as never })).toThrow(/option "budget" must be a RetryBudget/);
    expect(() => retry({ clock: {} as never })).toThrow(/option "clock" must be a Clock/);
    expect(() => retry({ random: 0.5 as never })).toThrow(/option "random" must be a function/);
    expect(() => retry({ retries: 3 } as never)).toThrow(/unknown option "retries" \(p-retry.s retries is maxAttempts minus one[^)]*\); known options are maxAttempts, backoff/);
    expect(() => retry('3' as never)).toThrow(/retry: options must be an object/);
  });

  it('accepts undefined values as defaults', () => {
    expect(retry({ maxAttempts: undefined, backoff: undefined }).maxAttempts).toBe(3);
  });
});

describe('retry: a call that ends on a refusal keeps the real error as its cause', () => {
  it('a 503 reopens the half-open breaker; the retry is refused; the refusal carries the 503 and the pipeline name', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 1_000 });
    const p = pipeline({ name: 'payments', clock }, retry({ maxAttempts: 3, backoff: constant({ ms: 0 }), clock }), breaker);
    const unavailable = new Error('503 Service Unavailable');
    const first = p.execute(() => Promise.reject(unavailable)).catch((e: unknown) => e); // opens the breaker; the retry is refused
    await clock.advance(1);
    const error = (await first) as Error & { cause?: unknown; pipeline?: string };
    expect(isBrokenCircuitError(error)).toBe(true);
    expect(error.cause).toBe(unavailable);
    expect(error.pipeline).toBe('payments');
    expect(error.message).toMatch(/^pipeline "payments": the circuit is open/);
  });

  it('a refusal on the first attempt has no cause', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock });
    breaker.isolate();
    const error = await retry({ clock }).execute(() => breaker.execute(() => 'never')).catch((e: unknown) => e);
    expect(isIsolatedCircuitError(error)).toBe(true);
    expect((error as Error).cause).toBeUndefined();
    expect((error as { pipeline?: string }).pipeline).toBeUndefined();
  });
});

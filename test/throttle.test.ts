/**
 * Unit tests of `throttle`: the formula on known windows, what counts as a
 * request and an accept, the refusal error, events, the window's expiry in
 * virtual time, and how the throttle composes with retry and the breaker.
 * The statistical and model-based properties are in throttle.property.test.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  hedge,
  isRejection,
  isThrottledError,
  pipeline,
  retry,
  THROTTLE_DEFAULTS,
  throttle,
  ThrottledError,
  type ThrottleOptions,
  type ThrottleRejectEvent,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { never, track } from './helpers.ts';

const fails = (): Promise<never> => Promise.reject(new Error('503'));
const ok = (): Promise<string> => Promise.resolve('ok');

/** A throttle on a fake clock whose random source always answers `draw`. */
function make(options: ThrottleOptions = {}, draw = 0) {
  const clock = new FakeClock();
  const random = vi.fn(() => draw);
  const policy = throttle({ clock, random, minimumRequests: 1, ...options });
  return { clock, random, policy };
}

/** Runs `n` calls of `work` one after the other, ignoring their results. */
async function run(policy: { execute(fn: () => Promise<unknown>): Promise<unknown> }, n: number, work: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) await policy.execute(work).catch(() => {});
}

describe('throttle: defaults and shape', () => {
  it('pins its defaults', () => {
    expect(THROTTLE_DEFAULTS).toMatchObject({
      requestsPerAccept: 2,
      window: { ms: 30_000, buckets: 20 },
      minimumRequests: 20,
      maxRejectionProbability: 0.9,
    });
    expect(THROTTLE_DEFAULTS.handle(new Error('any'))).toBe(true);
    expect(Object.isFrozen(THROTTLE_DEFAULTS) && Object.isFrozen(THROTTLE_DEFAULTS.window)).toBe(true);
    const policy = throttle();
    expect([policy.kind, policy.requests, policy.accepts, policy.probability]).toEqual(['throttle', 0, 0, 0]);
  });

  it('refuses nothing before minimumRequests requests are in the window (default 20)', async () => {
    const clock = new FakeClock();
    const policy = throttle({ clock, random: () => 0, maxRejectionProbability: 1 });
    await run(policy, 19, fails);
    expect([policy.requests, policy.accepts, policy.probability]).toEqual([19, 0, 0]);
    await run(policy, 1, fails);
    expect(policy.probability).toBe(20 / 21);
    await expect(policy.execute(ok)).rejects.toBeInstanceOf(ThrottledError);
  });
});

describe('throttle: the formula', () => {
  it('is max(0, (requests − K × accepts) / (requests + 1)) over the window', async () => {
    const { policy } = make({ requestsPerAccept: 2 }, 0.999_999);
    await run(policy, 3, ok);
    await run(policy, 4, fails);
    // 7 requests, 3 accepts: (7 − 6) / 8
    expect([policy.requests, policy.accepts]).toEqual([7, 3]);
    expect(policy.probability).toBe(1 / 8);
    await run(policy, 3, fails);
    // 10 requests, 3 accepts: (10 − 6) / 11
    expect(policy.probability).toBe(4 / 11);
  });

  it('is exactly 0, and never reads the random source, while requests ≤ K × accepts', async () => {
    const { policy, random } = make({ requestsPerAccept: 1.5 });
    await run(policy, 2, ok);
    await run(policy, 1, fails);
    // 3 requests, 2 accepts: 3 − 3 = 0
    expect(policy.probability).toBe(0);
    await run(policy, 50, ok);
    expect(random).not.toHaveBeenCalled();
  });

  it('refuses when the draw is below the probability and lets the call through otherwise', async () => {
    const draws = [0.5, 0.95];
    const clock = new FakeClock();
    const random = vi.fn(() => draws.shift()!);
    const p = throttle({ clock, random, minimumRequests: 9, maxRejectionProbability: 1 });
    await run(p, 9, fails); // no draw: fewer than 9 requests before each of these
    // 9 requests, 0 accepts: 9 / 10 = 0.9
    expect(p.probability).toBe(0.9);
    const work = vi.fn(ok);
    await expect(p.execute(work)).rejects.toBeInstanceOf(ThrottledError); // 0.5 < 0.9
    expect(work).not.toHaveBeenCalled();
    // The refusal is a request that was not accepted: 10 requests, 0 accepts.
    expect([p.requests, p.accepts]).toEqual([10, 0]);
    expect(p.probability).toBeCloseTo(10 / 11, 12);
    await expect(p.execute(work)).resolves.toBe('ok'); // 0.95 >= 10/11
    expect(work).toHaveBeenCalledOnce();
    expect([p.requests, p.accepts]).toEqual([11, 1]);
    expect(random).toHaveBeenCalledTimes(2);
  });

  it('caps the probability at 0.9 by default', async () => {
    const { policy } = make({ maxRejectionProbability: undefined });
    await run(policy, 30, fails);
    expect(policy.probability).toBe(0.9);
  });

  it('caps the probability at maxRejectionProbability; 0 refuses nothing', async () => {
    const capped = make({ maxRejectionProbability: 0.25 });
    await run(capped.policy, 30, fails);
    expect(capped.policy.probability).toBe(0.25);
    const off = make({ maxRejectionProbability: 0 });
    const work = vi.fn(fails);
    await run(off.policy, 30, work);
    expect(work).toHaveBeenCalledTimes(30);
    expect(off.policy.probability).toBe(0);
  });

  it('requestsPerAccept 1 refuses in proportion to the share refused', async () => {
    const { policy } = make({ requestsPerAccept: 1 }, 1);
    await run(policy, 6, ok);
    await run(policy, 4, fails);
    expect(policy.probability).toBe(4 / 11);
  });
});

describe('throttle: what counts', () => {
  it('counts an error handle returns false for as an accept: the dependency answered', async () => {
    class NotFound extends Error {}
    const { policy } = make({ handle: (e) => !(e instanceof NotFound) });
    await run(policy, 5, () => Promise.reject(new NotFound('404')));
    expect([policy.requests, policy.accepts, policy.probability]).toEqual([5, 5, 0]);
    await run(policy, 1, fails);
    expect([policy.requests, policy.accepts]).toEqual([6, 5]);
  });

  it('only handle(error) === true counts as a refusal (a truthy non-boolean does not)', async () => {
    const { policy } = make({ handle: () => 1 as never });
    await run(policy, 3, fails);
    expect([policy.requests, policy.accepts]).toEqual([3, 3]);
  });

  it('never counts the caller’s own abort, whatever handle says', async () => {
    const { policy } = make({ handle: () => true });
    const controller = new AbortController();
    const call = policy.execute(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))), {
      signal: controller.signal,
    });
    controller.abort(new Error('caller gave up'));
    await expect(call).rejects.toThrow('caller gave up');
    await new Promise((r) => setImmediate(r));
    expect(policy.requests).toBe(0);
  });

  it('never counts a Breakwater rejection from a layer inside: the dependency never saw the call', async () => {
    const clock = new FakeClock();
    const inner = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 60_000 });
    const outer = throttle({ clock, random: () => 0, minimumRequests: 1, handle: () => true });
    const p = pipeline(outer, inner);
    await p.execute(fails).catch(() => {}); // the breaker opens; the throttle counts one refusal
    expect([outer.requests, outer.accepts]).toEqual([1, 0]);
    // From now on the throttle refuses (probability 1/2, draw 0) or the breaker does; neither counts twice.
    for (let i = 0; i < 5; i++) await p.execute(ok).catch(() => {});
    expect(outer.accepts).toBe(0);
    expect(outer.requests).toBe(6); // one refusal by the dependency, five here
    const full = bulkhead({ maxConcurrent: 1 });
    const t = throttle({ clock, minimumRequests: 1 });
    const q = pipeline(t, full);
    const held = q.execute(() => never());
    await expect(q.execute(ok)).rejects.toMatchObject({ code: 'ERR_BREAKWATER_BULKHEAD_REJECTED' });
    expect(t.requests).toBe(0);
    void held;
  });

  it('never counts a call a layer outside stopped: a hedge\'s losing attempt, an outer deadline', async () => {
    const clock = new FakeClock();
    const t = throttle({ clock, random: () => 0, minimumRequests: 1 });
    const hedged = pipeline(hedge({ delayMs: 10, maxExtraLoad: 1, clock }), t);
    const call = track(
      hedged.execute(({ attempt, signal }) => new Promise((resolve, reject) => {
        const timer = clock.schedule(() => resolve(attempt), attempt === 1 ? 1_000 : 5);
        signal.addEventListener('abort', () => (clock.cancel(timer), reject(signal.reason)), { once: true });
      })),
    );
    await clock.advance(15); // the hedge won at 15; the first attempt was aborted
    expect(call.value).toBe(2);
    expect([t.requests, t.accepts]).toEqual([1, 1]); // the winner only
    const deadline = track(pipeline(timeout({ ms: 100, clock }), t).execute(() => never()));
    await clock.advance(100);
    expect(deadline.error).toBeInstanceOf(TimeoutError);
    expect([t.requests, t.accepts]).toEqual([1, 1]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('counts a timeout inside as a refusal', async () => {
    const clock = new FakeClock();
    const t = throttle({ clock, minimumRequests: 1 });
    const call = track(pipeline(t, timeout({ ms: 100, clock })).execute(() => never()));
    await clock.advance(100);
    expect(call.status).toBe('rejected');
    expect([t.requests, t.accepts]).toEqual([1, 0]);
  });

  it('a handle that throws counts the error as a refusal and reports its exception on a microtask', async () => {
    const bug = new Error('handle bug');
    const reported: unknown[] = [];
    const onError = (error: unknown): void => {
      reported.push(error);
    };
    process.on('uncaughtException', onError);
    try {
      const { policy } = make({
        handle: () => {
          throw bug;
        },
      });
      const error = await policy.execute(fails).catch((e: unknown) => e);
      expect((error as Error).message).toBe('503'); // the call's own error, unchanged
      await new Promise((r) => setImmediate(r));
      expect(reported).toEqual([bug]);
      expect([policy.requests, policy.accepts]).toEqual([1, 0]);
    } finally {
      process.off('uncaughtException', onError);
    }
  });
});

describe('throttle: the refusal', () => {
  it('is a stackless ThrottledError with a code, the probability and the pipeline name', async () => {
    const clock = new FakeClock();
    const t = throttle({ clock, random: () => 0, minimumRequests: 1 });
    const p = pipeline({ name: 'search' }, t);
    await p.execute(fails).catch(() => {});
    const error = await p.execute(ok).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ThrottledError);
    expect(isThrottledError(error)).toBe(true);
    expect(isRejection(error)).toBe(true);
    expect(isThrottledError(new Error('x'))).toBe(false);
    expect(error).toMatchObject({ code: 'ERR_BREAKWATER_THROTTLED', name: 'ThrottledError', probability: 0.5, pipeline: 'search' });
    expect((error as Error).message).toMatch(/^pipeline "search": the dependency has been refusing calls/);
    expect((error as Error).stack).toBe(`ThrottledError: ${(error as Error).message}`);
    expect(Error.stackTraceLimit).toBeGreaterThan(0);
  });

  it('onReject fires for each refusal with the probability, and stops when disposed', async () => {
    const { policy } = make();
    const events: ThrottleRejectEvent[] = [];
    const dispose = policy.onReject((e) => events.push(e));
    await run(policy, 1, fails);
    const error = await policy.execute(ok).catch((e: unknown) => e);
    expect(events).toEqual([{ probability: 0.5, error }]);
    dispose();
    await run(policy, 1, ok);
    expect(events).toHaveLength(1);
  });

  it('is not retried by retry, and not counted by a breaker around it', async () => {
    const clock = new FakeClock();
    const t = throttle({ clock, random: () => 0, minimumRequests: 1 });
    // Two failures in two calls would open it: the 503 is one, the refusal is none.
    const breaker = circuitBreaker({ clock, minimumCalls: 2, failureRateThreshold: 1 });
    const work = vi.fn(fails);
    const p = pipeline(retry({ maxAttempts: 5, clock }), breaker, t);
    const call = track(p.execute(work));
    await clock.runAll();
    expect(work).toHaveBeenCalledOnce(); // attempt 2 was throttled, and retry stopped there
    expect(isThrottledError(call.error)).toBe(true);
    expect((call.error as Error).cause).toMatchObject({ message: '503' }); // the failure behind the refusal
    expect(breaker.state).toBe('closed');
  });
});

describe('throttle: the window', () => {
  it('forgets refusals as their buckets expire, without any timer', async () => {
    const { policy, clock } = make({ window: { ms: 1_000, buckets: 10 } });
    await run(policy, 10, fails);
    expect(policy.requests).toBe(10);
    expect(clock.pendingTimers + clock.scheduledTimers).toBe(0);
    await clock.advance(999);
    expect(policy.requests).toBe(10);
    await clock.advance(1);
    expect([policy.requests, policy.probability]).toEqual([0, 0]);
  });

  it('lets calls through again as the dependency recovers', async () => {
    const clock = new FakeClock();
    const policy = throttle({ clock, random: seededRandom(7), window: { ms: 10_000, buckets: 10 } });
    let healthy = false;
    const work = (): Promise<string> => (healthy ? ok() : fails());
    const rate = async (): Promise<number> => {
      let refused = 0;
      for (let i = 0; i < 100; i++) {
        const error = await policy.execute(work).then(() => undefined, (e: unknown) => e);
        if (isThrottledError(error)) refused++;
        await clock.advance(10);
      }
      return refused / 100;
    };
    expect(await rate()).toBeGreaterThan(0.5); // down: most calls refused locally
    healthy = true;
    for (let second = 0; second < 12; second++) await rate();
    expect(await rate()).toBe(0);
    expect(policy.probability).toBe(0);
  });
});

describe('throttle: what mutation testing showed unpinned', () => {
  /** A FakeClock view that counts the readings taken of it. */
  function readCounting() {
    const fake = new FakeClock();
    const clock = {
      reads: 0,
      now: () => {
        clock.reads++;
        return fake.now();
      },
      schedule: (cb: () => void, ms: number) => fake.schedule(cb, ms),
      cancel: (h: unknown) => fake.cancel(h),
    };
    return { fake, clock };
  }

  it('accepts and probability move the window to now before they answer', async () => {
    const { policy, clock } = make({ window: { ms: 1_000, buckets: 10 }, requestsPerAccept: 1 }, 1);
    await run(policy, 3, ok);
    await run(policy, 3, fails);
    expect(policy.probability).toBe(3 / 7); // (6 − 3) / 7
    await clock.advance(1_000);
    expect(policy.probability).toBe(0); // read first, after the window moved
    await run(policy, 2, ok);
    await clock.advance(1_000);
    expect(policy.accepts).toBe(0); // read first, after the window moved
  });

  it('while the window holds no refusal, or fewer than minimumRequests requests, a call reads the clock only when it settles', async () => {
    const quiet = readCounting();
    const healthy = throttle({ clock: quiet.clock, minimumRequests: 5, random: () => 0 });
    await run(healthy, 10, ok); // no refusal, and past minimumRequests from the 6th call
    const before = quiet.clock.reads;
    await run(healthy, 10, ok);
    expect(quiet.clock.reads - before).toBe(10);

    const few = readCounting();
    const sparse = throttle({ clock: few.clock, minimumRequests: 20, random: () => 0 });
    await run(sparse, 2, fails); // refusals, but far fewer than 20 requests
    const since = few.clock.reads;
    await run(sparse, 5, ok);
    expect(few.clock.reads - since).toBe(5);
  });

  it('lets a call through when the draw equals the probability: it refuses only below it', async () => {
    // 3 refusals, no accept: (3 − 0) / 4 = 0.75
    const { policy, random } = make({ requestsPerAccept: 2 }, 0.75);
    await run(policy, 3, fails);
    expect(policy.probability).toBe(0.75);
    const draws = random.mock.calls.length;
    await expect(policy.execute(ok)).resolves.toBe('ok');
    expect(random.mock.calls.length - draws).toBe(1);
  });

  it('points users of the SRE book, gRPC, Beam and Envoy at its own option names', () => {
    const hints: [string, string][] = [
      ['k', "the SRE book's K is requestsPerAccept"],
      ['K', "the SRE book's K is requestsPerAccept"],
      ['ratioForAccepts', "gRPC's ratioForAccepts is requestsPerAccept"],
      ['overloadRatio', "Beam's overload_ratio is requestsPerAccept"],
      ['srThreshold', "Envoy's sr_threshold is 1 / requestsPerAccept: 0.5 becomes requestsPerAccept: 2"],
      ['maxRejectionRate', 'maxRejectionRate is maxRejectionProbability'],
      ['requestsPadding', "gRPC's requestsPadding has no equivalent: the padding is 1, and minimumRequests guards low traffic"],
      ['windowMs', 'windowMs is window: { ms }'],
    ];
    for (const [name, hint] of hints) {
      expect(() => throttle({ [name]: 1 } as never)).toThrow(`throttle: unknown option "${name}" (${hint})`);
    }
  });
});

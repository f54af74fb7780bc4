/**
 * Unit tests of the circuit breaker: every behaviour, on a FakeClock.
 * (The model-based, property and differential tests are in the files beside it.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BrokenCircuitError,
  bulkhead,
  BulkheadRejectedError,
  CIRCUIT_BREAKER_DEFAULTS,
  circuitBreaker,
  type CircuitBreakerOptions,
  type CircuitBreakerPolicy,
  type Clock,
  constant,
  exponential,
  hedge,
  IsolatedCircuitError,
  isBrokenCircuitError,
  isIsolatedCircuitError,
  pipeline,
  retry,
  type StateChangeEvent,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { never, track } from './helpers.ts';

const ok = (): Promise<string> => Promise.resolve('ok');
const boom = (): Promise<never> => Promise.reject(new Error('boom'));

/** A promise the test settles by hand. */
function deferred<T = string>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup(options: CircuitBreakerOptions = {}) {
  const clock = new FakeClock();
  const breaker = circuitBreaker({ clock, ...options });
  const changes: StateChangeEvent[] = [];
  breaker.onStateChange((e) => changes.push(e));
  return { clock, breaker, changes };
}

async function fail(breaker: CircuitBreakerPolicy, n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await breaker.execute(boom).catch(() => {});
}
async function succeed(breaker: CircuitBreakerPolicy, n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await breaker.execute(ok);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('circuitBreaker: defaults', () => {
  it('pins its defaults', () => {
    expect(CIRCUIT_BREAKER_DEFAULTS.failureRateThreshold).toBe(0.5);
    expect(CIRCUIT_BREAKER_DEFAULTS.minimumCalls).toBe(20);
    expect(CIRCUIT_BREAKER_DEFAULTS.window).toEqual({ kind: 'time', ms: 10_000, buckets: 10 });
    expect(CIRCUIT_BREAKER_DEFAULTS.halfOpenAfterMs).toBe(5_000);
    expect(CIRCUIT_BREAKER_DEFAULTS.halfOpenProbes).toBe(1);
    expect(Object.isFrozen(CIRCUIT_BREAKER_DEFAULTS)).toBe(true);
  });

  it('is a closed circuit-breaker policy to start with', () => {
    const breaker = circuitBreaker();
    expect(breaker.kind).toBe('circuit-breaker');
    expect(breaker.state).toBe('closed');
  });

  it('with defaults, opens on the 20th call when half of them failed, not before', async () => {
    const { breaker, changes } = setup();
    await succeed(breaker, 10);
    await fail(breaker, 9);
    expect(breaker.state).toBe('closed');
    await fail(breaker);
    expect(breaker.state).toBe('open');
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'failure-rate' }]);
  });

  it('with defaults, waits 5 s before the first probe', async () => {
    const { clock, breaker } = setup({ minimumCalls: 1 });
    await fail(breaker);
    await clock.advance(4_999);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });
});

describe('circuitBreaker: closed', () => {
  it('passes values, errors and the work context through unchanged', async () => {
    const { breaker } = setup();
    const error = new Error('mine');
    await expect(breaker.execute(() => 42)).resolves.toBe(42);
    await expect(breaker.execute(() => Promise.reject(error))).rejects.toBe(error);
    await expect(
      breaker.execute(() => {
        throw error;
      }),
    ).rejects.toBe(error);
    await expect(breaker.execute(({ attempt }) => attempt)).resolves.toBe(1);
    const wrapped = breaker.wrap((a: number, b: number) => a + b);
    await expect(wrapped(2, 3)).resolves.toBe(5);
  });

  it('opens when the failure rate reaches the threshold (>=), once minimumCalls calls are in the window', async () => {
    const { breaker } = setup({ minimumCalls: 4, failureRateThreshold: 0.5 });
    await succeed(breaker, 2);
    await fail(breaker);
    expect(breaker.state).toBe('closed'); // 3 calls < minimumCalls
    await fail(breaker);
    expect(breaker.state).toBe('open'); // 2 of 4 = 0.5
  });

  it('stays closed below the threshold', async () => {
    const { breaker } = setup({ minimumCalls: 5, failureRateThreshold: 0.6 });
    await succeed(breaker, 3);
    await fail(breaker, 2); // 2 of 5 = 0.4
    expect(breaker.state).toBe('closed');
    await fail(breaker); // 3 of 6 = 0.5
    expect(breaker.state).toBe('closed');
    await fail(breaker); // 4 of 7 = 0.571
    expect(breaker.state).toBe('closed');
    await fail(breaker); // 5 of 8 = 0.625
    expect(breaker.state).toBe('open');
  });

  it('is judged on failures only: a success never opens the breaker', async () => {
    const { breaker } = setup({ minimumCalls: 4, failureRateThreshold: 0.5 });
    await fail(breaker, 3);
    await succeed(breaker); // 4 calls, 75 % failures, but the call succeeded
    expect(breaker.state).toBe('closed');
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });

  it('with a threshold of 1, opens only when every call in the window failed', async () => {
    const { breaker } = setup({ minimumCalls: 3, failureRateThreshold: 1 });
    await succeed(breaker);
    await fail(breaker, 5);
    expect(breaker.state).toBe('closed');
    const { breaker: b2 } = setup({ minimumCalls: 3, failureRateThreshold: 1 });
    await fail(b2, 3);
    expect(b2.state).toBe('open');
  });

  it('counts a synchronous throw as a failure', async () => {
    const { breaker } = setup({ minimumCalls: 1 });
    await breaker
      .execute(() => {
        throw new Error('sync');
      })
      .catch(() => {});
    expect(breaker.state).toBe('open');
  });

  it('records the result before an outer layer sees it', async () => {
    const { breaker } = setup({ minimumCalls: 1 });
    const seen: string[] = [];
    const outer = pipeline(breaker);
    await outer.execute(boom).catch(() => seen.push(breaker.state));
    expect(seen).toEqual(['open']);
  });
});

describe('circuitBreaker: time window', () => {
  it('forgets calls once their bucket leaves the window (10 buckets of 1 s: 9 to 10 s of history)', async () => {
    const { clock, breaker } = setup({ minimumCalls: 2, window: { kind: 'time', ms: 10_000, buckets: 10 } });
    await clock.advance(999); // still bucket 0
    await fail(breaker);
    await clock.advance(9_001); // t = 10,000: bucket 10, bucket 0 has expired
    await fail(breaker);
    expect(breaker.state).toBe('closed');
    await clock.advance(8_999); // t = 18,999: bucket 18, the failure at 10,000 is still in
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });

  it('keeps a call for the whole window when it falls at the start of its bucket', async () => {
    const { clock, breaker } = setup({ minimumCalls: 2, window: { kind: 'time', ms: 1_000, buckets: 4 } });
    await fail(breaker); // t = 0, bucket 0 (0..249)
    await clock.advance(999); // bucket 3: bucket 0 still in
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });

  it('clears everything after a long idle period', async () => {
    const { clock, breaker } = setup({ minimumCalls: 3, window: { kind: 'time', ms: 100, buckets: 10 } });
    await fail(breaker, 2);
    await clock.advance(1_000_000);
    await fail(breaker, 2);
    expect(breaker.state).toBe('closed');
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });

  it('with one bucket, is a tumbling window', async () => {
    const { clock, breaker } = setup({ minimumCalls: 2, window: { kind: 'time', ms: 1_000, buckets: 1 } });
    await fail(breaker);
    await clock.advance(1_000);
    await fail(breaker);
    expect(breaker.state).toBe('closed');
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });
});

describe('circuitBreaker: count window', () => {
  it('considers the last N calls, however old', async () => {
    const { clock, breaker } = setup({ minimumCalls: 4, failureRateThreshold: 0.75, window: { kind: 'count', calls: 4 } });
    await fail(breaker, 2);
    await clock.advance(3_600_000);
    await succeed(breaker);
    await fail(breaker); // F F S F: 3 of 4
    expect(breaker.state).toBe('open');
  });

  it('drops the oldest call when full', async () => {
    const { breaker } = setup({ minimumCalls: 3, failureRateThreshold: 0.6, window: { kind: 'count', calls: 3 } });
    await fail(breaker);
    await succeed(breaker, 2);
    await fail(breaker); // window S S F: 1 of 3
    expect(breaker.state).toBe('closed');
    await fail(breaker); // S F F: 2 of 3 = 0.67
    expect(breaker.state).toBe('open');
  });
});

describe('circuitBreaker: slow calls', () => {
  function slowCall(clock: FakeClock, ms: number, outcome: 'ok' | 'fail' = 'ok') {
    return () => new Promise<string>((resolve, reject) => clock.schedule(() => (outcome === 'ok' ? resolve('ok') : reject(new Error('slow fail'))), ms));
  }

  it('opens on the slow-call rate, counting successes that took slowCallMs or longer', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 2, slowCallMs: 100, slowCallRateThreshold: 0.5 });
    const a = track(breaker.execute(slowCall(clock, 99)));
    await clock.advance(99);
    expect(a.status).toBe('fulfilled');
    expect(breaker.state).toBe('closed');
    const b = track(breaker.execute(slowCall(clock, 100)));
    await clock.advance(100);
    expect(b.value).toBe('ok'); // the slow call itself still succeeds
    expect(breaker.state).toBe('open');
    expect(changes.at(-1)).toEqual({ from: 'closed', to: 'open', reason: 'slow-call-rate' });
  });

  it('counts a slow failure both as a failure and as slow', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 2, failureRateThreshold: 1, slowCallMs: 50, slowCallRateThreshold: 1 });
    track(breaker.execute(slowCall(clock, 60, 'fail')));
    await clock.advance(60);
    track(breaker.execute(slowCall(clock, 60)));
    await clock.advance(60);
    expect(breaker.state).toBe('open'); // 1 failure of 2 (below 1), 2 slow of 2
    expect(changes.at(-1)!.reason).toBe('slow-call-rate');
  });

  it('prefers the failure-rate reason when both rates are reached', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 1, slowCallMs: 10, slowCallRateThreshold: 0.5 });
    track(breaker.execute(slowCall(clock, 20, 'fail')));
    await clock.advance(20);
    expect(changes.at(-1)!.reason).toBe('failure-rate');
  });

  it("counts a call its caller aborted after slowCallMs as slow, not failed; one aborted sooner is ignored", async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 2, failureRateThreshold: 0.5, slowCallMs: 100, slowCallRateThreshold: 1 });
    const abortedAfter = async (ms: number) => {
      const controller = new AbortController();
      const call = track(
        breaker.execute(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })), {
          signal: controller.signal,
        }),
      );
      await clock.advance(ms);
      controller.abort();
      await clock.flush();
      expect(call.status).toBe('rejected');
    };
    await abortedAfter(99); // not slow: it does not enter the window
    expect(breaker.state).toBe('closed');
    await abortedAfter(100); // slow: 1 call, slow
    expect(breaker.state).toBe('closed'); // below minimumCalls
    await abortedAfter(150); // 2 calls, both slow, neither failed
    expect(breaker.state).toBe('open');
    expect(changes.at(-1)!.reason).toBe('slow-call-rate');
  });

  it('a hedge above a breaker: the losing attempt that ran past slowCallMs reaches the breaker as slow', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ minimumCalls: 2, slowCallMs: 100, slowCallRateThreshold: 0.5, clock });
    const changes: StateChangeEvent[] = [];
    breaker.onStateChange((e) => changes.push(e));
    const replica = pipeline({ name: 'replica' }, breaker); // under the hedge's attempt signal, as a per-replica pipeline is
    const h = hedge({ delayMs: 120, maxExtraLoad: 1, clock });
    const lost: AbortSignal[] = [];
    const call = track(
      h.execute(({ attempt, signal }) =>
        replica.execute(
          ({ signal: inner }) => {
            if (attempt === 1) lost.push(inner);
            return new Promise<number>((resolve, reject) => {
              const timer = clock.schedule(() => resolve(attempt), attempt === 1 ? 1_000 : 10);
              inner.addEventListener('abort', () => (clock.cancel(timer), reject(inner.reason)), { once: true });
            });
          },
          { signal },
        ),
      ),
    );
    await clock.advance(130); // the hedge started at 120 and won at 130; the first attempt lost after 130 ms
    expect(call.value).toBe(2);
    expect(lost[0]!.aborted).toBe(true);
    // The breaker saw a fast success and a slow abort: 1 slow of 2 calls.
    expect(breaker.state).toBe('open');
    expect(changes.at(-1)!.reason).toBe('slow-call-rate');
    expect(clock.pendingTimers).toBe(0);
  });

  it('in one pipeline with a hedge outside it, a losing attempt is not a failure: ignored, or slow if it took slowCallMs', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ minimumCalls: 1, failureRateThreshold: 0.5, slowCallMs: 100, slowCallRateThreshold: 0.6, clock });
    const p = pipeline(hedge({ delayMs: 10, maxExtraLoad: 1, clock }), breaker);
    const run = (firstMs: number, hedgeMs: number) =>
      track(
        p.execute(({ attempt, signal }) => new Promise((resolve, reject) => {
          const timer = clock.schedule(() => resolve(attempt), attempt === 1 ? firstMs : hedgeMs);
          signal.addEventListener('abort', () => (clock.cancel(timer), reject(signal.reason)), { once: true });
        })),
      );
    const fast = run(1_000, 10); // the hedge wins at 20; the loser is aborted after 20 ms
    await clock.advance(20);
    expect(fast.value).toBe(2);
    expect(breaker.state).toBe('closed'); // one fast success; the loser did not count
    const slow = run(1_000, 100); // the hedge wins at 110; the loser is aborted after 110 ms
    await clock.advance(110);
    expect(slow.value).toBe(2);
    expect(breaker.state).toBe('open'); // the 100 ms win made 1 slow of 2 (below 0.6); the 110 ms loser, 2 of 3
    expect(clock.pendingTimers).toBe(0);
  });

  it('a call an outer deadline stopped is not a failure of the dependency', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ minimumCalls: 1, clock });
    const call = track(pipeline(timeout({ ms: 50, clock }), breaker).execute(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))));
    await clock.advance(50);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(breaker.state).toBe('closed'); // with the timeout inside the breaker, it would have opened
  });

  it('judges an aborted call slow by when it settled: work that gives up late took that long', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 1, slowCallMs: 100, slowCallRateThreshold: 1 });
    const controller = new AbortController();
    const call = track(
      breaker.execute(({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => clock.schedule(() => reject(signal.reason), 100), { once: true })), {
        signal: controller.signal,
      }),
    );
    await clock.advance(50);
    controller.abort(); // at 50 ms; the work gives up at 150 ms
    await clock.advance(99);
    expect(breaker.state).toBe('closed');
    await clock.advance(1);
    expect(call.status).toBe('rejected');
    expect(changes.at(-1)!.reason).toBe('slow-call-rate');
  });

  it('reopens on a slow probe', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 1, halfOpenAfterMs: 1_000, slowCallMs: 100, slowCallRateThreshold: 1 });
    await fail(breaker);
    await clock.advance(1_000);
    const probe = track(breaker.execute(slowCall(clock, 150)));
    await clock.advance(150);
    expect(probe.value).toBe('ok');
    expect(breaker.state).toBe('open');
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'open', reason: 'probe-slow' });
  });
});

describe('circuitBreaker: handle and aborts', () => {
  it('ignores errors handle rejects: neither failures nor successes (unlike opossum, which counts them as successes)', async () => {
    const ignored = new Error('not found');
    const { breaker } = setup({ minimumCalls: 2, failureRateThreshold: 1, handle: (e) => e !== ignored });
    await fail(breaker);
    for (let i = 0; i < 5; i++) await breaker.execute(() => Promise.reject(ignored)).catch(() => {});
    expect(breaker.state).toBe('closed'); // still 1 call in the window
    await fail(breaker); // 2 of 2: had the ignored errors counted as successes, this would be 2 of 7
    expect(breaker.state).toBe('open');
  });

  it('by default, counts timeouts but not Breakwater rejections from layers below', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1 });
    const full = bulkhead({ maxConcurrent: 1 });
    const guarded = pipeline(breaker, full);
    const hold = track(guarded.execute(() => never()));
    const rejected = track(guarded.execute(ok));
    await clock.flush();
    expect(rejected.error).toBeInstanceOf(BulkheadRejectedError);
    expect(breaker.state).toBe('closed');
    expect(hold.status).toBe('pending');

    const timed = pipeline(breaker, timeout({ ms: 10, clock }));
    const t = track(timed.execute(() => never()));
    await clock.advance(10);
    expect(t.error).toBeInstanceOf(TimeoutError);
    expect(breaker.state).toBe('open');
  });

  it("never counts the caller's abort, whatever handle says", async () => {
    const { clock, breaker } = setup({ minimumCalls: 1, handle: () => true });
    const controller = new AbortController();
    const call = track(
      breaker.execute(
        ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
        { signal: controller.signal },
      ),
    );
    const reason = new Error('user went away');
    controller.abort(reason);
    await clock.flush();
    expect(call.error).toBe(reason);
    expect(breaker.state).toBe('closed');
  });

  it('counts an error as a failure when handle throws, and reports the bug asynchronously', async () => {
    const reported: (() => void)[] = [];
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((cb) => void reported.push(cb));
    const bug = new Error('handle bug');
    const { breaker } = setup({
      minimumCalls: 1,
      handle: () => {
        throw bug;
      },
    });
    const error = new Error('work');
    await expect(breaker.execute(() => Promise.reject(error))).rejects.toBe(error);
    vi.restoreAllMocks();
    expect(breaker.state).toBe('open');
    expect(reported).toHaveLength(1);
    expect(() => reported[0]!()).toThrow(bug);
  });

  it('a handle returning a truthy non-boolean does not count', async () => {
    const { breaker } = setup({ minimumCalls: 1, handle: (() => 1) as unknown as (e: unknown) => boolean });
    await fail(breaker);
    expect(breaker.state).toBe('closed');
  });
});

describe('circuitBreaker: open', () => {
  it('rejects at once with BrokenCircuitError carrying the time left, without calling the work', async () => {
    const { clock, breaker } = setup({ minimumCalls: 1, halfOpenAfterMs: 1_000 });
    await fail(breaker);
    await clock.advance(300);
    const work = vi.fn(ok);
    const error = await breaker.execute(work).catch((e: unknown) => e);
    expect(work).not.toHaveBeenCalled();
    expect(error).toBeInstanceOf(BrokenCircuitError);
    expect(isBrokenCircuitError(error)).toBe(true);
    expect((error as BrokenCircuitError).code).toBe('ERR_BREAKWATER_BROKEN_CIRCUIT');
    expect((error as BrokenCircuitError).retryAfterMs).toBe(700);
    expect((error as BrokenCircuitError).message).toBe('the circuit is open: the call was not made');
  });

  it('rounds retryAfterMs up to whole ms', async () => {
    const clock = new FakeClock(0.25);
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 1_000 });
    await fail(breaker);
    await clock.advance(0.5);
    const error = (await breaker.execute(ok).catch((e: unknown) => e)) as BrokenCircuitError;
    expect(error.retryAfterMs).toBe(1_000); // 999.5 left
  });

  it('builds its rejections without stack frames (cheap), keeping name, message and code', async () => {
    const { breaker } = setup({ minimumCalls: 1 });
    await fail(breaker);
    const error = (await breaker.execute(ok).catch((e: unknown) => e)) as BrokenCircuitError;
    expect(error.stack).toBe('BrokenCircuitError: the circuit is open: the call was not made');
    expect(error).toBeInstanceOf(Error);
    expect(Error.stackTraceLimit).toBe(10); // restored
    expect(new Error('x').stack!.split('\n').length).toBeGreaterThan(1);
  });

  it('emits onReject with the state and the error', async () => {
    const { breaker } = setup({ minimumCalls: 1 });
    const rejects: unknown[] = [];
    breaker.onReject((e) => rejects.push(e));
    await fail(breaker);
    const error = await breaker.execute(ok).catch((e: unknown) => e);
    expect(rejects).toEqual([{ state: 'open', error }]);
  });

  it('ignores the result of calls that started before it opened', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 1, halfOpenAfterMs: 1_000 });
    const late = deferred();
    const slow = track(breaker.execute(() => late.promise));
    await fail(breaker);
    expect(breaker.state).toBe('open');
    late.resolve('late');
    await clock.flush();
    expect(slow.value).toBe('late');
    expect(breaker.state).toBe('open');
    expect(changes).toHaveLength(1);
  });
});

describe('circuitBreaker: lazy open → half-open', () => {
  it('needs no timer: the transition is noticed on the next state read, and emitted then', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 1, halfOpenAfterMs: 1_000 });
    await fail(breaker);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(5_000);
    expect(changes).toHaveLength(1); // nothing happened while nobody looked
    expect(breaker.state).toBe('half-open');
    expect(changes.at(-1)).toEqual({ from: 'open', to: 'half-open', reason: 'cooldown-elapsed' });
    expect(breaker.state).toBe('half-open');
    expect(changes).toHaveLength(2);
  });

  it('is also noticed by the next call, which becomes the probe', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 1, halfOpenAfterMs: 1_000 });
    await fail(breaker);
    await clock.advance(1_000);
    await expect(breaker.execute(ok)).resolves.toBe('ok');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open', 'closed']);
    expect(changes.at(-1)!.reason).toBe('probes-succeeded');
    expect(breaker.state).toBe('closed');
  });
});

describe('circuitBreaker: half-open', () => {
  async function halfOpen(options: CircuitBreakerOptions = {}) {
    const s = setup({ minimumCalls: 1, halfOpenAfterMs: 1_000, ...options });
    await fail(s.breaker);
    await s.clock.advance(1_000);
    expect(s.breaker.state).toBe('half-open');
    return s;
  }

  it('admits one probe by default and rejects every other call at once with retryAfterMs 0', async () => {
    const { clock, breaker } = await halfOpen();
    const probe = deferred();
    const work = vi.fn(() => probe.promise);
    const first = track(breaker.execute(work));
    const second = track(breaker.execute(work));
    await clock.flush();
    expect(work).toHaveBeenCalledTimes(1);
    expect(first.status).toBe('pending');
    expect(second.error).toBeInstanceOf(BrokenCircuitError);
    expect((second.error as BrokenCircuitError).retryAfterMs).toBe(0);
    expect((second.error as BrokenCircuitError).message).toMatch(/half-open/);
    probe.resolve('fine');
    await clock.flush();
    expect(first.value).toBe('fine');
    expect(breaker.state).toBe('closed');
  });

  it('reopens on a failed probe, for another open period', async () => {
    const { clock, breaker, changes } = await halfOpen();
    await fail(breaker);
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'open', reason: 'probe-failed' });
    const error = (await breaker.execute(ok).catch((e: unknown) => e)) as BrokenCircuitError;
    expect(error.retryAfterMs).toBe(1_000);
    await clock.advance(1_000);
    expect(breaker.state).toBe('half-open');
  });

  it('admits at most halfOpenProbes at once and closes after successesToClose (default: all of them)', async () => {
    const { clock, breaker } = await halfOpen({ halfOpenProbes: 3 });
    const probes = [deferred(), deferred(), deferred()];
    let started = 0;
    const calls = [0, 1, 2, 3, 4].map(() => track(breaker.execute(() => probes[started++]!.promise)));
    await clock.flush();
    expect(started).toBe(3);
    expect(calls[3]!.error).toBeInstanceOf(BrokenCircuitError);
    expect(calls[4]!.error).toBeInstanceOf(BrokenCircuitError);
    probes[0]!.resolve('a');
    probes[1]!.resolve('b');
    await clock.flush();
    expect(breaker.state).toBe('half-open');
    probes[2]!.resolve('c');
    await clock.flush();
    expect(breaker.state).toBe('closed');
  });

  it('frees a probe slot when a probe succeeds, so successesToClose may exceed halfOpenProbes', async () => {
    const { breaker } = await halfOpen({ halfOpenProbes: 1, successesToClose: 3 });
    await succeed(breaker, 2);
    expect(breaker.state).toBe('half-open');
    await succeed(breaker);
    expect(breaker.state).toBe('closed');
  });

  it('closes on the first success with successesToClose 1, ignoring the probes still in flight', async () => {
    const { clock, breaker, changes } = await halfOpen({ halfOpenProbes: 2, successesToClose: 1 });
    const a = deferred();
    const b = deferred();
    track(breaker.execute(() => a.promise));
    const second = track(breaker.execute(() => b.promise));
    a.resolve('a');
    await clock.flush();
    expect(breaker.state).toBe('closed');
    b.reject(new Error('late failure'));
    await clock.flush();
    expect(second.status).toBe('rejected');
    expect(breaker.state).toBe('closed');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open', 'closed']);
  });

  it('frees the slot without deciding when handle rejects the probe error', async () => {
    const ignored = new Error('ignored');
    const { breaker } = await halfOpen({ handle: (e) => e !== ignored });
    await breaker.execute(() => Promise.reject(ignored)).catch(() => {});
    expect(breaker.state).toBe('half-open');
    await succeed(breaker); // the slot is free again
    expect(breaker.state).toBe('closed');
  });

  it("frees the slot without deciding when the caller aborts the probe", async () => {
    const { clock, breaker } = await halfOpen();
    const controller = new AbortController();
    const probe = track(
      breaker.execute(
        ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
        { signal: controller.signal },
      ),
    );
    controller.abort();
    await clock.flush();
    expect(probe.status).toBe('rejected');
    expect(breaker.state).toBe('half-open');
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });

  it('ignores a late probe result from an earlier half-open period', async () => {
    const { clock, breaker, changes } = await halfOpen({ halfOpenProbes: 2, successesToClose: 2 });
    const stale = deferred();
    track(breaker.execute(() => stale.promise)); // probe of generation A
    await fail(breaker); // second probe fails: reopen
    await clock.advance(1_000);
    expect(breaker.state).toBe('half-open'); // generation B
    const fresh = deferred();
    track(breaker.execute(() => fresh.promise));
    stale.resolve('stale success'); // must neither count as a success nor free one of B's slots
    await clock.flush();
    expect(breaker.state).toBe('half-open');
    const other = deferred();
    const third = track(breaker.execute(() => other.promise)); // B's second slot
    const fourth = track(breaker.execute(ok)); // no third slot
    await clock.flush();
    expect(third.status).toBe('pending');
    expect(fourth.error).toBeInstanceOf(BrokenCircuitError);
    fresh.resolve('fresh');
    await clock.flush();
    expect(breaker.state).toBe('half-open'); // 1 success of 2
    other.resolve('other');
    await clock.flush();
    expect(breaker.state).toBe('closed');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('starts the closed state with an empty window', async () => {
    const { clock, breaker } = setup({ minimumCalls: 2, failureRateThreshold: 0.5, halfOpenAfterMs: 1_000 });
    await fail(breaker, 2);
    await clock.advance(1_000);
    await succeed(breaker); // probe: closes
    await fail(breaker); // 1 call in the new window
    expect(breaker.state).toBe('closed');
    await fail(breaker);
    expect(breaker.state).toBe('open');
  });
});

describe('circuitBreaker: backoff schedule for halfOpenAfterMs', () => {
  it('waits longer after each reopening and starts over once closed', async () => {
    const schedule = exponential({ initialMs: 1_000, maxMs: 4_000, jitter: 'none' });
    const { clock, breaker } = setup({ minimumCalls: 1, halfOpenAfterMs: schedule });
    const waits: number[] = [];
    const openPeriod = async () => {
      const e = (await breaker.execute(ok).catch((x: unknown) => x)) as BrokenCircuitError;
      waits.push(e.retryAfterMs);
      await clock.advance(e.retryAfterMs);
    };
    await fail(breaker);
    for (let i = 0; i < 4; i++) {
      await openPeriod();
      await fail(breaker); // failed probe
    }
    await openPeriod();
    await succeed(breaker); // closes
    await fail(breaker);
    await openPeriod();
    expect(waits).toEqual([1_000, 2_000, 4_000, 4_000, 4_000, 1_000]);
  });

  it('calls the schedule with the opening number, the previous period and the injected random', async () => {
    const random = seededRandom(7);
    const calls: [number, number, unknown][] = [];
    const schedule = {
      delayMs(attempt: number, previousMs: number, r: () => number) {
        calls.push([attempt, previousMs, r]);
        return attempt * 100;
      },
    };
    const { clock, breaker } = setup({ minimumCalls: 1, halfOpenAfterMs: schedule, random });
    await fail(breaker);
    await clock.advance(100);
    await fail(breaker);
    expect(calls).toEqual([
      [1, 0, random],
      [2, 100, random],
    ]);
  });

  it('works with a jittered constant schedule and clamps what a schedule returns', async () => {
    const { clock, breaker } = setup({ minimumCalls: 1, halfOpenAfterMs: constant({ ms: 1_000, jitter: 'full' }), random: () => 0.5 });
    await fail(breaker);
    await clock.advance(499);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half-open');
    const bad = setup({ minimumCalls: 1, halfOpenAfterMs: { delayMs: () => Number.NaN } });
    await fail(bad.breaker);
    expect(bad.breaker.state).toBe('half-open'); // NaN counts as 0
  });
});

describe('circuitBreaker: isolate and reset', () => {
  it('rejects with IsolatedCircuitError until the handle is released, then closes', async () => {
    const { breaker, changes } = setup();
    const rejects: string[] = [];
    breaker.onReject((e) => rejects.push(e.state));
    const handle = breaker.isolate();
    expect(breaker.state).toBe('isolated');
    const error = await breaker.execute(ok).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IsolatedCircuitError);
    expect(isIsolatedCircuitError(error)).toBe(true);
    expect((error as IsolatedCircuitError).stack).toBe('IsolatedCircuitError: the circuit is isolated: the call was not made');
    handle.release();
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(ok)).resolves.toBe('ok');
    expect(rejects).toEqual(['isolated']);
    expect(changes).toEqual([
      { from: 'closed', to: 'isolated', reason: 'isolated' },
      { from: 'isolated', to: 'closed', reason: 'released' },
    ]);
  });

  it('nests: released only when every handle is released; release is idempotent', async () => {
    const { breaker } = setup();
    const a = breaker.isolate();
    const b = breaker.isolate();
    a.release();
    a.release(); // twice: no effect on b's hold
    expect(breaker.state).toBe('isolated');
    b.release();
    expect(breaker.state).toBe('closed');
    b.release();
    expect(breaker.state).toBe('closed');
  });

  it('overrides open and half-open, and is not undone by the open period or reset()', async () => {
    const { clock, breaker } = setup({ minimumCalls: 1, halfOpenAfterMs: 100 });
    await fail(breaker);
    const handle = breaker.isolate();
    await clock.advance(1_000);
    expect(breaker.state).toBe('isolated');
    breaker.reset();
    expect(breaker.state).toBe('isolated');
    handle.release();
    expect(breaker.state).toBe('closed');
  });

  it('ignores results of calls that started before the isolation', async () => {
    const { clock, breaker } = setup({ minimumCalls: 1 });
    const late = deferred();
    track(breaker.execute(() => late.promise));
    const handle = breaker.isolate();
    handle.release();
    late.reject(new Error('late'));
    await clock.flush();
    expect(breaker.state).toBe('closed');
  });

  it('reset() closes an open breaker and forgets statistics and backoff progress', async () => {
    const schedule = exponential({ initialMs: 100, jitter: 'none' });
    const { clock, breaker, changes } = setup({ minimumCalls: 2, halfOpenAfterMs: schedule });
    await fail(breaker, 2);
    await clock.advance(100);
    await fail(breaker); // probe fails: 2nd opening, 200 ms
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(changes.at(-1)).toEqual({ from: 'open', to: 'closed', reason: 'reset' });
    await fail(breaker);
    expect(breaker.state).toBe('closed'); // the window is empty again
    await fail(breaker);
    const error = (await breaker.execute(ok).catch((e: unknown) => e)) as BrokenCircuitError;
    expect(error.retryAfterMs).toBe(100); // first opening again
  });

  it('reset() on a closed breaker clears its window without an event, and in-flight calls stop counting', async () => {
    const { clock, breaker, changes } = setup({ minimumCalls: 2 });
    const late = deferred();
    track(breaker.execute(() => late.promise));
    await fail(breaker);
    breaker.reset();
    late.reject(new Error('late'));
    await clock.flush();
    await fail(breaker);
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual([]);
  });
});

describe('circuitBreaker: toJSON and initialState', () => {
  it('round-trips an open breaker across a clock restart, keeping the time left', async () => {
    const { clock, breaker } = setup({ minimumCalls: 1, halfOpenAfterMs: 10_000 });
    await fail(breaker);
    await clock.advance(4_000);
    const saved = JSON.parse(JSON.stringify(breaker)) as ReturnType<CircuitBreakerPolicy['toJSON']>;
    expect(saved).toEqual({ state: 'open', retryAfterMs: 6_000, consecutiveOpens: 1, lastOpenMs: 10_000 });

    const restarted = new FakeClock(123_456); // a new process: another origin
    const restored = circuitBreaker({ clock: restarted, halfOpenAfterMs: 10_000, initialState: saved });
    expect(restored.state).toBe('open');
    const error = (await restored.execute(ok).catch((e: unknown) => e)) as BrokenCircuitError;
    expect(error.retryAfterMs).toBe(6_000);
    await restarted.advance(6_000);
    expect(restored.state).toBe('half-open');
    expect(restored.toJSON()).toEqual({ state: 'half-open', retryAfterMs: 0, consecutiveOpens: 1, lastOpenMs: 10_000 });
  });

  it('restores the backoff progress', async () => {
    const schedule = exponential({ initialMs: 1_000, maxMs: 60_000, jitter: 'none' });
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, halfOpenAfterMs: schedule, initialState: { state: 'half-open', consecutiveOpens: 3, lastOpenMs: 4_000 } });
    expect(breaker.state).toBe('half-open');
    await fail(breaker); // 4th opening
    expect(breaker.toJSON()).toEqual({ state: 'open', retryAfterMs: 8_000, consecutiveOpens: 4, lastOpenMs: 8_000 });
  });

  it('saves closed and isolated breakers as closed', async () => {
    const { breaker } = setup({ minimumCalls: 5 });
    await fail(breaker, 3);
    expect(breaker.toJSON()).toEqual({ state: 'closed', retryAfterMs: 0, consecutiveOpens: 0, lastOpenMs: 0 });
    const handle = breaker.isolate();
    expect(breaker.toJSON().state).toBe('closed');
    handle.release();
    const restored = circuitBreaker({ initialState: breaker.toJSON() });
    expect(restored.state).toBe('closed');
  });

  it('accepts a minimal hand-written snapshot', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, initialState: { state: 'open', retryAfterMs: 60_000 } });
    expect(breaker.toJSON()).toEqual({ state: 'open', retryAfterMs: 60_000, consecutiveOpens: 1, lastOpenMs: 0 });
    const zero = circuitBreaker({ clock, initialState: { state: 'open' } });
    expect(zero.state).toBe('half-open');
  });
});

describe('circuitBreaker: events', () => {
  it('reports successes and failures with their duration', async () => {
    const { clock, breaker } = setup({ minimumCalls: 100 });
    const events: unknown[] = [];
    breaker.onSuccess((e) => events.push(['success', e]));
    breaker.onFailure((e) => events.push(['failure', e]));
    const error = new Error('x');
    const a = track(breaker.execute(() => new Promise((resolve) => clock.schedule(() => resolve(1), 30))));
    const b = track(breaker.execute(() => new Promise((_, reject) => clock.schedule(() => reject(error), 50))));
    await clock.advance(50);
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('rejected');
    expect(events).toEqual([
      ['success', { durationMs: 30 }],
      ['failure', { durationMs: 50, error }],
    ]);
  });

  it('does not report ignored errors as failures', async () => {
    const { breaker } = setup({ handle: () => false });
    const failures: unknown[] = [];
    breaker.onFailure((e) => failures.push(e));
    await fail(breaker);
    expect(failures).toEqual([]);
  });

  it('stops calling a listener once it is removed, and survives a throwing listener', async () => {
    const reported: (() => void)[] = [];
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((cb) => void reported.push(cb));
    const { breaker } = setup({ minimumCalls: 1 });
    const seen: string[] = [];
    const off = breaker.onStateChange((e) => seen.push(e.to));
    breaker.onStateChange(() => {
      throw new Error('listener bug');
    });
    await fail(breaker);
    off();
    breaker.reset();
    vi.restoreAllMocks();
    expect(seen).toEqual(['open']);
    expect(breaker.state).toBe('closed');
    expect(reported).toHaveLength(2);
  });

  it('reads the clock only when it must', async () => {
    const clock = new FakeClock();
    let reads = 0;
    const counting: Clock = { now: () => (reads++, clock.now()), schedule: clock.schedule.bind(clock), cancel: clock.cancel.bind(clock) };
    const countWindow = circuitBreaker({ clock: counting, window: { kind: 'count', calls: 20 } });
    await succeed(countWindow, 5);
    await fail(countWindow, 5);
    expect(reads).toBe(0); // closed, count window, nobody listening: no clock at all

    reads = 0;
    const timeWindow = circuitBreaker({ clock: counting });
    reads = 0;
    await succeed(timeWindow, 5);
    expect(reads).toBe(5); // one read per call, to pick the bucket

    reads = 0;
    const off = timeWindow.onSuccess(() => {});
    await succeed(timeWindow, 5);
    expect(reads).toBe(10); // timed: start and end
    off();
  });
});

describe('circuitBreaker: composition', () => {
  it('inside a retry, counts every attempt and stops the retries once open', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 2, halfOpenAfterMs: 60_000 });
    let calls = 0;
    const guarded = pipeline(retry({ maxAttempts: 5, backoff: constant({ ms: 0 }), clock }), breaker);
    const call = track(guarded.execute(() => (calls++, boom())));
    await clock.runAll();
    await clock.flush();
    expect(calls).toBe(2); // the third attempt met an open breaker, which retry does not retry
    expect(call.error).toBeInstanceOf(BrokenCircuitError);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('circuitBreaker: validation', () => {
  const cases: [string, unknown, RegExp, 'TypeError' | 'RangeError'][] = [
    ['options', 5, /circuitBreaker: options must be an object; received 5/, 'TypeError'],
    ['unknown', { failureRate: 0.5 }, /unknown option "failureRate"/, 'TypeError'],
    ['threshold 0', { failureRateThreshold: 0 }, /option "failureRateThreshold" must be a number greater than 0 and at most 1; received 0/, 'RangeError'],
    ['threshold > 1', { failureRateThreshold: 50 }, /"failureRateThreshold" must be .* at most 1; received 50/, 'RangeError'],
    ['threshold NaN', { failureRateThreshold: Number.NaN }, /"failureRateThreshold" .*received NaN/, 'TypeError'],
    ['threshold string', { failureRateThreshold: '0.5' }, /"failureRateThreshold" .*received "0.5" \(string\)/, 'TypeError'],
    ['minimumCalls 0', { minimumCalls: 0 }, /option "minimumCalls" must be an integer from 1 to \d+; received 0/, 'RangeError'],
    ['minimumCalls 1.5', { minimumCalls: 1.5 }, /"minimumCalls" .*received 1.5/, 'RangeError'],
    ['window kind', { window: { kind: 'sliding' } }, /option "window.kind" must be one of "time", "count"; received "sliding"/, 'TypeError'],
    ['window not object', { window: 10_000 }, /option "window" must be an object; received 10000/, 'TypeError'],
    ['window unknown', { window: { kind: 'count', calls: 5, ms: 10 } }, /unknown option "window.ms"; known options are window.kind, window.calls/, 'TypeError'],
    ['count size', { window: { kind: 'count', calls: 0 } }, /option "window.calls" must be an integer from 1 to 100000; received 0/, 'RangeError'],
    ['count missing', { window: { kind: 'count' } }, /option "window.calls" is required; received undefined/, 'TypeError'],
    ['time ms', { window: { kind: 'time', ms: 0 } }, /option "window.ms" must be a finite number of milliseconds from 1/, 'RangeError'],
    ['buckets', { window: { kind: 'time', buckets: 0 } }, /option "window.buckets" must be an integer from 1 to 1000; received 0/, 'RangeError'],
    ['buckets divide', { window: { kind: 'time', ms: 1_000, buckets: 3 } }, /option "window.ms" must be a multiple of window.buckets \(3\).*received 1000/, 'RangeError'],
    ['buckets longer than ms', { window: { kind: 'time', ms: 5, buckets: 10 } }, /"window.ms" must be a multiple of window.buckets \(10\)/, 'RangeError'],
    ['minimumCalls vs count', { minimumCalls: 30, window: { kind: 'count', calls: 10 } }, /option "minimumCalls" must be at most window.calls \(10\), or the breaker could never open; received 30/, 'RangeError'],
    ['default minimumCalls vs count', { window: { kind: 'count', calls: 10 } }, /option "minimumCalls" \(the default, 20\) must be at most window.calls \(10\)/, 'RangeError'],
    ['slow alone', { slowCallMs: 100 }, /option "slowCallRateThreshold" must be given together with "slowCallMs"; received undefined/, 'TypeError'],
    ['slow rate alone', { slowCallRateThreshold: 0.5 }, /option "slowCallMs" must be given together with "slowCallRateThreshold"/, 'TypeError'],
    ['slowCallMs 0', { slowCallMs: 0, slowCallRateThreshold: 0.5 }, /option "slowCallMs" must be a finite number of milliseconds from 1/, 'RangeError'],
    ['slow rate 2', { slowCallMs: 10, slowCallRateThreshold: 2 }, /"slowCallRateThreshold" must be a number greater than 0 and at most 1; received 2/, 'RangeError'],
    ['handle', { handle: true }, /option "handle" must be a function; received true \(boolean\)/, 'TypeError'],
    ['halfOpenAfterMs -1', { halfOpenAfterMs: -1 }, /option "halfOpenAfterMs" must be a finite number of milliseconds from 0 to 2147483647, or a backoff schedule.*received -1/, 'RangeError'],
    ['halfOpenAfterMs Infinity', { halfOpenAfterMs: Infinity }, /"halfOpenAfterMs" .*received Infinity/, 'RangeError'],
    ['halfOpenAfterMs object', { halfOpenAfterMs: { ms: 5 } }, /"halfOpenAfterMs" .*backoff schedule.*received an object/, 'TypeError'],
    ['probes 0', { halfOpenProbes: 0 }, /option "halfOpenProbes" must be an integer from 1/, 'RangeError'],
    ['successes 0', { successesToClose: 0 }, /option "successesToClose" must be an integer from 1/, 'RangeError'],
    ['clock', { clock: {} }, /option "clock" must be a Clock/, 'TypeError'],
    ['random', { random: 0.5 }, /option "random" must be a function; received 0.5/, 'TypeError'],
    ['initialState string', { initialState: 'open' }, /option "initialState" must be an object; received "open" \(string\)/, 'TypeError'],
    ['initialState state', { initialState: { state: 'isolated' } }, /option "initialState.state" must be one of "closed", "open", "half-open"; received "isolated"/, 'TypeError'],
    ['initialState missing state', { initialState: {} }, /option "initialState.state" is required/, 'TypeError'],
    ['initialState retry', { initialState: { state: 'open', retryAfterMs: -5 } }, /option "initialState.retryAfterMs" must be a finite number of milliseconds from 0/, 'RangeError'],
    ['initialState opens', { initialState: { state: 'open', consecutiveOpens: 0 } }, /option "initialState.consecutiveOpens" must be at least 1 when the state is "open"; received 0/, 'RangeError'],
    ['initialState unknown', { initialState: { state: 'closed', openUntil: 5 } }, /unknown option "initialState.openUntil"/, 'TypeError'],
  ];

  it.each(cases)('%s', (_name, options, message, kind) => {
    let thrown: unknown;
    try {
      circuitBreaker(options as CircuitBreakerOptions);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(kind === 'TypeError' ? TypeError : RangeError);
    expect((thrown as Error).message).toMatch(message);
  });

  it('accepts every documented shape', () => {
    expect(() => circuitBreaker(undefined)).not.toThrow();
    expect(() =>
      circuitBreaker({
        failureRateThreshold: 1,
        minimumCalls: 5,
        window: { kind: 'count', calls: 5 },
        slowCallMs: 1,
        slowCallRateThreshold: 0.01,
        handle: () => true,
        halfOpenAfterMs: 0,
        halfOpenProbes: 5,
        successesToClose: 10,
        clock: new FakeClock(),
        random: () => 0,
        initialState: { state: 'closed' },
      }),
    ).not.toThrow();
    expect(() => circuitBreaker({ window: { kind: 'time' }, halfOpenAfterMs: exponential() })).not.toThrow();
    expect(() => circuitBreaker({ window: { kind: 'time', ms: 60_000, buckets: 60 }, failureRateThreshold: undefined })).not.toThrow();
  });
});

describe('circuitBreaker: no timers', () => {
  it('never schedules a timer, whatever it goes through', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 100, slowCallMs: 10, slowCallRateThreshold: 1 });
    breaker.onSuccess(() => {});
    await fail(breaker);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    await succeed(breaker);
    breaker.isolate().release();
    breaker.reset();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('circuitBreaker: the isolation handle is disposable', () => {
  it('[Symbol.dispose] releases it, as release() does, once', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock });
    const a = breaker.isolate();
    const b = breaker.isolate();
    expect(breaker.state).toBe('isolated');
    a[Symbol.dispose]();
    a[Symbol.dispose](); // idempotent: b still holds it
    expect(breaker.state).toBe('isolated');
    b.release();
    expect(breaker.state).toBe('closed');
    expect(typeof Symbol.dispose).toBe('symbol');
  });
});

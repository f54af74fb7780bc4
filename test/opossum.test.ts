/**
 * `breakwater/opossum` against the real opossum. opossum runs on the global
 * timers and `Date.now`, so these tests drive it with vitest's fake timers
 * (setImmediate stays real, so FakeClock still works for Breakwater's own
 * policies in the composition tests).
 */
import CircuitBreaker from 'opossum';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  fallback,
  IsolatedCircuitError,
  isBrokenCircuitError,
  isRejection,
  isTimeoutError,
  pipeline,
  timeout,
  TimeoutError,
  type Chain,
  PolicyBase,
  type Scope,
  type SettledEvent,
} from '../src/index.ts';
import {
  fromOpossum,
  type OpossumBreaker,
  type OpossumStateChangeEvent,
  type OpossumPolicy,
  runWork,
} from '../src/opossum/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { abortListenerCount, never, track } from './helpers.ts';

type Options = ConstructorParameters<typeof CircuitBreaker>[1];

const breakers: CircuitBreaker[] = [];

/** A breaker built the adoptable way, shut down after the test. */
function makeBreaker(options: Options = {}): CircuitBreaker<Parameters<typeof runWork>, unknown> {
  const breaker = new CircuitBreaker(runWork, { name: 'dep', ...options });
  breakers.push(breaker as CircuitBreaker);
  return breaker;
}

/** opossum's error behind a translated one. */
function causeCode(error: unknown): unknown {
  return ((error as Error).cause as { code?: unknown } | undefined)?.code;
}

/** Lets promise callbacks run without moving the fake time. */
async function flush(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

const EVENTS = ['open', 'halfOpen', 'close', 'shutdown', 'reject', 'success', 'failure', 'timeout', 'fire', 'fallback', 'semaphoreLocked'];
function listenerCounts(breaker: CircuitBreaker<any, any>): Record<string, number> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return Object.fromEntries(EVENTS.map((event) => [event, breaker.listenerCount(event)]));
}

/** Trips `breaker` (volumeThreshold 2, threshold 50 %) through `policy`. */
async function trip(policy: OpossumPolicy): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await policy.execute(() => Promise.reject(new Error('down'))).catch(() => {});
  }
}

/** A policy that runs the next layer as attempt `attempt`, as a retry would. */
class AsAttempt extends PolicyBase {
  readonly kind = 'as-attempt';
  readonly #attempt: number;
  constructor(attempt: number) {
    super();
    this.#attempt = attempt;
  }
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined): Promise<T> {
    return chain.next(index + 1, scope, this.#attempt);
  }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] });
});

afterEach(() => {
  for (const breaker of breakers.splice(0)) breaker.shutdown();
  vi.useRealTimers();
});

describe('fromOpossum: calls', () => {
  it('runs the work through breaker.fire and returns its value', async () => {
    const breaker = makeBreaker();
    const fires = vi.fn();
    breaker.on('fire', fires);
    const policy = fromOpossum(breaker);
    expect(policy.kind).toBe('opossum');
    expect(policy.breaker).toBe(breaker);
    const work = vi.fn(() => Promise.resolve('ok'));
    await expect(policy.execute(work)).resolves.toBe('ok');
    expect(work).toHaveBeenCalledTimes(1);
    expect(fires).toHaveBeenCalledTimes(1);
    expect(breaker.stats.successes).toBe(1);
  });

  it('gives the work the Breakwater context: a signal and the attempt', async () => {
    const policy = fromOpossum(makeBreaker());
    let seen: { signal: AbortSignal; attempt: number } | undefined;
    await policy.execute((ctx) => {
      seen = { signal: ctx.signal, attempt: ctx.attempt };
      return 1;
    });
    expect(seen!.attempt).toBe(1);
    expect(seen!.signal).toBeInstanceOf(AbortSignal);
    expect(seen!.signal.aborted).toBe(false);

    let attempt = 0;
    await pipeline(new AsAttempt(3), policy).execute((ctx) => (attempt = ctx.attempt));
    expect(attempt).toBe(3);
  });

  it('accepts synchronous values and turns a synchronous throw into a rejection', async () => {
    const policy = fromOpossum(makeBreaker());
    await expect(policy.execute(() => 7)).resolves.toBe(7);
    const boom = new Error('boom');
    await expect(
      policy.execute(() => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });

  it('passes the work error through unchanged and lets opossum count it', async () => {
    const breaker = makeBreaker({ volumeThreshold: 10 });
    const policy = fromOpossum(breaker);
    const error = new Error('down');
    await expect(policy.execute(() => Promise.reject(error))).rejects.toBe(error);
    expect(breaker.stats.failures).toBe(1);
    // Even an error carrying one of opossum's codes is the work's own, not opossum's.
    const socketTimeout = Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' });
    await expect(policy.execute(() => Promise.reject(socketTimeout))).rejects.toBe(socketTimeout);
    await expect(policy.execute(() => Promise.reject(undefined))).rejects.toBeUndefined();
  });

  it('wrap() runs a plain function through the breaker', async () => {
    const breaker = makeBreaker();
    const add = fromOpossum(breaker).wrap((a: number, b: number) => a + b);
    await expect(add(2, 3)).resolves.toBe(5);
    expect(breaker.stats.fires).toBe(1);
  });
});

describe('fromOpossum: error translation', () => {
  it('turns "Breaker is open" into BrokenCircuitError with the time left and the original as cause', async () => {
    const breaker = makeBreaker({ volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 5_000 });
    const policy = fromOpossum(breaker);
    await trip(policy);
    expect(breaker.opened).toBe(true);
    await vi.advanceTimersByTimeAsync(1_200);

    const work = vi.fn(() => 'never');
    const error = await policy.execute(work).catch((e: unknown) => e);
    expect(work).not.toHaveBeenCalled();
    expect(error).toBeInstanceOf(BrokenCircuitError);
    expect(isBrokenCircuitError(error)).toBe(true);
    expect(isRejection(error)).toBe(true);
    expect((error as BrokenCircuitError).retryAfterMs).toBe(3_800);
    expect((error as BrokenCircuitError).message).toContain('"dep" is open');
    expect(causeCode(error)).toBe('EOPENBREAKER');
    expect(CircuitBreaker.isOurError((error as Error).cause as Error)).toBe(true);
  });

  it('reports retryAfterMs 0 for a breaker that was already open when adopted', async () => {
    const breaker = makeBreaker({ resetTimeout: 5_000 });
    breaker.open();
    const error = await fromOpossum(breaker).execute(() => 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokenCircuitError);
    expect((error as BrokenCircuitError).retryAfterMs).toBe(0);
  });

  it('turns opossum\'s timeout into TimeoutError and aborts that call\'s work with it', async () => {
    const breaker = makeBreaker({ timeout: 100 });
    const policy = fromOpossum(breaker);
    let signal: AbortSignal | undefined;
    const call = track(
      policy.execute((ctx) => {
        signal = ctx.signal;
        return never();
      }),
    );
    await vi.advanceTimersByTimeAsync(99);
    expect(call.status).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(call.status).toBe('rejected');
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(isTimeoutError(call.error)).toBe(true);
    expect((call.error as TimeoutError).timeoutMs).toBe(100);
    expect(causeCode(call.error)).toBe('ETIMEDOUT');
    expect(signal!.aborted).toBe(true);
    expect(signal!.reason).toBe(call.error);
  });

  it('aborts only the call that timed out, not the others in flight (unlike opossum\'s shared abortController)', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 100 }));
    let first: AbortSignal | undefined;
    let second: AbortSignal | undefined;
    const a = track(policy.execute((ctx) => ((first = ctx.signal), never())));
    await vi.advanceTimersByTimeAsync(60);
    const b = track(policy.execute((ctx) => ((second = ctx.signal), never())));
    await vi.advanceTimersByTimeAsync(40);
    expect(a.status).toBe('rejected');
    expect(first!.aborted).toBe(true);
    expect(b.status).toBe('pending');
    expect(second!.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(60);
    expect(second!.aborted).toBe(true);
  });

  it('gives work that reads its signal only after the timeout an aborted signal', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 10 }));
    let read: (() => AbortSignal) | undefined;
    const call = track(
      policy.execute((ctx) => {
        read = () => ctx.signal;
        return never();
      }),
    );
    await vi.advanceTimersByTimeAsync(10);
    expect(read!().aborted).toBe(true);
    expect(read!().reason).toBe(call.error);
  });

  it('leaves the signal alone after a success', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 100 }));
    let signal: AbortSignal | undefined;
    await policy.execute((ctx) => ((signal = ctx.signal), 'ok'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(signal!.aborted).toBe(false);
  });

  it('turns "Semaphore locked" into BulkheadRejectedError', async () => {
    const breaker = makeBreaker({ capacity: 1 });
    const policy = fromOpossum(breaker);
    const running = track(policy.execute(() => never()));
    const error = await policy.execute(() => 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BulkheadRejectedError);
    expect((error as BulkheadRejectedError).maxConcurrent).toBe(1);
    expect((error as BulkheadRejectedError).maxQueue).toBe(0);
    expect(causeCode(error)).toBe('ESEMLOCKED');
    expect(running.status).toBe('pending');
  });

  it('turns a shut-down breaker\'s refusal into IsolatedCircuitError', async () => {
    const breaker = makeBreaker();
    const policy = fromOpossum(breaker);
    breaker.shutdown();
    expect(policy.state).toBe('isolated');
    const error = await policy.execute(() => 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IsolatedCircuitError);
    expect(causeCode(error)).toBe('ESHUTDOWN');
  });
});

describe('fromOpossum: caller abort', () => {
  for (const opossumTimeout of [100, false] as const) {
    it(`rejects with the caller's reason, unchanged, and aborts the work with it (opossum timeout ${opossumTimeout})`, async () => {
      const policy = fromOpossum(makeBreaker({ timeout: opossumTimeout }));
      const controller = new AbortController();
      let signal: AbortSignal | undefined;
      const call = track(policy.execute((ctx) => ((signal = ctx.signal), never()), { signal: controller.signal }));
      await flush();
      const reason = { why: 'client went away' };
      controller.abort(reason);
      await flush();
      expect(call.status).toBe('rejected');
      expect(call.error).toBe(reason);
      expect(signal!.aborted).toBe(true);
      expect(signal!.reason).toBe(reason);
    });
  }

  it('never calls the work when the caller signal is already aborted', async () => {
    const breaker = makeBreaker();
    const work = vi.fn(() => 1);
    const reason = new Error('already gone');
    await expect(fromOpossum(breaker).execute(work, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(work).not.toHaveBeenCalled();
    expect(breaker.stats.fires).toBe(0);
  });

  it('removes its listener from the caller signal when the call settles', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 100 }));
    const controller = new AbortController();
    const outer = pipeline(fallback({ value: 'fb' }), policy);
    for (let i = 0; i < 5; i++) {
      await outer.execute((ctx) => (ctx.signal.aborted ? 0 : i), { signal: controller.signal });
    }
    const timedOut = track(outer.execute((ctx) => (void ctx.signal, never()), { signal: controller.signal }));
    await vi.advanceTimersByTimeAsync(100);
    expect(timedOut.value).toBe('fb');
    expect(abortListenerCount(controller.signal)).toBe(0);
  });
});

describe('fromOpossum: state and events', () => {
  it('maps opossum\'s states and reports open → half-open → closed in order', async () => {
    const breaker = makeBreaker({ volumeThreshold: 2, resetTimeout: 1_000 });
    const policy = fromOpossum(breaker);
    const changes: OpossumStateChangeEvent[] = [];
    policy.onStateChange((e) => changes.push(e));
    expect(policy.state).toBe('closed');

    await trip(policy);
    expect(policy.state).toBe('open');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(policy.state).toBe('half-open');
    await policy.execute(() => 'probe');
    expect(policy.state).toBe('closed');

    expect(changes).toEqual([
      { from: 'closed', to: 'open', reason: 'failure-rate' },
      { from: 'open', to: 'half-open', reason: 'cooldown-elapsed' },
      { from: 'half-open', to: 'closed', reason: 'probes-succeeded' },
    ]);
  });

  it('reports a failed probe as half-open → open, with a fresh retryAfterMs', async () => {
    const breaker = makeBreaker({ volumeThreshold: 2, resetTimeout: 1_000 });
    const policy = fromOpossum(breaker);
    const changes: OpossumStateChangeEvent[] = [];
    await trip(policy);
    await vi.advanceTimersByTimeAsync(1_000);
    policy.onStateChange((e) => changes.push(e));
    await policy.execute(() => Promise.reject(new Error('still down'))).catch(() => {});
    expect(changes).toEqual([{ from: 'half-open', to: 'open', reason: 'probe-failed' }]);
    await vi.advanceTimersByTimeAsync(250);
    const error = await policy.execute(() => 1).catch((e: unknown) => e);
    expect((error as BrokenCircuitError).retryAfterMs).toBe(750);
  });

  it('rejects a second call while the half-open probe is in flight, with state half-open and retryAfterMs 0', async () => {
    const policy = fromOpossum(makeBreaker({ volumeThreshold: 2, resetTimeout: 1_000 }));
    const rejects: { state: string; error: unknown }[] = [];
    policy.onReject((e) => rejects.push(e));
    await trip(policy);
    await vi.advanceTimersByTimeAsync(1_000);
    let finish!: (value: string) => void;
    const probe = policy.execute(() => new Promise<string>((resolve) => (finish = resolve)));
    const error = await policy.execute(() => 'second').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokenCircuitError);
    expect((error as BrokenCircuitError).retryAfterMs).toBe(0);
    expect(rejects).toEqual([{ state: 'half-open', error }]);
    finish('probe');
    await expect(probe).resolves.toBe('probe');
    expect(policy.state).toBe('closed');
  });

  it('reports rejections with the very error the caller receives', async () => {
    const policy = fromOpossum(makeBreaker({ volumeThreshold: 2, resetTimeout: 2_000 }));
    const rejects: { state: string; error: BrokenCircuitError }[] = [];
    policy.onReject((e) => rejects.push(e));
    await trip(policy);
    const error = await policy.execute(() => 1).catch((e: unknown) => e);
    expect(rejects).toHaveLength(1);
    expect(rejects[0]!.state).toBe('open');
    expect(rejects[0]!.error).toBe(error);
    expect(rejects[0]!.error.retryAfterMs).toBe(2_000);
  });

  it('reports successes and failures with opossum\'s durations', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: false }));
    const successes: number[] = [];
    const failures: { durationMs: number; error: unknown }[] = [];
    policy.onSuccess((e) => successes.push(e.durationMs));
    policy.onFailure((e) => failures.push(e));
    const ok = policy.execute(() => new Promise((resolve) => setTimeout(resolve, 30, 'ok')));
    await vi.advanceTimersByTimeAsync(30);
    await ok;
    const error = new Error('down');
    const bad = policy.execute(() => new Promise((_, reject) => setTimeout(reject, 20, error))).catch(() => {});
    await vi.advanceTimersByTimeAsync(20);
    await bad;
    expect(successes).toEqual([30]);
    expect(failures).toEqual([{ durationMs: 20, error }]);
  });

  it('reports opossum timeouts as onTimeout and as a failure with the same TimeoutError', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 100 }));
    const timeouts: unknown[] = [];
    const failures: unknown[] = [];
    policy.onTimeout((e) => timeouts.push(e));
    policy.onFailure((e) => failures.push(e.error));
    const call = track(pipeline(new AsAttempt(2), policy).execute(() => never()));
    await vi.advanceTimersByTimeAsync(100);
    expect(timeouts).toEqual([{ timeoutMs: 100, attempt: 2 }]);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBe(call.error);
    expect(failures[0]).toBeInstanceOf(TimeoutError);
  });

  it('reports a full breaker as a failure with BulkheadRejectedError, as opossum counts it', async () => {
    const policy = fromOpossum(makeBreaker({ capacity: 1 }));
    const failures: unknown[] = [];
    policy.onFailure((e) => failures.push(e.error));
    track(policy.execute(() => never()));
    const error = await policy.execute(() => 1).catch((e: unknown) => e);
    expect(failures).toEqual([error]);
  });

  it('reports events of calls made on the breaker directly, too', async () => {
    const breaker = makeBreaker();
    const policy = fromOpossum(breaker);
    const successes = vi.fn();
    policy.onSuccess(successes);
    await breaker.fire(() => Promise.resolve(1), { signal: new AbortController().signal, attempt: 1 });
    expect(successes).toHaveBeenCalledTimes(1);
  });

  it('mirrors opossum\'s counting: an errorFilter-matched error is reported as a success', async () => {
    const error = new Error('404');
    const policy = fromOpossum(makeBreaker({ errorFilter: (e: unknown) => e === error }));
    const successes = vi.fn();
    const failures = vi.fn();
    policy.onSuccess(successes);
    policy.onFailure(failures);
    await expect(policy.execute(() => Promise.reject(error))).rejects.toBe(error);
    expect(successes).toHaveBeenCalledTimes(1);
    expect(failures).not.toHaveBeenCalled();
  });

  it('reports shutdown as a change to isolated; a disabled breaker reads closed', async () => {
    const breaker = makeBreaker({ volumeThreshold: 2 });
    const policy = fromOpossum(breaker);
    await trip(policy);
    breaker.disable();
    expect(policy.state).toBe('closed');
    await expect(policy.execute(() => 'through')).resolves.toBe('through');
    breaker.enable();
    expect(policy.state).toBe('open');
    const changes: OpossumStateChangeEvent[] = [];
    policy.onStateChange((e) => changes.push(e));
    breaker.shutdown();
    expect(changes).toEqual([{ from: 'open', to: 'isolated', reason: 'isolated' }]);
    expect(policy.state).toBe('isolated');
  });

  it('reports no change that the state getter cannot see (a disabled breaker closed by hand)', () => {
    const breaker = makeBreaker();
    breaker.open();
    breaker.disable();
    const policy = fromOpossum(breaker);
    const changes = vi.fn();
    policy.onStateChange(changes);
    expect(policy.state).toBe('closed');
    breaker.close();
    expect(changes).not.toHaveBeenCalled();
  });

  it('a throwing listener does not break the call', async () => {
    const policy = fromOpossum(makeBreaker());
    const thrown: unknown[] = [];
    const onError = (error: unknown): void => void thrown.push(error);
    process.on('uncaughtException', onError);
    try {
      policy.onSuccess(() => {
        throw new Error('listener bug');
      });
      await expect(policy.execute(() => 'ok')).resolves.toBe('ok');
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(thrown).toHaveLength(1);
  });
});

describe('fromOpossum: listeners on the opossum breaker', () => {
  it('adds only its state listeners until someone subscribes to a call event', () => {
    const breaker = makeBreaker();
    const before = listenerCounts(breaker);
    fromOpossum(breaker);
    const after = listenerCounts(breaker);
    for (const event of EVENTS) {
      const added = ['open', 'halfOpen', 'close', 'shutdown'].includes(event) ? 1 : 0;
      expect(after[event], event).toBe(before[event]! + added);
    }
  });

  it('attaches one opossum listener per event while Breakwater listeners exist', () => {
    const breaker = makeBreaker();
    const policy = fromOpossum(breaker);
    const base = breaker.listenerCount('success');
    const a = policy.onSuccess(() => {});
    const b = policy.onSuccess(() => {});
    expect(breaker.listenerCount('success')).toBe(base + 1);
    a();
    expect(breaker.listenerCount('success')).toBe(base + 1);
    b();
    b();
    expect(breaker.listenerCount('success')).toBe(base);
  });

  it('dispose() removes every listener it added, and is idempotent', () => {
    const breaker = makeBreaker();
    const before = listenerCounts(breaker);
    const policy = fromOpossum(breaker);
    policy.onStateChange(() => {});
    policy.onReject(() => {});
    policy.onSuccess(() => {});
    policy.onFailure(() => {});
    const unsubscribeTimeout = policy.onTimeout(() => {});
    expect(listenerCounts(breaker)).not.toEqual(before);
    policy.dispose();
    expect(listenerCounts(breaker)).toEqual(before);
    unsubscribeTimeout();
    policy.dispose();
    expect(listenerCounts(breaker)).toEqual(before);
    expect(() => policy.onSuccess(() => {})).toThrow(/disposed/);
    expect(() => policy.onStateChange(() => {})).toThrow(/disposed/);
  });

  it('still runs calls after dispose(), without events', async () => {
    const breaker = makeBreaker();
    const policy = fromOpossum(breaker);
    const successes = vi.fn();
    policy.onSuccess(successes);
    policy.dispose();
    await expect(policy.execute(() => 'still')).resolves.toBe('still');
    expect(successes).not.toHaveBeenCalled();
  });

  it('adopting and disposing again and again leaves no listener behind (no MaxListenersExceeded)', () => {
    const warnings: unknown[] = [];
    const onWarning = (warning: unknown): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const breaker = makeBreaker();
      const before = listenerCounts(breaker);
      for (let i = 0; i < 20; i++) {
        const policy = fromOpossum(breaker);
        policy.onSuccess(() => {});
        policy.onStateChange(() => {});
        policy.dispose();
      }
      expect(listenerCounts(breaker)).toEqual(before);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });
});

describe('fromOpossum: composition', () => {
  it('counts a Breakwater timeout inside it as an opossum failure, and a fallback outside answers', async () => {
    const clock = new FakeClock();
    const breaker = makeBreaker({ timeout: false, volumeThreshold: 2 });
    const guarded = pipeline(
      { name: 'dep', clock },
      fallback({ value: 'cached' }),
      fromOpossum(breaker),
      timeout({ ms: 50, clock }),
    );
    const outcomes: SettledEvent['outcome'][] = [];
    guarded.onSettled((e) => outcomes.push(e.outcome));
    let signal: AbortSignal | undefined;
    const call = track(guarded.execute((ctx) => ((signal = ctx.signal), never())));
    await clock.advance(50);
    expect(call.value).toBe('cached');
    expect(signal!.reason).toBeInstanceOf(TimeoutError);
    expect(breaker.stats.failures).toBe(1);

    await clock.advance(50);
    const second = track(guarded.execute(() => never()));
    await clock.advance(50);
    expect(second.value).toBe('cached');
    expect(breaker.opened).toBe(true);
    const work = vi.fn(() => 'fresh');
    await expect(guarded.execute(work)).resolves.toBe('cached');
    expect(work).not.toHaveBeenCalled();
    expect(outcomes).toEqual(['fallback', 'fallback', 'fallback']);
  });

  it('classifies its rejections and timeouts in the pipeline outcome', async () => {
    const breaker = makeBreaker({ timeout: 100, volumeThreshold: 1, resetTimeout: 10_000 });
    const guarded = pipeline({ name: 'dep' }, fromOpossum(breaker));
    const outcomes: SettledEvent['outcome'][] = [];
    guarded.onSettled((e) => outcomes.push(e.outcome));
    const slow = track(guarded.execute(() => never()));
    await vi.advanceTimersByTimeAsync(100);
    expect(slow.error).toBeInstanceOf(TimeoutError);
    await guarded.execute(() => 1).catch(() => {});
    const controller = new AbortController();
    controller.abort(new Error('bye'));
    await guarded.execute(() => 1, { signal: controller.signal }).catch(() => {});
    expect(outcomes).toEqual(['timeout', 'rejected', 'cancelled']);
  });

  it('never replaces the caller\'s abort with a fallback value', async () => {
    const policy = fromOpossum(makeBreaker({ timeout: false }));
    const controller = new AbortController();
    const call = track(pipeline(fallback({ value: 'fb' }), policy).execute(() => never(), { signal: controller.signal }));
    await flush();
    const reason = new Error('stop');
    controller.abort(reason);
    await flush();
    expect(call.error).toBe(reason);
  });
});

describe('fromOpossum: the action contract and validation', () => {
  it('works with a custom action that calls its first argument, when told so', async () => {
    const seen: number[] = [];
    const breaker = new CircuitBreaker(
      (run: (ctx?: unknown) => Promise<unknown>, ctx: { attempt: number }) => {
        seen.push(ctx.attempt);
        return run(ctx);
      },
      { name: 'custom' },
    );
    breakers.push(breaker as CircuitBreaker);
    expect(() => fromOpossum(breaker)).toThrow(/pass \{ customAction: true \}/);
    await expect(fromOpossum(breaker, { customAction: true }).execute(() => 'ok')).resolves.toBe('ok');
    expect(seen).toEqual([1]);
  });

  it('refuses a breaker built around another function before running any of its code', () => {
    const service = vi.fn(async (id: string) => `user ${id}`);
    const breaker = new CircuitBreaker(service, { name: 'legacy' });
    breakers.push(breaker as CircuitBreaker);
    expect(() => fromOpossum(breaker as unknown as OpossumBreaker)).toThrow(
      /the opossum breaker "legacy" was built around another action \(\w+\), which would be called with the adapter's arguments/,
    );
    expect(service).not.toHaveBeenCalled();
  });

  it('rejects with a TypeError naming the fix when a declared custom action ignores the work', async () => {
    const service = vi.fn(async () => 'the wrong function');
    const breaker = new CircuitBreaker(service, { name: 'legacy' });
    breakers.push(breaker as CircuitBreaker);
    const work = vi.fn(() => 'right');
    const error = await fromOpossum(breaker as unknown as OpossumBreaker, { customAction: true }).execute(work).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/"legacy" resolved without calling the work.*runWork/);
    expect(work).not.toHaveBeenCalled();
  });

  it('lets opossum\'s own fallback answer an open circuit', async () => {
    const breaker = makeBreaker({ volumeThreshold: 1 });
    breaker.fallback(() => 'opossum fallback');
    const policy = fromOpossum(breaker);
    await expect(policy.execute(() => Promise.reject(new Error('down')))).resolves.toBe('opossum fallback');
    expect(breaker.opened).toBe(true);
    await expect(policy.execute(() => 'work')).resolves.toBe('opossum fallback');
  });

  it('throws a TypeError for something that is not an opossum breaker', () => {
    expect(() => fromOpossum(undefined as unknown as OpossumBreaker)).toThrow(
      new TypeError('fromOpossum: breaker must be an opossum CircuitBreaker; received undefined'),
    );
    expect(() => fromOpossum({ fire() {} } as unknown as OpossumBreaker)).toThrow(
      new TypeError('fromOpossum: breaker must be an opossum CircuitBreaker; received an object without on, removeListener'),
    );
    const lookalike = { fire() {}, on() {}, removeListener() {} };
    expect(() => fromOpossum(lookalike as unknown as OpossumBreaker)).toThrow(
      /received an object whose class has no static isOurError/,
    );
  });

  it('refuses breakers with opossum\'s cache or coalescing on', () => {
    const cached = makeBreaker({ cache: true });
    expect(() => fromOpossum(cached)).toThrow(TypeError);
    expect(() => fromOpossum(cached)).toThrow(/option "cache" must be off.*received true \(boolean\)/);
    const coalesced = makeBreaker({ coalesce: true } as Options);
    expect(() => fromOpossum(coalesced)).toThrow(/option "coalesce" must be off/);
  });

  it('checks its own options', () => {
    const breaker = makeBreaker();
    expect(() => fromOpossum(breaker, { clock: {} as never })).toThrow(
      new TypeError('fromOpossum: option "clock" must be a Clock (an object with now, schedule and cancel functions); received an object'),
    );
    expect(() => fromOpossum(breaker, { timeout: 5 } as never)).toThrow(/unknown option "timeout"; known options are clock, customAction/);
    expect(() => fromOpossum(breaker, 5 as never)).toThrow(/options must be an object; received 5/);
  });

  it('uses the injected clock for retryAfterMs', async () => {
    let now = 1_000;
    const clock = { now: () => now, schedule: () => 0, cancel: () => {} };
    const breaker = makeBreaker({ volumeThreshold: 1, resetTimeout: 500 });
    const policy = fromOpossum(breaker, { clock });
    await policy.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    now += 120;
    const error = await policy.execute(() => 1).catch((e: unknown) => e);
    expect((error as BrokenCircuitError).retryAfterMs).toBe(380);
  });
});

describe('fromOpossum: the call context and its signal (what mutation testing showed unpinned)', () => {
  /** A custom action that keeps the context it is given, then runs the work. */
  function keepingBreaker(options: Options, seen: { context?: { signal: AbortSignal; attempt: number } }) {
    const breaker = new CircuitBreaker(
      (run: (context?: unknown) => Promise<unknown>, context: { signal: AbortSignal; attempt: number }) => {
        seen.context = context;
        return run(context);
      },
      { name: 'dep', ...options },
    );
    breakers.push(breaker as CircuitBreaker);
    return fromOpossum(breaker as unknown as OpossumBreaker, { customAction: true });
  }

  it("without opossum's timeout, the action's context signal is the caller's own, or one never aborted", async () => {
    const seen: { context?: { signal: AbortSignal; attempt: number } } = {};
    const policy = keepingBreaker({ timeout: false }, seen);
    await policy.execute(() => 'ok');
    expect(seen.context!.signal).toBeInstanceOf(AbortSignal);
    expect(seen.context!.signal.aborted).toBe(false);
    const controller = new AbortController();
    track(policy.execute(() => never(), { signal: controller.signal }));
    await flush();
    controller.abort('caller left');
    expect(seen.context!.signal.aborted).toBe(true);
    expect(seen.context!.signal.reason).toBe('caller left');
  });

  it("with opossum's timeout and a caller signal, the timeout aborts that call's work, and every read gives the same signal", async () => {
    const seen: { context?: { signal: AbortSignal; attempt: number } } = {};
    const policy = keepingBreaker({ timeout: 100 }, seen);
    const controller = new AbortController();
    let workSignal: AbortSignal | undefined;
    const call = track(policy.execute((ctx) => ((workSignal = ctx.signal), never()), { signal: controller.signal }));
    await flush();
    const first = seen.context!.signal;
    expect(seen.context!.signal).toBe(first);
    await vi.advanceTimersByTimeAsync(100);
    expect(call.error).toBeInstanceOf(TimeoutError);
    expect(workSignal!.aborted).toBe(true);
    expect(workSignal!.reason).toBe(call.error);
    expect(first.aborted).toBe(true);
    expect(controller.signal.aborted).toBe(false); // the caller's own signal is left alone
  });

  it("with opossum's timeout, work that reads its signal only after the caller aborted gets it aborted with the caller's reason", async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 100 }));
    const controller = new AbortController();
    let read: (() => AbortSignal) | undefined;
    const call = track(policy.execute((ctx) => ((read = () => ctx.signal), never()), { signal: controller.signal }));
    await flush();
    controller.abort('caller left');
    await flush();
    expect(call.error).toBe('caller left');
    expect(read!().aborted).toBe(true);
    expect(read!().reason).toBe('caller left');
  });

  it("with opossum's timeout, a signal first read after the call settled adds no listener to the caller's signal", async () => {
    const policy = fromOpossum(makeBreaker({ timeout: 100 }));
    const controller = new AbortController();
    let read: (() => AbortSignal) | undefined;
    expect(await policy.execute((ctx) => ((read = () => ctx.signal), 'ok'), { signal: controller.signal })).toBe('ok');
    expect(read!().aborted).toBe(false);
    expect(abortListenerCount(controller.signal)).toBe(0);
  });
});

describe('fromOpossum: messages and the breaker check (what mutation testing showed unpinned)', () => {
  it('says the probe is in flight when a half-open breaker refuses, and names the capacity when it is full', async () => {
    const breaker = makeBreaker({ volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: 1_000 });
    const policy = fromOpossum(breaker);
    await trip(policy);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(breaker.halfOpen).toBe(true);
    const probe = track(policy.execute(() => never()));
    const refused = await policy.execute(() => 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BrokenCircuitError);
    expect((refused as Error).message).toBe('the opossum breaker "dep" is half-open and its probe is in flight: the call was not made');
    expect(probe.status).toBe('pending');
    const full = fromOpossum(makeBreaker({ capacity: 1 }));
    track(full.execute(() => never()));
    const locked = await full.execute(() => 1).catch((e: unknown) => e);
    expect((locked as Error).message).toBe('the opossum breaker "dep" already runs its capacity of 1 calls: the call was not made');
  });

  it('names the other action in its refusal when it has a name', () => {
    function myAction(run: () => Promise<unknown>): Promise<unknown> {
      return run();
    }
    const named = new CircuitBreaker(myAction, { name: 'named' });
    const anonymous = new CircuitBreaker((run: () => Promise<unknown>) => run(), { name: 'anon' });
    Object.defineProperty(anonymous, 'action', { value: Object.defineProperty((run: () => Promise<unknown>) => run(), 'name', { value: '' }) });
    breakers.push(named as CircuitBreaker, anonymous as CircuitBreaker);
    expect(() => fromOpossum(named as unknown as OpossumBreaker)).toThrow(/"named" was built around another action \(myAction\), which would be called/);
    expect(() => fromOpossum(anonymous as unknown as OpossumBreaker)).toThrow(/"anon" was built around another action, which would be called/);
  });

  it('refuses an object lacking any one of fire, on and removeListener, even with an opossum-like class', () => {
    class Lookalike {
      static isOurError(): boolean {
        return false;
      }
    }
    const methods = { fire() {}, on() {}, removeListener() {} };
    for (const missing of ['fire', 'on', 'removeListener'] as const) {
      const value = Object.assign(new Lookalike(), methods);
      delete (value as unknown as Record<string, unknown>)[missing];
      Object.setPrototypeOf(value, Lookalike.prototype);
      expect(() => fromOpossum(value as unknown as OpossumBreaker)).toThrow(
        new TypeError(`fromOpossum: breaker must be an opossum CircuitBreaker; received an object without ${missing}`),
      );
    }
  });
});

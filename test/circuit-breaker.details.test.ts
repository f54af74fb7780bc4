/** Circuit breaker behaviours that the main suite left unpinned (found by mutation testing). */
import { describe, expect, it } from 'vitest';
import { circuitBreaker, type CircuitRejectEvent, isIsolatedCircuitError, pipeline, type Schedule } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { surfacedErrors, track } from './helpers.ts';

const fail = () => Promise.reject(new Error('down'));

describe('circuit breaker: details', () => {
  it('trip() opens a closed breaker for the open period and answers false in any other state', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, halfOpenAfterMs: 1_000 });
    expect(breaker.trip()).toBe(true);
    expect(breaker.state).toBe('open');
    expect(breaker.toJSON()).toEqual({ state: 'open', retryAfterMs: 1_000, consecutiveOpens: 1, lastOpenMs: 1_000 });
    expect(breaker.trip()).toBe(false);
    expect(breaker.toJSON().consecutiveOpens).toBe(1);
  });

  it("trip() reports its state change with the reason 'tripped'", () => {
    const breaker = circuitBreaker({ clock: new FakeClock() });
    const changes: unknown[] = [];
    breaker.onStateChange((e) => changes.push(e));
    breaker.trip();
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'tripped' }]);
  });

  it('a schedule that throws keeps the default open period the first time and the last period after', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const schedule: Schedule = {
      delayMs: () => {
        if (++calls === 2) return 700;
        throw new Error('schedule bug');
      },
    };
    const breaker = circuitBreaker({ clock, halfOpenAfterMs: schedule, minimumCalls: 1 });
    const errors = await surfacedErrors(async () => {
      await breaker.execute(fail).catch(() => {});
      await clock.flush();
    });
    expect(errors.map((e) => (e as Error).message)).toEqual(['schedule bug']);
    expect(breaker.toJSON().lastOpenMs).toBe(5_000); // the default halfOpenAfterMs
    await clock.advance(5_000);
    await breaker.execute(fail).catch(() => {}); // the probe fails: 700 ms
    expect(breaker.toJSON().lastOpenMs).toBe(700);
    await clock.advance(700);
    const again = await surfacedErrors(async () => {
      await breaker.execute(fail).catch(() => {});
      await clock.flush();
    });
    expect(again).toHaveLength(1);
    expect(breaker.toJSON().lastOpenMs).toBe(700);
  });

  it('an isolated refusal names the pipeline', async () => {
    const breaker = circuitBreaker();
    breaker.isolate();
    const error = await pipeline({ name: 'payments' }, breaker).execute(() => 'ok').catch((e: unknown) => e);
    expect(isIsolatedCircuitError(error)).toBe(true);
    expect((error as Error).message).toMatch(/^pipeline "payments": /);
  });

  it('a closed initial state starts the backoff afresh, whatever counts it carries', async () => {
    const clock = new FakeClock();
    const attempts: number[] = [];
    const breaker = circuitBreaker({
      clock,
      minimumCalls: 1,
      halfOpenAfterMs: { delayMs: (attempt) => (attempts.push(attempt), 100) },
      initialState: { state: 'closed', consecutiveOpens: 4, lastOpenMs: 900 },
    });
    await breaker.execute(fail).catch(() => {});
    expect(attempts).toEqual([1]);
  });

  it('an onSuccess or an onFailure listener alone gets each call its duration', async () => {
    const clock = new FakeClock();
    const ok = circuitBreaker({ clock });
    const successes: number[] = [];
    ok.onSuccess((e) => successes.push(e.durationMs));
    const slowOk = ok.execute(() => new Promise((r) => clock.schedule(() => r('ok'), 30)));
    await clock.advance(30);
    await slowOk;
    expect(successes).toEqual([30]);

    const failing = circuitBreaker({ clock });
    const failures: number[] = [];
    failing.onFailure((e) => failures.push(e.durationMs));
    const slowFail = failing.execute(() => new Promise((_, reject) => clock.schedule(() => reject(new Error('x')), 40))).catch(() => {});
    await clock.advance(40);
    await slowFail;
    expect(failures).toEqual([40]);
  });

  it('without slowCallMs, a successful probe closes the breaker even when calls are timed for a listener', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 100 });
    breaker.onSuccess(() => {});
    await breaker.execute(fail).catch(() => {});
    await clock.advance(100);
    await breaker.execute(() => 'ok');
    expect(breaker.state).toBe('closed');
  });

  it('asks handle about failures only, so a handle that refuses undefined still lets successes close the breaker', async () => {
    const clock = new FakeClock();
    const asked: unknown[] = [];
    const breaker = circuitBreaker({
      clock,
      minimumCalls: 1,
      halfOpenAfterMs: 100,
      handle: (e) => (asked.push(e), e instanceof Error),
    });
    await breaker.execute(fail).catch(() => {});
    await clock.advance(100);
    await breaker.execute(() => 'ok');
    expect(breaker.state).toBe('closed');
    expect(asked).toHaveLength(1);
  });

  it('a call arriving after the probe deadline reopens the breaker and is refused as open, with the open period', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 100, probeDeadlineMs: 50 });
    const rejects: CircuitRejectEvent[] = [];
    breaker.onReject((e) => rejects.push(e));
    await breaker.execute(fail).catch(() => {});
    await clock.advance(100);
    track(breaker.execute(() => new Promise(() => {}))); // the probe hangs
    await clock.advance(50);
    const refused = await breaker.execute(() => 'ok').catch((e: unknown) => e);
    expect(rejects.map((e) => e.state)).toEqual(['open']);
    expect((refused as { retryAfterMs: number }).retryAfterMs).toBe(100);
  });

  it('reports a call refused while the probes are out as refused in half-open', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 100 });
    const rejects: CircuitRejectEvent[] = [];
    breaker.onReject((e) => rejects.push(e));
    await breaker.execute(fail).catch(() => {});
    await clock.advance(100);
    track(breaker.execute(() => new Promise(() => {})));
    await breaker.execute(() => 'ok').catch(() => {});
    expect(rejects.map((e) => e.state)).toEqual(['half-open']);
  });

  it('a probe of an earlier half-open period frees no slot of the current one, even when admitted in the same ms', async () => {
    const clock = new FakeClock();
    const breaker = circuitBreaker({ clock, halfOpenAfterMs: 0, halfOpenProbes: 2, initialState: { state: 'half-open' } });
    const settle: ((ok: boolean) => void)[] = [];
    const probe = () =>
      breaker.execute(() => new Promise((resolve, reject) => settle.push((ok) => (ok ? resolve('ok') : reject(new Error('down'))))));
    const stale = [track(probe()), track(probe())];
    settle[0]!(false); // reopens; with a zero open period it is half-open again at once, in the same ms
    await clock.flush();
    expect(breaker.state).toBe('half-open');
    track(probe());
    track(probe());
    settle[1]!(true); // the earlier period's probe ends
    await clock.flush();
    const extra = await breaker.execute(() => 'ok').catch((e: unknown) => e);
    expect(extra).toBeInstanceOf(Error);
    expect(stale[1]!.status).toBe('fulfilled');
  });

  it('time-window buckets start when the breaker is created, so a call counts for exactly window.ms', async () => {
    const clock = new FakeClock(30); // not a multiple of the 100 ms bucket
    const breaker = circuitBreaker({ clock, minimumCalls: 2, failureRateThreshold: 1, window: { kind: 'time', ms: 1_000, buckets: 10 } });
    await breaker.execute(fail).catch(() => {});
    await clock.advance(999); // t = 1029: the first failure is still in the window
    await breaker.execute(fail).catch(() => {});
    expect(breaker.state).toBe('open');
  });

  it('names the option of a window that is not an object', () => {
    expect(() => circuitBreaker({ window: 5 as never })).toThrow(new TypeError('circuitBreaker: option "window" must be an object; received 5'));
  });

  it('refuses a function as the open-period schedule, even one with a delayMs method', () => {
    const fn = Object.assign(() => 100, { delayMs: () => 100 });
    expect(() => circuitBreaker({ halfOpenAfterMs: fn as never })).toThrow(TypeError);
  });

  it("points users of opossum's and cockatiel's option names at the breaker's own", () => {
    const hints: [string, RegExp][] = [
      ['volumeThreshold', /\(opossum's volumeThreshold is minimumCalls \(default 20, opossum's 0\)\)/],
      ['rollingCountTimeout', /\(opossum's rollingCountTimeout is window: \{ kind: 'time', ms \}\)/],
      ['rollingCountBuckets', /\(opossum's rollingCountBuckets is window: \{ kind: 'time', buckets \}\)/],
      ['timeout', /\(put a timeout\(\{ ms \}\) inside the breaker instead\)/],
      ['capacity', /\(put a bulkhead\(\{ maxConcurrent \}\) around the breaker instead\)/],
      ['breaker', /\(cockatiel's breaker is failureRateThreshold, minimumCalls and window\)/],
      ['errorFilter', /\(opossum's errorFilter is handle, inverted: handle returns true for the errors that count as failures\)/],
    ];
    for (const [option, hint] of hints) {
      expect(() => circuitBreaker({ [option]: 1 } as never)).toThrow(hint);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { type Chain, isIsolatedCircuitError, pipeline, PolicyBase, rollout, ROLLOUT_DEFAULTS, type RolloutRollback, type Scope, timeout } from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { abortListenerCount, delayed, never, track } from './helpers.ts';

const stable = (): string => 'stable';
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('rollout', () => {
  it('sends no call to the experiment while the share is 0, and every call while it is 1', async () => {
    const flag = { share: 0 };
    const clock = new FakeClock();
    const r = rollout({ experimental: () => 'new', share: () => flag.share, rampStep: 1, clock });
    expect(await r.execute(stable)).toBe('stable');
    flag.share = 1;
    expect(await r.execute(stable)).toBe('new');
    expect(r.share).toBe(1);
    expect(r.requestedShare).toBe(1);
  });

  it('ramps a jump larger than rampStep, one step per rampEveryMs; lowering applies at once', async () => {
    const flag = { share: 0 };
    const clock = new FakeClock();
    const changes: [number, number, number][] = [];
    const r = rollout({ experimental: () => 'new', share: () => flag.share, rampStep: 0.05, rampEveryMs: 1_000, clock, random: () => 0.5 });
    r.onShareChange((e) => changes.push([e.from, e.to, e.requested]));
    flag.share = 0.2; // the seed's mistake: 0% to 20% at once
    await r.execute(stable);
    expect(r.share).toBe(0.05);
    await clock.advance(999);
    await r.execute(stable);
    expect(r.share).toBe(0.05);
    await clock.advance(1);
    await r.execute(stable);
    expect(r.share).toBeCloseTo(0.1, 12);
    await clock.advance(5_000); // an idle ramp does not jump: one step per call after the interval
    await r.execute(stable);
    expect(r.share).toBeCloseTo(0.15, 12);
    flag.share = 0.02;
    await r.execute(stable);
    expect(r.share).toBe(0.02);
    expect(changes.map(([, to]) => Number(to.toFixed(2)))).toEqual([0.05, 0.1, 0.15, 0.02]);
    expect(changes.every(([, , requested], i) => requested === (i < 3 ? 0.2 : 0.02))).toBe(true);
  });

  it('refuses a flag value outside 0 to 1 (and a flag that throws): the last valid share stays', async () => {
    const flag = { share: 1 as unknown };
    const clock = new FakeClock();
    const refused: unknown[] = [];
    const r = rollout({ experimental: () => 'new', share: () => flag.share as number, rampStep: 1, clock });
    r.onShareRefused((e) => refused.push(e.value));
    expect(await r.execute(stable)).toBe('new');
    for (const bad of [20, -0.1, Number.NaN, '0.2', undefined]) {
      flag.share = bad;
      expect(await r.execute(stable)).toBe('new');
    }
    const boom = new Error('flag service down');
    const throwing = rollout({ experimental: () => 'new', share: () => { throw boom; }, clock });
    expect(await throwing.execute(stable)).toBe('stable');
    expect(refused).toEqual([20, -0.1, Number.NaN, '0.2', undefined]);
    expect(r.requestedShare).toBe(1);
  });

  it('validates its options at construction, naming the option, the rule and the value', () => {
    const experimental = (): number => 1;
    expect(() => rollout({ experimental, share: 20 })).toThrow(
      'rollout: option "share" must be a share from 0 to 1, or a function returning one (the feature flag); received 20',
    );
    expect(() => rollout({ experimental, share: 1.5 })).toThrow(RangeError);
    expect(() => rollout({ experimental, share: Number.NaN })).toThrow(TypeError);
    expect(() => rollout({ share: 0 } as never)).toThrow('rollout: option "experimental" is required; received undefined');
    expect(() => rollout({ experimental } as never)).toThrow('rollout: option "share" is required; received undefined');
    expect(() => rollout({ experimental, share: 0, rampStep: 0 })).toThrow(/option "rampStep" must be a number greater than 0 and at most 1; received 0/);
    expect(() => rollout({ experimental, share: 0, errorRateMargin: 2 })).toThrow(/option "errorRateMargin"/);
    expect(() => rollout({ experimental, share: 0, minimumCalls: 0 })).toThrow(/option "minimumCalls" must be an integer from 1/);
    expect(() => rollout({ experimental, share: 0, window: { ms: 1_000, buckets: 3 } })).toThrow(/window.ms" must be a multiple of window.buckets/);
    expect(() => rollout({ experimental, share: 0, rampEveryMs: -1 })).toThrow(/option "rampEveryMs"/);
    expect(() => rollout({ experimental, share: 0, percentage: 20 } as never)).toThrow(/unknown option "percentage"/);
    expect(() => rollout({ experimental, share: 0, breaker: { failureRateThreshold: 50 } })).toThrow(/circuitBreaker: option "failureRateThreshold"/);
  });

  it('answers from the stable path when the experiment fails, and does not count the caller abort', async () => {
    const clock = new FakeClock();
    const failed: unknown[] = [];
    const r = rollout({ experimental: () => Promise.reject(new Error('new code broke')), share: 1, rampStep: 1, clock, minimumCalls: 1_000 });
    r.onExperimentFailed((e) => failed.push(e.error));
    expect(await r.execute(stable)).toBe('stable');
    expect(failed).toHaveLength(1);
    const controller = new AbortController();
    const reason = new Error('user left');
    const waiting = rollout({ experimental: ({ signal }) => delayed(clock, 1_000, 'new', signal), share: 1, rampStep: 1, clock });
    const call = track(waiting.execute(stable, { signal: controller.signal }));
    await Promise.resolve();
    controller.abort(reason);
    await clock.advance(0);
    expect(call.status).toBe('rejected');
    expect(call.error).toBe(reason);
    expect(waiting.inFlight).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("the experiment's own breaker opens on its failures, and then the stable path answers without calling it", async () => {
    const clock = new FakeClock();
    let calls = 0;
    const r = rollout({
      experimental: () => {
        calls++;
        throw new Error('down');
      },
      share: 1,
      rampStep: 1,
      clock,
      minimumCalls: 1_000,
      breaker: { minimumCalls: 5, halfOpenAfterMs: 10_000 },
    });
    for (let i = 0; i < 20; i++) expect(await r.execute(stable)).toBe('stable');
    expect(calls).toBe(5);
    expect(r.breaker.state).toBe('open');
  });

  it('rolls back when the error rate is worse than the stable path by the margin, records why, stays off until released', async () => {
    const clock = new FakeClock();
    const random = seededRandom(7);
    const rollbacks: RolloutRollback[] = [];
    let exposures = 0;
    const r = rollout({
      experimental: () => (random() < 0.3 ? Promise.reject(new Error('new code broke')) : 'new'),
      share: 0.5,
      rampStep: 1,
      minimumCalls: 20,
      errorRateMargin: 0.1,
      clock,
      random: seededRandom(1),
      breaker: { minimumCalls: 1_000 },
    });
    r.onRollback((e) => rollbacks.push(e));
    r.onExposure(() => exposures++);
    const answers: string[] = [];
    for (let i = 0; i < 200; i++) answers.push(await r.execute(stable));
    expect(rollbacks).toHaveLength(1);
    expect(rollbacks[0]).toMatchObject({ reason: 'error-rate', stableRate: 0 });
    expect(rollbacks[0]!.calls).toBeGreaterThanOrEqual(20);
    expect(rollbacks[0]!.experimentalRate).toBeGreaterThanOrEqual(0.1);
    expect(r.rolledBack).toBe(rollbacks[0]);
    expect(r.share).toBe(0);
    expect(r.breaker.state).toBe('isolated');
    const exposedAtRollback = exposures;
    expect(exposedAtRollback).toBe(rollbacks[0]!.calls);
    for (let i = 0; i < 50; i++) expect(await r.execute(stable)).toBe('stable');
    expect(exposures).toBe(exposedAtRollback);
    r.release();
    expect(r.rolledBack).toBeUndefined();
    expect(r.breaker.state).toBe('closed');
    for (let i = 0; i < 20; i++) await r.execute(stable);
    expect(exposures).toBeGreaterThan(exposedAtRollback);
    expect(answers).toContain('new');
  });

  it('rolls back from a reported signal (tickets per exposure) once the window holds minimumCalls', async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: () => 'new', share: 1, rampStep: 1, minimumCalls: 10, signalRateMargin: 0.1, clock });
    const rollbacks: RolloutRollback[] = [];
    r.onRollback((e) => rollbacks.push(e));
    for (let i = 0; i < 5; i++) await r.execute(stable);
    r.report('experimental', 5);
    expect(rollbacks).toHaveLength(0); // 5 calls: too few to judge
    for (let i = 0; i < 5; i++) await r.execute(stable);
    expect(rollbacks).toEqual([{ reason: 'signal-rate', atMs: 0, experimentalRate: 0.5, stableRate: 0, calls: 10 }]);
  });

  it('compares signals with the stable path: the same ticket rate on both is no reason to roll back', async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: () => 'new', share: 0.5, rampStep: 1, minimumCalls: 10, signalRateMargin: 0.1, clock, random: seededRandom(3) });
    for (let i = 0; i < 100; i++) {
      const answer = await r.execute(stable);
      if (i % 4 === 0) r.report(answer === 'new' ? 'experimental' : 'stable');
    }
    expect(r.rolledBack).toBeUndefined();
    for (let i = 0; i < 40; i++) {
      const answer = await r.execute(stable);
      if (answer === 'new') r.report('experimental', 2);
    }
    expect(r.rolledBack?.reason).toBe('signal-rate');
    expect(() => r.report('beta' as never)).toThrow(/path must be "experimental" or "stable"/);
    expect(() => r.report('stable', 0)).toThrow(/count must be an integer/);
  });

  it('the flag at 0 is the kill switch: new calls go stable and calls in flight are cut, their callers get the stable answer', async () => {
    const clock = new FakeClock();
    const flag = { share: 1 };
    let aborted: unknown;
    const r = rollout({
      experimental: ({ signal }) => {
        signal.addEventListener('abort', () => (aborted = signal.reason));
        return never<string>();
      },
      share: () => flag.share,
      rampStep: 1,
      clock,
    });
    const calls = [track(r.execute(stable)), track(r.execute(stable))];
    await Promise.resolve();
    expect(r.inFlight).toBe(2);
    flag.share = 0;
    expect(await r.execute(stable)).toBe('stable');
    await settle();
    expect(calls.map((c) => c.value)).toEqual(['stable', 'stable']);
    expect(isIsolatedCircuitError(aborted)).toBe(true);
    expect(r.inFlight).toBe(0);
    expect(r.breaker.state).toBe('isolated');
    flag.share = 1; // on again: the flag's isolation is released, and the share climbs at the ramp's pace
    expect(await r.execute(stable)).toBe('stable');
    expect(r.breaker.state).toBe('closed');
    expect(r.share).toBe(0);
    await clock.advance(60_000);
    track(r.execute(stable));
    expect(r.share).toBe(1);
    expect(r.inFlight).toBe(1);
  });

  it("isolate() on the experiment's breaker cuts it in one call, whatever the flag says", async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: () => never<string>(), share: 1, rampStep: 1, clock });
    const inFlight = track(r.execute(stable));
    await Promise.resolve();
    const handle = r.breaker.isolate();
    await settle();
    expect(inFlight.value).toBe('stable');
    expect(r.share).toBe(0);
    expect(await r.execute(stable)).toBe('stable');
    handle.release();
    expect(r.share).toBe(1);
  });

  it('a stable call a layer outside stopped (an outer timeout) is not a failure of the stable path', async () => {
    const clock = new FakeClock();
    const rollbacks: RolloutRollback[] = [];
    let n = 0;
    const r = rollout({
      experimental: () => (n++ % 2 === 0 ? Promise.reject(new Error('new code broke')) : 'new'), // fails half of the time
      share: 0.5,
      rampStep: 1,
      minimumCalls: 20,
      errorRateMargin: 0.3,
      clock,
      random: seededRandom(3),
      breaker: { minimumCalls: 1_000 },
    });
    r.onRollback((e) => rollbacks.push(e));
    const p = pipeline(timeout({ ms: 50, clock }), r);
    // The stable path never answers in time: the outer timeout stops each of its calls.
    for (let i = 0; i < 120 && rollbacks.length === 0; i++) {
      const call = track(p.execute(({ signal }) => delayed(clock, 10_000, 'stable', signal)));
      await clock.advance(50);
      await settle();
      expect(call.status).not.toBe('pending');
    }
    // Counted as stable failures, the stopped calls would make the stable path look worse than the experiment.
    expect(rollbacks).toHaveLength(1);
    expect(rollbacks[0]).toMatchObject({ reason: 'error-rate', stableRate: 0 });
    expect(rollbacks[0]!.experimentalRate).toBeGreaterThanOrEqual(0.3);
  });

  it('inside a pipeline, layers inside it apply to the stable path; an outer timeout still ends the experiment', async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: ({ signal }) => delayed(clock, 5_000, 'new', signal), share: 1, rampStep: 1, clock });
    const p = pipeline(timeout({ ms: 100, clock }), r);
    const call = track(p.execute(stable));
    await clock.advance(100);
    expect(call.status).toBe('rejected');
    expect((call.error as Error).name).toBe('TimeoutError');
    expect(r.inFlight).toBe(0);
    await clock.advance(10_000);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('rollout: what mutation testing showed unpinned', () => {
  /** A layer counting the calls that pass through it. */
  class Counter extends PolicyBase {
    readonly kind = 'counter';
    calls = 0;
    _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
      this.calls++;
      return chain.next(index + 1, scope, attempt);
    }
  }
  const fail = (): Promise<never> => Promise.reject(new Error('broke'));

  it("is of kind 'rollout', with pinned defaults", () => {
    expect(rollout({ experimental: () => 1, share: 0 }).kind).toBe('rollout');
    expect(ROLLOUT_DEFAULTS).toEqual({ rampStep: 0.05, rampEveryMs: 60_000, minimumCalls: 50, errorRateMargin: 0.05, signalRateMargin: 0.05, window: { ms: 60_000, buckets: 6 } });
  });

  it('forgets experimental calls older than the default 60 s window', async () => {
    const clock = new FakeClock();
    let broken = true;
    const r = rollout({ experimental: () => (broken ? fail() : 'new'), share: 1, rampStep: 1, minimumCalls: 10, clock, breaker: { minimumCalls: 1_000 } });
    for (let i = 0; i < 9; i++) await r.execute(stable);
    await clock.advance(61_000);
    broken = false;
    for (let i = 0; i < 10; i++) await r.execute(stable);
    expect(r.rolledBack).toBeUndefined();
  });

  it('judges a report against the window as it is now, and rolls back on an experimental report at once', async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: () => 'new', share: 1, rampStep: 1, minimumCalls: 10, clock, window: { ms: 10_000, buckets: 10 } });
    for (let i = 0; i < 10; i++) await r.execute(stable);
    await clock.advance(20_000); // those ten calls have left the window
    r.report('experimental', 5);
    expect(r.rolledBack).toBeUndefined();
    // signals reported while too few calls are in the window, then forgotten
    await r.execute(stable);
    r.report('experimental', 5);
    await clock.advance(20_000);
    for (let i = 0; i < 10; i++) await r.execute(stable);
    expect(r.rolledBack).toBeUndefined();
    r.report('experimental', 1); // 1 signal per 10 calls: 0.1 ≥ 0.05, judged on the report itself
    expect(r.rolledBack).toMatchObject({ reason: 'signal-rate', experimentalRate: 0.1, stableRate: 0, calls: 10 });
  });

  it('a stable report is not a reason to judge the experiment; stable calls that left the window no longer count', async () => {
    const clock = new FakeClock();
    const draw = { value: 0.9 }; // share 0.5: 0.9 goes stable, 0.1 to the experiment
    let experimentFails = false;
    const r = rollout({
      experimental: () => (experimentFails ? fail() : 'new'),
      share: 0.5,
      rampStep: 1,
      minimumCalls: 10,
      clock,
      random: () => draw.value,
      breaker: { minimumCalls: 1_000 },
    });
    for (let i = 0; i < 10; i++) await r.execute(fail).catch(() => {}); // t = 0: ten stable failures
    await clock.advance(35_000);
    draw.value = 0.1;
    for (let i = 0; i < 10; i++) {
      experimentFails = i % 2 === 0; // half of the experiment's calls fail
      await r.execute(stable);
    }
    expect(r.rolledBack).toBeUndefined(); // 0.5 against the stable path's 1.0
    await clock.advance(30_000); // t = 65 s: the stable failures have left the window, the experiment's have not
    r.report('stable');
    expect(r.rolledBack).toBeUndefined(); // not judged on a stable report
    r.report('experimental');
    expect(r.rolledBack).toMatchObject({ reason: 'error-rate', experimentalRate: 0.5, stableRate: 0 });
  });

  it("reports the stable path's error rate as failures per stable call in the rollback", async () => {
    const clock = new FakeClock();
    const draws = [0.9, 0.9, 0.9, 0.9];
    const r = rollout({ experimental: fail, share: 0.5, rampStep: 1, minimumCalls: 10, clock, random: () => draws.shift() ?? 0.1, breaker: { minimumCalls: 1_000 } });
    await r.execute(fail).catch(() => {});
    for (let i = 0; i < 3; i++) await r.execute(stable);
    for (let i = 0; i < 10; i++) await r.execute(stable);
    expect(r.rolledBack).toMatchObject({ reason: 'error-rate', experimentalRate: 1, stableRate: 0.25, calls: 10 });
  });

  it('does not roll back an error rate within the margin, and rolls back a signal rate exactly at it', async () => {
    const clock = new FakeClock();
    let n = 0;
    const r = rollout({ experimental: () => (n++ === 0 ? fail() : 'new'), share: 1, rampStep: 1, minimumCalls: 50, clock, breaker: { minimumCalls: 1_000 } });
    for (let i = 0; i < 50; i++) await r.execute(stable); // 1 failure in 50: 0.02 < 0.05
    expect(r.rolledBack).toBeUndefined();
    const s = rollout({ experimental: () => 'new', share: 1, rampStep: 1, minimumCalls: 10, signalRateMargin: 0.1, clock });
    for (let i = 0; i < 10; i++) await s.execute(stable);
    s.report('experimental'); // 1 / 10 = 0.1: the margin itself
    expect(s.rolledBack).toMatchObject({ reason: 'signal-rate' });
  });

  it('a rollback reports the share falling to 0 once; while rolled back the share neither moves nor is judged again', async () => {
    const clock = new FakeClock();
    const changes: [number, number][] = [];
    const rollbacks: unknown[] = [];
    const r = rollout({ experimental: () => 'new', share: 0.5, rampStep: 0.1, rampEveryMs: 1_000, minimumCalls: 10, clock, random: () => 0 });
    r.onShareChange((e) => changes.push([e.from, e.to]));
    r.onRollback((e) => rollbacks.push(e));
    for (let i = 0; i < 10; i++) await r.execute(stable);
    r.report('experimental', 5);
    expect(rollbacks).toHaveLength(1);
    expect(changes.at(-1)).toEqual([0.1, 0]);
    const before = changes.length;
    for (let i = 0; i < 5; i++) {
      await clock.advance(1_000);
      expect(await r.execute(stable)).toBe('stable');
    }
    r.report('experimental', 5); // no second rollback
    expect(rollbacks).toHaveLength(1);
    expect(changes.length).toBe(before);
    r.release();
    expect(r.breaker.state).toBe('closed'); // the one isolation, released
    await r.execute(stable);
    expect(r.share).toBe(0.1); // climbs again from 0, one step
    expect(r.rolledBack).toBeUndefined();
  });

  it('a rollback while the share is already 0 reports no share change', async () => {
    const clock = new FakeClock();
    const flag = { share: 1 };
    const changes: [number, number][] = [];
    const r = rollout({ experimental: () => 'new', share: () => flag.share, rampStep: 1, minimumCalls: 10, clock });
    for (let i = 0; i < 10; i++) await r.execute(stable);
    flag.share = 0;
    await r.execute(stable);
    r.onShareChange((e) => changes.push([e.from, e.to]));
    r.report('experimental', 5);
    expect(r.rolledBack).toMatchObject({ reason: 'signal-rate' });
    expect(changes).toEqual([]);
  });

  it('release() starts both paths afresh, and does nothing without a rollback', async () => {
    const clock = new FakeClock();
    const draw = { value: 0.1 };
    let experimentFails = false;
    const r = rollout({ experimental: () => (experimentFails ? fail() : 'new'), share: 0.5, rampStep: 1, minimumCalls: 10, clock, random: () => draw.value, breaker: { minimumCalls: 1_000 } });
    expect(() => r.release()).not.toThrow();
    for (let i = 0; i < 10; i++) await r.execute(stable);
    draw.value = 0.9;
    for (let i = 0; i < 10; i++) await r.execute(fail).catch(() => {}); // the stable path fails
    draw.value = 0.1;
    r.report('experimental', 10); // rolled back on signals
    expect(r.rolledBack).toMatchObject({ reason: 'signal-rate' });
    r.release();
    experimentFails = true;
    for (let i = 0; i < 10; i++) await r.execute(stable);
    // judged against a fresh stable path (no calls), not the failures before the release
    expect(r.rolledBack).toMatchObject({ reason: 'error-rate', experimentalRate: 1, stableRate: 0, calls: 10 });
  });

  it('release() forgets the signals reported before it', async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: () => 'new', share: 1, rampStep: 1, minimumCalls: 10, clock });
    for (let i = 0; i < 10; i++) await r.execute(stable);
    r.report('experimental', 10);
    expect(r.rolledBack).toMatchObject({ reason: 'signal-rate' });
    r.release();
    for (let i = 0; i < 10; i++) await r.execute(stable); // ten healthy calls and no new signal
    expect(r.rolledBack).toBeUndefined();
  });

  it('every path passes the call on to the next layer down, once', async () => {
    const clock = new FakeClock();
    const flag = { share: 0 };
    const draw = { value: 0.9 };
    const outer = new Counter();
    const r = rollout({ experimental: fail, share: () => flag.share, rampStep: 1, clock, random: () => draw.value, breaker: { minimumCalls: 1_000 }, minimumCalls: 1_000 });
    let work = 0;
    const p = pipeline(outer, r);
    expect(await p.execute(() => (work++, 'stable'))).toBe('stable'); // share 0
    flag.share = 0.5;
    expect(await p.execute(() => (work++, 'stable'))).toBe('stable'); // the control path
    draw.value = 0.1;
    expect(await p.execute(() => (work++, 'stable'))).toBe('stable'); // the experiment failed
    expect([outer.calls, work]).toEqual([3, 3]);
  });

  it('draws no random number at share 0; a draw equal to the share goes stable; an isolated experiment is not tried', async () => {
    const clock = new FakeClock();
    let draws = 0;
    const failed: unknown[] = [];
    const zero = rollout({ experimental: () => 'new', share: 0, clock, random: () => (draws++, 0) });
    await zero.execute(stable);
    expect(draws).toBe(0);
    const half = rollout({ experimental: () => 'new', share: 0.5, rampStep: 1, clock, random: () => 0.5 });
    expect(await half.execute(stable)).toBe('stable');
    const isolated = rollout({ experimental: () => 'new', share: 1, rampStep: 1, clock, random: () => 0 });
    isolated.onExperimentFailed((e) => failed.push(e.error));
    isolated.breaker.isolate();
    expect(await isolated.execute(stable)).toBe('stable');
    expect(failed).toEqual([]);
  });

  it('a caller abort during the experiment neither runs the stable path nor leaves the exposure or a listener behind', async () => {
    const clock = new FakeClock();
    let stableCalls = 0;
    const r = rollout({ experimental: () => never(), share: 1, rampStep: 1, clock });
    const caller = new AbortController();
    const call = track(r.execute(() => (stableCalls++, 'stable'), { signal: caller.signal }));
    await clock.flush();
    expect(r.inFlight).toBe(1);
    caller.abort(new Error('caller left'));
    await clock.flush();
    expect(call.status).toBe('rejected');
    expect(r.inFlight).toBe(0); // the work ignores its signal: the exposure still ends
    expect(stableCalls).toBe(0);
    const shutdown = new AbortController();
    const done = rollout({ experimental: () => 'new', share: 1, rampStep: 1, clock });
    expect(await done.execute(stable, { signal: shutdown.signal })).toBe('new');
    expect(abortListenerCount(shutdown.signal)).toBe(0);
  });

  it("the breaker opening cuts nothing in flight; an isolation empties the in-flight set at once", async () => {
    const clock = new FakeClock();
    let n = 0;
    const r = rollout({
      experimental: () => (n++ === 0 ? delayed(clock, 100, 'slow new') : fail()),
      share: 1,
      rampStep: 1,
      minimumCalls: 1_000,
      clock,
      breaker: { minimumCalls: 2, failureRateThreshold: 0.5, halfOpenAfterMs: 10_000 },
    });
    const slow = track(r.execute(stable));
    await r.execute(stable);
    await r.execute(stable);
    expect(r.breaker.state).toBe('open');
    await clock.advance(100);
    expect(slow.value).toBe('slow new');
    const s = rollout({ experimental: () => never(), share: 1, rampStep: 1, clock });
    track(s.execute(stable));
    track(s.execute(stable));
    await clock.flush();
    expect(s.inFlight).toBe(2);
    s.breaker.isolate();
    expect(s.inFlight).toBe(0);
  });

  it("does not count its breaker's refusals as the experiment's failures", async () => {
    const clock = new FakeClock();
    const r = rollout({ experimental: fail, share: 1, rampStep: 1, minimumCalls: 10, clock, breaker: { minimumCalls: 5, halfOpenAfterMs: 60_000 } });
    for (let i = 0; i < 20; i++) expect(await r.execute(stable)).toBe('stable');
    expect(r.breaker.state).toBe('open');
    expect(r.rolledBack).toBeUndefined(); // 5 failures, then refusals: fewer than 10 calls judged
  });

  it("a stable call's failure reaches the caller and counts in the stable path's rate", async () => {
    const clock = new FakeClock();
    const draw = { value: 0.9 };
    let n = 0;
    const r = rollout({ experimental: () => (n++ % 2 === 0 ? fail() : 'new'), share: 0.5, rampStep: 1, minimumCalls: 10, clock, random: () => draw.value, breaker: { minimumCalls: 1_000 } });
    const down = new Error('stable down');
    for (let i = 0; i < 10; i++) {
      if (i % 2 === 0) await expect(r.execute(() => Promise.reject(down))).rejects.toBe(down);
      else expect(await r.execute(stable)).toBe('stable');
    }
    draw.value = 0.1;
    for (let i = 0; i < 10; i++) await r.execute(stable); // the experiment fails half its calls, as the stable path does
    expect(r.rolledBack).toBeUndefined();
  });

  it('reports what a flag that throws threw, and checks the count of a report', () => {
    const refused: unknown[] = [];
    const boom = new Error('flag service down');
    const r = rollout({ experimental: () => 'new', share: () => { throw boom; }, clock: new FakeClock() });
    r.onShareRefused((e) => refused.push(e.value));
    return r.execute(stable).then(() => {
      expect(refused).toEqual([boom]);
      expect(() => r.report('stable', 1_000_001)).toThrow(/count must be an integer from 1 to 1000000; received 1000001/);
      expect(() => r.report('stable', 1_000_000)).not.toThrow();
    });
  });
});

describe('rollout: an isolation landing while a successful experimental call is passed on', () => {
  // The experimental work resolves; the isolation then lands `ticks` microtasks later.
  // Whatever the moment, an exposure still in flight when the isolation lands is cut,
  // and a cut exposure never counts in the experiment's statistics, even one whose
  // own result had already won the race. With minimumCalls 2, the one failure after
  // the release rolls the experiment back only if the first call counted.
  it.each(Array.from({ length: 12 }, (_, ticks) => ticks))('isolation %i microtasks after the work resolved', async (ticks) => {
    const clock = new FakeClock();
    let resolveFirst!: (value: string) => void;
    let calls = 0;
    const r = rollout({
      experimental: () => (++calls === 1 ? new Promise<string>((resolve) => (resolveFirst = resolve)) : Promise.reject(new Error('new code broke'))),
      share: 1,
      rampStep: 1,
      minimumCalls: 2,
      clock,
    });
    const first = track(r.execute(stable));
    await settle();
    expect(calls).toBe(1);
    resolveFirst('new');
    for (let i = 0; i < ticks; i++) await Promise.resolve();
    const cut = r.inFlight === 1;
    r.breaker.isolate().release();
    await settle();
    expect(first.status).toBe('fulfilled');
    expect(await r.execute(stable)).toBe('stable');
    expect(calls).toBe(2);
    expect(r.rolledBack === undefined).toBe(cut);
  });
});

/**
 * Model-based test of the circuit breaker: fast-check runs random sequences of
 * calls (started, then settled as successes, failures, ignored errors, slow
 * calls or caller aborts (slow ones count as slow), in any order and with any concurrency), clock
 * advances, state reads, isolations, releases and resets against the real
 * breaker and against a small reference model of the state machine, and
 * compares every admission, rejection, retryAfterMs, state change and snapshot.
 *
 * The model is written to be obviously right rather than fast: it keeps every
 * call of the closed state in a plain array and filters it on each decision.
 *
 * Invariants checked after every command, independently of the model:
 * - half-open never runs more than `halfOpenProbes` probes at once;
 * - every call settles at most once, and every call settles in the end;
 * - the breaker never leaves a timer behind (`clock.pendingTimers === 0`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  circuitBreaker,
  type CircuitBreakerOptions,
  type CircuitBreakerPolicy,
  type CircuitBreakerSnapshot,
  type CircuitState,
  exponential,
  IsolatedCircuitError,
  type IsolationHandle,
  type StateChangeEvent,
  type StateChangeReason,
} from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { type Tracked, track } from './helpers.ts';

// ---------------------------------------------------------------------------
// Configuration

interface Config {
  readonly failureRateThreshold: number;
  readonly minimumCalls: number;
  readonly window: { kind: 'time'; ms: number; buckets: number } | { kind: 'count'; calls: number };
  readonly slow: { ms: number; rate: number } | undefined;
  readonly halfOpen: { kind: 'fixed'; ms: number } | { kind: 'exponential'; initialMs: number; maxMs: number };
  readonly halfOpenProbes: number;
  readonly successesToClose: number;
}

const rates = [0.25, 0.5, 0.75, 1];

const configArb: fc.Arbitrary<Config> = fc
  .record({
    failureRateThreshold: fc.constantFrom(...rates),
    minimumCalls: fc.integer({ min: 1, max: 5 }),
    windowKind: fc.constantFrom('time' as const, 'count' as const),
    windowMs: fc.constantFrom(200, 400, 1_000),
    buckets: fc.constantFrom(1, 2, 4, 5, 10),
    extraCalls: fc.integer({ min: 0, max: 4 }),
    slow: fc.option(fc.record({ ms: fc.constantFrom(50, 100), rate: fc.constantFrom(...rates) }), { nil: undefined }),
    halfOpen: fc.oneof(
      fc.record({ kind: fc.constant('fixed' as const), ms: fc.constantFrom(0, 1, 100, 250, 500) }),
      fc.record({ kind: fc.constant('exponential' as const), initialMs: fc.constantFrom(50, 100), maxMs: fc.constantFrom(200, 400) }),
    ),
    halfOpenProbes: fc.integer({ min: 1, max: 3 }),
    successesToClose: fc.integer({ min: 1, max: 4 }),
  })
  .map((c) => ({
    failureRateThreshold: c.failureRateThreshold,
    minimumCalls: c.minimumCalls,
    window:
      c.windowKind === 'time'
        ? { kind: 'time' as const, ms: c.windowMs, buckets: c.buckets }
        : { kind: 'count' as const, calls: c.minimumCalls + c.extraCalls },
    slow: c.slow,
    halfOpen: c.halfOpen,
    halfOpenProbes: c.halfOpenProbes,
    successesToClose: c.successesToClose,
  }));

/** Errors the breaker's `handle` ignores. */
class IgnoredError extends Error {}

function optionsFor(config: Config, clock: FakeClock): CircuitBreakerOptions {
  return {
    clock,
    failureRateThreshold: config.failureRateThreshold,
    minimumCalls: config.minimumCalls,
    window: config.window,
    ...(config.slow ? { slowCallMs: config.slow.ms, slowCallRateThreshold: config.slow.rate } : {}),
    halfOpenAfterMs:
      config.halfOpen.kind === 'fixed'
        ? config.halfOpen.ms
        : exponential({ initialMs: config.halfOpen.initialMs, maxMs: config.halfOpen.maxMs, jitter: 'none' }),
    halfOpenProbes: config.halfOpenProbes,
    successesToClose: config.successesToClose,
    handle: (error) => !(error instanceof IgnoredError),
  };
}

// ---------------------------------------------------------------------------
// The reference model

type Admission =
  | { kind: 'admit'; probe: boolean }
  | { kind: 'reject'; error: 'isolated' }
  | { kind: 'reject'; error: 'broken'; retryAfterMs: number };

interface ModelCall {
  readonly generation: number;
  readonly probe: boolean;
  readonly startedAt: number;
}

interface CallRecord {
  readonly at: number;
  readonly failure: boolean;
  readonly slow: boolean;
}

type Outcome = 'success' | 'failure' | 'ignored' | 'abort';

class Model {
  now = 0;
  state: CircuitState = 'closed';
  generation = 0;
  openUntil = 0;
  probes = 0;
  probeSuccesses = 0;
  consecutiveOpens = 0;
  lastOpenMs = 0;
  isolations = 0;
  records: CallRecord[] = [];
  readonly events: StateChangeEvent[] = [];
  readonly pending: ModelCall[] = [];
  readonly handles: boolean[] = []; // released?

  readonly config: Config;
  constructor(config: Config) {
    this.config = config;
  }

  readState(): CircuitState {
    if (this.state === 'open' && this.now >= this.openUntil) this.transition('half-open', 'cooldown-elapsed');
    return this.state;
  }

  start(): Admission {
    if (this.state === 'isolated') return { kind: 'reject', error: 'isolated' };
    if (this.state === 'open') {
      if (this.now < this.openUntil) return { kind: 'reject', error: 'broken', retryAfterMs: Math.ceil(this.openUntil - this.now) };
      this.transition('half-open', 'cooldown-elapsed');
    }
    const probe = this.state === 'half-open';
    if (probe) {
      if (this.probes >= this.config.halfOpenProbes) return { kind: 'reject', error: 'broken', retryAfterMs: 0 };
      this.probes++;
    }
    this.pending.push({ generation: this.generation, probe, startedAt: this.now });
    return { kind: 'admit', probe };
  }

  settle(index: number, outcome: Outcome): void {
    const [call] = this.pending.splice(index, 1);
    const slow = this.config.slow !== undefined && this.now - call!.startedAt >= this.config.slow.ms;
    if (call!.generation !== this.generation) return;
    // A caller's abort is ignored, unless the call had run slowCallMs by then: a slow call, not a failure.
    if (outcome === 'ignored' || (outcome === 'abort' && !slow)) {
      if (call!.probe) this.probes--;
      return;
    }
    const failure = outcome === 'failure';
    if (call!.probe) {
      this.probes--;
      if (failure) this.open('probe-failed');
      else if (slow) this.open('probe-slow');
      else if (++this.probeSuccesses >= this.config.successesToClose) this.close('probes-succeeded');
      return;
    }
    this.records.push({ at: this.now, failure, slow });
    if (!failure && !slow) return;
    const window = this.window();
    const n = window.length;
    if (n < this.config.minimumCalls) return;
    const failures = window.filter((r) => r.failure).length;
    const slows = window.filter((r) => r.slow).length;
    if (failures >= this.config.failureRateThreshold * n) this.open('failure-rate');
    else if (this.config.slow !== undefined && slows >= this.config.slow.rate * n) this.open('slow-call-rate');
  }

  /** The calls of the closed state that are still in the window. */
  window(): CallRecord[] {
    const w = this.config.window;
    if (w.kind === 'count') return this.records.slice(-w.calls);
    const bucketMs = w.ms / w.buckets;
    const current = Math.floor(this.now / bucketMs);
    return this.records.filter((r) => Math.floor(r.at / bucketMs) > current - w.buckets);
  }

  isolate(): void {
    this.handles.push(false);
    if (this.isolations++ === 0) this.transition('isolated', 'isolated');
  }

  release(index: number): void {
    if (this.handles[index]) return;
    this.handles[index] = true;
    if (--this.isolations === 0) this.close('released');
  }

  reset(): void {
    this.consecutiveOpens = 0;
    this.lastOpenMs = 0;
    if (this.state === 'isolated') return;
    if (this.state === 'closed') {
      this.generation++;
      this.records = [];
    } else {
      this.close('reset');
    }
  }

  toJSON(): CircuitBreakerSnapshot {
    const state = this.readState();
    if (state === 'closed' || state === 'isolated') return { state: 'closed', retryAfterMs: 0, consecutiveOpens: 0, lastOpenMs: 0 };
    return {
      state,
      retryAfterMs: state === 'open' ? Math.max(0, Math.ceil(this.openUntil - this.now)) : 0,
      consecutiveOpens: this.consecutiveOpens,
      lastOpenMs: this.lastOpenMs,
    };
  }

  private open(reason: StateChangeReason): void {
    const n = ++this.consecutiveOpens;
    const h = this.config.halfOpen;
    const delay = h.kind === 'fixed' ? h.ms : Math.min(h.maxMs, h.initialMs * 2 ** (n - 1));
    this.lastOpenMs = delay;
    this.openUntil = this.now + delay;
    this.transition('open', reason);
  }

  private close(reason: StateChangeReason): void {
    this.consecutiveOpens = 0;
    this.lastOpenMs = 0;
    this.records = [];
    this.transition('closed', reason);
  }

  private transition(to: CircuitState, reason: StateChangeReason): void {
    this.events.push({ from: this.state, to, reason });
    this.state = to;
    this.generation++;
    this.probes = 0;
    this.probeSuccesses = 0;
  }
}

// ---------------------------------------------------------------------------
// The real system, instrumented

interface RealCall {
  readonly tracked: Tracked<string>;
  readonly resolve: (value: string) => void;
  readonly reject: (error: unknown) => void;
  readonly controller: AbortController;
  /** The half-open period the work started in, or -1 when it started closed. */
  readonly period: number;
}

class Real {
  readonly clock = new FakeClock();
  readonly breaker: CircuitBreakerPolicy;
  readonly events: StateChangeEvent[] = [];
  readonly pending: RealCall[] = [];
  readonly all: Tracked<string>[] = [];
  readonly handles: IsolationHandle[] = [];
  /** Number of the current half-open period (bumped on each entry into half-open). */
  period = 0;
  /** Probes running per half-open period. */
  readonly probesRunning = new Map<number, number>();

  readonly config: Config;

  constructor(config: Config) {
    this.config = config;
    this.breaker = circuitBreaker(optionsFor(config, this.clock));
    this.breaker.onStateChange((e) => {
      this.events.push(e);
      if (e.to === 'half-open') this.period++;
    });
  }

  /** Checks the invariants that hold whatever the model says. */
  checkInvariants(): void {
    expect(this.clock.pendingTimers).toBe(0);
    for (const t of this.all) expect(t.settledCount).toBeLessThanOrEqual(1);
    for (const running of this.probesRunning.values()) expect(running).toBeLessThanOrEqual(this.config.halfOpenProbes);
  }
}

// ---------------------------------------------------------------------------
// Commands

type Cmd = fc.AsyncCommand<Model, Real>;

class StartCall implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const expected = m.start();
    let resolve!: (value: string) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<string>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    let period = -2;
    const controller = new AbortController();
    const tracked = track(
      r.breaker.execute(
        ({ signal }) => {
          // Inside the work the breaker is closed or half-open: reading state has no side effect.
          period = r.breaker.state === 'half-open' ? r.period : -1;
          if (period >= 0) r.probesRunning.set(period, (r.probesRunning.get(period) ?? 0) + 1);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          return promise;
        },
        { signal: controller.signal },
      ),
    );
    r.all.push(tracked);
    await r.clock.flush();
    if (expected.kind === 'admit') {
      expect(period, 'the work ran').not.toBe(-2);
      expect(period >= 0, 'admitted as a probe').toBe(expected.probe);
      expect(tracked.status).toBe('pending');
      const running = period;
      r.pending.push({
        tracked,
        controller,
        period,
        resolve: (v) => {
          resolve(v);
        },
        reject: (e) => {
          reject(e);
        },
      });
      // A probe stops running when its work settles.
      promise.then(
        () => running >= 0 && r.probesRunning.set(running, r.probesRunning.get(running)! - 1),
        () => running >= 0 && r.probesRunning.set(running, r.probesRunning.get(running)! - 1),
      );
    } else {
      expect(period, 'the work did not run').toBe(-2);
      expect(tracked.status).toBe('rejected');
      if (expected.error === 'isolated') {
        expect(tracked.error).toBeInstanceOf(IsolatedCircuitError);
      } else {
        expect(tracked.error).toBeInstanceOf(BrokenCircuitError);
        expect((tracked.error as BrokenCircuitError).retryAfterMs).toBe(expected.retryAfterMs);
      }
    }
  }
  toString = (): string => 'start';
}

class SettleCall implements Cmd {
  readonly pick: number;
  readonly outcome: Outcome;
  constructor(pick: number, outcome: Outcome) {
    this.pick = pick;
    this.outcome = outcome;
  }
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    if (r.pending.length === 0) return;
    const index = this.pick % r.pending.length;
    const [call] = r.pending.splice(index, 1);
    m.settle(index, this.outcome);
    const reason = new Error('caller abort');
    switch (this.outcome) {
      case 'success':
        call!.resolve('ok');
        break;
      case 'failure':
        call!.reject(new Error('failure'));
        break;
      case 'ignored':
        call!.reject(new IgnoredError('ignored'));
        break;
      case 'abort':
        call!.controller.abort(reason);
        break;
    }
    await r.clock.flush();
    expect(call!.tracked.settledCount).toBe(1);
    if (this.outcome === 'success') expect(call!.tracked.value).toBe('ok');
    else expect(call!.tracked.status).toBe('rejected');
    if (this.outcome === 'abort') expect(call!.tracked.error).toBe(reason);
  }
  toString = (): string => `settle(${this.pick}, ${this.outcome})`;
}

/** A whole call: started, running for `durationMs`, then settled (when admitted). */
class Call implements Cmd {
  readonly outcome: Outcome;
  readonly durationMs: number;
  constructor(outcome: Outcome, durationMs: number) {
    this.outcome = outcome;
    this.durationMs = durationMs;
  }
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const before = r.pending.length;
    await new StartCall().run(m, r);
    if (r.pending.length === before) return; // rejected
    await new Advance(this.durationMs).run(m, r);
    await new SettleCall(r.pending.length - 1, this.outcome).run(m, r);
  }
  toString = (): string => `call(${this.outcome}, ${this.durationMs} ms)`;
}

class Advance implements Cmd {
  readonly ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    m.now += this.ms;
    await r.clock.advance(this.ms);
  }
  toString = (): string => `advance(${this.ms})`;
}

class ReadState implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    expect(r.breaker.state).toBe(m.readState());
  }
  toString = (): string => 'state';
}

class Snapshot implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    expect(r.breaker.toJSON()).toEqual(m.toJSON());
  }
  toString = (): string => 'toJSON';
}

class Isolate implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    m.isolate();
    r.handles.push(r.breaker.isolate());
  }
  toString = (): string => 'isolate';
}

class Release implements Cmd {
  readonly pick: number;
  constructor(pick: number) {
    this.pick = pick;
  }
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    if (r.handles.length === 0) return;
    const index = this.pick % r.handles.length;
    m.release(index);
    r.handles[index]!.release();
  }
  toString = (): string => `release(${this.pick})`;
}

class Reset implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    m.reset();
    r.breaker.reset();
  }
  toString = (): string => 'reset';
}

/** Wraps a command so the event logs and invariants are compared after it. */
class Checked implements Cmd {
  readonly inner: Cmd;
  constructor(inner: Cmd) {
    this.inner = inner;
  }
  check = (m: Readonly<Model>): boolean => this.inner.check(m);
  async run(m: Model, r: Real): Promise<void> {
    await this.inner.run(m, r);
    expect(r.events).toEqual(m.events);
    r.checkInvariants();
  }
  toString = (): string => this.inner.toString();
}

const outcomeArb = fc.constantFrom<Outcome>('success', 'success', 'success', 'failure', 'failure', 'ignored', 'abort');

const callArb = fc
  .record({ outcome: outcomeArb, durationMs: fc.constantFrom(0, 0, 0, 1, 49, 50, 99, 100, 150) })
  .map(({ outcome, durationMs }): Cmd => new Call(outcome, durationMs));

const commandArb: fc.Arbitrary<Cmd> = fc
  .oneof(
    { weight: 12, arbitrary: callArb },
    { weight: 3, arbitrary: fc.constant(new StartCall()) },
    {
      weight: 4,
      arbitrary: fc.record({ pick: fc.nat(), outcome: outcomeArb }).map(({ pick, outcome }): Cmd => new SettleCall(pick, outcome)),
    },
    {
      weight: 5,
      arbitrary: fc
        .oneof(fc.constantFrom(1, 25, 49, 50, 99, 100, 200, 250, 500), fc.integer({ min: 0, max: 600 }), fc.constant(5_000))
        .map((ms): Cmd => new Advance(ms)),
    },
    { weight: 1, arbitrary: fc.constant(new ReadState()) },
    { weight: 1, arbitrary: fc.constant(new Snapshot()) },
    { weight: 1, arbitrary: fc.constant(new Isolate()) },
    { weight: 2, arbitrary: fc.nat().map((pick): Cmd => new Release(pick)) },
    { weight: 1, arbitrary: fc.constant(new Reset()) },
  )
  .map((cmd) => new Checked(cmd));

describe('circuitBreaker: model-based', () => {
  it('behaves like the reference model over random sequences of calls, settlements, time and manual control', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.commands([commandArb], { maxCommands: 100, size: 'max' }), async (config, commands) => {
        const real = new Real(config);
        await fc.asyncModelRun(() => ({ model: new Model(config), real }), commands);
        // Every call settles exactly once in the end.
        for (const call of real.pending) call.resolve('finally');
        await real.clock.flush();
        for (const t of real.all) expect(t.settledCount).toBe(1);
        real.checkInvariants();
      }),
      { numRuns: 250 },
    );
  }, 120_000);
});

describe('circuitBreaker: properties', () => {
  it('half-open never runs more than halfOpenProbes calls at once, whatever the burst', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.record({ burst: fc.integer({ min: 0, max: 8 }), settle: fc.integer({ min: 0, max: 8 }), ok: fc.boolean() }), {
          maxLength: 20,
        }),
        async (halfOpenProbes, steps) => {
          const clock = new FakeClock();
          const breaker = circuitBreaker({ clock, minimumCalls: 1, halfOpenAfterMs: 10, halfOpenProbes });
          await breaker.execute(() => Promise.reject(new Error('trip'))).catch(() => {});
          let period = 0;
          breaker.onStateChange((e) => {
            if (e.to === 'half-open') period++;
          });
          const probesRunning = new Map<number, number>();
          const running: { resolve: () => void; reject: () => void }[] = [];
          let maxRunningInHalfOpen = 0;
          const all: Tracked<void>[] = [];
          for (const step of steps) {
            await clock.advance(10);
            for (let i = 0; i < step.burst; i++) {
              all.push(
                track(
                  breaker.execute(() => {
                    const mine = breaker.state === 'half-open' ? period : -1;
                    const done = (): void => {
                      if (mine >= 0) probesRunning.set(mine, probesRunning.get(mine)! - 1);
                    };
                    if (mine >= 0) {
                      probesRunning.set(mine, (probesRunning.get(mine) ?? 0) + 1);
                      maxRunningInHalfOpen = Math.max(maxRunningInHalfOpen, probesRunning.get(mine)!);
                    }
                    return new Promise<void>((resolve, reject) => {
                      running.push({
                        resolve: () => (done(), resolve()),
                        reject: () => (done(), reject(new Error('probe failed'))),
                      });
                    });
                  }),
                ),
              );
            }
            for (let i = 0; i < step.settle && running.length > 0; i++) {
              const call = running.shift()!;
              if (step.ok) call.resolve();
              else call.reject();
            }
            await clock.flush();
          }
          for (const call of running.splice(0)) call.resolve();
          await clock.flush();
          expect(maxRunningInHalfOpen).toBeLessThanOrEqual(halfOpenProbes);
          for (const t of all) expect(t.settledCount).toBe(1);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  }, 60_000);
});

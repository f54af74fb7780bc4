/**
 * Properties of `throttle`, in virtual time (FakeClock) with seeded random sources:
 *
 * - the local rejection rate tracks the formula: over many calls to a dependency
 *   that refuses a random share of them, the number of calls refused locally stays
 *   within five standard deviations of the sum of the probabilities the formula
 *   gives, computed by an independent model of the window;
 * - the probability is exactly 0 while the dependency accepts everything: no call
 *   is refused and the random source is never read, whatever the concurrency;
 * - against a reference model, over random sequences of calls started and settled
 *   in any order, caller aborts and clock advances: the throttle refuses exactly
 *   the calls the model refuses given the same draws, its getters agree with the
 *   model, a refused call never runs the work, and every call settles exactly once;
 * - no timer is ever left behind.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isThrottledError, type RandomSource, throttle, type ThrottlePolicy } from '../src/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { type Tracked, track } from './helpers.ts';

interface Config {
  readonly requestsPerAccept: number;
  readonly minimumRequests: number;
  readonly window: { readonly ms: number; readonly buckets: number };
  readonly maxRejectionProbability: number;
}

const configArb: fc.Arbitrary<Config> = fc.record({
  requestsPerAccept: fc.constantFrom(1, 1.1, 1.5, 2, 3),
  minimumRequests: fc.integer({ min: 1, max: 30 }),
  window: fc.record({ ms: fc.constantFrom(200, 500, 1_000, 2_000), buckets: fc.constantFrom(1, 4, 5, 10, 20) }),
  maxRejectionProbability: fc.constantFrom(0.5, 0.8, 0.9, 1),
});

/** The same, with few enough minimum requests that short command sequences get to refuse. */
const modelConfigArb: fc.Arbitrary<Config> = configArb.chain((c) =>
  fc.integer({ min: 1, max: 8 }).map((minimumRequests) => ({ ...c, minimumRequests })),
);

/** Errors the dependency answers with that are not a refusal (a 404, say). */
class Answered extends Error {}
const handle = (error: unknown): boolean => !(error instanceof Answered);

function throttleFor(config: Config, clock: FakeClock, random: RandomSource): ThrottlePolicy {
  return throttle({ ...config, clock, random, handle });
}

/**
 * The window and the formula, written to be obviously right: every request is
 * kept with its time and filtered on each read, with the window's bucket rule
 * (a request stays while its bucket is one of the last `buckets`).
 */
class Model {
  records: { at: number; accepted: boolean }[] = [];
  readonly config: Config;
  constructor(config: Config) {
    this.config = config;
  }

  window(now: number): { at: number; accepted: boolean }[] {
    const bucketMs = this.config.window.ms / this.config.window.buckets;
    const current = Math.floor(now / bucketMs);
    this.records = this.records.filter((r) => Math.floor(r.at / bucketMs) > current - this.config.window.buckets);
    return this.records;
  }

  requests(now: number): number {
    return this.window(now).length;
  }

  accepts(now: number): number {
    return this.window(now).filter((r) => r.accepted).length;
  }

  probability(now: number): number {
    const requests = this.requests(now);
    if (requests < this.config.minimumRequests) return 0;
    const p = (requests - this.config.requestsPerAccept * this.accepts(now)) / (requests + 1);
    return Math.min(Math.max(p, 0), this.config.maxRejectionProbability);
  }

  record(at: number, accepted: boolean): void {
    this.records.push({ at, accepted });
  }
}

describe('throttle: properties', () => {
  it('the local rejection rate tracks the formula', async () => {
    let informative = 0;
    await fc.assert(
      fc.asyncProperty(
        configArb,
        fc.constantFrom(0, 0.05, 0.2, 0.35, 0.5, 0.8, 1), // share of the calls the dependency accepts
        fc.constantFrom(1, 2, 5), // ms between calls
        fc.integer(),
        fc.integer(),
        async (config, acceptShare, spacingMs, seed, dependencySeed) => {
          const clock = new FakeClock();
          const policy = throttleFor(config, clock, seededRandom(seed));
          const dependency = seededRandom(dependencySeed);
          const model = new Model(config);
          let expected = 0;
          let variance = 0;
          let refused = 0;
          for (let i = 0; i < 1_500; i++) {
            const now = clock.now();
            const p = model.probability(now);
            expected += p;
            variance += p * (1 - p);
            let ran = false;
            let accepted = false;
            const error = await policy
              .execute(() => {
                ran = true;
                accepted = dependency() < acceptShare;
                return accepted ? 'ok' : Promise.reject(new Error('503'));
              })
              .then(() => undefined, (e: unknown) => e);
            if (isThrottledError(error)) {
              expect(ran, 'a refused call never runs the work').toBe(false);
              refused++;
            }
            model.record(now, ran && accepted);
            if (i % 5 === 4) await clock.advance(5 * spacingMs);
          }
          if (expected >= 50) informative++;
          expect(Math.abs(refused - expected), `refused ${refused}, formula ${expected.toFixed(1)}`).toBeLessThanOrEqual(
            5 * Math.sqrt(variance) + 3,
          );
          expect(clock.scheduledTimers).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
    expect(informative, 'runs where the throttle had something to refuse').toBeGreaterThan(5);
  }, 60_000);

  it('the probability is exactly 0 while the dependency accepts everything', async () => {
    await fc.assert(
      fc.asyncProperty(
        configArb,
        fc.array(
          fc.record({
            burst: fc.integer({ min: 0, max: 6 }),
            durationMs: fc.constantFrom(0, 1, 50, 300, 5_000),
            outcome: fc.constantFrom('success', 'success', 'answered', 'abort'),
            advanceMs: fc.constantFrom(0, 1, 99, 250, 3_000),
          }),
          { maxLength: 40, size: 'max' },
        ),
        async (config, steps) => {
          const clock = new FakeClock();
          let draws = 0;
          const policy = throttleFor(config, clock, () => {
            draws++;
            return 0; // would refuse every call it were asked about
          });
          let rejects = 0;
          policy.onReject(() => rejects++);
          const all: Tracked<unknown>[] = [];
          for (const step of steps) {
            for (let i = 0; i < step.burst; i++) {
              const controller = new AbortController();
              all.push(
                track(
                  policy.execute(
                    () =>
                      new Promise((resolve, reject) => {
                        clock.schedule(() => {
                          if (step.outcome === 'success') resolve('ok');
                          else if (step.outcome === 'answered') reject(new Answered('404'));
                          else {
                            const reason = new Error('caller gave up');
                            controller.abort(reason);
                            reject(reason);
                          }
                        }, step.durationMs);
                      }),
                    { signal: controller.signal },
                  ),
                ),
              );
            }
            await clock.advance(step.advanceMs);
            expect(policy.probability).toBe(0);
          }
          await clock.runAll();
          for (const t of all) {
            expect(t.settledCount).toBe(1);
            expect(isThrottledError(t.error)).toBe(false);
          }
          expect([draws, rejects, policy.probability]).toEqual([0, 0, 0]);
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  }, 60_000);

  it('refuses exactly the calls the model refuses, never runs a refused call, and settles every call once', async () => {
    type Outcome = 'success' | 'refused' | 'answered' | 'abort';
    type Command =
      | { kind: 'start' }
      | { kind: 'settle'; pick: number; outcome: Outcome }
      | { kind: 'call'; outcome: Outcome }
      | { kind: 'advance'; ms: number }
      | { kind: 'read' };
    const outcomeArb = fc.constantFrom<Outcome>('success', 'refused', 'refused', 'answered', 'abort');
    const commandArb: fc.Arbitrary<Command> = fc.oneof(
      { weight: 3, arbitrary: fc.constant<Command>({ kind: 'start' }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), outcome: outcomeArb }) },
      { weight: 8, arbitrary: fc.record({ kind: fc.constant('call' as const), outcome: outcomeArb }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1, 10, 49, 50, 100, 250, 1_000, 5_000) }) },
      { weight: 1, arbitrary: fc.constant<Command>({ kind: 'read' }) },
    );
    let runsWithRefusals = 0;
    await fc.assert(
      fc.asyncProperty(modelConfigArb, fc.integer(), fc.array(commandArb, { maxLength: 150, size: 'max' }), async (config, seed, commands) => {
        const clock = new FakeClock();
        const policy = throttleFor(config, clock, seededRandom(seed));
        const model = new Model(config);
        const modelRandom = seededRandom(seed);
        interface Running {
          settle(outcome: Outcome): void;
          readonly tracked: Tracked<unknown>;
        }
        const running: Running[] = [];
        const all: Tracked<unknown>[] = [];
        const refusedWorkRuns: number[] = [];

        const start = async (): Promise<void> => {
          const p = model.probability(clock.now());
          const modelRefuses = p > 0 && modelRandom() < p;
          const controller = new AbortController();
          let settle: ((outcome: Outcome) => void) | undefined;
          let runs = 0;
          const tracked = track(
            policy.execute(
              () =>
                new Promise((resolve, reject) => {
                  runs++;
                  settle = (outcome) => {
                    if (outcome === 'success') resolve('ok');
                    else if (outcome === 'refused') reject(new Error('503'));
                    else if (outcome === 'answered') reject(new Answered('404'));
                    else {
                      const reason = new Error('caller gave up');
                      controller.abort(reason);
                      reject(reason);
                    }
                  };
                }),
              { signal: controller.signal },
            ),
          );
          all.push(tracked);
          await clock.flush();
          if (modelRefuses) {
            model.record(clock.now(), false);
            expect(isThrottledError(tracked.error), 'refused as the model says').toBe(true);
            expect((tracked.error as { probability: number }).probability).toBe(p);
            refusedWorkRuns.push(runs);
            return;
          }
          expect(tracked.status, 'let through as the model says').toBe('pending');
          expect(runs).toBe(1);
          running.push({
            tracked,
            settle: (outcome) => {
              settle!(outcome);
              if (outcome !== 'abort') model.record(clock.now(), outcome !== 'refused');
            },
          });
        };

        const settle = async (pick: number, outcome: Outcome): Promise<void> => {
          if (running.length === 0) return;
          const [call] = running.splice(pick % running.length, 1);
          call!.settle(outcome);
          await clock.flush();
          expect(call!.tracked.settledCount).toBe(1);
        };

        for (const command of commands) {
          switch (command.kind) {
            case 'start':
              await start();
              break;
            case 'settle':
              await settle(command.pick, command.outcome);
              break;
            case 'call': {
              const before = running.length;
              await start();
              if (running.length > before) await settle(running.length - 1, command.outcome);
              break;
            }
            case 'advance':
              await clock.advance(command.ms);
              break;
            case 'read': {
              const now = clock.now();
              expect([policy.requests, policy.accepts, policy.probability]).toEqual([model.requests(now), model.accepts(now), model.probability(now)]);
              break;
            }
          }
          for (const t of all) expect(t.settledCount).toBeLessThanOrEqual(1);
        }
        while (running.length > 0) await settle(0, 'success');
        for (const t of all) expect(t.settledCount).toBe(1);
        expect(refusedWorkRuns.every((runs) => runs === 0), 'a refused call never runs the work').toBe(true);
        expect(clock.pendingTimers).toBe(0);
        if (refusedWorkRuns.length > 0) runsWithRefusals++;
      }),
      { numRuns: 300 },
    );
    expect(runsWithRefusals, 'runs where the throttle refused calls').toBeGreaterThan(30);
  }, 60_000);
});

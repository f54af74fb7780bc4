/**
 * Adaptive-limit details: the policy's clamping at exactly minLimit and maxLimit,
 * the generation that tells calls admitted before a fall, a clock going
 * backwards, which algorithms are accepted; the gradient's ratio and its clamps.
 * A scripted learner (an algorithm that says what the next limit is) drives the
 * policy; the gradient is read through its learner with limit 1, smoothing 1
 * and no queue allowance, where the next limit is the gradient itself.
 */
import { describe, expect, it } from 'vitest';
import { adaptiveLimit, gradient, type LimitAlgorithm } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed, track } from './helpers.ts';

interface Seen {
  limit: number;
  latencyMs: number;
  dropped: boolean;
  admittedSinceFall: boolean;
}

/** An algorithm whose learner answers each call with the next of `answers`, and records what it was told. */
function scripted(answers: number[], timed = false): { algorithm: LimitAlgorithm; seen: Seen[] } {
  const seen: Seen[] = [];
  const learner = {
    timed,
    next(limit: number, latencyMs: number, _inFlight: number, dropped: boolean, admittedSinceFall: boolean): number {
      seen.push({ limit, latencyMs, dropped, admittedSinceFall });
      return answers.shift() ?? limit;
    },
  };
  return { algorithm: { kind: 'aimd', _learner: () => learner } as unknown as LimitAlgorithm, seen };
}

describe('adaptiveLimit: what the algorithm answers, within the bounds', () => {
  it('an answer of exactly minLimit or maxLimit is taken; beyond them is clamped; NaN changes nothing', async () => {
    const clock = new FakeClock();
    const { algorithm } = scripted([3, 2, 10, 9, 12, Number.NaN, 0.5]);
    const p = adaptiveLimit({ algorithm, minLimit: 3, maxLimit: 10, initialLimit: 5, clock });
    const limits: number[] = [];
    for (let i = 0; i < 7; i++) {
      const call = p.execute(() => delayed(clock, 1, 'ok'));
      await clock.advance(1);
      await call;
      limits.push(p.limit);
    }
    expect(limits).toEqual([3, 3, 10, 9, 10, 10, 3]);
  });

  it('a fall marks the calls admitted before it; a rise does not', async () => {
    const clock = new FakeClock();
    const { algorithm, seen } = scripted([8, 8, 8, 6, 6, 6]);
    const p = adaptiveLimit({ algorithm, minLimit: 1, maxLimit: 10, initialLimit: 5, clock });
    // three calls admitted together: the first to end raises the limit, the others were admitted before that rise
    const rise = [10, 20, 30].map((ms) => track(p.execute(() => delayed(clock, ms, 'ok'))));
    await clock.advance(30);
    expect(rise.every((c) => c.status === 'fulfilled')).toBe(true);
    expect(p.limit).toBe(8);
    // three more together: the first to end lowers the limit, the others were admitted before that fall
    const fall = [10, 20, 30].map((ms) => track(p.execute(() => delayed(clock, ms, 'ok'))));
    await clock.advance(30);
    expect(fall.every((c) => c.status === 'fulfilled')).toBe(true);
    expect(p.limit).toBe(6);
    expect(seen.map((s) => s.admittedSinceFall)).toEqual([true, true, true, true, false, false]);
  });

  it('a clock that goes backwards teaches nothing', async () => {
    const fake = new FakeClock();
    let skew = 0;
    const clock = { now: () => fake.now() - skew, schedule: fake.schedule.bind(fake), cancel: fake.cancel.bind(fake) };
    const { algorithm, seen } = scripted([7, 8], true);
    const p = adaptiveLimit({ algorithm, initialLimit: 5, clock });
    const call = p.execute(() => delayed(fake, 10, 'ok').then((v) => ((skew = 100), v))); // the clock jumps back 100 ms meanwhile
    await fake.advance(10);
    await call;
    expect(seen).toEqual([]);
    expect(p.limit).toBe(5);
    const next = p.execute(() => delayed(fake, 10, 'ok')); // a clock that runs forward again teaches again
    await fake.advance(10);
    await next;
    expect(seen.map((s) => s.latencyMs)).toEqual([10]);
    expect(p.limit).toBe(7);
  });

  it('learns nothing from an ordinary failure when no isDrop is given', async () => {
    const clock = new FakeClock();
    const { algorithm, seen } = scripted([2]);
    const p = adaptiveLimit({ algorithm, initialLimit: 5, clock });
    const call = track(p.execute(() => delayed(clock, 1, undefined).then(() => Promise.reject(new Error('bad request')))));
    await clock.advance(1);
    expect((call.error as Error).message).toBe('bad request');
    expect(seen).toEqual([]);
    expect(p.limit).toBe(5);
  });

  it('reports its queueTimeoutMs', () => {
    expect(adaptiveLimit({ algorithm: gradient(), maxQueue: 5, queueTimeoutMs: 30 }).queueTimeoutMs).toBe(30);
  });
});

describe('adaptiveLimit: which algorithms it takes', () => {
  const refused = /^adaptiveLimit: option "algorithm" must be an algorithm made by aimd\(\) or gradient\(\); received /;
  it('refuses look-alikes: null, functions, other kinds, no learner', () => {
    const learner = () => ({ timed: false, next: (limit: number) => limit });
    const lookAlikes: unknown[] = [null, 'aimd', 5, Object.assign(() => {}, { kind: 'aimd', _learner: learner }), { kind: 'vegas', _learner: learner }, { kind: 'aimd' }, { kind: 'gradient', _learner: 1 }];
    for (const algorithm of lookAlikes) expect(() => adaptiveLimit({ algorithm } as never), String(algorithm)).toThrow(refused);
    expect(() => adaptiveLimit({ algorithm: { kind: 'gradient', _learner: learner } } as never)).not.toThrow();
  });

  it("names the unknown option 'limit' and what to write instead", () => {
    expect(() => adaptiveLimit({ algorithm: gradient(), limit: 5 } as never)).toThrow(/"limit".*the limit moves between minLimit and maxLimit, starting from initialLimit/);
    expect(() => gradient({ longWindow: 5 } as never)).toThrow(/"longWindow".*concurrency-limits' longWindow is longWindowCalls/);
  });
});

describe('gradient: the ratio of long-term to short-term latency, within [0.5, 1]', () => {
  /** The gradient after each latency, read as the next limit from 1 (smoothing 1, no queue allowance). */
  function gradients(latencies: number[], longWindowCalls = 100): number[] {
    const learner = gradient({ smoothing: 1, queueAllowance: 0, shortWindowCalls: 1, longWindowCalls })._learner();
    return latencies.map((ms) => learner.next(1, ms, 1, false, true));
  }

  it('the long-term latency is the mean while fewer calls than its window are seen; the short-term one, with a window of 1, the last', () => {
    expect(gradients([10, 12.5])).toEqual([1, 0.9]); // (10 + 12.5) / 2 / 12.5
    expect(gradients([10, 5, 8])).toEqual([1, 1, 23 / 3 / 8]); // a ratio above 1 is 1; the long-term mean goes on
  });

  it('is 1 at a ratio of 1 or more, the ratio between 0.5 and 1, and 0.5 below', () => {
    expect(gradients([10, 10])).toEqual([1, 1]);
    expect(gradients([10, 12.5])[1]).toBe(0.9);
    expect(gradients([1, 1, 1, 1, 10])[4]).toBe(0.5); // 2.8 / 10
  });

  it('with no latency at all (0 ms calls) is 1', () => {
    expect(gradients([0, 0, 0])).toEqual([1, 1, 1]);
  });

  it('once the long-term latency is more than twice the short-term one, it follows at the short window’s pace', () => {
    // after 10, 4: 10 > 2 × 4, so the long-term latency moves all the way to 4; then 6: (4 + 2/3) / 6
    expect(gradients([10, 4, 6])[2]).toBeCloseTo(14 / 3 / 6, 12);
    // after 10, 5: exactly twice, not more: the plain mean 7.5 holds; then 8: 7.5 + 0.5 / 3 over 8
    expect(gradients([10, 5, 8])[2]).toBeCloseTo(23 / 3 / 8, 12);
  });

  it('weighs each call 2 / (longWindowCalls + 1) once that is more than 1 / n', () => {
    // longWindowCalls 3: weight 0.5 at the 2nd call, the mean: (10 + 12.5) / 2 / 12.5; then at the 3rd 0.5 rather than 1/3
    expect(gradients([10, 12.5, 12.5], 3)).toEqual([1, 0.9, (11.25 + 1.25 * 0.5) / 12.5]);
  });
});

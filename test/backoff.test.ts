import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constant, EXPONENTIAL_DEFAULTS, exponential, type Jitter } from '../src/index.ts';
import { seededRandom } from '../src/testing/index.ts';

const half = (): number => 0.5;
const zero = (): number => 0;
const almostOne = (): number => 0.999_999;

describe('exponential', () => {
  it('has pinned defaults: 100 ms, x2, at most 30 s, full jitter', () => {
    expect(EXPONENTIAL_DEFAULTS).toEqual({ initialMs: 100, maxMs: 30_000, factor: 2, jitter: 'full' });
    expect(Object.isFrozen(EXPONENTIAL_DEFAULTS)).toBe(true);
    const s = exponential();
    expect([s.kind, s.initialMs, s.maxMs, s.factor, s.jitter]).toEqual(['exponential', 100, 30_000, 2, 'full']);
    // full jitter: the first retry waits in [0, 100)
    expect(s.delayMs(1, 0, half)).toBe(50);
    expect(s.delayMs(2, 0, half)).toBe(100);
  });

  it('without jitter doubles from initialMs and stops at maxMs', () => {
    const s = exponential({ initialMs: 100, maxMs: 1_000, jitter: 'none' });
    const delays = [1, 2, 3, 4, 5, 6].map((n) => s.delayMs(n, 0, () => 0.123));
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('honours factor', () => {
    const s = exponential({ initialMs: 10, factor: 3, jitter: 'none' });
    expect([1, 2, 3].map((n) => s.delayMs(n, 0, zero))).toEqual([10, 30, 90]);
    const flat = exponential({ initialMs: 10, factor: 1, jitter: 'none' });
    expect(flat.delayMs(50, 0, zero)).toBe(10);
  });

  it('full jitter is uniform in [0, d)', () => {
    const s = exponential({ initialMs: 100, jitter: 'full' });
    expect(s.delayMs(3, 0, zero)).toBe(0);
    expect(s.delayMs(3, 0, half)).toBe(200);
    expect(s.delayMs(3, 0, almostOne)).toBeLessThan(400);
    expect([s.minDelayMs(3), s.maxDelayMs(3)]).toEqual([0, 400]);
  });

  it('equal jitter is d/2 plus uniform in [0, d/2)', () => {
    const s = exponential({ initialMs: 100, jitter: 'equal' });
    expect(s.delayMs(2, 0, zero)).toBe(100);
    expect(s.delayMs(2, 0, half)).toBe(150);
    expect([s.minDelayMs(2), s.maxDelayMs(2)]).toEqual([100, 200]);
  });

  it('decorrelated jitter draws between initialMs and 3x the previous delay, capped', () => {
    const s = exponential({ initialMs: 100, maxMs: 1_000, jitter: 'decorrelated' });
    // first retry: the previous delay counts as initialMs
    expect(s.delayMs(1, 0, zero)).toBe(100);
    expect(s.delayMs(1, 0, half)).toBe(200); // 100 + 0.5 * (300 - 100)
    expect(s.delayMs(2, 250, half)).toBe(425); // 100 + 0.5 * (750 - 100)
    expect(s.delayMs(5, 900, almostOne)).toBeLessThanOrEqual(1_000);
    expect(s.delayMs(5, 900, almostOne)).toBeGreaterThan(999);
    expect([s.minDelayMs(1), s.maxDelayMs(1), s.maxDelayMs(2), s.maxDelayMs(3)]).toEqual([100, 300, 900, 1_000]);
  });

  it('decorrelated jitter stays within bounds whatever previous delay it is given', () => {
    const s = exponential({ initialMs: 100, maxMs: 10_000, jitter: 'decorrelated' });
    expect(s.delayMs(1, 5_000, almostOne)).toBeLessThan(300);
    expect(s.delayMs(2, Number.NaN, zero)).toBe(100);
    expect(s.delayMs(2, -5, almostOne)).toBeLessThan(300);
  });

  it('decorrelated jitter counts attempt 0 (or NaN) as 1: the previous delay is clamped to initialMs', () => {
    const s = exponential({ initialMs: 100, maxMs: 1_000_000, jitter: 'decorrelated' });
    const top = () => 0.999;
    expect(s.delayMs(0, 50_000, top)).toBe(s.delayMs(1, 50_000, top));
    expect(s.delayMs(Number.NaN, 50_000, top)).toBe(s.delayMs(1, 50_000, top));
    expect(s.delayMs(1, 50_000, top)).toBeLessThan(300);
  });

  it('decorrelated jitter clamps the previous delay to what the attempt before could return, not less', () => {
    const s = exponential({ initialMs: 100, maxMs: 1_000_000, jitter: 'decorrelated' });
    const one = (): number => 1;
    // attempt 3: the attempt before could return up to 900, so a previous 1,000 counts as 900
    expect(s.delayMs(3, 1_000, one)).toBe(2_700); // 100 + 1 * (900 * 3 - 100)
    // a previous delay within that bound is used as it is
    expect(s.delayMs(3, 500, one)).toBe(1_500);
    expect([s.maxDelayMs(0), s.maxDelayMs(Number.NaN)]).toEqual([s.maxDelayMs(1), s.maxDelayMs(1)]);
  });

  it('treats attempt below 1 or NaN as 1, and huge attempts as maxMs', () => {
    const s = exponential({ jitter: 'none' });
    expect(s.delayMs(0, 0, zero)).toBe(100);
    expect(s.delayMs(Number.NaN, 0, zero)).toBe(100);
    expect(s.delayMs(10_000, 0, zero)).toBe(30_000);
    expect(s.delayMs(Infinity, 0, zero)).toBe(30_000);
  });

  it('is an immutable value', () => {
    const s = exponential();
    expect(Object.isFrozen(s)).toBe(true);
    expect(s.kind).toBe('exponential');
    expect(() => {
      (s as { initialMs: number }).initialMs = 5;
    }).toThrow(TypeError);
  });

  it('composes: withJitter and withMaxMs return new schedules and leave the original alone', () => {
    const s = exponential({ initialMs: 100, jitter: 'full' });
    const plain = s.withJitter('none');
    expect(plain.jitter).toBe('none');
    expect(s.jitter).toBe('full');
    expect(plain.delayMs(3, 0, zero)).toBe(400);
    const capped = plain.withMaxMs(250);
    expect(capped.delayMs(3, 0, zero)).toBe(250);
    expect(plain.maxMs).toBe(30_000);
    expect(s.withJitter('decorrelated').jitter).toBe('decorrelated');
    expect(plain.withMaxMs(100).delayMs(5, 0, zero)).toBe(100); // a cap equal to initialMs is allowed
  });

  it('rejects bad options, naming the option, the rule and the value', () => {
    expect(() => exponential({ initialMs: 0 })).toThrow(/exponential: option "initialMs" must be a finite number of milliseconds from 1 .*received 0/);
    expect(() => exponential({ initialMs: Number.NaN })).toThrow(TypeError);
    expect(() => exponential({ initialMs: Infinity })).toThrow(RangeError);
    expect(() => exponential({ initialMs: -1 })).toThrow(RangeError);
    expect(() => exponential({ maxMs: 2_147_483_648 })).toThrow(/"maxMs"/);
    expect(() => exponential({ factor: 0.5 })).toThrow(/"factor" must be a finite number from 1 to 100; received 0.5/);
    expect(() => exponential({ factor: Infinity })).toThrow(RangeError);
    expect(() => exponential({ jitter: 'random' as Jitter })).toThrow(/"jitter" must be one of "none", "full", "equal", "decorrelated"; received "random"/);
    expect(() => exponential({ initialMs: 500, maxMs: 100 })).toThrow(/"maxMs" must be at least initialMs \(500\); received 100/);
    expect(() => exponential({ initialMs: 60_000 })).toThrow(/"maxMs" \(the default, 30000\) must be at least initialMs/);
    expect(() => exponential({ jitter: 'decorrelated', factor: 2 })).toThrow(/"factor" must be left out with jitter "decorrelated"/);
    expect(() => exponential({ initalMs: 5 } as never)).toThrow(/unknown option "initalMs"/);
    expect(() => exponential(5 as never)).toThrow(/options must be an object; received 5/);
    expect(() => exponential().withMaxMs(50)).toThrow(/"maxMs" must be at least initialMs \(100\); received 50/);
    expect(() => exponential({ factor: 3 }).withJitter('decorrelated')).toThrow(
      new RangeError(
        'exponential().withJitter: option "jitter" cannot be "decorrelated" on a schedule with factor 3: decorrelated jitter grows by its own rule (up to 3 × the previous delay)',
      ),
    );
    expect(() => exponential().withJitter('bogus' as Jitter)).toThrow(/^exponential\(\)\.withJitter: option "jitter" must be one of/);
    expect(() => exponential().withMaxMs(0)).toThrow(/^exponential\(\)\.withMaxMs: option "maxMs"/);
  });
});

describe('constant', () => {
  it('waits ms every time, without jitter by default', () => {
    const s = constant({ ms: 250 });
    expect([s.kind, s.jitter, s.factor]).toEqual(['constant', 'none', 1]);
    expect([1, 2, 10].map((n) => s.delayMs(n, 0, almostOne))).toEqual([250, 250, 250]);
    expect([s.minDelayMs(4), s.maxDelayMs(4)]).toEqual([250, 250]);
  });

  it('accepts 0 and full or equal jitter', () => {
    expect(constant({ ms: 0 }).delayMs(1, 0, half)).toBe(0);
    expect(constant({ ms: 100, jitter: 'full' }).delayMs(7, 0, half)).toBe(50);
    expect(constant({ ms: 100, jitter: 'equal' }).delayMs(7, 0, half)).toBe(75);
  });

  it('rejects bad options', () => {
    expect(() => constant(undefined as never)).toThrow(/constant: options must be an object; received undefined/);
    expect(() => constant({} as never)).toThrow(/constant: option "ms" is required/);
    expect(() => constant({ ms: -1 })).toThrow(RangeError);
    expect(() => constant({ ms: Number.NaN })).toThrow(TypeError);
    expect(() => constant({ ms: 100, jitter: 'decorrelated' as never })).toThrow(/one of "none", "full", "equal"; received "decorrelated"/);
    expect(() => constant({ ms: 10 }).withJitter('decorrelated')).toThrow(TypeError);
  });
});

describe('schedule bounds (property)', () => {
  const jitter = fc.constantFrom<Jitter>('none', 'full', 'equal', 'decorrelated');
  const exponentialSchedule = fc
    .record({
      initialMs: fc.integer({ min: 1, max: 5_000 }),
      extraMs: fc.integer({ min: 0, max: 100_000 }),
      factor: fc.double({ min: 1, max: 10, noNaN: true }),
      jitter,
    })
    .map(({ initialMs, extraMs, factor, jitter }) =>
      jitter === 'decorrelated'
        ? exponential({ initialMs, maxMs: initialMs + extraMs, jitter })
        : exponential({ initialMs, maxMs: initialMs + extraMs, factor, jitter }),
    );
  const constantSchedule = fc
    .record({ ms: fc.integer({ min: 0, max: 100_000 }), jitter: fc.constantFrom('none', 'full', 'equal') as fc.Arbitrary<'none' | 'full' | 'equal'> })
    .map((o) => constant(o));
  const schedule = fc.oneof(exponentialSchedule, constantSchedule);

  it('every delay of a sequence lies within its schedule bounds', () => {
    fc.assert(
      fc.property(schedule, fc.integer(), fc.integer({ min: 1, max: 60 }), (s, seed, attempts) => {
        const random = seededRandom(seed);
        let previous = 0;
        for (let attempt = 1; attempt <= attempts; attempt++) {
          const delay = s.delayMs(attempt, previous, random);
          expect(Number.isFinite(delay)).toBe(true);
          expect(delay).toBeGreaterThanOrEqual(s.minDelayMs(attempt));
          expect(delay).toBeLessThanOrEqual(s.maxDelayMs(attempt));
          expect(s.maxDelayMs(attempt)).toBeLessThanOrEqual(s.maxMs);
          previous = delay;
        }
      }),
    );
  });

  it('any single delay lies within bounds, whatever previous delay and random number', () => {
    fc.assert(
      fc.property(
        schedule,
        fc.integer({ min: 1, max: 2_000 }),
        fc.double({ min: -1e9, max: 1e9, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (s, attempt, previous, r) => {
          const delay = s.delayMs(attempt, previous, () => r);
          expect(delay).toBeGreaterThanOrEqual(s.minDelayMs(attempt));
          expect(delay).toBeLessThanOrEqual(s.maxDelayMs(attempt));
        },
      ),
    );
  });

  it('is pure: the same arguments and random numbers give the same delay', () => {
    fc.assert(
      fc.property(schedule, fc.integer({ min: 1, max: 100 }), fc.nat(), fc.integer(), (s, attempt, previous, seed) => {
        expect(s.delayMs(attempt, previous, seededRandom(seed))).toBe(s.delayMs(attempt, previous, seededRandom(seed)));
      }),
    );
  });

  it('without jitter the curve never decreases', () => {
    fc.assert(
      fc.property(exponentialSchedule, fc.integer({ min: 1, max: 200 }), (s, attempt) => {
        const plain = s.jitter === 'decorrelated' ? s : s.withJitter('none');
        if (plain.jitter === 'none') expect(plain.delayMs(attempt + 1, 0, zero)).toBeGreaterThanOrEqual(plain.delayMs(attempt, 0, zero));
      }),
    );
  });
});

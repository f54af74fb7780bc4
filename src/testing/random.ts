import type { RandomSource } from '../core/clock.ts';

/**
 * A deterministic random source for tests: the same seed gives the same
 * sequence of numbers in `[0, 1)` (a 32-bit SplitMix generator).
 *
 * ```ts
 * const random = seededRandom(42);
 * retry({ random, backoff: exponential({ initialMs: 100 }) });
 * ```
 */
export function seededRandom(seed: number): RandomSource {
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new TypeError(`seededRandom: seed must be an integer; received ${String(seed)}`);
  }
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

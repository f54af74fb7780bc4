/**
 * `breakwater/testing`: drive policies in virtual time and with reproducible
 * randomness. See docs/guides/testing.md.
 */
export { FakeClock } from './fake-clock.ts';
export { seededRandom } from './random.ts';

import { describe, expect, it } from 'vitest';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  isBreakwaterError,
  isBrokenCircuitError,
  isRateLimitedError,
  isRejection,
  isTimeoutError,
  RateLimitedError,
  TimeoutError,
} from '../src/index.ts';

const BRAND = Symbol.for('breakwater.error');

describe('errors', () => {
  it('isBreakwaterError answers true for every breakwater error and false for anything else', () => {
    expect(isBreakwaterError(new TimeoutError(10))).toBe(true);
    expect(isBreakwaterError(new BulkheadRejectedError(1, 0))).toBe(true);
    for (const other of [new Error('x'), {}, null, undefined, 'ERR_BREAKWATER_TIMEOUT', 42]) {
      expect(isBreakwaterError(other)).toBe(false);
    }
  });

  it('recognises an error of another copy of breakwater by its global brand and code', () => {
    // Two installed copies have two TimeoutError classes but share Symbol.for's registry.
    const foreign = Object.assign(new Error('from another copy'), { [BRAND]: true, code: 'ERR_BREAKWATER_TIMEOUT' });
    expect(isTimeoutError(foreign)).toBe(true);
    expect(isBreakwaterError(foreign)).toBe(true);
    expect(isBrokenCircuitError(foreign)).toBe(false);
  });

  it('does not take a look-alike with the code but without the brand for a breakwater error', () => {
    const lookAlike = Object.assign(new Error('not ours'), { code: 'ERR_BREAKWATER_TIMEOUT' });
    expect(isTimeoutError(lookAlike)).toBe(false);
    expect(isRejection(Object.assign(new Error('not ours'), { code: 'ERR_BREAKWATER_RATE_LIMITED' }))).toBe(false);
  });

  it('answers false, never throws, for a value whose properties cannot be read', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(isTimeoutError(proxy)).toBe(false);
    expect(isBreakwaterError(proxy)).toBe(false);
    const trap = new Proxy({}, { get: () => { throw new Error('getter'); } });
    expect(isRateLimitedError(trap)).toBe(false);
    expect(isBreakwaterError(trap)).toBe(false);
  });

  it('answers false for a value that is not an object, even one carrying the brand', () => {
    const branded = Object.assign(() => {}, { [BRAND]: true, code: 'ERR_BREAKWATER_TIMEOUT' });
    expect(isTimeoutError(branded)).toBe(false);
    expect(isBreakwaterError(branded)).toBe(false);
  });

  it('names each error class and gives BrokenCircuitError a default message', () => {
    const open = new BrokenCircuitError(250);
    expect(open.message).toBe('the circuit is open: the call was not made');
    expect(open.retryAfterMs).toBe(250);
    const limited = new RateLimitedError(40, 'over the limit');
    expect(limited.name).toBe('RateLimitedError');
    expect(String(limited)).toBe('RateLimitedError: over the limit');
  });
});

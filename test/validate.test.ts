import { describe, expect, it } from 'vitest';
import { bool, checkNested, clock, received } from '../src/core/validate.ts';
import { pipeline, retry, timeout } from '../src/index.ts';

describe('option checks', () => {
  it('shows a string of up to 40 characters whole, and cuts a longer one', () => {
    expect(received('x'.repeat(40))).toBe(`"${'x'.repeat(40)}" (string)`);
    expect(received('x'.repeat(41))).toBe(`"${'x'.repeat(40)}…" (string)`);
    expect(received(-0)).toBe('-0');
  });

  it('refuses a non-boolean where a boolean is due with a TypeError naming the rule', () => {
    expect(() => bool('owner', 'flag', 'yes')).toThrow(new TypeError('owner: option "flag" must be a boolean; received "yes" (string)'));
  });

  it('refuses a clock that lacks now or schedule, and a function carrying the three methods', () => {
    const methods = { now: () => 0, schedule: () => 1, cancel: () => {} };
    expect(() => clock('owner', 'clock', { ...methods })).not.toThrow();
    expect(() => clock('owner', 'clock', { ...methods, now: undefined })).toThrow(TypeError);
    expect(() => clock('owner', 'clock', { ...methods, schedule: undefined })).toThrow(TypeError);
    expect(() => clock('owner', 'clock', Object.assign(() => {}, methods))).toThrow(TypeError);
  });

  it('a nested option must be an object', () => {
    expect(() => checkNested('owner', 'window', 5, {})).toThrow(new TypeError('owner: option "window" must be an object; received 5'));
  });

  it('execute takes null options as none, and refuses options that are not an object', async () => {
    const policy = retry();
    await expect(policy.execute(() => 'ok', null as never)).resolves.toBe('ok');
    expect(() => policy.execute(() => 'ok', 5 as never)).toThrow(
      new TypeError('retry.execute: options must be an object such as { signal }; received number'),
    );
  });

  it('pipeline treats an object with only one of execute and _run as its options, not as a policy', () => {
    expect(() => pipeline({ execute: () => {} } as never)).toThrow(/^pipeline: unknown option "execute"/);
    expect(() => pipeline({ _run: () => {} } as never)).toThrow(/^pipeline: unknown option "_run"/);
  });

  it('pipeline names an uncalled factory, says nothing of an anonymous function, and says null for null', () => {
    expect(() => pipeline(timeout as never)).toThrow(
      new TypeError('pipeline: argument 1 is a function (timeout), not a policy: a policy factory passed without calling it? Write timeout({ ms: 500 }), not timeout'),
    );
    const anonymous = [() => {}][0]!;
    expect(() => pipeline(anonymous as never)).toThrow(/^pipeline: argument 1 is a function, not a policy: /);
    expect(() => pipeline(timeout({ ms: 1 }), null as never)).toThrow(
      new TypeError('pipeline: argument 2 must be a policy (timeout(), retry(), …); received null'),
    );
  });

  it('pipeline counts the options as argument 1 when it names a repeated policy', () => {
    const t = timeout({ ms: 5 });
    expect(() => pipeline({ name: 'api' }, t, t)).toThrow(
      new TypeError('pipeline: argument 3 is the same timeout instance as argument 2; a policy runs once per layer, so create one instance per layer'),
    );
  });
});

/**
 * Option checking shared by every factory. Each failure names the option, the
 * rule it broke and the value received, and happens at construction.
 */
import type { PipelineOptions } from './pipeline.ts';
import type { ExecuteOptions, Policy } from './protocol.ts';

/** Node's largest timer delay: longer delays silently become 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

export type Check = (owner: string, key: string, value: unknown) => void;

/** Renders a received value for an error message without trusting it. */
export function received(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n (bigint)`;
    case 'string': {
      const text = value.length > 40 ? `${value.slice(0, 40)}…` : value;
      return `${JSON.stringify(text)} (string)`;
    }
    case 'boolean':
      return `${value} (boolean)`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      return Array.isArray(value) ? 'an array' : 'an object';
  }
}

function fail(kind: 'type' | 'range', owner: string, key: string, rule: string, value: unknown): never {
  const message = `${owner}: option "${key}" must be ${rule}; received ${received(value)}`;
  throw kind === 'type' ? new TypeError(message) : new RangeError(message);
}

function number(owner: string, key: string, value: unknown, rule: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) fail('type', owner, key, rule, value);
  return value;
}

/** A duration in ms: finite, within `[min, MAX_TIMER_MS]`. */
export const duration =
  (min = 0): Check =>
  (owner, key, value) => {
    const rule = `a finite number of milliseconds from ${min} to ${MAX_TIMER_MS} (the platform's timer limit)`;
    const n = number(owner, key, value, rule);
    if (!Number.isFinite(n) || n < min || n > MAX_TIMER_MS) fail('range', owner, key, rule, value);
  };

/** An integer within `[min, max]`; `max` may be Infinity when `allowInfinity`. */
export const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER, allowInfinity = false): Check =>
  (owner, key, value) => {
    const upper = allowInfinity ? 'or Infinity' : `to ${max}`;
    const rule = `an integer from ${min} ${upper}`;
    const n = number(owner, key, value, rule);
    if (allowInfinity && n === Infinity) return;
    if (!Number.isInteger(n) || n < min || n > max) fail('range', owner, key, rule, value);
  };

/** A finite number within `[min, max]`; `open` leaves that end out (`'min'`: above `min`; `'max'`: below `max`). */
export const finite =
  (min: number, max: number, open?: 'min' | 'max'): Check =>
  (owner, key, value) => {
    const rule =
      open === 'min'
        ? `a finite number above ${min}, up to ${max}`
        : open === 'max'
          ? `a finite number from ${min} to below ${max}`
          : `a finite number from ${min} to ${max}`;
    const n = number(owner, key, value, rule);
    const outside = n < min || n > max || (open === 'min' && n === min) || (open === 'max' && n === max);
    if (!Number.isFinite(n) || outside) fail('range', owner, key, rule, value);
  };

/** A function. */
/**
 * A share: a number greater than 0, and at most 1 (`share()`) or below 1
 * (`share(false)`). A number outside is a RangeError, anything else a TypeError.
 */
export const share =
  (includeOne = true): Check =>
  (owner, key, value) => {
    if (typeof value === 'number' && value > 0 && (includeOne ? value <= 1 : value < 1)) return;
    const rule = `a number greater than 0 and ${includeOne ? 'at most' : 'below'} 1`;
    fail(typeof value === 'number' && !Number.isNaN(value) ? 'range' : 'type', owner, key, rule, value);
  };

export const fn: Check = (owner, key, value) => {
  if (typeof value !== 'function') fail('type', owner, key, 'a function', value);
};

/** A boolean. */
export const bool: Check = (owner, key, value) => {
  if (typeof value !== 'boolean') fail('type', owner, key, 'a boolean', value);
};

/** Any value at all (still counts as a known option). */
export const any: Check = () => {};

/** One of a fixed set of strings. */
export const oneOf =
  (...choices: string[]): Check =>
  (owner, key, value) => {
    if (typeof value !== 'string' || !choices.includes(value)) {
      fail('type', owner, key, `one of ${choices.map((c) => `"${c}"`).join(', ')}`, value);
    }
  };

/** A clock: an object with now, schedule and cancel functions. */
export const clock: Check = (owner, key, value) => {
  const v = value as Record<string, unknown> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.now !== 'function' ||
    typeof v.schedule !== 'function' ||
    typeof v.cancel !== 'function'
  ) {
    fail('type', owner, key, 'a Clock (an object with now, schedule and cancel functions)', value);
  }
};

/** A value accepted by one of several checks; `rule` describes the union. */
export const either =
  (rule: string, ...checks: Check[]): Check =>
  (owner, key, value) => {
    for (const check of checks) {
      try {
        check(owner, key, value);
        return;
      } catch {
        // try the next alternative
      }
    }
    fail(typeof value === 'number' && !Number.isNaN(value) ? 'range' : 'type', owner, key, rule, value); // NaN is a wrong type, as in number()
  };

/** Checks against a custom predicate. */
export const satisfies =
  (rule: string, predicate: (value: unknown) => boolean, kind: 'type' | 'range' = 'type'): Check =>
  (owner, key, value) => {
    if (!predicate(value)) fail(kind, owner, key, rule, value);
  };

/** A plain object (not null, not an array). */
export const plainObject: Check = satisfies('an object', (v) => typeof v === 'object' && v !== null && !Array.isArray(v));

const NO_HINTS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Checks an options object against `spec`: the object itself must be a plain
 * object (or undefined when `optional`), every own key must be known, and each
 * present (non-undefined) value must pass its check. `required` keys must be present.
 * Returns the options as a null-prototype copy, so prototype keys never leak in.
 * `foreign` maps option names of other libraries (opossum, cockatiel, p-retry, …)
 * to what to write instead, for the unknown-option error.
 */
export function checkOptions<T extends object>(
  owner: string,
  options: unknown,
  spec: Record<string, Check>,
  required: readonly string[] = [],
  foreign: Readonly<Record<string, string>> = NO_HINTS,
): Partial<T> {
  if (options === undefined && required.length === 0) return Object.create(null) as Partial<T>;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${owner}: options must be an object; received ${received(options)}`);
  }
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Reflect.ownKeys(options)) {
    if (typeof key === 'symbol' || !Object.prototype.hasOwnProperty.call(spec, key)) {
      const name = typeof key === 'symbol' ? key.toString() : key;
      const known = Object.keys(spec).join(', ');
      const hint = typeof key === 'string' && Object.hasOwn(foreign, key) ? foreign[key] : undefined;
      throw new TypeError(`${owner}: unknown option "${name}"${hint === undefined ? '' : ` (${hint})`}; known options are ${known}`);
    }
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    spec[key]!(owner, key, value);
    out[key] = value;
  }
  for (const key of required) {
    if (out[key] === undefined) {
      throw new TypeError(`${owner}: option "${key}" is required; received undefined`);
    }
  }
  return out as Partial<T>;
}

/**
 * Checks a nested options object: its keys are reported as `parent.key`, so a
 * message names the exact option (`window.ms`, `initialState.state`). Returns
 * a copy of the keys given.
 */
export function checkNested<T extends object>(
  owner: string,
  parent: string,
  value: unknown,
  spec: Record<string, Check>,
  required: readonly string[] = [],
): Partial<T> {
  plainObject(owner, parent, value);
  const prefixed: Record<string, unknown> = {};
  for (const key of Object.keys(value as object)) prefixed[`${parent}.${key}`] = (value as Record<string, unknown>)[key];
  const prefixedSpec: Record<string, Check> = {};
  for (const key of Object.keys(spec)) prefixedSpec[`${parent}.${key}`] = spec[key]!;
  const checked = checkOptions<Record<string, unknown>>(
    owner,
    prefixed,
    prefixedSpec,
    required.map((key) => `${parent}.${key}`),
  ) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(checked)) out[key.slice(parent.length + 1)] = checked[key];
  return out as Partial<T>;
}

/**
 * Checks a time window `window: { ms?, buckets? }` (plus the `extra` keys, such as
 * the breaker's `kind`) and fills in `defaults`: `ms` from 1 to the timer limit,
 * `buckets` from 1 to 1,000, and `ms` a multiple of `buckets`.
 */
export function checkTimeWindow(
  owner: string,
  value: unknown,
  defaults: { readonly ms: number; readonly buckets: number },
  extra: Record<string, Check> = {},
): { ms: number; buckets: number } {
  const w = checkNested<{ ms: number; buckets: number }>(owner, 'window', value, { ...extra, ms: duration(1), buckets: integer(1, 1_000) });
  const ms = w.ms ?? defaults.ms;
  const buckets = w.buckets ?? defaults.buckets;
  if (ms % buckets !== 0) {
    throw new RangeError(
      `${owner}: option "window.ms" must be a multiple of window.buckets (${buckets}), so that every bucket spans a whole number of ms; received ${received(ms)}`,
    );
  }
  return { ms, buckets };
}

/** Checks the per-call options of `execute`. @internal */
export function callerSignalOf(owner: string, options: ExecuteOptions | undefined): AbortSignal | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object' || options instanceof AbortSignal) {
    const what = options instanceof AbortSignal ? 'an AbortSignal: pass it as { signal }' : typeof options;
    throw new TypeError(`${owner}.execute: options must be an object such as { signal }; received ${what}`);
  }
  for (const key in options) {
    if (key !== 'signal') throw new TypeError(`${owner}.execute: unknown option "${key}"; the only option is "signal"`);
  }
  const signal = options.signal;
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) {
    throw new TypeError(`${owner}.execute: option "signal" must be an AbortSignal; received ${received(signal)}`);
  }
  return signal;
}

function isPolicy(value: unknown): value is Policy<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Policy<unknown>)._run === 'function' &&
    typeof (value as Policy<unknown>).execute === 'function'
  );
}

/** Checks the arguments of `pipeline(options?, ...policies)`. @internal */
export function checkPipelineArguments(
  args: readonly unknown[],
  namePattern: RegExp,
): { options: PipelineOptions; policies: Policy<unknown>[] } {
  let options: PipelineOptions = {};
  let policies = args;
  const uncalled = args.findIndex((arg) => typeof arg === 'function');
  if (uncalled >= 0) {
    const name = (args[uncalled] as { name?: unknown }).name;
    throw new TypeError(
      `pipeline: argument ${uncalled + 1} is a function${typeof name === 'string' && name !== '' ? ` (${name})` : ''}, not a policy: ` +
        'a policy factory passed without calling it? Write timeout({ ms: 500 }), not timeout',
    );
  }
  if (args.length > 0 && !isPolicy(args[0])) {
    options = checkOptions<PipelineOptions>('pipeline', args[0], {
      name: satisfies(
        'a string of 1 to 100 letters, digits or _ . : / - starting with a letter or digit (it becomes a metrics label value)',
        (v) => typeof v === 'string' && namePattern.test(v),
      ),
      clock,
    });
    policies = args.slice(1);
  }
  policies.forEach((policy, i) => {
    const position = i + (policies === args ? 1 : 2);
    if (!isPolicy(policy)) {
      throw new TypeError(
        `pipeline: argument ${position} must be a policy (timeout(), retry(), …); received ${policy === null ? 'null' : typeof policy}`,
      );
    }
    const first = policies.indexOf(policy);
    if (first < i) {
      throw new TypeError(
        `pipeline: argument ${position} is the same ${policy.kind} instance as argument ${first + (policies === args ? 1 : 2)}; ` +
          'a policy runs once per layer, so create one instance per layer',
      );
    }
  });
  return { options, policies: policies as Policy<unknown>[] };
}

/**
 * The bad-input catalogue. Every factory gets wrong types and NaN; negative,
 * zero and infinite values; durations above the platform's timer limit;
 * unknown option names and null; objects carrying `__proto__` (as JSON.parse
 * makes them) or `constructor` keys. Each must throw a TypeError or RangeError
 * at construction whose message names the option, the rule and the value
 * received, in the one format of docs/reference/errors.md:
 *
 *   <factory>: option "<name>" must be <rule>; received <value>
 *
 * Then the other half of the contract: options that pass construction never
 * make a call throw later, even at their limits, and hostile callbacks (a
 * schedule returning NaN, a `handle` that throws) only ever settle the call.
 */
import CircuitBreaker from 'opossum';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  exponential,
  fallback,
  pipeline,
  type Policy,
  retry,
  retryBudget,
  throttle,
  timeout,
} from '../../src/index.ts';
import { fromOpossum, runWork } from '../../src/opossum/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { FakeClock } from '../../src/testing/index.ts';
import { track } from '../helpers.ts';

const MAX_TIMER_MS = 2 ** 31 - 1;

/** How a received value must be shown in a message (an independent rendering of the documented format). */
function shown(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n (bigint)`;
    case 'string':
      return `${JSON.stringify(value)} (string)`;
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

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type Kind =
  | { readonly type: 'duration'; readonly min: number }
  | { readonly type: 'integer'; readonly min: number; readonly max?: number; readonly infinity?: boolean }
  | { readonly type: 'finite'; readonly min: number; readonly max: number }
  | { readonly type: 'rate' }
  | { readonly type: 'fn' }
  | { readonly type: 'clock' }
  | { readonly type: 'oneOf'; readonly choices: readonly string[] }
  | { readonly type: 'schedule' }
  | { readonly type: 'durationOrSchedule' }
  | { readonly type: 'object' }
  | { readonly type: 'custom'; readonly rule: RegExp; readonly bad: readonly (readonly [unknown, 'type' | 'range'])[] };

interface OptionSpec {
  /** The name the message must give, such as `ms` or `window.ms`. */
  readonly key: string;
  readonly kind: Kind;
  /** Builds the options around one value of this option. */
  readonly build: (value: unknown) => unknown;
}

interface FactorySpec {
  readonly owner: string;
  readonly make: (options: unknown) => unknown;
  /** Valid options to add a bad key to (`undefined`: the factory takes no required option). */
  readonly base: Record<string, unknown>;
  readonly options: readonly OptionSpec[];
}

/** A bad value and the error class it must produce. */
type Bad = readonly [value: unknown, cls: 'type' | 'range'];

const WRONG_TYPES: readonly Bad[] = [
  ['100', 'type'],
  [true, 'type'],
  [null, 'type'],
  [{}, 'type'],
  [[], 'type'],
  [() => 1, 'type'],
  [10n, 'type'],
  [Symbol('s'), 'type'],
  [NaN, 'type'],
];

function badValues(kind: Kind): readonly Bad[] {
  switch (kind.type) {
    case 'duration': {
      const out: Bad[] = [...WRONG_TYPES, [-1, 'range'], [-Infinity, 'range'], [Infinity, 'range'], [MAX_TIMER_MS + 1, 'range'], [2 ** 53, 'range'], [1e300, 'range']];
      if (kind.min > 0) out.push([0, 'range'], [kind.min - 0.5, 'range']);
      return out;
    }
    case 'integer': {
      const out: Bad[] = [...WRONG_TYPES, [-1, 'range'], [-Infinity, 'range'], [1.5, 'range'], [kind.min - 1, 'range']];
      if (!kind.infinity) out.push([Infinity, 'range']);
      if (kind.max !== undefined) out.push([kind.max + 1, 'range']);
      else out.push([2 ** 53, 'range']);
      return out;
    }
    case 'finite':
      return [...WRONG_TYPES, [kind.min - 1, 'range'], [kind.max + 1, 'range'], [Infinity, 'range'], [-Infinity, 'range']];
    case 'rate':
      return [...WRONG_TYPES, [0, 'range'], [-0.5, 'range'], [1.0001, 'range'], [Infinity, 'range']];
    case 'fn':
      return [['f', 'type'], [1, 'type'], [null, 'type'], [{}, 'type'], [NaN, 'type']];
    case 'clock':
      return [['clock', 'type'], [1, 'type'], [null, 'type'], [{}, 'type'], [{ now: () => 0, schedule: () => 0 }, 'type'], [NaN, 'type']];
    case 'oneOf':
      return [['bogus', 'type'], [1, 'type'], [null, 'type'], [NaN, 'type'], [{}, 'type']];
    case 'schedule':
      return [['exponential', 'type'], [100, 'type'], [null, 'type'], [{}, 'type'], [{ delayMs: 5 }, 'type'], [NaN, 'type']];
    case 'durationOrSchedule':
      return [['100', 'type'], [null, 'type'], [{}, 'type'], [NaN, 'type'], [-1, 'range'], [Infinity, 'range'], [MAX_TIMER_MS + 1, 'range']];
    case 'object':
      return [['x', 'type'], [1, 'type'], [null, 'type'], [[], 'type'], [NaN, 'type']];
    case 'custom':
      return kind.bad;
  }
}

function ruleOf(kind: Kind): RegExp {
  switch (kind.type) {
    case 'duration':
      return new RegExp(`a finite number of milliseconds from ${kind.min} to ${MAX_TIMER_MS}`);
    case 'integer':
      return new RegExp(`an integer from ${kind.min}${kind.infinity ? ' or Infinity' : ` to ${kind.max ?? Number.MAX_SAFE_INTEGER}`}`);
    case 'finite':
      return new RegExp(`a finite number from ${kind.min} to ${kind.max}`);
    case 'rate':
      return /a number greater than 0 and at most 1/;
    case 'fn':
      return /a function/;
    case 'clock':
      return /a Clock \(an object with now, schedule and cancel functions\)/;
    case 'oneOf':
      return new RegExp(`one of ${kind.choices.map((c) => `"${c}"`).join(', ')}`);
    case 'schedule':
      return /a backoff schedule/;
    case 'durationOrSchedule':
      return new RegExp(`a finite number of milliseconds from 0 to ${MAX_TIMER_MS}, or a backoff schedule`);
    case 'object':
      return /an object/;
    case 'custom':
      return kind.rule;
  }
}

const opt = (key: string, kind: Kind, base: Record<string, unknown> = {}): OptionSpec => ({ key, kind, build: (value) => ({ ...base, [key]: value }) });
const nested = (parent: string, key: string, kind: Kind, base: Record<string, unknown>): OptionSpec => ({
  key: `${parent}.${key}`,
  kind,
  build: (value) => ({ [parent]: { ...base, [key]: value } }),
});

const registryStub = (): Registry => new Registry();
const opossumBreakers: CircuitBreaker[] = [];
const adoptable = (): CircuitBreaker => {
  const breaker = new CircuitBreaker(runWork, { name: 'catalogue', timeout: false });
  opossumBreakers.push(breaker);
  return breaker;
};
afterAll(() => {
  for (const b of opossumBreakers) b.shutdown();
});

const duration = (min: number): Kind => ({ type: 'duration', min });
const integer = (min: number, max?: number, infinity = false): Kind => ({ type: 'integer', min, max, infinity });
const fn: Kind = { type: 'fn' };
const clock: Kind = { type: 'clock' };

const FACTORIES: readonly FactorySpec[] = [
  {
    owner: 'timeout',
    make: (o) => timeout(o as never),
    base: { ms: 10 },
    options: [opt('ms', duration(1)), opt('clock', clock, { ms: 10 })],
  },
  {
    owner: 'fallback',
    make: (o) => fallback(o as never),
    base: { value: 1 },
    options: [opt('factory', fn), opt('handle', fn, { value: 1 })],
  },
  {
    owner: 'retry',
    make: (o) => retry(o as never),
    base: {},
    options: [
      opt('maxAttempts', integer(1, undefined, true), { maxElapsedMs: 1_000 }),
      opt('backoff', { type: 'schedule' }),
      opt('handle', fn),
      opt('maxElapsedMs', duration(0)),
      opt('retryAfter', fn),
      opt('budget', { type: 'custom', rule: /a RetryBudget \(from retryBudget\(\)/, bad: [[{}, 'type'], ['budget', 'type'], [null, 'type'], [NaN, 'type'], [0.2, 'type']] }),
      opt('clock', clock),
      opt('random', fn),
    ],
  },
  {
    owner: 'circuitBreaker',
    make: (o) => circuitBreaker(o as never),
    base: {},
    options: [
      opt('failureRateThreshold', { type: 'rate' }),
      opt('minimumCalls', integer(1)),
      opt('slowCallMs', duration(1), { slowCallRateThreshold: 0.5 }),
      opt('slowCallRateThreshold', { type: 'rate' }, { slowCallMs: 100 }),
      opt('handle', fn),
      opt('halfOpenAfterMs', { type: 'durationOrSchedule' }),
      opt('halfOpenProbes', integer(1)),
      opt('successesToClose', integer(1)),
      opt('clock', clock),
      opt('random', fn),
      opt('window', { type: 'object' }),
      opt('initialState', { type: 'object' }),
      nested('window', 'kind', { type: 'oneOf', choices: ['time', 'count'] }, {}),
      nested('window', 'ms', duration(1), { kind: 'time', buckets: 1 }),
      nested('window', 'buckets', integer(1, 1_000), { kind: 'time', ms: 1_000 }),
      nested('window', 'calls', integer(1, 100_000), { kind: 'count' }),
      nested('initialState', 'state', { type: 'oneOf', choices: ['closed', 'open', 'half-open'] }, {}),
      nested('initialState', 'retryAfterMs', duration(0), { state: 'open' }),
      nested('initialState', 'consecutiveOpens', integer(0), { state: 'closed' }),
      nested('initialState', 'lastOpenMs', duration(0), { state: 'open' }),
    ],
  },
  {
    owner: 'bulkhead',
    make: (o) => bulkhead(o as never),
    base: { maxConcurrent: 1 },
    options: [
      opt('maxConcurrent', integer(1)),
      opt('maxQueue', integer(0, undefined, true), { maxConcurrent: 1 }),
      opt('queueTimeoutMs', duration(1), { maxConcurrent: 1, maxQueue: 1 }),
      opt('clock', clock, { maxConcurrent: 1 }),
    ],
  },
  {
    owner: 'throttle',
    make: (o) => throttle(o as never),
    base: {},
    options: [
      opt('requestsPerAccept', { type: 'finite', min: 1, max: 100 }),
      opt('minimumRequests', integer(1)),
      opt('maxRejectionProbability', { type: 'finite', min: 0, max: 1 }),
      opt('handle', fn),
      opt('clock', clock),
      opt('random', fn),
      opt('window', { type: 'object' }),
      nested('window', 'ms', duration(1), { buckets: 1 }),
      nested('window', 'buckets', integer(1, 1_000), { ms: 1_000 }),
    ],
  },
  {
    owner: 'retryBudget',
    make: (o) => retryBudget(o as never),
    base: {},
    options: [
      opt('ratio', { type: 'finite', min: 0, max: 1 }),
      opt('minPerSecond', { type: 'finite', min: 0, max: 1_000_000 }),
      opt('windowMs', duration(10)),
      opt('clock', clock),
    ],
  },
  {
    owner: 'exponential',
    make: (o) => exponential(o as never),
    base: {},
    options: [
      opt('initialMs', duration(1)),
      opt('maxMs', duration(1), { initialMs: 1 }),
      opt('factor', { type: 'finite', min: 1, max: 100 }),
      opt('jitter', { type: 'oneOf', choices: ['none', 'full', 'equal', 'decorrelated'] }),
    ],
  },
  {
    owner: 'constant',
    make: (o) => constant(o as never),
    base: { ms: 0 },
    options: [opt('ms', duration(0)), opt('jitter', { type: 'oneOf', choices: ['none', 'full', 'equal'] }, { ms: 0 })],
  },
  {
    owner: 'pipeline',
    make: (o) => pipeline(o as never),
    base: { name: 'ok' },
    options: [
      opt('name', {
        type: 'custom',
        rule: /a string of 1 to 100 letters, digits or _ \. : \/ - starting with a letter or digit/,
        bad: [
          ['', 'type'],
          ['has space', 'type'],
          ['-leading-dash', 'type'],
          ['quote"inside', 'type'],
          ['new\nline', 'type'],
          ['x'.repeat(101), 'type'],
          [42, 'type'],
          [null, 'type'],
          [NaN, 'type'],
          [{}, 'type'],
        ],
      }),
      opt('clock', clock),
    ],
  },
  {
    owner: 'prometheusMetrics',
    make: (o) => prometheusMetrics(o as never),
    base: { registry: registryStub() },
    options: [
      opt('registry', { type: 'custom', rule: /a prom-client Registry/, bad: [[{}, 'type'], ['registry', 'type'], [null, 'type'], [NaN, 'type']] }),
      opt(
        'prefix',
        { type: 'custom', rule: /a metric-name prefix/, bad: [['1abc', 'type'], ['bad-prefix', 'type'], ['a b', 'type'], [1, 'type'], [null, 'type'], [NaN, 'type']] },
        { registry: registryStub() },
      ),
    ],
  },
  {
    owner: 'fromOpossum',
    make: (o) => fromOpossum(adoptable(), o as never),
    base: {},
    options: [opt('clock', clock)],
  },
];

interface Case {
  readonly name: string;
  readonly run: () => unknown;
  readonly cls: 'type' | 'range';
  readonly message: readonly RegExp[];
}

function optionCases(f: FactorySpec): Case[] {
  const cases: Case[] = [];
  for (const o of f.options) {
    for (const [value, cls] of badValues(o.kind)) {
      cases.push({
        name: `${f.owner}: ${o.key} = ${typeof value === 'symbol' ? 'Symbol()' : shown(value)}`,
        run: () => f.make(o.build(value)),
        cls,
        message: [
          new RegExp(`^${escape(f.owner)}: option "${escape(o.key)}" must be `),
          ruleOf(o.kind),
          new RegExp(`; received ${escape(typeof value === 'string' && value.length > 40 ? `${JSON.stringify(value.slice(0, 40)).slice(0, -1)}…" (string)` : shown(value))}$`),
        ],
      });
    }
  }
  return cases;
}

function objectCases(f: FactorySpec): Case[] {
  const prefix = `^${escape(f.owner)}: `;
  const known = new RegExp(`known options are [a-zA-Z, .]+$`);
  const withKeys = (json: string): unknown => Object.assign(JSON.parse(json) as object, f.base);
  const cases: Case[] = [
    { name: `${f.owner}: unknown option`, run: () => f.make({ ...f.base, bogusOption: 1 }), cls: 'type', message: [new RegExp(`${prefix}unknown option "bogusOption"; `), known] },
    {
      name: `${f.owner}: a misspelt option`,
      run: () => f.make({ ...f.base, timeoutMs: 5 }),
      cls: 'type',
      message: [new RegExp(`${prefix}unknown option "timeoutMs"; `), known],
    },
    {
      name: `${f.owner}: __proto__ key from JSON.parse`,
      run: () => f.make(withKeys('{"__proto__": {"polluted": true}}')),
      cls: 'type',
      message: [new RegExp(`${prefix}unknown option "__proto__"; `), known],
    },
    {
      name: `${f.owner}: constructor key`,
      run: () => f.make({ ...f.base, constructor: { prototype: { polluted: true } } }),
      cls: 'type',
      message: [new RegExp(`${prefix}unknown option "constructor"; `), known],
    },
    { name: `${f.owner}: symbol key`, run: () => f.make({ ...f.base, [Symbol('hidden')]: 1 }), cls: 'type', message: [new RegExp(`${prefix}unknown option "Symbol\\(hidden\\)"; `)] },
  ];
  if (f.owner !== 'pipeline') {
    // pipeline's first argument may also be a policy, so these are "not options and not a policy" there: see below.
    for (const [value, text] of [
      [null, 'null'],
      ['options', '"options" (string)'],
      [42, '42'],
      [NaN, 'NaN'],
      [[], 'an array'],
    ] as const) {
      cases.push({
        name: `${f.owner}: options = ${text}`,
        run: () => f.make(value),
        cls: 'type',
        message: [new RegExp(`${prefix}options must be an object; received ${escape(text)}$`)],
      });
    }
  }
  return cases;
}

/** Rules that tie two options together, each with its own message. */
const CROSS_CASES: readonly Case[] = [
  { name: 'timeout: ms missing', run: () => timeout({} as never), cls: 'type', message: [/^timeout: option "ms" is required; received undefined$/] },
  { name: 'timeout: ms only inherited', run: () => timeout(Object.create({ ms: 10 }) as never), cls: 'type', message: [/^timeout: option "ms" is required; received undefined$/] },
  { name: 'timeout: no options', run: () => timeout(undefined as never), cls: 'type', message: [/^timeout: options must be an object; received undefined$/] },
  { name: 'bulkhead: maxConcurrent missing', run: () => bulkhead({} as never), cls: 'type', message: [/^bulkhead: option "maxConcurrent" is required; received undefined$/] },
  { name: 'constant: ms missing', run: () => constant({} as never), cls: 'type', message: [/^constant: option "ms" is required; received undefined$/] },
  { name: 'prometheusMetrics: registry missing', run: () => prometheusMetrics({} as never), cls: 'type', message: [/^prometheusMetrics: option "registry" is required; received undefined$/] },
  { name: 'fallback: neither value nor factory', run: () => fallback({} as never), cls: 'type', message: [/^fallback: give exactly one of the options "value" or "factory"; received neither$/] },
  { name: 'fallback: both value and factory', run: () => fallback({ value: 1, factory: () => 2 } as never), cls: 'type', message: [/^fallback: give exactly one of the options "value" or "factory"; received both$/] },
  {
    name: 'retry: maxAttempts Infinity without maxElapsedMs',
    run: () => retry({ maxAttempts: Infinity }),
    cls: 'range',
    message: [/^retry: option "maxAttempts" can be Infinity only together with "maxElapsedMs".*; received Infinity without maxElapsedMs$/],
  },
  {
    name: 'bulkhead: queueTimeoutMs without a queue',
    run: () => bulkhead({ maxConcurrent: 1, queueTimeoutMs: 10 }),
    cls: 'range',
    message: [/^bulkhead: option "queueTimeoutMs" needs a queue: set "maxQueue" above 0; received maxQueue 0$/],
  },
  {
    name: 'exponential: maxMs below initialMs',
    run: () => exponential({ initialMs: 500, maxMs: 100 }),
    cls: 'range',
    message: [/^exponential: option "maxMs" must be at least initialMs \(500\); received 100$/],
  },
  {
    name: 'exponential: factor with decorrelated jitter',
    run: () => exponential({ jitter: 'decorrelated', factor: 3 }),
    cls: 'range',
    message: [/^exponential: option "factor" must be left out with jitter "decorrelated".*; received 3$/],
  },
  {
    name: 'circuitBreaker: minimumCalls above window.calls',
    run: () => circuitBreaker({ window: { kind: 'count', calls: 5 }, minimumCalls: 6 }),
    cls: 'range',
    message: [/^circuitBreaker: option "minimumCalls" must be at most window\.calls \(5\).*; received 6$/],
  },
  {
    name: 'circuitBreaker: window.ms not a multiple of window.buckets',
    run: () => circuitBreaker({ window: { kind: 'time', ms: 1_001, buckets: 10 } }),
    cls: 'range',
    message: [/^circuitBreaker: option "window\.ms" must be a multiple of window\.buckets \(10\).*; received 1001$/],
  },
  {
    name: 'circuitBreaker: slowCallMs without slowCallRateThreshold',
    run: () => circuitBreaker({ slowCallMs: 100 }),
    cls: 'type',
    message: [/^circuitBreaker: option "slowCallRateThreshold" must be given together with "slowCallMs"; received undefined$/],
  },
  {
    name: 'circuitBreaker: __proto__ inside window',
    run: () => circuitBreaker({ window: JSON.parse('{"kind":"count","calls":5,"__proto__":{"calls":1}}') as never }),
    cls: 'type',
    message: [/^circuitBreaker: unknown option "window\.__proto__"; known options are window\.kind, window\.calls$/],
  },
  {
    name: 'circuitBreaker: constructor inside initialState',
    run: () => circuitBreaker({ initialState: { state: 'closed', constructor: 1 } as never }),
    cls: 'type',
    message: [/^circuitBreaker: unknown option "initialState\.constructor"; known options are /],
  },
  {
    name: 'circuitBreaker: open initialState with consecutiveOpens 0',
    run: () => circuitBreaker({ initialState: { state: 'open', consecutiveOpens: 0 } }),
    cls: 'range',
    message: [/^circuitBreaker: option "initialState\.consecutiveOpens" must be at least 1 when the state is "open"; received 0$/],
  },
  {
    name: 'throttle: window.ms not a multiple of window.buckets',
    run: () => throttle({ window: { ms: 1_001, buckets: 10 } }),
    cls: 'range',
    message: [/^throttle: option "window\.ms" must be a multiple of window\.buckets \(10\).*; received 1001$/],
  },
  {
    name: 'throttle: window.ms alone, not a multiple of the default 20 buckets',
    run: () => throttle({ window: { ms: 1_010 } }),
    cls: 'range',
    message: [/^throttle: option "window\.ms" must be a multiple of window\.buckets \(20\).*; received 1010$/],
  },
  {
    name: 'throttle: kind inside window',
    run: () => throttle({ window: { kind: 'time', ms: 1_000, buckets: 10 } as never }),
    cls: 'type',
    message: [/^throttle: unknown option "window\.kind"; known options are window\.ms, window\.buckets$/],
  },
  {
    name: 'bulkhead: maxConcurrent set to 0 later',
    run: () => {
      const b = bulkhead({ maxConcurrent: 1 });
      b.maxConcurrent = 0;
    },
    cls: 'range',
    message: [/^bulkhead: option "maxConcurrent" must be an integer from 1 to 9007199254740991; received 0$/],
  },
  {
    name: 'bulkhead: maxConcurrent set to NaN later',
    run: () => {
      const b = bulkhead({ maxConcurrent: 1 });
      b.maxConcurrent = NaN;
    },
    cls: 'type',
    message: [/^bulkhead: option "maxConcurrent" must be an integer from 1 .*; received NaN$/],
  },
  {
    name: 'exponential().withJitter: unknown jitter',
    run: () => exponential().withJitter('bogus' as never),
    cls: 'type',
    message: [/^exponential\(\)\.withJitter: option "jitter" must be one of "none", "full", "equal", "decorrelated"; received "bogus" \(string\)$/],
  },
  {
    name: 'exponential().withMaxMs: above the timer limit',
    run: () => exponential().withMaxMs(MAX_TIMER_MS + 1),
    cls: 'range',
    message: [/^exponential\(\)\.withMaxMs: option "maxMs" must be a finite number of milliseconds from 1 to 2147483647.*; received 2147483648$/],
  },
  {
    name: 'pipeline: an argument that is not a policy',
    run: () => pipeline(timeout({ ms: 1 }), 'not a policy' as never),
    cls: 'type',
    message: [/^pipeline: argument 2 must be a policy .*; received string$/],
  },
  {
    name: 'pipeline: null as its options',
    run: () => pipeline(null as never),
    cls: 'type',
    message: [/^pipeline: options must be an object; received null$/],
  },
  {
    name: 'prometheusMetrics: buckets not increasing',
    run: () => prometheusMetrics({ registry: registryStub(), buckets: [0.1, 0.05] }),
    cls: 'range',
    message: [/^prometheusMetrics: option "buckets" must be a non-empty array .* strictly increasing; received \[0\.1, 0\.05\]$/],
  },
  {
    name: 'prometheusMetrics: buckets with NaN and Infinity',
    run: () => prometheusMetrics({ registry: registryStub(), buckets: [NaN, Infinity] }),
    cls: 'range',
    message: [/^prometheusMetrics: option "buckets" must be .*; received \[NaN, Infinity\]$/],
  },
  {
    name: 'prometheusMetrics: buckets not an array',
    run: () => prometheusMetrics({ registry: registryStub(), buckets: 'fast' as never }),
    cls: 'type',
    message: [/^prometheusMetrics: option "buckets" must be .*; received "fast" \(string\)$/],
  },
  {
    name: 'prometheusMetrics: labels with a __proto__ key from JSON.parse',
    run: () => prometheusMetrics({ registry: registryStub(), labels: JSON.parse('{"__proto__": "x"}') as never }),
    cls: 'type',
    message: [/^prometheusMetrics: option "labels" has an invalid label name "__proto__"/],
  },
  {
    name: 'prometheusMetrics: labels overriding a reserved label',
    run: () => prometheusMetrics({ registry: registryStub(), labels: { outcome: 'success' } }),
    cls: 'type',
    message: [/^prometheusMetrics: option "labels" cannot set the label "outcome"/],
  },
  {
    name: 'prometheusMetrics: a label value that is not a string',
    run: () => prometheusMetrics({ registry: registryStub(), labels: { region: 1 as never } }),
    cls: 'type',
    message: [/^prometheusMetrics: option "labels": the value of label "region" must be a string; received 1$/],
  },
  {
    name: 'fromOpossum: not an opossum breaker',
    run: () => fromOpossum({ fire: 1 } as never),
    cls: 'type',
    message: [/^fromOpossum: breaker must be an opossum CircuitBreaker; received an object without fire, on, removeListener$/],
  },
  {
    name: 'fromOpossum: null breaker',
    run: () => fromOpossum(null as never),
    cls: 'type',
    message: [/^fromOpossum: breaker must be an opossum CircuitBreaker; received null$/],
  },
  {
    name: 'fromOpossum: a breaker with opossum caching on',
    run: () => {
      const breaker = new CircuitBreaker(runWork, { cache: true });
      opossumBreakers.push(breaker);
      return fromOpossum(breaker);
    },
    cls: 'type',
    message: [/^fromOpossum: the breaker's option "cache" must be off .*; received true \(boolean\)$/],
  },
];

const ALL: readonly Case[] = [...FACTORIES.flatMap((f) => [...optionCases(f), ...objectCases(f)]), ...CROSS_CASES];

describe('bad input: every factory refuses it at construction, naming the option, the rule and the value', () => {
  it('covers every factory of the public API', () => {
    const owners = new Set(ALL.map((c) => c.name.split(':')[0]));
    for (const owner of ['timeout', 'fallback', 'retry', 'circuitBreaker', 'bulkhead', 'throttle', 'retryBudget', 'exponential', 'constant', 'pipeline', 'prometheusMetrics', 'fromOpossum']) {
      expect(owners.has(owner), owner).toBe(true);
    }
    expect(ALL.length).toBeGreaterThan(300);
  });

  it.each(ALL.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let thrown: unknown;
    try {
      c.run();
    } catch (error) {
      thrown = error;
    }
    expect(thrown, 'must throw at construction').toBeInstanceOf(c.cls === 'type' ? TypeError : RangeError);
    expect((thrown as Error).constructor).toBe(c.cls === 'type' ? TypeError : RangeError);
    for (const pattern of c.message) expect((thrown as Error).message).toMatch(pattern);
  });

  it('never lets a __proto__ or constructor key pollute a prototype', () => {
    for (const f of FACTORIES) {
      try {
        f.make(Object.assign(JSON.parse('{"__proto__": {"polluted": true}}') as object, f.base));
      } catch {
        // refused, as the catalogue checks
      }
    }
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('reads only own options: an inherited bad value is ignored, not used', () => {
    // An options object whose prototype says maxAttempts: 0 gets the default instead.
    expect(retry(Object.create({ maxAttempts: 0 }) as never).maxAttempts).toBe(3);
    expect(bulkhead(Object.assign(Object.create({ maxQueue: -1 }) as object, { maxConcurrent: 2 }) as never).maxQueue).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Nothing throws later, mid-call

/** Runs `calls` calls of `work` through `policy` and drives the clock until nothing is left. */
async function exercise(policy: Policy<unknown>, clock: FakeClock, work: (attempt: number) => unknown, calls = 3): Promise<ReturnType<typeof track>[]> {
  const tracked: ReturnType<typeof track>[] = [];
  for (let i = 0; i < calls; i++) {
    let promise: Promise<unknown>;
    try {
      promise = policy.execute(({ attempt }) => work(attempt) as never);
    } catch (error) {
      throw new Error(`execute threw synchronously mid-call: ${String(error)}`);
    }
    tracked.push(track(promise));
  }
  // Run every timer, letting the promise callbacks that schedule new ones run in between.
  for (let round = 0; round < 1_000; round++) {
    await clock.flush();
    if (clock.pendingTimers === 0) break;
    await clock.runAll(100_000);
  }
  return tracked;
}

const fails = (attempt: number): Promise<never> => Promise.reject(new Error(`attempt ${attempt} failed`));

interface EdgeCase {
  readonly name: string;
  readonly policy: (clock: FakeClock) => Policy<unknown>;
  readonly work: (attempt: number) => unknown;
  /** What each call must settle with. */
  readonly expect: 'fulfilled' | 'rejected' | 'either';
}

const EDGE_CASES: readonly EdgeCase[] = [
  { name: 'timeout at 1 ms', policy: (clock) => timeout({ ms: 1, clock }), work: () => new Promise(() => {}), expect: 'rejected' },
  { name: 'timeout at the timer limit', policy: (clock) => timeout({ ms: MAX_TIMER_MS, clock }), work: () => new Promise(() => {}), expect: 'rejected' },
  { name: 'timeout with fractional ms', policy: (clock) => timeout({ ms: 0.5 + 1, clock }), work: () => 'ok', expect: 'fulfilled' },
  { name: 'bulkhead at its largest', policy: (clock) => bulkhead({ maxConcurrent: Number.MAX_SAFE_INTEGER, maxQueue: Infinity, clock }), work: () => 'ok', expect: 'fulfilled' },
  { name: 'bulkhead queue timeout at the timer limit', policy: (clock) => bulkhead({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: MAX_TIMER_MS, clock }), work: () => Promise.resolve('ok'), expect: 'fulfilled' },
  { name: 'retry: Infinity attempts bounded by maxElapsedMs 0', policy: (clock) => retry({ maxAttempts: Infinity, maxElapsedMs: 0, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: maxElapsedMs at the timer limit', policy: (clock) => retry({ maxAttempts: 2, maxElapsedMs: MAX_TIMER_MS, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: constant backoff at the timer limit', policy: (clock) => retry({ maxAttempts: 2, backoff: constant({ ms: MAX_TIMER_MS }), clock }), work: fails, expect: 'rejected' },
  { name: 'retry: exponential at its limits', policy: (clock) => retry({ maxAttempts: 4, backoff: exponential({ initialMs: MAX_TIMER_MS, maxMs: MAX_TIMER_MS, factor: 100, jitter: 'none' }), clock }), work: fails, expect: 'rejected' },
  { name: 'retry: schedule returning NaN', policy: (clock) => retry({ backoff: { delayMs: () => NaN }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: schedule returning Infinity', policy: (clock) => retry({ backoff: { delayMs: () => Infinity }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: schedule returning -5', policy: (clock) => retry({ backoff: { delayMs: () => -5 }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: schedule returning a string', policy: (clock) => retry({ backoff: { delayMs: () => '10' as never }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: schedule that throws', policy: (clock) => retry({ backoff: { delayMs: () => { throw new Error('schedule bug'); } }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: random returning NaN', policy: (clock) => retry({ random: () => NaN, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: random returning 1e9', policy: (clock) => retry({ random: () => 1e9, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: random returning -1', policy: (clock) => retry({ random: () => -1, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: retryAfter returning NaN, Infinity, negative, text', policy: (clock) => {
    const answers = [NaN, Infinity, -5, 'soon', 1e12];
    let i = 0;
    return retry({ maxAttempts: 6, backoff: constant({ ms: 1 }), retryAfter: () => answers[i++ % answers.length] as never, clock });
  }, work: fails, expect: 'rejected' },
  { name: 'retry: retryAfter that throws', policy: (clock) => retry({ retryAfter: () => { throw new Error('parser bug'); }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: handle that throws', policy: (clock) => retry({ handle: () => { throw new Error('handle bug'); }, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: handle returning a non-boolean', policy: (clock) => retry({ handle: () => 'yes' as never, clock }), work: fails, expect: 'rejected' },
  { name: 'retry: zero-ratio budget', policy: (clock) => retry({ budget: retryBudget({ ratio: 0, minPerSecond: 0, windowMs: 10, clock }), clock }), work: fails, expect: 'rejected' },
  { name: 'retry: budget at its limits', policy: (clock) => retry({ budget: retryBudget({ ratio: 1, minPerSecond: 1_000_000, windowMs: MAX_TIMER_MS, clock }), clock }), work: fails, expect: 'rejected' },
  { name: 'circuitBreaker: largest count window', policy: (clock) => circuitBreaker({ window: { kind: 'count', calls: 100_000 }, minimumCalls: 100_000, clock }), work: fails, expect: 'rejected' },
  { name: 'circuitBreaker: time window at the timer limit', policy: (clock) => circuitBreaker({ window: { kind: 'time', ms: MAX_TIMER_MS, buckets: 1 }, minimumCalls: 1, clock }), work: fails, expect: 'rejected' },
  { name: 'circuitBreaker: halfOpenAfterMs 0', policy: (clock) => circuitBreaker({ minimumCalls: 1, halfOpenAfterMs: 0, clock }), work: fails, expect: 'rejected' },
  { name: 'circuitBreaker: open period schedule returning NaN', policy: (clock) => circuitBreaker({ minimumCalls: 1, halfOpenAfterMs: { delayMs: () => NaN }, clock }), work: fails, expect: 'rejected' },
  { name: 'circuitBreaker: handle returning a non-boolean', policy: (clock) => circuitBreaker({ minimumCalls: 1, handle: () => 1 as never, clock }), work: fails, expect: 'rejected' },
  { name: 'circuitBreaker: restored open at the timer limit', policy: (clock) => circuitBreaker({ initialState: { state: 'open', retryAfterMs: MAX_TIMER_MS }, clock }), work: () => 'ok', expect: 'rejected' },
  { name: 'throttle: at its limits', policy: (clock) => throttle({ requestsPerAccept: 1, minimumRequests: 1, maxRejectionProbability: 1, window: { ms: MAX_TIMER_MS, buckets: 1 }, clock }), work: fails, expect: 'rejected' },
  { name: 'throttle: random returning NaN', policy: (clock) => throttle({ minimumRequests: 1, random: () => NaN, clock }), work: fails, expect: 'rejected' },
  { name: 'throttle: random returning -1', policy: (clock) => throttle({ minimumRequests: 1, random: () => -1, clock }), work: () => 'ok', expect: 'either' },
  { name: 'throttle: random that throws', policy: (clock) => throttle({ minimumRequests: 1, random: () => { throw new Error('random bug'); }, clock }), work: fails, expect: 'rejected' },
  { name: 'throttle: handle returning a non-boolean', policy: (clock) => throttle({ minimumRequests: 1, handle: () => 'yes' as never, clock }), work: fails, expect: 'rejected' },
  { name: 'fallback: factory that throws', policy: () => fallback({ factory: () => { throw new Error('factory bug'); } }), work: fails, expect: 'rejected' },
  { name: 'fallback: factory returning a rejected promise', policy: () => fallback({ factory: () => Promise.reject(new Error('factory bug')) }), work: fails, expect: 'rejected' },
  { name: 'fallback: handle that throws', policy: () => fallback({ value: 1, handle: () => { throw new Error('handle bug'); } }), work: fails, expect: 'rejected' },
  { name: 'fallback: undefined as the value', policy: () => fallback({ value: undefined }), work: fails, expect: 'fulfilled' },
  { name: 'pipeline: empty', policy: () => pipeline(), work: () => 'ok', expect: 'fulfilled' },
  { name: 'pipeline: name of 100 characters', policy: () => pipeline({ name: `a${'b'.repeat(99)}` }), work: () => 'ok', expect: 'fulfilled' },
];

describe('options that pass construction never make a call throw later', () => {
  it.each(EDGE_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const clock = new FakeClock();
    const tracked = await exercise(c.policy(clock), clock, c.work);
    for (const t of tracked) {
      expect(t.settledCount).toBe(1);
      if (c.expect !== 'either') expect(t.status).toBe(c.expect);
    }
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('options named as in opossum, cockatiel or p-retry say what to write instead', () => {
  it.each([
    [() => circuitBreaker({ errorThresholdPercentage: 50 } as never), /unknown option "errorThresholdPercentage" \(opossum's errorThresholdPercentage is failureRateThreshold, a share: 50 becomes 0\.5\)/],
    [() => circuitBreaker({ resetTimeout: 30_000 } as never), /opossum's resetTimeout is halfOpenAfterMs/],
    [() => circuitBreaker({ halfOpenAfter: 1_000 } as never), /cockatiel's halfOpenAfter is halfOpenAfterMs/],
    [() => retry({ retries: 2 } as never), /p-retry's retries is maxAttempts minus one/],
    [() => timeout({ milliseconds: 5 } as never), /p-timeout's milliseconds is ms/],
    [() => bulkhead({ concurrency: 4 } as never), /p-limit's concurrency is maxConcurrent/],
    [() => throttle({ k: 2 } as never), /unknown option "k" \(the SRE book's K is requestsPerAccept\)/],
    [() => throttle({ srThreshold: 0.5 } as never), /Envoy's sr_threshold is 1 \/ requestsPerAccept/],
  ])('%#', (make, message) => {
    expect(make).toThrow(message);
    expect(make).toThrow(/; known options are /);
  });
});

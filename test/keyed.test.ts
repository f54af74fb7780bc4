import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { bulkhead, circuitBreaker, fallback, keyed, type Pipeline, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { delayed } from './helpers.ts';

describe('keyed pipelines', () => {
  it('one pipeline per key, named name:key, created on first use and reused', async () => {
    const made: string[] = [];
    const hosts = keyed({ name: 'upstream', create: (key) => (made.push(key), [circuitBreaker(), timeout({ ms: 100 })]) });
    expect(await hosts.execute('a.example', () => 1)).toBe(1);
    expect(await hosts.execute('b.example', () => 2)).toBe(2);
    expect(await hosts.execute('a.example', () => 3)).toBe(3);
    expect(made).toEqual(['a.example', 'b.example']);
    expect(hosts.get('a.example').name).toBe('upstream:a.example');
    expect(hosts.size).toBe(2);
  });

  it('keeps a breaker per key: one key failing does not open another', async () => {
    const tenants = keyed({ name: 'tenants', create: () => [circuitBreaker({ minimumCalls: 1 })] });
    await tenants.execute('acme', () => Promise.reject(new Error('down'))).catch(() => undefined);
    await expect(tenants.execute('acme', () => 'x')).rejects.toThrow(/pipeline "tenants:acme": the circuit is open/);
    expect(await tenants.execute('globex', () => 'fine')).toBe('fine');
  });

  it('evicts the least recently used key beyond maxKeys and disposes its pipeline; its calls in flight finish', async () => {
    const clock = new FakeClock();
    const evicted: string[] = [];
    const k = keyed({ name: 'k', maxKeys: 2, create: () => [timeout({ ms: 50, clock })] });
    k.onEvict(({ key }) => evicted.push(key));
    const a = k.get('a');
    const inFlight = a.execute(() => delayed(clock, 10, 'a done'));
    k.get('b');
    k.get('a'); // a is now the most recently used
    k.get('c'); // evicts b
    expect(evicted).toEqual(['b']);
    expect(k.keys()).toEqual(['a', 'c']);
    k.get('d'); // evicts a, which has a call in flight
    expect(evicted).toEqual(['b', 'a']);
    expect(a.disposed).toBe(true);
    await clock.advance(10);
    expect(await inFlight).toBe('a done');
    expect(clock.pendingTimers).toBe(0);
    expect(k.get('a')).not.toBe(a); // a new pipeline, with fresh statistics
  });

  it('its metrics are bounded by maxKeys: evicted keys leave the registry', async () => {
    const { prometheusMetrics } = await import('../src/prometheus/index.ts');
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const k = keyed({ name: 'users', maxKeys: 3, create: () => [timeout({ ms: 100 })] });
    const detach: (() => void)[] = [];
    k.onCreate(({ pipeline }) => detach.push(metrics.attach(pipeline)));
    for (let i = 0; i < 20; i++) await k.execute(`u${i}`, () => i);
    const text = await registry.metrics();
    const names = new Set([...text.matchAll(/pipeline="([^"]+)"/g)].map((m) => m[1]));
    expect([...names].sort()).toEqual(['users:u17', 'users:u18', 'users:u19']);
  });

  it('infers the fallback type', () => {
    const k = keyed({ name: 'f', create: () => [fallback({ value: 0 }), timeout({ ms: 5 })] });
    expectTypeOf(k.execute('x', () => 'text')).toEqualTypeOf<Promise<string | number>>();
    expectTypeOf(k.get('x')).toEqualTypeOf<Pipeline<number>>();
  });

  it('refuses bad keys, bad options and policies shared between keys', () => {
    const shared = timeout({ ms: 5 });
    const k = keyed({ name: 'k', create: () => [shared] });
    k.get('one');
    expect(() => k.get('two')).toThrow(/create\("two"\) returned a timeout instance another key already uses/);
    expect(() => k.get('has space')).toThrow(/a key must be 1 to 39 letters, digits or _ \. : \/ -; received "has space" \(string\)/);
    expect(() => k.get('x'.repeat(40))).toThrow(/a key must be 1 to 39/);
    expect(() => keyed({ name: 'k', create: () => [], maxKeys: 0 })).toThrow(/keyed: option "maxKeys" must be/);
    expect(() => keyed({ name: 'k' } as never)).toThrow(/keyed: option "create" is required/);
    expect(() => keyed({ name: 'x'.repeat(61), create: () => [] })).toThrow(/keyed: option "name" must be/);
    expect(() => keyed({ name: 'k', create: () => 'nope' as never }).get('a')).toThrow(/must return an array of policies/);
    k.dispose();
    expect(() => k.get('one')).toThrow(/keyed "k": disposed/);
    expect(k.size).toBe(0);
  });

  it('property: never more than maxKeys live, the evicted key is always the least recently used, each evicted pipeline is disposed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.oneof(fc.record({ op: fc.constant('get' as const), key: fc.integer({ min: 0, max: 9 }) }), fc.record({ op: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 9 }) })), { maxLength: 60 }),
        (maxKeys, ops) => {
          const k = keyed({ name: 'p', maxKeys, create: () => [bulkhead({ maxConcurrent: 1 })] });
          const evicted: { key: string; pipeline: Pipeline<unknown> }[] = [];
          k.onEvict((e) => evicted.push(e));
          const model: string[] = []; // least recently used first
          for (const { op, key } of ops) {
            const name = `k${key}`;
            if (op === 'delete') {
              const was = model.indexOf(name);
              expect(k.delete(name)).toBe(was >= 0);
              if (was >= 0) model.splice(was, 1);
            } else {
              const at = model.indexOf(name);
              if (at >= 0) model.splice(at, 1);
              model.push(name);
              if (model.length > maxKeys) {
                const lru = model.shift()!;
                const before = evicted.length;
                k.get(name);
                expect(evicted.length).toBe(before + 1);
                expect(evicted.at(-1)!.key).toBe(lru);
                continue;
              }
              k.get(name);
            }
            expect(k.size).toBeLessThanOrEqual(maxKeys);
            expect(k.keys()).toEqual(model);
          }
          for (const { pipeline } of evicted) expect(pipeline.disposed).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('keyed: what mutation testing showed unpinned', () => {
  it("is of kind 'keyed'", () => {
    expect(keyed({ name: 'k', create: () => [] }).kind).toBe('keyed');
  });

  it('checks a key by its own rule before it becomes part of a pipeline name', () => {
    const k = keyed({ name: 'k', create: () => [] });
    // 40 characters would make a valid pipeline name ("k:" + key), but not a key.
    expect(() => k.get('y'.repeat(40))).toThrow(/^keyed "k": a key must be 1 to 39 letters, digits or _ \. : \/ -; received /);
    expect(() => k.get('y'.repeat(40))).toThrow(TypeError);
    // Not strings, though they read as valid keys.
    for (const key of [123, ['abc']]) expect(() => k.get(key as never)).toThrow(/a key must be 1 to 39 letters/);
    expect(k.size).toBe(0);
    expect(k.get('y'.repeat(39)).name).toBe(`k:${'y'.repeat(39)}`);
  });

  it('takes a base name of up to 60 characters, as a string only, and says what a name must be', () => {
    expect(keyed({ name: 'n'.repeat(60), create: () => [] }).name).toBe('n'.repeat(60));
    const rule = 'a string of 1 to 60 letters, digits or _ . : / - starting with a letter or digit (with the key, it becomes a metrics label value)';
    expect(() => keyed({ name: 'n'.repeat(61), create: () => [] })).toThrow(rule);
    expect(() => keyed({ name: ['abc'] as never, create: () => [] })).toThrow(rule); // an array that reads as a valid name
  });
});

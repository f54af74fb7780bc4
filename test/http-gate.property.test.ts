/**
 * Properties of the admission gate, in virtual time: requests of random
 * classes arrive, take random times, finish, fail, answer 503 themselves or
 * lose their client. Whatever happens, a class below its reservation is always
 * admitted, the requests in flight never exceed the limit, every admitted
 * request releases its slot exactly once, and at the end nothing is held (not
 * by the gate, not by its bulkhead or adaptive limit).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { aimd, gradient } from '../src/index.ts';
import { type GatePermit, gateListener, type HttpGate, httpGate } from '../src/http/index.ts';
import { FakeClock } from '../src/testing/index.ts';

/** Just enough of a ServerResponse for the gate: `close` comes a tick after the end, once. */
class FakeResponse extends EventEmitter {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  statusCode = 200;
  readonly headers: Record<string, string> = {};
  setHeader(name: string, value: string): void {
    this.headers[name] = value;
  }
  end(): void {
    if (this.writableEnded || this.destroyed) return;
    this.headersSent = true;
    this.writableEnded = true;
    this.writableFinished = true;
    queueMicrotask(() => this.emit('close'));
  }
  destroy(): void {
    if (this.destroyed) return;
    const wasOpen = !this.writableEnded;
    this.destroyed = true;
    if (wasOpen) queueMicrotask(() => this.emit('close'));
  }
}

type Ending = 'finish' | 'self-503' | 'throw' | 'reject' | 'disconnect' | 'fail-after-head';

const arrival = fc.record({
  gapMs: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 20 }) }),
  klass: fc.constantFrom('health', 'critical', 'other', 'unknown'),
  durationMs: fc.integer({ min: 0, max: 60 }),
  ending: fc.constantFrom<Ending>('finish', 'finish', 'finish', 'self-503', 'throw', 'reject', 'disconnect', 'fail-after-head'),
});

const config = fc.record({
  adaptive: fc.boolean(),
  limit: fc.integer({ min: 1, max: 12 }),
  health: fc.option(fc.double({ min: 0.01, max: 0.4, noNaN: true }), { nil: undefined }),
  critical: fc.option(fc.double({ min: 0.01, max: 0.5, noNaN: true }), { nil: undefined }),
  gradientAlgorithm: fc.boolean(),
});

describe('httpGate (properties)', () => {
  it('reserved slots are always there for their class, in-flight never exceeds the limit, every permit is released exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(arrival, { minLength: 1, maxLength: 60 }), async (cfg, arrivals) => {
        const clock = new FakeClock();
        const classes: Record<string, { share: number }> = {};
        if (cfg.health !== undefined) classes.health = { share: cfg.health };
        if (cfg.critical !== undefined) classes.critical = { share: cfg.critical };
        const errors: unknown[] = [];
        const gate: HttpGate = httpGate({
          name: 'api',
          ...(cfg.adaptive
            ? { adaptive: { algorithm: cfg.gradientAlgorithm ? gradient() : aimd(), minLimit: 1, maxLimit: cfg.limit + 4, initialLimit: cfg.limit } }
            : { maxConcurrent: cfg.limit }),
          classes,
          classify: (request) => (request.headers['x-class'] as string | undefined),
          onError: (error) => errors.push(error),
          clock,
        });

        // Count every release per permit, and check admission against the rules at the moment of each decision.
        const releases = new Map<number, number>();
        let next = 0;
        let handled = 0;
        let failing = 0;
        let current = -1;
        const release = gate._release.bind(gate);
        gate._release = (state) => {
          releases.set(current, (releases.get(current) ?? 0) + 1);
          release(state);
        };
        const acquire = gate.tryAcquire.bind(gate);
        gate.tryAcquire = (className) => {
          const state = gate.classes.find((c) => c.name === className) ?? gate.classes.find((c) => c.name === 'default')!;
          const limit = gate.limit;
          const inFlightBefore = gate.inFlight;
          const permit = acquire(className);
          // state.reserved is now computed for `limit`.
          if (state.inFlight - (permit ? 1 : 0) < state.reserved && inFlightBefore < limit) expect(permit).toBeDefined();
          if (permit !== undefined) {
            expect(gate.inFlight).toBeLessThanOrEqual(limit);
            const id = next++;
            const original = permit.release.bind(permit);
            (permit as { release: typeof permit.release }).release = (outcome) => {
              const saved = current;
              current = id;
              original(outcome);
              current = saved;
            };
            releases.set(id, 0);
          }
          return permit;
        };

        const listener = gateListener(gate, (request: IncomingMessage, response: ServerResponse) => {
          handled++;
          const { ending, durationMs } = (request as unknown as { plan: (typeof arrivals)[number] }).plan;
          if (ending === 'throw' || ending === 'reject' || ending === 'fail-after-head') failing++;
          const res = response as unknown as FakeResponse;
          if (ending === 'throw') throw new Error('handler bug');
          return new Promise<void>((resolve, reject) => {
            clock.schedule(() => {
              if (ending === 'finish') res.end();
              else if (ending === 'self-503') {
                res.statusCode = 503;
                res.end();
              } else if (ending === 'disconnect') {
                res.destroy(); // the client went away; the handler's own end later must not release again
                res.end();
              } else if (ending === 'fail-after-head') {
                res.headersSent = true;
                reject(new Error('late failure'));
                return;
              } else reject(new Error('async failure'));
              resolve();
            }, durationMs);
          });
        });

        let shed = 0;
        for (const plan of arrivals) {
          if (plan.gapMs > 0) await clock.advance(plan.gapMs);
          const request = { headers: { 'x-class': plan.klass }, url: '/', method: 'GET', plan };
          const response = new FakeResponse();
          listener(request as unknown as IncomingMessage, response as unknown as ServerResponse);
          if (response.statusCode === 503 && response.headers['retry-after'] === '1') shed++;
        }
        await clock.advance(1_000);
        await new Promise((resolve) => setImmediate(resolve));

        const admitted = gate.classes.reduce((sum, c) => sum + c.admitted, 0);
        expect(admitted).toBe(handled);
        expect(admitted + gate.classes.reduce((sum, c) => sum + c.shed, 0)).toBe(arrivals.length);
        expect(shed).toBeGreaterThanOrEqual(gate.classes.reduce((sum, c) => sum + c.shed, 0));
        expect([...releases.values()].every((n) => n === 1)).toBe(true);
        expect(releases.size).toBe(admitted);
        expect(gate.inFlight).toBe(0);
        expect(gate.classes.every((c) => c.inFlight === 0)).toBe(true);
        const limiter = gate.limiter as { active?: number; inFlight?: number; queued: number };
        expect(limiter.active ?? limiter.inFlight).toBe(0);
        expect(limiter.queued).toBe(0);
        expect(errors.length).toBe(failing);
      }),
      { numRuns: 200 },
    );
  });

  it('a burst never takes the reserved slots: with the shared part full, each class still gets exactly its reservation; a second release gives nothing back', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 200 }), fc.double({ min: 0.01, max: 0.5, noNaN: true }), async (limit, healthShare) => {
        const gate = httpGate({ name: 'api', maxConcurrent: limit, classes: { health: { share: healthShare } } });
        const permits: GatePermit[] = [];
        const fill = (className: string): number => {
          let n = 0;
          for (let p = gate.tryAcquire(className); p !== undefined; p = gate.tryAcquire(className)) permits.push(p), n++;
          return n;
        };
        const other = fill('default');
        const health = fill('health');
        const reserved = Math.min(limit, Math.max(1, Math.floor(limit * healthShare)));
        expect(other).toBe(limit - reserved);
        expect(health).toBe(reserved);
        expect(gate.inFlight).toBe(limit);
        // Releasing twice gives back one slot per permit, and the same burst fits again.
        for (const p of permits.splice(0)) {
          p.release();
          p.release('dropped');
        }
        expect(gate.inFlight).toBe(0);
        expect([fill('default'), fill('health'), gate.inFlight]).toEqual([limit - reserved, reserved, limit]);
        for (const p of permits) p.release('abandoned');
        await Promise.resolve();
        await new Promise((resolve) => setImmediate(resolve));
        expect([gate.inFlight, (gate.limiter as { active: number }).active, gate.limiter.queued]).toEqual([0, 0, 0]);
      }),
    );
  });
});

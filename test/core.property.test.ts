/**
 * Property tests of the core: whatever the composition of timeouts and
 * fallbacks and whatever the work does, each call settles exactly once, at the
 * right time, with the caller's reason when the caller aborts, and leaves no timer.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fallback, isTimeoutError, pipeline, type Policy, timeout, type Work } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { track } from './helpers.ts';

type Behaviour =
  | { kind: 'resolve'; afterMs: number }
  | { kind: 'reject'; afterMs: number }
  | { kind: 'hang' }
  | { kind: 'throwSync' }
  | { kind: 'throwNonError'; value: unknown }
  | { kind: 'value' }
  | { kind: 'neverThenable' }
  | { kind: 'honourAbort'; afterMs: number };

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.record({ kind: fc.constant('resolve' as const), afterMs: fc.integer({ min: 0, max: 300 }) }),
  fc.record({ kind: fc.constant('reject' as const), afterMs: fc.integer({ min: 0, max: 300 }) }),
  fc.constant({ kind: 'hang' as const }),
  fc.constant({ kind: 'throwSync' as const }),
  fc.record({ kind: fc.constant('throwNonError' as const), value: fc.constantFrom('str', undefined, null, 0, { x: 1 }) }),
  fc.constant({ kind: 'value' as const }),
  fc.constant({ kind: 'neverThenable' as const }),
  fc.record({ kind: fc.constant('honourAbort' as const), afterMs: fc.integer({ min: 0, max: 300 }) }),
);

type Layer = { kind: 'timeout'; ms: number } | { kind: 'fallback' };
const layer: fc.Arbitrary<Layer> = fc.oneof(
  fc.record({ kind: fc.constant('timeout' as const), ms: fc.integer({ min: 1, max: 200 }) }),
  fc.constant({ kind: 'fallback' as const }),
);

function workFor(b: Behaviour, clock: FakeClock): Work<string> {
  return ({ signal }) => {
    switch (b.kind) {
      case 'resolve':
        return new Promise((resolve) => clock.schedule(() => resolve('ok'), b.afterMs));
      case 'reject':
        return new Promise((_, reject) => clock.schedule(() => reject(new Error('fail')), b.afterMs));
      case 'hang':
        return new Promise(() => {});
      case 'throwSync':
        throw new Error('sync');
      case 'throwNonError':
        throw b.value;
      case 'value':
        return 'plain';
      case 'neverThenable':
        return { then() {} } as PromiseLike<string>;
      case 'honourAbort':
        return new Promise((resolve, reject) => {
          const h = clock.schedule(() => {
            signal.removeEventListener('abort', onAbort);
            resolve('ok');
          }, b.afterMs);
          const onAbort = (): void => {
            clock.cancel(h);
            reject(signal.reason);
          };
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        });
    }
  };
}

function build(layers: Layer[], clock: FakeClock): Policy<string> {
  const policies = layers.map((l) => (l.kind === 'timeout' ? timeout({ ms: l.ms, clock }) : fallback({ value: 'fb' })));
  return pipeline(...policies);
}

/** Hanging work leaves its own never-settling promise: only the policies' timers count. */
const hangs = (b: Behaviour) => b.kind === 'hang' || b.kind === 'neverThenable';

describe('core properties', () => {
  it('each call settles exactly once, with the caller reason on abort, and leaves no policy timer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(layer, { maxLength: 4 }),
        fc.array(fc.record({ b: behaviour, abortAtMs: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }), startAtMs: fc.integer({ min: 0, max: 100 }) }), { minLength: 1, maxLength: 6 }),
        async (layers, calls) => {
          const clock = new FakeClock();
          const policy = build(layers, clock);
          const started: { t: ReturnType<typeof track<string>>; reason: unknown; abortAt: number | undefined; b: Behaviour }[] = [];
          for (const c of calls) {
            const controller = new AbortController();
            const reason = { abortedBy: 'caller' };
            clock.schedule(() => {
              const t = track(policy.execute(workFor(c.b, clock), { signal: controller.signal }));
              started.push({ t, reason, abortAt: c.abortAtMs, b: c.b });
              if (c.abortAtMs !== undefined) clock.schedule(() => controller.abort(reason), c.abortAtMs);
            }, c.startAtMs);
          }
          await clock.advance(1_000);
          const allLayersTimeout = layers.some((l) => l.kind === 'timeout');
          for (const s of started) {
            expect(s.t.settledCount).toBeLessThanOrEqual(1);
            // With a caller abort or any timeout layer, every call settles, whatever the work does.
            if (s.abortAt !== undefined || allLayersTimeout || !hangs(s.b)) {
              expect(s.t.settledCount).toBe(1);
            }
            if (s.t.status === 'rejected' && s.t.error === s.reason) {
              expect(s.abortAt).not.toBeUndefined();
            }
          }
          // Hanging work ignores its signal, so only policy timers could remain: none may.
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a timeout fires at its deadline and never before', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 5_000 }), async (ms, startAt) => {
        const clock = new FakeClock(startAt);
        const t = track(timeout({ ms, clock }).execute(() => new Promise<never>(() => {})));
        await clock.advance(ms - 1);
        expect(t.status).toBe('pending');
        await clock.advance(1);
        expect(isTimeoutError(t.error)).toBe(true);
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('an already-aborted caller signal means the work is never called and the reason is unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(layer, { maxLength: 4 }), fc.anything(), async (layers, reason) => {
        const clock = new FakeClock();
        let called = 0;
        const controller = new AbortController();
        controller.abort(reason);
        const t = track(build(layers, clock).execute(() => { called++; return 'x'; }, { signal: controller.signal }));
        await clock.flush();
        expect(called).toBe(0);
        expect(t.status).toBe('rejected');
        expect(t.error).toBe(controller.signal.reason);
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('the caller abort reason arrives unchanged through any composition', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(layer, { maxLength: 4 }), behaviour, fc.integer({ min: 0, max: 50 }), async (layers, b, abortAt) => {
        const clock = new FakeClock();
        const controller = new AbortController();
        const reason = new Error('caller');
        const minTimeout = Math.min(...layers.filter((l) => l.kind === 'timeout').map((l) => (l as { ms: number }).ms), Infinity);
        const t = track(build(layers, clock).execute(workFor(b, clock), { signal: controller.signal }));
        clock.schedule(() => controller.abort(reason), abortAt);
        await clock.advance(1_000);
        // If the call was still running when the caller aborted, the caller's reason is what it rejects with.
        const finishesEarly = b.kind === 'throwSync' || b.kind === 'throwNonError' || b.kind === 'value' ||
          ((b.kind === 'resolve' || b.kind === 'reject' || b.kind === 'honourAbort') && b.afterMs <= abortAt) || minTimeout <= abortAt;
        if (!finishesEarly) expect(t.error).toBe(reason);
        expect(t.settledCount).toBe(1);
      }),
      { numRuns: 300 },
    );
  });
});

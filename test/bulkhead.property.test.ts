import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bulkhead, type Clock, isBulkheadRejectedError, pipeline, type Policy, timeout, TimeoutError } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { countingClock, runAllTimers } from './helpers.ts';



type Outcome = 'ok' | 'fail' | 'sync-throw' | 'non-error';

interface CallOp {
  kind: 'call';
  gapMs: number;
  durationMs: number;
  outcome: Outcome;
  honoursAbort: boolean;
  abortAfterMs: number | undefined;
}
interface SetMaxOp {
  kind: 'set-max';
  value: number;
}
type Op = CallOp | SetMaxOp;

const callOp: fc.Arbitrary<Op> = fc.record({
  kind: fc.constant('call' as const),
  gapMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 40 })),
  durationMs: fc.integer({ min: 0, max: 80 }),
  outcome: fc.constantFrom<Outcome>('ok', 'ok', 'fail', 'sync-throw', 'non-error'),
  honoursAbort: fc.boolean(),
  abortAfterMs: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
});
const setMaxOp: fc.Arbitrary<Op> = fc.record({ kind: fc.constant('set-max' as const), value: fc.integer({ min: 1, max: 5 }) });

const config = fc
  .record({
    maxConcurrent: fc.integer({ min: 1, max: 4 }),
    maxQueue: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(Infinity)),
    queueTimeoutMs: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }),
    outerTimeoutMs: fc.option(fc.integer({ min: 1, max: 150 }), { nil: undefined }),
  })
  .map((c) => (c.maxQueue === 0 ? { ...c, queueTimeoutMs: undefined } : c));

interface Record {
  calledAt: number;
  startedAt: number | undefined;
  abortedAt: number | undefined;
  settledAt: number | undefined;
  settled: number;
  error: unknown;
}

describe('bulkhead (properties)', () => {
  it('never runs more than maxConcurrent, frees every permit, drops aborted calls from the queue at once, leaves no timer', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(fc.oneof({ weight: 9, arbitrary: callOp }, { weight: 1, arbitrary: setMaxOp }), { maxLength: 40 }), async (cfg, ops) => {
        const clock = new FakeClock();
        const own = countingClock(clock);
        const b = bulkhead({
          maxConcurrent: cfg.maxConcurrent,
          maxQueue: cfg.maxQueue,
          ...(cfg.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: cfg.queueTimeoutMs }),
          clock: own,
        });
        const policy: Policy =
          cfg.outerTimeoutMs === undefined ? b : pipeline(timeout({ ms: cfg.outerTimeoutMs, clock }), b);
        let running = 0;
        const records: Record[] = [];
        const violations: string[] = [];
        const checkQueue = (): void => {
          if (b.queued > b.maxQueue) violations.push(`queued ${b.queued} > maxQueue ${b.maxQueue}`);
          // nobody waits while a slot is free
          if (b.queued > 0 && b.active < b.maxConcurrent) violations.push(`${b.queued} waiting with ${b.active} of ${b.maxConcurrent} slots taken`);
          // the queue timer lives only while someone waits, and there is only one
          if (own.pending > (b.queued > 0 ? 1 : 0)) violations.push(`${own.pending} bulkhead timer(s) with ${b.queued} waiting`);
        };
        for (const op of ops) {
          if (op.kind === 'set-max') {
            b.maxConcurrent = op.value;
            checkQueue();
            continue;
          }
          await clock.advance(op.gapMs);
          checkQueue();
          const record: Record = { calledAt: clock.now(), startedAt: undefined, abortedAt: undefined, settledAt: undefined, settled: 0, error: undefined };
          records.push(record);
          const controller = new AbortController();
          if (op.abortAfterMs !== undefined) {
            clock.schedule(() => {
              record.abortedAt = clock.now();
              const waiting = record.startedAt === undefined && record.settled === 0;
              const queuedBefore = b.queued;
              controller.abort(new Error('caller abort'));
              // a waiting call leaves the queue synchronously, on the abort itself
              if (waiting && b.queued !== queuedBefore - 1) violations.push('an aborted call stayed in the queue');
            }, op.abortAfterMs);
          }
          const promise = policy.execute(
            ({ signal }) => {
              record.startedAt = clock.now();
              if (record.abortedAt !== undefined) violations.push('a call started after its caller aborted');
              running++;
              if (running > b.maxConcurrent) violations.push(`running ${running} > maxConcurrent ${b.maxConcurrent}`);
              if (op.outcome === 'sync-throw') {
                running--;
                throw new Error('sync');
              }
              return new Promise<string>((resolve, reject) => {
                let done = false;
                const promiseDone: (() => void)[] = [];
                const finish = (settle: () => void): void => {
                  if (done) return;
                  done = true;
                  running--;
                  clock.cancel(timer);
                  promiseDone.forEach((f) => f());
                  settle();
                  checkQueue();
                };
                const timer = clock.schedule(
                  () =>
                    finish(() => {
                      if (op.outcome === 'ok') resolve('ok');
                      else if (op.outcome === 'fail') reject(new Error('fail'));
                      else reject('not an error'); // eslint-disable-line prefer-promise-reject-errors
                    }),
                  op.durationMs,
                );
                if (op.honoursAbort) {
                  const onAbort = (): void => finish(() => reject(signal.reason));
                  signal.addEventListener('abort', onAbort, { once: true });
                  const settle = (): void => signal.removeEventListener('abort', onAbort);
                  promiseDone.push(settle);
                }
              });
            },
            { signal: controller.signal },
          );
          const settled = (): void => {
            record.settled++;
            record.settledAt = clock.now();
            // no listener of Breakwater's is left on the caller's signal
            if (getEventListeners(controller.signal, 'abort').length !== 0) violations.push('an abort listener was left on a settled call');
          };
          promise.then(settled, (error: unknown) => {
            record.error = error;
            settled();
          });
          checkQueue();
        }
        await runAllTimers(clock);
        expect(violations).toEqual([]);
        for (const r of records) {
          expect(r.settled).toBe(1);
          // a call aborted before it got a slot never runs and settles at the abort
          if (r.abortedAt !== undefined && (r.startedAt === undefined || r.startedAt > r.abortedAt)) {
            expect(r.startedAt).toBeUndefined();
            expect(r.settledAt).toBeLessThanOrEqual(r.abortedAt);
          }
          if (r.startedAt === undefined && r.error instanceof TimeoutError) {
            expect(r.settledAt).toBe(r.calledAt + cfg.outerTimeoutMs!);
          }
          if (isBulkheadRejectedError(r.error) && /waited/.test((r.error as Error).message)) {
            expect(r.startedAt).toBeUndefined();
            expect(r.settledAt! - r.calledAt).toBe(cfg.queueTimeoutMs);
          }
          if (cfg.queueTimeoutMs !== undefined && r.startedAt !== undefined) {
            expect(r.startedAt - r.calledAt).toBeLessThanOrEqual(cfg.queueTimeoutMs);
          }
        }
        expect([b.active, b.queued]).toEqual([0, 0]);
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});

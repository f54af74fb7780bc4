/**
 * The queue shared by `rateLimiter` and `fleetRateLimiter`, driven directly with a
 * token source of the test's own: the deadline (`expired`) and `clear` paths are the
 * fleet limiter's, whose own suites need a Redis server.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Chain, Scope } from '../src/core/protocol.ts';
import { TokenQueue, type TokenSource } from '../src/core/token-queue.ts';
import { FakeClock } from '../src/testing/index.ts';
import { abortListenerCount, track } from './helpers.ts';

/** A token source handing out the tokens the test puts in `tokens`; otherwise "retry in `retryInMs`". */
function source(options: { retryInMs?: number; expiring?: boolean } = {}) {
  const s = {
    tokens: 0,
    admittedAfter: [] as number[],
    expiredWith: [] as number[],
    take(): number {
      if (s.tokens > 0) {
        s.tokens--;
        return 0;
      }
      return options.retryInMs ?? 100;
    },
    admitted(waitedMs: number): void {
      s.admittedAfter.push(waitedMs);
    },
  };
  const expired = (chain: Chain<unknown>, retryInMs: number): unknown => {
    s.expiredWith.push(retryInMs);
    return new Error(`expired ${(chain as unknown as { name: string }).name}`);
  };
  return Object.assign(s, options.expiring === true ? { expired } : {}) as typeof s & TokenSource;
}

/** A chain whose `next` records how it was called and answers with the layer index it was asked for. */
function chain(name = 'call') {
  const calls: [number, Scope | undefined, number][] = [];
  const c = {
    name,
    calls,
    next(index: number, scope: Scope | undefined, attempt: number): Promise<unknown> {
      calls.push([index, scope, attempt]);
      return Promise.resolve(`${name} went on to layer ${index}`);
    },
  };
  return c as typeof c & Chain<unknown>;
}

describe('token queue', () => {
  it('hands a waiter on to the next layer with its scope and attempt, and reports how long it waited', async () => {
    const clock = new FakeClock(500);
    const tokens = source();
    const queue = new TokenQueue(tokens, clock);
    const c = chain();
    const scope = { signal: new AbortController().signal };
    const call = track(queue.wait(c, 3, scope, 2, 100));
    expect(queue.size).toBe(1);
    tokens.tokens = 1;
    await clock.advance(100);
    expect(call.value).toBe('call went on to layer 4');
    expect(c.calls).toEqual([[4, scope, 2]]);
    expect(tokens.admittedAfter).toEqual([100]);
    expect(queue.size).toBe(0);
  });

  it('takes its abort listener off the signal when the waiter gets its token', async () => {
    const clock = new FakeClock();
    const tokens = source();
    const queue = new TokenQueue(tokens, clock);
    const controller = new AbortController();
    const call = track(queue.wait(chain(), 0, { signal: controller.signal }, 1, 10));
    expect(abortListenerCount(controller.signal)).toBe(1);
    tokens.tokens = 1;
    await clock.advance(10);
    expect(call.status).toBe('fulfilled');
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('refuses a call whose scope is already aborted, without queueing it', async () => {
    const queue = new TokenQueue(source(), new FakeClock());
    const controller = new AbortController();
    const reason = new Error('gone');
    controller.abort(reason);
    await expect(queue.wait(chain(), 0, { signal: controller.signal }, 1, 10)).rejects.toBe(reason);
    expect(queue.size).toBe(0);
  });

  it('rejects a waiter with its scope abort reason and lets the others keep their places', async () => {
    const clock = new FakeClock();
    const tokens = source();
    const queue = new TokenQueue(tokens, clock);
    const controller = new AbortController();
    const first = track(queue.wait(chain('first'), 0, { signal: controller.signal }, 1, 10));
    const second = track(queue.wait(chain('second'), 0, undefined, 1, 10));
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await clock.flush();
    expect(first.status).toBe('rejected');
    expect(first.error).toBe(reason);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(queue.size).toBe(1);
    tokens.tokens = 1;
    await clock.advance(10);
    expect(second.value).toBe('second went on to layer 1');
  });

  it('with a deadline, refuses the head at exactly maxWaitMs after it joined, with what the source says', async () => {
    const clock = new FakeClock();
    await clock.advance(500); // a deadline counted from the join, not from time 0
    const tokens = source({ retryInMs: 30, expiring: true }); // woken every 30 ms before the deadline
    const queue = new TokenQueue(tokens, clock, 100);
    const controller = new AbortController();
    const call = track(queue.wait(chain('late'), 0, { signal: controller.signal }, 1, 30));
    await clock.advance(99);
    expect(call.status).toBe('pending');
    await clock.advance(1);
    expect(call.status).toBe('rejected');
    expect((call.error as Error).message).toBe('expired late');
    expect(tokens.expiredWith).toEqual([30]);
    expect(queue.size).toBe(0);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.scheduledTimers).toBe(0);
  });

  it('with a deadline far off, arms its timer for the deadline when that comes before the token', async () => {
    const clock = new FakeClock();
    await clock.advance(500);
    const queue = new TokenQueue(source({ retryInMs: 1_000, expiring: true }), clock, 100);
    const call = track(queue.wait(chain(), 0, undefined, 1, 1_000));
    expect(clock.nextTimerAt).toBe(600);
    await clock.advance(100);
    expect(call.status).toBe('rejected');
  });

  it('ignores maxWaitMs for a source that cannot refuse a waiter', async () => {
    const clock = new FakeClock();
    const tokens = source({ retryInMs: 300 });
    const queue = new TokenQueue(tokens, clock, 100);
    const call = track(queue.wait(chain(), 0, undefined, 1, 300));
    expect(clock.nextTimerAt).toBe(300); // not woken at the deadline it cannot act on
    await clock.advance(299);
    expect(call.status).toBe('pending');
    tokens.tokens = 1;
    await clock.advance(1);
    expect(call.status).toBe('fulfilled');
  });

  it('clear refuses every waiter with the error made for its call, removes their listeners and stops the timer', async () => {
    const clock = new FakeClock();
    const queue = new TokenQueue(source(), clock);
    const controller = new AbortController();
    const calls = ['a', 'b'].map((name) => track(queue.wait(chain(name), 0, { signal: controller.signal }, 1, 50)));
    expect(clock.scheduledTimers).toBe(1);
    queue.clear((c) => new Error(`closed ${(c as unknown as { name: string }).name}`));
    await clock.flush();
    expect(calls.map((c) => (c.error as Error).message)).toEqual(['closed a', 'closed b']);
    expect(queue.size).toBe(0);
    expect(abortListenerCount(controller.signal)).toBe(0);
    expect(clock.scheduledTimers).toBe(0);
  });

  it('never asks the clock to cancel a timer it does not hold', () => {
    const fake = new FakeClock();
    const cancelled: unknown[] = [];
    const clock = { now: () => fake.now(), schedule: fake.schedule.bind(fake), cancel: (h: unknown) => cancelled.push(h) };
    const queue = new TokenQueue(source(), clock);
    queue.clear(() => new Error('closed'));
    queue.wake();
    expect(cancelled).toEqual([]);
  });
});

describe('token queue: properties', () => {
  type Op =
    | { kind: 'join'; signal: boolean }
    | { kind: 'abort'; pick: number }
    | { kind: 'tokens'; n: number }
    | { kind: 'wait'; ms: number };
  // Joins and aborts weigh most: waiters leaving from the middle and the end of the queue, then others joining behind them.
  const op: fc.Arbitrary<Op> = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('join' as const), signal: fc.boolean() }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('abort' as const), pick: fc.nat(20) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('tokens' as const), n: fc.integer({ min: 1, max: 3 }) }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 40 }) }), weight: 1 },
  );

  it('serves waiters first in first out, lets any of them leave on abort, and leaves no timer or listener behind', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.boolean(), async (ops, closeAtEnd) => {
        const clock = new FakeClock();
        const tokens = source({ retryInMs: 10 });
        const queue = new TokenQueue(tokens, clock);
        // The model: who waits, in order; who went on, in order; who was refused.
        const waiting: number[] = [];
        const served: number[] = [];
        const refused = new Set<number>();
        const calls: { call: ReturnType<typeof track>; controller: AbortController | undefined }[] = [];
        const reasons: Error[] = [];
        for (const o of ops) {
          if (o.kind === 'join') {
            const id = calls.length;
            const controller = o.signal ? new AbortController() : undefined;
            const scope = controller === undefined ? undefined : { signal: controller.signal };
            calls.push({ call: track(queue.wait(chain(`w${id}`), 0, scope, 1, 10)), controller });
            reasons.push(new Error(`w${id} gave up`));
            waiting.push(id);
          } else if (o.kind === 'abort') {
            const abortable = waiting.filter((id) => calls[id]!.controller !== undefined);
            if (abortable.length === 0) continue;
            const id = abortable[o.pick % abortable.length]!;
            calls[id]!.controller!.abort(reasons[id]);
            waiting.splice(waiting.indexOf(id), 1);
            refused.add(id);
          } else if (o.kind === 'tokens') {
            // Tokens for some of the waiters (never more: a spare token would be taken at the
            // queue's next timer, which the model does not time), then the limiter's wake-up.
            const n = Math.min(o.n, waiting.length);
            served.push(...waiting.splice(0, n));
            tokens.tokens += n;
            queue.wake();
            expect(tokens.tokens).toBe(0);
          } else {
            await clock.advance(o.ms);
          }
          await clock.flush();
          expect(queue.size).toBe(waiting.length);
          expect(tokens.admittedAfter.length).toBe(served.length);
        }
        if (closeAtEnd) {
          queue.clear((c) => new Error(`closed ${(c as unknown as { name: string }).name}`));
          for (const id of waiting) refused.add(id);
          waiting.length = 0;
          await clock.flush();
        }
        // Who went on did so in the order they joined, each exactly once; the aborted were refused with their own reason.
        const wentOn = calls.flatMap((c, id) => (c.call.status === 'fulfilled' ? [id] : []));
        expect(wentOn).toEqual([...served].sort((a, b) => a - b));
        expect(served).toEqual([...served].sort((a, b) => a - b));
        for (const [id, c] of calls.entries()) {
          expect(c.call.settledCount).toBeLessThanOrEqual(1);
          if (refused.has(id)) expect(c.call.status).toBe('rejected');
          else if (waiting.includes(id)) expect(c.call.status).toBe('pending');
          if (c.call.status === 'rejected' && c.controller?.signal.aborted === true) expect(c.call.error).toBe(reasons[id]);
          // Only a waiter still in the queue keeps a listener on its signal.
          if (c.controller !== undefined) expect(abortListenerCount(c.controller.signal)).toBe(waiting.includes(id) ? 1 : 0);
        }
        expect(queue.size).toBe(waiting.length);
        // A timer only while someone waits.
        expect(clock.pendingTimers).toBe(waiting.length > 0 ? 1 : 0);
      }),
      { numRuns: 300 },
    );
  });
});

/** Bulkhead behaviours that the main suite left unpinned (found by mutation testing). */
import { describe, expect, it } from 'vitest';
import { bulkhead, pipeline } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { never, track } from './helpers.ts';

describe('bulkhead: details', () => {
  it('a queue-timeout refusal names the pipeline', async () => {
    const clock = new FakeClock();
    const guarded = pipeline({ name: 'reports' }, bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 100, clock }));
    track(guarded.execute(() => never()));
    const waiting = track(guarded.execute(() => 'ok'));
    await clock.advance(100);
    expect((waiting.error as Error).message).toBe(
      'pipeline "reports": the call waited 100 ms in the bulkhead queue without getting a slot: it was not made',
    );
  });

  it('never asks the clock to cancel a timer it does not hold', async () => {
    const fake = new FakeClock();
    const cancelled: unknown[] = [];
    const clock = { now: () => fake.now(), schedule: fake.schedule.bind(fake), cancel: (h: unknown) => cancelled.push(h) };
    const policy = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    let finish: (v: string) => void = () => {};
    const first = policy.execute(() => new Promise<string>((r) => (finish = r)));
    const second = policy.execute(() => 'second');
    finish('first');
    expect(await Promise.all([first, second])).toEqual(['first', 'second']);
    expect(cancelled).toEqual([]);
  });

  it('keeps one queue timer when an onReject listener queues a call as another is refused', async () => {
    const clock = new FakeClock();
    const policy = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 100, clock });
    track(policy.execute(() => never()));
    track(policy.execute(() => 'a'));
    const later: ReturnType<typeof track>[] = [];
    policy.onReject(() => {
      if (later.length === 0) later.push(track(policy.execute(() => 'b')));
    });
    await clock.advance(100);
    expect(later).toHaveLength(1);
    expect(clock.scheduledTimers).toBe(1);
    await clock.advance(100);
    expect(later[0]!.status).toBe('rejected');
  });

  it('refuses queueTimeoutMs with maxQueue 0, and points cockatiel users at its option names', () => {
    expect(() => bulkhead({ maxConcurrent: 1, maxQueue: 0, queueTimeoutMs: 100 })).toThrow(
      new RangeError('bulkhead: option "queueTimeoutMs" needs a queue: set "maxQueue" above 0; received maxQueue 0'),
    );
    expect(() => bulkhead({ maxConcurrent: 1, limit: 2 } as never)).toThrow(/\(cockatiel's bulkhead limit is maxConcurrent\)/);
    expect(() => bulkhead({ maxConcurrent: 1, queue: 2 } as never)).toThrow(/\(cockatiel's bulkhead queue is maxQueue\)/);
  });
});

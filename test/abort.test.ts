import { describe, expect, it } from 'vitest';
import { unwatchAbort, watchAbort } from '../src/core/abort.ts';
import { bulkhead, pipeline, timeout } from '../src/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { abortListenerCount, never, track } from './helpers.ts';

describe('shared abort listeners', () => {
  it('puts one listener on a signal however many watchers it has, and removes it with the last', () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const watchers = [0, 1, 2].map((i) => ({ handleEvent: () => seen.push(i) }));
    for (const w of watchers) watchAbort(controller.signal, w);
    expect(abortListenerCount(controller.signal)).toBe(1);
    unwatchAbort(controller.signal, watchers[1]!);
    unwatchAbort(controller.signal, watchers[1]!); // twice is harmless
    controller.abort();
    expect(seen).toEqual([0, 2]); // in the order they started watching
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('removes the listener when the last watcher leaves', () => {
    const controller = new AbortController();
    const w = { handleEvent: () => {} };
    watchAbort(controller.signal, w);
    unwatchAbort(controller.signal, w);
    expect(abortListenerCount(controller.signal)).toBe(0);
  });

  it('a watcher that throws does not stop the others', async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    watchAbort(controller.signal, { handleEvent: () => { throw new Error('watcher bug'); } });
    watchAbort(controller.signal, { handleEvent: () => seen.push('second') });
    const errors: unknown[] = [];
    const onError = (e: unknown): void => { errors.push(e); };
    process.on('uncaughtException', onError);
    try {
      controller.abort();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(seen).toEqual(['second']);
    expect(errors).toHaveLength(1);
  });

  it('1,000 concurrent calls on one long-lived signal hold one listener, then none', async () => {
    const clock = new FakeClock();
    const shutdown = new AbortController();
    const p = pipeline(bulkhead({ maxConcurrent: 10, maxQueue: 1_000 }), timeout({ ms: 50, clock }));
    const calls = Array.from({ length: 1_000 }, () => track(p.execute(() => never(), { signal: shutdown.signal })));
    expect(abortListenerCount(shutdown.signal)).toBe(1);
    shutdown.abort('bye');
    await clock.flush();
    expect(calls.every((c) => c.error === 'bye')).toBe(true);
    expect(abortListenerCount(shutdown.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});

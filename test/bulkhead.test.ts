import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  type BulkheadRejectEvent,
  BulkheadRejectedError,
  isBulkheadRejectedError,
  isRejection,
  pipeline,
  retry,
  constant,
  timeout,
  TimeoutError,
} from '../src/index.ts';
import { Chain, type Scope } from '../src/core/protocol.ts';
import { FakeClock } from '../src/testing/index.ts';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T = string>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Work that records that it started and waits for the test to settle it. */
function gate() {
  const started: number[] = [];
  const pending: Deferred<string>[] = [];
  const work = (id: number) => () => {
    started.push(id);
    const d = deferred();
    pending[id] = d;
    return d.promise;
  };
  return { started, pending, work };
}

/** Records how a promise settled. */
function track<T>(promise: Promise<T>) {
  const state: { status: 'pending' | 'fulfilled' | 'rejected'; value?: T; error?: unknown } = { status: 'pending' };
  promise.then(
    (value) => Object.assign(state, { status: 'fulfilled', value }),
    (error: unknown) => Object.assign(state, { status: 'rejected', error }),
  );
  return state;
}

describe('bulkhead: limits', () => {
  it('runs at most maxConcurrent calls and rejects the next at once when there is no queue', async () => {
    const b = bulkhead({ maxConcurrent: 2 });
    expect([b.kind, b.maxConcurrent, b.maxQueue, b.queueTimeoutMs]).toEqual(['bulkhead', 2, 0, undefined]);
    const events: BulkheadRejectEvent[] = [];
    b.onReject((e) => events.push(e));
    const g = gate();
    const first = track(b.execute(g.work(0)));
    const second = track(b.execute(g.work(1)));
    expect([b.active, b.queued]).toEqual([2, 0]);
    const third = b.execute(g.work(2));
    await expect(third).rejects.toBeInstanceOf(BulkheadRejectedError);
    const error = await third.catch((e: unknown) => e);
    expect(isBulkheadRejectedError(error)).toBe(true);
    expect(isRejection(error)).toBe(true);
    expect(error).toMatchObject({ maxConcurrent: 2, maxQueue: 0, code: 'ERR_BREAKWATER_BULKHEAD_REJECTED' });
    expect(events).toEqual([{ reason: 'full' }]);
    expect(g.started).toEqual([0, 1]);
    g.pending[0]!.resolve('a');
    g.pending[1]!.resolve('b');
    await new Promise((r) => setImmediate(r));
    expect([first.value, second.value]).toEqual(['a', 'b']);
    expect([b.active, b.queued]).toEqual([0, 0]);
  });

  it('queues up to maxQueue calls and starts them in order as slots free up', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2 });
    const g = gate();
    const calls = [0, 1, 2].map((id) => track(b.execute(g.work(id))));
    await expect(b.execute(g.work(3))).rejects.toThrow(BulkheadRejectedError);
    expect([b.active, b.queued]).toEqual([1, 2]);
    expect(g.started).toEqual([0]);
    g.pending[0]!.resolve('zero');
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 1]);
    expect([b.active, b.queued]).toEqual([1, 1]);
    // a new caller now finds queue space, behind the waiting one
    const late = track(b.execute(g.work(4)));
    g.pending[1]!.reject(new Error('one failed'));
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 1, 2]);
    g.pending[2]!.resolve('two');
    await new Promise((r) => setImmediate(r));
    g.pending[4]!.resolve('four');
    await new Promise((r) => setImmediate(r));
    expect(calls.map((c) => c.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(late.value).toBe('four');
    expect([b.active, b.queued]).toEqual([0, 0]);
  });

  it('releases its permit on success, failure, synchronous throw and non-Error throw', async () => {
    const b = bulkhead({ maxConcurrent: 1 });
    await expect(b.execute(() => 'sync value')).resolves.toBe('sync value');
    await expect(b.execute(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    await expect(
      b.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    await expect(
      b.execute(() => {
        throw 'a string'; // eslint-disable-line no-throw-literal
      }),
    ).rejects.toBe('a string');
    await expect(b.execute(() => Promise.reject(undefined))).rejects.toBeUndefined();
    expect(b.active).toBe(0);
    await expect(b.execute(() => 'still usable')).resolves.toBe('still usable');
  });

  it('never calls the work for an already-aborted signal', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    let called = false;
    await expect(b.execute(() => (called = true), { signal: controller.signal })).rejects.toThrow('gone');
    expect(called).toBe(false);
    expect([b.active, b.queued]).toEqual([0, 0]);
  });

  it('passes the attempt number and the signal through', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1 });
    const seen: number[] = [];
    const guarded = pipeline(retry({ clock, backoff: constant({ ms: 0 }) }), b);
    await guarded.execute(({ attempt, signal }) => {
      expect(signal).toBeInstanceOf(AbortSignal);
      seen.push(attempt);
      if (attempt < 3) throw new Error('again');
      return 'ok';
    });
    expect(seen).toEqual([1, 2, 3]);
    expect(b.active).toBe(0);
  });
});

describe('bulkhead: aborts and queue timeouts', () => {
  it('an aborted queued call leaves the queue at once; its place goes to the next caller', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const g = gate();
    const running = track(b.execute(g.work(0)));
    const controller = new AbortController();
    const queued = b.execute(g.work(1), { signal: controller.signal });
    const queuedState = track(queued);
    expect(b.queued).toBe(1);
    await expect(b.execute(g.work(2))).rejects.toBeInstanceOf(BulkheadRejectedError);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    expect(b.queued).toBe(0); // synchronously
    await expect(queued).rejects.toBe(reason);
    expect(queuedState.status).toBe('rejected');
    const next = track(b.execute(g.work(3)));
    expect(b.queued).toBe(1);
    g.pending[0]!.resolve('done');
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 3]); // the aborted call never ran
    g.pending[3]!.resolve('next');
    await new Promise((r) => setImmediate(r));
    expect([running.value, next.value]).toEqual(['done', 'next']);
  });

  it('removes an aborted call from the middle of the queue', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 3 });
    const g = gate();
    track(b.execute(g.work(0)));
    const controllers = [1, 2, 3].map(() => new AbortController());
    const states = [1, 2, 3].map((id) => track(b.execute(g.work(id), { signal: controllers[id - 1]!.signal })));
    controllers[1]!.abort(new Error('middle'));
    await new Promise((r) => setImmediate(r));
    expect(b.queued).toBe(2);
    expect(states[1]!.status).toBe('rejected');
    g.pending[0]!.resolve('x');
    await new Promise((r) => setImmediate(r));
    g.pending[1]!.resolve('x');
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 1, 3]);
    // aborting a call after it started does not touch the queue
    controllers[2]!.abort(new Error('late'));
    g.pending[3]!.resolve('three');
    await new Promise((r) => setImmediate(r));
    expect([b.active, b.queued]).toEqual([0, 0]);
  });

  it('listens to the signal only while the call waits', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const g = gate();
    const controller = new AbortController();
    track(b.execute(g.work(0)));
    track(b.execute(g.work(1), { signal: controller.signal }));
    // the pipeline's race and the queue share one listener on the signal (src/core/abort.ts)
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    g.pending[0]!.resolve('x');
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 1]);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1); // the race's
    // The queue no longer watches the signal: aborting now reaches the running work only through the race.
    expect(b.queued).toBe(0);
    g.pending[1]!.resolve('y');
    await new Promise((r) => setImmediate(r));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('reads the scope signal only when it must queue', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const controller = new AbortController();
    let reads = 0;
    const scope: Scope = {
      get signal() {
        reads++;
        return controller.signal;
      },
    };
    const g = gate();
    const first = new Chain([b], g.work(0), undefined, undefined).next(0, scope, 1);
    expect(reads).toBe(0);
    const second = new Chain([b], g.work(1), undefined, undefined).next(0, scope, 1);
    expect(reads).toBe(1);
    g.pending[0]!.resolve('a');
    await new Promise((r) => setImmediate(r));
    g.pending[1]!.resolve('b');
    await expect(Promise.all([first, second])).resolves.toEqual(['a', 'b']);
  });

  it('does not queue a call whose scope is already aborted', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const g = gate();
    track(b.execute(g.work(0)));
    const controller = new AbortController();
    const reason = new Error('already');
    controller.abort(reason);
    const call = new Chain([b], g.work(1), undefined, undefined).next(0, { signal: controller.signal }, 1);
    await expect(call).rejects.toBe(reason);
    expect(b.queued).toBe(0);
    g.pending[0]!.resolve('x');
  });

  it('rejects a call that waited queueTimeoutMs, never before, with one timer for the whole queue', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 10, queueTimeoutMs: 100, clock });
    const events: BulkheadRejectEvent[] = [];
    b.onReject((e) => events.push(e));
    const g = gate();
    track(b.execute(g.work(0)));
    const early = [1, 2, 3].map((id) => track(b.execute(g.work(id))));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(30);
    const later = track(b.execute(g.work(4)));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(69); // t = 99
    expect(early.map((s) => s.status)).toEqual(['pending', 'pending', 'pending']);
    await clock.advance(1); // t = 100
    expect(early.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(isBulkheadRejectedError(early[0]!.error)).toBe(true);
    expect(String((early[0]!.error as Error).message)).toMatch(/waited 100 ms in the bulkhead queue/);
    expect(events).toEqual([{ reason: 'queue-timeout' }, { reason: 'queue-timeout' }, { reason: 'queue-timeout' }]);
    expect(b.queued).toBe(1);
    expect(clock.pendingTimers).toBe(1); // re-armed for the call queued at 30
    await clock.advance(29); // t = 129
    expect(later.status).toBe('pending');
    await clock.advance(1); // t = 130
    expect(later.status).toBe('rejected');
    expect([b.queued, clock.pendingTimers]).toEqual([0, 0]);
    expect(g.started).toEqual([0]);
    g.pending[0]!.resolve('x');
  });

  it('leaves no timer once the queue is empty, however it emptied', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 1_000, clock });
    const g = gate();
    track(b.execute(g.work(0)));
    const controller = new AbortController();
    track(b.execute(g.work(1), { signal: controller.signal }));
    expect(clock.pendingTimers).toBe(1);
    controller.abort();
    expect(clock.pendingTimers).toBe(0);
    track(b.execute(g.work(2)));
    expect(clock.pendingTimers).toBe(1);
    g.pending[0]!.resolve('x'); // call 2 starts: the queue is empty
    await clock.flush();
    expect(g.started).toEqual([0, 2]);
    expect(clock.pendingTimers).toBe(0);
    g.pending[2]!.resolve('y');
    await clock.flush();
    expect([b.active, b.queued, clock.pendingTimers]).toEqual([0, 0, 0]);
  });

  it('an outer timeout removes a waiting call from the queue', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1 });
    const guarded = pipeline(timeout({ ms: 50, clock }), b);
    const g = gate();
    track(guarded.execute(g.work(0)));
    const waiting = track(guarded.execute(g.work(1)));
    expect(b.queued).toBe(1);
    await clock.advance(50);
    expect(waiting.error).toBeInstanceOf(TimeoutError);
    expect(b.queued).toBe(0);
    expect(g.started).toEqual([0]);
  });

  it('a timeout inside the bulkhead returns the permit of hung work', async () => {
    const clock = new FakeClock();
    const b = bulkhead({ maxConcurrent: 1 });
    const guarded = pipeline(b, timeout({ ms: 100, clock }));
    const hung = track(guarded.execute(() => new Promise(() => {})));
    expect(b.active).toBe(1);
    await clock.advance(100);
    expect(hung.error).toBeInstanceOf(TimeoutError);
    expect(b.active).toBe(0);
  });

  it('a running call whose work honours its signal returns its permit when the caller aborts', async () => {
    const b = bulkhead({ maxConcurrent: 1 });
    const controller = new AbortController();
    const call = b.execute(
      ({ signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      { signal: controller.signal },
    );
    expect(b.active).toBe(1);
    controller.abort(new Error('stop'));
    await expect(call).rejects.toThrow('stop');
    await new Promise((r) => setImmediate(r));
    expect(b.active).toBe(0);
  });
});

describe('bulkhead: maxConcurrent at runtime', () => {
  it('raising it starts queued calls at once', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    const g = gate();
    [0, 1, 2, 3].forEach((id) => track(b.execute(g.work(id))));
    expect([b.active, b.queued]).toEqual([1, 3]);
    b.maxConcurrent = 3;
    expect(g.started).toEqual([0, 1, 2]);
    expect([b.active, b.queued, b.maxConcurrent]).toEqual([3, 1, 3]);
  });

  it('a call made from inside a starting call does not jump ahead of the queue', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 5 });
    const g = gate();
    const order: string[] = [];
    track(b.execute(g.work(0)));
    track(
      b.execute(() => {
        order.push('queued-1');
        // re-entrant: while the bulkhead is still starting queued calls
        track(b.execute(() => order.push('nested')));
        return 'x';
      }),
    );
    track(b.execute(() => order.push('queued-2')));
    b.maxConcurrent = 3;
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['queued-1', 'queued-2', 'nested']);
  });

  it('lowering it lets running calls finish and starts none until below the new limit', async () => {
    const b = bulkhead({ maxConcurrent: 3, maxQueue: 5 });
    const g = gate();
    [0, 1, 2].forEach((id) => track(b.execute(g.work(id))));
    b.maxConcurrent = 1;
    const waiting = track(b.execute(g.work(3)));
    expect([b.active, b.queued]).toEqual([3, 1]);
    g.pending[0]!.resolve('x');
    await new Promise((r) => setImmediate(r));
    g.pending[1]!.resolve('x');
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 1, 2]);
    g.pending[2]!.resolve('x');
    await new Promise((r) => setImmediate(r));
    expect(g.started).toEqual([0, 1, 2, 3]);
    expect(b.active).toBe(1);
    g.pending[3]!.resolve('last');
    await new Promise((r) => setImmediate(r));
    expect(waiting.value).toBe('last');
  });

  it('validates the new value', () => {
    const b = bulkhead({ maxConcurrent: 2 });
    expect(() => {
      b.maxConcurrent = 0;
    }).toThrow(/bulkhead: option "maxConcurrent" must be an integer from 1 to \d+; received 0/);
    expect(() => {
      b.maxConcurrent = Number.NaN;
    }).toThrow(TypeError);
    expect(() => {
      b.maxConcurrent = 1.5;
    }).toThrow(RangeError);
    expect(b.maxConcurrent).toBe(2);
  });
});

describe('bulkhead: options', () => {
  it('rejects bad options, naming the option, the rule and the value', () => {
    expect(() => bulkhead(undefined as never)).toThrow(/bulkhead: options must be an object; received undefined/);
    expect(() => bulkhead({} as never)).toThrow(/bulkhead: option "maxConcurrent" is required/);
    expect(() => bulkhead({ maxConcurrent: 0 })).toThrow(/"maxConcurrent" must be an integer from 1/);
    expect(() => bulkhead({ maxConcurrent: Infinity })).toThrow(RangeError);
    expect(() => bulkhead({ maxConcurrent: Number.NaN })).toThrow(TypeError);
    expect(() => bulkhead({ maxConcurrent: '4' as never })).toThrow(/received "4" \(string\)/);
    expect(() => bulkhead({ maxConcurrent: 1, maxQueue: -1 })).toThrow(/"maxQueue" must be an integer from 0 or Infinity; received -1/);
    expect(() => bulkhead({ maxConcurrent: 1, maxQueue: 0.5 })).toThrow(RangeError);
    expect(() => bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 0 })).toThrow(/"queueTimeoutMs" must be a finite number of milliseconds from 1/);
    expect(() => bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: Infinity })).toThrow(RangeError);
    expect(() => bulkhead({ maxConcurrent: 1, queueTimeoutMs: 100 })).toThrow(
      /bulkhead: option "queueTimeoutMs" needs a queue: set "maxQueue" above 0; received maxQueue 0/,
    );
    expect(() => bulkhead({ maxConcurrent: 1, clock: {} as never })).toThrow(/"clock" must be a Clock/);
    expect(() => bulkhead({ maxConcurrent: 1, limit: 2 } as never)).toThrow(/unknown option "limit"/);
  });

  it('accepts an unbounded queue', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: Infinity });
    const g = gate();
    for (let id = 0; id < 1_000; id++) track(b.execute(g.work(id)));
    expect([b.active, b.queued]).toEqual([1, 999]);
    for (let id = 0; id < 1_000; id++) {
      g.pending[id]!.resolve('x');
      await Promise.resolve();
      await Promise.resolve();
      await Promise.resolve();
    }
    await new Promise((r) => setImmediate(r));
    expect([b.active, b.queued]).toEqual([0, 0]);
  });
});

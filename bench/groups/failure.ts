/**
 * Group 2: the failure path. A failing call through a closed breaker after
 * 2,000 and 10,000 failures in its window, the open-circuit rejection, and a
 * retry that exhausts its attempts with zero backoff; each compared with a bare
 * failing call (an async function that throws `new Error()`) and with
 * `new Error()` alone, measured in the same run.
 */
import { constant, retry } from '../../src/index.ts';
import { boundedCalls, median, nsPerCall, nsPerCallBounded, type Profile } from '../lib/measure.ts';
import { checkSane, type Row, type RunResults } from '../lib/results.ts';
import { type BreakerLike, neverOpeningBreaker, trippingBreaker } from '../subjects/breakwater.ts';
import {
  cockatielSamplingBreaker,
  cockatielTrippingBreaker,
  opossumNeverOpens,
  opossumSubject,
  peerRetryExhaustSubjects,
} from '../subjects/peers.ts';
import type { Disposables, Library, Subject } from '../subjects/subject.ts';
import { CALLER_FRAMES, failingWork, fromDeepStack, ignore, work, WorkError } from '../subjects/work.ts';

/** Failures in the window before the closed-breaker figures are taken. */
export const WINDOW_FILLS = [2_000, 10_000] as const;

/** A failing call, made from a deep call site, awaited and caught: what every failure subject's `call` does. */
function failing(make: () => Promise<unknown>): () => Promise<void> {
  return fromDeepStack(() => make().then(undefined, ignore));
}

let sink: unknown;
/** `new Error()` alone (from the same deep call site), kept alive so it cannot be optimised away. */
const newError = fromDeepStack((): void => {
  sink = new Error('boom');
});

/** Awaits `promise` and returns what it rejected with; throws if it resolved. */
async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`${what}: expected the call to reject; it resolved`);
}

interface WindowedSubject {
  readonly id: string;
  readonly label: string;
  readonly library: Library;
  /** A fresh breaker that stays closed, as a call, a closed-check and a disposer. */
  readonly create: () => { call: () => Promise<unknown>; isClosed: () => boolean; dispose?: () => void };
}

const windowedSubjects: WindowedSubject[] = [
  {
    id: 'bw',
    label: 'Breakwater circuitBreaker (10 s time window)',
    library: 'breakwater',
    create: () => {
      const breaker: BreakerLike = neverOpeningBreaker();
      return { call: () => breaker.execute(failingWork), isClosed: () => breaker.state === 'closed' };
    },
  },
  {
    id: 'opossum',
    label: 'opossum (default options)',
    library: 'opossum',
    create: () => {
      const s = opossumSubject('x', 'x', { ...opossumNeverOpens }, failingWork);
      return { call: s.call as () => Promise<unknown>, isClosed: () => s.breaker.closed, dispose: s.dispose };
    },
  },
  {
    id: 'opossum.no-percentiles',
    label: 'opossum (rollingPercentilesEnabled: false)',
    library: 'opossum',
    create: () => {
      const s = opossumSubject('x', 'x', { ...opossumNeverOpens, rollingPercentilesEnabled: false }, failingWork);
      return { call: s.call as () => Promise<unknown>, isClosed: () => s.breaker.closed, dispose: s.dispose };
    },
  },
  {
    id: 'cockatiel',
    label: 'cockatiel (SamplingBreaker, 10 s)',
    library: 'cockatiel',
    create: () => {
      const breaker = cockatielSamplingBreaker(true);
      return { call: () => breaker.execute(failingWork), isClosed: () => breaker.state === 0 };
    },
  },
];

/** The open-circuit rejection, per library: a breaker opened by one failure, checked, then measured. */
async function openSubjects(disposables: Disposables): Promise<Subject[]> {
  const raw: Subject[] = [];
  const breaker = trippingBreaker();
  await breaker.execute(failingWork).then(undefined, ignore);
  if (breaker.state !== 'open') throw new Error(`Breakwater breaker: expected 'open' after a failure; got '${breaker.state}'`);
  raw.push({ id: 'fail.open.bw', label: 'Breakwater open-circuit rejection', library: 'breakwater', call: () => breaker.execute(work) });
  const o = disposables.track(opossumSubject('x', 'x', {}, work));
  o.breaker.open();
  raw.push({ id: 'fail.open.opossum', label: 'opossum open-circuit rejection', library: 'opossum', call: () => o.breaker.fire() });
  const c = cockatielTrippingBreaker();
  await c.execute(failingWork).then(undefined, ignore);
  raw.push({ id: 'fail.open.cockatiel', label: 'cockatiel open-circuit rejection', library: 'cockatiel', call: () => c.execute(work) });
  for (const s of raw) {
    const error = await rejection(s.call() as Promise<unknown>, s.id);
    if (error instanceof WorkError || !(error instanceof Error)) {
      throw new Error(`${s.id}: expected the breaker's own rejection; got ${String(error)}`);
    }
    if (s.library === 'breakwater' && (error as { code?: unknown }).code !== 'ERR_BREAKWATER_BROKEN_CIRCUIT') {
      throw new Error(`${s.id}: expected BrokenCircuitError; got ${String(error)}`);
    }
  }
  return raw.map((s) => ({ ...s, call: failing(s.call as () => Promise<unknown>) }));
}

/** Retry that exhausts three calls with zero backoff, per library, around `fn`. */
function retrySubjects(fn: () => Promise<number> = failingWork): Subject[] {
  const bwRetry = retry({ maxAttempts: 3, backoff: constant({ ms: 0 }) });
  return [
    {
      id: 'fail.retry.bw',
      label: 'Breakwater retry, 3 calls, constant({ ms: 0 })',
      library: 'breakwater',
      call: () => bwRetry.execute(fn),
    },
    ...peerRetryExhaustSubjects(fn),
  ];
}

/** Checks that every retry subject calls the work exactly 3 times and rethrows the work's own error. */
async function checkRetries(fail: (id: string, error: unknown) => void): Promise<void> {
  let calls = 0;
  const counted = retrySubjects(() => {
    calls++;
    return failingWork();
  });
  for (const s of counted) {
    calls = 0;
    try {
      const error = await rejection(s.call() as Promise<unknown>, s.id);
      if (!(error instanceof WorkError)) throw new Error(`${s.id}: expected the work's own error back; got ${String(error)}`);
      if (calls !== 3) throw new Error(`${s.id}: expected 3 calls of the work; got ${calls}`);
    } catch (error) {
      fail(s.id, error);
    }
  }
}

/** Measures the failure path; `bare` is the success group's bare call in ns. */
export async function failureGroup(
  profile: Profile,
  disposables: Disposables,
  results: RunResults,
  log: (line: string) => void,
  bare: number,
  filter?: RegExp,
): Promise<void> {
  const keep = (id: string): boolean => filter === undefined || filter.test(id);
  const fail = (id: string, error: unknown): void => {
    results.failures.push({ group: 'failure', id, message: error instanceof Error ? error.message : String(error) });
  };
  const bareFailing = failing(failingWork);
  const bareFailingShallow = (): Promise<void> => failingWork().then(undefined, ignore);
  const samples = new Map<string, number[]>();
  const push = (id: string, value: number): void => {
    let list = samples.get(id);
    if (list === undefined) samples.set(id, (list = []));
    list.push(value);
  };

  const open = (await openSubjects(disposables).catch((error: unknown) => (fail('fail.open', error), [] as Subject[]))).filter((s) =>
    keep(s.id),
  );
  const retries = retrySubjects().filter((s) => keep(s.id));
  await checkRetries(fail);

  for (let round = 0; round < profile.rounds; round++) {
    log(`  failure path: round ${round + 1} of ${profile.rounds}`);
    push('fail.bare', await nsPerCall(bareFailing, profile));
    push('fail.bare.shallow', await nsPerCall(bareFailingShallow, profile));
    push('fail.new-error', await nsPerCall(newError, profile));
    // The bare failing call measured the same way as the windowed breakers, for a like-for-like ratio.
    push('fail.bare.bounded', await nsPerCallBounded(bareFailing, profile.windowSamples * 2, profile.windowBatch));
    for (const fill of WINDOW_FILLS) {
      for (const w of windowedSubjects) {
        const id = `fail.window.${w.id}.${fill}`;
        if (!keep(id)) continue;
        try {
          const made = w.create();
          if (made.dispose !== undefined) disposables.add(made.dispose);
          for (let i = 0; i < fill; i++) await made.call().then(undefined, ignore);
          if (!made.isClosed()) throw new Error(`${w.label}: expected the breaker to stay closed after ${fill} failures`);
          push(id, await nsPerCallBounded(failing(made.call), profile.windowSamples, profile.windowBatch));
          if (!made.isClosed()) throw new Error(`${w.label}: the breaker opened while measured`);
          made.dispose?.();
        } catch (error) {
          fail(id, error);
        }
      }
    }
    for (const s of open) push(s.id, await nsPerCall(s.call, profile).catch((e: unknown) => (fail(s.id, e), Number.NaN)));
    for (const s of retries) {
      push(s.id, await nsPerCall(failing(s.call as () => Promise<unknown>), profile).catch((e: unknown) => (fail(s.id, e), Number.NaN)));
    }
  }

  const med = (id: string): number => median((samples.get(id) ?? []).filter((v) => !Number.isNaN(v)));
  const bareFail = med('fail.bare');
  const bareFailBounded = med('fail.bare.bounded');
  const newErrorNs = med('fail.new-error');
  const add = (row: Omit<Row, 'group' | 'unit'>): void => {
    try {
      checkSane(`${row.id} ns`, row.value);
      results.rows.push({ group: 'failure', unit: 'ns', ...row });
    } catch (error) {
      fail(row.id, error);
    }
  };
  const vs = (value: number, base: number) => ({ ratio: value / base, extra: { xBare: value / bare, xNewError: value / newErrorNs } });
  add({ id: 'fail.bare', label: 'bare failing call (async, throws new Error())', library: 'baseline', value: bareFail, ...vs(bareFail, bareFail), ratioTo: 'bare failing call' });
  const shallow = med('fail.bare.shallow');
  add({
    id: 'fail.bare.shallow',
    label: 'bare failing call from a shallow call site (for comparison)',
    library: 'baseline',
    value: shallow,
    ...vs(shallow, bareFail),
    ratioTo: 'bare failing call',
    note: `every other failure figure is taken from a call site ${CALLER_FRAMES} frames deep`,
  });
  add({ id: 'fail.new-error', label: 'new Error() alone (synchronous)', library: 'baseline', value: newErrorNs, ...vs(newErrorNs, bareFail), ratioTo: 'bare failing call' });
  add({
    id: 'fail.bare.bounded',
    label: `bare failing call, sampled like the windows (${profile.windowSamples * 2} × ${profile.windowBatch} calls)`,
    library: 'baseline',
    value: bareFailBounded,
    ...vs(bareFailBounded, bareFailBounded),
    ratioTo: 'bare failing call (same sampling)',
  });
  const extraCalls = boundedCalls(profile.windowSamples, profile.windowBatch);
  for (const fill of WINDOW_FILLS) {
    for (const w of windowedSubjects) {
      const id = `fail.window.${w.id}.${fill}`;
      if (!samples.has(id)) continue;
      const value = med(id);
      add({
        id,
        label: `${w.label}, closed, after ${fill.toLocaleString('en-US')} failures`,
        library: w.library,
        value,
        ...vs(value, bareFailBounded),
        ratioTo: 'bare failing call (same sampling)',
        note: `window holds ${fill.toLocaleString('en-US')} to ${(fill + extraCalls).toLocaleString('en-US')} failures while measured`,
      });
    }
  }
  for (const s of open) {
    const value = med(s.id);
    add({ id: s.id, label: s.label, library: s.library, value, ...vs(value, bareFail), ratioTo: 'bare failing call' });
  }
  for (const s of retries) {
    const value = med(s.id);
    add({ id: s.id, label: s.label, library: s.library, value, ...vs(value, bareFail), ratioTo: 'bare failing call' });
  }
}

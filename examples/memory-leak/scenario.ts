/**
 * One run of the memory-leak demo: the API over a pool of workers, a steady
 * load, the leak switched on a few seconds in, and what happened: every
 * request, each worker's heap over time (from its own `/metrics` for a real
 * worker), deaths and restarts, breaker states, hedges, and the API's own
 * `/metrics` scraped at a steady interval (for the alert rule).
 *
 * Times in the result are ms since the load started.
 */
import { type Clock, type RandomSource, systemClock } from '../../src/index.ts';
import { type Deployment, deploy, drive, type EndpointStats, type RequestRecord, runLoad, summarize } from '../harness/index.ts';
import { API, type ApiCounters, memoryLeakApi } from './api.ts';
import { HEAP_LIMIT_MB } from './model.ts';
import { memoryPool, processPool, type WorkerDeath, type WorkerPool } from './pool.ts';

/** Options of {@link runPhase}. */
export interface PhaseOptions {
  readonly mode: 'before' | 'after';
  /** `'http'`: worker processes and the API on 127.0.0.1; `'memory'`: modelled workers, in virtual time on `clock`. */
  readonly transport: 'http' | 'memory';
  /** A `FakeClock` for `'memory'` (required there). */
  readonly clock?: Clock & { advance?(ms: number): Promise<void> };
  readonly random?: RandomSource;
  /** How long load is offered, ms. */
  readonly durationMs: number;
  readonly ratePerSecond: number;
  /** Workers in the pool. */
  readonly workers: number;
  /** Which of them leak. */
  readonly leaky: readonly number[];
  /** Bytes a leaking worker keeps per request. */
  readonly leakBytesPerRequest: number;
  /** The leak starts this long after the load, ms. */
  readonly leakStartMs: number;
  /** Heap limit of a worker, MB. */
  readonly limitMb?: number;
  /** The user's patience, ms (default 10,000). */
  readonly clientTimeoutMs?: number;
  /** How often each worker's heap is read, ms (default 250). */
  readonly heapEveryMs?: number;
  /** How often the API's `/metrics` is scraped, ms (default 200; 0: never). */
  readonly scrapeEveryMs?: number;
  readonly onRecord?: (record: RequestRecord) => void;
  /** Called with each reading of the heaps (ms since the load started). */
  readonly onHeap?: (sample: HeapSample) => void;
  /** Called once the workers listen and the load is about to start. */
  readonly onStarted?: (deployment: Deployment, pool: WorkerPool, counters: ApiCounters) => void;
}

/** A reading of one worker's heap, bytes; null while it was down. */
export interface HeapSample {
  readonly atMs: number;
  readonly bytes: readonly (number | null)[];
}

/** One scrape of the API's `/metrics`. */
export interface Scrape {
  readonly atMs: number;
  readonly text: string;
}

/** What {@link runPhase} returns; times in ms since the load started. */
export interface PhaseResult {
  readonly mode: 'before' | 'after';
  readonly transport: 'http' | 'memory';
  readonly durationMs: number;
  readonly ratePerSecond: number;
  readonly workers: number;
  readonly leaky: readonly number[];
  readonly leakStartMs: number;
  /** Heap limit of a worker, MB. */
  readonly limitMb: number;
  readonly records: readonly RequestRecord[];
  readonly summary: EndpointStats;
  readonly heap: readonly HeapSample[];
  readonly deaths: readonly WorkerDeath[];
  readonly counters: ApiCounters;
  readonly scrapes: readonly Scrape[];
  /** When the last request settled. */
  readonly endMs: number;
}

/** Calls every worker a few times, a few calls at once, and waits for the answers. */
async function warmUp(pool: WorkerPool, rounds = 3, concurrent = 8): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await Promise.all(Array.from({ length: pool.size * concurrent }, (_, i) => pool.call(i % pool.size)));
  }
}

/** Runs the API of `mode` under load while some workers leak; always stops every worker and server, also on failure. */
export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const { mode, transport, durationMs, ratePerSecond } = options;
  if (transport === 'memory' && options.clock?.advance === undefined) throw new TypeError('runPhase: the memory transport needs a FakeClock');
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  let deployment: Deployment | undefined;
  const elapsedMs = (): number => deployment?.elapsedMs() ?? 0;
  const poolOptions = {
    size: options.workers,
    leak: { leaky: options.leaky, bytesPerRequest: options.leakBytesPerRequest },
    clock,
    elapsedMs,
    ...(options.limitMb !== undefined ? { limitMb: options.limitMb } : {}),
  };
  const pool = transport === 'http' ? processPool(poolOptions) : memoryPool({ ...poolOptions, random });
  const api = memoryLeakApi(mode, pool);
  const timers = new Set<unknown>();
  const every = (ms: number, fn: () => void): void => {
    const tick = (): void => {
      timers.delete(handle);
      fn();
      handle = clock.schedule(tick, ms);
      timers.add(handle);
    };
    let handle = clock.schedule(tick, ms);
    timers.add(handle);
  };
  try {
    deployment = await deploy([api.spec], { transport, clock, random, metrics: true });
    const d = deployment;
    await pool.start();
    // Real processes start cold: a few calls to each worker first (not recorded, before
    // the leak) so that the first second of load measures the workers, not their warm-up.
    if (transport === 'http') await warmUp(pool);
    const t0 = d.elapsedMs();
    const records: RequestRecord[] = [];
    const heap: HeapSample[] = [];
    const scrapes: Scrape[] = [];
    const readings: Promise<void>[] = [];
    const readHeap = (): void => {
      const atMs = d.elapsedMs() - t0;
      readings.push(
        Promise.all(Array.from({ length: pool.size }, (_, i) => pool.heapBytes(i))).then((bytes) => {
          const sample = { atMs, bytes: bytes.map((b) => b ?? null) };
          heap.push(sample);
          options.onHeap?.(sample);
        }),
      );
    };
    const scrape = (): void => {
      const atMs = d.elapsedMs() - t0;
      readings.push(
        d.call(API, { method: 'GET', path: '/metrics' }).then(
          (response) => {
            if (typeof response.body === 'string') scrapes.push({ atMs, text: response.body });
          },
          () => {},
        ),
      );
    };
    readHeap();
    every(options.heapEveryMs ?? 250, readHeap);
    const scrapeEveryMs = options.scrapeEveryMs ?? 200;
    if (scrapeEveryMs > 0) {
      scrape();
      every(scrapeEveryMs, scrape);
    }
    const leakTimer = clock.schedule(() => pool.startLeak(), options.leakStartMs);
    timers.add(leakTimer);
    options.onStarted?.(d, pool, api.counters);
    const load = runLoad(d, {
      durationMs,
      ratePerSecond,
      concurrency: 1_000,
      clientTimeoutMs: options.clientTimeoutMs ?? 10_000,
      random,
      next: () => ({ endpoint: 'GET /api', service: API, request: { method: 'GET', path: '/api' } }),
      onRecord: (record) => {
        records.push(record);
        options.onRecord?.(record);
      },
    });
    // In virtual time the clock moves only when driven: until the load is over, then until the last readings are in.
    const settle = <T>(work: Promise<T>): Promise<T> => (transport === 'memory' ? drive(clock as Clock & { advance(ms: number): Promise<void> }, work) : work);
    const loaded = await settle(load);
    for (const handle of timers) clock.cancel(handle);
    timers.clear();
    api.stop();
    await settle(Promise.all(readings));
    const shift = (r: RequestRecord): RequestRecord => ({ ...r, startMs: r.startMs - t0, endMs: r.endMs - t0 });
    const shifted = loaded.records.map(shift);
    const counters: ApiCounters = {
      ...api.counters,
      restarts: api.counters.restarts.map((r) => ({ ...r, atMs: r.atMs - t0 })),
      transitions: api.counters.transitions.map((t) => ({ ...t, atMs: t.atMs - t0 })),
    };
    return {
      mode,
      transport,
      durationMs,
      ratePerSecond,
      workers: options.workers,
      leaky: options.leaky,
      leakStartMs: options.leakStartMs,
      limitMb: options.limitMb ?? HEAP_LIMIT_MB,
      records: shifted,
      summary: summarize('GET /api', shifted),
      heap,
      deaths: pool.deaths.map((death) => ({ ...death, atMs: death.atMs - t0 })),
      counters,
      scrapes,
      endMs: Math.max(durationMs, ...shifted.map((r) => r.endMs)),
    };
  } finally {
    for (const handle of timers) clock.cancel(handle);
    api.stop();
    await deployment?.close();
    await pool.close();
  }
}

/**
 * The load generator: an open-loop, clock-driven steady request rate, with
 * in-flight concurrency bounded by p-limit, recording every request.
 */
import pLimit from 'p-limit';
import type { RandomSource } from '../../src/index.ts';
import type { Deployment } from './deploy.ts';
import type { HttpRequest, RequestRecord } from './types.ts';

/** One offered request: where it goes, and the endpoint label it is counted under. */
export interface OfferedRequest {
  /** Label for per-endpoint stats, such as `'GET /catalog/products'`. */
  readonly endpoint: string;
  /** The service the generator sends it to (usually the gateway). */
  readonly service: string;
  readonly request: HttpRequest;
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** How long to offer load, in ms (requests in flight at the end are awaited). */
  readonly durationMs: number;
  /** Offered requests per second: a constant, or a function of ms since the load started. */
  readonly ratePerSecond: number | ((atMs: number) => number);
  /** Most requests in flight at once (p-limit); more wait in the generator, and their wait counts in their latency. */
  readonly concurrency: number;
  /** The client gives up (aborts) this long after a request's scheduled start, in ms: the user's patience. */
  readonly clientTimeoutMs: number;
  /** Builds request number `index` (from 0), scheduled at `atMs`. */
  readonly next: (index: number, atMs: number, random: RandomSource) => OfferedRequest;
  /** Random source handed to `next` (default `Math.random`). */
  readonly random?: RandomSource;
  /** Called with each record as it completes. */
  readonly onRecord?: (record: RequestRecord) => void;
}

/** What {@link runLoad} returns. */
export interface LoadResult {
  /** Every offered request, in order of scheduled start. */
  readonly records: readonly RequestRecord[];
  /** When the load started, ms since the deployment started. */
  readonly startedAtMs: number;
  /** How long load was offered, in ms. */
  readonly durationMs: number;
}

class ClientTimeoutError extends Error {
  override readonly name = 'ClientTimeoutError';
  constructor(ms: number) {
    super(`the client gave up after ${ms} ms`);
  }
}

/**
 * Offers load to `deployment` and resolves when every offered request has
 * settled. Starts are scheduled on the deployment's clock at `1000 / rate` ms
 * intervals; a late tick sends every overdue request with its scheduled start,
 * so a slow system cannot slow the offered load down (no coordinated omission).
 *
 * Under a `FakeClock` the caller drives the clock (see `drive`).
 */
export function runLoad(deployment: Deployment, options: LoadOptions): Promise<LoadResult> {
  const { clock } = deployment;
  const { durationMs, concurrency, clientTimeoutMs, next } = options;
  if (!(durationMs > 0)) throw new RangeError(`runLoad: "durationMs" must be > 0; received ${durationMs}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`runLoad: "concurrency" must be an integer >= 1; received ${concurrency}`);
  if (!(clientTimeoutMs > 0)) throw new RangeError(`runLoad: "clientTimeoutMs" must be > 0; received ${clientTimeoutMs}`);
  const rate = typeof options.ratePerSecond === 'function' ? options.ratePerSecond : () => options.ratePerSecond as number;
  const random = options.random ?? Math.random;
  const limit = pLimit(concurrency);
  const startedAtMs = deployment.elapsedMs();
  const records: RequestRecord[] = [];
  const pending: Promise<void>[] = [];
  let index = 0;
  let nextAt = 0; // ms since the load started

  const launch = (atMs: number): void => {
    const id = index++;
    const offered = next(id, atMs, random);
    const startMs = startedAtMs + atMs;
    const controller = new AbortController();
    const giveUp = clock.schedule(
      () => controller.abort(new ClientTimeoutError(clientTimeoutMs)),
      startMs + clientTimeoutMs - deployment.elapsedMs(),
    );
    const settle = (status: number, degraded: boolean, error?: 'client-timeout' | 'network'): void => {
      clock.cancel(giveUp);
      const endMs = deployment.elapsedMs();
      const record: RequestRecord = Object.freeze({
        id,
        endpoint: offered.endpoint,
        startMs,
        endMs,
        latencyMs: endMs - startMs,
        status,
        ok: status >= 200 && status < 300,
        degraded,
        error,
      });
      records[id] = record;
      options.onRecord?.(record);
    };
    pending.push(
      limit(() => deployment.call(offered.service, offered.request, { signal: controller.signal })).then(
        (response) => settle(response.status, response.headers?.['x-degraded'] !== undefined),
        () => settle(0, false, controller.signal.aborted ? 'client-timeout' : 'network'),
      ),
    );
  };

  return new Promise<LoadResult>((resolve) => {
    const tick = (): void => {
      const now = deployment.elapsedMs() - startedAtMs;
      while (nextAt <= now && nextAt < durationMs) {
        launch(nextAt);
        const r = rate(nextAt);
        nextAt += r > 0 ? 1000 / r : 100; // a zero rate idles in 100 ms steps
      }
      if (nextAt < durationMs) {
        clock.schedule(tick, nextAt - now);
        return;
      }
      void Promise.all(pending).then(() => resolve({ records, startedAtMs, durationMs }));
    };
    tick();
  });
}

/**
 * Drives a `FakeClock` (anything with `advance`) until `work` settles, in
 * `stepMs` steps, and returns its result. Throws if it has not settled after
 * `maxMs` of fake time (a hang in the code under test).
 */
export async function drive<T>(
  clock: { advance(ms: number): Promise<void>; now(): number },
  work: Promise<T>,
  { stepMs = 50, maxMs = 10 * 60_000 }: { stepMs?: number; maxMs?: number } = {},
): Promise<T> {
  let settled = false;
  let value: T | undefined;
  let failure: { error: unknown } | undefined;
  work.then(
    (v) => {
      settled = true;
      value = v;
    },
    (error: unknown) => {
      settled = true;
      failure = { error };
    },
  );
  const limitAt = clock.now() + maxMs;
  while (!settled) {
    if (clock.now() >= limitAt) throw new Error(`drive: the work did not settle within ${maxMs} ms of fake time`);
    await clock.advance(stepMs);
  }
  if (failure !== undefined) throw failure.error;
  return value as T;
}

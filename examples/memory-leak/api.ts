/**
 * The API of the memory-leak demo: `GET /api` is served by one of the
 * workers of a {@link WorkerPool}, written twice.
 *
 * - before: round-robin over the workers and a fixed retry (p-retry, two
 *   retries 200 ms apart, on the same worker), no deadline: the way such code
 *   is usually written.
 * - after: the same round-robin, but each worker is called through its own
 *   Breakwater pipeline (an adaptive concurrency limit, a slow-call-rate
 *   breaker and a deadline), so a slowing worker gets fewer calls and then
 *   none, and is probed back; the call as a whole is hedged after the
 *   observed p95 within a budget of extra load and fails over to another
 *   worker; and a worker whose breaker stays open is restarted.
 *
 * The same code runs on real HTTP against worker processes and in memory
 * under `FakeClock` against modelled workers (pool.ts).
 */
import pRetry from 'p-retry';
import {
  adaptiveLimit,
  type CircuitBreakerPolicy,
  type CircuitState,
  circuitBreaker,
  constant,
  gradient,
  hedge,
  isBrokenCircuitError,
  isBulkheadRejectedError,
  pipeline,
  retry,
  timeout,
} from '../../src/index.ts';
import type { HttpResponse, ServiceEnv, ServiceSpec } from '../harness/index.ts';
import type { WorkerPool } from './pool.ts';

/** The name of the API service in the deployment. */
export const API = 'api';

/** before: p-retry's retries of a failed call (on the same worker)... */
export const BEFORE_RETRIES = 2;
/** ...and the fixed delay between them, ms. */
export const BEFORE_RETRY_DELAY_MS = 200;

/** after: the settings of the Breakwater pipelines, in one place. */
export const AFTER_SETTINGS = Object.freeze({
  /** A call to a worker taking this long or longer is slow (one and a half times the healthy p95). */
  slowCallMs: 300,
  /** A worker's breaker opens when this share of its recent calls were slow (or failed)... */
  slowCallRateThreshold: 0.5,
  /** ...out of its last this many calls... */
  windowCalls: 10,
  /** ...once it has seen at least this many. */
  minimumCalls: 5,
  /** An open breaker lets a probe through after this long. */
  halfOpenAfterMs: 2_000,
  /** Each attempt on a worker is given up after this long. */
  attemptTimeoutMs: 2_000,
  /** The hedge starts a second attempt, on another worker, after this percentile of recent successful attempts... */
  hedgePercentile: 0.95,
  /** ...never sooner than this... */
  hedgeMinMs: 50,
  /** ...and never later than this (also the delay until enough attempts were seen). */
  hedgeMaxMs: 1_000,
  /** Hedges are at most this share of calls (each call earns this much of a hedge; 10 may be kept in reserve). */
  maxExtraLoad: 0.1,
  /** Attempts per request at most, each on another worker (a refused or failed attempt fails over). */
  maxAttempts: 4,
  /** Per worker: the adaptive limit's bounds on calls in flight, and where it starts. */
  minLimit: 2,
  maxLimit: 64,
  initialLimit: 16,
  /** A worker whose breaker has not been closed for this long, while another's is, is restarted (the seed's mitigation, automated). */
  restartAfterMs: 2_500,
  /** How often the supervisor looks at the breakers. */
  restartCheckMs: 250,
});

/** What the API counts while it runs, for the table. */
export interface ApiCounters {
  /** Requests the API served (or failed). */
  requests: number;
  /** Calls it made to workers, every attempt and hedge included. */
  workerCalls: number;
  /** after: attempts the retry made after the first (each fails over to another worker); every attempt goes through the hedge. */
  retries: number;
  /** after: why attempts failed over: refused by the worker's open breaker, refused by its adaptive limit, or failed (timeout, connection). */
  failovers: { breaker: number; limit: number; failed: number };
  /** after: the lowest each worker's adaptive limit went. */
  lowestLimit: number[];
  /** after: hedges started, hedges that won, hedges due but refused by the budget. */
  hedges: number;
  hedgeWins: number;
  hedgesRefused: number;
  /** Restarts the after run's supervisor made. */
  restarts: { readonly worker: number; readonly atMs: number }[];
  /** Requests the API answered 502, by the error's message. */
  failures: Record<string, number>;
  /** after: each worker breaker's state changes, ms on the deployment's time base. */
  transitions: { readonly worker: number; readonly atMs: number; readonly to: CircuitState }[];
}

/** The API: its service spec, its counters, and `stop()` for the after run's supervisor timer. */
export interface MemoryLeakApi {
  readonly spec: ServiceSpec;
  readonly counters: ApiCounters;
  /** Stops the restart supervisor (after). Idempotent. */
  stop(): void;
}

function answer(status: number, body: unknown): HttpResponse {
  return { status, body };
}

/** Builds the API of `mode` over `pool`. */
export function memoryLeakApi(mode: 'before' | 'after', pool: WorkerPool): MemoryLeakApi {
  const counters: ApiCounters = {
    requests: 0,
    workerCalls: 0,
    retries: 0,
    failovers: { breaker: 0, limit: 0, failed: 0 },
    lowestLimit: [],
    hedges: 0,
    hedgeWins: 0,
    hedgesRefused: 0,
    restarts: [],
    failures: {},
    transitions: [],
  };
  let stop = (): void => {};
  const spec: ServiceSpec = {
    name: API,
    create(env) {
      const serve = mode === 'before' ? roundRobinWithRetry(env, pool, counters) : guarded(env, pool, counters, (s) => (stop = s));
      return async (request, context) => {
        if (request.path !== '/api') return answer(404, { error: 'not found' });
        counters.requests++;
        try {
          return answer(200, await serve(context.signal));
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          counters.failures[message] = (counters.failures[message] ?? 0) + 1;
          return answer(502, { error: message });
        }
      };
    },
  };
  return { spec, counters, stop: () => stop() };
}

/** before: the next worker in turn; p-retry retries the same worker twice, 200 ms apart. */
function roundRobinWithRetry(env: ServiceEnv, pool: WorkerPool, counters: ApiCounters): (signal: AbortSignal) => Promise<unknown> {
  let next = 0;
  return (signal) => {
    const worker = next;
    next = (next + 1) % pool.size;
    return pRetry(
      () => {
        counters.workerCalls++;
        return pool.call(worker, signal);
      },
      {
        retries: BEFORE_RETRIES,
        // p-retry's own sleep uses setTimeout; the fixed delay is slept on the
        // harness clock instead, so this exact code also runs under FakeClock.
        minTimeout: 0,
        signal,
        onFailedAttempt: () => env.sleep(BEFORE_RETRY_DELAY_MS, signal),
      },
    );
  };
}

/** after: per-worker pipelines, a hedged and failing-over call, and the restart supervisor. */
function guarded(
  env: ServiceEnv,
  pool: WorkerPool,
  counters: ApiCounters,
  setStop: (stop: () => void) => void,
): (signal: AbortSignal) => Promise<unknown> {
  const s = AFTER_SETTINGS;
  const { clock } = env;
  const breakers: CircuitBreakerPolicy[] = [];
  const notClosedSince = new Array<number | undefined>(pool.size).fill(undefined);
  const lastRestartAt: number[] = [];
  const workers = Array.from({ length: pool.size }, (_, worker) => {
    const breaker = circuitBreaker({
      failureRateThreshold: 0.5,
      slowCallMs: s.slowCallMs,
      slowCallRateThreshold: s.slowCallRateThreshold,
      window: { kind: 'count', calls: s.windowCalls },
      minimumCalls: s.minimumCalls,
      halfOpenAfterMs: s.halfOpenAfterMs,
      clock,
      random: env.random,
    });
    breaker.onStateChange(({ to }) => {
      const atMs = env.elapsedMs();
      counters.transitions.push({ worker, atMs, to });
      notClosedSince[worker] = to === 'closed' ? undefined : (notClosedSince[worker] ?? atMs);
    });
    breakers.push(breaker);
    lastRestartAt.push(Number.NEGATIVE_INFINITY);
    const limit = adaptiveLimit({ algorithm: gradient(), minLimit: s.minLimit, maxLimit: s.maxLimit, initialLimit: s.initialLimit, maxQueue: 0, clock });
    counters.lowestLimit[worker] = limit.limit;
    limit.onLimitChange(({ to }) => (counters.lowestLimit[worker] = Math.min(counters.lowestLimit[worker]!, to)));
    return env.instrument(
      pipeline(
        { name: `worker-${worker}`, clock },
        limit,
        breaker,
        timeout({ ms: s.attemptTimeoutMs, clock }),
      ),
    );
  });
  const hedging = hedge({
    delayMs: { percentile: s.hedgePercentile, minMs: s.hedgeMinMs, maxMs: s.hedgeMaxMs },
    maxExtraLoad: s.maxExtraLoad,
    clock,
  });
  hedging.onHedge(() => counters.hedges++);
  hedging.onHedgeWon(() => counters.hedgeWins++);
  hedging.onBudgetExhausted(() => counters.hedgesRefused++);
  const failover = retry({ maxAttempts: s.maxAttempts, backoff: constant({ ms: 0 }), handle: () => true, clock, random: env.random });
  failover.onRetry(({ error }) => {
    counters.retries++;
    if (isBrokenCircuitError(error)) counters.failovers.breaker++;
    else if (isBulkheadRejectedError(error)) counters.failovers.limit++;
    else counters.failovers.failed++;
  });
  const api = env.instrument(pipeline({ name: 'api', clock }, failover, hedging));

  // The seed's temporary mitigation, automated: restart a worker whose breaker stays
  // open while another worker's is closed (when none is, the trouble is not in the
  // workers, and restarting them all would only add an outage).
  let timer: unknown;
  let stopped = false;
  const supervise = (): void => {
    if (stopped) return;
    const now = env.elapsedMs();
    const closed = notClosedSince.filter((since) => since === undefined).length;
    for (let worker = 0; worker < pool.size && closed > 0; worker++) {
      const since = notClosedSince[worker];
      if (since === undefined || now - since < s.restartAfterMs || now - lastRestartAt[worker]! < s.restartAfterMs) continue;
      lastRestartAt[worker] = now;
      counters.restarts.push({ worker, atMs: now });
      pool.restart(worker);
    }
    timer = clock.schedule(supervise, s.restartCheckMs);
  };
  timer = clock.schedule(supervise, s.restartCheckMs);
  setStop(() => {
    stopped = true;
    clock.cancel(timer);
  });

  // Panic mode, as load balancers have it: when every worker this request has not
  // tried is out of rotation, the slowness is not one worker's, and a call straight
  // to the next one (with its deadline, without its breaker) beats an error.
  const direct = Array.from({ length: pool.size }, () => pipeline({ clock }, timeout({ ms: s.attemptTimeoutMs, clock })));
  let next = 0;
  /**
   * The next worker in turn that this request has not tried and whose breaker is
   * not open (a half-open one takes its turn: that is how its probes are made);
   * any untried one when all are open (panic).
   */
  const choose = (tried: readonly number[]): number => {
    const untried: number[] = [];
    for (let k = 0; k < pool.size; k++) if (!tried.includes((next + k) % pool.size)) untried.push((next + k) % pool.size);
    const worker = untried.find((w) => breakers[w]!.state !== 'open') ?? untried[0] ?? tried[tried.length - 1]!;
    if (tried.length === 0) next = (worker + 1) % pool.size;
    return worker;
  };
  return (signal) => {
    const tried: number[] = [];
    return api.execute(
      ({ signal: attemptSignal }) => {
        const worker = choose(tried);
        tried.push(worker);
        // The worker's call runs under the request's signal, not the attempt's: when
        // a hedge on another worker wins, this attempt is dropped at once, but the
        // call is left to finish (within its deadline) so that this worker's breaker
        // learns how slow it was. Cancelled, it would be ignored by the breaker, and
        // the hedges would hide the slowest worker from it.
        const route = breakers[worker]!.state === 'open' ? direct[worker]! : workers[worker]!;
        const call = route.execute(({ signal: callSignal }) => {
          counters.workerCalls++;
          return pool.call(worker, callSignal);
        }, { signal });
        return unlessAborted(call, attemptSignal);
      },
      { signal },
    );
  };
}

/** Settles as `work` does, or rejects with `signal.reason` as soon as it aborts; `work` then runs on, and its result is dropped. */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

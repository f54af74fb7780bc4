/**
 * The API's pool of workers, two ways with one interface: real child processes
 * on 127.0.0.1 ({@link processPool}, for the demo) or workers modelled in
 * memory on a `FakeClock` ({@link memoryPool}, for the property tests). Both
 * leak the same way and answer with the latency of model.ts; both are
 * supervised: a worker that dies is started again, as the seed's workers were
 * after each OOM kill, and {@link WorkerPool.restart} kills and starts one on
 * purpose (the mitigation the after run automates).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Clock, RandomSource } from '../../src/index.ts';
import { BASELINE_HEAP_BYTES, heapFill, HEAP_LIMIT_MB, latencyMs } from './model.ts';
import type { ReadyMessage, WorkAnswer, WorkerConfig } from './worker.ts';

/** The answer of a worker to `GET /work`. */
export type { WorkAnswer } from './worker.ts';

/** How a worker stopped: V8 stopped it at its heap limit, it crashed otherwise, or it was restarted on purpose. */
export type DeathCause = 'out-of-memory' | 'crashed' | 'restarted';

/** A worker that stopped, ms on the pool's time base. */
export interface WorkerDeath {
  readonly worker: number;
  readonly atMs: number;
  readonly cause: DeathCause;
}

/** Who leaks, and how much. The leak starts with {@link WorkerPool.startLeak}. */
export interface LeakPlan {
  /** Indexes of the workers that leak (fewer than the pool's size). */
  readonly leaky: readonly number[];
  /** Bytes a leaking worker keeps per request. */
  readonly bytesPerRequest: number;
}

/** Options of both pools. */
export interface PoolOptions {
  readonly size: number;
  readonly leak: LeakPlan;
  readonly clock: Clock;
  /** ms on the time base of the run (the deployment's `elapsedMs`). */
  readonly elapsedMs: () => number;
  /** Heap limit of a worker, MB (default {@link HEAP_LIMIT_MB}). */
  readonly limitMb?: number;
  /** How long the supervisor waits before starting a worker that died, ms (default 500). */
  readonly restartDelayMs?: number;
}

/** The refusal of a call to a worker that is not running, or that died while the call ran. */
export class WorkerDownError extends Error {
  override readonly name = 'WorkerDownError';
  readonly worker: number;
  constructor(worker: number, what: string, options?: ErrorOptions) {
    super(`worker ${worker}: ${what}`, options);
    this.worker = worker;
  }
}

/** The workers behind the API. */
export interface WorkerPool {
  readonly size: number;
  /** Starts every worker; resolves when all of them listen. */
  start(): Promise<void>;
  /** From now on the leaky workers keep memory per request, and so do they after a restart (the bug is in their code). */
  startLeak(): void;
  /** One request to worker `index`; rejects with {@link WorkerDownError} when it is not running or dies meanwhile, or with `signal.reason`. */
  call(index: number, signal?: AbortSignal): Promise<WorkAnswer>;
  /** Kills worker `index` and starts it again: its heap starts afresh. */
  restart(index: number): void;
  /** The heap worker `index` uses now, bytes (from its own `/metrics` for a process); undefined while it is down. */
  heapBytes(index: number): Promise<number | undefined>;
  /** Every death so far, in order. */
  readonly deaths: readonly WorkerDeath[];
  /** The process id of every worker process started so far (none in memory). */
  readonly pids: readonly number[];
  /** Stops every worker and waits until they are gone. Idempotent. */
  close(): Promise<void>;
}

const WORKER_FILE = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** The longest a worker process may live, ms: a bound even if the parent forgets it. */
const MAX_LIFETIME_MS = 10 * 60_000;
/** How long a worker may take to start listening, ms. */
const START_TIMEOUT_MS = 15_000;

interface Slot {
  child: ChildProcess | undefined;
  port: number | undefined;
  /** Tells the current child's exit handler that we killed it, after the slot has moved on to a new child. */
  markKilled: (cause: DeathCause) => void;
  respawn: unknown;
}

/**
 * Real worker processes: each is `process.execPath` running worker.ts with
 * `--max-old-space-size`, listening on a free port of 127.0.0.1. They exit with
 * their parent (IPC channel) and after {@link MAX_LIFETIME_MS} in any case;
 * `close()` kills them and waits for their exit.
 */
export function processPool(options: PoolOptions): WorkerPool {
  const { size, leak, clock, elapsedMs } = options;
  const limitMb = options.limitMb ?? HEAP_LIMIT_MB;
  const restartDelayMs = options.restartDelayMs ?? 500;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const slots: Slot[] = Array.from({ length: size }, () => ({ child: undefined, port: undefined, markKilled: () => {}, respawn: undefined }));
  const deaths: WorkerDeath[] = [];
  const pids: number[] = [];
  const exits = new Set<Promise<void>>();
  let closed = false;
  let leaking = false;
  const killAll = (): void => {
    for (const slot of slots) slot.child?.kill('SIGKILL');
  };

  const launch = (index: number): Promise<void> => {
    const slot = slots[index]!;
    const config: WorkerConfig = {
      id: index,
      leakBytes: leak.leaky.includes(index) ? leak.bytesPerRequest : 0,
      leaking,
      limitMb,
      maxLifetimeMs: MAX_LIFETIME_MS,
    };
    const child = spawn(process.execPath, [`--max-old-space-size=${limitMb}`, '--max-semi-space-size=1', WORKER_FILE, JSON.stringify(config)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    slot.child = child;
    slot.port = undefined;
    if (child.pid !== undefined) pids.push(child.pid);
    child.stderr!.setEncoding('utf8');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    exits.add(exited);
    void exited.then(() => exits.delete(exited));
    let killing: DeathCause | undefined; // set by restart(), even once the slot holds the next child
    let stderr = '';
    child.stderr!.on('data', (text: string) => (stderr = (stderr + text).slice(-4096)));
    child.once('exit', () => {
      if (closed) return; // close() killed it
      const cause = killing ?? (/heap out of memory|heap limit/i.test(stderr) ? 'out-of-memory' : 'crashed');
      deaths.push({ worker: index, atMs: elapsedMs(), cause });
      if (slot.child !== child) return; // restarted: the slot holds its successor
      slot.child = undefined;
      slot.port = undefined;
      slot.respawn = clock.schedule(() => void launch(index).catch(() => {}), restartDelayMs);
    });
    slot.markKilled = (cause) => (killing = cause);
    return new Promise<void>((resolve, reject) => {
      const giveUp = clock.schedule(() => {
        child.kill('SIGKILL');
        reject(new Error(`worker ${index} did not start within ${START_TIMEOUT_MS} ms: ${stderr.trim()}`));
      }, START_TIMEOUT_MS);
      child.once('message', (message: ReadyMessage) => {
        clock.cancel(giveUp);
        if (slot.child === child) slot.port = message.port;
        resolve();
      });
      child.once('exit', () => {
        clock.cancel(giveUp);
        reject(new Error(`worker ${index} exited before it listened: ${stderr.trim()}`));
      });
    });
  };

  const get = (index: number, path: string, signal?: AbortSignal): Promise<string> => {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const port = slots[index]!.port;
    if (port === undefined) return Promise.reject(new WorkerDownError(index, 'connection refused (not running)'));
    return new Promise<string>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent, signal }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new WorkerDownError(index, `answered ${res.statusCode}`))));
        res.on('error', (error) => reject(new WorkerDownError(index, 'connection reset', { cause: error })));
      });
      req.on('error', (error) => reject(signal?.aborted ? signal.reason : new WorkerDownError(index, 'connection failed', { cause: error })));
    });
  };

  return {
    size,
    deaths,
    pids,
    async start() {
      process.on('exit', killAll);
      try {
        await Promise.all(slots.map((_, i) => launch(i)));
      } catch (error) {
        await this.close();
        throw error;
      }
    },
    startLeak() {
      leaking = true;
      for (const index of leak.leaky) slots[index]!.child?.send('leak');
    },
    call: async (index, signal) => JSON.parse(await get(index, '/work', signal)) as WorkAnswer,
    restart(index) {
      const slot = slots[index]!;
      if (closed) return;
      if (slot.child !== undefined) {
        slot.markKilled('restarted');
        slot.child.kill('SIGKILL');
      }
      clock.cancel(slot.respawn);
      void launch(index).catch(() => {});
    },
    async heapBytes(index) {
      try {
        const text = await get(index, '/metrics');
        const match = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
        return match === null ? undefined : Number(match[1]);
      } catch {
        return undefined;
      }
    },
    async close() {
      closed = true;
      for (const slot of slots) clock.cancel(slot.respawn);
      killAll();
      await Promise.all([...exits]);
      agent.destroy();
      process.off('exit', killAll);
    },
  };
}

/** Options of {@link memoryPool}: those of both pools, and the random source of the latencies. */
export interface MemoryPoolOptions extends PoolOptions {
  readonly random: RandomSource;
  /** How long a worker takes to start, ms (default 300, about what a process here takes). */
  readonly startMs?: number;
}

interface ModelWorker {
  up: boolean;
  leakedBytes: number;
  readonly inFlight: Set<(error: unknown) => void>;
}

/**
 * Workers modelled in memory on `clock` (a `FakeClock`): a request adds the
 * leak to the worker's heap, waits the latency of model.ts and answers; at the
 * heap limit the worker dies, every request in flight on it fails with
 * {@link WorkerDownError}, and the supervisor starts it again after the
 * restart delay, with a fresh heap.
 */
export function memoryPool(options: MemoryPoolOptions): WorkerPool {
  const { size, leak, clock, elapsedMs, random } = options;
  const limitBytes = (options.limitMb ?? HEAP_LIMIT_MB) * 2 ** 20;
  const restartDelayMs = options.restartDelayMs ?? 500;
  const startMs = options.startMs ?? 300;
  const workers: ModelWorker[] = Array.from({ length: size }, () => ({ up: false, leakedBytes: 0, inFlight: new Set() }));
  const deaths: WorkerDeath[] = [];
  const timers = new Set<unknown>();
  let closed = false;
  let leaking = false;
  const later = (fn: () => void, ms: number): void => {
    const handle = clock.schedule(() => {
      timers.delete(handle);
      fn();
    }, ms);
    timers.add(handle);
  };
  const boot = (index: number, afterMs: number): void =>
    later(() => {
      if (closed) return;
      workers[index]!.up = true;
      workers[index]!.leakedBytes = 0;
    }, afterMs);
  const die = (index: number, cause: DeathCause): void => {
    const worker = workers[index]!;
    if (!worker.up) return;
    worker.up = false;
    for (const fail of [...worker.inFlight]) fail(new WorkerDownError(index, 'connection reset'));
    deaths.push({ worker: index, atMs: elapsedMs(), cause });
    boot(index, cause === 'restarted' ? startMs : restartDelayMs + startMs);
  };
  return {
    size,
    deaths,
    pids: [],
    async start() {
      for (const worker of workers) worker.up = true;
    },
    startLeak() {
      leaking = true;
    },
    call(index, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      const worker = workers[index]!;
      if (!worker.up) return Promise.reject(new WorkerDownError(index, 'connection refused (not running)'));
      if (leaking && leak.leaky.includes(index)) worker.leakedBytes += leak.bytesPerRequest;
      const used = BASELINE_HEAP_BYTES + worker.leakedBytes;
      if (used >= limitBytes) {
        die(index, 'out-of-memory');
        return Promise.reject(new WorkerDownError(index, 'connection reset'));
      }
      const delay = latencyMs(heapFill(used, BASELINE_HEAP_BYTES, limitBytes), random());
      return new Promise<WorkAnswer>((resolve, reject) => {
        const fail = (error: unknown): void => {
          clock.cancel(timer);
          worker.inFlight.delete(fail);
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        };
        const onAbort = (): void => fail(signal!.reason);
        const timer = clock.schedule(() => {
          worker.inFlight.delete(fail);
          signal?.removeEventListener('abort', onAbort);
          resolve({ worker: index, heapBytes: used });
        }, delay);
        worker.inFlight.add(fail);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    restart(index) {
      if (!closed) die(index, 'restarted');
    },
    async heapBytes(index) {
      const worker = workers[index]!;
      return worker.up ? BASELINE_HEAP_BYTES + worker.leakedBytes : undefined;
    },
    async close() {
      closed = true;
      for (const handle of timers) clock.cancel(handle);
      timers.clear();
      for (let i = 0; i < size; i++) {
        for (const fail of [...workers[i]!.inFlight]) fail(new WorkerDownError(i, 'the pool was closed'));
        workers[i]!.up = false;
      }
    },
  };
}

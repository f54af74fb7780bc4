/**
 * The database as the db-outage service sees it: one {@link DbNode} per
 * server (primary or standby), each with its own connection pool. Two
 * implementations of the same interface:
 *
 * - {@link pgCluster}: real PostgreSQL through `pg` (node-postgres) pools;
 * - {@link memoryCluster}: an in-memory model of a primary and a standby on a
 *   clock (FakeClock in the property tests): pool, query time, synchronous or
 *   asynchronous replication, a frozen primary, promotion.
 *
 * The service code is the same on both. The ledger table has no unique key on
 * purpose: a write applied twice shows as a duplicate instead of being hidden.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Clock } from '../../src/index.ts';
import { fillWalDisk, type PgPair, type PgServer } from './postgres.ts';

/** One write: an amount booked on an account, named by the client's request id. */
export interface LedgerWrite {
  readonly requestId: string;
  readonly account: number;
  readonly amount: number;
}

/** What a read returns. */
export interface AccountRead {
  /** Ledger entries of the account on the node that answered. */
  readonly entries: number;
  /**
   * How stale the answer may be, ms: 0 on a primary; on a standby, its replay
   * lag (0 when it has applied everything it received, else the time since the
   * last transaction it replayed).
   */
  readonly lagMs: number;
}

/** One database server, with the service's connection pool to it. */
export interface DbNode {
  /** `'primary'` or `'standby'`: the server's role when the run started. */
  readonly name: string;
  /**
   * Books a write; resolves once it is committed (with synchronous replication:
   * once the standby has applied it). Aborting `signal` rejects with its reason
   * and drops the connection; without a signal, a call waits as long as the server does.
   */
  insert(write: LedgerWrite, signal?: AbortSignal): Promise<void>;
  /** Reads an account. Same signal rules as {@link DbNode.insert}. */
  read(account: number, signal?: AbortSignal): Promise<AccountRead>;
  /** True while the server is a standby (in recovery). */
  inRecovery(signal?: AbortSignal): Promise<boolean>;
  /** Promotes a standby to primary (`pg_promote()`), resolving once it accepts writes. */
  promote(signal?: AbortSignal): Promise<void>;
}

/** The two servers of a run, and what the scenario does to them. */
export interface Cluster {
  readonly primary: DbNode;
  readonly standby: DbNode;
  /** Makes the primary stop serving; returns what was done, in words. */
  fail(): string;
  /** Makes the failed primary serve again (it still believes it is the primary); returns what was done. */
  recover(): string;
  /** Request id → times it is in the ledger, read from the server named (after the run). */
  ledger(from: 'primary' | 'standby'): Promise<Map<string, number>>;
  /** Ends the pools (and, for real servers, stops them and removes their folder). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Real PostgreSQL
// ---------------------------------------------------------------------------

const SCHEMA = 'CREATE TABLE ledger (seq bigserial PRIMARY KEY, request_id text NOT NULL, account int NOT NULL, amount int NOT NULL, at timestamptz NOT NULL DEFAULT now())';
const INSERT = 'INSERT INTO ledger (request_id, account, amount) VALUES ($1, $2, $3)';
// Replay lag as monitoring usually computes it: nothing received is left to replay → 0.
const READ = `SELECT (SELECT count(*) FROM ledger WHERE account = $1) AS entries,
  CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
       ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000) END AS lag_ms`;

/** Drops a pooled client's connection at once (pg has no AbortSignal: closing the socket is how a query is abandoned). */
function destroy(client: pg.PoolClient): void {
  client.release(true);
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** One query on a pooled connection, abandoned (connection dropped) when `signal` aborts. */
function query<R extends pg.QueryResultRow>(pool: pg.Pool, sql: string, params: unknown[], signal: AbortSignal | undefined): Promise<R[]> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<R[]>((resolve, reject) => {
    let client: pg.PoolClient | undefined;
    let settled = false;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const onAbort = (): void => {
      if (!finish()) return;
      if (client !== undefined) destroy(client);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    pool.connect().then(
      (c) => {
        if (settled) return c.release(); // the caller left while we waited for a connection
        client = c;
        c.query<R>(sql, params).then(
          (result) => {
            if (!finish()) return;
            c.release();
            resolve(result.rows);
          },
          (error: unknown) => {
            if (!finish()) return;
            c.release(error instanceof Error ? error : true);
            reject(error);
          },
        );
      },
      (error: unknown) => {
        if (finish()) reject(error);
      },
    );
  });
}

/** A {@link DbNode} on a real server, with a pool of `poolSize` connections. */
function pgNode(name: string, server: PgServer, poolSize: number): { node: DbNode; pool: pg.Pool } {
  const pool = new pg.Pool({ ...server.connection, max: poolSize, idleTimeoutMillis: 0 });
  // A connection dropped by a failing server: the query on it (if any) rejects; the event itself needs a listener.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const node: DbNode = {
    name,
    insert: async (write, signal) => {
      await query(pool, INSERT, [write.requestId, write.account, write.amount], signal);
    },
    read: async (account, signal) => {
      const [row] = await query<{ entries: string; lag_ms: string | number }>(pool, READ, [account], signal);
      return { entries: Number(row!.entries), lagMs: Math.round(Number(row!.lag_ms)) };
    },
    inRecovery: async (signal) => {
      const [row] = await query<{ r: boolean }>(pool, 'SELECT pg_is_in_recovery() AS r', [], signal);
      return row!.r;
    },
    promote: async (signal) => {
      const [row] = await query<{ ok: boolean }>(pool, 'SELECT pg_promote(true, 30) AS ok', [], signal);
      if (row?.ok !== true) throw new Error(`${name}: pg_promote() did not finish`);
    },
  };
  return { node, pool };
}

/** How the primary fails: its WAL disk fills up (PANIC, down), or its processes freeze (never answers). */
export type FailureKind = 'disk-full' | 'freeze';

/**
 * The service's view of a running pair: creates the ledger table on the
 * primary (the standby gets it by replication), one pool per server.
 * `failure` defaults to `'disk-full'` when the primary has a WAL disk of its
 * own (see `startPair`), `'freeze'` otherwise.
 */
export async function pgCluster(pair: PgPair, { poolSize = 10, failure }: { poolSize?: number; failure?: FailureKind } = {}): Promise<Cluster> {
  const kind: FailureKind = failure ?? ('path' in pair.walDisk ? 'disk-full' : 'freeze');
  const admin = new pg.Client(pair.primary.connection);
  await admin.connect();
  try {
    await admin.query(SCHEMA);
  } finally {
    await admin.end();
  }
  const primary = pgNode('primary', pair.primary, poolSize);
  const standby = pgNode('standby', pair.standby, poolSize);
  return {
    primary: primary.node,
    standby: standby.node,
    fail: () => {
      if (kind === 'freeze') {
        pair.primary.freeze();
        const why = 'refused' in pair.walDisk ? ` (no disk full here: ${pair.walDisk.refused})` : '';
        return `froze every process of the primary (SIGSTOP): it accepts connections and never answers${why}`;
      }
      fillWalDisk(pair);
      // The disk is full, but the current WAL segment was allocated before: the primary fails at the
      // next segment. Crossing to it now makes the failure happen at the stated time.
      const admin = new pg.Client({ ...pair.primary.connection, connectionTimeoutMillis: 2_000, query_timeout: 5_000 });
      admin.on('error', () => {});
      void admin
        .connect()
        .then(() => admin.query('SELECT pg_switch_wal()'))
        .catch(() => {})
        .finally(() => void admin.end().catch(() => {}));
      const size = 'sizeMb' in pair.walDisk ? pair.walDisk.sizeMb : 0;
      return `filled the primary's ${size} MB WAL disk (No space left on device): at its next WAL segment it PANICs and stays down`;
    },
    recover: () => {
      if (kind === 'freeze') {
        pair.primary.thaw();
        return 'thawed the primary (SIGCONT)';
      }
      if ('path' in pair.walDisk) rmSync(join(pair.walDisk.path, 'filler'), { force: true });
      return "freed the primary's WAL disk";
    },
    ledger: async (from) => {
      const client = new pg.Client({ ...(from === 'primary' ? pair.primary : pair.standby).connection, connectionTimeoutMillis: 5_000 });
      await client.connect();
      try {
        const { rows } = await client.query<{ request_id: string; n: string }>('SELECT request_id, count(*) AS n FROM ledger GROUP BY request_id');
        return new Map(rows.map((r) => [r.request_id, Number(r.n)]));
      } finally {
        await client.end();
      }
    },
    close: async () => {
      // Kill the servers first: connections stuck on a frozen primary then end, and the pools can close.
      pair.primary.kill();
      await pair.stop();
      await Promise.all([primary.pool.end(), standby.pool.end()]);
    },
  };
}

// ---------------------------------------------------------------------------
// The in-memory model
// ---------------------------------------------------------------------------

/** Settings of {@link memoryCluster} (ms). */
export interface MemoryClusterOptions {
  /** Time a query takes on a healthy server (default 2). */
  readonly queryMs?: number;
  /** Connections in each node's pool (default 10). */
  readonly poolSize?: number;
  /**
   * `'sync'` (default, the demo's set-up): a commit is acknowledged once the
   * standby applied it. `'async'`: acknowledged at once, applied on the standby
   * `replicationDelayMs` later; what was not shipped when the primary failed is lost.
   */
  readonly replication?: 'sync' | 'async';
  /** Async only: delay until the standby applies a commit (default 50). */
  readonly replicationDelayMs?: number;
  /** Time `promote` takes (default 300). */
  readonly promoteMs?: number;
  /**
   * How the primary fails (default `'freeze'`): `'freeze'` holds every query
   * until it thaws; `'crash'` (a disk-full PANIC) fails every query after the
   * query time, and drops those in flight.
   */
  readonly failure?: 'freeze' | 'crash';
}

interface Row extends LedgerWrite {
  readonly committedAtMs: number;
}

/** A server of the model. */
interface ModelServer {
  role: 'primary' | 'standby';
  frozen: boolean;
  /** Crashed: every query fails. */
  down: boolean;
  /** Woken when the server thaws: the queries it held go on. */
  readonly held: Set<() => void>;
  /** Sync replication: this server waits for its standby before acknowledging (the original primary only). */
  readonly waitsForStandby: boolean;
  readonly rows: Row[];
  /** Async replication: commits shipped to this standby, not applied yet. */
  readonly inFlight: Set<Row>;
}

/** A connection pool of the model: `size` connections, FIFO waiters that leave when their signal aborts. */
class ModelPool {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(grant);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal!.reason);
      };
      this.#waiting.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

/**
 * A primary and a standby in memory, on `clock`. A frozen server holds every
 * query it gets (and its pooled connection) until the caller aborts, like a
 * stopped process whose kernel still accepts connections.
 */
export function memoryCluster(clock: Clock, options: MemoryClusterOptions = {}): Cluster & {
  /** The model's servers, for assertions. */
  readonly servers: { readonly primary: ModelServer; readonly standby: ModelServer };
} {
  const { queryMs = 2, poolSize = 10, replication = 'sync', replicationDelayMs = 50, promoteMs = 300, failure = 'freeze' } = options;
  const primary: ModelServer = { role: 'primary', frozen: false, down: false, held: new Set(), waitsForStandby: replication === 'sync', rows: [], inFlight: new Set() };
  const standby: ModelServer = { role: 'standby', frozen: false, down: false, held: new Set(), waitsForStandby: false, rows: [], inFlight: new Set() };

  /** Waits `ms` on the clock, or rejects when `signal` aborts. */
  const wait = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = (): void => {
        clock.cancel(timer);
        reject(signal!.reason);
      };
      const timer = clock.schedule(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  /** Waits while `server` is frozen; rejects when `signal` aborts first. Without a signal, waits for the thaw (a query on a frozen server). */
  const heldBy = (server: ModelServer, signal: AbortSignal | undefined): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        server.held.delete(wake);
        reject(signal!.reason);
      };
      server.held.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  /** Never resolves; rejects when `signal` aborts (a commit waiting for a synchronous standby that is gone). */
  const forever = (signal: AbortSignal | undefined): Promise<never> =>
    new Promise<never>((_, reject) => {
      if (signal === undefined) return;
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });

  const node = (name: 'primary' | 'standby', server: ModelServer): DbNode => {
    const pool = new ModelPool(poolSize);
    /** Runs `work` on a pooled connection once the query time has passed; a frozen server holds it until it thaws. */
    const run = async <T>(signal: AbortSignal | undefined, work: () => T | Promise<T>, ms = queryMs): Promise<T> => {
      await pool.acquire(signal);
      try {
        while (server.frozen) await heldBy(server, signal);
        await wait(ms, signal);
        while (server.frozen) await heldBy(server, signal); // frozen while the query ran: no answer until it thaws
        if (server.down) throw new Error('the database system is in recovery mode');
        return await work();
      } finally {
        pool.release();
      }
    };
    return {
      name,
      insert: (write, signal) =>
        run(signal, async () => {
          if (server.role !== 'primary') throw new Error('cannot execute INSERT in a read-only transaction');
          const row: Row = { ...write, committedAtMs: clock.now() };
          server.rows.push(row);
          const other = server === primary ? standby : primary;
          if (server.waitsForStandby) {
            // Committed here, acknowledged only once the standby applied it; a standby that was
            // promoted meanwhile never will, so the commit is never acknowledged.
            if (other.role !== 'standby') await forever(signal);
            other.rows.push(row);
            return;
          }
          if (other.role !== 'standby') return; // a promoted standby runs alone
          other.inFlight.add(row);
          clock.schedule(() => {
            if (!other.inFlight.delete(row)) return;
            other.rows.push(row);
          }, replicationDelayMs);
        }),
      read: (account, signal) =>
        run(signal, () => {
          let entries = 0;
          for (const row of server.rows) if (row.account === account) entries++;
          let oldest = Number.POSITIVE_INFINITY;
          for (const row of server.inFlight) oldest = Math.min(oldest, row.committedAtMs);
          const lagMs = server.role === 'primary' || server.inFlight.size === 0 ? 0 : clock.now() - oldest;
          return { entries, lagMs };
        }),
      inRecovery: (signal) => run(signal, () => server.role === 'standby'),
      promote: (signal) =>
        run(
          signal,
          () => {
            server.role = 'primary';
          },
          promoteMs,
        ),
    };
  };

  return {
    primary: node('primary', primary),
    standby: node('standby', standby),
    servers: { primary, standby },
    fail: () => {
      // What the primary had not shipped yet never reaches the standby.
      standby.inFlight.clear();
      if (failure === 'crash') {
        primary.down = true;
        return 'crashed the primary (model): every query fails';
      }
      primary.frozen = true;
      return 'froze the primary (model): it holds every query and never answers';
    },
    recover: () => {
      primary.down = false;
      primary.frozen = false;
      for (const wake of [...primary.held]) wake();
      primary.held.clear();
      return 'thawed the primary (model)';
    },
    ledger: async (from) => {
      const counts = new Map<string, number>();
      for (const row of (from === 'primary' ? primary : standby).rows) counts.set(row.requestId, (counts.get(row.requestId) ?? 0) + 1);
      return counts;
    },
    close: async () => {},
  };
}

/**
 * The db-outage service, written once: an accounts API on a PostgreSQL primary
 * and its standby. `GET /accounts/:id` reads an account; `POST /ledger` books
 * a write. Only how it uses the database differs between the two variants:
 *
 * - `before`: the code the incident had. Reads and writes go to the primary
 *   through the pool, with p-retry and no timeout, no breaker, the caller's
 *   abort ignored. Recovery is an operator promoting the standby by hand and
 *   pointing the service at it ({@link DbOutageWorld.operatorFailover}).
 * - `after`: one Breakwater pipeline per server role, circuit breaker + timeout.
 *   Reads fail over to the standby and say how stale they may be; writes fail
 *   fast with 503 + Retry-After; when the primary's breaker has stayed open for
 *   `promoteAfterMs` and the standby answers, the standby is promoted and the
 *   service writes to it; the primary's breaker closes through its probes.
 */
import pRetry from 'p-retry';
import { circuitBreaker, type CircuitBreakerPolicy, isBrokenCircuitError, pipeline, type Pipeline, type StateChangeEvent, timeout } from '../../src/index.ts';
import { type HttpResponse, retryAfterHeader, type ServiceEnv, type ServiceSpec } from '../harness/index.ts';
import type { AccountRead, DbNode, LedgerWrite } from './database.ts';

/** Which code the service runs. */
export type Variant = 'before' | 'after';

/** Every number of the service, in one visible place (ms unless the name says otherwise). */
export interface DbOutageConfig {
  /** before: p-retry retries per query, and the pause between them. */
  readonly naiveRetries: number;
  readonly naiveRetryDelayMs: number;
  /** after: per-query timeout on the primary. */
  readonly queryTimeoutMs: number;
  /** after: per-query timeout on the standby: the last resort of a read, so it may take longer. */
  readonly replicaTimeoutMs: number;
  /** after: the breakers (one per server role). */
  readonly breakerFailureRate: number;
  readonly breakerMinimumCalls: number;
  readonly breakerWindowMs: number;
  readonly halfOpenAfterMs: number;
  /** after: promote the standby once the primary's breaker has not been closed for this long. */
  readonly promoteAfterMs: number;
  /** after: how often the failover check runs. */
  readonly failoverCheckEveryMs: number;
  /** after: how long promotion may take before the check gives up and tries again. */
  readonly promoteTimeoutMs: number;
}

/** The configuration of the demo and the tests. */
export const DEFAULT_CONFIG: DbOutageConfig = Object.freeze({
  naiveRetries: 3,
  naiveRetryDelayMs: 100,
  queryTimeoutMs: 250,
  replicaTimeoutMs: 1_000,
  breakerFailureRate: 0.5,
  breakerMinimumCalls: 5,
  breakerWindowMs: 2_000,
  halfOpenAfterMs: 1_000,
  promoteAfterMs: 2_000,
  failoverCheckEveryMs: 250,
  promoteTimeoutMs: 30_000,
});

/** One failover: when the service started writing to the promoted standby, ms since the deployment started. */
export interface FailoverRecord {
  readonly atMs: number;
  readonly by: 'operator' | 'automation';
}

/** Observation points for the scenario and the tests. */
export interface DbOutageHooks {
  /** A breaker changed state (after), with the pipeline's name, at ms since the deployment started. */
  readonly breakerStateChange?: (pipeline: 'db-primary' | 'db-replica', event: StateChangeEvent, atMs: number) => void;
  /** The service now writes to the promoted standby. */
  readonly failover?: (record: FailoverRecord) => void;
}

/** What the scenario can see and do from outside the service. */
export interface DbOutageWorld {
  readonly variant: Variant;
  /** The server the service writes to now: `'primary'`, or `'standby'` after a failover. */
  writeTarget(): 'primary' | 'standby';
  /** Failovers so far (at most one: there is one standby). */
  readonly failovers: readonly FailoverRecord[];
  /** before: the operator promotes the standby by hand and points the service at it. */
  operatorFailover(): Promise<void>;
}

/** The service's name in the deployment. */
export const SERVICE = 'accounts';

/** The load plan's label of reads. */
export const READ_ENDPOINT = 'GET /accounts/:id';
/** The load plan's label of writes. */
export const WRITE_ENDPOINT = 'POST /ledger';

function json(status: number, body: unknown, headers?: Record<string, string>): HttpResponse {
  return headers === undefined ? { status, body } : { status, body, headers };
}

function readAnswer(read: AccountRead, from: 'primary' | 'standby', degraded: boolean): HttpResponse {
  const headers: Record<string, string> = { 'x-served-by': from, 'x-stale-ms': String(read.lagMs) };
  if (degraded) headers['x-degraded'] = 'read-only: served by the standby';
  return json(200, { entries: read.entries, servedBy: from, staleMs: read.lagMs }, headers);
}

/** Parses `POST /ledger`'s body; undefined when it is not a write. */
function parseWrite(body: unknown): LedgerWrite | undefined {
  const b = body as Partial<LedgerWrite> | undefined;
  if (typeof b?.requestId !== 'string' || !Number.isInteger(b.account) || !Number.isInteger(b.amount)) return undefined;
  return { requestId: b.requestId, account: b.account!, amount: b.amount! };
}

/** The service for one variant, over the two servers, and its world. */
export function dbOutageService(
  variant: Variant,
  nodes: { readonly primary: DbNode; readonly standby: DbNode },
  config: DbOutageConfig = DEFAULT_CONFIG,
  hooks: DbOutageHooks = {},
): { service: ServiceSpec; world: DbOutageWorld } {
  const failovers: FailoverRecord[] = [];
  let target: 'primary' | 'standby' = 'primary';
  let operator: (() => Promise<void>) | undefined;
  const world: DbOutageWorld = {
    variant,
    writeTarget: () => target,
    failovers,
    operatorFailover: () => (operator === undefined ? Promise.reject(new Error('operatorFailover: only the before service has an operator')) : operator()),
  };
  const switchTo = (env: ServiceEnv, by: FailoverRecord['by']): void => {
    target = 'standby';
    const record = { atMs: env.elapsedMs(), by };
    failovers.push(record);
    hooks.failover?.(record);
  };
  const route = (request: { method: string; path: string }): 'read' | 'write' | undefined => {
    if (request.method === 'GET' && /^\/accounts\/\d+$/.test(request.path)) return 'read';
    if (request.method === 'POST' && request.path === '/ledger') return 'write';
    return undefined;
  };

  if (variant === 'before') {
    return {
      world,
      service: {
        name: SERVICE,
        create: (env) => {
          operator = async () => {
            await nodes.standby.promote();
            switchTo(env, 'operator');
          };
          // As such code is usually written: retry whatever failed, wait as long as the pool and the server take.
          const withRetries = <T>(work: () => Promise<T>): Promise<T> =>
            pRetry(work, { retries: config.naiveRetries, minTimeout: 0, onFailedAttempt: () => env.sleep(config.naiveRetryDelayMs) });
          return async (request) => {
            const kind = route(request);
            const db = target === 'primary' ? nodes.primary : nodes.standby;
            if (kind === 'read') {
              const account = Number(request.path.slice('/accounts/'.length));
              return readAnswer(await withRetries(() => db.read(account)), target, false);
            }
            if (kind === 'write') {
              const write = parseWrite(request.body);
              if (write === undefined) return json(400, { error: 'a write needs requestId, account and amount' });
              await withRetries(() => db.insert(write));
              return json(201, { booked: write.requestId });
            }
            return json(404, { error: `no route ${request.method} ${request.path}` });
          };
        },
      },
    };
  }

  return {
    world,
    service: {
      name: SERVICE,
      create: (env) => {
        const { clock, random } = env;
        const guard = (name: 'db-primary' | 'db-replica', timeoutMs: number): { breaker: CircuitBreakerPolicy; db: Pipeline<never> } => {
          const breaker = circuitBreaker({
            failureRateThreshold: config.breakerFailureRate,
            minimumCalls: config.breakerMinimumCalls,
            window: { kind: 'time', ms: config.breakerWindowMs, buckets: 10 },
            halfOpenAfterMs: config.halfOpenAfterMs,
            clock,
            random,
          });
          breaker.onStateChange((event) => hooks.breakerStateChange?.(name, event, env.elapsedMs()));
          // Breaker outside the timeout: every query that times out counts as a failure.
          return { breaker, db: env.instrument(pipeline({ name, clock }, breaker, timeout({ ms: timeoutMs, clock }))) };
        };
        const primary = guard('db-primary', config.queryTimeoutMs);
        const replica = guard('db-replica', config.replicaTimeoutMs);
        /** The servers behind the two roles: the standby takes both once promoted. */
        const writer = (): DbNode => (target === 'primary' ? nodes.primary : nodes.standby);

        // The seed's prevention item, automated: promote the standby once the primary's breaker
        // has stayed open long enough and the standby answers as a standby.
        let notClosedSince: number | undefined;
        primary.breaker.onStateChange((event) => {
          if (event.to === 'closed') notClosedSince = undefined;
          else notClosedSince ??= env.elapsedMs();
        });
        const failover = async (): Promise<void> => {
          try {
            while (target === 'primary') {
              await env.sleep(config.failoverCheckEveryMs);
              // Asked at every check (through the replica's breaker and timeout): the answer is fresh
              // when it is needed, and the pool to the standby stays warm for the reads that fail over.
              const standbyHealthy = await replica.db.execute(({ signal }) => nodes.standby.inRecovery(signal)).catch(() => false);
              if (!standbyHealthy || notClosedSince === undefined || env.elapsedMs() - notClosedSince < config.promoteAfterMs) continue;
              const promoted = await pipeline({ clock }, timeout({ ms: config.promoteTimeoutMs, clock }))
                .execute(({ signal }) => nodes.standby.promote(signal))
                .then(
                  () => true,
                  () => false,
                );
              // From here on the old primary gets nothing: the primary role is the promoted standby.
              if (promoted) switchTo(env, 'automation');
            }
          } catch {
            // env.sleep rejects when the deployment closes: the check ends with it.
          }
        };
        void failover();

        return async (request, ctx) => {
          const kind = route(request);
          if (kind === 'read') {
            const account = Number(request.path.slice('/accounts/'.length));
            const served = target;
            try {
              const read = await primary.db.execute(({ signal }) => writer().read(account, signal), { signal: ctx.signal });
              return readAnswer(read, served, false);
            } catch (error) {
              if (ctx.signal.aborted) throw error;
            }
            try {
              const read = await replica.db.execute(({ signal }) => nodes.standby.read(account, signal), { signal: ctx.signal });
              return readAnswer(read, 'standby', target === 'primary');
            } catch (error) {
              if (ctx.signal.aborted) throw error;
              return json(503, { error: 'no database server answered the read' }, retryAfterHeader(1_000));
            }
          }
          if (kind === 'write') {
            const write = parseWrite(request.body);
            if (write === undefined) return json(400, { error: 'a write needs requestId, account and amount' });
            try {
              await primary.db.execute(({ signal }) => writer().insert(write, signal), { signal: ctx.signal });
              return json(201, { booked: write.requestId });
            } catch (error) {
              if (ctx.signal.aborted) throw error;
              // Refused by the open breaker: not applied, come back when it probes again.
              // Timed out or failed: maybe applied, maybe not; the client retries with the same request id.
              const refused = isBrokenCircuitError(error);
              const waitMs = refused ? Math.max(1_000, error.retryAfterMs) : 1_000;
              return json(
                503,
                {
                  error: refused ? 'the primary database is unavailable (read-only mode): the write was not applied' : 'the write did not complete in time',
                  applied: refused ? 'no' : 'unknown',
                  retryAfterMs: waitMs,
                },
                retryAfterHeader(waitMs),
              );
            }
          }
          return json(404, { error: `no route ${request.method} ${request.path}` });
        };
      },
    },
  };
}

/**
 * The one thing `breakwater/redis` asks of a Redis connection: run a Lua script
 * with keys and arguments. Both well-kept clients are accepted as they are, so a
 * service hands over the connection it already has rather than opening a second one:
 * ioredis (`evalsha` / `eval` with a key count) and node-redis v4+ (`evalSha` /
 * `eval` with `{ keys, arguments }`). Scripts are sent by SHA1 and loaded on the
 * server's first `NOSCRIPT` answer (after a restart, say).
 */
import { createHash } from 'node:crypto';

/** An ioredis connection (or Cluster): what `breakwater/redis` calls on it (the Lua script commands; names quoted, they are not JavaScript's eval). */
export interface IoRedisLike {
  evalsha(sha: string, numKeys: number, ...keysAndArgs: (string | number)[]): Promise<unknown>;
  'eval'(script: string, numKeys: number, ...keysAndArgs: (string | number)[]): Promise<unknown>;
}

/** A node-redis (v4 or later) client: what `breakwater/redis` calls on it. */
export interface NodeRedisLike {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  'eval'(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** A Redis connection from ioredis or node-redis. */
export type RedisConnection = IoRedisLike | NodeRedisLike;

/** Whether `value` looks like a connection of either client. @internal */
export function isRedisConnection(value: unknown): value is RedisConnection {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.eval === 'function' && (typeof v.evalsha === 'function' || typeof v.evalSha === 'function');
}

/** A Lua script and its SHA1. @internal */
export class Script {
  readonly source: string;
  readonly sha: string;
  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

/** Runs scripts on one connection, whichever client it comes from. @internal */
export class ScriptRunner {
  readonly #redis: RedisConnection;
  readonly #ioredis: boolean;

  constructor(redis: RedisConnection) {
    this.#redis = redis;
    this.#ioredis = typeof (redis as IoRedisLike).evalsha === 'function';
  }

  /** Runs `script` with `keys` and `args` (numbers are sent as strings). */
  async run(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    const argv = args.map(String);
    try {
      return await this.#call(true, script, keys, argv);
    } catch (error) {
      if (!String((error as { message?: unknown } | null)?.message ?? error).startsWith('NOSCRIPT')) throw error;
      return this.#call(false, script, keys, argv);
    }
  }

  #call(bySha: boolean, script: Script, keys: string[], argv: string[]): Promise<unknown> {
    if (this.#ioredis) {
      const redis = this.#redis as IoRedisLike;
      return bySha ? redis.evalsha(script.sha, keys.length, ...keys, ...argv) : redis.eval(script.source, keys.length, ...keys, ...argv);
    }
    const redis = this.#redis as NodeRedisLike;
    const options = { keys, arguments: argv };
    return bySha ? redis.evalSha(script.sha, options) : redis.eval(script.source, options);
  }
}

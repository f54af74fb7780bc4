/**
 * Vitest global setup: finds `redis-server` for the suites that run a real Redis
 * (test/redis*.test.ts) and hands its path to them through `inject('redisServer')`.
 *
 * - It looks at the REDIS_SERVER variable, then PATH, then /usr/bin.
 * - If it is missing and this machine allows it (root or passwordless sudo, and
 *   apt-get), it installs Debian's `redis-server` package, bounded in time, with the
 *   package's own service start refused (each test starts its own server on a free
 *   127.0.0.1 port, without persistence, and stops it afterwards).
 * - If it still cannot be had, those suites are skipped and one line says so and how to
 *   get it. With CI set, it never skips: the run fails instead.
 * - BREAKWATER_SKIP_REDIS=1 skips those suites without looking (refused under CI).
 *
 * A run whose file filters select no Redis suite looks for nothing and installs nothing.
 */
import { spawnSync } from 'node:child_process';
import { delimiter, join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { aptInstall, installer, isCi, isExecutable } from './prometheus-setup.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of redis-server (`path`), undefined when the Redis suites must skip. */
    redisServer: { readonly path: string | undefined };
  }
}

/** Test files that need redis-server: their names start with `test/redis`. */
export function needsRedis(file: string): boolean {
  return /(^|\/)test\/redis[^/]*\.test\.ts$/.test(file.replaceAll('\\', '/'));
}

const HOW_TO_GET = 'sudo apt-get install redis-server, or set REDIS_SERVER to the binary';

type Env = Readonly<Record<string, string | undefined>>;

/** Where redis-server is: REDIS_SERVER if set, else PATH, else /usr/bin. */
export function findRedisServer(env: Env): string | undefined {
  const override = env.REDIS_SERVER;
  if (override !== undefined && override !== '') {
    if (!isExecutable(override)) throw new Error(`REDIS_SERVER is set to ${override}, which is not an executable file`);
    return override;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return isExecutable('/usr/bin/redis-server') ? '/usr/bin/redis-server' : undefined;
}

/** What the setup decided: the binary, and the one line to print (if any). */
export interface RedisResolution {
  readonly server: string | undefined;
  readonly line: string | undefined;
}

/** Everything {@link resolveRedis} needs to know about the machine; tests replace it. */
export interface RedisMachine {
  readonly env: Env;
  find(): string | undefined;
  installer(): { readonly prefix: readonly string[] } | { readonly reason: string };
  install(prefix: readonly string[]): { ok: true } | { ok: false; reason: string };
}

/** Decides, installing if needed and allowed; throws where CI must fail. */
export function resolveRedis(machine: RedisMachine): RedisResolution {
  const ci = isCi(machine.env);
  if (machine.env.BREAKWATER_SKIP_REDIS === '1') {
    if (ci) throw new Error('BREAKWATER_SKIP_REDIS=1 is not honoured when CI is set: CI runs the Redis suites');
    return { server: undefined, line: 'Redis suites skipped: BREAKWATER_SKIP_REDIS=1 is set' };
  }
  const found = machine.find();
  if (found !== undefined) return { server: found, line: undefined };
  const how = machine.installer();
  let why: string;
  if ('prefix' in how) {
    const started = Date.now();
    const installed = machine.install(how.prefix);
    const after = machine.find();
    if (installed.ok && after !== undefined) {
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      return { server: after, line: `Redis suites: redis-server not found, installed Debian's redis-server package (${seconds} s)` };
    }
    why = installed.ok ? 'the redis-server package did not provide redis-server' : installed.reason;
  } else {
    why = `cannot install here: ${how.reason}`;
  }
  const line = `Redis suites skipped: redis-server not found (REDIS_SERVER, PATH, /usr/bin), ${why}; to run them, ${HOW_TO_GET}`;
  if (ci) throw new Error(line.replace('skipped', 'cannot run under CI, which never skips them'));
  return { server: undefined, line };
}

/** The real machine. */
export function thisRedisMachine(env: Env = process.env): RedisMachine {
  return {
    env,
    find: () => findRedisServer(env),
    installer: () => installer(env),
    install: (prefix) => aptInstall(prefix, 'redis-server'),
  };
}

/** Whether this run's file filters select a Redis suite (true when unsure). */
async function needed(project: TestProject): Promise<boolean> {
  // The CLI's file filters; not a documented member, so anything unexpected means "needed".
  const filters = (project.vitest as unknown as { filenamePattern?: unknown }).filenamePattern;
  if (!Array.isArray(filters) || filters.length === 0) return true;
  const { testFiles } = await project.globTestFiles(filters as string[]);
  return testFiles.some(needsRedis);
}

export default async function setup(project: TestProject): Promise<void> {
  if (!(await needed(project))) return;
  const { server, line } = resolveRedis(thisRedisMachine());
  if (line !== undefined) {
    const version = server === undefined ? '' : ` (${spawnSync(server, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout.split(' ').find((w) => w.startsWith('v='))?.slice(2) ?? 'unknown version'})`;
    console.log(`${line}${version}`);
  }
  project.provide('redisServer', { path: server });
}

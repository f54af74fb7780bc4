/**
 * `npm run demo -- fleet`, short: local limits break the partner's quota, one limit
 * shared through Redis holds it within the stated bound, and Redis dying mid-run fails
 * no call; the fleet converges once Redis is back. It also runs through the CLI.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fleetDemo } from '../examples/fleet/demo.ts';
import { redisServerPath } from './redis-helpers.ts';

const SERVER = redisServerPath();

describe.skipIf(SERVER === undefined)('the fleet demo', () => {
  it('breaks the quota with local limits, holds it with a shared one, and fails no call when Redis dies', async () => {
    const seconds = 2;
    const lines: string[] = [];
    const { runs, converged } = await fleetDemo({ binary: SERVER!, seconds, log: (line) => lines.push(line) });
    const [local, shared, redisDies] = runs as [(typeof runs)[number], (typeof runs)[number], (typeof runs)[number]];
    expect(local.tooMany).toBeGreaterThan(0);
    // The bound for the fleet: burst 10 + 90/s × the run + 4 replicas × (lease 2 + their share of the burst, 2).
    expect(shared.sent).toBeLessThanOrEqual(10 + 90 * seconds + 4 * (2 + 2));
    expect(shared.sent).toBeGreaterThan(0);
    expect(runs.map((r) => r.failed)).toEqual([0, 0, 0]);
    expect(redisDies.sent).toBeGreaterThan(0);
    expect(converged).toBe(true);
    expect(lines.join('\n')).toContain('How to read this');
  }, 60_000);

  it('npm run demo -- fleet --help lists its option', async () => {
    const output = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['examples/run.ts', 'fleet', '--help'], { timeout: 20_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
    );
    expect(output).toContain('--seconds N');
  });
});

/**
 * `npm run demo -- list`, `--help`, `<demo> --help` and an unknown name, run
 * as the npm script runs them (`node examples/run.ts ...`), and the registry
 * of demos: each has its write-up and its chart in docs/incidents/.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMOS } from '../examples/demos.ts';
import { REPO_ROOT } from '../examples/harness/index.ts';

function demo(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['examples/run.ts', ...args], { cwd: REPO_ROOT, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

const NAMES = Object.keys(DEMOS);

describe('npm run demo -- list / --help', () => {
  it('list: one line per demo, with what it shows, and exit 0', async () => {
    const { code, stdout } = await demo('list');
    expect(code).toBe(0);
    expect(stdout).not.toMatch(/unknown demo/);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/npm run demo -- <name>/);
    expect(lines.slice(1)).toHaveLength(NAMES.length);
    NAMES.forEach((name, i) => {
      expect(lines[i + 1]).toContain(name);
      expect(lines[i + 1]).toContain(DEMOS[name]!.about);
    });
    expect(NAMES).toEqual(expect.arrayContaining(['auth-cascade', 'sync-payment-call', 'feature-flag']));
  });

  it('--help, -h and help: how to run a demo, the list, and every demo\'s options', async () => {
    for (const flag of ['--help', '-h', 'help']) {
      const { code, stdout } = await demo(flag);
      expect(code).toBe(0);
      expect(stdout).toContain('npm run demo -- list');
      for (const [name, entry] of Object.entries(DEMOS)) {
        expect(stdout).toContain(`npm run demo -- ${name} [options]`);
        for (const [option] of entry.options) expect(stdout).toContain(option);
      }
    }
  });

  it('<demo> --help prints its options and the write-up, without running it', async () => {
    const { code, stdout } = await demo('sync-payment-call', '--help');
    expect(code).toBe(0);
    expect(stdout).toContain('--no-breaker');
    expect(stdout).toContain('docs/incidents/sync-payment-call.md');
    expect(stdout).not.toContain('run 1 of 2');
  });

  it('an unknown name lists the demos and exits with 2', async () => {
    const { code, stdout } = await demo('no-such-demo');
    expect(code).toBe(2);
    expect(stdout).toContain('unknown demo "no-such-demo"');
    for (const name of NAMES) expect(stdout).toContain(name);
  });

  it('every demo has its write-up and its chart in docs/incidents/', () => {
    for (const name of NAMES) {
      expect(existsSync(join(REPO_ROOT, 'docs', 'incidents', `${name}.md`)), `${name}.md`).toBe(true);
      expect(existsSync(join(REPO_ROOT, 'docs', 'incidents', `${name}.svg`)), `${name}.svg`).toBe(true);
    }
  });
});

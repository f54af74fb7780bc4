import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('npm test', () => {
  it('fails a run that leaves a promise rejection unhandled', () => {
    const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
    const result = spawnSync(process.execPath, [vitest, 'run', '--root', 'test/fixtures/unhandled', '--config', 'vitest.config.ts'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true', NO_COLOR: '1' },
    });
    const output = result.stdout + result.stderr;
    expect(output).toContain('nobody handles me');
    expect(result.status).not.toBe(0);
  });
});

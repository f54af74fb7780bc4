/**
 * Packs the package as npm would publish it, installs the tarball into a
 * scratch project and loads every entry point both ways (import and require),
 * running one pipeline each way, and type-checks a consumer against the shipped
 * types. A broken exports map or declaration file fails here, not for a user.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  peerDependencies?: Record<string, string>;
  dependencies?: Record<string, string>;
};
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let dir = '';

function node(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: dir, encoding: 'utf8' });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'breakwater-pack-'));
  // Build first, then pack without lifecycle scripts, so the build's output cannot mix into the JSON.
  execFileSync(npm, ['run', 'build'], { cwd: root, stdio: 'ignore' });
  const out = execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root, encoding: 'utf8' });
  const packed = JSON.parse(out.slice(out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const tarball = join(dir, packed[0]!.filename);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--offline', '--ignore-scripts', tarball], { cwd: dir, encoding: 'utf8' });
  // Optional peers come from the repository's own node_modules, as a user's app would have them.
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  for (const peer of Object.keys(pkg.peerDependencies ?? {})) {
    mkdirSync(dirname(join(dir, 'node_modules', peer)), { recursive: true }); // a scoped peer's @scope folder
    symlinkSync(join(root, 'node_modules', peer), join(dir, 'node_modules', peer), 'dir');
  }
  // So do the type packages a TypeScript user of Node and opossum has.
  mkdirSync(join(dir, 'node_modules', '@types'));
  for (const types of ['node', 'opossum']) {
    symlinkSync(join(root, 'node_modules', '@types', types), join(dir, 'node_modules', '@types', types), 'dir');
  }
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('has no runtime dependencies', () => {
    expect(pkg.dependencies ?? {}).toEqual({});
  });

  it('ships dist, the docs and the license, and every relative link of the README resolves in the package', () => {
    const listed = execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    const files = (JSON.parse(listed.slice(listed.indexOf('['))) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const file of files) {
      expect(file).toMatch(/^(dist\/|docs\/|README\.md$|CHANGELOG\.md$|LICENSE$|package\.json$)/);
    }
    expect(files).toContain('dist/index.js');
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const targets = [...readme.matchAll(/\]\(([^)#]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
    expect(targets.length).toBeGreaterThan(10);
    expect(targets.filter((t) => !files.includes(t.replace(/\/$/, '/README.md')))).toEqual([]);
    expect(files).toContain('dist/index.cjs');
  });

  it('runs a pipeline through import (ESM)', () => {
    writeFileSync(
      join(dir, 'esm.mjs'),
      `import { pipeline, timeout, fallback, isTimeoutError } from 'breakwater';
       import { FakeClock } from 'breakwater/testing';
       const clock = new FakeClock();
       const p = pipeline({ name: 'esm' }, fallback({ value: 'fb' }), timeout({ ms: 10, clock }));
       const hung = p.execute(() => new Promise(() => {}));
       await clock.advance(10);
       console.log(JSON.stringify([await p.execute(async () => 'ok'), await hung, typeof isTimeoutError]));`,
    );
    expect(JSON.parse(node(['esm.mjs']))).toEqual(['ok', 'fb', 'function']);
  });

  it('runs a pipeline through require (CJS)', () => {
    writeFileSync(
      join(dir, 'cjs.cjs'),
      `const { pipeline, timeout, fallback } = require('breakwater');
       const { FakeClock } = require('breakwater/testing');
       const clock = new FakeClock();
       const p = pipeline({ name: 'cjs' }, fallback({ value: 'fb' }), timeout({ ms: 10, clock }));
       const hung = p.execute(() => new Promise(() => {}));
       clock.advance(10).then(async () => console.log(JSON.stringify([await p.execute(async () => 'ok'), await hung])));`,
    );
    expect(JSON.parse(node(['cjs.cjs']))).toEqual(['ok', 'fb']);
  });

  it('type-checks a consumer against the published types, for import and for require', () => {
    // Without skipLibCheck, so the .d.ts (import) and .d.cts (require) files must compile
    // as shipped, with the @internal members stripped, and still infer the result types.
    const source = readFileSync(join(root, 'test/fixtures/consumer/consumer.ts'), 'utf8');
    writeFileSync(join(dir, 'consumer.mts'), source);
    writeFileSync(join(dir, 'consumer.cts'), source);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2023', '--lib', 'es2023', '--types', 'node'];
    const result = spawnSync(process.execPath, [tsc, ...args, 'consumer.mts', 'consumer.cts'], { cwd: dir, encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  }, 60_000);

  it('loads every entry point of the exports map both ways', () => {
    const entries = Object.keys(pkg.exports).filter((k) => k !== './package.json');
    for (const entry of entries) {
      const specifier = entry === '.' ? 'breakwater' : `breakwater/${entry.slice(2)}`;
      const esm = node(['--input-type=module', '-e', `const m = await import('${specifier}'); console.log(Object.keys(m).length)`]);
      const cjs = node(['-e', `console.log(Object.keys(require('${specifier}')).length)`]);
      expect(Number(esm), specifier).toBeGreaterThan(0);
      expect(Number(cjs), specifier).toBe(Number(esm));
    }
    expect(node(['-e', `console.log(require('breakwater/package.json').name)`]).trim()).toBe('breakwater');
  });
});

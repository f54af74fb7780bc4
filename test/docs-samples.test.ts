/**
 * Every ```ts sample in README.md and docs/ is type-checked, and run unless its
 * fence says `ts no-run` (for samples that need a live service). Imports of
 * 'breakwater' and its subpaths are pointed at the sources, so the samples are
 * checked against the code as it is now.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = join(root, '.doc-samples');

const subpaths: Record<string, string> = {
  breakwater: '../src/index.ts',
  'breakwater/testing': '../src/testing/index.ts',
  'breakwater/prometheus': '../src/prometheus/index.ts',
  'breakwater/opossum': '../src/opossum/index.ts',
  'breakwater/chaos': '../src/chaos/index.ts',
  'breakwater/opentelemetry': '../src/opentelemetry/index.ts',
  'breakwater/fetch': '../src/fetch/index.ts',
  'breakwater/redis': '../src/redis/index.ts',
  'breakwater/http': '../src/http/index.ts',
};

interface Sample {
  readonly file: string;
  readonly line: number;
  readonly code: string;
  readonly run: boolean;
}

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') && name !== 'benchmarks.md' ? [path] : [];
  });
}

function samples(): Sample[] {
  const files = [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))];
  const found: Sample[] = [];
  for (const file of files) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(ts|typescript)(\s+no-run)?\s*$/.exec(lines[i]!);
      if (!open) continue;
      const start = i + 1;
      let end = start;
      while (end < lines.length && !lines[end]!.startsWith('```')) end++;
      found.push({ file: relative(root, file), line: start, code: lines.slice(start, end).join('\n'), run: !open[2] });
      i = end;
    }
  }
  return found;
}

function rewrite(code: string): string {
  return code.replace(/from\s+'(breakwater(?:\/[a-z]+)?)'/g, (match, spec: string) =>
    subpaths[spec] ? `from '${subpaths[spec]}'` : match,
  );
}

const all = samples();

describe('documentation samples', () => {
  it('exist', () => {
    expect(all.length).toBeGreaterThan(3);
  });

  it('type-check', () => {
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    all.forEach((s, i) => {
      const header = `// ${s.file}:${s.line}\nexport {};\n`;
      writeFileSync(join(outDir, `sample-${i}.ts`), header + rewrite(s.code));
    });
    writeFileSync(
      join(outDir, 'tsconfig.json'),
      JSON.stringify({ extends: '../tsconfig.json', include: ['./*.ts'], compilerOptions: { noUnusedLocals: false } }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', join(outDir, 'tsconfig.json')], { encoding: 'utf8' });
    const report = result.stdout.replace(/sample-(\d+)\.ts/g, (_m, n: string) => `${all[Number(n)]!.file}:${all[Number(n)]!.line} (sample-${n})`);
    expect(report, report).toBe('');
    expect(result.status).toBe(0);
  }, 120_000);

  it.each(all.map((s, i) => [`${s.file}:${s.line}`, i, s] as const).filter(([, , s]) => s.run))(
    'runs %s',
    (_name, i) => {
      const file = join(outDir, `sample-${i}.ts`);
      const output = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', file], {
        cwd: outDir,
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(typeof output).toBe('string');
    },
  );
});

/**
 * The docs point at files that exist: every relative link of README.md and
 * docs/ resolves, and every path of this repository named in backquotes
 * (`src/...`, `test/...`, `bench/...`, `examples/...`, `scripts/...`) is there.
 * (The packed README's links are checked in package.test.ts.)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return markdownFiles(path);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}

const files = [join(root, 'README.md'), join(root, 'CHANGELOG.md'), ...markdownFiles(join(root, 'docs'))];

describe('docs', () => {
  it.each(files.map((f) => [relative(root, f), f]))('%s: relative links and named repository paths exist', (_name, file) => {
    const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, ''); // code samples are checked by docs-samples.test.ts
    const missing: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!) || target!.startsWith('#')) continue;
      const path = decodeURIComponent(target!.split('#')[0]!);
      if (!existsSync(join(dirname(file), path))) missing.push(`link ${target}`);
    }
    if (!file.endsWith('CHANGELOG.md')) {
      // (The changelog may name files that have since moved: it is history.)
      for (const [, path] of text.matchAll(/`((?:src|test|bench|examples|scripts)\/[A-Za-z0-9_.\/-]+)`/g)) {
        if (/[*<>]/.test(path!)) continue;
        if (!existsSync(join(root, path!))) missing.push(`path ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

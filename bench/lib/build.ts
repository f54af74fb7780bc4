/**
 * Another commit's src/, to measure side by side with this checkout's: extracted
 * once with `git archive` into bench/.baseline/<commit>/ (ignored by git).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The last commit before the core redesign (issue 11): what its performance targets, and "the breaker today" of issue 12, are judged against. */
export const BASELINE = 'da4dd77';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Extracts `commit`'s src/ under bench/.baseline/ (once) and returns its folder. */
export function extract(commit: string): string {
  const full = execFileSync('git', ['rev-parse', '--verify', `${commit}^{commit}`], { cwd: root, encoding: 'utf8' }).trim();
  const dir = `${root}bench/.baseline/${full}`;
  if (!existsSync(`${dir}/src/index.ts`)) {
    mkdirSync(dir, { recursive: true });
    const tar = execFileSync('git', ['archive', '--format=tar', full, 'src'], { cwd: root, maxBuffer: 64 << 20 });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
  }
  return dir;
}

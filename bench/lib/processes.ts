/**
 * Runs a side-by-side script (bench/baseline.ts, bench/alone.ts,
 * bench/prometheus-overhead.ts) in processes of its own, one after the other,
 * and returns what each printed on its last line, as JSON.
 */
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Every measuring process runs with `--expose-gc`: mitata collects garbage
 * before each measurement, and without `gc()` it allocates a 1 GB array to force
 * a collection instead, which moves the heap under the figures it then takes.
 */
const NODE_FLAGS = ['--expose-gc'];

/** Runs `script` with `args` in `processes` fresh processes; throws if one exits with an error. */
export function runProcesses<T>(script: string, args: readonly string[], processes: number, what: string, log: (line: string) => void): T[] {
  const runs: T[] = [];
  for (let i = 0; i < processes; i++) {
    log(`  ${what}: process ${i + 1} of ${processes}`);
    const child = spawnSync(process.execPath, [...NODE_FLAGS, script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`bench/${basename(script)} ${args.join(' ')} exited with status ${child.status}`);
    runs.push(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as T);
  }
  return runs;
}

/**
 * For a script run by hand: when `gc()` is not exposed, runs the script (its
 * `import.meta.url`) again with `--expose-gc` and exits with its status.
 */
export function withExposedGc(scriptUrl: string): void {
  if (typeof globalThis.gc === 'function') return;
  const child = spawnSync(process.execPath, [...NODE_FLAGS, ...process.execArgv, fileURLToPath(scriptUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

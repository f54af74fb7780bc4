/**
 * Runs a side-by-side script (bench/baseline.ts, bench/alone.ts,
 * bench/prometheus-overhead.ts) in processes of its own, one after the other,
 * and returns what each printed on its last line, as JSON.
 */
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';

/** Runs `script` with `args` in `processes` fresh processes; throws if one exits with an error. */
export function runProcesses<T>(script: string, args: readonly string[], processes: number, what: string, log: (line: string) => void): T[] {
  const runs: T[] = [];
  for (let i = 0; i < processes; i++) {
    log(`  ${what}: process ${i + 1} of ${processes}`);
    const child = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`bench/${basename(script)} ${args.join(' ')} exited with status ${child.status}`);
    runs.push(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as T);
  }
  return runs;
}

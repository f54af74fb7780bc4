/** Runs bench/child.ts in a fresh `node --expose-gc` and returns its result. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('../child.ts', import.meta.url));

/** Spawns the child with `args`; rejects on a non-zero exit, a missing result or after `timeoutMs`. */
export function runChild<T>(args: readonly string[], timeoutMs = 180_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child ${args.join(' ')} did not finish within ${timeoutMs} ms (did something keep it alive?)`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (code !== 0 || line === undefined) {
        const tail = stderr.trim().split('\n').slice(-8).join('\n');
        reject(new Error(`child ${args.join(' ')} exited with ${signal ?? code}${tail ? `:\n${tail}` : ''}`));
        return;
      }
      resolve(JSON.parse(line.slice('BENCH_RESULT '.length)) as T);
    });
  });
}

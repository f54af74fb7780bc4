/**
 * Group 3: memory. Bytes retained per breaker and per full stack at 10,000
 * instances after forced GC, and the timers and handles that 10,000 idle
 * breakers keep. Each subject runs in its own child process.
 */
import { runChild } from '../lib/child.ts';
import type { Profile } from '../lib/measure.ts';
import { checkSane, type RunResults } from '../lib/results.ts';
import { instanceKinds } from '../subjects/instances.ts';

const MEMORY_KINDS = [
  'bw.breaker',
  'opossum.breaker',
  'cockatiel.breaker',
  'bw.pipeline',
  'bw.pipeline+metrics',
  'cockatiel.wrap',
  'hand-composed',
  // Where a pipeline's bytes go: each Breakwater policy alone.
  'bw.timeout',
  'bw.fallback',
  'bw.bulkhead',
  'bw.retry',
  'bw.empty-pipeline',
] as const;

const TIMER_KINDS = ['bw.breaker', 'bw.pipeline', 'opossum.breaker', 'cockatiel.breaker', 'cockatiel.wrap'] as const;

/** Measures memory and idle timers. */
export async function memoryGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const n = profile.instances;
  for (const id of MEMORY_KINDS) {
    const kind = instanceKinds[id]!;
    log(`  memory: ${kind.label} × ${n.toLocaleString('en-US')}`);
    try {
      const r = await runChild<{ bytesPerInstance: number }>(['memory', id, String(n), String(profile.reps)]);
      checkSane(`${id} bytes per instance`, r.bytesPerInstance);
      results.rows.push({
        group: 'memory',
        id: `memory.${id}`,
        label: kind.label,
        library: kind.library,
        value: r.bytesPerInstance,
        unit: 'bytes',
        note: `per ${kind.shape}`,
      });
    } catch (error) {
      results.failures.push({ group: 'memory', id: `memory.${id}`, message: (error as Error).message });
    }
  }
  for (const id of TIMER_KINDS) {
    const kind = instanceKinds[id]!;
    log(`  idle timers: ${kind.label} × ${n.toLocaleString('en-US')}`);
    try {
      const r = await runChild<{
        liveTimers: number;
        refTimers: number;
        activeHandles: number;
        refTimersAfterDispose: number;
        liveTimersAfterDispose: number;
      }>([
        'timers',
        id,
        String(n),
      ]);
      checkSane(`${id} live timers`, r.liveTimers, true);
      checkSane(`${id} active handles`, r.activeHandles, true);
      checkSane(`${id} referenced timers`, r.refTimers, true);
      if (r.refTimersAfterDispose !== 0) {
        throw new Error(`${id}: ${r.refTimersAfterDispose} referenced timers still alive after every instance was disposed`);
      }
      results.rows.push({
        group: 'timers',
        id: `timers.${id}`,
        label: kind.label,
        library: kind.library,
        value: r.liveTimers,
        unit: 'count',
        extra: { refTimers: r.refTimers, activeHandles: r.activeHandles, liveTimersAfterDispose: r.liveTimersAfterDispose },
        note: `${n.toLocaleString('en-US')} idle instances`,
      });
    } catch (error) {
      results.failures.push({ group: 'timers', id: `timers.${id}`, message: (error as Error).message });
    }
  }
}

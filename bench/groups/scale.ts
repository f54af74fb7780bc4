/**
 * Group 4: scale. 100,000 calls submitted at once through a bulkhead of 1,000
 * slots with a queue for the rest: completion time, peak heap, and that every
 * call settled (and fulfilled). Each subject runs in its own child process.
 */
import { runChild } from '../lib/child.ts';
import type { Profile } from '../lib/measure.ts';
import { checkSane, type RunResults } from '../lib/results.ts';
import { SCALE_CONCURRENCY, scaleSubjects } from '../subjects/scale.ts';

interface ScaleResult {
  ms: number;
  peakHeapBytes: number;
  settled: number;
  fulfilled: number;
  calls: number;
}

/** Measures the scale scenario. */
export async function scaleGroup(profile: Profile, results: RunResults, log: (line: string) => void): Promise<void> {
  const n = profile.scaleCalls;
  let bareMs: number | undefined;
  for (const [id, subject] of Object.entries(scaleSubjects)) {
    log(`  scale: ${subject.label}, ${n.toLocaleString('en-US')} calls`);
    try {
      const r = await runChild<ScaleResult>(['scale', id, String(n), String(profile.reps)]);
      if (r.settled !== n) throw new Error(`${id}: ${r.settled} of ${n} calls settled`);
      if (r.fulfilled !== n) throw new Error(`${id}: ${r.fulfilled} of ${n} calls fulfilled with the work's result`);
      checkSane(`${id} completion ms`, r.ms);
      checkSane(`${id} peak heap`, r.peakHeapBytes, true);
      if (id === 'bare') bareMs = r.ms;
      results.rows.push({
        group: 'scale',
        id: `scale.${id}`,
        label: subject.label,
        library: subject.library,
        value: r.ms,
        unit: 'ms',
        ...(bareMs === undefined ? {} : { ratio: r.ms / bareMs, ratioTo: 'bare calls' }),
        extra: { peakHeapBytes: r.peakHeapBytes, settled: r.settled, nsPerCall: (r.ms * 1e6) / n },
        note: id === 'bare' ? 'no limit' : `${SCALE_CONCURRENCY.toLocaleString('en-US')} at once, the rest queued`,
      });
    } catch (error) {
      results.failures.push({ group: 'scale', id: `scale.${id}`, message: (error as Error).message });
    }
  }
}

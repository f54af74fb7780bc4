/**
 * Group 1: the success path, per call. Every subject makes the same call (an
 * async function resolving with 42) through its policies; each figure is the
 * median over rounds of mitata's median, and its ratio to the bare call
 * measured in the same rounds.
 */
import { IN_FLIGHT, median, nsPerCall, nsPerCallConcurrent, type Profile } from '../lib/measure.ts';
import { checkSane, type RunResults } from '../lib/results.ts';
import { extraSubjects, pipelineSubjects, singlePolicySubjects } from '../subjects/breakwater.ts';
import { peerSuccessSubjects } from '../subjects/peers.ts';
import type { Disposables, Subject } from '../subjects/subject.ts';
import { RESULT, work } from '../subjects/work.ts';

/** The bare call every success figure is compared with. */
export const BARE: Subject = { id: 'bare', label: 'bare async call', library: 'baseline', call: () => work() };

/** Subjects also measured with {@link IN_FLIGHT} calls in flight: where one timer or one queue serves many calls. */
export const CONCURRENT_IDS = [
  'bare',
  'bw.timeout',
  'bw.pipeline',
  'bw.pipeline+metrics',
  'opossum.default',
  'cockatiel.timeout',
  'cockatiel.wrap',
  'cockatiel.wrap+prom',
  'p-timeout',
  'hand-composed',
];

/** Runs the subject once and checks that it resolves with the work's result. */
export async function checkResolves(subject: Subject): Promise<void> {
  const value = await subject.call();
  if (value !== RESULT) throw new Error(`${subject.id}: expected the call to resolve with ${RESULT}; got ${String(value)}`);
}

/** Measures every success-path subject; returns the bare call's median in ns. */
export async function successGroup(
  profile: Profile,
  disposables: Disposables,
  results: RunResults,
  log: (line: string) => void,
  filter?: RegExp,
): Promise<number> {
  const built = [
    BARE,
    ...singlePolicySubjects(),
    ...pipelineSubjects(),
    ...extraSubjects(),
    ...peerSuccessSubjects(),
  ].map((s) => disposables.track(s));
  const subjects: Subject[] = [];
  for (const s of built) {
    if (filter !== undefined && s !== BARE && !filter.test(s.id)) continue;
    try {
      await checkResolves(s);
      subjects.push(s);
    } catch (error) {
      results.failures.push({ group: 'success', id: s.id, message: (error as Error).message });
    }
  }
  // Warm every subject up first, so the first rounds do not measure the JIT at work.
  log('  success path: warm-up');
  for (const s of subjects) {
    const until = performance.now() + profile.warmupMs;
    while (performance.now() < until) {
      for (let i = 0; i < 100; i++) await s.call();
      await Promise.all(Array.from({ length: IN_FLIGHT }, () => s.call()));
    }
  }
  const samples = new Map<string, number[]>(subjects.map((s) => [s.id, []]));
  const concurrent = subjects.filter((s) => CONCURRENT_IDS.includes(s.id));
  const concurrentSamples = new Map<string, number[]>(concurrent.map((s) => [s.id, []]));
  for (let round = 0; round < profile.rounds; round++) {
    log(`  success path: round ${round + 1} of ${profile.rounds}`);
    // Rotate the order each round so slow drift does not always land on the same subjects.
    const order = subjects.map((_, i) => subjects[(i + round * 3) % subjects.length]!);
    for (const s of order) {
      try {
        samples.get(s.id)!.push(await nsPerCall(s.call, profile));
      } catch (error) {
        results.failures.push({ group: 'success', id: s.id, message: (error as Error).message });
      }
    }
    for (const s of concurrent) {
      try {
        concurrentSamples.get(s.id)!.push(await nsPerCallConcurrent(s.call, profile));
      } catch (error) {
        results.failures.push({ group: 'concurrent', id: s.id, message: (error as Error).message });
      }
    }
  }
  const bareConcurrent = median(concurrentSamples.get(BARE.id) ?? []);
  for (const s of concurrent) {
    const value = median(concurrentSamples.get(s.id)!);
    try {
      checkSane(`${s.id} ns per call with ${IN_FLIGHT} in flight`, value);
      checkSane('bare call ns with calls in flight', bareConcurrent);
    } catch (error) {
      results.failures.push({ group: 'concurrent', id: s.id, message: (error as Error).message });
      continue;
    }
    results.rows.push({
      group: 'concurrent',
      id: `conc.${s.id}`,
      label: s.label,
      library: s.library,
      value,
      unit: 'ns',
      ratio: value / bareConcurrent,
      ratioTo: `bare call, ${IN_FLIGHT} in flight`,
      samples: concurrentSamples.get(s.id)!,
    });
  }
  const bare = median(samples.get(BARE.id) ?? []);
  checkSane('bare call ns', bare);
  for (const s of subjects) {
    const values = samples.get(s.id)!;
    if (values.length === 0) continue;
    const value = median(values);
    try {
      checkSane(`${s.id} ns per call`, value);
    } catch (error) {
      results.failures.push({ group: 'success', id: s.id, message: (error as Error).message });
      continue;
    }
    results.rows.push({
      group: 'success',
      id: s.id,
      label: s.label,
      library: s.library,
      value,
      unit: 'ns',
      ratio: value / bare,
      ratioTo: 'bare call',
      samples: values,
    });
  }
  return bare;
}

/**
 * CPU-profiles one scenario and prints where its time goes, per call.
 *
 *   npx node bench/profile.ts [subject] [seconds]     default: bw.pipeline+metrics, 5 s
 *   npx node bench/profile.ts --list                  the subjects it knows
 *   npx node bench/profile.ts --summarize FILE.cpuprofile [calls]
 *
 * It calls the subject sequentially (each call awaited, as in the success-path
 * benchmark) for a warm-up, then for the given time under V8's sampling CPU
 * profiler (the one `node --cpu-prof` uses, started through the inspector so
 * start-up is left out), and prints the functions with the most self time, as
 * a share of the total and as nanoseconds per call. The .cpuprofile file stays
 * in bench/results/profiles/ for Chrome DevTools or speedscope.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { fmtNs, textTable } from './lib/format.ts';
import { extraSubjects, fullPipeline, neverOpeningBreaker, pipelineSubjects, singlePolicySubjects, trippingBreaker } from './subjects/breakwater.ts';
import { peerSuccessSubjects } from './subjects/peers.ts';
import type { Subject } from './subjects/subject.ts';
import { failingWork, ignore, work } from './subjects/work.ts';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time per function, largest first. */
export function summarize(profile: CpuProfile): { name: string; where: string; selfUs: number }[] {
  const byNode = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const byFunction = new Map<string, { name: string; where: string; selfUs: number }>();
  const root = fileURLToPath(new URL('..', import.meta.url));
  for (const node of profile.nodes) {
    const self = byNode.get(node.id) ?? 0;
    if (self === 0) continue;
    const f = node.callFrame;
    const url = f.url.startsWith('file://') ? fileURLToPath(f.url) : f.url;
    const where = url === '' ? '(native)' : `${url.replace(root, '')}:${f.lineNumber + 1}`;
    const name = f.functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const entry = byFunction.get(key) ?? { name, where, selfUs: 0 };
    entry.selfUs += self;
    byFunction.set(key, entry);
  }
  return [...byFunction.values()].sort((a, b) => b.selfUs - a.selfUs);
}

function printSummary(file: string, calls: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const rows = summarize(profile);
  const total = rows.reduce((sum, r) => sum + r.selfUs, 0);
  const idle = rows.filter((r) => r.name === '(idle)' || r.name === '(program)' || r.name === '(garbage collector)');
  console.log(`profile: ${file}`);
  console.log(`sampled ${(total / 1e6).toFixed(2)} s, ${calls.toLocaleString('en-US')} calls: ${fmtNs((total * 1000) / calls)} per call in all`);
  for (const r of idle) console.log(`  ${r.name}: ${((100 * r.selfUs) / total).toFixed(1)}%`);
  console.log(
    textTable(
      ['function', 'where', 'self %', 'ns per call'],
      rows
        .slice(0, 30)
        .map((r) => [r.name, r.where, `${((100 * r.selfUs) / total).toFixed(1)}%`, fmtNs((r.selfUs * 1000) / calls)]),
    ),
  );
}

function subjects(): Subject[] {
  const list = [...singlePolicySubjects(), ...pipelineSubjects(), ...extraSubjects(), ...peerSuccessSubjects()];
  list.push({ id: 'bare', label: 'bare call', library: 'baseline', call: () => work() });
  const open = trippingBreaker();
  void open.execute(failingWork).then(undefined, ignore);
  list.push({ id: 'fail.open.bw', label: 'open-circuit rejection', library: 'breakwater', call: () => open.execute(work).then(undefined, ignore) });
  const closed = neverOpeningBreaker();
  list.push({ id: 'fail.closed.bw', label: 'failing call, closed breaker', library: 'breakwater', call: () => closed.execute(failingWork).then(undefined, ignore) });
  const p = fullPipeline('profile-fail');
  list.push({ id: 'fail.pipeline.bw', label: 'failing call through the full pipeline (falls back)', library: 'breakwater', call: () => p.execute(failingWork) });
  return list;
}

const args = process.argv.slice(2);
const profilesDir = fileURLToPath(new URL('./results/profiles/', import.meta.url));

/** Calls `subject` sequentially for `seconds`; returns the number of calls. */
async function loop(subject: Subject, seconds: number): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let calls = 0;
  while (performance.now() < until) {
    for (let i = 0; i < 1_000; i++) await subject.call();
    calls += 1_000;
  }
  return calls;
}

if (args[0] === '--summarize') {
  printSummary(args[1]!, Number(args[2] ?? 1));
} else if (args[0] === '--list') {
  const all = subjects();
  for (const s of all) console.log(`${s.id.padEnd(24)} ${s.label}`);
  for (const s of all) s.dispose?.();
} else {
  // Profile only the measured loop (after a warm-up), through the inspector: the
  // same sampler as `node --cpu-prof`, without the start-up in the figures.
  const id = args[0] ?? 'bw.pipeline+metrics';
  const seconds = Number(args[1] ?? 5);
  const all = subjects();
  const subject = all.find((s) => s.id === id);
  if (subject === undefined) throw new Error(`unknown subject ${id}; try --list`);
  await loop(subject, Math.min(1, seconds / 5));
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
  const calls = await loop(subject, seconds);
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  for (const s of all) s.dispose?.();
  mkdirSync(profilesDir, { recursive: true });
  const file = `${profilesDir}${id}-${Date.now()}.cpuprofile`;
  writeFileSync(file, JSON.stringify(profile));
  printSummary(file, calls);
}

/**
 * Breakwater's benchmarks: success path, failure path, memory and scale, side
 * by side with opossum, cockatiel, p-limit, p-retry and p-timeout.
 *
 *   npm run bench          full run; prints the tables, regenerates docs/benchmarks.md
 *   npm run bench:quick    every scenario very briefly (smoke test); exits non-zero if one fails
 *
 * Options: --quick, --only=success,failure,memory,scale,http,redis, --filter=REGEX (success and
 * failure subjects whose id matches), --no-write (full run without the doc).
 * Results are also written as JSON to bench/results/ (ignored by git).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// mitata runs a GC between benchmarks when it can; without --expose-gc it would
// allocate a 1 GB array instead. Re-run this file with the flag if it is missing.
if (typeof globalThis.gc !== 'function') {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, self, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const { failureGroup } = await import('./groups/failure.ts');
const { memoryGroup } = await import('./groups/memory.ts');
const { scaleGroup } = await import('./groups/scale.ts');
const { successGroup } = await import('./groups/success.ts');
const { pairedGroup } = await import('./groups/paired.ts');
const { baselineGroup } = await import('./groups/baseline.ts');
const { aloneGroup } = await import('./groups/alone.ts');
const { httpGroup } = await import('./groups/http.ts');
const { redisGroup } = await import('./groups/redis.ts');
const { fullProfile, quickProfile } = await import('./lib/measure.ts');
const { machine, markdownReport, textReport } = await import('./lib/report.ts');
const { evaluateTargets } = await import('./lib/targets.ts');
const { Disposables } = await import('./subjects/subject.ts');
type RunResults = import('./lib/results.ts').RunResults;

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const noWrite = args.includes('--no-write');
const onlyArg = args.find((a) => a.startsWith('--only='));
const only = onlyArg === undefined ? undefined : new Set(onlyArg.slice('--only='.length).split(','));
const wanted = (group: string): boolean => only === undefined || only.has(group);
const filterArg = args.find((a) => a.startsWith('--filter='));
const filter = filterArg === undefined ? undefined : new RegExp(filterArg.slice('--filter='.length));
const profile = quick ? quickProfile : fullProfile;
const t0 = performance.now();
const log = (line: string): void => {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
};

const results: RunResults = { rows: [], failures: [], notes: [] };
const disposables = new Disposables();
const started = performance.now();

log(`Breakwater benchmarks (${profile.name}) on Node ${process.version}`);
let bare = Number.NaN;
try {
  if (wanted('success') || wanted('failure')) {
    log('success path');
    bare = await successGroup(profile, disposables, results, log, filter);
  }
  if (wanted('success') && filter === undefined) {
    log('metrics on versus off, paired');
    await pairedGroup(profile, results, log);
    log('this build versus the baseline build');
    await baselineGroup(profile, results, log);
    log("each of issue 12's policies alone, against the breaker");
    await aloneGroup(profile, results, log);
  }
  if (wanted('failure')) {
    log('failure path');
    await failureGroup(profile, disposables, results, log, bare, filter);
  }
} catch (error) {
  results.failures.push({ group: 'success', id: 'run', message: (error as Error).stack ?? String(error) });
} finally {
  // opossum keeps an interval timer per breaker: shut every one down so the process can exit.
  disposables.disposeAll();
}
if (wanted('memory')) {
  log('memory and idle timers');
  await memoryGroup(profile, results, log);
}
if (wanted('scale')) {
  log('scale');
  await scaleGroup(profile, results, log);
}
if (wanted('http')) {
  log('HTTP over loopback');
  await httpGroup(profile, results, log);
}
if (wanted('redis')) {
  log('breakwater/redis, with a redis-server on loopback');
  await redisGroup(profile, results, log);
}

const targets = evaluateTargets(results.rows);
const m = machine();
const elapsedS = (performance.now() - started) / 1000;
results.notes.push(`The run took ${elapsedS.toFixed(0)} s.`);
process.stdout.write(`${textReport(results, targets, m, profile.name, profile)}\n`);

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  `${resultsDir}${profile.name}.json`,
  `${JSON.stringify({ machine: m, profile: profile.name, ...results, targets }, null, 2)}\n`,
);

const complete = only === undefined && filter === undefined && results.failures.length === 0;
if (!quick && !noWrite) {
  if (complete) {
    const doc = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
    writeFileSync(doc, markdownReport(results, targets, m, 'npm run bench', profile));
    log(`wrote docs/benchmarks.md`);
  } else {
    log('docs/benchmarks.md not written: the run was partial or a scenario failed');
  }
}

if (results.failures.length > 0) {
  log(`${results.failures.length} scenario(s) failed`);
  process.exitCode = 1;
}
// Nothing should keep the process alive now; if something does, say what and fail.
setTimeout(() => {
  log(`the process is still alive 10 s after the run: ${process.getActiveResourcesInfo().join(', ')}`);
  process.exit(1);
}, 10_000).unref();

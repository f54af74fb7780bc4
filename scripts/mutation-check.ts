/**
 * CI's mutation check (`npm run test:mutation:check`; docs/reliability.md#mutation-testing).
 *
 * The committed baseline, test/mutation/incremental.json, is Stryker's incremental
 * report of the last runs: for each source file it holds the text that was mutated and
 * every mutant's result. This script
 *
 * 1. compares each file of src/ with the text the baseline holds for it;
 * 2. runs Stryker incrementally (`--mutate` the files that differ, against a copy of the
 *    baseline), so only the mutants in changed code, or reached by changed tests, run;
 * 3. fails if a checked file's mutation score is below its threshold: 85 % for the core
 *    and the policies, 75 % for the rest of src/.
 *
 * Files of src/ that the baseline does not hold yet are listed and not checked: they join
 * the check once a run of `npm run test:mutation -- --mutate <file>` has written them to
 * the baseline and the baseline is committed.
 *
 * The decisions (which files, which threshold, pass or fail) are plain functions,
 * tested in test/mutation-check.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of a Stryker JSON report (mutation-testing-report-schema) read here. */
export interface MutationReport {
  readonly files: Readonly<Record<string, { readonly source: string; readonly mutants: readonly { readonly status: string }[] }>>;
}

/** The core and the policies: held to the higher threshold. */
const STRICT: readonly string[] = [
  'src/core/',
  'src/circuit-breaker/',
  'src/adaptive-limit/',
  'src/chaos/',
  'src/backoff.ts',
  'src/bulkhead.ts',
  'src/fallback.ts',
  'src/hedge.ts',
  'src/keyed.ts',
  'src/rate-limiter.ts',
  'src/retry-budget.ts',
  'src/retry.ts',
  'src/rollout.ts',
  'src/throttle.ts',
  'src/timeout.ts',
];

/** The lowest mutation score, in percent, that `file` (a path such as `src/retry.ts`) may have. */
export function thresholdFor(file: string): number {
  return STRICT.some((entry) => (entry.endsWith('/') ? file.startsWith(entry) : file === entry)) ? 85 : 75;
}

/** A file's mutants by outcome, and its score as Stryker computes it. */
export interface FileScore {
  readonly mutants: number;
  readonly detected: number;
  readonly undetected: number;
  /** detected / (detected + undetected), in percent; undefined when no mutant counts. */
  readonly score: number | undefined;
}

/**
 * Killed and timed-out mutants are detected; survivors and mutants no test reaches are
 * not. Mutants that do not compile or crash the run, and ignored ones, do not count.
 */
export function scoreOf(mutants: readonly { readonly status: string }[]): FileScore {
  let detected = 0;
  let undetected = 0;
  for (const { status } of mutants) {
    if (status === 'Killed' || status === 'Timeout') detected++;
    else if (status === 'Survived' || status === 'NoCoverage') undetected++;
  }
  const counted = detected + undetected;
  return { mutants: mutants.length, detected, undetected, score: counted === 0 ? undefined : (detected / counted) * 100 };
}

/** Which source files to check: those whose text differs from the baseline's. */
export interface Plan {
  readonly changed: readonly string[];
  readonly unchanged: readonly string[];
  /** Not in the baseline yet: not checked. */
  readonly missing: readonly string[];
}

export function planCheck(baseline: MutationReport, sources: ReadonlyMap<string, string>): Plan {
  const changed: string[] = [];
  const unchanged: string[] = [];
  const missing: string[] = [];
  for (const [file, text] of [...sources].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const held = baseline.files[file];
    if (held === undefined) missing.push(file);
    else if (held.source === text) unchanged.push(file);
    else changed.push(file);
  }
  return { changed, unchanged, missing };
}

export interface Verdict extends FileScore {
  readonly file: string;
  readonly threshold: number;
  readonly ok: boolean;
  readonly problem?: string;
}

/**
 * Judges each checked file on the report of the run. A file the run left out of its
 * report fails (the run did not check it); so does a report that mutated other text
 * than the file's current one. A file without a mutant that counts passes.
 */
export function judge(report: MutationReport, files: readonly string[], sources: ReadonlyMap<string, string>): Verdict[] {
  return files.map((file) => {
    const threshold = thresholdFor(file);
    const result = report.files[file];
    if (result === undefined) {
      return { file, threshold, ok: false, problem: 'missing from the report', ...scoreOf([]) };
    }
    const score = scoreOf(result.mutants);
    if (result.source !== sources.get(file)) {
      return { file, threshold, ok: false, problem: 'the report mutated other text than the file holds', ...score };
    }
    return { file, threshold, ok: score.score === undefined || score.score >= threshold, ...score };
  });
}

function format(v: Verdict): string {
  const score = v.score === undefined ? 'no mutant counts' : `${v.score.toFixed(1)} %`;
  const detail = v.problem ?? `${score}, ${v.undetected} of ${v.detected + v.undetected} undetected`;
  return `${v.ok ? 'ok  ' : 'FAIL'} ${v.file}: ${detail} (threshold ${v.threshold} %)`;
}

function sourcesOf(root: string): Map<string, string> {
  const files = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => `src/${name.replaceAll('\\', '/')}`);
  return new Map(files.map((file) => [file, readFileSync(join(root, file), 'utf8')]));
}

function main(): number {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const baselinePath = join(root, 'test/mutation/incremental.json');
  const baseline = JSON.parse(readFileSync(baselinePath, 'utf8')) as MutationReport;
  const sources = sourcesOf(root);
  const plan = planCheck(baseline, sources);

  console.log(`mutation check: ${plan.unchanged.length} file(s) of src/ match the baseline and need no run.`);
  if (plan.missing.length > 0) {
    console.log(`not in the baseline yet, so not checked (${plan.missing.length}): ${plan.missing.join(', ')}`);
  }
  if (plan.changed.length === 0) {
    console.log('no file differs from the baseline: nothing to check.');
    return 0;
  }
  console.log(`checking ${plan.changed.length} file(s) that differ from the baseline: ${plan.changed.join(', ')}`);

  // Stryker rewrites its incremental file: give it a copy, so the check leaves the
  // committed baseline as it is.
  const work = mkdtempSync(join(tmpdir(), 'breakwater-mutation-'));
  const incremental = join(work, 'incremental.json');
  copyFileSync(baselinePath, incremental);
  const run = spawnSync(
    'npx',
    ['stryker', 'run', '--mutate', plan.changed.join(','), '--incrementalFile', incremental, '--reporters', 'clear-text,json'],
    { cwd: root, stdio: 'inherit' },
  );
  if (run.status !== 0) {
    console.error(`stryker failed (exit ${run.status ?? run.signal})`);
    return 1;
  }
  const report = JSON.parse(readFileSync(join(root, 'reports/mutation/mutation.json'), 'utf8')) as MutationReport;
  const verdicts = judge(report, plan.changed, sources);
  for (const v of verdicts) console.log(format(v));
  const failed = verdicts.filter((v) => !v.ok);
  if (failed.length > 0) {
    console.error(`mutation check failed for ${failed.length} file(s).`);
    return 1;
  }
  console.log(`mutation check passed. To update the baseline: npm run test:mutation -- --mutate ${plan.changed.join(',')}`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main();

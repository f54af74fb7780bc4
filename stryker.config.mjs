// @ts-check
/**
 * Mutation testing of src/ (`npm run test:mutation`; docs/reliability.md#mutation-testing).
 * Per-test coverage: each mutant runs only the tests that reach it. Incremental:
 * a rerun tests only mutants in changed code or reached by changed tests, against
 * the committed result of the last run (test/mutation/incremental.json).
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
// Property tests run on CI's pinned seed, so a mutant's verdict does not depend on the
// seed a run happened to draw, and incremental reruns compare like with like.
process.env.FC_SEED ??= '20261127';

export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: ['src/**/*.ts'],
  coverageAnalysis: 'perTest',
  concurrency: 2,
  incremental: true,
  incrementalFile: 'test/mutation/incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  timeoutMS: 10_000,
  thresholds: { high: 85, low: 75, break: null },
  cleanTempDir: 'always',
};

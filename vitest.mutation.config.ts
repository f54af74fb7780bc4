/**
 * The vitest configuration Stryker runs (`npm run test:mutation`): the unit,
 * property and reliability suites, without the type tests (Stryker's runner
 * does not run them, and they check no behaviour) and without the suites that
 * start real servers or processes (demos, Prometheus, packaging) or read src/ as text (the security review),
 * which kill no
 * mutant the fast suites do not and would make each mutant cost seconds.
 *
 * `isolate: false` makes each mutant cheaper without changing which tests it runs:
 * the test files of one run share a module graph instead of importing src/ afresh
 * per file (about 170 ms a file; a mutant runs about 18 files). Every run still
 * starts from fresh modules, so mutants in top-level code are still seen.
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.ts';

const config = mergeConfig(
  base,
  defineConfig({
    test: {
      typecheck: { enabled: false },
      isolate: false,
      exclude: [
        'node_modules/**',
        'test/demo-*.test.ts',
        'test/prometheus-server.test.ts',
        'test/prometheus-promtool.test.ts',
        'test/prometheus-setup.test.ts',
        'test/package.test.ts',
        'test/tree-shaking.test.ts',
        'test/docs-samples.test.ts',
        'test/api-docs.test.ts',
        'test/reliability/process.test.ts',
        'test/redis-*.test.ts', // need the redis-server that the main config's set-up starts
        'test/reliability/security.test.ts', // reads src/ as text, which Stryker rewrites
        'examples/**',
      ],
    },
  }),
);
// mergeConfig appends arrays: clear the main config's global set-up (it finds or
// installs promtool, prometheus and redis-server, which no suite run here needs).
config.test!.globalSetup = [];
export default config;

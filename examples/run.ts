/**
 * `npm run demo -- <name> [args...]`: runs one incident demo (default
 * `auth-cascade`). An unknown name lists the demos.
 */
import type { DemoModule } from './harness/index.ts';

/** The demos, by name, loaded on demand. */
const DEMOS: Readonly<Record<string, { readonly about: string; readonly load: () => Promise<DemoModule> }>> = {
  'auth-cascade': {
    about: 'auth fails; dependents retrying without limit take everything down (before) vs Breakwater (after)',
    load: () => import('./auth-cascade/demo.ts'),
  },
  'sync-payment-call': {
    about: 'checkout waits on a 2.8 s external payment API (before) vs a background job behind a bulkhead, breaker and timeout (after)',
    load: () => import('./sync-payment-call/demo.ts'),
  },
};

const [name = 'auth-cascade', ...argv] = process.argv.slice(2);
const demo = DEMOS[name];
if (demo === undefined) {
  console.log(`unknown demo "${name}". Available demos:`);
  for (const [key, { about }] of Object.entries(DEMOS)) console.log(`  ${key.padEnd(20)} ${about}`);
  console.log('\nrun one with: npm run demo -- <name>');
  process.exitCode = name === '--help' || name === '-h' || name === 'list' ? 0 : 2;
} else {
  const started = performance.now();
  const module = await demo.load();
  await module.run({ argv });
  console.log(`\n${name}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * What capturing the caller's async context costs the hedge and the bulkhead:
 * this checkout's policies against another checkout's, side by side in one
 * process, rounds interleaved; each figure is the median over rounds.
 *
 *   npx node bench/micro/context-capture.ts /path/to/other/checkout
 */
import { pathToFileURL } from 'node:url';
import * as here from '../../src/index.ts';

const other = process.argv[2];
if (other === undefined) throw new Error('usage: npx node bench/micro/context-capture.ts /path/to/other/checkout');
const there = (await import(pathToFileURL(`${other}/src/index.ts`).href)) as typeof here;
const work = (): number => 1;
const N = 200_000;

async function perCall(policy: here.Policy<never>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < N; i++) await policy.execute(work);
  return ((performance.now() - start) * 1e6) / N;
}

const subjects: Record<string, here.Policy<never>> = {
  'hedge (delay 1 s), other checkout': there.hedge({ delayMs: 1_000 }),
  'hedge (delay 1 s), this checkout': here.hedge({ delayMs: 1_000 }),
  'bulkhead, other checkout': there.bulkhead({ maxConcurrent: 1_000, maxQueue: 1_000 }),
  'bulkhead, this checkout': here.bulkhead({ maxConcurrent: 1_000, maxQueue: 1_000 }),
};
for (const policy of Object.values(subjects)) await perCall(policy); // warm up
const rounds: Record<string, number[]> = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
for (let r = 0; r < 11; r++) for (const [name, policy] of Object.entries(subjects)) rounds[name]!.push(await perCall(policy));
for (const [name, figures] of Object.entries(rounds)) console.log(`${name}: ${figures.sort((a, b) => a - b)[5]!.toFixed(0)} ns a call (median of 11 rounds)`);

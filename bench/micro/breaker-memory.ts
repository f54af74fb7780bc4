// Heap per breaker: npx node --expose-gc memory.ts  (run from /work/main)
import { circuitBreaker } from '../../src/index.ts';
const gc = (globalThis as { gc?: () => void }).gc!;
function used(): number { gc(); gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; }
const N = 10_000;
const variants: [string, () => unknown][] = [
  ['default (time window 10 s / 10 buckets)', () => circuitBreaker()],
  ['count window of 100 calls', () => circuitBreaker({ window: { kind: 'count', calls: 100 }, minimumCalls: 20 })],
  ['default + 4 listeners', () => { const b = circuitBreaker(); const f = () => {}; b.onStateChange(f); b.onReject(f); b.onSuccess(f); b.onFailure(f); return b; }],
];
for (const [name, make] of variants) {
  const keep: unknown[] = new Array(N);
  const before = used();
  for (let i = 0; i < N; i++) keep[i] = make();
  const after = used();
  console.log(`${name}: ${((after - before) / N).toFixed(0)} bytes per breaker`);
  keep.length = 0;
}

// Failure path of a closed breaker that never opens (minimumCalls out of reach), with a preallocated error.
// Run from /work/main: npx node /tmp/breaker-measure/fail.ts
import { circuitBreaker } from '../../src/index.ts';
import { PolicyBase } from '../../src/core/protocol.ts';
import type { Chain, Scope } from '../../src/core/protocol.ts';
class PassThrough extends PolicyBase { readonly kind = 'p'; _run<T>(c: Chain<T>, i: number, s: Scope | undefined, a: number) { return c.next(i + 1, s, a); } }
class Rethrow extends PolicyBase { readonly kind = 'p'; _run<T>(c: Chain<T>, i: number, s: Scope | undefined, a: number) { return c.next(i + 1, s, a).then((v) => v, (e) => { throw e; }); } }
const N = 100_000, BATCH = 1000; const noop = () => {};
async function time(make: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i += BATCH) { let last: Promise<unknown> = Promise.resolve(); for (let j = 0; j < BATCH; j++) last = make().then(noop, noop); await last; }
  return Number(process.hrtime.bigint() - t0) / N;
}
const err = new Error('pre');
const failing = () => Promise.reject(err);
const cases: Record<string, () => Promise<unknown>> = {
  'bare failing (preallocated error)': () => failing(),
  'pass-through': () => new PassThrough().execute(failing),
  'rethrow policy': () => new Rethrow().execute(failing),
  'breaker time window': ((b) => () => b.execute(failing))(circuitBreaker({ minimumCalls: 1e15 })),
  'breaker time window, handle true': ((b) => () => b.execute(failing))(circuitBreaker({ minimumCalls: 1e15, handle: () => true })),
};
const results: Record<string, number[]> = {};
for (let r = 0; r < 11; r++) for (const [n, m] of Object.entries(cases)) (results[n] ??= []).push(await time(m));
for (const [n, r] of Object.entries(results)) { r.sort((a, b) => a - b); console.log(n.padEnd(40), r[5]!.toFixed(0), 'ns'); }

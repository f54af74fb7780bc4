// Hot paths of the circuit breaker. Run from /work/main: npx node /tmp/breaker-measure/speed.ts
import { circuitBreaker } from '../../src/index.ts';
import { PolicyBase } from '../../src/core/protocol.ts';
import type { Chain, Scope } from '../../src/core/protocol.ts';

/** The cheapest possible policy: calls the next layer, adds nothing (isolates the plumbing's cost). */
class PassThrough extends PolicyBase {
  readonly kind = 'pass-through';
  _run<T>(chain: Chain<T>, index: number, scope: Scope | undefined, attempt: number): Promise<T> {
    return chain.next(index + 1, scope, attempt);
  }
}
const N = 200_000;
const BATCH = 1_000;
const noop = () => {};
/** Runs `make` N times, BATCH promises in flight at a time, consuming rejections without throwing into an await. */
async function time(make: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i += BATCH) {
    let last: Promise<unknown> = Promise.resolve();
    for (let j = 0; j < BATCH; j++) last = make().then(noop, noop);
    await last;
  }
  return Number(process.hrtime.bigint() - t0) / N;
}
const work = async () => 1;
const failing = () => Promise.reject(new Error('boom'));
const open = circuitBreaker({ minimumCalls: 1, halfOpenAfterMs: 3_600_000 });
await open.execute(failing).catch(noop);
if (open.state !== 'open') throw new Error('not open');
const timeWindow = circuitBreaker();
const countWindow = circuitBreaker({ window: { kind: 'count', calls: 100 } });
const neverOpens = circuitBreaker({ minimumCalls: Number.MAX_SAFE_INTEGER });
const passThrough = new PassThrough();
const cases: Record<string, () => Promise<unknown>> = {
  'bare async call': () => work(),
  'pass-through policy (plumbing only)': () => passThrough.execute(work),
  'breaker closed, success, time window': () => timeWindow.execute(work),
  'breaker closed, success, count window': () => countWindow.execute(work),
  'bare failing call (new Error + reject)': () => failing(),
  'breaker closed, failure (never opens)': () => neverOpens.execute(failing),
  'Promise.reject(new Error())': () => Promise.reject(new Error('x')),
  'breaker open: rejection': () => open.execute(work),
};
const results: Record<string, number[]> = {};
for (let round = 0; round < 7; round++) {
  for (const [name, make] of Object.entries(cases)) (results[name] ??= []).push(await time(make));
}
for (const [name, r] of Object.entries(results)) {
  r.sort((a, b) => a - b);
  console.log(name.padEnd(42), `${r[3]!.toFixed(0).padStart(6)} ns/call (median of 7 rounds of ${N})`);
}

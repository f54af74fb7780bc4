import { BrokenCircuitError } from '../../src/core/errors.ts';
function bench(name: string, n: number, f: () => unknown) {
  for (let i = 0; i < 50_000; i++) f();
  const t0 = process.hrtime.bigint();
  let x: unknown;
  for (let i = 0; i < n; i++) x = f();
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(name.padEnd(44), ns.toFixed(1), 'ns', typeof x === 'object' ? '' : '');
}
function deep(d: number, f: () => unknown): unknown { return d === 0 ? f() : deep(d - 1, f); }
const N = 1_000_000;
for (let round = 0; round < 2; round++) {
bench('new Error()', N, () => new Error('x'));
bench('new Error() depth 20', N, () => deep(20, () => new Error('x')));
bench('new BrokenCircuitError', N, () => new BrokenCircuitError(5));
bench('new BrokenCircuitError depth 20', N, () => deep(20, () => new BrokenCircuitError(5)));
bench('BrokenCircuitError limit=0', N, () => { const l = Error.stackTraceLimit; Error.stackTraceLimit = 0; try { return new BrokenCircuitError(5); } finally { Error.stackTraceLimit = l; } });
bench('BrokenCircuitError limit=0 depth 20', N, () => deep(20, () => { const l = Error.stackTraceLimit; Error.stackTraceLimit = 0; try { return new BrokenCircuitError(5); } finally { Error.stackTraceLimit = l; } }));
bench('plain object', N, () => ({ a: 1, b: 2 }));
}
const l = Error.stackTraceLimit; Error.stackTraceLimit = 0; const e = new BrokenCircuitError(5); Error.stackTraceLimit = l;
console.log(JSON.stringify(e.stack), e instanceof Error, e.name, String(e));

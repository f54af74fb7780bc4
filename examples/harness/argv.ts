/**
 * Reading a demo's options from the arguments after its name.
 */

/**
 * The positive number after flag `name` in `argv` (`--rate 50`), or `fallback`
 * when the flag is absent. Anything else after the flag throws a RangeError
 * naming the demo, the flag and what was received.
 */
export function numberOption(argv: readonly string[], name: string, fallback: number, demo: string): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${demo}: ${name} needs a positive number; received ${argv[i + 1]}`);
  return value;
}

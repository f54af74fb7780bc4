import fc from 'fast-check';

// Property tests pick a fresh random seed on every run, so local runs keep exploring.
// FC_SEED pins it: CI sets it so that what landed is exactly what was checked, and a
// failure printed with `seed: N` replays with `FC_SEED=N npm test` (properties that
// pass their own `seed` keep it).
const seed = process.env.FC_SEED;
if (seed !== undefined && seed !== '') {
  const value = Number(seed);
  if (!Number.isSafeInteger(value)) throw new TypeError(`FC_SEED must be an integer, received ${JSON.stringify(seed)}`);
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: value });
}

/**
 * The leak and its latency, in one place: what a request costs a worker, how
 * its latency follows its heap, and the incident's time scale. The real worker
 * process (worker.ts) and the in-memory workers of the property tests
 * (pool.ts) both use these functions, so they degrade alike.
 */

/** The seed's incident: two hours of degradation. */
export const INCIDENT_MINUTES = 120;

/** A worker's shortest latency, ms: with {@link HEALTHY_SPREAD_MS}, 100 to 210 ms while its heap is at its starting size, so p95 is about 200 ms (the seed's baseline). */
export const HEALTHY_MIN_MS = 100;
/** The spread of a healthy worker's latency above {@link HEALTHY_MIN_MS}, ms (uniform). */
export const HEALTHY_SPREAD_MS = 110;

/**
 * Extra latency at a full heap, in ms. V8 stops a worker a little short of its limit,
 * so one about to die answers in about 5 s: the seed's worst p95.
 */
export const FULL_HEAP_EXTRA_MS = 6_000;

/** The heap limit of a worker (`--max-old-space-size`), in MB. */
export const HEAP_LIMIT_MB = 64;

/** Heap a worker holds once started and before it leaks, in bytes (the in-memory workers; a real one measures its own). */
export const BASELINE_HEAP_BYTES = 12 * 2 ** 20;

/**
 * How full a heap is, 0 (as started) to 1 (at its limit): the share of the room
 * between the starting size and the limit that is used.
 */
export function heapFill(usedBytes: number, baselineBytes: number, limitBytes: number): number {
  const room = limitBytes - baselineBytes;
  if (!(room > 0)) return 1;
  return Math.min(1, Math.max(0, (usedBytes - baselineBytes) / room));
}

/**
 * The time a worker takes to answer a request at heap fill `fill` (0..1), with
 * `roll` a uniform random number in [0, 1): the healthy latency plus a part
 * that grows with the square of the fill (garbage collection that runs longer
 * and more often as the heap fills up: slow at first, then steep).
 */
export function latencyMs(fill: number, roll: number): number {
  return HEALTHY_MIN_MS + HEALTHY_SPREAD_MS * roll + FULL_HEAP_EXTRA_MS * fill * fill;
}

/**
 * Bytes a leaking worker keeps per request so that, at `requestsPerSecond`
 * reaching it, it goes from its starting heap to its limit in `secondsToLimit`.
 */
export function leakBytesPerRequest(secondsToLimit: number, requestsPerSecond: number, limitMb = HEAP_LIMIT_MB, baselineBytes = BASELINE_HEAP_BYTES): number {
  return Math.max(1024, Math.round((limitMb * 2 ** 20 - baselineBytes) / (secondsToLimit * requestsPerSecond)));
}

/** The time scale: how many incident minutes one demo second stands for, when `loadSeconds` play the seed's two hours. */
export function minutesPerSecond(loadSeconds: number): number {
  return INCIDENT_MINUTES / loadSeconds;
}

/**
 * The sliding windows of the circuit breaker's closed state (the throttle uses the
 * time window too: a refused call is recorded as a failure). Both record a call
 * in O(1) whatever their size, keep their counts in one typed array, and keep
 * running totals so that reading a rate costs a division.
 * @internal
 */

/** Outcome codes stored per call or summed per bucket: bit 0 failure, bit 1 slow. */
export const FAILURE = 1;
/** @internal */
export const SLOW = 2;

/**
 * Counts of the calls in a window.
 * @internal
 */
export interface Window {
  /** Calls recorded in the window (successes, failures and slow calls alike). */
  readonly calls: number;
  /** Of those, the failures. */
  readonly failures: number;
  /** Of those, the slow ones (a slow failure is both). */
  readonly slow: number;
  /** True when `record` and `clear` need the current time. */
  readonly needsNow: boolean;
  /** Records one call: `code` is 0 (fast success) or a combination of FAILURE and SLOW. */
  record(now: number, code: number): void;
  /** Forgets every call; `now` starts the new window. */
  clear(now: number): void;
}

/**
 * The last `size` calls, in a ring of one byte per call. Recording overwrites
 * the oldest call and adjusts the totals: O(1).
 * @internal
 */
export class CountWindow implements Window {
  calls = 0;
  failures = 0;
  slow = 0;
  readonly needsNow = false;
  readonly #ring: Uint8Array;
  #next = 0;

  constructor(size: number) {
    this.#ring = new Uint8Array(size);
  }

  record(_now: number, code: number): void {
    const ring = this.#ring;
    const at = this.#next;
    if (this.calls === ring.length) {
      const old = ring[at]!;
      this.failures -= old & FAILURE;
      this.slow -= old >> 1;
    } else {
      this.calls++;
    }
    ring[at] = code;
    this.failures += code & FAILURE;
    this.slow += code >> 1;
    this.#next = at + 1 === ring.length ? 0 : at + 1;
  }

  clear(): void {
    // The ring's old bytes are never read: `calls` says how many are live.
    this.calls = this.failures = this.slow = 0;
    this.#next = 0;
  }
}

/**
 * The last `ms` of calls, in `buckets` buckets of `ms / buckets` each: the
 * current bucket plus the `buckets - 1` before it (so between `ms - ms / buckets`
 * and `ms` of history). Bucket boundaries are counted from the window's creation.
 * Recording a call is O(1); moving into a new bucket clears the buckets that
 * expired meanwhile (at most `buckets` of them, however long the breaker idled).
 * @internal
 */
export class TimeWindow implements Window {
  calls = 0;
  failures = 0;
  slow = 0;
  readonly needsNow = true;
  readonly #bucketMs: number;
  readonly #origin: number;
  /** Three counters per bucket: calls, failures, slow. */
  readonly #counts: Uint32Array;
  /** Absolute number of the current bucket, counted from `origin`. */
  #head: number;

  constructor(ms: number, buckets: number, now: number) {
    this.#bucketMs = ms / buckets;
    this.#origin = now;
    this.#counts = new Uint32Array(buckets * 3);
    this.#head = 0;
  }

  record(now: number, code: number): void {
    const bucket = this.#bucketOf(now);
    if (bucket > this.#head) this.#rotate(bucket);
    const counts = this.#counts;
    const at = (this.#head % (counts.length / 3)) * 3;
    counts[at]!++;
    this.calls++;
    if ((code & FAILURE) !== 0) {
      counts[at + 1]!++;
      this.failures++;
    }
    if ((code & SLOW) !== 0) {
      counts[at + 2]!++;
      this.slow++;
    }
  }

  /**
   * Moves the window to `now` without recording a call, so that the totals read
   * next leave out the buckets that expired since the last record (the throttle
   * reads them before deciding on a call).
   */
  advance(now: number): void {
    const bucket = this.#bucketOf(now);
    if (bucket > this.#head) this.#rotate(bucket);
  }

  clear(now: number): void {
    this.#counts.fill(0);
    this.calls = this.failures = this.slow = 0;
    this.#head = Math.max(this.#head, this.#bucketOf(now));
  }

  #bucketOf(now: number): number {
    // A clock that stepped back (it should not) lands in the current bucket.
    const bucket = Math.floor((now - this.#origin) / this.#bucketMs);
    return bucket > this.#head ? bucket : this.#head;
  }

  #rotate(bucket: number): void {
    const counts = this.#counts;
    const size = counts.length / 3;
    const expired = Math.min(bucket - this.#head, size);
    for (let k = 1; k <= expired; k++) {
      const at = ((this.#head + k) % size) * 3;
      this.calls -= counts[at]!;
      this.failures -= counts[at + 1]!;
      this.slow -= counts[at + 2]!;
      counts[at] = counts[at + 1] = counts[at + 2] = 0;
    }
    this.#head = bucket;
  }
}

/**
 * The fault timeline: which fault hits a request arriving at a service at a
 * given time. Faults live here, never in service code.
 */
import type { RandomSource } from '../../src/index.ts';
import type { Fault, FaultWindow } from './types.ts';

/** What the harness does with one arriving request. */
export type FaultDecision =
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly status: number; readonly retryAfterMs?: number }
  | { readonly kind: 'hang'; readonly releaseAtMs: number }
  | { readonly kind: 'latency'; readonly addMs: number };

const NONE: FaultDecision = Object.freeze({ kind: 'none' });

/** Checks a window and returns a frozen copy. */
function checked(window: FaultWindow): FaultWindow {
  const { fromMs, toMs, recoveryRampMs = 0, fault } = window;
  if (typeof window.service !== 'string' || window.service === '') throw new TypeError('fault: "service" must be a service name');
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs) || toMs < fromMs) {
    throw new RangeError(`fault on ${window.service}: need finite fromMs <= toMs; received ${fromMs}..${toMs}`);
  }
  if (!Number.isFinite(recoveryRampMs) || recoveryRampMs < 0) {
    throw new RangeError(`fault on ${window.service}: "recoveryRampMs" must be >= 0; received ${recoveryRampMs}`);
  }
  const kind = (fault as Fault | undefined)?.kind;
  if (kind !== 'error' && kind !== 'hang' && kind !== 'latency') {
    throw new TypeError(`fault on ${window.service}: fault.kind must be "error", "hang" or "latency"; received ${String(kind)}`);
  }
  const retryAfterMs = fault.kind === 'error' ? fault.retryAfterMs : undefined;
  if (retryAfterMs !== undefined && !(Number.isFinite(retryAfterMs) && retryAfterMs >= 0)) {
    throw new RangeError(`fault on ${window.service}: "retryAfterMs" must be a finite number >= 0; received ${retryAfterMs}`);
  }
  return Object.freeze({ ...window, fault: Object.freeze({ ...fault }) });
}

/**
 * Share of requests a window hits at `atMs`: 1 inside, falling linearly to 0
 * over the recovery ramp, 0 elsewhere.
 */
export function faultIntensity(window: FaultWindow, atMs: number): number {
  if (atMs < window.fromMs) return 0;
  if (atMs < window.toMs) return 1;
  const ramp = window.recoveryRampMs ?? 0;
  if (ramp <= 0 || atMs >= window.toMs + ramp) return 0;
  return 1 - (atMs - window.toMs) / ramp;
}

/** When a window is completely over (end of its ramp). */
export function faultEndMs(window: FaultWindow): number {
  return window.toMs + (window.recoveryRampMs ?? 0);
}

/** A fault timeline; the deployment consults it for every arriving request. */
export class FaultPlan {
  #windows: FaultWindow[];
  readonly #random: RandomSource;

  /** `windows` may overlap; the first matching window decides. */
  constructor(windows: readonly FaultWindow[], random: RandomSource) {
    this.#windows = windows.map(checked);
    this.#random = random;
  }

  /** The windows, in the order given. */
  get windows(): readonly FaultWindow[] {
    return this.#windows;
  }

  /** Adds a window (for faults decided while the run goes on). */
  add(window: FaultWindow): void {
    this.#windows = [...this.#windows, checked(window)];
  }

  /** What happens to a request to `service` for `path` arriving at `atMs`. */
  decide(service: string, path: string, atMs: number): FaultDecision {
    for (const window of this.#windows) {
      if (window.service !== service) continue;
      if (window.pathPrefix !== undefined ? !path.startsWith(window.pathPrefix) : path === '/metrics') continue;
      const intensity = faultIntensity(window, atMs);
      if (intensity <= 0) continue;
      const fault = window.fault;
      if (fault.kind === 'latency') return { kind: 'latency', addMs: fault.addMs * intensity };
      const share = intensity * (fault.probability ?? 1);
      if (share < 1 && this.#random() >= share) continue;
      if (fault.kind === 'error') {
        return fault.retryAfterMs === undefined
          ? { kind: 'error', status: fault.status ?? 503 }
          : { kind: 'error', status: fault.status ?? 503, retryAfterMs: fault.retryAfterMs };
      }
      return { kind: 'hang', releaseAtMs: faultEndMs(window) };
    }
    return NONE;
  }
}

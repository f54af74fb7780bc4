/** Helpers for the breakwater/prometheus tests: read the text exposition back. */
import type { Registry } from 'prom-client';

/** One sample line of the text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the sample lines of a Prometheus text exposition. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(LABEL)) {
      labels[name!] = value!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const raw = match[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** Scrapes `registry` (text exposition) and parses it. */
export async function scrape(registry: Registry): Promise<Sample[]> {
  return parseExposition(await registry.metrics());
}

/** The samples named `name` whose labels include `labels`. */
export function select(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample named `name` with `labels`; throws if there is not exactly one. */
export function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = select(samples, name, labels);
  if (found.length !== 1) {
    throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  }
  return found[0]!.value;
}

/** The metric families of the contract (docs/metrics.md), stated here independently of the source. */
export const FAMILIES = [
  'calls_total',
  'call_duration_seconds',
  'circuit_state',
  'circuit_transitions_total',
  'bulkhead_active',
  'bulkhead_queued',
  'bulkhead_rejections_total',
  'retries_total',
  'retry_budget_exhausted_total',
  'timeouts_total',
  'fallbacks_total',
  'circuit_rejections_total',
  'hedges_total',
  'hedge_wins_total',
  'hedge_budget_exhausted_total',
  'chaos_injections_total',
  'throttle_rejections_total',
  'throttle_probability',
  'adaptive_limit',
  'adaptive_in_flight',
  'adaptive_rejections_total',
  'rate_limit_admitted_total',
  'rate_limit_delayed_total',
  'rate_limit_rejections_total',
  'rollout_exposures_total',
  'rollout_experiment_failures_total',
  'rollout_rollbacks_total',
  'rollout_share_refusals_total',
  'rollout_share',
  'rollout_requested_share',
  'rollout_rolled_back',
  'fleet_degraded',
];

/** The families of breakwater/http gates (docs/metrics.md), reported through `attachGate`; they carry `gate`, not `pipeline`. */
export const GATE_FAMILIES = ['http_requests_total', 'http_in_flight', 'http_limit'];

/**
 * Early detection, checked by Prometheus' own rule engine: the API's `/metrics`
 * scraped during a run become promtool input series (one scrape = one incident
 * minute), and `promtool test rules` evaluates an alert rule of
 * docs/prometheus/alerts.yml at every minute. Nothing here re-implements PromQL:
 * the minutes at which the rule fired are read from promtool's own report.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { REPO_ROOT } from '../harness/index.ts';
import type { Scrape } from './scenario.ts';

/** The rule the demo evaluates. */
export const SLOW_CALLS_ALERT = 'BreakwaterSlowCalls';

/** The rules file, as shipped. */
export const ALERTS_FILE = join(REPO_ROOT, 'docs', 'prometheus', 'alerts.yml');

/** Where promtool is: `PROMTOOL`, then `PATH`, then /usr/bin; undefined when it is nowhere. */
export function findPromtool(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = [env.PROMTOOL, ...(env.PATH ?? '').split(delimiter).map((dir) => (dir === '' ? '' : join(dir, 'promtool'))), '/usr/bin/promtool'];
  return candidates.find((path): path is string => path !== undefined && path !== '' && existsSync(path));
}

/**
 * The `breakwater_` samples of each scrape, as promtool input series: one entry
 * per series, with its value at every scrape (`_` where a scrape did not have it).
 */
export function inputSeries(scrapes: readonly Scrape[]): { series: string; values: string }[] {
  const values = new Map<string, (string | undefined)[]>();
  scrapes.forEach((scrape, i) => {
    for (const line of scrape.text.split('\n')) {
      if (!line.startsWith('breakwater_')) continue;
      const cut = line.lastIndexOf(' ');
      const name = line.slice(0, cut);
      let list = values.get(name);
      if (list === undefined) values.set(name, (list = []));
      list[i] = line.slice(cut + 1);
    }
  });
  return [...values].map(([series, list]) => ({
    series,
    values: Array.from({ length: scrapes.length }, (_, i) => list[i] ?? '_').join(' '),
  }));
}

/** When an alert fired: the incident minute promtool first reported it at, per label set. */
export interface AlertFiring {
  readonly minute: number;
  /** The alert's labels as promtool printed them, such as `{alertname="BreakwaterSlowCalls", pipeline="worker-1", severity="warning"}`. */
  readonly labels: string;
}

/** What {@link evaluateAlert} found. */
export type AlertResult =
  | { readonly evaluated: true; readonly minutes: number; readonly firings: readonly AlertFiring[] }
  | { readonly evaluated: false; readonly why: string };

/**
 * Evaluates `alertname` from `rulesFile` over the scrapes, at every minute, with
 * promtool (default: the one {@link findPromtool} finds; `null`: none); returns
 * each minute at which it was firing, earliest first.
 */
export async function evaluateAlert(
  scrapes: readonly Scrape[],
  { alertname = SLOW_CALLS_ALERT, rulesFile = ALERTS_FILE, promtool = findPromtool() }: { alertname?: string; rulesFile?: string; promtool?: string | null | undefined } = {},
): Promise<AlertResult> {
  if (promtool === undefined || promtool === null) return { evaluated: false, why: 'promtool was not found (sudo apt-get install prometheus, or set PROMTOOL)' };
  if (scrapes.length === 0) return { evaluated: false, why: 'no scrape of /metrics' };
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-memory-leak-'));
  try {
    const test = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: inputSeries(scrapes),
          // Expect silence at every minute: promtool then reports each minute the alert fired at.
          alert_rule_test: Array.from({ length: scrapes.length }, (_, minute) => ({ eval_time: `${minute}m`, alertname, exp_alerts: [] })),
        },
      ],
    };
    const file = join(dir, 'memory-leak.test.json');
    await writeFile(file, JSON.stringify(test)); // JSON is YAML
    const output = await new Promise<{ code: number; text: string }>((resolve, reject) => {
      execFile(promtool, ['test', 'rules', file], { timeout: 60_000, maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        if (code < 0) reject(error);
        else resolve({ code, text: `${stdout}\n${stderr}` });
      });
    });
    const firings = parseFirings(output.text, alertname);
    if (output.code !== 0 && firings.length === 0) return { evaluated: false, why: `promtool failed: ${output.text.trim().slice(0, 500)}` };
    return { evaluated: true, minutes: scrapes.length, firings };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The firings in promtool's report of unexpected alerts, earliest first. */
export function parseFirings(report: string, alertname: string): AlertFiring[] {
  const firings: AlertFiring[] = [];
  const blocks = report.split(/alertname: /).slice(1);
  for (const block of blocks) {
    const head = /^(\S+), time: (\S+?),/.exec(block);
    if (head === null || head[1] !== alertname) continue;
    const minute = durationMinutes(head[2]!);
    for (const match of block.matchAll(/Labels:(\{[^}]*\})/g)) firings.push({ minute, labels: match[1]! });
  }
  return firings.sort((a, b) => a.minute - b.minute);
}

/** Minutes in a Prometheus duration as promtool prints it (`1h5m`, `7m`, `0s`). */
function durationMinutes(text: string): number {
  let minutes = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(h|m|s)/g)) minutes += Number(n) * (unit === 'h' ? 60 : unit === 'm' ? 1 : 1 / 60);
  return minutes;
}

/** The value of a label in promtool's printed label set. */
export function labelOf(labels: string, name: string): string | undefined {
  return new RegExp(`${name}="([^"]*)"`).exec(labels)?.[1];
}

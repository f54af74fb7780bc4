/**
 * Vitest global setup: finds `promtool` and `prometheus` for the suites that run
 * the real tools (test/prometheus-promtool.test.ts, test/prometheus-server.test.ts)
 * and hands their paths to those suites through `inject('prometheusTools')`.
 *
 * - It looks at the PROMTOOL and PROMETHEUS variables, then PATH, then /usr/bin.
 * - If a tool is missing and this machine allows it (root or passwordless sudo, and
 *   apt-get), it installs Debian's `prometheus` package, bounded in time, with any
 *   service start the package asks for refused (the tests start their own Prometheus
 *   on a free 127.0.0.1 port; a daemon on :9090 would only use the machine).
 * - If the tools still cannot be had, those suites are skipped and one line says what
 *   is missing and how to get it. With CI set, it never skips: the run fails instead.
 * - BREAKWATER_SKIP_PROMETHEUS=1 skips those suites without looking (refused under CI).
 *
 * A run whose file filters select neither suite (`npx vitest run test/retry.test.ts`)
 * looks for nothing and installs nothing. The suites read the tools with
 * `prometheusTools()` from test/prometheus-tools.ts.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestProject } from 'vitest/node';

/** What the Prometheus suites receive. */
export interface PrometheusTools {
  /** Absolute path of promtool, or undefined when the suites must skip. */
  readonly promtool: string | undefined;
  /** Absolute path of prometheus, or undefined when the suites must skip. */
  readonly prometheus: string | undefined;
}

declare module 'vitest' {
  export interface ProvidedContext {
    prometheusTools: PrometheusTools;
  }
}

/** The test files that need the tools (paths relative to the repository root). */
export const SUITES_NEEDING_TOOLS = ['test/prometheus-promtool.test.ts', 'test/prometheus-server.test.ts', 'test/demo-memory-leak.test.ts'];

const TOOLS = ['promtool', 'prometheus'] as const;
type Tool = (typeof TOOLS)[number];
const HOW_TO_GET = 'sudo apt-get install prometheus, or set PROMTOOL and PROMETHEUS to the binaries';
const POLICY_RC = '/usr/sbin/policy-rc.d';
const POLICY_MARK = '# breakwater test setup: refuse service starts while installing prometheus';
const UPDATE_TIMEOUT_MS = 180_000;
const INSTALL_TIMEOUT_MS = 420_000;

type Env = Readonly<Record<string, string | undefined>>;

/** True when `CI` is set to anything but an empty string, `0` or `false`. */
export function isCi(env: Env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== '0' && value !== 'false';
}

/** Whether `path` is an executable file. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, env: Env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * Where `tool` is: its variable (PROMTOOL / PROMETHEUS) if set, else PATH, else
 * /usr/bin. A variable pointing at no executable is a mistake, reported as such.
 */
export function findTool(tool: Tool, env: Env): string | undefined {
  const variable = tool.toUpperCase();
  const override = env[variable];
  if (override !== undefined && override !== '') {
    if (!isExecutable(override)) throw new Error(`${variable} is set to ${override}, which is not an executable file`);
    return override;
  }
  const fallback = `/usr/bin/${tool}`;
  return onPath(tool, env) ?? (isExecutable(fallback) ? fallback : undefined);
}

/** How this machine can install packages: the command prefix, or why it cannot. */
export function installer(env: Env): { readonly prefix: readonly string[] } | { readonly reason: string } {
  if (onPath('apt-get', env) === undefined && !isExecutable('/usr/bin/apt-get')) return { reason: 'no apt-get on this machine' };
  if (process.getuid?.() === 0) return { prefix: [] };
  if (onPath('sudo', env) !== undefined && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0) {
    return { prefix: ['sudo', '-n'] };
  }
  return { reason: 'not root and no passwordless sudo' };
}

function run(command: readonly string[], timeoutMs: number): { ok: boolean; output: string } {
  const result = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  if (result.error) return { ok: false, output: `${result.error.message}\n${output}` };
  return { ok: result.status === 0, output };
}

/**
 * `apt-get update -qq`, then `apt-get install <debianPackage>`, non-interactive and
 * bounded in time. While it installs, a policy-rc.d refuses service starts, unless the
 * machine already has a policy of its own (then that policy decides). The Redis suites'
 * setup (test/redis-setup.ts) installs `redis-server` the same way.
 */
export function aptInstall(prefix: readonly string[], debianPackage: string): { ok: true } | { ok: false; reason: string } {
  const apt = (...args: string[]) => [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-o', 'DPkg::Lock::Timeout=60', ...args];
  // A policy left by an interrupted run of ours is ours to remove; anyone else's stays.
  const stale = existsSync(POLICY_RC) && readFileSync(POLICY_RC, 'utf8').includes(POLICY_MARK);
  const ownPolicy = stale || !existsSync(POLICY_RC);
  if (ownPolicy) {
    const wrote = run([...prefix, 'sh', '-c', `printf '#!/bin/sh\\n${POLICY_MARK}\\nexit 101\\n' > ${POLICY_RC} && chmod 755 ${POLICY_RC}`], 10_000);
    if (!wrote.ok) return { ok: false, reason: `could not write ${POLICY_RC}: ${wrote.output}` };
  }
  try {
    const update = run(apt('update', '-qq'), UPDATE_TIMEOUT_MS);
    if (!update.ok) return { ok: false, reason: `apt-get update failed: ${lastLines(update.output)}` };
    const install = run(apt('install', '-y', '-qq', '--no-install-recommends', debianPackage), INSTALL_TIMEOUT_MS);
    if (!install.ok) return { ok: false, reason: `apt-get install ${debianPackage} failed: ${lastLines(install.output)}` };
    return { ok: true };
  } finally {
    if (ownPolicy) run([...prefix, 'rm', '-f', POLICY_RC], 10_000);
  }
}

function installPrometheus(prefix: readonly string[]): { ok: true } | { ok: false; reason: string } {
  return aptInstall(prefix, 'prometheus');
}

function lastLines(text: string): string {
  return text.split('\n').slice(-3).join(' | ') || '(no output)';
}

function version(path: string): string {
  const result = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const line = `${result.stdout ?? ''}${result.stderr ?? ''}`.split('\n')[0] ?? '';
  return /version (\S+)/.exec(line)?.[1] ?? 'unknown version';
}

/** Everything {@link resolveTools} needs to know about the machine; tests replace it. */
export interface Machine {
  readonly env: Env;
  find(tool: Tool): string | undefined;
  installer(): { readonly prefix: readonly string[] } | { readonly reason: string };
  install(prefix: readonly string[]): { ok: true } | { ok: false; reason: string };
}

/** What the setup decided: the tools, and the one line to print (if any). */
export interface Resolution {
  readonly tools: PrometheusTools;
  readonly line: string | undefined;
}

const NONE: PrometheusTools = Object.freeze({ promtool: undefined, prometheus: undefined });

/** Decides, installing if needed and allowed; throws where CI must fail. */
export function resolveTools(machine: Machine): Resolution {
  const ci = isCi(machine.env);
  if (machine.env.BREAKWATER_SKIP_PROMETHEUS === '1') {
    if (ci) throw new Error('BREAKWATER_SKIP_PROMETHEUS=1 is not honoured when CI is set: CI runs the Prometheus suites');
    return { tools: NONE, line: 'Prometheus suites skipped: BREAKWATER_SKIP_PROMETHEUS=1 is set' };
  }
  const look = () => ({ promtool: machine.find('promtool'), prometheus: machine.find('prometheus') });
  let tools = look();
  const missing = () => TOOLS.filter((t) => tools[t] === undefined);
  if (missing().length === 0) return { tools, line: undefined };

  const before = missing().join(' and ');
  const how = machine.installer();
  let why: string;
  if ('prefix' in how) {
    const started = Date.now();
    const installed = machine.install(how.prefix);
    tools = look();
    if (installed.ok && missing().length === 0) {
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      return { tools, line: `Prometheus suites: ${before} not found, installed Debian's prometheus package (${seconds} s)` };
    }
    why = installed.ok ? `the prometheus package did not provide ${missing().join(' and ')}` : installed.reason;
  } else {
    why = `cannot install here: ${how.reason}`;
  }
  const line = `Prometheus suites skipped: ${missing().join(' and ')} not found (PROMTOOL/PROMETHEUS, PATH, /usr/bin), ${why}; to run them, ${HOW_TO_GET}`;
  if (ci) throw new Error(`${line.replace('skipped', 'cannot run under CI, which never skips them')}`);
  return { tools: NONE, line };
}

/** The real machine. */
export function thisMachine(env: Env = process.env): Machine {
  return { env, find: (tool) => findTool(tool, env), installer: () => installer(env), install: installPrometheus };
}

/** Whether this run's file filters select a suite that needs the tools (true when unsure). */
async function needed(project: TestProject): Promise<boolean> {
  // The CLI's file filters; not a documented member, so anything unexpected means "needed".
  const filters = (project.vitest as unknown as { filenamePattern?: unknown }).filenamePattern;
  if (!Array.isArray(filters) || filters.length === 0) return true;
  const { testFiles } = await project.globTestFiles(filters as string[]);
  return testFiles.some((file) => SUITES_NEEDING_TOOLS.some((suite) => file.replaceAll('\\', '/').endsWith(suite)));
}

export default async function setup(project: TestProject): Promise<void> {
  // Nothing is provided then: a suite that runs after all fails on the missing value instead of skipping.
  if (!(await needed(project))) return;
  const { tools, line } = resolveTools(thisMachine());
  if (line !== undefined) {
    const detail = tools.promtool !== undefined ? ` (promtool ${version(tools.promtool)}, prometheus ${version(tools.prometheus!)})` : '';
    console.log(`${line}${detail}`);
  }
  project.provide('prometheusTools', tools);
}


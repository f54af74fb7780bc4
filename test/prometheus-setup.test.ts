/**
 * test/prometheus-setup.ts decides, on a machine described by the test: use the
 * tools found, install them where allowed, skip with one line, or fail under CI.
 * (The real install path is run by `npm test` on a machine without the package.)
 */
import { describe, expect, it } from 'vitest';
import { isCi, type Machine, resolveTools } from './prometheus-setup.ts';

function machine(options: {
  env?: Record<string, string>;
  found?: boolean;
  installable?: boolean;
  installWorks?: boolean;
}): Machine & { installs: number } {
  let present = options.found ?? false;
  const m = {
    installs: 0,
    env: options.env ?? {},
    find: (tool: string) => (present ? `/usr/bin/${tool}` : undefined),
    installer: () => (options.installable ? { prefix: [] } : { reason: 'not root and no passwordless sudo' }),
    install: () => {
      m.installs++;
      if (options.installWorks === false) return { ok: false as const, reason: 'apt-get install prometheus failed: E: no package' };
      present = true;
      return { ok: true as const };
    },
  };
  return m;
}

describe('prometheus test setup', () => {
  it('uses the tools it finds, says nothing, installs nothing', () => {
    const m = machine({ found: true, installable: true });
    expect(resolveTools(m)).toEqual({ tools: { promtool: '/usr/bin/promtool', prometheus: '/usr/bin/prometheus' }, line: undefined });
    expect(m.installs).toBe(0);
  });

  it('installs them where the machine allows, and says so', () => {
    const m = machine({ installable: true });
    const { tools, line } = resolveTools(m);
    expect(m.installs).toBe(1);
    expect(tools.promtool).toBe('/usr/bin/promtool');
    expect(line).toMatch(/^Prometheus suites: promtool and prometheus not found, installed Debian's prometheus package/);
  });

  it('skips with one line saying what is missing and how to get it', () => {
    for (const m of [machine({}), machine({ installable: true, installWorks: false })]) {
      const { tools, line } = resolveTools(m);
      expect(tools).toEqual({ promtool: undefined, prometheus: undefined });
      expect(line).toMatch(/^Prometheus suites skipped: promtool and prometheus not found/);
      expect(line).toContain('apt-get install prometheus');
      expect(line).not.toContain('\n');
    }
    expect(resolveTools(machine({ installable: true, installWorks: false })).line).toContain('E: no package');
  });

  it('never skips under CI: it fails instead', () => {
    expect(() => resolveTools(machine({ env: { CI: 'true' } }))).toThrow(/cannot run under CI.*not root/);
    expect(() => resolveTools(machine({ env: { CI: 'true' }, installable: true, installWorks: false }))).toThrow(/E: no package/);
    expect(() => resolveTools(machine({ env: { CI: 'true', BREAKWATER_SKIP_PROMETHEUS: '1' }, found: true }))).toThrow(/not honoured/);
    expect(resolveTools(machine({ env: { CI: 'true' }, installable: true })).tools.prometheus).toBe('/usr/bin/prometheus');
  });

  it('skips on request without looking, outside CI', () => {
    const m = machine({ env: { BREAKWATER_SKIP_PROMETHEUS: '1' }, installable: true });
    expect(resolveTools(m)).toEqual({
      tools: { promtool: undefined, prometheus: undefined },
      line: 'Prometheus suites skipped: BREAKWATER_SKIP_PROMETHEUS=1 is set',
    });
    expect(m.installs).toBe(0);
  });

  it('reads CI as set unless empty, 0 or false', () => {
    expect([undefined, '', '0', 'false', 'FALSE'].map((CI) => isCi(CI === undefined ? {} : { CI }))).toEqual([false, false, false, false, false]);
    expect(['true', '1', 'yes'].map((CI) => isCi({ CI }))).toEqual([true, true, true]);
  });
});

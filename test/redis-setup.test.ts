/**
 * test/redis-setup.ts decides, on a machine described by the test: use the
 * redis-server found, install it where allowed, skip with one line, or fail under CI.
 * (The real install path is run by `npm test` on a machine without the package.)
 */
import { describe, expect, it } from 'vitest';
import { needsRedis, type RedisMachine, resolveRedis } from './redis-setup.ts';

function machine(options: { env?: Record<string, string>; found?: boolean; installable?: boolean; installWorks?: boolean }): RedisMachine & { installs: number } {
  let present = options.found ?? false;
  const m = {
    installs: 0,
    env: options.env ?? {},
    find: () => (present ? '/usr/bin/redis-server' : undefined),
    installer: () => (options.installable ? { prefix: [] } : { reason: 'not root and no passwordless sudo' }),
    install: () => {
      m.installs++;
      if (options.installWorks === false) return { ok: false as const, reason: 'apt-get install redis-server failed: E: no package' };
      present = true;
      return { ok: true as const };
    },
  };
  return m;
}

describe('redis test setup', () => {
  it('uses the redis-server it finds, says nothing, installs nothing', () => {
    const m = machine({ found: true, installable: true });
    expect(resolveRedis(m)).toEqual({ server: '/usr/bin/redis-server', line: undefined });
    expect(m.installs).toBe(0);
  });

  it("installs Debian's package where the machine allows, and says so", () => {
    const m = machine({ installable: true });
    const { server, line } = resolveRedis(m);
    expect(server).toBe('/usr/bin/redis-server');
    expect(line).toMatch(/^Redis suites: redis-server not found, installed Debian's redis-server package \(\d+ s\)$/);
    expect(m.installs).toBe(1);
  });

  it('skips with one line saying why and how to get it, where it cannot install', () => {
    const { server, line } = resolveRedis(machine({ installable: false }));
    expect(server).toBeUndefined();
    expect(line).toBe(
      'Redis suites skipped: redis-server not found (REDIS_SERVER, PATH, /usr/bin), cannot install here: not root and no passwordless sudo; to run them, sudo apt-get install redis-server, or set REDIS_SERVER to the binary',
    );
  });

  it('fails instead of skipping under CI, when the install fails or when asked to skip', () => {
    expect(() => resolveRedis(machine({ env: { CI: 'true' }, installable: true, installWorks: false }))).toThrow(
      /Redis suites cannot run under CI, which never skips them: .*apt-get install redis-server failed/,
    );
    expect(() => resolveRedis(machine({ env: { CI: '1', BREAKWATER_SKIP_REDIS: '1' }, found: true }))).toThrow('BREAKWATER_SKIP_REDIS=1 is not honoured when CI is set');
    expect(resolveRedis(machine({ env: { BREAKWATER_SKIP_REDIS: '1' }, found: true }))).toEqual({ server: undefined, line: 'Redis suites skipped: BREAKWATER_SKIP_REDIS=1 is set' });
  });

  it('knows the suites that need it by their names', () => {
    expect(needsRedis('/repo/test/redis-limiter.test.ts')).toBe(true);
    expect(needsRedis('C:\\repo\\test\\redis-faults.test.ts')).toBe(true);
    expect(needsRedis('/repo/test/rate-limiter.test.ts')).toBe(false);
    expect(needsRedis('/repo/test/reliability/redis.test.ts')).toBe(false);
  });
});

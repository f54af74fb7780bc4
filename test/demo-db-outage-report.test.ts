/**
 * The db-outage demo end to end, in virtual time (`--memory`, the in-memory
 * model of the two servers): it prints the set-up, what happened to the
 * primary and when the standby was promoted, a progress line per run, the
 * before/after table with its "how to read this" note, and writes chart.svg
 * (every series, both breakers' states) and series.json.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../examples/db-outage/demo.ts';
import { inspectChart, type InspectedPanel } from '../examples/harness/index.ts';

describe('db-outage demo report', () => {
  it('prints the table and how to read it, and writes the chart and the raw series', async () => {
    const root = await mkdtemp(join(tmpdir(), 'db-outage-'));
    try {
      const lines: string[] = [];
      const dir = await run({ argv: ['--memory', '--seconds', '16', '--rate', '20'], resultsRoot: root, log: (l) => lines.push(l) });
      const out = lines.join('\n');
      expect(out).toContain('in virtual time');
      expect(out).toMatch(/4\.0 s: the primary fails: crashed the primary \(model\)/);
      expect(out).toMatch(/the standby is promoted \(by hand, by the operator\)/);
      expect(out).toMatch(/the standby is promoted \(automatically\)/);
      for (const row of [
        'reads answered OK during the outage',
        'writes answered OK during the outage',
        'writes refused with 503 + Retry-After',
        'failure to full service (MTTR)',
        'acknowledged writes lost',
        'writes applied twice',
        'reads staler than they stated',
      ]) {
        expect(out).toContain(row);
      }
      expect(out).toMatch(/acknowledged writes lost +0 +0/);
      expect(out).toMatch(/writes applied twice +0 +0/);
      expect(out).toMatch(/reads answered OK during the outage +\d+\.\d% of \d+ +100\.0% of \d+/);
      expect(out).toMatch(/standby promoted +by hand, 1\d\.\d s after the failure +automatically, \d\.\d s after the failure/);
      const before = lines.filter((l) => l.startsWith('  ... before  '));
      const after = lines.filter((l) => l.startsWith('  ... after  '));
      expect(before.some((l) => /PRIMARY DOWN since 4\.0 s; last second: \d+ answered \(0 OK\)/.test(l))).toBe(true);
      expect(after.some((l) => /primary's breaker open/.test(l))).toBe(true);
      const note = lines.indexOf('How to read this');
      expect(note).toBeGreaterThan(lines.findIndex((l) => l.startsWith('acknowledged writes lost')));
      const text = lines.slice(note).join(' ').replace(/\s+/g, ' ');
      expect(text).toMatch(/Writes cannot be served by a standby\. After, they fail fast: \d+ writes were answered 503 with Retry-After/);
      expect(text).toMatch(/That is synchronous replication's doing/);
      expect(lines.slice(note).find((l) => l.includes('docs/incidents/'))).toMatch(/docs\/incidents\/db-outage\.md$/);
      expect(out).toContain('every acknowledged write present once, before and after: yes');

      const series = JSON.parse(await readFile(join(dir, 'series.json'), 'utf8'));
      expect(series.where).toMatch(/in memory/);
      expect(series.before.lostWrites).toBe(0);
      expect(series.after.lostWrites).toBe(0);
      expect(series.after.duplicateWrites).toBe(0);
      expect(series.before.failovers[0].by).toBe('operator');
      expect(series.after.failovers[0].by).toBe('automation');
      expect(series.after.recoveryMs).toBeLessThan(series.before.recoveryMs);
      const states = series.after.breakers['db-primary'].states.map((s: { state: string }) => s.state);
      expect(states[0]).toBe('closed');
      expect(states).toContain('open');
      expect(states.at(-1)).toBe('closed');

      const svg = await readFile(join(dir, 'chart.svg'), 'utf8');
      const panels = inspectChart(svg);
      const named = (title: string): InspectedPanel => panels.find((p) => p.title.startsWith(title))!;
      expect(named('reads answered OK').series.map((s) => s.name)).toEqual(['before', 'after']);
      expect(named('writes answered OK').series.map((s) => s.name)).toEqual(['before', 'after']);
      expect(named('p95 latency').series.map((s) => s.name)).toEqual(['before', 'after']);
      const answers = named('after: answers');
      expect(answers.areas.map((a) => a.name)).toEqual(['all endpoints: answered in full', 'all endpoints: answered, degraded']);
      expect(answers.bands.map((b) => b.name)).toEqual(["after: the service's breakers: primary", "after: the service's breakers: replica"]);
      expect(new Set(answers.bands[0]!.spans.map((s) => s.state))).toEqual(new Set(states));
      for (const panel of panels) for (const s of panel.series) expect(panel.legend).toContain(s.name);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('--failure freeze freezes the primary instead: before, requests wait until the client gives up', async () => {
    const root = await mkdtemp(join(tmpdir(), 'db-outage-'));
    try {
      const lines: string[] = [];
      await run({ argv: ['--memory', '--seconds', '16', '--rate', '20', '--failure', 'freeze'], resultsRoot: root, log: (l) => lines.push(l) });
      const out = lines.join('\n');
      expect(out).toMatch(/4\.0 s: the primary fails: froze the primary \(model\)/);
      expect(out).toMatch(/p95, all requests \(95% were faster\) +5000 ms/);
      expect(out).toContain('every acknowledged write present once, before and after: yes');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses a run too short to hold the failure and the manual promotion', async () => {
    await expect(run({ argv: ['--memory', '--seconds', '10'], log: () => {} })).rejects.toThrow(/--seconds must be more than 14/);
    await expect(run({ argv: ['--memory', '--failure', 'flood'], log: () => {} })).rejects.toThrow(/--failure must be disk-full or freeze; received flood/);
  });
});

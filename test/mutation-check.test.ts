import { describe, expect, it } from 'vitest';
import { judge, type MutationReport, planCheck, scoreOf, thresholdFor } from '../scripts/mutation-check.ts';

const mutants = (statuses: Record<string, number>) =>
  Object.entries(statuses).flatMap(([status, n]) => Array.from({ length: n }, () => ({ status })));

describe('mutation check', () => {
  it('holds the core and the policies to 85 % and the rest of src/ to 75 %', () => {
    expect(thresholdFor('src/core/protocol.ts')).toBe(85);
    expect(thresholdFor('src/circuit-breaker/window.ts')).toBe(85);
    expect(thresholdFor('src/retry.ts')).toBe(85);
    expect(thresholdFor('src/retry-budget.ts')).toBe(85);
    expect(thresholdFor('src/chaos/index.ts')).toBe(85);
    expect(thresholdFor('src/prometheus/sink.ts')).toBe(75);
    expect(thresholdFor('src/opossum/index.ts')).toBe(75);
    // A prefix of a policy's name is not that policy.
    expect(thresholdFor('src/retry.tsx')).toBe(75);
    expect(thresholdFor('src/core.ts')).toBe(75);
  });

  it('scores killed and timed-out mutants as detected, survivors and uncovered ones as not, and ignores the rest', () => {
    expect(scoreOf(mutants({ Killed: 6, Timeout: 2, Survived: 1, NoCoverage: 1, CompileError: 5, RuntimeError: 1, Ignored: 3 }))).toEqual({
      mutants: 19,
      detected: 8,
      undetected: 2,
      score: 80,
    });
    expect(scoreOf(mutants({ CompileError: 2 })).score).toBeUndefined();
  });

  it('checks the files whose text differs from the baseline, and lists those the baseline lacks', () => {
    const baseline: MutationReport = {
      files: {
        'src/a.ts': { source: 'a', mutants: [] },
        'src/b.ts': { source: 'b', mutants: [] },
        'src/gone.ts': { source: 'g', mutants: [] },
      },
    };
    const sources = new Map([
      ['src/c.ts', 'c'],
      ['src/b.ts', 'b changed'],
      ['src/a.ts', 'a'],
    ]);
    expect(planCheck(baseline, sources)).toEqual({ changed: ['src/b.ts'], unchanged: ['src/a.ts'], missing: ['src/c.ts'] });
  });

  it('fails a file below its threshold and passes one at it', () => {
    const sources = new Map([
      ['src/retry.ts', 'r'],
      ['src/opossum/call.ts', 'o'],
    ]);
    const report: MutationReport = {
      files: {
        'src/retry.ts': { source: 'r', mutants: mutants({ Killed: 84, Survived: 16 }) },
        'src/opossum/call.ts': { source: 'o', mutants: mutants({ Killed: 3, Survived: 1 }) },
      },
    };
    const verdicts = judge(report, ['src/retry.ts', 'src/opossum/call.ts'], sources);
    expect(verdicts.map((v) => [v.file, v.score, v.ok])).toEqual([
      ['src/retry.ts', 84, false],
      ['src/opossum/call.ts', 75, true],
    ]);
    const passing = judge(
      { files: { 'src/retry.ts': { source: 'r', mutants: mutants({ Killed: 85, Timeout: 0, Survived: 15 }) } } },
      ['src/retry.ts'],
      sources,
    );
    expect(passing[0]?.ok).toBe(true);
  });

  it('fails a checked file the report leaves out or mutated in another version, and passes one with no mutant', () => {
    const sources = new Map([
      ['src/a.ts', 'new text'],
      ['src/b.ts', 'b'],
      ['src/types.ts', 't'],
    ]);
    const report: MutationReport = {
      files: {
        'src/a.ts': { source: 'old text', mutants: mutants({ Killed: 10 }) },
        'src/types.ts': { source: 't', mutants: [] },
      },
    };
    const verdicts = judge(report, ['src/a.ts', 'src/b.ts', 'src/types.ts'], sources);
    expect(verdicts.map((v) => [v.file, v.ok, v.problem])).toEqual([
      ['src/a.ts', false, 'the report mutated other text than the file holds'],
      ['src/b.ts', false, 'missing from the report'],
      ['src/types.ts', true, undefined],
    ]);
  });
});

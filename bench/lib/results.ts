/** The shape of a benchmark run's results, shared by the groups and the report. */
import type { Library } from '../subjects/subject.ts';

/** The four groups of issue 6 (memory's idle-timer count is its own table). */
export type GroupName = 'success' | 'concurrent' | 'paired' | 'baseline' | 'alone' | 'failure' | 'memory' | 'timers' | 'scale' | 'http' | 'redis';

/** One measured figure. */
export interface Row {
  readonly group: GroupName;
  readonly id: string;
  readonly label: string;
  readonly library: Library;
  /** The median. */
  readonly value: number;
  readonly unit: 'ns' | 'bytes' | 'count' | 'ms';
  /** `value` divided by the baseline's median, measured in the same run. */
  readonly ratio?: number;
  /** What `ratio` is relative to. */
  readonly ratioTo?: string;
  /** More figures for the same subject (the scale group's peak heap, for instance). */
  readonly extra?: Readonly<Record<string, number>>;
  readonly note?: string;
  /** The per-round figures the median was taken over. */
  readonly samples?: readonly number[];
}

/** A scenario that could not run or gave a result that is not sane. */
export interface Failure {
  readonly group: GroupName;
  readonly id: string;
  readonly message: string;
}

/** One row of the targets table. */
export interface TargetResult {
  /** The row the target is about, when it is about one row (for the target column of the tables). */
  readonly rowId?: string;
  readonly figure: string;
  readonly target: string;
  readonly measured: string;
  /** `undefined` when the figure could not be measured in this run. */
  readonly met: boolean | undefined;
  readonly why?: string;
}

/** Everything a run produces. */
export interface RunResults {
  readonly rows: Row[];
  readonly failures: Failure[];
  readonly notes: string[];
}

/** Finds a row by id. */
export function rowOf(rows: readonly Row[], id: string): Row | undefined {
  return rows.find((r) => r.id === id);
}

/** Throws unless `value` is a finite number above zero (or at least zero when `allowZero`). */
export function checkSane(what: string, value: number, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new Error(`${what}: expected a finite ${allowZero ? 'non-negative' : 'positive'} number; got ${value}`);
  }
  return value;
}

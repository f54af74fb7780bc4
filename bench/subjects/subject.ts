/** What every benchmark scenario measures: one way of making a call. */

/** Who provides the code under test. */
export type Library =
  | 'baseline'
  | 'breakwater'
  | 'opossum'
  | 'cockatiel'
  | 'p-limit'
  | 'p-retry'
  | 'p-timeout'
  | 'hand-composed';

/** One way of making a call, ready to be measured. */
export interface Subject {
  /** Stable key, used in the JSON results and in the targets. */
  readonly id: string;
  /** What the reader sees in the tables. */
  readonly label: string;
  readonly library: Library;
  /** Makes one call; returns its promise (or a value, for synchronous baselines). */
  readonly call: () => unknown;
  /** Releases what the subject holds (opossum's interval timers). */
  readonly dispose?: () => void;
}

/** Builds a subject; `undefined` when what it needs is not available. */
export type SubjectFactory = () => Subject | undefined;

/** Collects disposers so the process can exit when the run is over. */
export class Disposables {
  readonly #disposers: (() => void)[] = [];
  /** Registers `subject.dispose`, if any, and returns the subject. */
  track<S extends Subject | undefined>(subject: S): S {
    if (subject?.dispose !== undefined) this.#disposers.push(subject.dispose);
    return subject;
  }
  /** Registers a disposer. */
  add(dispose: () => void): void {
    this.#disposers.push(dispose);
  }
  /** Runs every disposer once. */
  disposeAll(): void {
    for (const dispose of this.#disposers.splice(0)) dispose();
  }
}

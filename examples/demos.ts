/**
 * The incident demos `npm run demo` knows, by name, loaded on demand. A new
 * demo is one entry here, `examples/<name>/demo.ts` exporting `run` (see
 * `DemoModule` in examples/harness/), and its write-up in docs/incidents/<name>.md.
 */
import type { DemoModule } from './harness/index.ts';

/** One demo of the list. */
export interface DemoEntry {
  /** One line for `npm run demo -- list`: what happens, before and after. */
  readonly about: string;
  /** About how long a run takes with the default options, such as `45 s`. */
  readonly duration: string;
  /** Its options, for `npm run demo -- <name> --help`: `[flag, what it does]`. */
  readonly options: readonly (readonly [flag: string, what: string])[];
  readonly load: () => Promise<DemoModule>;
}

/** The demo `npm run demo` runs without a name. */
export const DEFAULT_DEMO = 'auth-cascade';

export const DEMOS: Readonly<Record<string, DemoEntry>> = Object.freeze({
  'auth-cascade': {
    about: 'auth breaks: unlimited retries take the whole shop down (before); Breakwater keeps it up (after)',
    duration: '45 s',
    options: [
      ['--rate N', 'requests offered per second (default 100)'],
      ['--modes LIST', 'how auth breaks, comma-separated (default errors,hang):'],
      ['', '  errors: answers 503 at once; hang: never answers; slow: answers after 3 s'],
      ['--memory', 'run the same services in virtual time, in memory (no real HTTP, no /metrics): about a second'],
    ],
    load: () => import('./auth-cascade/demo.ts'),
  },
  fleet: {
    about: 'four replicas, one partner quota: local limits break it (before); one limit shared through Redis holds it, also when Redis dies (after)',
    duration: '30 s',
    options: [['--seconds N', 'seconds per run, three runs (default 8)']],
    load: () => import('./fleet/demo.ts'),
  },
  'sync-payment-call': {
    about: 'checkout waits 2.8 s on a payment API (before); it answers at once and a job pays (after)',
    duration: '40 s',
    options: [
      ['--seconds N', 'seconds of checkout load per run (default 12)'],
      ['--rate N', 'checkouts per second (default 10)'],
      ['--no-breaker', "no circuit breaker in the background job (to see the load it saves the failing API)"],
      ['--memory', 'run the same services in virtual time, in memory (no real HTTP, no /metrics): about two seconds'],
    ],
    load: () => import('./sync-payment-call/demo.ts'),
  },
  'feature-flag': {
    about: "an experiment's flag at 20% instead of 0% until a person notices (before); ramped and rolled back by itself (after)",
    duration: '35 s',
    options: [
      ['--share N', 'the share the flag is set to by mistake (default 0.2)'],
      ['--rate N', 'visits per second (default 100)'],
      ['--memory', 'run the same services in virtual time, in memory (no real HTTP, no /metrics): about a second'],
    ],
    load: () => import('./feature-flag/demo.ts'),
  },
  'db-outage': {
    about: 'the PostgreSQL primary fails (disk full): 100% errors until promoted by hand (before); reads go on, failover is automatic (after)',
    duration: '55 s',
    options: [
      ['--seconds N', 'seconds of load per run (default 18; more than 14: the failure and the manual promotion happen in it)'],
      ['--rate N', 'requests per second, 70% reads (default 50)'],
      ['--failure KIND', "how the primary fails: disk-full (its WAL disk fills up; needs root to mount it) or freeze (SIGSTOP)"],
      ['', '  default: disk-full where the machine allows it, freeze elsewhere'],
      ['--memory', 'run the same service on an in-memory model of the two servers, in virtual time (no PostgreSQL, no /metrics)'],
    ],
    load: () => import('./db-outage/demo.ts'),
  },
  'memory-leak': {
    about: 'a worker leaks until OOM-killed: p95 climbs to seconds (before); Breakwater routes around it, restarts it, alerts early (after)',
    duration: '60 s',
    options: [
      ['--seconds N', "seconds of load per run, standing for the seed's two hours (default 24)"],
      ['--rate N', 'requests per second (default 40)'],
      ['--leaky LIST', 'which of the 4 workers leak, comma-separated (default 1)'],
      ['--memory', 'run the same API against workers modelled in memory, in virtual time (no processes, no /metrics): about a second'],
    ],
    load: () => import('./memory-leak/demo.ts'),
  },
});

/** The lines of `npm run demo -- list`: one line per demo. */
export function listLines(): string[] {
  const width = Math.max(...Object.keys(DEMOS).map((name) => name.length));
  return Object.entries(DEMOS).map(([name, demo]) => `  ${name.padEnd(width)}  ${demo.duration.padStart(4)}  ${demo.about}`);
}

/** The lines of `npm run demo -- --help`. */
export function helpLines(): string[] {
  const out = [
    'npm run demo -- [<demo>] [options]   runs an incident demo, before and after Breakwater (default: auth-cascade)',
    'npm run demo -- list                  lists the demos',
    'npm run demo -- <demo> --help         the options of one demo',
    '',
    'Each demo prints its set-up, a progress line per run, a before/after table with a "how to read this"',
    'note, and writes a chart (chart.svg) and the raw numbers (series.json) to examples/results/.',
    '',
    'Demos:',
    ...listLines(),
  ];
  for (const [name, demo] of Object.entries(DEMOS)) out.push('', ...demoHelpLines(name, demo));
  return out;
}

/** The lines of `npm run demo -- <name> --help`. */
export function demoHelpLines(name: string, demo: DemoEntry = DEMOS[name]!): string[] {
  const width = Math.max(...demo.options.map(([flag]) => flag.length));
  return [
    `npm run demo -- ${name} [options]   (about ${demo.duration}; the write-up: docs/incidents/${name}.md)`,
    ...demo.options.map(([flag, what]) => `  ${flag.padEnd(width)}  ${what}`),
  ];
}

/**
 * Output of a demo: an aligned text table for the terminal, and a results
 * folder (examples/results/<demo>-<timestamp>/, gitignored) holding the chart
 * and the raw series.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** examples/results, next to this harness. */
export const RESULTS_ROOT = resolve(fileURLToPath(new URL('../results', import.meta.url)));

/** The repository's root (two folders up from this harness). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Where a demo's incident write-up lives, `docs/incidents/<demo>.md`, as a path to print (relative when shorter). */
export function incidentDoc(demo: string): string {
  return displayPath(join(REPO_ROOT, 'docs', 'incidents', `${demo}.md`));
}

/** Wraps `text` at spaces into lines of at most `width` characters (a longer word stays whole). */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/[ \t\n]+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/**
 * The "how to read this" block printed under a demo's table: a heading, one
 * bullet per note (wrapped at `width`), and the link to the demo's incident
 * write-up, where every number is explained with a recorded run and its chart.
 */
export function howToRead(notes: readonly string[], demo: string, { width = 100, heading = 'How to read this' }: { width?: number; heading?: string } = {}): string[] {
  const out = [heading];
  for (const note of notes) {
    wrapText(note, width - 4).forEach((line, i) => out.push(`${i === 0 ? '  - ' : '    '}${line}`));
  }
  out.push(`  The whole story, with a recorded run and its chart: ${incidentDoc(demo)}`);
  return out;
}

/**
 * Writes `files` (name → content) into a new folder
 * `<root>/<demo>-<YYYYMMDD-HHMMSS>/` and returns its absolute path.
 */
export async function writeResults(
  demo: string,
  files: Readonly<Record<string, string>>,
  { root = RESULTS_ROOT, now = new Date() }: { root?: string; now?: Date } = {},
): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const dir = join(root, `${demo}-${stamp}`);
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

/** `path` relative to the current directory when that is shorter, for printing. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') ? rel : path;
}

/** A table cell: strings are left-aligned, numbers right-aligned. */
export type Cell = string | number;

/**
 * Formats rows as an aligned plain-text table (also valid Markdown when
 * `markdown` is set). `columns` gives the header and the key of each column.
 */
export function formatTable(
  columns: readonly { readonly key: string; readonly title: string }[],
  rows: readonly Readonly<Record<string, Cell>>[],
  { markdown = false }: { markdown?: boolean } = {},
): string {
  const text = (c: Cell | undefined): string => (c === undefined ? '' : String(c));
  const widths = columns.map((col) => Math.max(col.title.length, ...rows.map((r) => text(r[col.key]).length)));
  const numeric = columns.map((col) => rows.length > 0 && rows.every((r) => typeof r[col.key] !== 'string' || /^[\d.,%×x ms+-]+$|^-$|^∞$/.test(String(r[col.key]))));
  const pad = (s: string, i: number): string => (numeric[i] ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const line = (cells: string[]): string => (markdown ? `| ${cells.join(' | ')} |` : cells.join('  '));
  const out = [line(columns.map((c, i) => pad(c.title, i)))];
  out.push(
    markdown
      ? `| ${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(Math.max(1, w - 1))}:` : '-'.repeat(w))).join(' | ')} |`
      : widths.map((w) => '-'.repeat(w)).join('  '),
  );
  for (const row of rows) out.push(line(columns.map((c, i) => pad(text(row[c.key]), i))));
  return out.join('\n');
}

/** Formats a ratio 0..1 as a percentage with one decimal. */
export function pct(ratio: number): string {
  return Number.isFinite(ratio) ? `${(ratio * 100).toFixed(1)}%` : '-';
}

/** Formats milliseconds, `-` for NaN, `∞` for Infinity. */
export function ms(value: number): string {
  if (Number.isNaN(value)) return '-';
  if (!Number.isFinite(value)) return '∞';
  if (value === 0) return '0 ms';
  return value >= 100 ? `${Math.round(value)} ms` : `${value.toFixed(1)} ms`;
}

/** Number formatting for the tables. */

/** A duration in ns, with the unit that reads best. */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return String(ns);
  if (ns < 1_000) return `${ns.toFixed(ns < 10 ? 1 : 0)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(ns < 10_000 ? 2 : 1)} µs`;
  return `${(ns / 1_000_000).toFixed(2)} ms`;
}

/** A ratio such as `3.2×`. */
export function fmtRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return String(ratio);
  return `${ratio.toFixed(ratio < 10 ? 2 : 1)}×`;
}

/** A byte count in B, KB or MB (1 KB = 1,024 B). */
export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  if (Math.abs(bytes) < 1_024) return `${bytes.toFixed(0)} B`;
  if (Math.abs(bytes) < 1_048_576) return `${(bytes / 1_024).toFixed(2)} KB`;
  return `${(bytes / 1_048_576).toFixed(1)} MB`;
}

/** A duration in ms. */
export function fmtMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(0)} ms`;
}

/** Renders rows as a padded plain-text table. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Columns that hold words rather than figures: left-aligned in Markdown. */
const WORD_COLUMNS = new Set(['', 'scenario', 'library', 'reference', 'what', 'target', 'figure', 'status']);

/** Renders rows as a Markdown table: figures right-aligned, words left-aligned. */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `| ${header.map((h, i) => (i === 0 || WORD_COLUMNS.has(h) ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/**
 * Reads back what a chart written by {@link renderChart} holds, for tests:
 * each panel's frame, series (with their drawn points), areas, state bands and
 * legend entries. It knows only this writer's output, not SVG in general.
 */

/** One element's attributes. */
type Attributes = Readonly<Record<string, string>>;

/** What one panel of a chart holds. */
export interface InspectedPanel {
  readonly title: string;
  /** The plot area's frame, px. */
  readonly frame: { readonly x: number; readonly y: number; readonly width: number; readonly height: number };
  /** Each line, with its drawn points (px) in order. */
  readonly series: readonly { readonly name: string; readonly points: readonly (readonly [x: number, y: number])[]; readonly attributes: Attributes }[];
  readonly areas: readonly { readonly name: string; readonly d: string }[];
  /** Each state band row: its name and its spans, in drawing order. */
  readonly bands: readonly { readonly name: string; readonly spans: readonly { readonly state: string; readonly fromX: number; readonly toX: number; readonly width: number }[] }[];
  /** The names in the legend, in order. */
  readonly legend: readonly string[];
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)="([^"]*)"/g)) out[m[1]!] = unescape(m[2]!);
  return out;
}

function unescape(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos);/g, (_m, e: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[e]!);
}

/** The points of a path made of `M`/`L` commands. */
export function pathPoints(d: string): [number, number][] {
  return [...d.matchAll(/[ML]\s*(-?[\d.]+)[ ,](-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** Splits a chart into its panels and reads each. */
export function inspectChart(svg: string): InspectedPanel[] {
  const panels: InspectedPanel[] = [];
  const chunks = svg.split('<g class="panel"').slice(1);
  for (const chunk of chunks) {
    const title = unescape(/^ data-title="([^"]*)"/.exec(chunk)?.[1] ?? '');
    const tags = [...chunk.matchAll(/<(\w+)\b([^>]*)>/g)].map((m) => ({ name: m[1]!, attrs: attributes(m[2]!) }));
    const frameTag = tags.find((t) => t.name === 'rect' && t.attrs.class === 'frame')?.attrs ?? {};
    const series = tags
      .filter((t) => t.name === 'path' && t.attrs.class === 'series')
      .map((t) => ({ name: t.attrs['data-name'] ?? '', points: pathPoints(t.attrs.d ?? ''), attributes: t.attrs }));
    const areas = tags.filter((t) => t.name === 'path' && t.attrs.class === 'area').map((t) => ({ name: t.attrs['data-name'] ?? '', d: t.attrs.d ?? '' }));
    const bands: { name: string; spans: { state: string; fromX: number; toX: number; width: number }[] }[] = [];
    const legend: string[] = [];
    for (const t of tags) {
      if (t.name === 'g' && t.attrs.class === 'state-band') bands.push({ name: t.attrs['data-name'] ?? '', spans: [] });
      if (t.name === 'rect' && t.attrs.class === 'state') {
        bands[bands.length - 1]?.spans.push({
          state: t.attrs['data-state'] ?? '',
          fromX: Number(t.attrs['data-from']),
          toX: Number(t.attrs['data-to']),
          width: Number(t.attrs.width),
        });
      }
      if (t.name === 'g' && t.attrs.class === 'legend-item') legend.push(t.attrs['data-name'] ?? '');
    }
    panels.push({
      title,
      frame: { x: Number(frameTag.x), y: Number(frameTag.y), width: Number(frameTag.width), height: Number(frameTag.height) },
      series,
      areas,
      bands,
      legend,
    });
  }
  return panels;
}

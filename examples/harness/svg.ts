/**
 * A small SVG chart writer (no dependencies, no browser): a grid of panels,
 * each with axes, line series (gaps for null), shaded areas, a band of states
 * over time (such as a circuit breaker's), a legend naming everything drawn,
 * and shaded time windows such as an outage.
 *
 * Made so that every series can be seen: the y axis has headroom above its
 * top and below its bottom (a line at 100% or 0% does not sit on the frame),
 * and a panel can draw its lines a few pixels apart (`separateOverlaps`) so
 * that lines with equal values lie side by side instead of on top of each other.
 *
 * Elements carry classes and `data-*` attributes (`path.series[data-name]`,
 * `path.area[data-name]`, `g.state-band[data-name] > rect.state[data-state]`,
 * `g.legend-item[data-name]`, `rect.frame`), so tests can check what a chart holds.
 */

/** One line. `y: null` leaves a gap. */
export interface ChartSeries {
  readonly name: string;
  readonly points: readonly (readonly [x: number, y: number | null])[];
  /** CSS colour (default: from a palette by position). */
  readonly color?: string;
  /** A dashed line (`"5 3"`); or give the dash pattern itself with {@link ChartSeries.dash}. */
  readonly dashed?: boolean;
  /** An SVG `stroke-dasharray`, such as `"2 2"`. */
  readonly dash?: string;
  /** Stroke width in px (default 1.6). */
  readonly width?: number;
  /** Draws the line this many px lower (negative: higher). Set for every series by {@link ChartPanel.separateOverlaps}. */
  readonly offsetPx?: number;
}

/** A filled band between two values per x, such as "degraded answers" stacked on "full answers". */
export interface ChartArea {
  readonly name: string;
  /** `[x, low, high]`; a null low or high leaves a gap. */
  readonly points: readonly (readonly [x: number, low: number | null, high: number | null])[];
  readonly color: string;
  /** Fill opacity (default 0.4). */
  readonly opacity?: number;
  /** Diagonal stripes over the fill, so the area is told apart without its colour. */
  readonly hatch?: boolean;
}

/** A shaded x-range, such as the outage window. */
export interface ChartShade {
  readonly fromX: number;
  readonly toX: number;
  readonly label?: string;
  /** CSS colour (default a light red). */
  readonly color?: string;
  /**
   * `'fill'`: a filled column over the plot (the default); `'edges'`: dashed
   * lines at both ends and a strip above the frame holding the label (the
   * default for panels with areas, whose colours a fill would muddy).
   */
  readonly style?: 'fill' | 'edges';
}

/** One row of a {@link ChartStateBand}: what one thing (one breaker) was in, and when. */
export interface ChartStateRow {
  readonly label: string;
  /** Consecutive `[fromX, toX)` spans; a span shorter than 2 px is drawn 2 px wide, on top of its neighbours, so a brief state still shows. */
  readonly segments: readonly { readonly fromX: number; readonly toX: number; readonly state: string }[];
}

/** A band under the plot, one row per thing, coloured by state over time (such as closed / open / half-open). */
export interface ChartStateBand {
  /** What the rows are, for the legend: `"breaker"`. */
  readonly title: string;
  readonly rows: readonly ChartStateRow[];
  /** Colour of each state; the legend lists them in this order. */
  readonly colors: Readonly<Record<string, string>>;
  /** Legend text of a state (default: the state's name). */
  readonly labels?: Readonly<Record<string, string>>;
}

/** One panel of the grid. */
export interface ChartPanel {
  readonly title: string;
  /** A line of small text under the title. */
  readonly note?: string;
  readonly yLabel?: string;
  readonly xLabel?: string;
  readonly series: readonly ChartSeries[];
  /** Filled bands, drawn under the lines. */
  readonly areas?: readonly ChartArea[];
  /** A state band under the plot. */
  readonly states?: ChartStateBand;
  /** Axis bounds (default: 0 and the data's maximum, rounded up). */
  readonly yMin?: number;
  readonly yMax?: number;
  /** Headroom beyond `yMin` and `yMax`, as a share of the range (default 0.07): lines at the bounds stay off the frame. */
  readonly yPadding?: number;
  /**
   * Draws the series this many px apart (`true`: 2.2 px), first series highest,
   * so that series with equal values lie side by side instead of hiding each other.
   */
  readonly separateOverlaps?: boolean | number;
  /** Format of y tick labels (default: compact number). */
  readonly yFormat?: (y: number) => string;
  readonly shades?: readonly ChartShade[];
}

/** A whole chart. */
export interface ChartSpec {
  readonly title: string;
  /** Small text under the title; `\n` starts another line. */
  readonly subtitle?: string;
  readonly panels: readonly ChartPanel[];
  /** Panels per row (default 1). */
  readonly columns?: number;
  /** Width of one panel in px (default 560). */
  readonly panelWidth?: number;
  /** Height of one panel's plot area in px (default 150); titles, bands and legends add to it. */
  readonly plotHeight?: number;
}

/** Default palette (colour-blind friendly). */
export const PALETTE: readonly string[] = [
  '#0072B2',
  '#D55E00',
  '#009E73',
  '#CC79A7',
  '#E69F00',
  '#56B4E9',
  '#000000',
  '#F0E442',
];

/** Colours of a circuit breaker's states in a {@link ChartStateBand}. */
export const BREAKER_STATE_COLORS: Readonly<Record<string, string>> = Object.freeze({
  closed: '#7fc97f',
  'half-open': '#f0b429',
  open: '#d7301f',
  isolated: '#6a51a3',
});

/** Escapes text for SVG content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function compact(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(n / 1e3).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return String(+n.toFixed(2));
}

/** About `count` round tick values covering `[min, max]`. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
  return ticks;
}

function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const ticks = niceTicks(0, max);
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : max;
  return Math.ceil(max / step - 1e-9) * step;
}

function f(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** Rough width of `text` at `size` px in a sans-serif font (no font metrics here). */
function textWidth(text: string, size = 10): number {
  return text.length * size * 0.56;
}

/** One entry of a panel's legend. */
type LegendItem =
  | { readonly kind: 'line'; readonly name: string; readonly color: string; readonly dash: string | undefined }
  | { readonly kind: 'area'; readonly name: string; readonly color: string; readonly opacity: number; readonly hatch: string | undefined }
  | { readonly kind: 'text'; readonly name: string };

const LEGEND_ROW = 14;
const BAND_ROW = 9;
const BAND_GAP = 2;

/** Places legend items left to right, wrapping at `width`; returns each item's offset and the row count. */
function layoutLegend(items: readonly LegendItem[], width: number): { at: { dx: number; row: number }[]; rows: number } {
  const at: { dx: number; row: number }[] = [];
  let dx = 0;
  let row = 0;
  for (const item of items) {
    const w = (item.kind === 'text' ? 0 : 22) + textWidth(item.name) + 14;
    if (dx > 0 && dx + w > width) {
      dx = 0;
      row++;
    }
    at.push({ dx, row });
    dx += w;
  }
  return { at, rows: items.length === 0 ? 0 : row + 1 };
}

/** What a panel needs around its plot, in px. */
function chrome(panel: ChartPanel, plotW: number, defs: Map<string, string>): { top: number; bottom: number; legend: LegendItem[] } {
  const legend = legendItems(panel, defs);
  const { rows } = layoutLegend(legend, plotW);
  const band = panel.states === undefined ? 0 : 5 + panel.states.rows.length * (BAND_ROW + BAND_GAP);
  const strip = (panel.shades ?? []).some((shade) => shadeStyle(panel, shade) === 'edges') ? EDGE_STRIP : 0;
  return { top: (panel.note === undefined ? 26 : 39) + strip, bottom: band + 34 + rows * LEGEND_ROW, legend };
}

/** Height of the strip above the frame that marks an `'edges'` shade. */
const EDGE_STRIP = 12;

function shadeStyle(panel: ChartPanel, shade: ChartShade): 'fill' | 'edges' {
  return shade.style ?? ((panel.areas ?? []).length > 0 ? 'edges' : 'fill');
}

function hatchId(color: string, defs: Map<string, string>): string {
  const id = `hatch-${color.replace(/[^a-zA-Z0-9]/g, '')}`;
  if (!defs.has(id)) {
    defs.set(
      id,
      `<pattern id="${id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
        `<line x1="0" y1="0" x2="0" y2="6" stroke="${escapeXml(color)}" stroke-width="2" stroke-opacity="0.8"/></pattern>`,
    );
  }
  return id;
}

function seriesDash(series: ChartSeries): string | undefined {
  return series.dash ?? (series.dashed === true ? '5 3' : undefined);
}

function legendItems(panel: ChartPanel, defs: Map<string, string>): LegendItem[] {
  const items: LegendItem[] = [];
  panel.series.forEach((series, i) => {
    items.push({ kind: 'line', name: series.name, color: series.color ?? PALETTE[i % PALETTE.length]!, dash: seriesDash(series) });
  });
  for (const area of panel.areas ?? []) {
    items.push({
      kind: 'area',
      name: area.name,
      color: area.color,
      opacity: area.opacity ?? 0.4,
      hatch: area.hatch === true ? hatchId(area.color, defs) : undefined,
    });
  }
  if (panel.states !== undefined) {
    items.push({ kind: 'text', name: `${panel.states.title}:` });
    for (const [state, color] of Object.entries(panel.states.colors)) {
      items.push({ kind: 'area', name: panel.states.labels?.[state] ?? state, color, opacity: 1, hatch: undefined });
    }
  }
  return items;
}

function renderPanel(
  panel: ChartPanel,
  x0: number,
  y0: number,
  width: number,
  plotH: number,
  xMin: number,
  xMax: number,
  defs: Map<string, string>,
): string {
  const left = 62;
  const right = 12;
  const plotW = width - left - right;
  const { top, legend } = chrome(panel, plotW, defs);
  const ys = [
    ...panel.series.flatMap((s) => s.points.map((p) => p[1])),
    ...(panel.areas ?? []).flatMap((a) => a.points.map((p) => p[2])),
  ].filter((y): y is number => y !== null && Number.isFinite(y));
  const yMin = panel.yMin ?? 0;
  const yMax = panel.yMax ?? niceMax(Math.max(yMin + 1e-9, ...ys));
  const pad = (panel.yPadding ?? 0.07) * (yMax - yMin || 1);
  const lo = yMin - pad;
  const hi = yMax + pad;
  const plotTop = y0 + top;
  const plotBottom = plotTop + plotH;
  const sx = (x: number): number => x0 + left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const sy = (y: number): number => plotBottom - ((Math.min(Math.max(y, lo), hi) - lo) / (hi - lo || 1)) * plotH;
  const yFormat = panel.yFormat ?? compact;
  const out: string[] = [];
  out.push(`<g class="panel" data-title="${escapeXml(panel.title)}">`);
  out.push(`<text x="${f(x0 + left)}" y="${f(y0 + 16)}" font-size="13" font-weight="600">${escapeXml(panel.title)}</text>`);
  if (panel.note !== undefined) {
    out.push(`<text x="${f(x0 + left)}" y="${f(y0 + 30)}" font-size="10" fill="#555">${escapeXml(panel.note)}</text>`);
  }
  const edges: string[] = [];
  for (const shade of panel.shades ?? []) {
    const a = sx(Math.max(xMin, shade.fromX));
    const b = sx(Math.min(xMax, shade.toX));
    if (b <= a) continue;
    const color = shade.color ?? '#f4c7c3';
    const fill = shadeStyle(panel, shade) === 'fill';
    if (fill) {
      out.push(`<rect class="shade" x="${f(a)}" y="${f(plotTop)}" width="${f(b - a)}" height="${f(plotH)}" fill="${color}" fill-opacity="0.55"/>`);
    } else {
      // Drawn over the areas, under the lines.
      for (const x of [a, b]) {
        edges.push(`<line x1="${f(x)}" x2="${f(x)}" y1="${f(plotTop)}" y2="${f(plotBottom)}" stroke="#d7301f" stroke-width="1" stroke-dasharray="4 3"/>`);
      }
    }
    if (shade.label !== undefined && fill) {
      edges.push(`<text x="${f(a + 3)}" y="${f(plotTop + 14)}" font-size="10" fill="#a33">${escapeXml(shade.label)}</text>`);
    } else {
      // Lines run along the top of such panels: the window and its label go in a strip above the frame.
      out.push(`<rect class="shade-strip" x="${f(a)}" y="${f(plotTop - EDGE_STRIP)}" width="${f(b - a)}" height="${EDGE_STRIP - 1}" fill="${color}"/>`);
      if (shade.label !== undefined) {
        out.push(`<text x="${f(a + 3)}" y="${f(plotTop - 3)}" font-size="9" fill="#a33">${escapeXml(shade.label)}</text>`);
      }
    }
  }
  for (const t of niceTicks(yMin, yMax, 4)) {
    const y = sy(t);
    out.push(`<line x1="${f(x0 + left)}" x2="${f(x0 + left + plotW)}" y1="${f(y)}" y2="${f(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${f(x0 + left - 6)}" y="${f(y + 4)}" font-size="10" text-anchor="end" fill="#444">${escapeXml(yFormat(t))}</text>`);
  }
  for (const area of panel.areas ?? []) {
    // One polygon per run of points without a gap: along the high values, back along the low ones.
    let run: { x: number; low: number; high: number }[] = [];
    const polygons: string[] = [];
    const flush = (): void => {
      if (run.length > 0) {
        const upper = run.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(sx(p.x))} ${f(sy(p.high))}`).join('');
        const lower = [...run].reverse().map((p) => `L${f(sx(p.x))} ${f(sy(p.low))}`).join('');
        polygons.push(`${upper}${lower}Z`);
      }
      run = [];
    };
    for (const [x, low, high] of area.points) {
      if (low === null || high === null || !Number.isFinite(low) || !Number.isFinite(high) || x < xMin || x > xMax) flush();
      else run.push({ x, low, high });
    }
    flush();
    const d = polygons.join('');
    out.push(
      `<path class="area" data-name="${escapeXml(area.name)}" d="${d}" fill="${escapeXml(area.color)}" fill-opacity="${area.opacity ?? 0.4}" stroke="none"/>`,
    );
    if (area.hatch === true) out.push(`<path d="${d}" fill="url(#${hatchId(area.color, defs)})" stroke="none"/>`);
  }
  out.push(...edges);
  const xTickY = plotBottom + (panel.states === undefined ? 0 : 5 + panel.states.rows.length * (BAND_ROW + BAND_GAP));
  for (const t of niceTicks(xMin, xMax, 8)) {
    const x = sx(t);
    out.push(`<line x1="${f(x)}" x2="${f(x)}" y1="${f(xTickY)}" y2="${f(xTickY + 4)}" stroke="#444"/>`);
    out.push(`<text x="${f(x)}" y="${f(xTickY + 15)}" font-size="10" text-anchor="middle" fill="#444">${escapeXml(compact(t))}</text>`);
  }
  out.push(`<rect class="frame" x="${f(x0 + left)}" y="${f(plotTop)}" width="${f(plotW)}" height="${f(plotH)}" fill="none" stroke="#444"/>`);
  if (panel.yLabel !== undefined) {
    const cx = x0 + 12;
    const cy = plotTop + plotH / 2;
    out.push(
      `<text x="${f(cx)}" y="${f(cy)}" font-size="10" text-anchor="middle" transform="rotate(-90 ${f(cx)} ${f(cy)})" fill="#444">${escapeXml(panel.yLabel)}</text>`,
    );
  }
  if (panel.xLabel !== undefined) {
    out.push(`<text x="${f(x0 + left + plotW)}" y="${f(xTickY + 28)}" font-size="10" text-anchor="end" fill="#444">${escapeXml(panel.xLabel)}</text>`);
  }
  const step = panel.separateOverlaps === true ? 2.2 : typeof panel.separateOverlaps === 'number' ? panel.separateOverlaps : 0;
  const count = panel.series.length;
  panel.series.forEach((series, i) => {
    const color = series.color ?? PALETTE[i % PALETTE.length]!;
    const offset = series.offsetPx ?? (i - (count - 1) / 2) * step;
    let d = '';
    let pen = false;
    for (const [x, y] of series.points) {
      if (y === null || !Number.isFinite(y) || x < xMin || x > xMax) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(sx(x))} ${f(sy(y) + offset)}`;
      pen = true;
    }
    const dash = seriesDash(series);
    out.push(
      `<path class="series" data-name="${escapeXml(series.name)}" d="${d}" fill="none" stroke="${color}" stroke-width="${series.width ?? 1.6}" stroke-linejoin="round"${dash === undefined ? '' : ` stroke-dasharray="${dash}"`}/>`,
    );
  });
  if (panel.states !== undefined) {
    const band = panel.states;
    band.rows.forEach((row, r) => {
      const y = plotBottom + 5 + r * (BAND_ROW + BAND_GAP);
      out.push(`<g class="state-band" data-name="${escapeXml(`${band.title}: ${row.label}`)}">`);
      out.push(`<text x="${f(x0 + left - 6)}" y="${f(y + BAND_ROW - 1)}" font-size="9" text-anchor="end" fill="#444">${escapeXml(row.label)}</text>`);
      // Brief states (a trial call of a few ms) are drawn last, 2 px wide, so that their neighbours do not cover them.
      const width = (s: ChartStateRow['segments'][number]): number => sx(Math.min(xMax, s.toX)) - sx(Math.max(xMin, s.fromX));
      const ordered = [...row.segments.filter((s) => width(s) >= 2), ...row.segments.filter((s) => width(s) < 2)];
      for (const s of ordered) {
        const a = sx(Math.max(xMin, s.fromX));
        const b = sx(Math.min(xMax, s.toX));
        if (b < a) continue;
        const w = Math.max(2, b - a);
        out.push(
          `<rect class="state" data-state="${escapeXml(s.state)}" data-from="${s.fromX}" data-to="${s.toX}" x="${f(Math.min(a, x0 + left + plotW - w))}" y="${f(y)}" width="${f(w)}" height="${BAND_ROW}" fill="${escapeXml(band.colors[s.state] ?? '#999')}"/>`,
        );
      }
      out.push(`<rect x="${f(x0 + left)}" y="${f(y)}" width="${f(plotW)}" height="${BAND_ROW}" fill="none" stroke="#888" stroke-width="0.5"/>`);
      out.push('</g>');
    });
  }
  const { at } = layoutLegend(legend, plotW);
  out.push('<g class="legend">');
  legend.forEach((item, i) => {
    const lx = x0 + left + at[i]!.dx;
    const ly = xTickY + 34 + at[i]!.row * LEGEND_ROW;
    out.push(`<g class="legend-item" data-name="${escapeXml(item.name)}">`);
    if (item.kind === 'line') {
      out.push(
        `<line x1="${f(lx)}" x2="${f(lx + 18)}" y1="${f(ly - 4)}" y2="${f(ly - 4)}" stroke="${item.color}" stroke-width="2"${item.dash === undefined ? '' : ` stroke-dasharray="${item.dash}"`}/>`,
      );
    } else if (item.kind === 'area') {
      out.push(`<rect x="${f(lx)}" y="${f(ly - 9)}" width="18" height="9" fill="${escapeXml(item.color)}" fill-opacity="${item.opacity}" stroke="#888" stroke-width="0.5"/>`);
      if (item.hatch !== undefined) out.push(`<rect x="${f(lx)}" y="${f(ly - 9)}" width="18" height="9" fill="url(#${item.hatch})"/>`);
    }
    out.push(`<text x="${f(item.kind === 'text' ? lx : lx + 22)}" y="${f(ly)}" font-size="10">${escapeXml(item.name)}</text>`);
    out.push('</g>');
  });
  out.push('</g>');
  out.push('</g>');
  return out.join('\n');
}

/** Renders `spec` as a standalone SVG document. All panels share the x range of all the data. */
export function renderChart(spec: ChartSpec): string {
  const columns = Math.max(1, spec.columns ?? 1);
  const panelW = spec.panelWidth ?? 560;
  const plotH = spec.plotHeight ?? 150;
  const subtitle = spec.subtitle === undefined ? [] : spec.subtitle.split('\n');
  const header = 34 + subtitle.length * 15;
  const defs = new Map<string, string>();
  // Each row of the grid is as tall as its tallest panel.
  const heights = spec.panels.map((p) => {
    const c = chrome(p, panelW - 74, defs);
    return c.top + plotH + c.bottom + 8;
  });
  const rows = Math.ceil(spec.panels.length / columns);
  const rowTop: number[] = [];
  let y = header;
  for (let r = 0; r < rows; r++) {
    rowTop.push(y);
    y += Math.max(...heights.slice(r * columns, r * columns + columns));
  }
  const width = columns * panelW + 20;
  const height = y + 4;
  const xs = spec.panels.flatMap((p) => [
    ...p.series.flatMap((s) => s.points.map((pt) => pt[0])),
    ...(p.areas ?? []).flatMap((a) => a.points.map((pt) => pt[0])),
    ...(p.shades ?? []).flatMap((s) => [s.fromX, s.toX]),
    ...(p.states?.rows ?? []).flatMap((r) => r.segments.flatMap((s) => [s.fromX, s.toX])),
  ]);
  const xMin = xs.length === 0 ? 0 : Math.min(...xs);
  const xMax = xs.length === 0 ? 1 : Math.max(...xs);
  const body: string[] = [];
  spec.panels.forEach((panel, i) => {
    const x0 = 10 + (i % columns) * panelW;
    body.push(renderPanel(panel, x0, rowTop[Math.floor(i / columns)]!, panelW, plotH, xMin, xMax, defs));
  });
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    `<title>${escapeXml(spec.title)}</title>`,
  ];
  if (defs.size > 0) out.push(`<defs>${[...defs.values()].join('')}</defs>`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="700">${escapeXml(spec.title)}</text>`);
  subtitle.forEach((line, i) => out.push(`<text x="10" y="${40 + i * 15}" font-size="11" fill="#555">${escapeXml(line)}</text>`));
  out.push(...body);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

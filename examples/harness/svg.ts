/**
 * A small SVG line-chart writer (no dependencies, no browser): a grid of
 * panels, each with axes, line series (gaps for null), a legend and shaded
 * time windows such as an outage.
 */

/** One line. `y: null` leaves a gap. */
export interface ChartSeries {
  readonly name: string;
  readonly points: readonly (readonly [x: number, y: number | null])[];
  /** CSS colour (default: from a palette by position). */
  readonly color?: string;
  readonly dashed?: boolean;
  /** Stroke width in px (default 1.6). */
  readonly width?: number;
}

/** A shaded x-range, such as the outage window. */
export interface ChartShade {
  readonly fromX: number;
  readonly toX: number;
  readonly label?: string;
  /** CSS colour (default a light red). */
  readonly color?: string;
}

/** One panel of the grid. */
export interface ChartPanel {
  readonly title: string;
  readonly yLabel?: string;
  readonly xLabel?: string;
  readonly series: readonly ChartSeries[];
  /** Axis bounds (default: 0 and the data's maximum, rounded up). */
  readonly yMin?: number;
  readonly yMax?: number;
  /** Format of y tick labels (default: compact number). */
  readonly yFormat?: (y: number) => string;
  readonly shades?: readonly ChartShade[];
}

/** A whole chart. */
export interface ChartSpec {
  readonly title: string;
  readonly subtitle?: string;
  readonly panels: readonly ChartPanel[];
  /** Panels per row (default 1). */
  readonly columns?: number;
  /** Size of one panel in px (default 560 × 240). */
  readonly panelWidth?: number;
  readonly panelHeight?: number;
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

function renderPanel(panel: ChartPanel, x0: number, y0: number, width: number, height: number, xMin: number, xMax: number): string {
  const left = 58;
  const right = 12;
  const top = 26;
  const legendRows = Math.ceil(panel.series.length / 3);
  const bottom = 34 + legendRows * 16;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const ys = panel.series.flatMap((s) => s.points.map((p) => p[1]).filter((y): y is number => y !== null && Number.isFinite(y)));
  const yMin = panel.yMin ?? 0;
  const yMax = panel.yMax ?? niceMax(Math.max(yMin + 1e-9, ...ys));
  const sx = (x: number): number => x0 + left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const sy = (y: number): number => y0 + top + plotH - ((Math.min(Math.max(y, yMin), yMax) - yMin) / (yMax - yMin || 1)) * plotH;
  const yFormat = panel.yFormat ?? compact;
  const out: string[] = [];
  out.push(`<g class="panel">`);
  out.push(
    `<text x="${f(x0 + left)}" y="${f(y0 + 16)}" font-size="13" font-weight="600">${escapeXml(panel.title)}</text>`,
  );
  for (const shade of panel.shades ?? []) {
    const a = sx(Math.max(xMin, shade.fromX));
    const b = sx(Math.min(xMax, shade.toX));
    if (b <= a) continue;
    out.push(
      `<rect class="shade" x="${f(a)}" y="${f(y0 + top)}" width="${f(b - a)}" height="${f(plotH)}" fill="${shade.color ?? '#f4c7c3'}" fill-opacity="0.55"/>`,
    );
    if (shade.label !== undefined) {
      out.push(`<text x="${f(a + 3)}" y="${f(y0 + top + 12)}" font-size="10" fill="#a33">${escapeXml(shade.label)}</text>`);
    }
  }
  for (const t of niceTicks(yMin, yMax, 4)) {
    const y = sy(t);
    out.push(`<line x1="${f(x0 + left)}" x2="${f(x0 + left + plotW)}" y1="${f(y)}" y2="${f(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${f(x0 + left - 6)}" y="${f(y + 4)}" font-size="10" text-anchor="end" fill="#444">${escapeXml(yFormat(t))}</text>`);
  }
  for (const t of niceTicks(xMin, xMax, 8)) {
    const x = sx(t);
    out.push(`<line x1="${f(x)}" x2="${f(x)}" y1="${f(y0 + top + plotH)}" y2="${f(y0 + top + plotH + 4)}" stroke="#444"/>`);
    out.push(`<text x="${f(x)}" y="${f(y0 + top + plotH + 15)}" font-size="10" text-anchor="middle" fill="#444">${escapeXml(compact(t))}</text>`);
  }
  out.push(
    `<rect x="${f(x0 + left)}" y="${f(y0 + top)}" width="${f(plotW)}" height="${f(plotH)}" fill="none" stroke="#444"/>`,
  );
  if (panel.yLabel !== undefined) {
    const cx = x0 + 12;
    const cy = y0 + top + plotH / 2;
    out.push(
      `<text x="${f(cx)}" y="${f(cy)}" font-size="10" text-anchor="middle" transform="rotate(-90 ${f(cx)} ${f(cy)})" fill="#444">${escapeXml(panel.yLabel)}</text>`,
    );
  }
  if (panel.xLabel !== undefined) {
    out.push(
      `<text x="${f(x0 + left + plotW)}" y="${f(y0 + top + plotH + 28)}" font-size="10" text-anchor="end" fill="#444">${escapeXml(panel.xLabel)}</text>`,
    );
  }
  panel.series.forEach((series, i) => {
    const color = series.color ?? PALETTE[i % PALETTE.length]!;
    let d = '';
    let pen = false;
    for (const [x, y] of series.points) {
      if (y === null || !Number.isFinite(y) || x < xMin || x > xMax) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${f(sx(x))} ${f(sy(y))}`;
      pen = true;
    }
    const dash = series.dashed === true ? ' stroke-dasharray="5 3"' : '';
    out.push(
      `<path class="series" data-name="${escapeXml(series.name)}" d="${d}" fill="none" stroke="${color}" stroke-width="${series.width ?? 1.6}" stroke-linejoin="round"${dash}/>`,
    );
    const lx = x0 + left + (i % 3) * (plotW / 3);
    const ly = y0 + top + plotH + 34 + Math.floor(i / 3) * 16;
    out.push(`<line x1="${f(lx)}" x2="${f(lx + 18)}" y1="${f(ly - 4)}" y2="${f(ly - 4)}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${f(lx + 22)}" y="${f(ly)}" font-size="10">${escapeXml(series.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** Renders `spec` as a standalone SVG document. All panels share the x range of all the data. */
export function renderChart(spec: ChartSpec): string {
  const columns = Math.max(1, spec.columns ?? 1);
  const panelW = spec.panelWidth ?? 560;
  const panelH = spec.panelHeight ?? 240;
  const rows = Math.ceil(spec.panels.length / columns);
  const header = spec.subtitle === undefined ? 34 : 52;
  const width = columns * panelW + 20;
  const height = header + rows * panelH + 10;
  const xs = spec.panels.flatMap((p) => [
    ...p.series.flatMap((s) => s.points.map((pt) => pt[0])),
    ...(p.shades ?? []).flatMap((s) => [s.fromX, s.toX]),
  ]);
  const xMin = xs.length === 0 ? 0 : Math.min(...xs);
  const xMax = xs.length === 0 ? 1 : Math.max(...xs);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    `<title>${escapeXml(spec.title)}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="700">${escapeXml(spec.title)}</text>`,
  ];
  if (spec.subtitle !== undefined) out.push(`<text x="10" y="40" font-size="11" fill="#555">${escapeXml(spec.subtitle)}</text>`);
  spec.panels.forEach((panel, i) => {
    const x0 = 10 + (i % columns) * panelW;
    const y0 = header + Math.floor(i / columns) * panelH;
    out.push(renderPanel(panel, x0, y0, panelW, panelH, xMin, xMax));
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

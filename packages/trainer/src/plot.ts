/**
 * A loss-curve picture as SVG (a format any browser opens; `node scripts/svg-to-png.mjs` makes a PNG
 * of it): loss in nats/token against the step, on linear axes with round-numbered ticks. Written by
 * hand: a chart of a few polylines does not warrant a plotting dependency.
 *
 * How a series is drawn (`Series.style`; by default from its name, as the Trainer names them):
 *   'trace'    a per-step training loss ("train…"), noisy at small batches: every value faint, and
 *              over it, solid, a centred moving average of `smooth` steps. Where a centred window
 *              does not fit (the first and last smooth/2 steps) a straight line is fitted to the
 *              `smooth` nearest steps instead, so the ends neither lag (as an exponential moving
 *              average does) nor follow the noise (as a window shrinking to one step would). In the
 *              middle the two are the same thing.
 *   'markers'  evaluations ("eval…"): a marker at each point, joined by a thin line.
 *   'line'     anything else: runs compared with each other, a reference level.
 * `floor` draws the lowest loss any model can reach (a Markov corpus's entropy rate, say) as a dashed
 * line, labelled just beneath it, where the curves, which stay above it, do not go.
 * A few values far beyond the rest (a loss spike of 1e6 among values near 2) would squash every
 * curve into a flat line: those are clipped at the edge of the plot, drawn as triangles there,
 * counted in the legend and left out of the moving average.
 */
import { checkInteger, checkKeys, checkOneOf, invalid } from '@deepwell/core';

export type SeriesStyle = 'trace' | 'markers' | 'line';

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color: string;
  /** Default: 'trace' for a name starting "train", 'markers' for "eval", else 'line'. */
  style?: SeriesStyle;
}

export interface LossCurveOptions {
  title?: string;
  /** Pixels; default 800 × 400. */
  width?: number;
  height?: number;
  /** Axis titles; default 'step' and 'loss (nats/token)'. */
  xLabel?: string;
  yLabel?: string;
  /** A dashed horizontal line at `value`, e.g. the entropy rate no model can go below. */
  floor?: { value: number; label?: string };
  /** Steps (points) in the moving average of a 'trace' series, odd; 1 draws none. Default: about a twentieth of the points. */
  smooth?: number;
}

type Pt = readonly [number, number];

/** What a series' default style is, from its name. */
export function seriesStyle(s: Series): SeriesStyle {
  return s.style ?? (/^\s*train/i.test(s.name) ? 'trace' : /^\s*eval/i.test(s.name) ? 'markers' : 'line');
}

/** The default window of the moving average for n points: odd, about n / 15, at most 201. */
export function defaultSmoothing(n: number): number {
  const w = Math.min(201, Math.round(n / 15));
  return w < 3 ? 1 : w | 1;
}

/**
 * The smoothed values of `pts` (sorted by x), one per point: the least-squares line through the
 * `w` points nearest each (centred where it fits, else the first or last w) evaluated at that
 * point's x, over the points `use` keeps. With evenly spaced x and a centred window, the mean.
 */
export function smoothTrace(pts: readonly Pt[], w: number, use: (y: number) => boolean = () => true): number[] {
  const n = pts.length;
  const half = Math.floor(Math.min(w, n) / 2);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.max(0, Math.min(i - half, n - 2 * half - 1));
    const b = Math.min(n - 1, a + 2 * half);
    const xi = pts[i]![0];
    let [c, sx, sy, sxx, sxy] = [0, 0, 0, 0, 0];
    for (const take of [true, false]) {
      // Every point of the window that `use` keeps; where it keeps none, all of them.
      for (let j = a; j <= b; j++) {
        const [x, y] = pts[j]!;
        if (take && !use(y)) continue;
        const dx = x - xi;
        c++;
        sx += dx;
        sy += y;
        sxx += dx * dx;
        sxy += dx * y;
      }
      if (c > 0) break;
    }
    const den = c * sxx - sx * sx;
    const mean = sy / c;
    // The line's value at dx = 0: its intercept; the mean where the x of the window coincide.
    const fit = den > 1e-12 * c * sxx ? (sxx * sy - sx * sxy) / den : mean;
    out.push(Number.isFinite(fit) ? fit : mean);
  }
  return out;
}

/**
 * Round-numbered ticks in [lo, hi]: steps of 1, 2, 2.5 or 5 × 10^k (at least `least`), at most `max`
 * of them. Bounded whatever the range: at most max + 2 candidates are tried (an index from the first
 * tick, never a counter at the scale of lo, which could not advance past 2^53), and a range too
 * narrow for distinct round values (or not a finite one) gets its two ends.
 */
function ticks(lo: number, hi: number, max: number, least = 0): { step: number; values: number[] } {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return { step: Number.isFinite(span) && span > 0 ? span : 1, values: Number.isFinite(lo) && lo < hi ? [lo, hi] : [] };
  const mag = 10 ** Math.floor(Math.log10(span / Math.max(1, max)));
  const step = Math.max(least, [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= max + 1e-9) ?? 10 * mag);
  const values: number[] = [];
  const k0 = Math.ceil(lo / step - 1e-9);
  for (let i = 0; i <= max + 1; i++) {
    const v = +((k0 + i) * step).toPrecision(12);
    if (v > hi + step * 1e-9) break;
    if (v >= lo - step * 1e-9 && (values.length === 0 || v > values.at(-1)!)) values.push(v);
  }
  return values.length ? { step, values } : { step: span, values: [lo, hi] };
}

/** Tick labels with the same number of decimals (as many as the step needs); 12k, 1.5M; 1e+9 beyond. */
function tickFormat(step: number, values: number[], compact: boolean): (v: number) => string {
  const big = Math.max(...values.map(Math.abs), 0);
  if (big >= 1e9 || (step < 1e-4 && big > 0)) return (v) => (v === 0 ? '0' : v.toExponential(Math.max(0, Math.min(6, Math.round(Math.log10(big / step)))))).replace('e+', 'e');
  const [div, unit] = compact && big >= 1e6 ? [1e6, 'M'] : compact && big >= 1e4 ? [1e3, 'k'] : [1, ''];
  let d = 0;
  while (d < 8 && Math.abs(Math.round((step / div) * 10 ** d) - (step / div) * 10 ** d) > 1e-6) d++;
  return (v) => `${(v / div).toFixed(d)}${unit}`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** Text width in pixels, roughly (DejaVu Sans / Arial average ≈ 0.6 em). */
const textWidth = (s: string, size: number) => s.length * size * 0.6;
const num = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '0');

/**
 * The range of `sorted` (ascending) less the values far beyond the rest: from the top while the
 * gap to the next value is over twice the span of all below it, then likewise from the bottom; at
 * most one value in 50 (so none of fewer than 50), never leaving fewer than two.
 */
function robustRange(sorted: number[]): { lo: number; hi: number } {
  let [a, b] = [0, sorted.length - 1];
  const most = Math.floor(sorted.length / 50);
  let cut = 0;
  while (cut < most && b - a >= 2 && sorted[b]! - sorted[b - 1]! > 2 * (sorted[b - 1]! - sorted[a]!)) (b--, cut++);
  while (cut < most && b - a >= 2 && sorted[a + 1]! - sorted[a]! > 2 * (sorted[b]! - sorted[a + 1]!)) (a++, cut++);
  return { lo: sorted[a] ?? 0, hi: sorted[b] ?? 1 };
}

/** [lo, hi], widened where it is empty (a single value): ±5% of it, or ±1 around 0. */
function widen(lo: number, hi: number): [number, number] {
  if (hi - lo > 1e-9 * Math.max(Math.abs(lo), Math.abs(hi))) return [lo, hi];
  const pad = Math.abs(lo) * 0.05 || 1;
  return [lo - pad, hi + pad];
}

/**
 * A CSS colour, and nothing else (it goes into the SVG's attributes): #rgb, #rgba, #rrggbb or
 * #rrggbbaa; a colour keyword; rgb(), rgba(), hsl() or hsla() of numbers, percentages and angles.
 */
const COLOR = /^(?:#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})|[a-z]{3,24}|(?:rgba?|hsla?)\(\s*[-+]?[\d.]+(?:%|deg|rad|turn)?(?:\s*[,/\s]\s*[-+]?[\d.]+(?:%|deg|rad|turn)?){2,3}\s*\))$/i;
/** The most points a 'trace' series' moving average takes. */
const MAX_SMOOTH = 1001;

function checkText(v: unknown, what: string): void {
  if (v !== undefined && typeof v !== 'string') invalid('a string', what, v);
}

function checkOptions(series: readonly Series[], o: LossCurveOptions): void {
  if (!Array.isArray(series)) invalid('an array of series', 'lossCurveSvg series', series);
  series.forEach((s, i) => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) invalid('a series { name, points, color, style? }', `series[${i}]`, s);
    checkKeys(s, ['name', 'points', 'color', 'style'], `series[${i}]`, { noun: 'key' });
    if (typeof s.name !== 'string') invalid('a string', `series[${i}].name`, s.name);
    if (typeof s.color !== 'string' || !COLOR.test(s.color)) invalid("a CSS colour ('#1f77b4', 'red', 'rgb(31, 119, 180)')", `series[${i}].color`, s.color);
    if (!Array.isArray(s.points)) invalid('an array of [x, y] points', `series[${i}].points`, s.points);
    (s.points as readonly unknown[]).forEach((p: unknown, j: number) => {
      // NaN and ±Infinity are numbers a diverged run reports: those points are left out of the picture.
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number') invalid('an [x, y] pair of numbers', `series[${i}].points[${j}]`, p);
    });
    if (s.style !== undefined) checkOneOf(s.style, ['trace', 'markers', 'line'], `series[${i}].style`);
  });
  if (typeof o !== 'object' || o === null || Array.isArray(o)) invalid('an options object', 'lossCurveSvg options', o);
  checkKeys(o, ['title', 'width', 'height', 'xLabel', 'yLabel', 'floor', 'smooth'], 'lossCurveSvg');
  for (const k of ['title', 'xLabel', 'yLabel'] as const) checkText(o[k], `lossCurveSvg ${k}`);
  if (o.width !== undefined) checkInteger(o.width, 'lossCurveSvg width', 200, 20_000);
  if (o.height !== undefined) checkInteger(o.height, 'lossCurveSvg height', 150, 20_000);
  if (o.smooth !== undefined && (checkInteger(o.smooth, 'lossCurveSvg smooth', 1, MAX_SMOOTH) & 1) === 0) invalid('an odd integer', 'lossCurveSvg smooth', o.smooth);
  if (o.floor !== undefined) {
    if (typeof o.floor !== 'object' || o.floor === null) invalid('{ value, label? }', 'lossCurveSvg floor', o.floor);
    checkKeys(o.floor, ['value', 'label'], 'lossCurveSvg floor', { noun: 'key' });
    if (typeof o.floor.value !== 'number' || !Number.isFinite(o.floor.value)) invalid('a finite number', 'lossCurveSvg floor.value', o.floor.value);
    checkText(o.floor.label, 'lossCurveSvg floor.label');
  }
}

export function lossCurveSvg(series: readonly Series[], options: LossCurveOptions = {}): string {
  checkOptions(series, options);
  const W = options.width ?? 800;
  const H = options.height ?? 400;
  const floor = options.floor;
  const font = 12;
  // Finite points only, within ±1e300 (so that no difference of two overflows), sorted by x.
  const clamp = (v: number) => Math.max(-1e300, Math.min(1e300, v));
  const drawn = series.map((s) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => [clamp(x), clamp(y)] as Pt);
    if (pts.some((p, i) => i > 0 && p[0] < pts[i - 1]![0])) pts.sort((p, q) => p[0] - q[0]);
    const style = seriesStyle(s);
    // The moving average's window, in points (1: none).
    const w = style === 'trace' ? (options.smooth ?? defaultSmoothing(pts.length)) : 1;
    return { ...s, style, pts, w };
  });

  // The y range: every value but the few far beyond the rest, and the floor.
  const values = drawn.flatMap((s) => s.pts.map(([, y]) => y)).sort((a, b) => a - b);
  const keep = robustRange(values);
  let [y0, y1] = values.length ? [keep.lo, keep.hi] : [0, 1];
  if (floor) [y0, y1] = [Math.min(y0, clamp(floor.value)), Math.max(y1, clamp(floor.value))];
  [y0, y1] = widen(y0, y1);
  const inside = (y: number) => y >= y0 && y <= y1;
  const clipped = drawn.flatMap((s) => s.pts.filter(([, y]) => !inside(y)).map((p) => ({ p, above: p[1] > y1, color: s.color })));
  let xmin = Infinity;
  let xmax = -Infinity;
  for (const s of drawn) for (const [x] of s.pts) [xmin, xmax] = [Math.min(xmin, x), Math.max(xmax, x)];
  // One step (or steps too close for doubles to tell apart): a range around it.
  const [x0, x1] = xmin < xmax ? [xmin, xmax] : xmin === xmax ? (xmin - 1 < xmax + 1 ? [xmin - 1, xmax + 1] : widen(xmin, xmax)) : [0, 1];

  // The legend, above the plot: a row of entries, wrapped.
  // The raw trace fainter the denser it is (its overlapping segments add up).
  const rawOpacity = (n: number, w: number) => (w > 1 ? Math.max(0.08, 0.35 * Math.sqrt(Math.min(1, (2 * (W - 100)) / n))).toFixed(2) : '1');
  const legend: { swatch: string; text: string }[] = [];
  for (const s of drawn) {
    const c = esc(s.color);
    if (s.style === 'trace') {
      const w = s.w;
      const dx = s.pts.length > 1 ? (s.pts.at(-1)![0] - s.pts[0]![0]) / (s.pts.length - 1) : 1;
      const span = Math.round(w * dx);
      if (w > 1) legend.push({ swatch: `<line x1="0" y1="0" x2="20" y2="0" stroke="${c}" stroke-width="2.5"/>`, text: `${s.name} (mean of ${span} steps)` });
      legend.push({ swatch: `<line x1="0" y1="0" x2="20" y2="0" stroke="${c}" stroke-width="1.5" stroke-opacity="${w > 1 ? 0.45 : 1}"/>`, text: w > 1 ? `${s.name}, each step` : s.name });
    } else if (s.style === 'markers') {
      legend.push({ swatch: `<line x1="0" y1="0" x2="20" y2="0" stroke="${c}" stroke-width="1" stroke-opacity="0.6"/><circle cx="10" cy="0" r="4" fill="${c}" stroke="white" stroke-width="1.5"/>`, text: s.name });
    } else {
      legend.push({ swatch: `<line x1="0" y1="0" x2="20" y2="0" stroke="${c}" stroke-width="2"/>`, text: s.name });
    }
  }
  if (clipped.length) {
    const top = clipped.reduce((a, b) => (Math.abs(b.p[1]) > Math.abs(a.p[1]) ? b : a));
    const v = Math.abs(top.p[1]) >= 1e5 ? top.p[1].toExponential(2).replace('e+', 'e') : String(+top.p[1].toPrecision(5));
    legend.push({ swatch: `<path d="M6,4 L10,-4 L14,4 Z" fill="#555"/>`, text: `${clipped.length} off the scale (${v} at step ${+top.p[0].toPrecision(8)})` });
  }
  const title = options.title ?? 'loss';
  const titleSize = Math.max(9, Math.min(15, (W - 20) / (title.length * 0.6)));
  const m = { l: 74, r: 24, t: 0, b: 52 };
  const rows: { x: number; entry: (typeof legend)[number] }[][] = [[]];
  let lx = m.l;
  for (const entry of legend) {
    const w = 26 + textWidth(entry.text, font) + 18;
    if (lx + w > W - m.r && rows.at(-1)!.length) (rows.push([]), (lx = m.l));
    rows.at(-1)!.push({ x: lx, entry });
    lx += w;
  }
  const legendTop = 16 + titleSize;
  m.t = legendTop + 18 * rows.length + 8;
  const pw = W - m.l - m.r;
  const ph = Math.max(40, H - m.t - m.b);

  // A little room above and below the data, and under the floor room for its label (22 px).
  const D = y1 - y0;
  const bottom = floor?.label ? Math.min(y0 - 0.04 * D, clamp(floor.value) - (22 / ph) * 1.1 * D) : y0 - 0.04 * D;
  [y0, y1] = [bottom, y1 + 0.04 * D];

  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.t + ph - ((Math.min(Math.max(y, y0), y1) - y0) / (y1 - y0)) * ph;
  const line = (pts: readonly Pt[]) => pts.map(([x, y]) => `${num(sx(x))},${num(sy(y))}`).join(' ');

  // Ticks: as many as fit with their labels apart.
  // Steps are whole numbers: so are their ticks.
  const whole = drawn.every((s) => s.pts.every(([x]) => Number.isInteger(x))) ? 1 : 0;
  let xt = ticks(x0, x1, Math.max(2, Math.floor(pw / 80)), whole);
  let xf = tickFormat(xt.step, xt.values, true);
  for (let max = Math.floor(pw / 80); max > 2; max--) {
    xt = ticks(x0, x1, max, whole);
    xf = tickFormat(xt.step, xt.values, true);
    const widest = Math.max(...xt.values.map((v) => textWidth(xf(v), font)), 0);
    if ((xt.step / (x1 - x0)) * pw >= widest + 16) break;
  }
  const yt = ticks(y0, y1, Math.max(2, Math.min(10, Math.floor(ph / 40))));
  const yf = tickFormat(yt.step, yt.values, false);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${font}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<defs><clipPath id="plot-area"><rect x="${m.l - 8}" y="${m.t - 6}" width="${pw + 16}" height="${ph + 12}"/></clipPath></defs>`,
    `<text class="title" x="${W / 2}" y="${8 + titleSize}" text-anchor="middle" font-size="${titleSize.toFixed(1)}">${esc(title)}</text>`,
  ];
  for (const v of yt.values) {
    parts.push(`<line class="grid" x1="${m.l}" y1="${num(sy(v))}" x2="${W - m.r}" y2="${num(sy(v))}" stroke="#e4e4e4"/>`);
    parts.push(`<text class="tick-y" x="${m.l - 8}" y="${num(sy(v) + 4)}" text-anchor="end">${yf(v)}</text>`);
  }
  for (const v of xt.values) {
    parts.push(`<line x1="${num(sx(v))}" y1="${m.t + ph}" x2="${num(sx(v))}" y2="${m.t + ph + 5}" stroke="black"/>`);
    parts.push(`<text class="tick-x" x="${num(sx(v))}" y="${m.t + ph + 19}" text-anchor="middle">${xf(v)}</text>`);
  }
  parts.push(`<line x1="${m.l}" y1="${m.t + ph}" x2="${W - m.r}" y2="${m.t + ph}" stroke="black"/>`);
  parts.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="black"/>`);
  parts.push(`<text class="axis-label" x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(options.xLabel ?? 'step')}</text>`);
  parts.push(`<text class="axis-label" transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(options.yLabel ?? 'loss (nats/token)')}</text>`);

  const plot: string[] = [];
  if (floor) {
    const y = num(sy(floor.value));
    plot.push(`<line class="floor" x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#444" stroke-width="1.5" stroke-dasharray="7 5"/>`);
  }
  // Faint raw traces first, then lines, the smoothed traces, and markers on top.
  for (const s of drawn) if (s.style === 'trace' && s.pts.length) {
    const w = s.w;
    plot.push(`<polyline class="raw" data-series="${esc(s.name)}" fill="none" stroke="${esc(s.color)}" stroke-width="1" stroke-opacity="${rawOpacity(s.pts.length, w)}" stroke-linejoin="round" points="${line(s.pts)}"/>`);
  }
  for (const s of drawn) if (s.style !== 'trace' && s.pts.length) {
    const marks = s.style === 'markers';
    plot.push(`<polyline class="${marks ? 'joined' : 'line'}" data-series="${esc(s.name)}" fill="none" stroke="${esc(s.color)}" stroke-width="${marks ? 1.2 : 2}"${marks ? ' stroke-opacity="0.6"' : ''} stroke-linejoin="round" points="${line(s.pts)}"/>`);
  }
  for (const s of drawn) if (s.style === 'trace' && s.pts.length) {
    const w = s.w;
    if (w <= 1) continue;
    const ys = smoothTrace(s.pts, w, inside);
    const pts = line(s.pts.map(([x], i) => [x, ys[i]!] as const));
    plot.push(`<polyline fill="none" stroke="white" stroke-opacity="0.8" stroke-width="5" stroke-linejoin="round" points="${pts}"/>`);
    plot.push(`<polyline class="smoothed" data-series="${esc(s.name)}" fill="none" stroke="${esc(s.color)}" stroke-width="2.5" stroke-linejoin="round" points="${pts}"/>`);
  }
  // A line of one point draws nothing: a dot instead.
  for (const s of drawn) if (s.style !== 'markers' && s.pts.length === 1) {
    plot.push(`<circle class="dot" data-series="${esc(s.name)}" cx="${num(sx(s.pts[0]![0]))}" cy="${num(sy(s.pts[0]![1]))}" r="3" fill="${esc(s.color)}"/>`);
  }
  for (const s of drawn) if (s.style === 'markers') {
    for (const [x, y] of s.pts) plot.push(`<circle class="marker" data-series="${esc(s.name)}" cx="${num(sx(x))}" cy="${num(sy(y))}" r="4" fill="${esc(s.color)}" stroke="white" stroke-width="1.5"/>`);
  }
  parts.push(`<g clip-path="url(#plot-area)">`, ...plot, `</g>`);
  // The floor's label at the left, under the line: the curves start high above it there. A white
  // halo keeps it legible where a faint raw trace dips below the floor.
  if (floor?.label) {
    parts.push(`<text class="floor-label" x="${m.l + 8}" y="${num(sy(floor.value) + 16)}" fill="#333" stroke="white" stroke-width="3" paint-order="stroke">${esc(floor.label)}</text>`);
  }
  for (const { p: [x], above, color } of clipped) {
    const [cx, cy] = [num(sx(x)), above ? m.t + 1 : m.t + ph - 1];
    const d = above ? `M${cx},${cy} m-5,9 l5,-9 l5,9 Z` : `M${cx},${cy} m-5,-9 l5,9 l5,-9 Z`;
    parts.push(`<path class="clipped" d="${d}" fill="${esc(color)}" stroke="white" stroke-width="0.8"/>`);
  }

  rows.forEach((row, r) => {
    const y = legendTop + 18 * r + 6;
    for (const { x, entry } of row) {
      parts.push(`<g class="legend" transform="translate(${num(x)} ${y})">${entry.swatch}<text x="26" y="4">${esc(entry.text)}</text></g>`);
    }
  });
  parts.push('</svg>');
  return parts.join('\n');
}

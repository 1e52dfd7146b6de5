// The loss-curve picture, read back from its SVG text: the axis titles, a marker per evaluation,
// the floor only when given, a smoothed train loss with a point for every raw one, ticks whose
// labels do not overlap, spikes clipped rather than squashing the curves, and no coordinate that is
// not a finite number inside the picture, on fresh random inputs every run (a single point, a
// spike of 1e6 or 1e300, NaN and Infinity among them).
import { describe, expect, it } from 'vitest';
import { lossCurveSvg, smoothTrace, type Series } from '../src/plot.js';

type Pt = [number, number];

/** Every element with the given class, as a map of its attributes. */
function elements(svg: string, cls: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const m of svg.matchAll(/<(\w+)\s([^>]*?)\/?>/g)) {
    const attrs = Object.fromEntries([...m[2]!.matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]));
    if ((attrs.class ?? '').split(' ').includes(cls)) out.push({ tag: m[1]!, ...attrs });
  }
  return out;
}

/** The text of each <text> with the given class, with its x and y. */
function texts(svg: string, cls: string): { text: string; x: number; y: number }[] {
  return [...svg.matchAll(/<text ([^>]*)>([^<]*)<\/text>/g)]
    .filter((m) => m[1]!.includes(`class="${cls}"`))
    .map((m) => ({ text: m[2]!, x: Number(/\bx="([^"]*)"/.exec(m[1]!)?.[1]), y: Number(/\by="([^"]*)"/.exec(m[1]!)?.[1]) }));
}

const pointsOf = (polyline: Record<string, string>) => polyline.points!.trim().split(/\s+/).map((p) => p.split(',').map(Number) as Pt);

/** Every number in every coordinate-bearing attribute of the picture. */
function coordinates(svg: string): string[] {
  const out: string[] = [];
  for (const m of svg.matchAll(/\s(x|y|x1|y1|x2|y2|cx|cy|r|width|height|points|d|transform)="([^"]*)"/g)) {
    out.push(...m[2]!.split(/[\s,()A-Za-z]+/).filter((t) => t !== ''));
  }
  return out;
}

const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
const gauss = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());

/** A training run's losses: exponential decay to `floor` with noise, one point a step from step 1. */
function run(steps: number, floor = rand(1, 4), noise = rand(0.01, 0.2)): Pt[] {
  const start = floor + rand(1, 8);
  const tau = steps * rand(0.05, 0.3);
  return Array.from({ length: steps }, (_, i) => [i + 1, floor + (start - floor) * Math.exp(-(i + 1) / tau) + noise * gauss()]);
}

const trainer = (train: Pt[], evals: Pt[]): Series[] => [
  { name: 'train loss', points: train, color: '#1f77b4' },
  { name: 'eval loss', points: evals, color: '#d62728' },
];

describe('lossCurveSvg', () => {
  it('titles both axes: the step and the loss in nats per token (or what the caller says)', () => {
    const svg = lossCurveSvg(trainer(run(50), []), { title: 'loss (cpu, f32, batch 8×16)' });
    expect(texts(svg, 'axis-label').map((t) => t.text).sort()).toEqual(['loss (nats/token)', 'step']);
    expect(texts(svg, 'title')[0]!.text).toBe('loss (cpu, f32, batch 8×16)');
    const other = lossCurveSvg(trainer(run(50), []), { xLabel: 'tokens', yLabel: 'bits & bytes' });
    expect(texts(other, 'axis-label').map((t) => t.text).sort()).toEqual(['bits &amp; bytes', 'tokens']);
  });

  it('draws a marker at every evaluation, and none for the train loss', () => {
    const steps = 100 + Math.floor(Math.random() * 400);
    const every = 1 + Math.floor(Math.random() * 40);
    const train = run(steps);
    const evals = train.filter(([s]) => s % every === 0).map(([s, l]) => [s, l + 0.05] as Pt);
    const svg = lossCurveSvg(trainer(train, evals));
    const markers = elements(svg, 'marker');
    expect(markers.length).toBe(evals.length);
    expect(markers.every((m) => m.tag === 'circle' && m['data-series'] === 'eval loss')).toBe(true);
    // In step order, left to right, each where its loss puts it (higher loss, higher on the page).
    const cx = markers.map((m) => Number(m.cx));
    expect(cx).toEqual([...cx].sort((a, b) => a - b));
    for (let i = 1; i < evals.length; i++) {
      if (Math.abs(evals[i]![1] - evals[i - 1]![1]) > 0.01) expect(Math.sign(Number(markers[i - 1]!.cy) - Number(markers[i]!.cy))).toBe(Math.sign(evals[i]![1] - evals[i - 1]![1]));
    }
  });

  it('draws the floor as a dashed line, labelled, only when it is given, at its value on the axis', () => {
    const floor = rand(1, 3);
    const train = run(300, floor);
    const none = lossCurveSvg(trainer(train, []));
    expect(elements(none, 'floor')).toEqual([]);
    expect(texts(none, 'floor-label')).toEqual([]);
    const svg = lossCurveSvg(trainer(train, []), { floor: { value: floor, label: 'entropy rate' } });
    const [line] = elements(svg, 'floor');
    expect(line).toBeDefined();
    expect(line!['stroke-dasharray']).toMatch(/\d/);
    expect(line!.y1).toBe(line!.y2);
    expect(texts(svg, 'floor-label').map((t) => t.text)).toEqual(['entropy rate']);
    // Where the y ticks' scale puts the floor's value (the tick label sits 4 px below its line).
    const ticks = texts(svg, 'tick-y').map((t) => ({ v: Number(t.text), y: t.y - 4 }));
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    const [a, b] = [ticks[0]!, ticks.at(-1)!];
    expect(Number(line!.y1)).toBeCloseTo(a.y + ((floor - a.v) / (b.v - a.v)) * (b.y - a.y), 0);
    // With its label beneath it, inside the plot.
    const [label] = texts(svg, 'floor-label');
    expect(label!.y).toBeGreaterThan(Number(line!.y1));
    expect(label!.y).toBeLessThan(400 - 52);
  });

  it('smooths the train loss: a point for every raw one, steadier than the raw trace and closer to the truth', () => {
    const steps = 60 + Math.floor(Math.random() * 900);
    const train = run(steps, 2, 0.15);
    const svg = lossCurveSvg(trainer(train, []));
    const [raw] = elements(svg, 'raw');
    const [smooth] = elements(svg, 'smoothed');
    expect(raw && smooth).toBeTruthy();
    const r = pointsOf(raw!);
    const s = pointsOf(smooth!);
    expect(r.length).toBe(steps);
    expect(s.length).toBe(r.length);
    expect(s.map((p) => p[0])).toEqual(r.map((p) => p[0]));
    const roughness = (pts: Pt[]) => pts.slice(1).reduce((a, p, i) => a + Math.abs(p[1] - pts[i]![1]), 0);
    expect(roughness(s)).toBeLessThan(roughness(r) / 2);
    // Drawn solid over a faint raw trace, and the legend says how many steps it averages.
    expect(Number(smooth!['stroke-width'])).toBeGreaterThan(Number(raw!['stroke-width']));
    expect(Number(raw!['stroke-opacity'])).toBeLessThan(0.5);
    expect(svg).toMatch(/train loss \(mean of \d+ steps\)/);
  });

  it('has only finite coordinates inside the picture, whatever the losses', () => {
    const cases: Series[][] = [
      trainer([[1, rand(0, 10)]], []),
      trainer([[1, rand(0, 10)]], [[1, rand(0, 10)]]),
      trainer([], []),
      trainer([[5, NaN], [6, Infinity], [7, -Infinity]], [[NaN, 1]]),
      trainer(Array.from({ length: 40 }, (_, i) => [i + 1, 2.5] as Pt), [[20, 2.5]]),
      trainer(Array.from({ length: 3 }, () => [7, rand(1, 2)] as Pt), []),
    ];
    for (let k = 0; k < 12; k++) {
      const train = run(1 + Math.floor(Math.random() * 600));
      const spikes = Math.floor(Math.random() * 4);
      for (let j = 0; j < spikes; j++) train[Math.floor(Math.random() * train.length)]![1] = [1e6, 1e300, -1e300, 40, NaN, Infinity][Math.floor(Math.random() * 6)]!;
      const evals = train.filter(() => Math.random() < 0.05).map(([s, l]) => [s, l * rand(0.9, 1.1)] as Pt);
      if (Math.random() < 0.3) train.reverse(); // out of order
      cases.push(trainer(train, evals));
    }
    for (const series of cases) {
      for (const opts of [{}, { floor: { value: rand(-1, 5), label: 'floor' } }, { width: 400, height: 200, smooth: 5 }]) {
        const svg = lossCurveSvg(series, opts);
        const W = (opts as { width?: number }).width ?? 800;
        const H = (opts as { height?: number }).height ?? 400;
        for (const c of coordinates(svg)) {
          const v = Number(c);
          expect(Number.isFinite(v), `${c} in ${JSON.stringify(series.map((s) => s.points.length))}`).toBe(true);
          expect(Math.abs(v)).toBeLessThanOrEqual(Math.max(W, H) + 20);
        }
        expect(svg).not.toMatch(/NaN|Infinity|undefined/);
      }
    }
  });

  it('clips a spike at the edge instead of squashing the curve, names it, and keeps it out of the average', () => {
    const train = run(1000, 2, 0.05);
    const at = 300 + Math.floor(Math.random() * 400);
    train[at - 1]![1] = 1e6;
    const svg = lossCurveSvg(trainer(train, []));
    const top = Math.max(...texts(svg, 'tick-y').map((t) => Number(t.text)));
    expect(top).toBeLessThan(100);
    expect(elements(svg, 'clipped').length).toBe(1);
    expect(svg).toContain(`1 off the scale (1.00e6 at step ${at})`);
    const s = pointsOf(elements(svg, 'smoothed')[0]!);
    const ys = s.map((p) => p[1]);
    // The smoothed curve has no bump at the spike: near it, within the curve's own range.
    expect(Math.min(...ys.slice(at - 30, at + 30))).toBeGreaterThan(Math.min(...ys) - 1);
    expect(Math.max(...ys.slice(at - 30, at + 30)) - Math.min(...ys.slice(at - 30, at + 30))).toBeLessThan(20);
  });

  it('keeps tick labels apart and whole steps whole, at any range of steps', () => {
    for (const last of [1, 2, 7, 50, 300, 1234, 20_000, 3_000_000, Math.floor(rand(2, 1e7))]) {
      const svg = lossCurveSvg(trainer(run(Math.min(last, 2000)).map(([s, l], i, a) => [Math.round(1 + ((last - 1) * i) / Math.max(1, a.length - 1)), l] as Pt), []));
      const xs = texts(svg, 'tick-x');
      expect(xs.length).toBeGreaterThanOrEqual(1);
      for (let i = 1; i < xs.length; i++) expect(xs[i]!.x - xs[i - 1]!.x).toBeGreaterThan(((xs[i]!.text.length + xs[i - 1]!.text.length) / 2) * 7.2 + 6);
      for (const t of xs) expect(t.text).toMatch(/^-?\d+(\.\d+)?[kM]?$/);
      expect(xs.every((t) => !/\./.test(t.text) || /[kM]$/.test(t.text))).toBe(true);
      const ys = texts(svg, 'tick-y');
      expect(ys.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < ys.length; i++) expect(Math.abs(ys[i]!.y - ys[i - 1]!.y)).toBeGreaterThanOrEqual(16);
      // One number of decimals for every y label.
      expect(new Set(ys.map((t) => t.text.split('.')[1]?.length ?? 0)).size).toBe(1);
    }
  });

  it('draws a series as its style says, by default from its name', () => {
    const pts = run(30);
    const svg = lossCurveSvg([
      { name: 'eval loss', points: pts, color: 'red', style: 'line' },
      { name: 'dense', points: pts, color: 'blue' },
      { name: 'sparse', points: pts, color: 'green', style: 'markers' },
    ]);
    expect(elements(svg, 'line').map((e) => e['data-series'])).toEqual(['eval loss', 'dense']);
    expect(elements(svg, 'marker').length).toBe(pts.length);
    expect(elements(svg, 'smoothed')).toEqual([]);
    expect(() => lossCurveSvg([{ name: 'x', points: pts, color: 'red', style: 'dots' as never }])).toThrow(/Expected one of 'trace', 'markers', 'line' for series\[0\]\.style but received "dots"/);
    expect(() => lossCurveSvg([], { smooth: 4 })).toThrow(/Expected an odd integer for lossCurveSvg smooth but received 4/);
    expect(() => lossCurveSvg([], { floor: { value: NaN } })).toThrow(/Expected a finite number for lossCurveSvg floor.value/);
  });
});

describe('smoothTrace', () => {
  it('is the centred mean in the middle and follows a straight line exactly, ends included', () => {
    const n = 20 + Math.floor(Math.random() * 100);
    const [a, b] = [rand(-5, 5), rand(-1, 1)];
    const line: Pt[] = Array.from({ length: n }, (_, i) => [i + 1, a + b * (i + 1)]);
    const s = smoothTrace(line, 9);
    for (let i = 0; i < n; i++) expect(s[i]).toBeCloseTo(line[i]![1], 9);
    const noisy: Pt[] = Array.from({ length: n }, (_, i) => [i + 1, gauss()]);
    const m = smoothTrace(noisy, 9);
    const i = 4 + Math.floor(Math.random() * (n - 8));
    expect(m[i]).toBeCloseTo(noisy.slice(i - 4, i + 5).reduce((x, p) => x + p[1], 0) / 9, 9);
  });

  it('leaves out the values it is told to, and copes with one point or repeated steps', () => {
    const pts: Pt[] = Array.from({ length: 21 }, (_, i) => [i, 2]);
    pts[10]![1] = 1e6;
    expect(smoothTrace(pts, 5, (y) => y < 100).every((v) => v === 2)).toBe(true);
    expect(smoothTrace([[3, 1.5]], 7)).toEqual([1.5]);
    expect(smoothTrace([[1, 1], [1, 3], [1, 5]], 3)).toEqual([3, 3, 3]);
  });
});

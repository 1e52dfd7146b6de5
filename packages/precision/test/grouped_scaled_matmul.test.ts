// grouped_scaled_matmul (the FP8 blockwise grouped GEMM's contract) on the CPU, fresh random inputs
// every run: each expert's rows against scaled_matmul's reference (itself checked against a float64
// computation of its own in scaled_matmul.test.ts) run on that expert's slices of the operands and
// scales, bit for bit, on ragged groups (empty experts, one expert taking every row, N not a multiple
// of 128), both scale layouts, e4m3 and e5m2, bf16 and f32 out, the output poisoned (NaN) so an
// unwritten row fails; and bad input as typed errors.
import { checkAttrs, getOp, type Attrs, type NumArray, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { tiledScaleIndex128x4 } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { firstDiff } from './fp8.js';

const randInt = (n: number) => Math.floor(Math.random() * n);
/** n random finite codes (e4m3: not S.1111.111; e5m2: exponent not all ones). */
const codes = (f: 'f8e4m3' | 'f8e5m2', n: number) =>
  Float64Array.from({ length: n }, () => {
    for (;;) {
      const c = randInt(256);
      if (f === 'f8e4m3' ? (c & 0x7f) !== 0x7f : (c & 0x7c) !== 0x7c) return c;
    }
  });
const scale = () => Math.fround(2 ** (Math.random() * 8 - 4) * (1 + Math.random()));

/** Run an op's reference on inputs of the given types: its first output. */
function run(op: string, inputs: NumArray[], inTypes: ValueType[], attrs: Attrs): Float64Array {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const outTypes = def.infer(inTypes, checked);
  const d = new Float64Array(outTypes[0]!.shape.reduce((a, b) => a * b, 1)).fill(Number.NaN);
  def.reference({ inputs, outputs: [d], inTypes, outTypes, attrs: checked });
  return d;
}

/** Offsets of R rows over E experts: ragged, some empty, or all in one. */
function offsetsOf(E: number, R: number, one: boolean): Int32Array {
  const cuts = one ? Array.from({ length: E - 1 }, () => (randInt(2) ? 0 : R)).sort((x, y) => x - y) : Array.from({ length: E - 1 }, () => randInt(R + 1)).sort((x, y) => x - y);
  return Int32Array.from([0, ...cuts, R]);
}

describe('grouped_scaled_matmul', () => {
  it("each expert's rows equal scaled_matmul on that expert's slices, bit for bit", () => {
    for (let trial = 0; trial < 8; trial++) {
      const [E, N, K, R] = [1 + randInt(4), 1 + randInt(200), 128 * (1 + randInt(2)), randInt(40)];
      const layout = trial % 2 ? 'gemm' : 'plain';
      const outDtype = trial % 3 ? 'bf16' : 'f32';
      const [af, bf] = trial % 4 === 3 ? (['f8e5m2', 'f8e4m3'] as const) : trial % 4 === 2 ? (['f8e4m3', 'f8e5m2'] as const) : (['f8e4m3', 'f8e4m3'] as const);
      const L = K / 128;
      const NB = Math.ceil(N / 128);
      const L4 = Math.ceil(L / 4) * 4;
      const off = offsetsOf(E, R, trial % 3 === 0);
      const a = codes(af, R * K);
      const b = codes(bf, E * N * K);
      const aGrid = Array.from({ length: R * L }, scale); // [r][l]
      const bGrid = Array.from({ length: E * NB * L }, scale); // [e][nb][l]
      const aScale = Float64Array.from({ length: R * L }, (_, i) => (layout === 'plain' ? aGrid[i]! : aGrid[(i % R) * L + Math.floor(i / R)]!));
      const bCols = layout === 'plain' ? L : L4;
      // The 'gemm' layout's padding is NaN: a reader of it fails.
      const bScale = Float64Array.from({ length: E * NB * bCols }, (_, i) => {
        const l = i % bCols;
        return l < L ? bGrid[Math.floor(i / bCols) * L + l]! : Number.NaN;
      });
      const types: ValueType[] = [
        { shape: [R, K], dtype: af },
        { shape: layout === 'plain' ? [R, L] : [L, R], dtype: 'f32' },
        { shape: [E, N, K], dtype: bf },
        { shape: [E, NB, bCols], dtype: 'f32' },
        { shape: [E + 1], dtype: 'i32' },
      ];
      const d = run('grouped_scaled_matmul', [a, aScale, b, bScale, off], types, { scaleLayout: layout, outDtype });
      expect(d.length).toBe(R * N);
      for (let e = 0; e < E; e++) {
        const [r0, r1] = [off[e]!, off[e + 1]!];
        if (r0 === r1) continue;
        const Re = r1 - r0;
        const ae = a.subarray(r0 * K, r1 * K);
        const ase = Float64Array.from({ length: Re * L }, (_, i) => (layout === 'plain' ? aGrid[r0 * L + i]! : aGrid[(r0 + (i % Re)) * L + Math.floor(i / Re)]!));
        const want = run(
          'scaled_matmul',
          [ae, ase, b.subarray(e * N * K, (e + 1) * N * K), bScale.subarray(e * NB * bCols, (e + 1) * NB * bCols)],
          [
            { shape: [Re, K], dtype: af },
            { shape: layout === 'plain' ? [Re, L] : [L, Re], dtype: 'f32' },
            { shape: [N, K], dtype: bf },
            { shape: [NB, bCols], dtype: 'f32' },
          ],
          { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: layout, outDtype },
        );
        const got = d.subarray(r0 * N, r1 * N);
        expect(firstDiff(got, want), `trial ${trial} expert ${e} (${layout}, ${outDtype}, ${af} × ${bf})`).toBe(-1);
      }
      expect(d.every((v) => !Number.isNaN(v))).toBe(true);
    }
  });

  it("MXFP8 and NVFP4 (mx32, nv16): each expert's rows equal scaled_matmul on that expert's slices, bit for bit, either layout", () => {
    for (let trial = 0; trial < 8; trial++) {
      const scaling = trial % 2 ? 'nv16' : 'mx32';
      const vec = scaling === 'mx32' ? 32 : 16;
      const [E, N, K, R] = [1 + randInt(4), 1 + randInt(150), vec * (1 + randInt(12)), randInt(160)];
      const layout = trial % 4 < 2 ? 'plain' : 'gemm';
      const outDtype = trial % 3 ? 'bf16' : 'f32';
      const n = K / vec;
      const off = offsetsOf(E, R, trial % 3 === 0);
      const [cd, sd] = scaling === 'mx32' ? (['f8e4m3', 'e8m0'] as const) : (['f4e2m1', 'f8e4m3'] as const);
      const elems = (m: number) => (scaling === 'mx32' ? codes('f8e4m3', m) : Float64Array.from({ length: m }, () => randInt(16)));
      // E8M0 codes near 127; UE4M3 codes of 0.5 to 4 (exponent 6 to 9, positive).
      const scaleCode = () => (scaling === 'mx32' ? 120 + randInt(15) : (6 + randInt(4)) * 8 + randInt(8));
      const a = elems(R * K);
      const b = elems(E * N * K);
      const aGrid = Float64Array.from({ length: R * n }, scaleCode); // [r][c]
      const bGrid = Float64Array.from({ length: E * N * n }, scaleCode); // [e][row][c]
      // 'gemm': 128 × 4 tiles (padding 0), a's over all R rows, b's per expert.
      const tiles = (grid: Float64Array, rows: number) => {
        const t = new Float64Array(Math.ceil(rows / 128) * Math.ceil(n / 4) * 512);
        for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) t[tiledScaleIndex128x4(r, c, n)] = grid[r * n + c]!;
        return t;
      };
      const aScale = layout === 'plain' ? aGrid : tiles(aGrid, R);
      const bParts = Array.from({ length: E }, (_, e) => (layout === 'plain' ? bGrid.subarray(e * N * n, (e + 1) * N * n) : tiles(bGrid.subarray(e * N * n, (e + 1) * N * n), N)));
      const bScale = Float64Array.from(bParts.flatMap((p) => Array.from(p)));
      const perB = bParts[0]!.length;
      const globals = scaling === 'nv16' ? [Float64Array.of(scale()), Float64Array.from({ length: E }, scale)] : [];
      const types: ValueType[] = [
        { shape: [R, K], dtype: cd },
        { shape: layout === 'plain' ? [R, n] : [Math.ceil(R / 128) * Math.ceil(n / 4), 512], dtype: sd },
        { shape: [E, N, K], dtype: cd },
        { shape: layout === 'plain' ? [E, N, n] : [E, Math.ceil(N / 128) * Math.ceil(n / 4), 512], dtype: sd },
        { shape: [E + 1], dtype: 'i32' },
        ...(scaling === 'nv16' ? ([{ shape: [1], dtype: 'f32' }, { shape: [E], dtype: 'f32' }] as ValueType[]) : []),
      ];
      const attrs = { aScaling: scaling, bScaling: scaling, scaleLayout: layout, outDtype };
      const d = run('grouped_scaled_matmul', [a, aScale, b, bScale, off, ...globals], types, attrs);
      for (let e = 0; e < E; e++) {
        const [r0, r1] = [off[e]!, off[e + 1]!];
        if (r0 === r1) continue;
        const Re = r1 - r0;
        const want = run(
          'scaled_matmul',
          [a.subarray(r0 * K, r1 * K), aGrid.subarray(r0 * n, r1 * n), b.subarray(e * N * K, (e + 1) * N * K), bGrid.subarray(e * N * n, (e + 1) * N * n), ...(scaling === 'nv16' ? [globals[0]!, globals[1]!.subarray(e, e + 1)] : [])],
          [
            { shape: [Re, K], dtype: cd },
            { shape: [Re, n], dtype: sd },
            { shape: [N, K], dtype: cd },
            { shape: [N, n], dtype: sd },
            ...(scaling === 'nv16' ? ([{ shape: [1], dtype: 'f32' }, { shape: [1], dtype: 'f32' }] as ValueType[]) : []),
          ],
          { aScaling: scaling, bScaling: scaling, scaleLayout: 'plain', outDtype },
        );
        expect(firstDiff(d.subarray(r0 * N, r1 * N), want), `trial ${trial} expert ${e} (${scaling}, ${layout}, ${outDtype}, per-expert b scales ${perB})`).toBe(-1);
      }
      expect(d.every((v) => !Number.isNaN(v))).toBe(true);
    }
  });

  it('bad input gives typed errors naming the argument', () => {
    const [E, N, K, R] = [2, 3, 128, 5];
    const types = (over: Partial<Record<number, ValueType>> = {}): ValueType[] =>
      [
        { shape: [R, K], dtype: 'f8e4m3' },
        { shape: [1, R], dtype: 'f32' },
        { shape: [E, N, K], dtype: 'f8e4m3' },
        { shape: [E, 1, 4], dtype: 'f32' },
        { shape: [E + 1], dtype: 'i32' },
      ].map((t, i) => over[i] ?? t) as ValueType[];
    const infer = (t: ValueType[]) => errorOf(() => getOp('grouped_scaled_matmul').infer(t, checkAttrs(getOp('grouped_scaled_matmul'), {})));
    expect(infer(types({ 0: { shape: [R, K], dtype: 'bf16' } })).message).toMatch(/Expected f8e4m3 or f8e5m2 codes for input 'a'/);
    expect(infer(types({ 2: { shape: [N, K], dtype: 'f8e4m3' } })).message).toMatch(/Expected a rank-3 tensor \(\[E, N, K\]/);
    expect(infer(types({ 0: { shape: [R, 64], dtype: 'f8e4m3' } })).message).toMatch(/with K = 64/);
    expect(infer(types({ 0: { shape: [R, 64], dtype: 'f8e4m3' }, 2: { shape: [E, N, 64], dtype: 'f8e4m3' } })).message).toMatch(/whole number of 128-element blocks/);
    expect(infer(types({ 0: { shape: [R, K], dtype: 'f8e5m2' }, 2: { shape: [E, N, K], dtype: 'f8e5m2' } })).message).toMatch(/at most one f8e5m2/);
    expect(infer(types({ 3: { shape: [E, 1, 1], dtype: 'f32' } })).message).toMatch(/Expected f32\[2, 1, 4\] for input 'bScale'/);
    expect(infer(types({ 1: { shape: [R, 1], dtype: 'f32' } })).message).toMatch(/Expected f32\[1, 5\] for input 'aScale'/);
    expect(infer(types({ 4: { shape: [E], dtype: 'i32' } })).code).toBe('SHAPE_MISMATCH');
    const t = types();
    const data = [codes('f8e4m3', R * K), Float64Array.from({ length: R }, scale), codes('f8e4m3', E * N * K), Float64Array.from({ length: E * 4 }, scale)];
    const e = errorOf(() => run('grouped_scaled_matmul', [...data, Int32Array.of(0, 4, 3)], t, {}));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/grouped_scaled_matmul: Expected an integer in \[offsets\[1\], 5\] \(offsets never decrease\) for offsets\[2\] but received 3/);
    expect(errorOf(() => run('grouped_scaled_matmul', [data[0]!.map(() => 300), ...data.slice(1), Int32Array.of(0, 2, 5)], t, {})).message).toMatch(/Expected FP8 codes/);
    // The scaling pairs, and NVFP4's tensor scales.
    expect(errorOf(() => getOp('grouped_scaled_matmul').infer(t, checkAttrs(getOp('grouped_scaled_matmul'), { aScaling: 'mx32', bScaling: 'block128x128' }))).message).toMatch(/Expected \(aScaling, bScaling\) of \(block1x128, block128x128\), \(mx32, mx32\) or \(nv16, nv16\)/);
    const nv: ValueType[] = [
      { shape: [R, K], dtype: 'f4e2m1' },
      { shape: [R, K / 16], dtype: 'f8e4m3' },
      { shape: [E, N, K], dtype: 'f4e2m1' },
      { shape: [E, N, K / 16], dtype: 'f8e4m3' },
      { shape: [E + 1], dtype: 'i32' },
    ];
    const nvAttrs = checkAttrs(getOp('grouped_scaled_matmul'), { aScaling: 'nv16', bScaling: 'nv16', scaleLayout: 'plain' });
    expect(errorOf(() => getOp('grouped_scaled_matmul').infer(nv, nvAttrs)).message).toMatch(/Expected 7 inputs .*aGlobal, bGlobal/);
    expect(errorOf(() => getOp('grouped_scaled_matmul').infer([...nv, { shape: [1], dtype: 'f32' }, { shape: [1], dtype: 'f32' }], nvAttrs)).message).toMatch(/Expected f32\[2\] for input 'bGlobal'/);
    expect(getOp('grouped_scaled_matmul').infer([...nv, { shape: [1], dtype: 'f32' }, { shape: [E], dtype: 'f32' }], nvAttrs)[0]).toEqual({ shape: [R, N], dtype: 'bf16' });
    expect(errorOf(() => getOp('grouped_scaled_matmul').infer([{ shape: [R, K], dtype: 'f8e4m3' }, ...nv.slice(1), { shape: [1], dtype: 'f32' }, { shape: [E], dtype: 'f32' }], nvAttrs)).message).toMatch(/Expected f4e2m1 codes \(NVFP4\) for input 'a'/);
  });
});

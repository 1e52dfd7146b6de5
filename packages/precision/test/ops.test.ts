// The fake_quant and quant_stats ops on the CPU reference backend, fresh random inputs every run:
// blockwise FP8 in fake_quant bit for bit against layout.ts's quantize2d / dequantize2d (lines
// along any axis, 128 × 128 tiles of batched matrices, an all-zero block, a block with one huge
// value), their shape errors, and quant_stats against a float64 recomputation from quantize /
// dequantize on data with planted NaN, ±Inf, huge and tiny values, for every format.
import { capture, interpret } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import {
  ELEMENTS,
  FAKE_QUANT_FORMATS,
  QUANT_STATS,
  decodeE8m0,
  decodeElement,
  dequantize,
  dequantize2d,
  encodeElement,
  fakeQuantBlocking,
  quantize,
  quantize2d,
  type FakeQuantFormat,
} from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

/** Values over six decades, both signs: each run different. */
const randn = (n: number) => Float32Array.from({ length: n }, () => Math.fround((Math.random() * 2 - 1) * 10 ** (Math.random() * 6 - 3)));
const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

function runOp(op: 'fake_quant' | 'quant_stats', x: Float32Array, shape: number[], attrs: Record<string, string | number>): Float32Array {
  const g = capture({ forward: ({ x: s }) => ({ y: s!.builder.op1(op, [s!], attrs) }) }, { x: { shape, dtype: 'f32' } });
  return interpret(g, { x })[g.outputs.y!]! as Float32Array;
}

/** The [rows, cols] matrix of x's lines along `axis` (each line a row). */
function lines(x: Float32Array, shape: number[], axis: number): { m: Float32Array; rows: number; cols: number; at: (r: number, c: number) => number } {
  const a = axis < 0 ? axis + shape.length : axis;
  const outer = shape.slice(0, a).reduce((p, q) => p * q, 1);
  const len = shape[a]!;
  const inner = shape.slice(a + 1).reduce((p, q) => p * q, 1);
  const at = (r: number, c: number) => (Math.floor(r / inner) * len + c) * inner + (r % inner);
  const m = new Float32Array(outer * inner * len);
  for (let r = 0; r < outer * inner; r++) for (let c = 0; c < len; c++) m[r * len + c] = x[at(r, c)]!;
  return { m, rows: outer * inner, cols: len, at };
}

describe('fake_quant, blockwise FP8', () => {
  it('fp8-block1x128 equals quantize2d → dequantize2d of each line along the axis, bit for bit', () => {
    for (const [shape, axis] of [
      [[3, 256], -1],
      [[256, 5], 0],
      [[2, 384, 3], 1],
      [[2, 3, 128], -1],
    ] as [number[], number][]) {
      const x = randn(shape.reduce((p, q) => p * q, 1));
      const L = lines(x, shape, axis);
      // An all-zero block and a block whose other values vanish beside one huge value.
      for (let c = 0; c < 128; c++) x[L.at(0, c)] = 0;
      x[L.at(L.rows - 1, 5)] = 3e30;
      const { m } = lines(x, shape, axis);
      const want = dequantize2d(quantize2d(m, L.rows, L.cols, { format: 'fp8-block1x128' }));
      const y = runOp('fake_quant', x, shape, { format: 'fp8-block1x128', axis });
      const got = lines(y, shape, axis).m;
      expect(bits(got), `${shape} axis ${axis}`).toEqual(bits(want));
      expect(got.subarray(0, 128).every((v) => v === 0)).toBe(true);
      expect(Math.abs(got[(L.rows - 1) * L.cols + 5]! / 3e30 - 1)).toBeLessThan(2 ** -4);
      expect(Math.abs(got[(L.rows - 1) * L.cols + 6]!)).toBe(0); // its neighbours underflow
      expect(got.some((v, i) => v !== 0 && v !== m[i])).toBe(true); // it did quantize
    }
    // Columnwise quantize2d is fake_quant along the rows' axis.
    const [R, C] = [256, 48];
    const x = randn(R * C);
    const col = dequantize2d(quantize2d(x, R, C, { format: 'fp8-block1x128', direction: 'columnwise' }));
    expect(bits(runOp('fake_quant', x, [R, C], { format: 'fp8-block1x128', axis: -2 }))).toEqual(bits(col));
  });

  it('fp8-block128x128 tiles the last two axes of each matrix; the axis changes nothing', () => {
    const shape = [2, 256, 384];
    const per = 256 * 384;
    const x = randn(2 * per);
    for (let r = 0; r < 128; r++) x.fill(0, per + r * 384 + 128, per + r * 384 + 256); // matrix 1, tile (0, 1): zero
    x[per + 200 * 384 + 300] = -5e25; // matrix 1, tile (1, 2): one huge value
    const want = new Float32Array(2 * per);
    for (let m = 0; m < 2; m++) {
      const mat = x.subarray(m * per, (m + 1) * per);
      const rows = dequantize2d(quantize2d(mat, 256, 384, { format: 'fp8-block128x128' }));
      const cols = dequantize2d(quantize2d(mat, 256, 384, { format: 'fp8-block128x128', direction: 'columnwise' }));
      expect(bits(cols)).toEqual(bits(rows));
      want.set(rows, m * per);
    }
    for (const axis of [-1, -2, 1, 2]) expect(bits(runOp('fake_quant', x, shape, { format: 'fp8-block128x128', axis })), `axis ${axis}`).toEqual(bits(want));
    const y = runOp('fake_quant', x, shape, { format: 'fp8-block128x128', axis: -1 });
    expect(Math.abs(y[per + 5 * 384 + 130]!)).toBe(0);
    expect(Math.abs(y[per + 200 * 384 + 300]! / -5e25 - 1)).toBeLessThan(2 ** -4);
    expect(Math.abs(y[per + 201 * 384 + 300]!)).toBe(0); // its neighbours underflow
  });

  it('names what is wrong with a shape or an axis', () => {
    const msg = (shape: number[], attrs: Record<string, string | number>) => errorOf(() => runOp('fake_quant', new Float32Array(shape.reduce((p, q) => p * q, 1)), shape, attrs)).message;
    expect(msg([4, 192], { format: 'fp8-block1x128', axis: -1 })).toMatch(/Expected a length along axis -1 divisible by fp8-block1x128's block of 128 but received 192/);
    expect(msg([128, 192], { format: 'fp8-block128x128', axis: -1 })).toMatch(/Expected the last two axes divisible by 128 .* but received \[128, 192\]/);
    expect(msg([256], { format: 'fp8-block128x128', axis: -1 })).toMatch(/Expected rank >= 2 .* but received \[256\]/);
    expect(msg([2, 128, 128], { format: 'fp8-block128x128', axis: 0 })).toMatch(/Expected axis -1 or -2 for fp8-block128x128/);
    expect(msg([4, 128], { format: 'fp8-block1x128', axis: 2 })).toMatch(/Expected an axis in \[-2, 1\] but received 2/);
    expect(msg([4, 128], { format: 'fp8-block64' })).toMatch(/Expected one of .*'fp8-block1x128', 'fp8-block128x128' for attribute 'format' of fake_quant/);
  });

  it('describes each format’s blocking', () => {
    expect(FAKE_QUANT_FORMATS).toContain('fp8-block128x128');
    expect(fakeQuantBlocking('mxfp8-e4m3')).toEqual({ kind: 'mx', block: 32, element: 'e4m3' });
    expect(fakeQuantBlocking('nvfp4')).toEqual({ kind: 'nvfp4', block: 16, element: 'e2m1' });
    expect(fakeQuantBlocking('fp8-e5m2')).toEqual({ kind: 'tensorwise', block: null, element: 'e5m2' });
    expect(fakeQuantBlocking('fp8-block1x128')).toEqual({ kind: 'block1x128', block: 128, element: 'e4m3' });
    expect(fakeQuantBlocking('fp8-block128x128')).toEqual({ kind: 'block128x128', block: 128, element: 'e4m3' });
    for (const f of FAKE_QUANT_FORMATS) expect(fakeQuantBlocking(f).kind).toBeTruthy();
    expect(errorOf(() => fakeQuantBlocking('toString' as FakeQuantFormat)).message).toMatch(/Expected a fake_quant format \(mxfp8-e4m3, .*\) but received "toString"/);
  });
});

/**
 * quant_stats recomputed in float64 from the codecs: quantize each group, decode, and count. The
 * saturation test asks the element codec itself (non-saturating encode overflows) where it can;
 * E2M1 has neither NaN nor Inf, so there the bound is the midpoint 7 between 6 and the next value 8.
 */
function expectedStats(x: Float32Array, shape: number[], format: FakeQuantFormat, axis: number, scaleMode: 'floor' | 'rceil'): number[] {
  const { kind, element } = fakeQuantBlocking(format);
  const elem = ELEMENTS[element];
  const clamps = (v: number) => (element === 'e2m1' ? Math.abs(v) >= 7 : !Number.isFinite(decodeElement(elem, encodeElement(elem, v, { saturate: false }))));
  let groups: { values: Float32Array; rows: number; cols: number }[];
  if (kind === 'tensorwise') groups = [{ values: x, rows: 1, cols: x.length }];
  else if (kind === 'block128x128') {
    const [R, C] = shape.slice(-2) as [number, number];
    groups = Array.from({ length: x.length / (R * C) }, (_, m) => ({ values: x.subarray(m * R * C, (m + 1) * R * C), rows: R, cols: C }));
  } else {
    const L = lines(x, shape, axis);
    groups = Array.from({ length: L.rows }, (_, r) => ({ values: L.m.subarray(r * L.cols, (r + 1) * L.cols), rows: 1, cols: L.cols }));
  }
  let amax = 0;
  let nonfinite = 0;
  let underflow = 0;
  let saturated = 0;
  const logs: number[] = [];
  for (const g of groups) {
    let y: Float32Array;
    let blockOf: (k: number) => number;
    let scale: (b: number) => number;
    // The element encoder's input: MX x / 2^e, NVFP4 f32(x / f32(s·g)), FP8 f32(x · m) with the
    // block's multiplier m = f32(max_elem / amax) (f32's largest where that overflows, 1 for 0).
    let scaled: (v: number, s: number, blockAmax: number) => number;
    const fp8 = (v: number, _s: number, a: number) => {
      const m = a === 0 ? 1 : Math.fround(elem.max / a);
      return Math.fround(v * (Number.isFinite(m) ? m : 3.4028234663852886e38));
    };
    if (kind === 'block1x128' || kind === 'block128x128') {
      const q = quantize2d(g.values, g.rows, g.cols, { format: format as 'fp8-block1x128' });
      y = dequantize2d(q);
      const tile = kind === 'block128x128' ? 128 : 1;
      blockOf = (k) => Math.floor(Math.floor(k / g.cols) / tile) * (g.cols / 128) + Math.floor((k % g.cols) / 128);
      scale = (b) => (q.scales as Float32Array)[b]!;
      scaled = fp8;
    } else {
      // NVFP4's tensor scale comes from the whole tensor's amax (one per operand).
      const tensorAmax = x.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 0);
      const q = quantize(g.values, { format: format as 'nvfp4', ...(kind === 'mx' ? { scaleMode } : {}), ...(kind === 'nvfp4' ? { amax: tensorAmax } : {}) });
      y = dequantize(q);
      blockOf = (k) => Math.floor(k / q.blockSize);
      scale = kind === 'mx' ? (b) => decodeE8m0(q.scales[b]!) : kind === 'nvfp4' ? (b) => decodeElement(ELEMENTS.e4m3, q.scales[b]!) * q.globalScale! : () => q.globalScale!;
      scaled = kind === 'mx' ? (v, s) => v / s : kind === 'nvfp4' ? (v, s) => Math.fround(v / Math.fround(s)) : fp8;
    }
    const blocks = new Map<number, number[]>();
    g.values.forEach((v, k) => {
      const b = blockOf(k);
      if (!blocks.has(b)) blocks.set(b, []);
      blocks.get(b)!.push(v);
    });
    for (const [b, vs] of blocks) {
      const special = vs.some((v) => !Number.isFinite(v));
      const s = scale(b);
      const bamax = vs.reduce((a, v) => (Number.isFinite(v) ? Math.max(a, Math.abs(v)) : a), 0);
      if (!special && bamax > 0 && s > 0 && Number.isFinite(s)) logs.push(Math.log2(s));
      // MX and NVFP4 blocks holding NaN/Inf are not encoded; NVFP4 blocks with f32(s·g) = 0 neither.
      const encoded = !((kind === 'mx' || kind === 'nvfp4') && special) && !(kind === 'nvfp4' && Math.fround(s) === 0);
      if (encoded) for (const v of vs) if (Number.isFinite(v) && clamps(scaled(v, s, bamax))) saturated++;
    }
    g.values.forEach((v, k) => {
      if (!Number.isFinite(v)) nonfinite++;
      else {
        amax = Math.max(amax, Math.abs(v));
        if (v !== 0 && y[k] === 0) underflow++;
      }
    });
  }
  const n = x.length;
  return [amax, nonfinite / n, underflow / n, saturated / n, logs.length ? Math.min(...logs) : NaN, logs.length ? Math.max(...logs) : NaN].map(Math.fround);
}

describe('quant_stats', () => {
  it('agrees with a float64 recomputation from quantize / dequantize for every format', () => {
    const shape = [128, 256];
    const n = 128 * 256;
    for (const format of FAKE_QUANT_FORMATS) {
      for (const scaleMode of format.startsWith('mx') ? (['floor', 'rceil'] as const) : (['floor'] as const)) {
        for (const axis of fakeQuantBlocking(format).kind === 'tensorwise' ? [-1] : [-1, 0]) {
          const x = randn(n);
          for (let i = 0; i < 40; i++) x[Math.floor(Math.random() * n)] = Math.fround((Math.random() < 0.5 ? -1 : 1) * 10 ** (20 + 10 * Math.random())); // huge
          for (let i = 0; i < 400; i++) x[Math.floor(Math.random() * n)] = Math.fround((Math.random() - 0.5) * 1e-30); // tiny
          x.fill(0, 256 * 40, 256 * 41); // an all-zero row
          const planted = fakeQuantBlocking(format).kind === 'tensorwise' ? [] : [NaN, Infinity, -Infinity];
          // At distinct places in the first tile, so the second stays usable.
          planted.forEach((v, k) => (x[k * 40 + Math.floor(Math.random() * 40)] = v));
          const got = Array.from(runOp('quant_stats', x, shape, { format, scaleMode, axis }));
          const want = expectedStats(x, shape, format, axis, scaleMode);
          expect(got, `${format} ${scaleMode} axis ${axis}`).toEqual(want);
          expect(got[0]).toBeGreaterThan(1e19);
          expect(got[1]).toBe(Math.fround(planted.length / n));
          expect(got[2], `${format}: the tiny values underflow`).toBeGreaterThan(0);
          if (format.startsWith('mx')) expect(got[3]! > 0, `${format} ${scaleMode}: only 'floor' saturates`).toBe(scaleMode === 'floor');
          expect(Number.isFinite(got[4]!) && got[4]! <= got[5]!, `${format}: a finite scale range`).toBe(true);
        }
      }
    }
  }, 60_000);

  it('counts saturation, and gives NaN scales when no block is usable', () => {
    // MXFP8 'floor' clamps a block's largest values whose scaled magnitude lies above 464.
    const x = new Float32Array(64).fill(1);
    x[3] = 480; // 1.875 · 2^8: floor gives 2^0, and 480 > 464 clamps to 448
    x[40] = 460; // rounds to 448 without clamping
    const s = runOp('quant_stats', x, [64], { format: 'mxfp8-e4m3', scaleMode: 'floor' });
    expect(Array.from(s)).toEqual([480, 0, 0, 1 / 64, 0, 0]);
    const r = runOp('quant_stats', x, [64], { format: 'mxfp8-e4m3', scaleMode: 'rceil' });
    expect(r[3]).toBe(0); // 'rceil' never clamps
    expect(r[5]).toBe(1); // 480 / 448 needs 2^1
    // Nothing usable: all zero, or every block holding a NaN.
    const z = runOp('quant_stats', new Float32Array(32), [32], { format: 'nvfp4' });
    expect(Array.from(z)).toEqual([0, 0, 0, 0, NaN, NaN]);
    const nan = Float32Array.from({ length: 32 }, (_, i) => (i % 16 === 0 ? NaN : i));
    expect(Array.from(runOp('quant_stats', nan, [32], { format: 'mxfp4' }))).toEqual([31, 2 / 32, 0, 0, NaN, NaN]);
    expect(QUANT_STATS).toEqual(['amax', 'nonfinite', 'underflow', 'saturated', 'log2ScaleMin', 'log2ScaleMax']);
    expect(errorOf(() => runOp('quant_stats', new Float32Array(48), [48], { format: 'mxfp8-e4m3' })).message).toMatch(/quant_stats: Expected a length along axis -1 divisible by mxfp8-e4m3's block of 32 but received 48/);
  });
});

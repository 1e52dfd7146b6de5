// The scaled_matmul op and scaledMatmul on the CPU, fresh random inputs every run, every output
// element checked:
//   - the reference against this file's own float64 computation (codes decoded from the element
//     formula, scales looked up through a logical block grid and packed into each layout by hand,
//     products summed in ascending k, rounded once by a nearest-value search): bit for bit, on odd
//     shapes, for every scaling pair, both scale layouts, e4m3 and e5m2, bf16 and f32 out, with the
//     128 × 128 layout's padding poisoned (NaN);
//   - the same through the IR (a captured graph run by the reference interpreter), and autodiff's
//     handling of an op without a gradient rule;
//   - scaledMatmul on quantizeTensor results against dequantize-then-matmul in float64, rounded once;
//   - every bad input gives its typed error and message.
import { Tensor, bf16BitsToF32, f32ToBf16Bits, registry } from '@deepwell/core';
import { GraphBuilder, differentiate, getOp, interpret, mul, sum, type NumArray, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { dequantizeTensor, quantizeTensor, roundToBf16, scaledMatmul, type QuantizedTensor } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { firstDiff, gemmLayoutScales, nearestBf16, productError, valuesOf } from './fp8.js';

type Fp8 = 'e4m3' | 'e5m2';
type Scaling = 'tensor' | 'row' | 'block1x128' | 'block128x128';
type Layout = 'plain' | 'gemm';

const normal = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
const randInt = (n: number) => Math.floor(Math.random() * n);

/** The value of an FP8 code, from the format's formula (not the package's codec). */
function valueOf(f: Fp8, c: number): number {
  const [eb, mb, bias] = f === 'e4m3' ? [4, 3, 7] : [5, 2, 15];
  const s = c & 0x80 ? -1 : 1;
  const e = (c >> mb) & ((1 << eb) - 1);
  const m = c & ((1 << mb) - 1);
  if (f === 'e4m3' && e === 15 && m === 7) return NaN;
  if (f === 'e5m2' && e === 31) return m === 0 ? s * Infinity : NaN;
  return e === 0 ? s * m * 2 ** (1 - bias - mb) : s * (1 + m / 2 ** mb) * 2 ** (e - bias);
}

/** n random finite codes of format f (any finite value, zeros included). */
function codes(f: Fp8, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let c: number;
    do c = randInt(256);
    while (!Number.isFinite(valueOf(f, c)));
    out[i] = c;
  }
  return out;
}

/**
 * An operand's scales: a logical grid (one value per tensor, row, 1 × 128 block or 128 × 128 tile),
 * `at(r, k)` the scale of element (r, k), and the grid packed by hand into each layout (the 128 × 128
 * 'gemm' layout's padding NaN).
 */
function scales(s: Scaling, R: number, K: number): { at: (r: number, k: number) => number; packed: Record<Layout, { data: Float32Array; shape: number[] }> } {
  const v = () => Math.fround(2 ** (Math.random() * 8 - 4) * (1 + Math.random()));
  const L = Math.ceil(K / 128);
  const rows = s === 'tensor' ? 1 : s === 'block128x128' ? Math.ceil(R / 128) : R;
  const cols = s === 'tensor' || s === 'row' ? 1 : L;
  const grid = Array.from({ length: rows }, () => Array.from({ length: cols }, v));
  const at = (r: number, k: number) => grid[s === 'tensor' ? 0 : s === 'block128x128' ? Math.floor(r / 128) : r]![cols === 1 ? 0 : Math.floor(k / 128)]!;
  if (s === 'tensor' || s === 'row') {
    const flat = Float32Array.from(grid.flat());
    const one = { data: flat, shape: [flat.length] };
    return { at, packed: { plain: one, gemm: one } };
  }
  const plain = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) plain[i * cols + j] = grid[i]![j]!;
  if (s === 'block1x128') {
    const gemm = new Float32Array(L * R); // [L, R]: a K-block's scales for every row, rows contiguous
    for (let kb = 0; kb < L; kb++) for (let r = 0; r < R; r++) gemm[kb * R + r] = grid[r]![kb]!;
    return { at, packed: { plain: { data: plain, shape: [R, L] }, gemm: { data: gemm, shape: [L, R] } } };
  }
  const L4 = Math.ceil(L / 4) * 4;
  const gemm = new Float32Array(rows * L4).fill(NaN); // [RB, L4], padding never read
  for (let rb = 0; rb < rows; rb++) for (let kb = 0; kb < L; kb++) gemm[rb * L4 + kb] = grid[rb]![kb]!;
  return { at, packed: { plain: { data: plain, shape: [rows, L] }, gemm: { data: gemm, shape: [rows, L4] } } };
}


const round = (out: 'bf16' | 'f32') => (out === 'f32' ? Math.fround : nearestBf16);

/** d = Σ_k (value·scale)(a) · (value·scale)(b), ascending k, rounded once. */
function want(M: number, N: number, K: number, av: (m: number, k: number) => number, bv: (n: number, k: number) => number, out: 'bf16' | 'f32'): Float64Array {
  const d = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += av(m, k) * bv(n, k);
      d[m * N + n] = round(out)(s);
    }
  return d;
}


interface Case {
  M: number;
  N: number;
  K: number;
  a: Fp8;
  b: Fp8;
  sa: Scaling;
  sb: Scaling;
  out: 'bf16' | 'f32';
}

const CASES: Case[] = [
  { M: 37, N: 23, K: 45, a: 'e4m3', b: 'e4m3', sa: 'tensor', sb: 'tensor', out: 'bf16' },
  { M: 1, N: 1, K: 1, a: 'e4m3', b: 'e5m2', sa: 'tensor', sb: 'tensor', out: 'f32' },
  { M: 29, N: 31, K: 77, a: 'e5m2', b: 'e4m3', sa: 'tensor', sb: 'tensor', out: 'f32' }, // a gradient × a weight
  { M: 19, N: 41, K: 67, a: 'e4m3', b: 'e4m3', sa: 'row', sb: 'row', out: 'bf16' },
  { M: 37, N: 29, K: 256, a: 'e4m3', b: 'e4m3', sa: 'block1x128', sb: 'block1x128', out: 'bf16' },
  { M: 13, N: 7, K: 384, a: 'e5m2', b: 'e4m3', sa: 'block1x128', sb: 'block1x128', out: 'f32' },
  { M: 35, N: 133, K: 384, a: 'e4m3', b: 'e4m3', sa: 'block1x128', sb: 'block128x128', out: 'bf16' }, // L 3, L4 4; a partial tile of rows
  { M: 131, N: 21, K: 640, a: 'e4m3', b: 'e5m2', sa: 'block128x128', sb: 'block1x128', out: 'f32' }, // L 5, L4 8
];

function runReference(c: Case, layout: Layout, ac: Uint8Array, as: ReturnType<typeof scales>, bc: Uint8Array, bs: ReturnType<typeof scales>, fastAccum = false): NumArray {
  const op = getOp('scaled_matmul');
  const attrs = { aScaling: c.sa, bScaling: c.sb, scaleLayout: layout, outDtype: c.out, fastAccum };
  const inTypes: ValueType[] = [
    { shape: [c.M, c.K], dtype: c.a === 'e4m3' ? 'f8e4m3' : 'f8e5m2' },
    { shape: as.packed[layout].shape, dtype: 'f32' },
    { shape: [c.N, c.K], dtype: c.b === 'e4m3' ? 'f8e4m3' : 'f8e5m2' },
    { shape: bs.packed[layout].shape, dtype: 'f32' },
  ];
  const outTypes = op.infer(inTypes, attrs);
  expect(outTypes).toEqual([{ shape: [c.M, c.N], dtype: c.out }]);
  const d = new Float64Array(c.M * c.N).fill(NaN);
  op.reference({ inputs: [Float32Array.from(ac), as.packed[layout].data, Float32Array.from(bc), bs.packed[layout].data], outputs: [d], inTypes, outTypes, attrs });
  return d;
}

describe('scaled_matmul: the reference', () => {
  it.each(CASES.map((c) => [`${c.M}x${c.N}x${c.K} ${c.a}·${c.b} ${c.sa}/${c.sb} → ${c.out}`, c] as const))(
    'equals an independent float64 computation bit for bit, in both scale layouts: %s',
    (_name, c) => {
      const ac = codes(c.a, c.M * c.K);
      const bc = codes(c.b, c.N * c.K);
      const as = scales(c.sa, c.M, c.K);
      const bs = scales(c.sb, c.N, c.K);
      const wantd = want(c.M, c.N, c.K, (m, k) => valueOf(c.a, ac[m * c.K + k]!) * as.at(m, k), (n, k) => valueOf(c.b, bc[n * c.K + k]!) * bs.at(n, k), c.out);
      expect(wantd.every(Number.isFinite), 'a finite reference (no padding read)').toBe(true);
      for (const layout of ['plain', 'gemm'] as const) {
        const got = runReference(c, layout, ac, as, bc, bs);
        expect(firstDiff(got, wantd), `${layout}: first differing element`).toBe(-1);
        if (c.out === 'bf16') expect(Array.from(got).every((x) => bf16BitsToF32(f32ToBf16Bits(x)) === x)).toBe(true);
      }
      // fastAccum only lets a kernel skip promotions; the exact reference ignores it.
      if (c.sa === 'tensor' || c.sa === 'row') expect(firstDiff(runReference(c, 'plain', ac, as, bc, bs, true), wantd)).toBe(-1);
    },
  );

  it('rounds to bf16 once, from float64 (not through f32)', () => {
    // 1 + 2^-8 + 2^-30 (three 1 × 128 blocks of b scaled 1, 2^-8 and 2^-30): f32 holds it as 1 + 2^-8,
    // a bf16 tie that goes to even (1); rounded once it is 1 + 2^-7.
    const c: Case = { M: 1, N: 1, K: 384, a: 'e4m3', b: 'e4m3', sa: 'block1x128', sb: 'block1x128', out: 'bf16' };
    const ac = new Uint8Array(384);
    const bc = new Uint8Array(384);
    for (const k of [0, 128, 256]) ac[k] = bc[k] = 0x38; // e4m3 1.0
    const fixed = (v: number[]) => ({ at: () => NaN, packed: { plain: { data: Float32Array.from(v), shape: [1, 3] }, gemm: { data: Float32Array.from(v), shape: [3, 1] } } });
    for (const layout of ['plain', 'gemm'] as const) expect(runReference(c, layout, ac, fixed([1, 1, 1]), bc, fixed([1, 2 ** -8, 2 ** -30]))[0]).toBe(1 + 2 ** -7);
    expect(roundToBf16(1 + 2 ** -8 + 2 ** -30)).toBe(1 + 2 ** -7);
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -30))).toBe(1); // what double rounding gives
    expect(roundToBf16(1 + 2 ** -8)).toBe(1); // a true tie: to even
    expect(roundToBf16(-(1 + 3 * 2 ** -8))).toBe(-(1 + 2 ** -6)); // tie, odd below: up in magnitude
    expect(roundToBf16(3.4e38)).toBe(Infinity);
    expect(roundToBf16(3.39e38)).toBe(bf16BitsToF32(0x7f7f)); // the largest finite bf16 value
    expect(roundToBf16(3.38e38)).toBe(bf16BitsToF32(0x7f7e));
    expect(Object.is(roundToBf16(-1e-60), -0)).toBe(true);
    expect(roundToBf16(2 ** -133)).toBe(2 ** -133); // the smallest bf16 subnormal
    expect(roundToBf16(3 * 2 ** -135)).toBe(2 ** -133); // 0.75 of it: up
    for (let i = 0; i < 20000; i++) {
      const x = normal() * 2 ** (Math.random() * 250 - 125);
      expect(roundToBf16(x)).toBe(nearestBf16(x));
    }
  });

  it('gives NaN where a NaN code is read, and ±Inf codes of E5M2 their IEEE results', () => {
    const c: Case = { M: 5, N: 4, K: 128, a: 'e4m3', b: 'e5m2', sa: 'block1x128', sb: 'block1x128', out: 'f32' };
    const ac = codes('e4m3', c.M * c.K);
    const bc = codes('e5m2', c.N * c.K);
    ac[2 * c.K + 17] = 0x7f; // NaN in row 2 of a
    bc[3 * c.K + 5] = 0x7c; // +Inf in row 3 of b
    // The a element each row multiplies that Inf by: not a zero (0 × Inf is NaN, not Inf).
    for (let m = 0; m < c.M; m++) if (m !== 2 && (ac[m * c.K + 5]! & 0x7f) === 0) ac[m * c.K + 5] = 0x38;
    const as = scales(c.sa, c.M, c.K);
    const bs = scales(c.sb, c.N, c.K);
    const got = runReference(c, 'gemm', ac, as, bc, bs);
    const wantd = want(c.M, c.N, c.K, (m, k) => valueOf('e4m3', ac[m * c.K + k]!) * as.at(m, k), (n, k) => valueOf('e5m2', bc[n * c.K + k]!) * bs.at(n, k), 'f32');
    expect(firstDiff(got, wantd)).toBe(-1);
    for (let n = 0; n < c.N; n++) expect(Number.isNaN(got[2 * c.N + n]!)).toBe(true);
    for (let m = 0; m < c.M; m++) if (m !== 2) expect(Math.abs(got[m * c.N + 3]!)).toBe(Infinity);
  });
});

describe('scaled_matmul in the IR', () => {
  const M = 9;
  const N = 6;
  const K = 128;
  const build = () => {
    const b = new GraphBuilder();
    return { b, a: b.input('a', [M, K], 'f8e4m3'), w: b.input('w', [N, K], 'f8e4m3') };
  };

  it('runs in the reference interpreter on FP8 graph inputs bound as codes, equal to the reference', () => {
    const b = new GraphBuilder();
    const a = b.input('a', [M, K], 'f8e4m3');
    const sa = b.input('sa', [K / 128, M], 'f32');
    const w = b.input('w', [N, K], 'f8e5m2');
    const sw = b.input('sw', [K / 128, N], 'f32');
    const d = b.op1('scaled_matmul', [a, sa, w, sw], { aScaling: 'block1x128', bScaling: 'block1x128', scaleLayout: 'gemm', outDtype: 'bf16' });
    expect(d.type).toEqual({ shape: [M, N], dtype: 'bf16' });
    b.output('d', d);
    const ac = codes('e4m3', M * K);
    const wc = codes('e5m2', N * K);
    const as = scales('block1x128', M, K);
    const ws = scales('block1x128', N, K);
    const vals = interpret(b.graph, { a: Float32Array.from(ac), sa: as.packed.gemm.data, w: Float32Array.from(wc), sw: ws.packed.gemm.data });
    const wantd = want(M, N, K, (m, k) => valueOf('e4m3', ac[m * K + k]!) * as.at(m, k), (n, k) => valueOf('e5m2', wc[n * K + k]!) * ws.at(n, k), 'bf16');
    expect(firstDiff(vals[d.id]!, wantd)).toBe(-1);
    expect(getOp('scaled_matmul').flops!(b.graph.nodes[0]!.inputs.map((i) => b.graph.values[i]!.type), [d.type], {})).toBe(2 * M * N * K);
    // The registry's CPU candidate (the reference for f32 / bf16 / f16 / i32 storage) declines FP8
    // codes: a compiled CPU step cannot hold them, so scaledMatmul calls the reference directly.
    const explained = registry.explain('scaled_matmul', { op: 'scaled_matmul', device: 'cpu', inTypes: [a, sa, w, sw].map((s) => s.type), outTypes: [d.type], attrs: {} });
    expect(explained.selected).toBeNull();
    expect(explained.text).toMatch(/scaled_matmul_reference.*not f8e4m3/);
    expect(explained.text).toMatch(/scaled_matmul_cublaslt.*runs on CUDA, not cpu/);
  });

  it('has no gradient rule: autodiff passes over it on data inputs and refuses it on a differentiable path', () => {
    // Data operands (graph inputs): the loss's dependence on the parameter does not go through it.
    const g = build();
    const d = g.b.op1('scaled_matmul', [g.a, g.b.input('sa1', [1], 'f32'), g.w, g.b.input('sw1', [1], 'f32')], { aScaling: 'tensor', bScaling: 'tensor', scaleLayout: 'plain', outDtype: 'f32' });
    const p = g.b.param('p', [M, N], 'f32', { dist: 'zeros' });
    const loss = g.b.op1('reshape', [sum(mul(d, p))], { shape: [1] });
    const grads = differentiate(g.b.graph, loss.id, [p.id]);
    expect(grads.get(p.id)).toBeTypeOf('number');
    // A parameter feeding a scale: the path to it goes through scaled_matmul, which has no rule.
    const h = build();
    const s = h.b.param('s', [1], 'f32', { dist: 'zeros' });
    const d2 = h.b.op1('scaled_matmul', [h.a, s, h.w, h.b.input('sw1', [1], 'f32')], { aScaling: 'tensor', bScaling: 'tensor', scaleLayout: 'plain', outDtype: 'f32' });
    const loss2 = h.b.op1('reshape', [sum(d2)], { shape: [1] });
    const e = errorOf(() => differentiate(h.b.graph, loss2.id, [s.id]));
    expect(e.message).toMatch(/\(scaled_matmul\) has no gradient rule/);
    expect(getOp('scaled_matmul').nonDifferentiable).toBeFalsy();
    expect(getOp('scaled_matmul').gradient).toBeUndefined();
  });
});

// ---- scaledMatmul on quantizeTensor results ------------------------------------------------------

const randMatrix = (n: number) => Float32Array.from({ length: n }, () => Math.fround(normal() * 2 ** (Math.random() * 6 - 3)));

/**
 * A rowwise QuantizedTensor's values in float64, from its codes and its plain-layout scales as
 * layout.ts and quantize.ts define them (scales [R, K/128], [R/128, K/128], or the tensor's one).
 */
function dequantized64(q: QuantizedTensor): Float64Array {
  const c = q.rowwise!.data.toHost() as Uint8Array;
  const f: Fp8 = q.format === 'fp8-e5m2' ? 'e5m2' : 'e4m3';
  const [R, C] = [q.rows, q.cols];
  const s = (q.format.startsWith('fp8-block') ? q.rowwise!.scales! : q.globalScale!).toHost() as Float32Array;
  const at = q.format === 'fp8-block1x128' ? (r: number, k: number) => s[r * (C / 128) + Math.floor(k / 128)]! : q.format === 'fp8-block128x128' ? (r: number, k: number) => s[Math.floor(r / 128) * (C / 128) + Math.floor(k / 128)]! : () => s[0]!;
  return Float64Array.from({ length: R * C }, (_, i) => valueOf(f, c[i]!) * at(Math.floor(i / C), i % C));
}

/** A blockwise result with its scales moved into the 'gemm' layout by hand (128 × 128 padding NaN). */
function toGemmLayout(q: QuantizedTensor): QuantizedTensor {
  if (!q.format.startsWith('fp8-block')) return q;
  const { data, shape } = gemmLayoutScales(q);
  const scales = Tensor.from(data, shape, 'f32');
  return { ...q, scaleLayout: 'gemm', rowwise: { data: q.rowwise!.data, scales }, dispose: () => scales.dispose() };
}


const PAIRS: [string, string, number, number, number][] = [
  ['fp8-e4m3', 'fp8-e4m3', 45, 23, 72],
  ['fp8-e5m2', 'fp8-e4m3', 33, 40, 96],
  ['fp8-e4m3', 'fp8-e5m2', 17, 9, 16],
  ['fp8-block1x128', 'fp8-block1x128', 37, 29, 256],
  ['fp8-block1x128', 'fp8-block128x128', 21, 256, 384],
  ['fp8-block128x128', 'fp8-block1x128', 128, 19, 256],
];

describe('scaledMatmul on the CPU', () => {
  it.each(PAIRS.map((p) => [`${p[0]} · ${p[1]}ᵀ, ${p[2]}x${p[3]}x${p[4]}`, p] as const))(
    'equals dequantize-then-matmul in float64, rounded once, in both layouts: %s',
    (_name, [fa, fb, M, N, K]) => {
      const x = randMatrix(M * K);
      const w = randMatrix(N * K);
      const qa = quantizeTensor(Tensor.from(x, [M, K]), { format: fa as never });
      const qb = quantizeTensor(Tensor.from(w, [N, K]), { format: fb as never });
      const A = dequantized64(qa);
      const B = dequantized64(qb);
      // This file reads the codes and scales as quantizeTensor defines them.
      expect(firstDiff(A.map(Math.fround), dequantizeTensor(qa).toHost() as Float32Array)).toBe(-1);
      expect(firstDiff(B.map(Math.fround), dequantizeTensor(qb).toHost() as Float32Array)).toBe(-1);
      const ga = toGemmLayout(qa);
      const gb = toGemmLayout(qb);
      for (const out of ['bf16', 'f32'] as const) {
        const wantd = want(M, N, K, (m, k) => A[m * K + k]!, (n, k) => B[n * K + k]!, out);
        const d = scaledMatmul(qa, qb, { outDtype: out });
        expect([d.shape, d.dtype, d.device]).toEqual([[M, N], out, 'cpu']);
        expect(firstDiff(valuesOf(d), wantd), `${out}, plain`).toBe(-1);
        expect(firstDiff(valuesOf(scaledMatmul(ga, gb, { outDtype: out })), wantd), `${out}, gemm`).toBe(-1);
        // And it is the product it stands for: x · wᵀ within FP8's error.
        expect(productError(wantd, x, w, M, N, K)).toBeLessThan(fa.endsWith('e5m2') || fb.endsWith('e5m2') ? 0.15 : 0.08);
      }
      expect(scaledMatmul(qa, qb).dtype).toBe('bf16');
      for (const q of [qa, qb, ga, gb]) q.dispose();
    },
  );

  it("reads quantizeTensor's own 'gemm' layout as this file lays it out", () => {
    for (const [fa, fb, M, N, K] of PAIRS.filter(([f]) => f.startsWith('fp8-block'))) {
      const x = Tensor.from(randMatrix(M * K), [M, K]);
      const w = Tensor.from(randMatrix(N * K), [N, K]);
      const [pa, pb] = [quantizeTensor(x, { format: fa as never }), quantizeTensor(w, { format: fb as never })];
      const [qa, qb] = [quantizeTensor(x, { format: fa as never, scaleLayout: 'gemm' }), quantizeTensor(w, { format: fb as never, scaleLayout: 'gemm' })];
      for (const [mine, theirs] of [[toGemmLayout(pa), qa], [toGemmLayout(pb), qb]] as const) {
        const a = mine.rowwise!.scales!;
        const b = theirs.rowwise!.scales!;
        expect(b.shape).toEqual(a.shape);
        const [sa, sb] = [a.toHost() as Float32Array, b.toHost() as Float32Array];
        expect(firstDiff(sb.map((v, i) => (Number.isNaN(sa[i]!) ? NaN : v)), sa), 'scales outside the padding').toBe(-1);
        expect(firstDiff(theirs.rowwise!.data.toHost() as Uint8Array, mine.rowwise!.data.toHost() as Uint8Array)).toBe(-1);
      }
      expect(firstDiff(valuesOf(scaledMatmul(qa, qb, { outDtype: 'f32' })), valuesOf(scaledMatmul(pa, pb, { outDtype: 'f32' })))).toBe(-1);
    }
  });
});

// ---- errors --------------------------------------------------------------------------------------

describe('scaled_matmul and scaledMatmul: bad input', () => {
  const op = getOp('scaled_matmul');
  const t = (shape: number[], dtype: string): ValueType => ({ shape, dtype: dtype as ValueType['dtype'] });
  const base = { aScaling: 'tensor', bScaling: 'tensor', scaleLayout: 'plain', outDtype: 'bf16', fastAccum: false };
  const infer = (types: ValueType[], attrs: Record<string, unknown> = {}) => () => op.infer(types, { ...base, ...attrs } as never);
  const [a, b, one] = [t([4, 128], 'f8e4m3'), t([8, 128], 'f8e4m3'), t([1], 'f32')];

  it('gives the op typed errors naming the argument', () => {
    const cases: [string, () => unknown, string, RegExp][] = [
      ['a not FP8', infer([t([4, 128], 'f32'), one, b, one]), 'INVALID_DTYPE', /^scaled_matmul: Expected f8e4m3 or f8e5m2 codes for input 'a' but received f32\[4, 128\]$/],
      ['b of rank 3', infer([a, one, t([2, 8, 128], 'f8e4m3'), one]), 'SHAPE_MISMATCH', /Expected a rank-2 tensor \(\[rows, K\], K contiguous\) for input 'b' but received f8e4m3\[2, 8, 128\]/],
      ['K differs', infer([a, one, t([8, 64], 'f8e4m3'), one]), 'SHAPE_MISMATCH', /Expected input 'b' with K = 128 columns \(a's\) but received f8e4m3\[8, 64\]/],
      ['a scale not f32', infer([a, t([1], 'bf16'), b, one]), 'INVALID_DTYPE', /Expected f32 for input 'aScale' but received bf16\[1\]/],
      ['a tensor scale of 2', infer([a, one, b, t([2], 'f32')]), 'SHAPE_MISMATCH', /Expected f32\[1\] for input 'bScale' \(tensor scaling, scaleLayout 'plain', 8 rows, K = 128\) but received f32\[2\]/],
      ['row scales of the wrong length', infer([a, t([4], 'f32'), b, t([4], 'f32')], { aScaling: 'row', bScaling: 'row' }), 'SHAPE_MISMATCH', /Expected f32\[8\] for input 'bScale' \(row scaling/],
      [
        "1 × 128 scales in the 'gemm' layout, called 'plain'",
        infer([t([4, 256], 'f8e4m3'), t([2, 4], 'f32'), t([8, 256], 'f8e4m3'), t([8, 2], 'f32')], { aScaling: 'block1x128', bScaling: 'block1x128' }),
        'SHAPE_MISMATCH',
        /Expected f32\[4, 2\] for input 'aScale' \(block1x128 scaling, scaleLayout 'plain', 4 rows, K = 256\) \(the 'gemm' layout would be \[2, 4\]\) but received f32\[2, 4\]/,
      ],
      [
        "128 × 128 scales in the 'plain' layout, called 'gemm'",
        infer([t([4, 640], 'f8e4m3'), t([5, 4], 'f32'), t([256, 640], 'f8e4m3'), t([2, 5], 'f32')], { aScaling: 'block1x128', bScaling: 'block128x128', scaleLayout: 'gemm' }),
        'SHAPE_MISMATCH',
        /Expected f32\[2, 8\] for input 'bScale' \(block128x128 scaling, scaleLayout 'gemm', 256 rows, K = 640\) \(the 'plain' layout would be \[2, 5\]\) but received f32\[2, 5\]/,
      ],
      ['K not whole blocks', infer([t([4, 200], 'f8e4m3'), t([4, 2], 'f32'), t([8, 200], 'f8e4m3'), t([8, 2], 'f32')], { aScaling: 'block1x128', bScaling: 'block1x128' }), 'SHAPE_MISMATCH', /Expected K a whole number of 128-element blocks with block1x128 \/ block1x128 scaling but received K = 200/],
      ['tensor × row', infer([a, one, b, t([8], 'f32')], { bScaling: 'row' }), 'INVALID_ARGUMENT', /Expected \(aScaling, bScaling\) of \(tensor, tensor\), .* but received \(tensor, row\)$/],
      ['128 × 128 × 128 × 128', infer([t([128, 128], 'f8e4m3'), t([1, 1], 'f32'), t([128, 128], 'f8e4m3'), t([1, 1], 'f32')], { aScaling: 'block128x128', bScaling: 'block128x128' }), 'INVALID_ARGUMENT', /but received \(block128x128, block128x128\)/],
      ['e5m2 × e5m2', infer([t([4, 128], 'f8e5m2'), one, t([8, 128], 'f8e5m2'), one]), 'INVALID_DTYPE', /Expected at most one f8e5m2 operand .* but received f8e5m2 for both 'a' and 'b'/],
      ['fastAccum with blocks', infer([t([4, 128], 'f8e4m3'), t([4, 1], 'f32'), b, t([8, 1], 'f32')], { aScaling: 'block1x128', bScaling: 'block1x128', fastAccum: true }), 'INVALID_ARGUMENT', /Expected fastAccum false with block scaling .* but received true/],
      ['an unknown scaling', infer([a, one, b, one], { aScaling: 'column' }), 'INVALID_ARGUMENT', /Expected one of 'tensor', 'row', 'block1x128', 'block128x128', 'mx32', 'nv16' for attribute 'aScaling' but received "column"/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const e = errorOf(fn);
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(msg);
    }
    const g = new GraphBuilder();
    const ins = [g.input('a', [4, 128], 'f8e4m3'), g.input('sa', [1]), g.input('b', [8, 128], 'f8e4m3'), g.input('sb', [1])];
    const viaBuilder = (attrs: Record<string, string>) => errorOf(() => g.op1('scaled_matmul', ins, { aScaling: 'tensor', bScaling: 'tensor', scaleLayout: 'plain', outDtype: 'bf16', ...attrs }));
    expect(viaBuilder({ outDtype: 'f16' }).message).toMatch(/\(scaled_matmul\): Expected one of 'bf16', 'f32' for attribute 'outDtype' of scaled_matmul but received "f16"$/);
    expect(viaBuilder({ scaleLayout: 'tiled128x4' }).code).toBe('INVALID_ARGUMENT');
    // The reference takes codes: a value that is not one is refused, naming where.
    const bad = Float32Array.from({ length: 4 * 128 }, (_, i) => (i === 1 ? 1.5 : 0x38));
    const e = errorOf(() => op.reference({ inputs: [bad, Float32Array.of(1), new Float32Array(8 * 128), Float32Array.of(1)], outputs: [new Float32Array(32)], inTypes: [a, one, b, one], outTypes: [t([4, 8], 'bf16')], attrs: base as never }));
    expect(e.message).toMatch(/^scaled_matmul: Expected FP8 codes \(integers 0 to 255: .*\) in input 'a' but received 1.5 at element \(0, 1\)$/);
  });

  it('gives scaledMatmul typed errors before anything runs', () => {
    const x = (r: number, c: number) => Tensor.from(randMatrix(r * c), [r, c]);
    const q = (r: number, c: number, format: string, extra: object = {}) => quantizeTensor(x(r, c), { format: format as never, ...extra });
    const e4 = q(4, 128, 'fp8-e4m3');
    const e5 = q(8, 128, 'fp8-e5m2');
    const b1 = q(8, 128, 'fp8-block1x128');
    const b128 = q(128, 128, 'fp8-block128x128');
    const cases: [string, () => unknown, string, RegExp][] = [
      ['a Tensor for a', () => scaledMatmul(x(4, 128) as never, e4), 'INVALID_ARGUMENT', /^scaledMatmul: Expected a QuantizedTensor from quantizeTensor for a but received/],
      ['an MXFP4 operand', () => scaledMatmul(e4, q(8, 128, 'mxfp4')), 'INVALID_ARGUMENT', /Expected an FP8, MXFP8 or NVFP4 format \(fp8-e4m3, fp8-e5m2, fp8-block1x128, fp8-block128x128, mxfp8-e4m3, mxfp8-e5m2, nvfp4\) for b but received 'mxfp4' \(scaled_matmul has no MXFP4 GEMM\)/],
      ['tensorwise × MXFP8', () => scaledMatmul(e4, q(8, 128, 'mxfp8-e4m3')), 'INVALID_ARGUMENT', /Expected tensorwise FP8 with tensorwise FP8 .* but received fp8-e4m3 and mxfp8-e4m3/],
      ['columnwise only', () => scaledMatmul(q(32, 128, 'fp8-e4m3', { direction: 'columnwise' }), e4), 'INVALID_ARGUMENT', /Expected a rowwise part for a .* but received a columnwise part only/],
      ['K differs', () => scaledMatmul(e4, q(8, 64, 'fp8-e4m3')), 'SHAPE_MISMATCH', /Expected b with K = 128 columns \(a's: d = a · bᵀ\) but received 8 × 64/],
      ['tensorwise × blockwise', () => scaledMatmul(e4, b1), 'INVALID_ARGUMENT', /Expected tensorwise FP8 with tensorwise FP8 .* but received fp8-e4m3 and fp8-block1x128/],
      ['128 × 128 both', () => scaledMatmul(b128, b128), 'INVALID_ARGUMENT', /Expected at most one of a and b in 128 × 128 blocks .* but received fp8-block128x128 and fp8-block128x128/],
      ['e5m2 × e5m2', () => scaledMatmul(e5, e5), 'INVALID_DTYPE', /at most one f8e5m2 operand/],
      ['mismatched scale layouts', () => scaledMatmul(b1, toGemmLayout(b128)), 'INVALID_ARGUMENT', /Expected a and b in one scale layout but received 'plain' \(a\) and 'gemm' \(b\)/],
      ['a layout quantizeTensor never gives FP8', () => scaledMatmul({ ...b1, scaleLayout: 'tiled128x4' }, b1), 'INVALID_ARGUMENT', /Expected scaleLayout 'plain' or 'gemm' for a \(fp8-block1x128\) but received "tiled128x4"/],
      ['scales of the wrong shape', () => scaledMatmul({ ...b1, rowwise: { data: b1.rowwise!.data, scales: Tensor.from(new Float32Array(8), [1, 8]) } }, b1), 'SHAPE_MISMATCH', /Expected f32\[8, 1\] for input 'aScale' \(block1x128 scaling, scaleLayout 'plain'/],
      ['outDtype f16', () => scaledMatmul(e4, e4, { outDtype: 'f16' as never }), 'INVALID_ARGUMENT', /^scaledMatmul: Expected outDtype 'bf16' or 'f32' but received "f16"$/],
      ['an unknown option', () => scaledMatmul(e4, e4, { transB: true } as never), 'INVALID_ARGUMENT', /Expected one of outDtype, fastAccum for an option but received "transB"/],
      ['fastAccum not a boolean', () => scaledMatmul(e4, e4, { fastAccum: 1 as never }), 'INVALID_ARGUMENT', /Expected a boolean for fastAccum but received 1/],
      ['fastAccum with blocks', () => scaledMatmul(b1, b1, { fastAccum: true }), 'INVALID_ARGUMENT', /Expected fastAccum false with block scaling/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const e = errorOf(fn);
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(msg);
    }
    // fastAccum is a GPU hint; the CPU result is the exact one either way.
    expect(firstDiff(valuesOf(scaledMatmul(e4, e5, { fastAccum: true })), valuesOf(scaledMatmul(e4, e5)))).toBe(-1);
  });
});

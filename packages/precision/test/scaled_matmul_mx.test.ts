// scaled_matmul's block-scaled modes on the CPU: mx32 (MXFP8: E8M0 scale codes per 32 of K) and
// nv16 (NVFP4: unsigned E4M3 scale codes per 16 of K, E2M1 elements, an FP32 scale per tensor).
// Fresh random inputs every run, every output element checked:
//   - the reference against this file's own float64 computation from quantize2d's codes and scales
//     (elements and scales decoded from their formulas, not the package's codecs; summed in
//     ascending k, times aGlobal · bGlobal for NVFP4, rounded once by a nearest-value search), bit
//     for bit, on odd shapes, in both scale layouts, with the 128 × 4 tiles' padding poisoned (NaN
//     codes); this file's values also equal dequantize2d's, so it reads the codes as layout.ts
//     defines them;
//   - the same through the IR (nv16 takes six inputs) and through scaledMatmul on quantizeTensor
//     results, 'plain' and 'tiled128x4';
//   - every bad input gives its typed error and message, and the CUDA candidate's limits.
// The GPU side (declines below compute capability 10; the Blackwell run, compiled and never run) is
// in scaled_matmul_gpu.test.ts.
import { Tensor, bf16BitsToF32, f32ToBf16Bits, packNibbles, unpackNibbles } from '@deepwell/core';
import { GraphBuilder, getOp, interpret, type NumArray, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { dequantize2d, quantize2d, quantizeTensor, scaleIndex, scaleShape, scaledGemmLimits, scaledMatmul, tileScales128x4, untileScales128x4, type QuantizedTensor } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { firstDiff, nearestBf16, productError, valuesOf } from './fp8.js';

type Elem = 'e4m3' | 'e5m2' | 'e2m1';
type Mx = 'mxfp8-e4m3' | 'mxfp8-e5m2' | 'nvfp4';

const normal = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
const randMatrix = (n: number) => Float32Array.from({ length: n }, () => Math.fround(normal() * 2 ** (Math.random() * 6 - 3)));

/** The value of an element code, from the format's formula. */
function valueOf(f: Elem, c: number): number {
  const [bits, eb, mb, bias] = f === 'e4m3' ? [8, 4, 3, 7] : f === 'e5m2' ? [8, 5, 2, 15] : [4, 2, 1, 1];
  const s = (c >> (bits - 1)) & 1 ? -1 : 1;
  const e = (c >> mb) & ((1 << eb) - 1);
  const m = c & ((1 << mb) - 1);
  if (f === 'e4m3' && e === 15 && m === 7) return NaN;
  if (f === 'e5m2' && e === 31) return m === 0 ? s * Infinity : NaN;
  return e === 0 ? s * m * 2 ** (1 - bias - mb) : s * (1 + m / 2 ** mb) * 2 ** (e - bias);
}
/** A scale code's value: E8M0 (MXFP8) 2^(c − 127), 0xFF NaN; unsigned E4M3 (NVFP4). */
const scaleOf = (f: Mx, c: number) => (f === 'nvfp4' ? valueOf('e4m3', c & 0x7f) : c === 0xff ? NaN : 2 ** (c - 127));
const elemOf = (f: Mx): Elem => (f === 'nvfp4' ? 'e2m1' : f === 'mxfp8-e5m2' ? 'e5m2' : 'e4m3');
const blockOf = (f: Mx) => (f === 'nvfp4' ? 16 : 32);
const scalingOf = (f: Mx) => (f === 'nvfp4' ? 'nv16' : 'mx32');
const dtypeOf = (f: Mx) => (f === 'nvfp4' ? 'f4e2m1' : f === 'mxfp8-e5m2' ? 'f8e5m2' : 'f8e4m3');



/** One operand, quantized rowwise by quantize2d, in the op's CPU form, and its values as this file reads them. */
interface Operand {
  /** Element codes, one per element (E2M1 unpacked). */
  codes: Float32Array;
  /** Scale codes in each layout: plain [R, n]; gemm the 128 × 4 tiles with their padding poisoned. */
  scales: { plain: Float32Array; gemm: Float32Array };
  global: number;
  /** Element (r, k)'s value without the tensor scale: code · block scale (exact). */
  values: Float64Array;
}

function operand(f: Mx, R: number, K: number): Operand {
  const x = randMatrix(R * K);
  const q = quantize2d(x, R, K, { format: f });
  const n = K / blockOf(f);
  const codes = f === 'nvfp4' ? unpackNibbles(q.data) : q.data;
  const sc = q.scales as Uint8Array;
  // The 128 × 4 tiles by hand (512-byte tiles, row-tile major; row r, column c of a tile at
  // (r mod 32) · 16 + floor(r / 32) · 4 + c), the padding NaN codes; layout.ts must agree.
  const tiled = tileScales128x4(sc, R, n);
  const poisoned = Float32Array.from(tiled, () => (f === 'nvfp4' ? 0x7f : 0xff));
  const at = (r: number, c: number) => (Math.floor(r / 128) * Math.ceil(n / 4) + Math.floor(c / 4)) * 512 + ((r % 128) % 32) * 16 + Math.floor((r % 128) / 32) * 4 + (c % 4);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < n; c++) {
      poisoned[at(r, c)] = sc[r * n + c]!;
      expect(tiled[at(r, c)]).toBe(sc[r * n + c]);
      expect(scaleIndex(scalingOf(f), 'gemm', R, K)(r, c * blockOf(f) + blockOf(f) - 1)).toBe(at(r, c));
    }
  expect(untileScales128x4(Uint8Array.from(poisoned), R, n)).toEqual(sc);
  const values = Float64Array.from({ length: R * K }, (_, i) => valueOf(elemOf(f), codes[i]!) * scaleOf(f, sc[Math.floor(i / K) * n + Math.floor((i % K) / blockOf(f))]!));
  const global = q.globalScale ?? 1;
  // This file reads the codes as layout.ts defines them: its values times g are dequantize2d's.
  expect(firstDiff(values.map((v) => Math.fround(v * global)), dequantize2d(q))).toBe(-1);
  return { codes: Float32Array.from(codes), scales: { plain: Float32Array.from(sc), gemm: poisoned }, global, values };
}

/** g · Σ_k A(m, k) · B(n, k), ascending k, rounded once. */
function want(M: number, N: number, K: number, A: Operand, B: Operand, g: number, out: 'bf16' | 'f32'): Float64Array {
  const round = out === 'f32' ? Math.fround : nearestBf16;
  const d = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A.values[m * K + k]! * B.values[n * K + k]!;
      d[m * N + n] = round(s * g);
    }
  return d;
}

interface Case {
  M: number;
  N: number;
  K: number;
  a: Mx;
  b: Mx;
  out: 'bf16' | 'f32';
}

const CASES: Case[] = [
  { M: 37, N: 23, K: 64, a: 'mxfp8-e4m3', b: 'mxfp8-e4m3', out: 'bf16' },
  { M: 1, N: 1, K: 32, a: 'mxfp8-e4m3', b: 'mxfp8-e5m2', out: 'f32' },
  { M: 131, N: 19, K: 160, a: 'mxfp8-e5m2', b: 'mxfp8-e4m3', out: 'f32' }, // n = 5: a padded tile column; 2 row tiles
  { M: 9, N: 257, K: 96, a: 'mxfp8-e4m3', b: 'mxfp8-e4m3', out: 'bf16' },
  { M: 33, N: 21, K: 48, a: 'nvfp4', b: 'nvfp4', out: 'bf16' }, // K a whole number of 16s, not of 32s
  { M: 129, N: 7, K: 160, a: 'nvfp4', b: 'nvfp4', out: 'f32' }, // n = 10
  { M: 5, N: 133, K: 256, a: 'nvfp4', b: 'nvfp4', out: 'bf16' },
];

function inTypesOf(c: Case, layout: 'plain' | 'gemm'): ValueType[] {
  const t: ValueType[] = [
    { shape: [c.M, c.K], dtype: dtypeOf(c.a) },
    { shape: scaleShape(scalingOf(c.a), layout, c.M, c.K), dtype: c.a === 'nvfp4' ? 'f8e4m3' : 'e8m0' },
    { shape: [c.N, c.K], dtype: dtypeOf(c.b) },
    { shape: scaleShape(scalingOf(c.b), layout, c.N, c.K), dtype: c.b === 'nvfp4' ? 'f8e4m3' : 'e8m0' },
  ];
  return c.a === 'nvfp4' ? [...t, { shape: [1], dtype: 'f32' }, { shape: [1], dtype: 'f32' }] : t;
}

describe('scaled_matmul mx32 / nv16: the reference', () => {
  it.each(CASES.map((c) => [`${c.M}x${c.N}x${c.K} ${c.a}·${c.b} → ${c.out}`, c] as const))('equals an independent float64 computation bit for bit, in both scale layouts: %s', (_name, c) => {
    const op = getOp('scaled_matmul');
    const A = operand(c.a, c.M, c.K);
    const B = operand(c.b, c.N, c.K);
    const g = c.a === 'nvfp4' ? A.global * B.global : 1;
    const wantd = want(c.M, c.N, c.K, A, B, g, c.out);
    expect(wantd.every(Number.isFinite), 'a finite result (no padding read)').toBe(true);
    expect(wantd.some((v) => v !== 0), 'not all zero').toBe(true);
    for (const layout of ['plain', 'gemm'] as const) {
      const attrs = { aScaling: scalingOf(c.a), bScaling: scalingOf(c.b), scaleLayout: layout, outDtype: c.out, fastAccum: false };
      const inTypes = inTypesOf(c, layout);
      const outTypes = op.infer(inTypes, attrs);
      expect(outTypes).toEqual([{ shape: [c.M, c.N], dtype: c.out }]);
      const globals = c.a === 'nvfp4' ? [Float32Array.of(A.global), Float32Array.of(B.global)] : [];
      const d = new Float64Array(c.M * c.N).fill(NaN);
      op.reference({ inputs: [A.codes, A.scales[layout], B.codes, B.scales[layout], ...globals], outputs: [d], inTypes, outTypes, attrs });
      expect(firstDiff(d, wantd), `${layout}: first differing element`).toBe(-1);
    }
  });

  it('gives NaN where a NaN scale code is read, and nowhere else', () => {
    const c: Case = { M: 6, N: 5, K: 64, a: 'mxfp8-e4m3', b: 'mxfp8-e4m3', out: 'f32' };
    const A = operand(c.a, c.M, c.K);
    const B = operand(c.b, c.N, c.K);
    A.scales.plain[2 * 2 + 1] = 0xff; // row 2, second block of 32
    const op = getOp('scaled_matmul');
    const attrs = { aScaling: 'mx32', bScaling: 'mx32', scaleLayout: 'plain', outDtype: 'f32' };
    const d = new Float64Array(c.M * c.N);
    op.reference({ inputs: [A.codes, A.scales.plain, B.codes, B.scales.plain], outputs: [d], inTypes: inTypesOf(c, 'plain'), outTypes: [{ shape: [c.M, c.N], dtype: 'f32' }], attrs });
    for (let m = 0; m < c.M; m++) for (let n = 0; n < c.N; n++) expect(Number.isNaN(d[m * c.N + n]!), `(${m}, ${n})`).toBe(m === 2);
  });

  it('runs in the reference interpreter: nv16 with its six inputs', () => {
    const [M, N, K] = [7, 5, 64];
    const b = new GraphBuilder();
    const ins = [b.input('a', [M, K], 'f4e2m1'), b.input('sa', [1, 512], 'f8e4m3'), b.input('w', [N, K], 'f4e2m1'), b.input('sw', [1, 512], 'f8e4m3'), b.input('ga', [1]), b.input('gw', [1])];
    const d = b.op1('scaled_matmul', ins, { aScaling: 'nv16', bScaling: 'nv16', scaleLayout: 'gemm', outDtype: 'bf16' });
    expect(d.type).toEqual({ shape: [M, N], dtype: 'bf16' });
    b.output('d', d);
    const A = operand('nvfp4', M, K);
    const W = operand('nvfp4', N, K);
    const vals = interpret(b.graph, { a: A.codes, sa: A.scales.gemm, w: W.codes, sw: W.scales.gemm, ga: Float32Array.of(A.global), gw: Float32Array.of(W.global) });
    expect(firstDiff(vals[d.id]!, want(M, N, K, A, W, A.global * W.global, 'bf16'))).toBe(-1);
    const e = errorOf(() => b.op1('scaled_matmul', ins.slice(0, 4), { aScaling: 'nv16', bScaling: 'nv16', scaleLayout: 'gemm', outDtype: 'bf16' }));
    expect(e.message).toMatch(/Expected 6 inputs \(a, aScale, b, bScale, aGlobal, bGlobal: NVFP4 has a tensor scale per operand\) with nv16 scaling but received 4/);
  });
});

// ---- scaledMatmul on quantizeTensor results ------------------------------------------------------


/** A rowwise QuantizedTensor's value (r, k) in float64, from its codes and plain scales (g included). */
function dequantized64(q: QuantizedTensor): Float64Array {
  const f = q.format as Mx;
  const raw = q.rowwise!.data.toHost() as Uint8Array;
  const codes = f === 'nvfp4' ? unpackNibbles(raw) : raw;
  const sc = q.rowwise!.scales!.toHost() as Uint8Array;
  const n = q.cols / blockOf(f);
  const g = q.globalScale ? (q.globalScale.toHost() as Float32Array)[0]! : 1;
  return Float64Array.from({ length: q.rows * q.cols }, (_, i) => valueOf(elemOf(f), codes[i]!) * scaleOf(f, sc[Math.floor(i / q.cols) * n + Math.floor((i % q.cols) / blockOf(f))]!) * g);
}

describe('scaledMatmul on MXFP8 and NVFP4 on the CPU', () => {
  const PAIRS: [Mx, Mx, number, number, number, number][] = [
    ['mxfp8-e4m3', 'mxfp8-e4m3', 45, 23, 96, 0.08],
    ['mxfp8-e5m2', 'mxfp8-e4m3', 33, 40, 64, 0.12],
    ['nvfp4', 'nvfp4', 37, 29, 160, 0.2],
  ];
  it.each(PAIRS.map((p) => [`${p[0]} · ${p[1]}ᵀ, ${p[2]}x${p[3]}x${p[4]}`, p] as const))('equals dequantize-then-matmul in float64, rounded once, plain and tiled128x4: %s', (_name, [fa, fb, M, N, K, tol]) => {
    const x = randMatrix(M * K);
    const w = randMatrix(N * K);
    const pa = quantizeTensor(Tensor.from(x, [M, K]), { format: fa });
    const pb = quantizeTensor(Tensor.from(w, [N, K]), { format: fb });
    const ta = quantizeTensor(Tensor.from(x, [M, K]), { format: fa, scaleLayout: 'tiled128x4' });
    const tb = quantizeTensor(Tensor.from(w, [N, K]), { format: fb, scaleLayout: 'tiled128x4' });
    const [A, B] = [dequantized64(pa), dequantized64(pb)];
    for (const out of ['bf16', 'f32'] as const) {
      const round = out === 'f32' ? Math.fround : nearestBf16;
      // NVFP4: g multiplies the sum, so sum the g-free values and scale once, as the reference does.
      const [ga, gb] = [pa, pb].map((q) => (q.globalScale ? (q.globalScale.toHost() as Float32Array)[0]! : 1)) as [number, number];
      const wantd = new Float64Array(M * N);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += (A[m * K + k]! / ga) * (B[n * K + k]! / gb);
          wantd[m * N + n] = round(s * (ga * gb));
        }
      const d = scaledMatmul(pa, pb, { outDtype: out });
      expect([d.shape, d.dtype, d.device]).toEqual([[M, N], out, 'cpu']);
      expect(firstDiff(valuesOf(d), wantd), `${out}, plain`).toBe(-1);
      expect(firstDiff(valuesOf(scaledMatmul(ta, tb, { outDtype: out })), wantd), `${out}, tiled128x4`).toBe(-1);
      // And it is the product it stands for: x · wᵀ within the format's error.
      expect(productError(wantd, x, w, M, N, K)).toBeLessThan(tol);
    }
    for (const q of [pa, pb, ta, tb]) q.dispose();
  });
});

// ---- errors --------------------------------------------------------------------------------------

describe('scaled_matmul mx32 / nv16 and scaledMatmul: bad input', () => {
  const op = getOp('scaled_matmul');
  const t = (shape: number[], dtype: string): ValueType => ({ shape, dtype: dtype as ValueType['dtype'] });
  const mx = { aScaling: 'mx32', bScaling: 'mx32', scaleLayout: 'gemm', outDtype: 'bf16', fastAccum: false };
  const nv = { ...mx, aScaling: 'nv16', bScaling: 'nv16' };
  const infer = (types: ValueType[], attrs: Record<string, unknown>) => () => op.infer(types, attrs as never);
  const [a8, b8, s8] = [t([4, 64], 'f8e4m3'), t([8, 64], 'f8e4m3'), t([1, 512], 'e8m0')];
  const [a4, b4, s4, g] = [t([4, 64], 'f4e2m1'), t([8, 64], 'f4e2m1'), t([1, 512], 'f8e4m3'), t([1], 'f32')];

  it('gives the op typed errors naming the argument', () => {
    const cases: [string, () => unknown, string, RegExp][] = [
      ['mx32 × nv16', infer([a8, s8, b4, s4], { ...mx, bScaling: 'nv16' }), 'INVALID_ARGUMENT', /Expected \(aScaling, bScaling\) of .*\(mx32, mx32\) or \(nv16, nv16\) but received \(mx32, nv16\)$/],
      ['mx32 × tensor', infer([a8, s8, b8, t([1], 'f32')], { ...mx, bScaling: 'tensor' }), 'INVALID_ARGUMENT', /but received \(mx32, tensor\)$/],
      ['FP4 codes with mx32', infer([a4, s8, b8, s8], mx), 'INVALID_DTYPE', /^scaled_matmul: Expected f8e4m3 or f8e5m2 codes \(MXFP8\) for input 'a' with mx32 scaling but received f4e2m1\[4, 64\]$/],
      ['FP8 codes with nv16', infer([a4, s4, b8, s4, g, g], nv), 'INVALID_DTYPE', /Expected f4e2m1 codes \(NVFP4\) for input 'b' with nv16 scaling but received f8e4m3\[8, 64\]/],
      ['f32 scales with mx32', infer([a8, t([1, 512], 'f32'), b8, s8], mx), 'INVALID_DTYPE', /Expected e8m0 scale codes for input 'aScale' with mx32 scaling but received f32\[1, 512\]/],
      ['E8M0 scales with nv16', infer([a4, s4, b4, s8, g, g], nv), 'INVALID_DTYPE', /Expected f8e4m3 scale codes for input 'bScale' with nv16 scaling but received e8m0\[1, 512\]/],
      ['nv16 without its tensor scales', infer([a4, s4, b4, s4], nv), 'INVALID_ARGUMENT', /Expected 6 inputs .* with nv16 scaling but received 4/],
      ['mx32 with tensor scales', infer([a8, s8, b8, s8, g, g], mx), 'INVALID_ARGUMENT', /Expected 4 inputs \(a, aScale, b, bScale\) with mx32 scaling but received 6/],
      ['a tensor scale of 2', infer([a4, s4, b4, s4, g, t([2], 'f32')], nv), 'SHAPE_MISMATCH', /Expected f32\[1\] \(NVFP4's tensor scale\) for input 'bGlobal' but received f32\[2\]/],
      ['a bf16 tensor scale', infer([a4, s4, b4, s4, t([1], 'bf16'), g], nv), 'INVALID_DTYPE', /for input 'aGlobal' but received bf16\[1\]/],
      ['K not whole 32-blocks', infer([t([4, 48], 'f8e4m3'), t([1, 512], 'e8m0'), t([8, 48], 'f8e4m3'), t([1, 512], 'e8m0')], mx), 'SHAPE_MISMATCH', /Expected K a whole number of 32-element blocks with mx32 \/ mx32 scaling but received K = 48/],
      ['K not whole 16-blocks', infer([t([4, 40], 'f4e2m1'), s4, t([8, 40], 'f4e2m1'), s4, g, g], nv), 'SHAPE_MISMATCH', /Expected K a whole number of 16-element blocks with nv16 \/ nv16 scaling but received K = 40/],
      ['tiles called plain', infer([a8, s8, b8, s8], { ...mx, scaleLayout: 'plain' }), 'SHAPE_MISMATCH', /Expected e8m0\[4, 2\] for input 'aScale' \(mx32 scaling, scaleLayout 'plain', 4 rows, K = 64\) \(the 'gemm' layout would be \[1, 512\]\) but received e8m0\[1, 512\]/],
      ['plain called gemm', infer([a4, t([4, 4], 'f8e4m3'), b4, s4, g, g], nv), 'SHAPE_MISMATCH', /Expected f8e4m3\[1, 512\] for input 'aScale' \(nv16 scaling, scaleLayout 'gemm', 4 rows, K = 64\) \(the 'plain' layout would be \[4, 4\]\) but received f8e4m3\[4, 4\]/],
      ['two row tiles', infer([t([129, 64], 'f8e4m3'), s8, b8, s8], mx), 'SHAPE_MISMATCH', /Expected e8m0\[2, 512\] for input 'aScale'/],
      ['fastAccum with mx32', infer([a8, s8, b8, s8], { ...mx, fastAccum: true }), 'INVALID_ARGUMENT', /Expected fastAccum false with block scaling/],
      ['e5m2 × e5m2', infer([t([4, 64], 'f8e5m2'), s8, t([8, 64], 'f8e5m2'), s8], mx), 'INVALID_DTYPE', /at most one f8e5m2 operand/],
      ['scaled_matmul_bias with nv16', () => getOp('scaled_matmul_bias').infer([a4, s4, b4, s4, t([8], 'bf16')], nv as never), 'INVALID_ARGUMENT', /^scaled_matmul_bias: Expected a scaling other than nv16 .* but received \(nv16, nv16\)$/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const e = errorOf(fn);
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(msg);
    }
    // mx32 with a bias is the bias op's (cuBLASLt's BIAS epilogue on the block-scaled GEMM).
    expect(getOp('scaled_matmul_bias').infer([a8, s8, b8, s8, t([8], 'bf16')], mx as never)).toEqual([{ shape: [4, 8], dtype: 'bf16' }]);
    // The reference takes codes: FP4 codes are 0 to 15, one per element; scale codes are bytes.
    const types = [a4, s4, b4, s4, g, g];
    const outTypes = [t([4, 8], 'bf16')];
    const run = (aCodes: NumArray, aScale: NumArray) => () => op.reference({ inputs: [aCodes, aScale, new Float32Array(8 * 64), new Float32Array(512), Float32Array.of(1), Float32Array.of(1)], outputs: [new Float32Array(32)], inTypes: types, outTypes, attrs: nv as never });
    expect(errorOf(run(Float32Array.from({ length: 256 }, (_, i) => (i === 3 ? 16 : 1)), new Float32Array(512))).message).toMatch(/Expected FP4 codes \(integers 0 to 15, one per element: .*\) in input 'a' but received 16 at element \(0, 3\)$/);
    expect(errorOf(run(new Float32Array(256), new Float32Array(512).fill(0.5))).message).toMatch(/Expected scale codes \(integers 0 to 255\) in input 'aScale' but received 0.5 for element \(0, 0\)$/);
  });

  it('gives scaledMatmul typed errors before anything runs', () => {
    const q = (r: number, c: number, format: string, extra: object = {}) => quantizeTensor(Tensor.from(randMatrix(r * c), [r, c]), { format: format as never, ...extra });
    const m8 = q(4, 64, 'mxfp8-e4m3');
    const n4 = q(8, 64, 'nvfp4');
    const cases: [string, () => unknown, string, RegExp][] = [
      ['MXFP8 × NVFP4', () => scaledMatmul(m8, n4), 'INVALID_ARGUMENT', /Expected MXFP8 with MXFP8 .* but received mxfp8-e4m3 and nvfp4/],
      ['NVFP4 × blockwise FP8', () => scaledMatmul(q(8, 128, 'nvfp4'), q(8, 128, 'fp8-block1x128')), 'INVALID_ARGUMENT', /Expected NVFP4 with NVFP4 .* but received nvfp4 and fp8-block1x128/],
      ['mismatched scale layouts', () => scaledMatmul(m8, q(8, 64, 'mxfp8-e4m3', { scaleLayout: 'tiled128x4' })), 'INVALID_ARGUMENT', /Expected a and b in one scale layout but received 'plain' \(a\) and 'tiled128x4' \(b\)/],
      ["blockwise FP8's layout on MXFP8", () => scaledMatmul({ ...m8, scaleLayout: 'gemm' }, m8), 'INVALID_ARGUMENT', /Expected scaleLayout 'plain' or 'tiled128x4' for a \(mxfp8-e4m3\) but received "gemm"/],
      ['NVFP4 without its tensor scale', () => scaledMatmul({ ...n4, globalScale: null }, n4), 'INVALID_ARGUMENT', /Expected a globalScale Tensor for a \(nvfp4: its tensor scale\) but received null/],
      ['fastAccum', () => scaledMatmul(m8, m8, { fastAccum: true }), 'INVALID_ARGUMENT', /Expected fastAccum false with block scaling/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const e = errorOf(fn);
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(msg);
    }
  });

  it("states the CUDA candidate's own limits: the tiles, and K in 32s", () => {
    const dims = { M: 4, N: 8, K: 64, aFormat: 'e4m3', bFormat: 'e4m3', aScaling: 'mx32', bScaling: 'mx32', layout: 'plain', outDtype: 'bf16', fastAccum: false } as const;
    expect(scaledGemmLimits(dims)).toMatch(/^takes mx32 scale codes in scaleLayout 'gemm' \(cuBLASLt's 128 × 4 tiles\), not 'plain': quantize with quantizeTensor\(x, \{ format, scaleLayout: 'tiled128x4' \}\)$/);
    expect(scaledGemmLimits({ ...dims, layout: 'gemm' })).toBe(true);
    expect(scaledGemmLimits({ ...dims, layout: 'gemm', K: 48, aFormat: 'e2m1', bFormat: 'e2m1', aScaling: 'nv16', bScaling: 'nv16' })).toMatch(/takes K divisible by 32 with nv16 scaling .* not 48/);
    // One packed FP4 byte holds elements 2i (low nibble) and 2i + 1: the CPU path unpacks them.
    expect(Array.from(unpackNibbles(packNibbles([1, 15])))).toEqual([1, 15]);
  });
});

// MXFP8 on Hopper: scaled_matmul's candidate scaled_matmul_mx8_sm90 over kernels-native's
// mx8GemmSm90 (native/gemm/gemm_mx8_sm90.cu), against a float64 reference computed here. Skipped
// without a GPU of compute capability 9.x. Passing on the H200 (2026-12-03).
//
// Operands are fresh random FP8 codes (no NaN or Inf codes unless planted) and E8M0 scale codes near
// 127, the scales laid out in cuBLASLt's 128 × 4 tiles with every padding byte 255 (NaN), so a
// kernel that reads padding (rows past R, blocks past K / 32) gives NaN. Every output element is
// checked: the kernel's result must be what FP32 accumulation of the exact products can give — the
// float64 sum S and T = Σ|a||b| (dequantized values), within (128 + K / 32) · 2^−24 · T of S before
// the output's one rounding (bf16: between the roundings of the interval's ends). Outputs are
// poisoned (NaN) first, reruns are bit-identical, the Tensor call (scaledMatmul) equals the
// candidate bit for bit, and this file's float64 values equal the op's CPU reference rounded.
// Planted specials: scale code 255 (a NaN row), an e4m3 NaN code (a NaN column), and scale code 0
// (2^−127, an FP32 subnormal) against 254 (2^127) in the same block, whose product is exactly 1.
import { Tensor, registry } from '@deepwell/core';
import { DTYPE_CODE, FP8_CODE, cudaStatus, findLibrary, nativeEntries, registerCudaBackends, type CudaCall, type DevArg } from '@deepwell/kernels-native';
import { getOp, type KernelParams } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { ELEMENTS, MX8_SM90_KERNEL, computeCapabilityOf, decodeElement, quantizeTensor, roundToBf16, scaledMatmul, tiledScaleIndex128x4, type QuantizedTensor } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { randomCodes, valuesOf } from './fp8.js';

const gpu = cudaStatus().available;
if (gpu) registerCudaBackends();
const cc = gpu ? computeCapabilityOf('cuda:0') : null;
const hopper = cc !== null && cc.startsWith('9.');
const dev = { device: 'cuda:0' } as const;

type Fmt = 'e4m3' | 'e5m2';
const bitsEqual = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]));
const ptr = (t: Tensor): DevArg => ({ base: (t.buffer as unknown as { ptr: number }).ptr, offset: 0, bytes: t.buffer.bytes });
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** An operand: codes [R, K], scale codes [R, K / 32] (plain, for the reference) and their 128 × 4 tiles (padding 255). */
interface Operand {
  R: number;
  K: number;
  f: Fmt;
  codes: Uint8Array;
  scales: Uint8Array;
}
function operand(R: number, K: number, f: Fmt): Operand {
  const scales = Uint8Array.from({ length: (R * K) / 32 }, () => randInt(121, 133));
  return { R, K, f, codes: randomCodes(R * K, f), scales };
}
function tiles(o: Operand): Uint8Array {
  const n = o.K / 32;
  const t = new Uint8Array(Math.ceil(o.R / 128) * Math.ceil(n / 4) * 512).fill(255);
  for (let r = 0; r < o.R; r++) for (let c = 0; c < n; c++) t[tiledScaleIndex128x4(r, c, n)] = o.scales[r * n + c]!;
  return t;
}
/** Dequantized values, exactly (float64): decode(code) · 2^(scale − 127), scale 255 NaN. */
function values(o: Operand): Float64Array {
  const e = ELEMENTS[o.f];
  const n = o.K / 32;
  return Float64Array.from({ length: o.R * o.K }, (_, i) => {
    const r = Math.floor(i / o.K);
    const s = o.scales[r * n + Math.floor((i % o.K) / 32)]!;
    return decodeElement(e, o.codes[i]!) * (s === 255 ? NaN : 2 ** (s - 127));
  });
}
/** The sum S and magnitude T = Σ|a||b| of every output, in float64, k ascending. */
function exact(a: Operand, b: Operand): { S: Float64Array; T: Float64Array } {
  const [A, B, M, N, K] = [values(a), values(b), a.R, b.R, a.K];
  const S = new Float64Array(M * N);
  const T = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      let t = 0;
      for (let k = 0; k < K; k++) {
        const p = A[m * K + k]! * B[n * K + k]!;
        s += p;
        t += Math.abs(p);
      }
      S[m * N + n] = s;
      T[m * N + n] = t;
    }
  return { S, T };
}

/** The first element outside what FP32 accumulation can give (see the header), or -1. */
function firstBad(got: Float64Array, S: Float64Array, T: Float64Array, K: number, out: 'bf16' | 'f32'): number {
  const tol = (128 + K / 32) * 2 ** -24; // two chained 16-product MMAs per block, then one FFMA per block
  const round = out === 'f32' ? Math.fround : roundToBf16;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(S[i]!)) {
      if (!Number.isNaN(got[i]!)) return i;
      continue;
    }
    const lo = round(S[i]! - tol * T[i]!);
    const hi = round(S[i]! + tol * T[i]!);
    if (!(got[i]! >= lo && got[i]! <= hi)) return i;
  }
  return -1;
}

/** The operand as device (or, with `device` 'cpu', host) tensors and as a QuantizedTensor of them. */
function upload(o: Operand, device: string = dev.device): { codes: Tensor; scales: Tensor; q: QuantizedTensor } {
  const codes = Tensor.from(o.codes, [o.R, o.K], o.f === 'e4m3' ? 'f8e4m3' : 'f8e5m2', { device });
  const t = tiles(o);
  const scales = Tensor.from(t, [t.length / 512, 512], 'e8m0', { device });
  const q = {
    format: o.f === 'e4m3' ? 'mxfp8-e4m3' : 'mxfp8-e5m2',
    scaleMode: 'floor',
    scaleLayout: 'tiled128x4',
    rows: o.R,
    cols: o.K,
    rowwise: { data: codes, scales },
    columnwise: null,
    globalScale: null,
    amax: null,
    dispose: () => (codes.dispose(), scales.dispose()),
  } as unknown as QuantizedTensor;
  return { codes, scales, q };
}

const poisoned = (M: number, N: number, out: 'bf16' | 'f32') => Tensor.from(out === 'f32' ? new Float32Array(M * N).fill(NaN) : new Uint16Array(M * N).fill(0x7fc0), [M, N], out, dev);

/** Runs the registry's candidate (as a compiled step calls it) into a poisoned output; returns it. */
function runCandidate(ta: ReturnType<typeof upload>, tb: ReturnType<typeof upload>, out: 'bf16' | 'f32'): Tensor {
  const ins = [ta.codes, ta.scales, tb.codes, tb.scales];
  const inTypes = ins.map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const attrs = { aScaling: 'mx32', bScaling: 'mx32', scaleLayout: 'gemm', outDtype: out, fastAccum: false };
  const params: KernelParams = { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes: getOp('scaled_matmul').infer(inTypes, attrs), attrs };
  const kernel = registry.select<KernelParams, void>('scaled_matmul', params);
  expect(kernel.name).toBe(MX8_SM90_KERNEL);
  expect(kernel.workspace?.(params) ?? 0).toBe(0);
  const d = poisoned(ta.codes.shape[0]!, tb.codes.shape[0]!, out);
  const call: CudaCall<KernelParams> = { ...params, stream: 0, inputs: ins.map(ptr), outputs: [ptr(d)], workspace: null };
  kernel.run(call as never);
  return d;
}

const CASES: [number, number, number, Fmt, Fmt, 'bf16' | 'f32'][] = [
  [1, 17, 32, 'e4m3', 'e4m3', 'f32'],
  [17, 130, 96, 'e4m3', 'e4m3', 'bf16'],
  [130, 1, 1024, 'e5m2', 'e4m3', 'f32'],
  [130, 17, 96, 'e4m3', 'e5m2', 'bf16'],
  [128, 128, 128, 'e4m3', 'e4m3', 'f32'],
  [257, 136, 1024, 'e4m3', 'e4m3', 'bf16'],
  [200, 264, 160, 'e5m2', 'e4m3', 'bf16'],
  [64, 300, 1024, 'e4m3', 'e4m3', 'f32'],
];

describe.skipIf(!gpu || !hopper)('scaled_matmul mx32 on Hopper: our own MXFP8 kernel (mx8GemmSm90)', () => {
  it.each(CASES.map((c) => [`${c[0]}x${c[1]}x${c[2]} ${c[3]}·${c[4]} → ${c[5]}`, ...c] as const))(
    'equals FP32 accumulation of the exact products, into a poisoned output, bit-identical on a rerun and through scaledMatmul: %s',
    (_name, M, N, K, fa, fb, out) => {
      const [a, b] = [operand(M, K, fa), operand(N, K, fb)];
      const { S, T } = exact(a, b);
      const [ta, tb] = [upload(a), upload(b)];
      const d = runCandidate(ta, tb, out);
      const got = valuesOf(d);
      const bad = firstBad(got, S, T, K, out);
      expect(bad, bad < 0 ? '' : `element ${bad}: ${got[bad]} for ${S[bad]} (Σ|a||b| ${T[bad]})`).toBe(-1);
      expect(got.every(Number.isFinite), 'every element written and finite').toBe(true);
      const again = runCandidate(ta, tb, out);
      expect(bitsEqual(valuesOf(again), got), 'bit-identical on a rerun').toBe(true);
      const viaTensor = scaledMatmul(ta.q, tb.q, { outDtype: out });
      expect(bitsEqual(valuesOf(viaTensor), got), 'scaledMatmul equals the candidate').toBe(true);
      // The op's CPU reference on the same codes is this file's float64 sum, rounded once.
      if (M * N * K <= 1 << 25) {
        const [ha, hb] = [upload(a, 'cpu').q, upload(b, 'cpu').q];
        const ref = valuesOf(scaledMatmul(ha, hb, { outDtype: out }));
        expect(bitsEqual(ref, S.map(out === 'f32' ? Math.fround : roundToBf16)), 'the op reference is this file’s sum').toBe(true);
        ha.dispose();
        hb.dispose();
      }
      for (const t of [d, again, viaTensor]) t.dispose();
      ta.q.dispose();
      tb.q.dispose();
    },
  );

  it('gives NaN where a NaN scale or code is read, and 2^−127 · 2^127 = 1 exactly', () => {
    const [M, N, K] = [150, 140, 256];
    const [a, b] = [operand(M, K, 'e4m3'), operand(N, K, 'e4m3')];
    const n = K / 32;
    for (let r = 0; r < M; r++) a.scales[r * n] = 0; // block 0 of every row of a: 2^−127 …
    for (let r = 0; r < N; r++) b.scales[r * n] = 254; // … times 2^127 in b
    a.scales[7 * n + 3] = 255; // row 7 of d NaN
    b.codes[131 * K + 40] = 0x7f; // column 131 of d NaN (e4m3 NaN)
    const { S, T } = exact(a, b);
    expect(S.filter(Number.isNaN).length).toBe(N + M - 1);
    const [ta, tb] = [upload(a), upload(b)];
    for (const out of ['f32', 'bf16'] as const) {
      const d = runCandidate(ta, tb, out);
      const got = valuesOf(d);
      const bad = firstBad(got, S, T, K, out);
      expect(bad, bad < 0 ? '' : `element ${bad}: ${got[bad]} for ${S[bad]}`).toBe(-1);
      d.dispose();
    }
    ta.q.dispose();
    tb.q.dispose();
  });

  it("runs quantizeTensor's MXFP8 operands (scaleLayout 'tiled128x4') as they are", () => {
    const [M, N, K] = [300, 200, 512];
    const rand = (n: number) => Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * 2 ** (Math.random() * 8 - 4));
    const x = Tensor.from(rand(M * K), [M, K], 'f32', dev);
    const w = Tensor.from(rand(N * K), [N, K], 'f32', dev);
    const qa = quantizeTensor(x, { format: 'mxfp8-e4m3', scaleLayout: 'tiled128x4' });
    const qb = quantizeTensor(w, { format: 'mxfp8-e4m3', scaleLayout: 'tiled128x4' });
    const read = (q: QuantizedTensor, R: number): Operand => {
      const t = q.rowwise!.scales!.toHost() as Uint8Array;
      const nb = K / 32;
      const scales = Uint8Array.from({ length: R * nb }, (_, i) => t[tiledScaleIndex128x4(Math.floor(i / nb), i % nb, nb)]!);
      return { R, K, f: 'e4m3', codes: q.rowwise!.data.toHost() as Uint8Array, scales };
    };
    const { S, T } = exact(read(qa, M), read(qb, N));
    const d = scaledMatmul(qa, qb, { outDtype: 'f32' });
    const got = valuesOf(d);
    const bad = firstBad(got, S, T, K, 'f32');
    expect(bad, bad < 0 ? '' : `element ${bad}: ${got[bad]} for ${S[bad]}`).toBe(-1);
    // The registry explains: cuBLASLt declines below compute capability 10, this kernel serves.
    const ins = [qa.rowwise!.data, qa.rowwise!.scales!, qb.rowwise!.data, qb.rowwise!.scales!];
    const inTypes = ins.map((t) => ({ shape: t.shape, dtype: t.dtype }));
    const attrs = { aScaling: 'mx32', bScaling: 'mx32', scaleLayout: 'gemm', outDtype: 'bf16', fastAccum: false };
    const ex = registry.explain('scaled_matmul', { op: 'scaled_matmul', device: 'cuda:0', inTypes, outTypes: getOp('scaled_matmul').infer(inTypes, attrs), attrs });
    expect(ex.selected).toBe(MX8_SM90_KERNEL);
    expect(ex.text).toMatch(findLibrary('cublasLt').found ? /scaled_matmul_cublaslt.*need compute capability 10\.0 or newer/ : /scaled_matmul_cublaslt/);
    for (const t of [x, w, d]) t.dispose();
    for (const q of [qa, qb]) q.dispose();
  });

  it('refuses bad arguments with typed errors, and the device still works after', () => {
    const e = nativeEntries().entries!;
    const a = Tensor.empty([128, 256], 'u8', dev);
    const s = Tensor.empty([1024], 'u8', dev); // 1 row tile × 2 column tiles: K = 256
    const short = Tensor.empty([512], 'u8', dev);
    const d = Tensor.empty([128, 128], 'f32', dev);
    const big = Tensor.empty([128 * 128 * 4], 'u8', dev); // holds a (128 × 256 codes) and d (128 × 128 f32)
    type O = Partial<{ M: number; K: number; a: number; b: number; out: number; sa: Tensor; ta: Tensor; d: Tensor }>;
    const call = (o: O) => () =>
      e.mx8GemmSm90(0, o.M ?? 128, 128, o.K ?? 256, o.a ?? FP8_CODE.e4m3, o.b ?? FP8_CODE.e4m3, o.out ?? DTYPE_CODE.f32, ptr(o.ta ?? a), ptr(o.sa ?? s), ptr(a), ptr(s), ptr(o.d ?? d));
    const cases: [string, () => void, string, RegExp][] = [
      ['K not in 32s', call({ K: 240 }), 'INVALID_ARGUMENT', /Expected K divisible by 32 \(whole MX blocks\) but received 240/],
      ['M = 0', call({ M: 0 }), 'INVALID_ARGUMENT', /Expected M, N and K >= 1/],
      ['e5m2 × e5m2', call({ a: FP8_CODE.e5m2, b: FP8_CODE.e5m2 }), 'INVALID_ARGUMENT', /at most one e5m2, but received \(e5m2, e5m2\)/],
      ['e2m1', call({ a: FP8_CODE.e2m1 }), 'INVALID_ARGUMENT', /but received \(e2m1, e4m3\)/],
      ['f16 out', call({ out: DTYPE_CODE.f16 }), 'INVALID_ARGUMENT', /an output dtype of bf16 or f32/],
      ['scales shorter than the tiles', call({ sa: short }), 'SHAPE_MISMATCH', /aScale/],
      ['d over a', call({ ta: big, d: big }), 'INVALID_ARGUMENT', /d apart from a, b and their scales/],
    ];
    for (const [what, fn, code, msg] of cases) {
      const err = errorOf(fn);
      expect(err.code, what).toBe(code);
      expect(err.message, what).toMatch(msg);
    }
    for (const t of [a, s, short, d, big]) t.dispose();
    const [x, y] = [operand(4, 64, 'e4m3'), operand(8, 64, 'e4m3')];
    const [tx, ty] = [upload(x), upload(y)];
    const r = runCandidate(tx, ty, 'f32');
    expect(valuesOf(r).every(Number.isFinite)).toBe(true);
    r.dispose();
    tx.q.dispose();
    ty.q.dispose();
  });
});

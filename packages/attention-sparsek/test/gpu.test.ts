// sdpa's and sdpa_qkv's CUDA kernels against the float64 references, on fresh random inputs with
// poisoned outputs and workspaces: every CUDA candidate that takes a call is run by name (the fused
// flash kernels for bf16 at head dimensions 64 and 128, the general path for everything), forward
// (out, lse) and backward (dq, dk, dv; sdpa_qkv's dqkv), f32 and bf16, causal or not, GQA and MQA,
// both layouts and the packed qkv, S from 1 to 1000 and head dimensions 64, 128 and one other; the
// registry's choice (flash where it fits, so a silent fallback to the general path fails); two
// backward runs bitwise identical; sdpa_qkv bitwise equal to sdpa's kernel of the same family on the
// slices; the native checks of extents, overlaps and the flash entry points' limits; and the
// Tensor-level call. Skipped without a GPU (nn's GPU tests train a fused GPT).
import { DeepwellError, Tensor, bf16BitsToF32, f32ToBf16Bits, registry } from '@deepwell/core';
import { type ValueType } from '@deepwell/ir';
import { DTYPE_CODE, cudaBackend, nativeEntries, type CudaBuffer, type DevArg } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { scaledDotProductAttention } from '../src/index.js';
import {
  DTS, bitDiff, candidatesFor, familyOf, flashDevice, gpu, gradErr, naiveAtPrecision, naturalGrad, paramsOf, randn, reference, relErr, round, runCuda, type Dt, type NaiveCase,
} from './gpu_helpers.js';


interface Case extends NaiveCase {
  /** Default both. */
  dtypes?: readonly Dt[];
}

const CASES: Case[] = [
  { B: 2, H: 4, Hkv: 4, S: 1, D: 64, causal: true, layout: 'bhsd' },
  { B: 1, H: 4, Hkv: 1, S: 77, D: 64, causal: true, layout: 'bhsd' }, // MQA
  { B: 1, H: 8, Hkv: 2, S: 77, D: 128, causal: false, layout: 'bshd' }, // GQA 4:1
  { B: 1, H: 2, Hkv: 2, S: 1000, D: 64, causal: true, layout: 'bhsd' },
  // The fused kernels' many-block path at D = 128 with GQA (bf16 only: the float64 reference of
  // this shape takes seconds, and f32 runs the general path, covered above).
  { B: 1, H: 4, Hkv: 2, S: 1000, D: 128, causal: true, layout: 'bshd', dtypes: ['bf16'] },
  { B: 2, H: 4, Hkv: 2, S: 33, D: 40, causal: true, layout: 'bshd' }, // another head dim
];
// The error of one rounding to the output's format, with room for FP32 sums: bf16 outputs carry a
// relative error of about 2^-9 each; f32 ones about 1e-7.
const TOL: Record<Dt, number> = { f32: 2e-5, bf16: 1e-2 };

/** it.each rows: each case once per dtype it runs in, named. */
const byDtype = <C extends { dtypes?: readonly Dt[] }>(cases: readonly C[]) =>
  cases.flatMap((c) => (c.dtypes ?? DTS).map((dt) => [`${dt} ${JSON.stringify({ ...c, dtypes: undefined })}`, c, dt] as const));


describe.skipIf(!gpu)('sdpa on CUDA', () => {
  it.each(byDtype(CASES))('every CUDA candidate: forward and backward equal the float64 reference (%s)', (_name, c, dt) => {
    const attrs = { causal: c.causal, scale: 0, layout: c.layout };
    const shape = (heads: number) => (c.layout === 'bhsd' ? [c.B, heads, c.S, c.D] : [c.B, c.S, heads, c.D]);
    const t = (heads: number): ValueType => ({ shape: shape(heads), dtype: dt });
    const family = familyOf(dt, c.D);
    const inTypes = [t(c.H), t(c.Hkv), t(c.Hkv)];
    const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => round(dt, randn(c.B * h * c.S * c.D)));
    const [outRef, lseRef] = reference('sdpa', inTypes, [q!, k!, v!], attrs);
    // No worse than a naive, unfused attention at the same precision (with a little room: both are
    // one rounding of the output away from the exact value at best). Short sequences only: the
    // naive loop is slow.
    const naiveErr = c.S <= 77 ? relErr(naiveAtPrecision(dt, c, q!, k!, v!), outRef!) : null;
    const fwd = paramsOf('sdpa', inTypes, attrs);
    for (const name of candidatesFor(fwd, `sdpa_cuda_${family}`)) {
      const [out, lse] = runCuda(fwd, name, [q!, k!, v!]);
      const err = relErr(out!, outRef!);
      expect(err, `${name} out`).toBeLessThan(TOL[dt]);
      if (naiveErr !== null) expect(err, `${name} out no less accurate than a naive ${dt} attention`).toBeLessThanOrEqual(1.25 * naiveErr + 1e-7);
      expect(relErr(lse!, lseRef!), `${name} lse`).toBeLessThan(1e-5);
    }
    // The backward from the reference's out and lse (out rounded to the storage format).
    const dout = round(dt, randn(q!.length));
    const bwdTypes = [t(c.H), t(c.H), t(c.Hkv), t(c.Hkv), t(c.H), { shape: [c.B, c.H, c.S], dtype: 'f32' as const }];
    const bwdIn = [dout, q!, k!, v!, round(dt, outRef!), Float64Array.from(Float32Array.from(lseRef!))];
    const want = reference('sdpa_backward', bwdTypes, bwdIn, attrs);
    const bwd = paramsOf('sdpa_backward', bwdTypes, attrs);
    const natural = naturalGrad(c.D, dout, Float64Array.from([...q!, ...k!, ...v!]));
    for (const name of candidatesFor(bwd, `sdpa_backward_cuda_${family}`)) {
      const g1 = runCuda(bwd, name, bwdIn);
      const g2 = runCuda(bwd, name, bwdIn);
      ['dq', 'dk', 'dv'].forEach((grad, i) => {
        expect(gradErr(g1[i]!, round(dt, want[i]!), natural), `${name} ${grad}`).toBeLessThan(TOL[dt]);
        expect(bitDiff(g2[i]!, g1[i]!), `${name} ${grad} bitwise the same on a second run`).toBe('');
      });
    }
  });

  it('scaledDotProductAttention runs the CUDA kernel on device Tensors', () => {
    const [B, H, Hkv, S, D] = [2, 4, 2, 17, 64];
    const [q, k, v] = [H, Hkv, Hkv].map((h) => randn(B * h * S * D));
    const t = (x: Float64Array, h: number) => Tensor.from(Float32Array.from(x), [B, h, S, D], 'f32', { device: gpu! });
    const [tq, tk, tv] = [t(q!, H), t(k!, Hkv), t(v!, Hkv)];
    const out = scaledDotProductAttention(tq, tk, tv, { causal: true, enableGqa: true });
    expect(out.device).toBe(gpu);
    const got = Float64Array.from(out.to('cpu').toHost() as Float32Array);
    const f = (h: number): ValueType => ({ shape: [B, h, S, D], dtype: 'f32' });
    const [want] = reference('sdpa', [f(H), f(Hkv), f(Hkv)], [q!, k!, v!].map((x) => round('f32', x)), { causal: true });
    expect(relErr(got, want!)).toBeLessThan(2e-5);
    for (const x of [tq, tk, tv, out]) x.dispose();
  });

  it('scaledDotProductAttention runs the fused kernel on bf16 device Tensors', () => {
    const [B, H, Hkv, S, D] = [1, 4, 1, 130, 64];
    const b = (h: number): ValueType => ({ shape: [B, h, S, D], dtype: 'bf16' });
    expect(registry.select('sdpa', paramsOf('sdpa', [b(H), b(Hkv), b(Hkv)], { causal: true })).name).toBe(`sdpa_cuda_${familyOf('bf16', D)}`);
    const [q, k, v] = [H, Hkv, Hkv].map((h) => round('bf16', randn(B * h * S * D)));
    const t = (x: Float64Array, h: number) => Tensor.from(Uint16Array.from(x, (y) => f32ToBf16Bits(y)), [B, h, S, D], 'bf16', { device: gpu! });
    const [tq, tk, tv] = [t(q!, H), t(k!, Hkv), t(v!, Hkv)];
    const out = scaledDotProductAttention(tq, tk, tv, { causal: true, enableGqa: true });
    expect(out.dtype).toBe('bf16');
    const got = Float64Array.from(out.to('cpu').toHost() as Uint16Array, (x) => bf16BitsToF32(x));
    const [want] = reference('sdpa', [b(H), b(Hkv), b(Hkv)], [q!, k!, v!], { causal: true });
    expect(relErr(got, want!)).toBeLessThan(TOL.bf16);
    for (const x of [tq, tk, tv, out]) x.dispose();
  });
});

// sdpa_qkv: the same kernels reading q, k and v in place in one packed qkv [B, S, H + 2·Hkv, D] and
// writing dq, dk, dv into one dqkv (every element of it: the outputs are poisoned first).
const QKV_CASES: Omit<Case, 'layout'>[] = [
  { B: 2, H: 4, Hkv: 4, S: 1, D: 64, causal: true },
  { B: 1, H: 4, Hkv: 1, S: 77, D: 64, causal: true }, // MQA
  { B: 1, H: 8, Hkv: 2, S: 77, D: 128, causal: false }, // GQA 4:1
  { B: 2, H: 4, Hkv: 2, S: 33, D: 40, causal: true },
];

/** Heads [from, to) of a [B, S, heads, D] array. */
function headsOf(x: Float64Array, rows: number, all: number, D: number, from: number, to: number): Float64Array {
  const y = new Float64Array(rows * (to - from) * D);
  for (let r = 0; r < rows; r++) y.set(x.subarray((r * all + from) * D, (r * all + to) * D), r * (to - from) * D);
  return y;
}

/** The error code and message of what `fn` throws: 'untyped' for anything but a DeepwellError, 'none' if nothing. */
function thrown(fn: () => void): [string, string] {
  try {
    fn();
  } catch (err) {
    return [DeepwellError.is(err) ? err.code : 'untyped', (err as Error).message];
  }
  return ['none', ''];
}

describe.skipIf(!gpu)('sdpa_qkv on CUDA', () => {
  it.each(byDtype(QKV_CASES))(`every CUDA candidate: forward and backward equal the float64 reference, and sdpa's kernel of the same family on the slices (%s)`, (_name, c, dt) => {
    const all = c.H + 2 * c.Hkv;
    const attrs = { heads: c.H, causal: c.causal, scale: 0 };
    const t = (heads: number): ValueType => ({ shape: [c.B, c.S, heads, c.D], dtype: dt });
    const lseType: ValueType = { shape: [c.B, c.H, c.S], dtype: 'f32' };
    const family = familyOf(dt, c.D);
    const qkv = round(dt, randn(c.B * c.S * all * c.D));
    const [outRef, lseRef] = reference('sdpa_qkv', [t(all)], [qkv], attrs);
    const part = (from: number, to: number) => headsOf(qkv, c.B * c.S, all, c.D, from, to);
    const slices = [part(0, c.H), part(c.H, c.H + c.Hkv), part(c.H + c.Hkv, all)];
    const sliced = paramsOf('sdpa', [t(c.H), t(c.Hkv), t(c.Hkv)], { causal: c.causal, layout: 'bshd' });
    const fwd = paramsOf('sdpa_qkv', [t(all)], attrs);
    for (const name of candidatesFor(fwd, `sdpa_qkv_cuda_${family}`)) {
      const [out, lse] = runCuda(fwd, name, [qkv]);
      expect(relErr(out!, outRef!), `${name} out`).toBeLessThan(TOL[dt]);
      expect(relErr(lse!, lseRef!), `${name} lse`).toBeLessThan(1e-5);
      // The same arithmetic in the same order as sdpa's kernel of the same family (flash with flash,
      // general with general) on contiguous slices: the same bits.
      const twin = name.replace('sdpa_qkv_', 'sdpa_');
      const [sOut, sLse] = runCuda(sliced, twin, slices);
      expect(bitDiff(out!, sOut!), `${name} out bitwise ${twin}'s on the slices`).toBe('');
      expect(bitDiff(lse!, sLse!), `${name} lse bitwise ${twin}'s on the slices`).toBe('');
    }
    // The backward from the reference's out and lse (out rounded to the storage format).
    const dout = round(dt, randn(outRef!.length));
    const bwdTypes = [t(c.H), t(all), t(c.H), lseType];
    const bwdIn = [dout, qkv, round(dt, outRef!), Float64Array.from(Float32Array.from(lseRef!))];
    const [want] = reference('sdpa_qkv_backward', bwdTypes, bwdIn, attrs);
    const bwd = paramsOf('sdpa_qkv_backward', bwdTypes, attrs);
    const natural = naturalGrad(c.D, dout, qkv);
    const parts = [['dq', 0, c.H], ['dk', c.H, c.H + c.Hkv], ['dv', c.H + c.Hkv, all]] as const;
    for (const name of candidatesFor(bwd, `sdpa_qkv_backward_cuda_${family}`)) {
      const [g1] = runCuda(bwd, name, bwdIn);
      const [g2] = runCuda(bwd, name, bwdIn);
      for (const [grad, from, to] of parts) {
        const got = headsOf(g1!, c.B * c.S, all, c.D, from, to);
        expect(gradErr(got, round(dt, headsOf(want!, c.B * c.S, all, c.D, from, to)), natural), `${name} ${grad}`).toBeLessThan(TOL[dt]);
      }
      expect(bitDiff(g2!, g1!), `${name} dqkv bitwise the same on a second run`).toBe('');
    }
  });

  it('the native entry points reject extents past an allocation, outputs over inputs and output rows that overlap', () => {
    const e = nativeEntries().entries!;
    const be = cudaBackend(0);
    const [B, H, S, D] = [1, 2, 4, 8];
    const n = B * H * S * D;
    const bufs = [be.alloc(4 * n * 3), be.alloc(4 * n), be.alloc(4 * B * H * S)];
    const [qkvBuf, outBuf, lseBuf] = bufs;
    const arg = (b: CudaBuffer, elems = 0): DevArg => ({ base: b.ptr, offset: 4 * elems, bytes: b.bytes - 4 * elems });
    // Packed q, k, v ([B, S, 3H, D]) and a contiguous out [B, S, H, D].
    const [sb, sh, ss] = [S * 3 * H * D, D, 3 * H * D];
    const call = (q: DevArg, k: DevArg, v: DevArg, out: DevArg, [osb, osh, oss] = [S * H * D, D, H * D]) => () =>
      e.sdpaForward(0, 0, B, H, H, S, S, D, 1, 0.25, q, k, v, out, arg(lseBuf!), sb, sh, ss, sb, sh, ss, osb!, osh!, oss!, null);
    const packed = [arg(qkvBuf!), arg(qkvBuf!, H * D), arg(qkvBuf!, 2 * H * D)] as const;
    try {
      expect(thrown(call(...packed, arg(outBuf!)))).toEqual(['none', '']);
      // v one head further on: its last row passes the allocation's end.
      expect(thrown(call(packed[0], packed[1], arg(qkvBuf!, 2 * H * D + D), arg(outBuf!)))[0]).toBe('SHAPE_MISMATCH');
      expect(thrown(call(...packed, arg(outBuf!), [S * H * D, D, H * D + 1]))[0]).toBe('SHAPE_MISMATCH');
      expect(thrown(call(...packed, arg(qkvBuf!)))).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/out of sdpaForward not to overlap the input q/)]);
      expect(thrown(call(...packed, arg(outBuf!), [S * H * D, D, D / 2]))).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/rows do not overlap/)]);
      be.synchronize();
    } finally {
      for (const b of bufs) be.free(b!);
    }
  });

  it('flashForward and flashBackward reject other head dimensions, f32 and a workspace too small for delta', () => {
    const e = nativeEntries().entries!;
    const be = cudaBackend(0);
    const [B, H, S] = [1, 2, 16];
    // Contiguous [B, H, S, D] tensors, each in its own zeroed allocation large enough for D = 64 in
    // f32, so the calls that pass the checks run on zeros.
    const tensorBytes = 4 * B * H * S * 64;
    const deltaBytes = 4 * B * H * S; // f32 [B, H, Sq], at the workspace's start
    const bufs = Array.from({ length: 8 }, () => be.alloc(tensorBytes));
    const [lseBuf, wsBuf] = [be.alloc(4 * B * H * S), be.alloc(deltaBytes)];
    bufs.push(lseBuf, wsBuf);
    for (const b of bufs) be.memset(b, 0);
    const arg = (b: CudaBuffer, bytes = b.bytes): DevArg => ({ base: b.ptr, offset: 0, bytes });
    const [q, k, v, out, dout, dq, dk, dv] = bufs.map((b) => arg(b));
    const lse = arg(lseBuf);
    const strides = (D: number) => [H * S * D, S * D, D, H * S * D, S * D, D, H * S * D, S * D, D] as const;
    const forward = (dtype: number, D: number) => () => e.flashForward(0, dtype, B, H, H, S, S, D, 1, 0.125, q!, k!, v!, out!, lse, ...strides(D), null);
    const backward = (dtype: number, D: number, ws: DevArg | null) => () =>
      e.flashBackward(0, dtype, B, H, H, S, S, D, 1, 0.125, dout!, q!, k!, v!, out!, lse, dq!, dk!, dv!, ...strides(D), ws);
    const full = arg(wsBuf, deltaBytes);
    try {
      // What the fused kernels take passes (the backward with delta only: the portable backward).
      expect(thrown(forward(DTYPE_CODE.bf16, 64))).toEqual(['none', '']);
      expect(thrown(backward(DTYPE_CODE.bf16, 64, full))).toEqual(['none', '']);
      // (a) A head dimension other than 64 and 128 (the general path's D = 40).
      const headDim = (fn: string) => ['INVALID_ARGUMENT', `Expected a head dimension of 64 or 128 for ${fn} but received 40`];
      expect(thrown(forward(DTYPE_CODE.bf16, 40))).toEqual(headDim('flashForward'));
      expect(thrown(backward(DTYPE_CODE.bf16, 40, full))).toEqual(headDim('flashBackward'));
      // (b) f32: the fused kernels compute on bf16 and f16 only.
      const dtype = (fn: string) => ['INVALID_DTYPE', `Expected bf16 or f16 (dtype code 1 or 2) for ${fn} but received dtype code ${DTYPE_CODE.f32}`];
      expect(thrown(forward(DTYPE_CODE.f32, 64))).toEqual(dtype('flashForward'));
      expect(thrown(backward(DTYPE_CODE.f32, 64, full))).toEqual(dtype('flashBackward'));
      // (c) A workspace short of delta, or none.
      const small = (got: number) => ['INVALID_ARGUMENT', `Expected a workspace of at least ${deltaBytes} bytes for flashBackward but received ${got}`];
      expect(thrown(backward(DTYPE_CODE.bf16, 64, arg(wsBuf, deltaBytes - 4)))).toEqual(small(deltaBytes - 4));
      expect(thrown(backward(DTYPE_CODE.bf16, 64, null))).toEqual(small(0));
      be.synchronize();
    } finally {
      for (const b of bufs) be.free(b);
    }
  });
});

// sdpa's and sdpa_qkv's CUDA kernels against the float64 references, on fresh random inputs with
// poisoned outputs: forward (out, lse) and backward (dq, dk, dv; sdpa_qkv's dqkv), f32 and bf16,
// causal or not, GQA and MQA, both layouts and the packed qkv, S from 1 to 1000 and head dimensions
// 64, 128 and one other; two backward runs bitwise identical; sdpa_qkv bitwise equal to sdpa on the
// slices; the native checks of extents and overlaps; and the Tensor-level call. Skipped without a GPU
// (nn's GPU tests train a fused GPT).
import { bf16BitsToF32, f32ToBf16Bits, registry, type DeepwellError } from '@deepwell/core';
import { checkAttrs, getOp, type KernelParams, type ValueType } from '@deepwell/ir';
import { Stream, cudaBackend, cudaStatus, nativeEntries, registerCudaBackends, type CudaBuffer, type CudaCall, type DevArg } from '@deepwell/kernels-native';
import { Tensor } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { scaledDotProductAttention } from '../src/index.js';

const gpu = cudaStatus().available ? (registerCudaBackends()[0] ?? null) : null;
const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
type Dt = 'f32' | 'bf16';
const round = (dt: Dt, x: Float64Array) => (dt === 'f32' ? Float64Array.from(Float32Array.from(x)) : Float64Array.from(x, (y) => bf16BitsToF32(f32ToBf16Bits(y))));
const encode = (t: ValueType, x: Float64Array): ArrayBufferView => (t.dtype === 'bf16' ? Uint16Array.from(x, (y) => f32ToBf16Bits(y)) : Float32Array.from(x));
const decode = (t: ValueType, buf: CudaBuffer): Float64Array => {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const host = t.dtype === 'bf16' ? new Uint16Array(n) : new Float32Array(n);
  cudaBackend(0).read(buf, host);
  return t.dtype === 'bf16' ? Float64Array.from(host as Uint16Array, (b) => bf16BitsToF32(b)) : Float64Array.from(host as Float32Array);
};

/** Runs op's CUDA kernel on `inputs` (outputs poisoned with 0xff first); returns the outputs and the kernel's name. */
function runCuda(op: string, inTypes: ValueType[], inputs: Float64Array[], attrs: Record<string, unknown>): { outs: Float64Array[]; kernel: string } {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const outTypes = def.infer(inTypes, checked);
  const be = cudaBackend(0);
  const stream = new Stream(0);
  const bytes = (t: ValueType) => Math.max(4, t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'bf16' ? 2 : 4));
  const bufs: CudaBuffer[] = [];
  try {
    const ins = inTypes.map((t, i) => {
      const b = be.alloc(bytes(t));
      bufs.push(b);
      be.write(b, encode(t, inputs[i]!));
      return { base: b.ptr, offset: 0, bytes: b.bytes };
    });
    const outBufs = outTypes.map((t) => {
      const b = be.alloc(bytes(t));
      bufs.push(b);
      be.memset(b, 0xff);
      return b;
    });
    be.synchronize();
    const params: KernelParams = { op, device: gpu!, inTypes, outTypes, attrs: checked };
    const kernel = registry.select<CudaCall<KernelParams>, void>(op, params as unknown as CudaCall<KernelParams>);
    if (kernel.backend !== 'cuda') throw new Error(`no CUDA kernel for ${op}: ${registry.explain(op, params).text}`);
    kernel.run({ ...params, stream: stream.handle, inputs: ins, outputs: outBufs.map((b) => ({ base: b.ptr, offset: 0, bytes: b.bytes })), workspace: null });
    stream.synchronize();
    return { outs: outTypes.map((t, k) => decode(t, outBufs[k]!)), kernel: kernel.name };
  } finally {
    stream.dispose();
    for (const b of bufs) be.free(b);
  }
}

function reference(op: string, inTypes: ValueType[], inputs: Float64Array[], attrs: Record<string, unknown>): Float64Array[] {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const outTypes = def.infer(inTypes, checked);
  const outs = outTypes.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)).fill(NaN));
  def.reference({ inputs, outputs: outs, inTypes: inTypes.map((t) => ({ ...t, dtype: 'f32' })), outTypes, attrs: checked });
  return outs;
}

/** ‖got − want‖ / ‖want‖, failing on NaN (an unwritten, poisoned element). -Infinity equal to itself. */
function relErr(got: Float64Array, want: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i]!)) throw new Error(`element ${i} is NaN (unwritten?), want ${want[i]}`);
    if (got[i] === want[i]) continue;
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return num === 0 ? 0 : Math.sqrt(num / Math.max(den, 1e-300));
}

interface Case {
  B: number;
  H: number;
  Hkv: number;
  S: number;
  D: number;
  causal: boolean;
  layout: 'bhsd' | 'bshd';
}

const CASES: Case[] = [
  { B: 2, H: 4, Hkv: 4, S: 1, D: 64, causal: true, layout: 'bhsd' },
  { B: 1, H: 4, Hkv: 1, S: 77, D: 64, causal: true, layout: 'bhsd' }, // MQA
  { B: 1, H: 8, Hkv: 2, S: 77, D: 128, causal: false, layout: 'bshd' }, // GQA 4:1
  { B: 1, H: 2, Hkv: 2, S: 1000, D: 64, causal: true, layout: 'bhsd' },
  { B: 2, H: 4, Hkv: 2, S: 33, D: 40, causal: true, layout: 'bshd' }, // another head dim
];
// The error of one rounding to the output's format, with room for FP32 sums: bf16 outputs carry a
// relative error of about 2^-9 each; f32 ones about 1e-7.
const TOL: Record<Dt, number> = { f32: 2e-5, bf16: 1e-2 };

/**
 * The forward of a naive attention at the storage precision, as an unfused bf16 computation does it
 * (PyTorch's math SDPA on bf16 tensors): the scores q kᵀ · scale stored in the format, the softmax in
 * f32 stored in the format, then P · v stored in the format, each product accumulated in f32. The
 * fused kernel must be at least about as accurate: it keeps the scores and P in f32.
 */
function naiveAtPrecision(dt: Dt, c: Case, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const st = (x: number) => (dt === 'f32' ? Math.fround(x) : bf16BitsToF32(f32ToBf16Bits(x)));
  const at = (heads: number, b: number, h: number, s: number) => (c.layout === 'bhsd' ? ((b * heads + h) * c.S + s) * c.D : ((b * c.S + s) * heads + h) * c.D);
  const out = new Float64Array(q.length);
  const scale = 1 / Math.sqrt(c.D);
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.H; h++) {
      const hk = Math.floor(h / (c.H / c.Hkv));
      for (let i = 0; i < c.S; i++) {
        const end = c.causal ? i + 1 : c.S;
        const s = new Float64Array(end);
        for (let j = 0; j < end; j++) {
          let dot = 0;
          for (let d = 0; d < c.D; d++) dot = Math.fround(dot + Math.fround(q[at(c.H, b, h, i) + d]! * k[at(c.Hkv, b, hk, j) + d]!));
          s[j] = st(st(dot) * scale);
        }
        const m = Math.max(...s);
        let l = 0;
        const e = Array.from(s, (x) => Math.fround(Math.exp(x - m)));
        for (const x of e) l = Math.fround(l + x);
        const p = e.map((x) => st(x / l));
        for (let d = 0; d < c.D; d++) {
          let acc = 0;
          for (let j = 0; j < end; j++) acc = Math.fround(acc + Math.fround(p[j]! * v[at(c.Hkv, b, hk, j) + d]!));
          out[at(c.H, b, h, i) + d] = st(acc);
        }
      }
    }
  return out;
}

describe.skipIf(!gpu)('sdpa on CUDA', () => {
  for (const dt of ['f32', 'bf16'] as const)
    it.each(CASES.map((c) => [JSON.stringify(c), c] as const))(`forward and backward equal the float64 reference, ${dt} (%s)`, (_name, c) => {
      const attrs = { causal: c.causal, scale: 0, layout: c.layout };
      const shape = (heads: number) => (c.layout === 'bhsd' ? [c.B, heads, c.S, c.D] : [c.B, c.S, heads, c.D]);
      const t = (heads: number): ValueType => ({ shape: shape(heads), dtype: dt });
      const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => round(dt, randn(c.B * h * c.S * c.D)));
      const fwd = runCuda('sdpa', [t(c.H), t(c.Hkv), t(c.Hkv)], [q!, k!, v!], attrs);
      expect(fwd.kernel).toBe('sdpa_cuda_general');
      const [outRef, lseRef] = reference('sdpa', [t(c.H), t(c.Hkv), t(c.Hkv)], [q!, k!, v!], attrs);
      const err = relErr(fwd.outs[0]!, outRef!);
      expect(err).toBeLessThan(TOL[dt]);
      // No worse than a naive, unfused attention at the same precision (with a little room: both are
      // one rounding of the output away from the exact value at best).
      if (c.S <= 77) expect(err).toBeLessThanOrEqual(1.25 * relErr(naiveAtPrecision(dt, c, q!, k!, v!), outRef!) + 1e-7);
      expect(relErr(fwd.outs[1]!, lseRef!)).toBeLessThan(1e-5);
      // The backward from the reference's out and lse (out rounded to the storage format).
      const dout = round(dt, randn(q!.length));
      const out = round(dt, outRef!);
      const bwdTypes = [t(c.H), t(c.H), t(c.Hkv), t(c.Hkv), t(c.H), { shape: [c.B, c.H, c.S], dtype: 'f32' as const }];
      const bwdIn = [dout, q!, k!, v!, out, Float64Array.from(Float32Array.from(lseRef!))];
      const g1 = runCuda('sdpa_backward', bwdTypes, bwdIn, attrs);
      const g2 = runCuda('sdpa_backward', bwdTypes, bwdIn, attrs);
      expect(g1.kernel).toBe('sdpa_backward_cuda_general');
      const want = reference('sdpa_backward', bwdTypes, bwdIn, attrs);
      ['dq', 'dk', 'dv'].forEach((name, i) => {
        expect(relErr(g1.outs[i]!, round(dt, want[i]!)), name).toBeLessThan(TOL[dt]);
        expect(Array.from(g2.outs[i]!), `${name} bitwise the same on a second run`).toEqual(Array.from(g1.outs[i]!));
      });
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
});

// sdpa_qkv: the same kernels reading q, k and v in place in one packed qkv [B, S, H + 2·Hkv, D] and
// writing dq, dk, dv into one dqkv (every element of it: the outputs are poisoned first).
const QKV_CASES = [
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

describe.skipIf(!gpu)('sdpa_qkv on CUDA', () => {
  for (const dt of ['f32', 'bf16'] as const)
    it.each(QKV_CASES.map((c) => [JSON.stringify(c), c] as const))(`forward and backward equal the float64 reference and sdpa's kernels on the slices, ${dt} (%s)`, (_name, c) => {
      const all = c.H + 2 * c.Hkv;
      const attrs = { heads: c.H, causal: c.causal, scale: 0 };
      const t = (heads: number): ValueType => ({ shape: [c.B, c.S, heads, c.D], dtype: dt });
      const lseType: ValueType = { shape: [c.B, c.H, c.S], dtype: 'f32' };
      const qkv = round(dt, randn(c.B * c.S * all * c.D));
      const fwd = runCuda('sdpa_qkv', [t(all)], [qkv], attrs);
      expect(fwd.kernel).toBe('sdpa_qkv_cuda_general');
      const [outRef, lseRef] = reference('sdpa_qkv', [t(all)], [qkv], attrs);
      expect(relErr(fwd.outs[0]!, outRef!)).toBeLessThan(TOL[dt]);
      expect(relErr(fwd.outs[1]!, lseRef!)).toBeLessThan(1e-5);
      // The same arithmetic in the same order as sdpa's kernel on contiguous slices: the same bits.
      const part = (from: number, to: number) => headsOf(qkv, c.B * c.S, all, c.D, from, to);
      const sliced = runCuda('sdpa', [t(c.H), t(c.Hkv), t(c.Hkv)], [part(0, c.H), part(c.H, c.H + c.Hkv), part(c.H + c.Hkv, all)], { causal: c.causal, layout: 'bshd' });
      expect(Array.from(fwd.outs[0]!)).toEqual(Array.from(sliced.outs[0]!));
      expect(Array.from(fwd.outs[1]!)).toEqual(Array.from(sliced.outs[1]!));
      // The backward from the reference's out and lse (out rounded to the storage format).
      const dout = round(dt, randn(outRef!.length));
      const bwdTypes = [t(c.H), t(all), t(c.H), lseType];
      const bwdIn = [dout, qkv, round(dt, outRef!), Float64Array.from(Float32Array.from(lseRef!))];
      const g1 = runCuda('sdpa_qkv_backward', bwdTypes, bwdIn, attrs);
      const g2 = runCuda('sdpa_qkv_backward', bwdTypes, bwdIn, attrs);
      expect(g1.kernel).toBe('sdpa_qkv_backward_cuda_general');
      const [want] = reference('sdpa_qkv_backward', bwdTypes, bwdIn, attrs);
      const parts = [['dq', 0, c.H], ['dk', c.H, c.H + c.Hkv], ['dv', c.H + c.Hkv, all]] as const;
      parts.forEach(([name, from, to]) => {
        const got = headsOf(g1.outs[0]!, c.B * c.S, all, c.D, from, to);
        expect(relErr(got, round(dt, headsOf(want!, c.B * c.S, all, c.D, from, to))), name).toBeLessThan(TOL[dt]);
      });
      expect(Array.from(g2.outs[0]!), 'dqkv bitwise the same on a second run').toEqual(Array.from(g1.outs[0]!));
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
    const code = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        return [(err as DeepwellError).code, (err as Error).message];
      }
      return ['none', ''];
    };
    try {
      expect(code(call(...packed, arg(outBuf!)))).toEqual(['none', '']);
      // v one head further on: its last row passes the allocation's end.
      expect(code(call(packed[0], packed[1], arg(qkvBuf!, 2 * H * D + D), arg(outBuf!)))[0]).toBe('SHAPE_MISMATCH');
      expect(code(call(...packed, arg(outBuf!), [S * H * D, D, H * D + 1]))[0]).toBe('SHAPE_MISMATCH');
      expect(code(call(...packed, arg(qkvBuf!)))).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/out of sdpaForward not to overlap the input q/)]);
      expect(code(call(...packed, arg(outBuf!), [S * H * D, D, D / 2]))).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/rows do not overlap/)]);
      be.synchronize();
    } finally {
      for (const b of bufs) be.free(b!);
    }
  });
});

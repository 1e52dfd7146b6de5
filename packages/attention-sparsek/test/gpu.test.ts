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
import { checkAttrs, getOp, type KernelParams, type ValueType } from '@deepwell/ir';
import {
  DTYPE_CODE,
  Stream,
  cudaBackend,
  cudaStatus,
  deviceProperties,
  nativeEntries,
  registerCudaBackends,
  type CudaBuffer,
  type CudaCall,
  type DevArg,
} from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { scaledDotProductAttention } from '../src/index.js';

const gpu = cudaStatus().available ? (registerCudaBackends()[0] ?? null) : null;
// The flash candidates need compute capability 8.0 or newer; on an older GPU the general path is
// the expected choice for every call.
const cc = gpu ? deviceProperties(0) : null;
const flashDevice = cc !== null && cc.major * 10 + cc.minor >= 80;
const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
type Dt = 'f32' | 'bf16';
const DTS: readonly Dt[] = ['f32', 'bf16'];
const round = (dt: Dt, x: Float64Array) => (dt === 'f32' ? Float64Array.from(Float32Array.from(x)) : Float64Array.from(x, (y) => bf16BitsToF32(f32ToBf16Bits(y))));
const encode = (t: ValueType, x: Float64Array): ArrayBufferView => (t.dtype === 'bf16' ? Uint16Array.from(x, (y) => f32ToBf16Bits(y)) : Float32Array.from(x));
const decode = (t: ValueType, buf: CudaBuffer): Float64Array => {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const host = t.dtype === 'bf16' ? new Uint16Array(n) : new Float32Array(n);
  cudaBackend(0).read(buf, host);
  return t.dtype === 'bf16' ? Float64Array.from(host as Uint16Array, (b) => bf16BitsToF32(b)) : Float64Array.from(host as Float32Array);
};

/** A call of `op` on the GPU as the registry sees it: attributes checked, output types inferred. */
function paramsOf(op: string, inTypes: ValueType[], attrs: Record<string, unknown>): KernelParams {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  return { op, device: gpu!, inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
}

/** The kernel family a call should get: flash for bf16 at D 64 or 128 (on sm_80 and newer), else general. */
const familyOf = (dt: Dt, D: number) => (flashDevice && dt === 'bf16' && (D === 64 || D === 128) ? 'flash' : 'general');

/**
 * The names of the op's CUDA candidates that take the call, highest priority first, after checking
 * that `want` is among them and is the one `registry.select` picks: a fused kernel that declines a
 * call it should take fails here instead of passing quietly on the general path.
 */
function candidatesFor(p: KernelParams, want: string): string[] {
  const names = registry
    .candidates(p.op)
    .filter((k) => k.backend.startsWith('cuda') && k.supports(p) === true)
    .map((k) => k.name);
  const why = registry.explain(p.op, p).text;
  expect(names, why).toContain(want);
  expect(registry.select(p.op, p).name, why).toBe(want);
  return names;
}

/**
 * Runs the candidate `name` of p.op on `inputs`, with its outputs and its workspace poisoned with
 * 0xff first (a compiled step's arena hands scratch over uninitialised), and returns the outputs.
 */
function runCuda(p: KernelParams, name: string, inputs: Float64Array[]): Float64Array[] {
  const kernel = registry.candidates(p.op).find((k) => k.name === name);
  if (!kernel) throw new Error(`${p.op} has no candidate '${name}'\n${registry.explain(p.op, p).text}`);
  const verdict = kernel.supports(p);
  if (verdict !== true) throw new Error(`'${name}' does not take this call: ${verdict}\n${registry.explain(p.op, p).text}`);
  const be = cudaBackend(0);
  const stream = new Stream(0);
  const bytes = (t: ValueType) => Math.max(4, t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'bf16' ? 2 : 4));
  const arg = (b: CudaBuffer): DevArg => ({ base: b.ptr, offset: 0, bytes: b.bytes });
  const bufs: CudaBuffer[] = [];
  const alloc = (n: number) => {
    const b = be.alloc(n);
    bufs.push(b);
    return b;
  };
  const poisoned = (n: number) => {
    const b = alloc(n);
    be.memset(b, 0xff);
    return b;
  };
  try {
    const ins = p.inTypes.map((t, i) => {
      const b = alloc(bytes(t));
      be.write(b, encode(t, inputs[i]!));
      return arg(b);
    });
    const outBufs = p.outTypes.map((t) => poisoned(bytes(t)));
    const wsBytes: number = kernel.workspace?.(p) ?? 0;
    const workspace = wsBytes > 0 ? arg(poisoned(wsBytes)) : null;
    be.synchronize();
    const call: CudaCall<KernelParams> = { ...p, stream: stream.handle, inputs: ins, outputs: outBufs.map(arg), workspace };
    kernel.run(call);
    stream.synchronize();
    return p.outTypes.map((t, k) => decode(t, outBufs[k]!));
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

/**
 * A gradient's error: relErr, except that the denominator is at least 2^-16 of the gradient's natural
 * size (`natural`, per element). The difference matters only where the exact gradient vanishes: with
 * one visible key (S = 1, causal) the softmax of a single score has no gradient, so dq = dk = 0
 * exactly, and a kernel's dq, dk are the f32 rounding residue of dP − delta (about 1e-7), which no
 * relative measure against 0 can judge. Any real error (a missed block, a wrong scale) is O(natural).
 */
function gradErr(got: Float64Array, want: Float64Array, natural: number): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i]!)) throw new Error(`element ${i} is NaN (unwritten?), want ${want[i]}`);
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  const floor = 2 ** -16 * natural;
  return Math.sqrt(num / Math.max(den, floor * floor * got.length));
}

/** Root mean square. */
const rms = (x: Float64Array) => Math.sqrt(x.reduce((a, b) => a + b * b, 0) / x.length);

/**
 * The per-element size of dq and dk without cancellation, at the default scale 1/√D the tests use:
 * scale · D · rms(dout) · rms(v) · rms(k) (dP = dout·v sums D products; dq = scale · dS · k), with
 * rms(v) and rms(k) taken over all of x (q, k and v).
 */
const naturalGrad = (D: number, dout: Float64Array, x: Float64Array) => (D / Math.sqrt(D)) * rms(dout) * rms(x) * rms(x);

/** '' when a and b hold the same values bit for bit (+0 and -0 differ), else the first difference. */
function bitDiff(a: Float64Array, b: Float64Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} and ${b[i]}`;
  return '';
}

interface Case {
  B: number;
  H: number;
  Hkv: number;
  S: number;
  D: number;
  causal: boolean;
  layout: 'bhsd' | 'bshd';
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

/**
 * The forward of a naive attention at the storage precision, as an unfused bf16 computation does it
 * (PyTorch's math SDPA on bf16 tensors): the scores q kᵀ · scale stored in the format, the softmax in
 * f32 stored in the format, then P · v stored in the format, each product accumulated in f32. A fused
 * kernel must be at least about as accurate: it keeps the scores in f32 (and P in f32, or, in the
 * flash kernels, rounded to the format once, unnormalised, for the tensor cores).
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

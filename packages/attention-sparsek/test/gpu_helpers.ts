// What the GPU tests of this package share: the GPU (null without one), random inputs rounded to a
// storage format, running one CUDA candidate by name on poisoned outputs and workspace, the float64
// reference of an op, the error measures, and a naive attention at the storage precision (the
// accuracy a fused kernel must at least match), with an optional block mask for sparse attention.
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, registry } from '@deepwell/core';
import { checkAttrs, getOp, type KernelParams, type ValueType } from '@deepwell/ir';
import { Stream, cudaBackend, cudaStatus, deviceProperties, registerCudaBackends, type CudaBuffer, type CudaCall, type DevArg } from '@deepwell/kernels-native';
import { expect } from 'vitest';

export const gpu = cudaStatus().available ? (registerCudaBackends()[0] ?? null) : null;
// The flash candidates need compute capability 8.0 or newer; on an older GPU the general path is
// the expected choice for every call.
export const cc = gpu ? deviceProperties(0) : null;
export const flashDevice = cc !== null && cc.major * 10 + cc.minor >= 80;
export const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
export type Dt = 'f32' | 'bf16';
export const DTS: readonly Dt[] = ['f32', 'bf16'];
export const round = (dt: Dt, x: Float64Array) => (dt === 'f32' ? Float64Array.from(Float32Array.from(x)) : Float64Array.from(x, (y) => bf16BitsToF32(f32ToBf16Bits(y))));
export function encode(t: ValueType, x: Float64Array): ArrayBufferView {
  if (t.dtype === 'bf16') return Uint16Array.from(x, (y) => f32ToBf16Bits(y));
  if (t.dtype === 'f16') return Uint16Array.from(x, (y) => f32ToF16Bits(y));
  return t.dtype === 'i32' ? Int32Array.from(x) : Float32Array.from(x);
}
export const decode = (t: ValueType, buf: CudaBuffer): Float64Array => {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const half = t.dtype === 'bf16' || t.dtype === 'f16';
  const host = half ? new Uint16Array(n) : t.dtype === 'i32' ? new Int32Array(n) : new Float32Array(n);
  cudaBackend(0).read(buf, host);
  if (half) return Float64Array.from(host as Uint16Array, t.dtype === 'bf16' ? bf16BitsToF32 : f16BitsToF32);
  return Float64Array.from(host);
};

/** A call of `op` on the GPU as the registry sees it: attributes checked, output types inferred. */
export function paramsOf(op: string, inTypes: ValueType[], attrs: Record<string, unknown>): KernelParams {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  return { op, device: gpu!, inTypes, outTypes: def.infer(inTypes, checked), attrs: checked };
}

/** The kernel family a call should get: flash for bf16 at D 64 or 128 (on sm_80 and newer), else general. */
export const familyOf = (dt: Dt, D: number) => (flashDevice && dt === 'bf16' && (D === 64 || D === 128) ? 'flash' : 'general');

/**
 * The names of the op's CUDA candidates that take the call, highest priority first, after checking
 * that `want` is among them and is the one `registry.select` picks: a fused kernel that declines a
 * call it should take fails here instead of passing quietly on the general path.
 */
export function candidatesFor(p: KernelParams, want: string): string[] {
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
export function runCuda(p: KernelParams, name: string, inputs: Float64Array[]): Float64Array[] {
  const kernel = registry.candidates(p.op).find((k) => k.name === name);
  if (!kernel) throw new Error(`${p.op} has no candidate '${name}'\n${registry.explain(p.op, p).text}`);
  const verdict = kernel.supports(p);
  if (verdict !== true) throw new Error(`'${name}' does not take this call: ${verdict}\n${registry.explain(p.op, p).text}`);
  const be = cudaBackend(0);
  const stream = new Stream(0);
  const bytes = (t: ValueType) => Math.max(4, t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'bf16' || t.dtype === 'f16' ? 2 : 4));
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

export function reference(op: string, inTypes: ValueType[], inputs: Float64Array[], attrs: Record<string, unknown>): Float64Array[] {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const outTypes = def.infer(inTypes, checked);
  const outs = outTypes.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)).fill(NaN));
  def.reference({ inputs, outputs: outs, inTypes: inTypes.map((t) => (t.dtype === 'i32' ? t : { ...t, dtype: 'f32' })), outTypes, attrs: checked });
  return outs;
}

/** ‖got − want‖ / ‖want‖, failing on NaN (an unwritten, poisoned element). -Infinity equal to itself. */
export function relErr(got: Float64Array, want: Float64Array): number {
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
export function gradErr(got: Float64Array, want: Float64Array, natural: number): number {
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
export const rms = (x: Float64Array) => Math.sqrt(x.reduce((a, b) => a + b * b, 0) / x.length);

/**
 * The per-element size of dq and dk without cancellation, at the default scale 1/√D the tests use:
 * scale · D · rms(dout) · rms(v) · rms(k) (dP = dout·v sums D products; dq = scale · dS · k), with
 * rms(v) and rms(k) taken over all of x (q, k and v).
 */
export const naturalGrad = (D: number, dout: Float64Array, x: Float64Array) => (D / Math.sqrt(D)) * rms(dout) * rms(x) * rms(x);

/** '' when a and b hold the same values bit for bit (+0 and -0 differ), else the first difference. */
export function bitDiff(a: Float64Array, b: Float64Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} and ${b[i]}`;
  return '';
}
/**
 * The forward of a naive attention at the storage precision, as an unfused bf16 computation does it
 * (PyTorch's math SDPA on bf16 tensors): the scores q kᵀ · scale stored in the format, the softmax in
 * f32 stored in the format, then P · v stored in the format, each product accumulated in f32. A fused
 * kernel must be at least about as accurate: it keeps the scores in f32 (and P in f32, or, in the
 * flash kernels, rounded to the format once, unnormalised, for the tensor cores).
 */
export interface NaiveCase {
  B: number;
  H: number;
  Hkv: number;
  S: number;
  D: number;
  causal: boolean;
  layout: 'bhsd' | 'bshd';
}

export function naiveAtPrecision(
  dt: Dt, c: NaiveCase, q: Float64Array, k: Float64Array, v: Float64Array,
  /** Which keys query i of head h sees besides the causal rule (block-sparse attention's mask); default all. */
  visible: (b: number, h: number, i: number, j: number) => boolean = () => true,
): Float64Array {
  const st = (x: number) => (dt === 'f32' ? Math.fround(x) : bf16BitsToF32(f32ToBf16Bits(x)));
  const at = (heads: number, b: number, h: number, s: number) => (c.layout === 'bhsd' ? ((b * heads + h) * c.S + s) * c.D : ((b * c.S + s) * heads + h) * c.D);
  const out = new Float64Array(q.length);
  const scale = 1 / Math.sqrt(c.D);
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.H; h++) {
      const hk = Math.floor(h / (c.H / c.Hkv));
      for (let i = 0; i < c.S; i++) {
        const end = c.causal ? i + 1 : c.S;
        const s = new Float64Array(end).fill(-Infinity);
        for (let j = 0; j < end; j++) {
          if (!visible(b, h, i, j)) continue;
          let dot = 0;
          for (let d = 0; d < c.D; d++) dot = Math.fround(dot + Math.fround(q[at(c.H, b, h, i) + d]! * k[at(c.Hkv, b, hk, j) + d]!));
          s[j] = st(st(dot) * scale);
        }
        const m = Math.max(...s);
        let l = 0;
        const e = Array.from(s, (x) => (x === -Infinity ? 0 : Math.fround(Math.exp(x - m))));
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

// What the FP8 GEMM tests share: their error measures, exact comparison, a result's values, bf16
// rounding of a reference (nearestBf16), and a quantizer's blockwise scales re-laid into the GEMM's
// layout on the host with the 128 × 128 padding NaN (so a kernel that reads it fails).
import { bf16BitsToF32, f32ToBf16Bits, type Tensor } from '@deepwell/core';
import { checkAttrs, getOp, type Attrs, type NumArray, type ValueType } from '@deepwell/ir';
import { gemmBlockScales, type QuantizedTensor } from '../src/index.js';

/** Random finite FP8 codes: e4m3's NaNs (S.1111.111) and e5m2's NaNs and infinities (S.11111.xx) redrawn. */
export function randomCodes(n: number, f: 'e4m3' | 'e5m2'): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let c: number;
    do c = Math.floor(Math.random() * 256);
    while (f === 'e4m3' ? (c & 0x7f) === 0x7f : (c & 0x7c) === 0x7c);
    out[i] = c;
  }
  return out;
}

/** A bf16 or f32 result's values, in float64. */
export const valuesOf = (t: Tensor): Float64Array => (t.dtype === 'bf16' ? Float64Array.from(t.toHost() as Uint16Array, bf16BitsToF32) : Float64Array.from(t.toHost() as Float32Array));

/** The first index where got and want differ (NaN equals NaN, -0 differs from +0), or -1. */
export function firstDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Math.min(got.length, want.length);
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]!) && Number.isNaN(want[i]!))) return i;
  return -1;
}

/** ‖d − x·wᵀ‖ / ‖x·wᵀ‖ for d [M, N], x [M, K], w [N, K] (row-major): the product d stands for. */
export function productError(d: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>, M: number, N: number, K: number): number {
  let num = 0;
  let den = 0;
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      num += (d[m * N + n]! - s) ** 2;
      den += s * s;
    }
  return Math.sqrt(num / den);
}

/** ‖got − want‖ / ‖want‖, throwing on NaN (an unwritten element, or a padding scale read). */
export function relErr(got: ArrayLike<number>, want: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]!)) throw new Error(`element ${i} is NaN (unwritten, or a padding scale was read)`);
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** q's rowwise blockwise scales (plain layout) in the 'gemm' layout, padding NaN, with their shape. */
export function gemmLayoutScales(q: QuantizedTensor): { data: Float32Array; shape: number[] } {
  const format = q.format as 'fp8-block1x128' | 'fp8-block128x128';
  const [R, K] = [q.rows, q.cols];
  const data = gemmBlockScales(format, q.rowwise!.scales!.toHost() as Float32Array, R, K);
  const L = K / 128;
  if (format === 'fp8-block1x128') return { data, shape: [L, R] };
  const [RB, L4] = [Math.ceil(R / 128), Math.ceil(L / 4) * 4];
  for (let rb = 0; rb < RB; rb++) data.fill(NaN, rb * L4 + L, (rb + 1) * L4);
  return { data, shape: [RB, L4] };
}

/** x rounded to the nearest bf16 value (ties to the even code), by search among the neighbours. */
export function nearestBf16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  if (Math.abs(x) >= (2 - 2 ** -8) * 2 ** 127) return Math.sign(x) * Infinity;
  const c = f32ToBf16Bits(x);
  let best = c;
  for (const k of [c - 1, c + 1]) {
    if ((k & 0x8000) !== (c & 0x8000) || (k & 0x7fff) >= 0x7f80) continue;
    const dk = Math.abs(bf16BitsToF32(k) - x);
    const db = Math.abs(bf16BitsToF32(best) - x);
    if (dk < db || (dk === db && k % 2 === 0)) best = k;
  }
  return bf16BitsToF32(best);
}

/** Runs an op's CPU reference on inputs of the given types; every output poisoned (NaN) first. */
export function runReference(op: string, inputs: NumArray[], inTypes: ValueType[], attrs: Attrs): Float64Array[] {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const outTypes = def.infer(inTypes, checked);
  const outs = outTypes.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)).fill(Number.NaN));
  def.reference({ inputs, outputs: outs, inTypes, outTypes, attrs: checked });
  return outs;
}

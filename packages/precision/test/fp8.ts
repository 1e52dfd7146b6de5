// What the FP8 GEMM tests share: their error measure, and a quantizer's blockwise scales re-laid
// into the GEMM's layout on the host with the 128 × 128 padding NaN (so a kernel that reads it fails).
import { gemmBlockScales, type QuantizedTensor } from '../src/index.js';

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

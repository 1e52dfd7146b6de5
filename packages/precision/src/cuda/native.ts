/**
 * Facts of the formats that the quantization entry points of @deepwell/kernels-native (native/quant,
 * signatures and format codes in its ABI table) need: the sizes of what each call writes. Callers
 * check their arguments before these; the native side checks them again.
 */
import { fakeQuantBlocking, type FakeQuantFormat } from '../ops/fake_quant.js';

export type AnyFormat = FakeQuantFormat;

// Facts of a format, from fake_quant's one table of blockings.
export const isFp4 = (f: AnyFormat): boolean => fakeQuantBlocking(f).element === 'e2m1';
export const isMx = (f: AnyFormat): boolean => fakeQuantBlocking(f).kind === 'mx';
/** Tensorwise FP8 and NVFP4: an FP32 scale for the whole tensor, from its amax. */
export const hasTensorScale = (f: AnyFormat): boolean => ['tensorwise', 'nvfp4'].includes(fakeQuantBlocking(f).kind);
/** Elements per scale along the blocks (null: one scale for the tensor). */
export const blockAlong = (f: AnyFormat): number | null => fakeQuantBlocking(f).block;

/**
 * Bytes of the scales of a stored [R, C] matrix (blocks along C), in the plain layout or (`gemm`)
 * the GEMM's: MX and NVFP4 codes in 128 × 4 tiles; blockwise FP8 as scaledGemmLt reads it, the
 * 128 × 128 tiles' K-block count padded to a multiple of 4.
 */
export function scaleBytes(f: AnyFormat, R: number, C: number, gemm: boolean): number {
  if (f === 'fp8-e4m3' || f === 'fp8-e5m2') return 0;
  if (f === 'fp8-block1x128') return R * (C / 128) * 4;
  const L = Math.ceil(C / 128);
  if (f === 'fp8-block128x128') return Math.ceil(R / 128) * (gemm ? Math.ceil(L / 4) * 4 : L) * 4;
  const n = C / blockAlong(f)!;
  return gemm ? Math.ceil(R / 128) * Math.ceil(n / 4) * 512 : R * n;
}

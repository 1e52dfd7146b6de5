/**
 * The quantization entry points of @deepwell/kernels-native (native/quant/, whose files' headers
 * document each signature), reached through @deepwell/ir's nativeOps(): format codes, and the
 * sizes of what each call writes. Callers check their arguments before these; the native side
 * checks them again.
 */
import { fakeQuantBlocking, type FakeQuantFormat } from '../ops/fake_quant.js';

export type AnyFormat = FakeQuantFormat;

export const FORMAT_CODE: Readonly<Record<AnyFormat, number>> = Object.freeze({
  'mxfp8-e4m3': 0,
  'mxfp8-e5m2': 1,
  mxfp4: 2,
  nvfp4: 3,
  'fp8-e4m3': 4,
  'fp8-e5m2': 5,
  'fp8-block1x128': 6,
  'fp8-block128x128': 7,
});

// Facts of a format, from fake_quant's one table of blockings.
export const isFp4 = (f: AnyFormat): boolean => fakeQuantBlocking(f).element === 'e2m1';
export const isMx = (f: AnyFormat): boolean => fakeQuantBlocking(f).kind === 'mx';
/** Tensorwise FP8 and NVFP4: an FP32 scale for the whole tensor, from its amax. */
export const hasTensorScale = (f: AnyFormat): boolean => ['tensorwise', 'nvfp4'].includes(fakeQuantBlocking(f).kind);
/** Elements per scale along the blocks (null: one scale for the tensor). */
export const blockAlong = (f: AnyFormat): number | null => fakeQuantBlocking(f).block;

/** Bytes of the scales of a stored [R, C] matrix (blocks along C), plain or 128 × 4 tiled. */
export function scaleBytes(f: AnyFormat, R: number, C: number, tiled: boolean): number {
  if (f === 'fp8-e4m3' || f === 'fp8-e5m2') return 0;
  if (f === 'fp8-block1x128') return R * (C / 128) * 4;
  if (f === 'fp8-block128x128') return Math.ceil(R / 128) * Math.ceil(C / 128) * 4;
  const n = C / blockAlong(f)!;
  return tiled ? Math.ceil(R / 128) * Math.ceil(n / 4) * 512 : R * n;
}

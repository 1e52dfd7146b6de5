/**
 * The quantization entry points of @deepwell/kernels-native (native/quant/quantize.cu, whose header
 * documents each signature), reached through @deepwell/ir's nativeOps(): format codes, and the
 * sizes of what each call writes. Callers check their arguments before these; the native side
 * checks them again.
 */
import type { Format } from '../quantize.js';
import type { BlockFp8 } from '../layout.js';

export type AnyFormat = Format | BlockFp8;

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

/** The native entry points these files call (registerCuda's `needs`). */
export const QUANT_ENTRY_POINTS = ['quantAmax', 'quantize', 'dequantize', 'fakeQuant'] as const;

export const isFp4 = (f: AnyFormat): boolean => f === 'mxfp4' || f === 'nvfp4';
export const isMx = (f: AnyFormat): boolean => f.startsWith('mx');
export const hasTensorScale = (f: AnyFormat): boolean => f === 'nvfp4' || f === 'fp8-e4m3' || f === 'fp8-e5m2';

/** Elements per scale along the blocks (null: one scale for the tensor). */
export function blockAlong(f: AnyFormat): number | null {
  return isMx(f) ? 32 : f === 'nvfp4' ? 16 : f === 'fp8-e4m3' || f === 'fp8-e5m2' ? null : 128;
}

/** Bytes of the codes of a stored [R, C] matrix. */
export const codeBytes = (f: AnyFormat, R: number, C: number): number => (isFp4(f) ? (R * C) / 2 : R * C);

/** Bytes of the scales of a stored [R, C] matrix (blocks along C), plain or 128 × 4 tiled. */
export function scaleBytes(f: AnyFormat, R: number, C: number, tiled: boolean): number {
  if (f === 'fp8-e4m3' || f === 'fp8-e5m2') return 0;
  if (f === 'fp8-block1x128') return R * (C / 128) * 4;
  if (f === 'fp8-block128x128') return Math.ceil(R / 128) * Math.ceil(C / 128) * 4;
  const n = C / blockAlong(f)!;
  return tiled ? Math.ceil(R / 128) * Math.ceil(n / 4) * 512 : R * n;
}

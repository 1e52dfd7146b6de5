/**
 * quantize / dequantize on plain arrays of values (blocks of consecutive elements):
 *   'mxfp8-e4m3' | 'mxfp8-e5m2' | 'mxfp4'   OCP MX, blocks of 32, E8M0 scales, scaleMode 'floor' | 'rceil'
 *   'nvfp4'                                  blocks of 16, E4M3 scales, an FP32 tensor scale
 *   'fp8-e4m3' | 'fp8-e5m2'                  tensorwise FP8, as torchao: m = f32(max_elem / amax),
 *                                            elements E(f32(x · m)) saturating, one FP32 decode
 *                                            scale s = f32(1 / m) (m = s = 1 when amax is 0)
 * Tensorwise FP8 and NVFP4 take the tensor amax from x, or from options.amax (delayed scaling).
 * Inputs are Float32Array, Float64Array or arrays of numbers (bf16 values are f32 values). Errors
 * name what is wrong: an unknown format or scale mode, a length that is not a whole number of
 * blocks, an input that is not an array of numbers.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { ELEMENTS, decodeElement, encodeElement, type ElementFormat } from './elements.js';
import { NVFP4_BLOCK, amaxOf, fp8Scaling, dequantizeMx, dequantizeNvfp4, quantizeMx, quantizeNvfp4, type ScaleMode } from './blocks.js';

export const FORMATS = ['mxfp8-e4m3', 'mxfp8-e5m2', 'mxfp4', 'nvfp4', 'fp8-e4m3', 'fp8-e5m2'] as const;
export type Format = (typeof FORMATS)[number];

export interface QuantizeOptions {
  format: Format;
  /** MX formats only (default 'floor', the OCP specification's). */
  scaleMode?: ScaleMode;
  /**
   * Tensorwise FP8 and NVFP4 only: the amax the tensor scale comes from, instead of x's own (delayed
   * scaling: an AmaxHistory's). Values beyond it saturate.
   */
  amax?: number;
}

export interface Quantized {
  format: Format;
  scaleMode: ScaleMode | null;
  /** Number of elements. */
  length: number;
  /** Elements per scale (the whole tensor for tensorwise FP8). */
  blockSize: number;
  /** Element codes: one per byte, or two per byte (low nibble first) for mxfp4 and nvfp4. */
  data: Uint8Array;
  /** Block scale codes (E8M0 for MX, E4M3 for NVFP4); empty for tensorwise FP8. */
  scales: Uint8Array;
  /** The FP32 per-tensor scale (NVFP4, tensorwise FP8); null for MX. */
  globalScale: number | null;
}

const MX: Partial<Record<Format, ElementFormat>> = { 'mxfp8-e4m3': ELEMENTS.e4m3, 'mxfp8-e5m2': ELEMENTS.e5m2, mxfp4: ELEMENTS.e2m1 };
const TENSORWISE: Partial<Record<Format, ElementFormat>> = { 'fp8-e4m3': ELEMENTS.e4m3, 'fp8-e5m2': ELEMENTS.e5m2 };

function checkInput(x: unknown): ArrayLike<number> {
  const ok = x instanceof Float32Array || x instanceof Float64Array || (Array.isArray(x) && x.every((v) => typeof v === 'number'));
  if (!ok) throw new DeepwellError('INVALID_DTYPE', `Expected a Float32Array, Float64Array or array of numbers to quantize but received ${describe(x)}`);
  return x as ArrayLike<number>;
}

function checkFormat(format: unknown): Format {
  if (!(FORMATS as readonly unknown[]).includes(format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a format (${FORMATS.join(', ')}) but received ${describe(format)}`);
  return format as Format;
}

/** Elements per block scale: 32 for MX, 16 for NVFP4, null for tensorwise FP8 (one scale in all). */
export function blockSizeOf(format: Format): number | null {
  return MX[format] ? 32 : format === 'nvfp4' ? NVFP4_BLOCK : null;
}

export function quantize(x: Float32Array | Float64Array | readonly number[], options: QuantizeOptions): Quantized {
  const xs = checkInput(x);
  const format = checkFormat(options?.format);
  const mode = options.scaleMode ?? 'floor';
  if (mode !== 'floor' && mode !== 'rceil') throw new DeepwellError('INVALID_ARGUMENT', `Expected scaleMode 'floor' or 'rceil' but received ${describe(options.scaleMode)}`);
  if (options.scaleMode !== undefined && !MX[format]) throw new DeepwellError('INVALID_ARGUMENT', `Expected no scaleMode for ${format} (its scales are not powers of two) but received ${describe(options.scaleMode)}`);
  if (options.amax !== undefined) {
    if (format !== 'nvfp4' && !TENSORWISE[format]) throw new DeepwellError('INVALID_ARGUMENT', `Expected no amax for ${format} (its scales come from each block) but received ${describe(options.amax)}`);
    if (typeof options.amax !== 'number' || !Number.isFinite(options.amax) || options.amax < 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite amax >= 0 but received ${describe(options.amax)}`);
  }
  const n = xs.length;
  const block = blockSizeOf(format) ?? Math.max(1, n);
  if (n % block !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a length divisible by ${format}'s block of ${block} elements but received ${n}`);
  const base = { format, length: n, blockSize: block };
  const mx = MX[format];
  if (mx) {
    const q = quantizeMx(xs, mx, mode, block);
    return { ...base, scaleMode: mode, data: q.data, scales: q.scales, globalScale: null };
  }
  if (format === 'nvfp4') {
    const q = quantizeNvfp4(xs, options.amax);
    return { ...base, scaleMode: null, data: q.data, scales: q.scales, globalScale: q.globalScale };
  }
  const elem = TENSORWISE[format]!;
  const amax = options.amax ?? amaxOf(xs, 0, n).amax;
  const { mul, scale } = fp8Scaling(amax, elem.max);
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = encodeElement(elem, Math.fround(xs[i]! * mul), { saturate: true });
  return { ...base, scaleMode: null, data, scales: new Uint8Array(0), globalScale: scale };
}

export function dequantize(q: Quantized): Float32Array {
  const format = checkFormat(q?.format);
  const mx = MX[format];
  if (mx) return dequantizeMx(q, mx, q.length, q.blockSize);
  if (format === 'nvfp4') return dequantizeNvfp4({ data: q.data, scales: q.scales, globalScale: q.globalScale! }, q.length);
  const elem = TENSORWISE[format]!;
  return Float32Array.from(q.data, (c) => decodeElement(elem, c) * q.globalScale!);
}

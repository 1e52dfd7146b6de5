/**
 * quantize / dequantize on plain arrays of values (blocks of consecutive elements):
 *   'mxfp8-e4m3' | 'mxfp8-e5m2' | 'mxfp4'   OCP MX, blocks of 32, E8M0 scales, scaleMode 'floor' | 'rceil'
 *   'nvfp4'                                  blocks of 16, E4M3 scales, an FP32 tensor scale
 *   'fp8-e4m3' | 'fp8-e5m2'                  tensorwise FP8, as torchao: m = f32(max_elem / amax),
 *                                            elements E(f32(x · m)) saturating, one FP32 decode
 *                                            scale s = f32(1 / m) (m = s = 1 when amax is 0)
 * Tensorwise FP8 and NVFP4 take the tensor amax from x, or from options.amax (delayed scaling).
 * Inputs are Float32Array, Float64Array or arrays of numbers (bf16 values are f32 values). Errors
 * name what is wrong: an unknown format, scale mode or option, a length that is not a whole number
 * of blocks, an input that is not an array of numbers.
 *
 * Extremes (issue 20), decided so that nothing decodes to NaN or 0 that should not:
 *   - a finite input value beyond float32's range (a Float64Array's 1e300) is refused with its
 *     index: no float32 operand holds it, and its amax would overflow the scales. NaN and ±Inf are
 *     accepted with the meaning each format gives them (a NaN block, saturation).
 *   - options.amax must be finite, >= 0 and within float32's range (1e300 refused, not a NaN scale).
 *   - a tiny amax keeps a finite, non-zero scale: tensorwise FP8's multiplier stops at float32's
 *     largest (the scale is then f32(1 / F32_MAX), and values keep the element format's absolute
 *     precision at that scale); NVFP4's g stops at 2^-149 instead of underflowing to 0 (blocks.ts).
 *     An amax of exactly 0 is an all-zero tensor: every code 0 (s = 1 for FP8, g = 0 for NVFP4).
 *   - decoded values are rounded to float32 as any conversion is (and as the GPU's dequantize
 *     kernels do): a value that rounds to 2^128 at the element's precision decodes to ±Infinity,
 *     as bf16(F32_MAX) is Infinity. That takes |x| >= 2^128 · (1 − 2^-(mantissa bits + 2)):
 *     with MX 'rceil' (whose scale puts a block's amax just below a power of two) from 2.98e38
 *     for E2M1, 3.19e38 for E5M2, 3.30e38 for E4M3; with tensorwise FP8 and NVFP4 only within a
 *     rounding of F32_MAX. Nothing finite decodes to NaN.
 * dequantize checks every field of the Quantized it is given (format, sizes, byte lengths, scale
 * codes, the tensor scale) before it reads any: a Quantized whose parts do not fit is refused.
 */
import { DeepwellError, checkInteger, describe, invalid } from '@deepwell/core';
import { ELEMENTS, decodeCode, encodeValue, type ElementFormat } from './elements.js';
import { NVFP4_BLOCK, amaxOf, checkNvfp4Parts, decodeMx, decodeNvfp4, encodeMx, encodeNvfp4, fp8Scaling, type ScaleMode } from './blocks.js';
import { F32_MAX, checkAmax, checkBytes, checkOptions, checkScaleMode, checkValues } from './guards.js';

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

function checkFormat(format: unknown): Format {
  if (!(FORMATS as readonly unknown[]).includes(format)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a format (${FORMATS.join(', ')}) but received ${describe(format)}`);
  return format as Format;
}

/** Elements per block scale: 32 for MX, 16 for NVFP4, null for tensorwise FP8 (one scale in all). */
export function blockSizeOf(format: Format): number | null {
  checkFormat(format);
  return MX[format] ? 32 : format === 'nvfp4' ? NVFP4_BLOCK : null;
}

export function quantize(x: Float32Array | Float64Array | readonly number[], options: QuantizeOptions): Quantized {
  if (typeof options !== 'object' || options === null) invalid('quantize options ({ format, scaleMode?, amax? })', 'quantize', options);
  checkOptions<QuantizeOptions>(options, ['format', 'scaleMode', 'amax'], 'quantize');
  const format = checkFormat(options.format);
  const xs = checkValues(x, 'the values to quantize');
  const mode = options.scaleMode === undefined ? 'floor' : options.scaleMode; // null is not a mode
  if (mode !== 'floor' && mode !== 'rceil') throw new DeepwellError('INVALID_ARGUMENT', `Expected scaleMode 'floor' or 'rceil' but received ${describe(options.scaleMode)}`);
  if (options.scaleMode !== undefined && !MX[format]) throw new DeepwellError('INVALID_ARGUMENT', `Expected no scaleMode for ${format} (its scales are not powers of two) but received ${describe(options.scaleMode)}`);
  if (options.amax !== undefined) {
    if (format !== 'nvfp4' && !TENSORWISE[format]) throw new DeepwellError('INVALID_ARGUMENT', `Expected no amax for ${format} (its scales come from each block) but received ${describe(options.amax)}`);
    checkAmax(options.amax);
  }
  const n = xs.length;
  const block = blockSizeOf(format) ?? Math.max(1, n);
  if (n % block !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a length divisible by ${format}'s block of ${block} elements but received ${n}`);
  const base = { format, length: n, blockSize: block };
  const mx = MX[format];
  if (mx) {
    const q = encodeMx(xs, mx, mode, block);
    return { ...base, scaleMode: mode, data: q.data, scales: q.scales, globalScale: null };
  }
  if (format === 'nvfp4') {
    const q = encodeNvfp4(xs, options.amax);
    return { ...base, scaleMode: null, data: q.data, scales: q.scales, globalScale: q.globalScale };
  }
  const elem = TENSORWISE[format]!;
  const amax = options.amax ?? amaxOf(xs, 0, n).amax;
  const { mul, scale } = fp8Scaling(amax, elem.max);
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = encodeValue(elem, Math.fround(xs[i]! * mul), true);
  return { ...base, scaleMode: null, data, scales: new Uint8Array(0), globalScale: scale };
}

/**
 * A Quantized checked field by field before anything is read: the format, a scaleMode that fits
 * it, the length, the block size the format has (the whole tensor for tensorwise FP8), the codes'
 * and the scales' byte counts, NVFP4's unsigned scale codes and a float32 tensor scale (> 0 for
 * tensorwise FP8, >= 0 for NVFP4, null for MX).
 */
function checkQuantized(q: unknown): Quantized {
  if (typeof q !== 'object' || q === null) invalid('a Quantized from quantize() ({ format, scaleMode, length, blockSize, data, scales, globalScale })', 'dequantize', q);
  const r = q as Quantized;
  const format = checkFormat(r.format);
  const mx = MX[format];
  if (r.scaleMode !== null && r.scaleMode !== undefined) {
    if (mx) checkScaleMode(r.scaleMode, 'the Quantized scaleMode');
    else invalid(`null for the scaleMode of ${format}`, 'the Quantized scaleMode', r.scaleMode);
  }
  const n = checkInteger(r.length, 'the Quantized length', 0);
  const block = blockSizeOf(format) ?? Math.max(1, n);
  if (r.blockSize !== block) invalid(`${block} (${format}'s ${MX[format] || format === 'nvfp4' ? 'block' : 'one block: the whole tensor'})`, 'the Quantized blockSize', r.blockSize);
  if (n % block !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a Quantized length divisible by ${format}'s block of ${block} but received ${n}`);
  const fp4 = format === 'mxfp4' || format === 'nvfp4';
  if (format === 'nvfp4') checkNvfp4Parts(r.data, r.scales, r.globalScale, n, 'the Quantized');
  else {
    checkBytes(r.data, fp4 ? n / 2 : n, 'the Quantized data');
    checkBytes(r.scales, mx ? n / block : 0, 'the Quantized scales');
    const g = r.globalScale;
    if (mx && g !== null && g !== undefined) invalid(`null for the globalScale of ${format}`, 'the Quantized globalScale', g);
    if (!mx && (typeof g !== 'number' || !(g > 0 && g <= F32_MAX) || Math.fround(g) !== g)) invalid('a float32 decode scale > 0', 'the Quantized globalScale', g);
  }
  return r;
}

export function dequantize(q: Quantized): Float32Array {
  const r = checkQuantized(q);
  const mx = MX[r.format];
  if (mx) return decodeMx(r, mx, r.length, r.blockSize);
  if (r.format === 'nvfp4') return decodeNvfp4({ data: r.data, scales: r.scales, globalScale: r.globalScale! }, r.length);
  const elem = TENSORWISE[r.format]!;
  const s = r.globalScale!;
  return Float32Array.from(r.data, (c) => decodeCode(elem, c) * s);
}

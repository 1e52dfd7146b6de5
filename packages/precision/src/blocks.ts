/**
 * Block-scaled formats, reference codecs: MXFP8 (E4M3 or E5M2 elements) and MXFP4 (E2M1) as the
 * OCP Microscaling v1.0 specification defines them, and NVFP4.
 *
 * MX (blocks of 32 consecutive elements, one E8M0 scale each):
 *   - scale 'floor' (the specification's): X = 2^(floor(log2(amax)) − emax_elem), amax the block's
 *     largest magnitude; elements P = RNE(V / X) saturated to the element's largest normal (so the
 *     block's largest values may clamp).
 *   - scale 'rceil' (what NVIDIA's libraries use): X = 2^ceil(log2(amax / max_elem)), the smallest
 *     power of two with amax / X ≤ max_elem, so nothing saturates. Computed exactly (no rounded
 *     division decides the exponent).
 *   - The exponent is clamped to E8M0's [−127, 127]. Deepwell's definitions of the cases the
 *     specification leaves open: a block holding NaN or ±Inf gets the NaN scale (0xFF) and zero
 *     codes, and decodes to NaN throughout; an all-zero block gets X = 2^−127 and its zeros keep
 *     their signs; values below the element's range become its subnormals or ±0 by RNE.
 * NVFP4 (blocks of 16, E2M1 elements, an E4M3 scale per block, one FP32 scale per tensor):
 *   g = f32(amax_tensor / (448 · 6)); per block s = E4M3(f32(f32(amax_block / 6) / g)) (RNE,
 *   saturating); elements P = E2M1(f32(V / f32(s · g))) saturating; value = P · s · g. f32(·) is
 *   rounding to float32 (the arithmetic a GPU kernel does, each operation correctly rounded).
 *   g = 0 (an all-zero tensor) or s = 0 (a block scale that underflows) give zero codes. NaN or Inf
 *   in a block gives it the E4M3 NaN scale (0x7F) and zero codes; the tensor's amax ignores them.
 *   A tiny amax does not make g 0 (issue 20): for amax > 0, g is at least 2^-149 (NVFP4_MIN_G, the
 *   smallest positive float32), where f32(amax / 2688) would underflow to 0 (amax below about
 *   3.9e-42, an f32 subnormal) and turn every element into 0. Where g (and so s · g) is subnormal,
 *   the encoder divides by f32(s · g) while the decoder multiplies by the exact s · g: decoded values
 *   then carry an extra absolute error of at most 6 · 2^-150 (below float32's own subnormal step).
 * Inputs are float32 values (a Float64Array's values must lie within float32's range: the public
 * entry points refuse others); NaN and ±Inf are handled as above.
 * E2M1 codes are packed two per byte, element 2i in the low nibble (as torch.float4_e2m1fn_x2).
 */
import { DeepwellError, checkInteger, invalid, packNibbles, unpackNibbles } from '@deepwell/core';
import { E8M0_NAN, decodeCode, e8m0Value, encodeE8m0, encodeValue, ilog2, type ElementFormat, ELEMENTS } from './elements.js';
import { F32_MAX, checkAmax, checkBytes, checkElement, checkScaleMode, checkValues } from './guards.js';

export type ScaleMode = 'floor' | 'rceil';

const fround = Math.fround;

/**
 * Tensorwise and blockwise FP8 scaling, as torchao's dynamic scaling: the multiplier m =
 * f32(max_elem / amax) (f32's largest where that overflows, 1 for an amax of 0), elements
 * E(f32(x · m)) saturating, and the decode scale s = f32(1 / m). A multiplication per element,
 * not a division: the quantizers run at memory speed (a correctly rounded division per element
 * made the tensorwise register path compute-bound on the H200).
 */
export function fp8Scaling(amax: number, maxElem: number): { mul: number; scale: number } {
  // amax <= F32_MAX (checked by every entry point) keeps mul >= f32(448 / F32_MAX) > 0 and scale finite.
  let mul = amax === 0 ? 1 : fround(maxElem / amax);
  if (!Number.isFinite(mul)) mul = F32_MAX;
  return { mul, scale: fround(1 / mul) };
}

/** The largest finite magnitude of x[from, to), and whether a NaN or ±Inf is among them. */
export function amaxOf(x: ArrayLike<number>, from: number, to: number): { amax: number; special: boolean } {
  let amax = 0;
  let special = false;
  for (let i = from; i < to; i++) {
    const v = x[i]!;
    if (!Number.isFinite(v)) special = true;
    else if (Math.abs(v) > amax) amax = Math.abs(v);
  }
  return { amax, special };
}

/** The shared exponent of a block of finite values with largest magnitude amax > 0. */
export function mxExponent(elem: ElementFormat, amax: number, mode: ScaleMode): number {
  checkElement(elem, 'mxExponent');
  if (typeof amax !== 'number' || !(amax > 0 && amax <= F32_MAX)) invalid(`a block amax > 0 and <= ${F32_MAX}`, 'mxExponent', amax);
  return exponentOf(elem, amax, checkScaleMode(mode));
}

function exponentOf(elem: ElementFormat, amax: number, mode: ScaleMode): number {
  let e: number;
  if (mode === 'floor') e = ilog2(amax) - elem.emax;
  else {
    // Smallest e with max_elem · 2^e ≥ amax (products of a float64 and a power of two are exact).
    e = ilog2(amax) - ilog2(elem.max) - 1;
    while (elem.max * 2 ** e < amax) e++;
  }
  return Math.min(127, Math.max(-127, e));
}

export interface MxBlocks {
  /** Element codes: one per byte (MXFP8) or two per byte, low nibble first (MXFP4). */
  data: Uint8Array;
  /** One E8M0 code per block. */
  scales: Uint8Array;
}

export function quantizeMx(x: ArrayLike<number>, elem: ElementFormat, mode: ScaleMode, block = 32): MxBlocks {
  const xs = checkValues(x, 'quantizeMx x');
  checkElement(elem, 'quantizeMx');
  checkScaleMode(mode);
  checkBlocks(xs.length, block, elem, 'quantizeMx');
  return encodeMx(xs, elem, mode, block);
}

/** The length and block of a block codec call: whole blocks, and whole bytes for 4-bit codes. */
function checkBlocks(n: number, block: unknown, elem: ElementFormat, what: string): void {
  checkInteger(block, `${what} block`, 1);
  if (n % (block as number) !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected a length divisible by the block of ${block as number} for ${what} but received ${n}`);
  if (elem.bits === 4 && n % 2 !== 0) throw new DeepwellError('SHAPE_MISMATCH', `Expected an even length for ${what} (4-bit codes, two per byte) but received ${n}`);
}

/** quantizeMx without the checks (quantize() checked its input). */
export function encodeMx(x: ArrayLike<number>, elem: ElementFormat, mode: ScaleMode, block: number): MxBlocks {
  const n = x.length;
  const codes = new Uint8Array(n);
  const scales = new Uint8Array(n / block);
  for (let b = 0; b < scales.length; b++) {
    const { amax, special } = amaxOf(x, b * block, (b + 1) * block);
    if (special) {
      scales[b] = E8M0_NAN;
      continue; // codes stay 0
    }
    const e = amax === 0 ? -127 : exponentOf(elem, amax, mode);
    scales[b] = encodeE8m0(e);
    const inv = 2 ** -e;
    for (let i = b * block; i < (b + 1) * block; i++) codes[i] = encodeValue(elem, x[i]! * inv, true);
  }
  return { data: elem.bits === 4 ? packNibbles(codes) : codes, scales };
}

export function dequantizeMx(q: MxBlocks, elem: ElementFormat, n: number, block = 32): Float32Array {
  checkElement(elem, 'dequantizeMx');
  checkInteger(n, 'dequantizeMx length', 0);
  checkBlocks(n, block, elem, 'dequantizeMx');
  if (typeof q !== 'object' || q === null) invalid('MX blocks ({ data, scales })', 'dequantizeMx', q);
  checkBytes(q.data, elem.bits === 4 ? n / 2 : n, 'dequantizeMx data');
  checkBytes(q.scales, n / block, 'dequantizeMx scales');
  return decodeMx(q, elem, n, block);
}

/** dequantizeMx without the checks (dequantize() checked the Quantized). */
export function decodeMx(q: MxBlocks, elem: ElementFormat, n: number, block: number): Float32Array {
  const codes = elem.bits === 4 ? unpackNibbles(q.data) : q.data;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = decodeCode(elem, codes[i]!) * e8m0Value(q.scales[Math.floor(i / block)]!);
  return out;
}

export interface Nvfp4Blocks {
  data: Uint8Array;
  /** One E4M3 code per block of 16. */
  scales: Uint8Array;
  /** The FP32 per-tensor scale g. */
  globalScale: number;
}

const E4M3 = ELEMENTS.e4m3;
const E2M1 = ELEMENTS.e2m1;
export const NVFP4_BLOCK = 16;
/** The smallest tensor scale g of a non-zero tensor (see the file's comment). */
export const NVFP4_MIN_G = 2 ** -149;

/** NVFP4's tensor scale g of a tensor amax (0 for an all-zero tensor). */
export function nvfp4GlobalScale(amax: number): number {
  return amax === 0 ? 0 : Math.max(fround(amax / (448 * 6)), NVFP4_MIN_G);
}

/** `amax`: the tensor amax to derive g from (default: x's own; a delayed amax may be smaller). */
export function quantizeNvfp4(x: ArrayLike<number>, amax?: number): Nvfp4Blocks {
  const xs = checkValues(x, 'quantizeNvfp4 x');
  checkBlocks(xs.length, NVFP4_BLOCK, E2M1, 'quantizeNvfp4');
  if (amax !== undefined) checkAmax(amax);
  return encodeNvfp4(xs, amax);
}

/** quantizeNvfp4 without the checks (quantize() checked its input). */
export function encodeNvfp4(x: ArrayLike<number>, amax?: number): Nvfp4Blocks {
  const n = x.length;
  const g = nvfp4GlobalScale(amax ?? amaxOf(x, 0, n).amax);
  const codes = new Uint8Array(n);
  const scales = new Uint8Array(n / NVFP4_BLOCK);
  for (let b = 0; b < scales.length; b++) {
    const { amax: bamax, special } = amaxOf(x, b * NVFP4_BLOCK, (b + 1) * NVFP4_BLOCK);
    if (special) {
      scales[b] = 0x7f; // E4M3 NaN
      continue;
    }
    if (g === 0) continue; // all zero: scale and codes 0
    const sc = encodeValue(E4M3, fround(fround(bamax / 6) / g), true);
    scales[b] = sc;
    const denom = fround(decodeCode(E4M3, sc) * g);
    if (denom === 0) continue;
    for (let i = b * NVFP4_BLOCK; i < (b + 1) * NVFP4_BLOCK; i++) codes[i] = encodeValue(E2M1, fround(x[i]! / denom), true);
  }
  return { data: packNibbles(codes), scales, globalScale: g };
}

export function dequantizeNvfp4(q: Nvfp4Blocks, n: number): Float32Array {
  checkInteger(n, 'dequantizeNvfp4 length', 0);
  checkBlocks(n, NVFP4_BLOCK, E2M1, 'dequantizeNvfp4');
  if (typeof q !== 'object' || q === null) invalid('NVFP4 blocks ({ data, scales, globalScale })', 'dequantizeNvfp4', q);
  checkNvfp4Parts(q.data, q.scales, q.globalScale, n, 'dequantizeNvfp4');
  return decodeNvfp4(q, n);
}

/**
 * The parts of NVFP4 blocks: codes and scales of the right lengths, block scales unsigned E4M3
 * codes (the quantizer never sets the sign bit; the GEMMs read them unsigned), g a float32 >= 0.
 */
export function checkNvfp4Parts(data: unknown, scales: unknown, g: unknown, n: number, what: string): void {
  checkBytes(data, n / 2, `${what} data`);
  const sc = checkBytes(scales, n / NVFP4_BLOCK, `${what} scales`);
  const bad = sc.findIndex((c) => c >= 0x80);
  if (bad >= 0) invalid('unsigned E4M3 block scale codes (0 to 127)', `${what} scales[${bad}]`, sc[bad]);
  if (typeof g !== 'number' || !(g >= 0 && g <= F32_MAX) || fround(g) !== g) invalid('a float32 tensor scale >= 0', `${what} globalScale`, g);
}

/** dequantizeNvfp4 without the checks. */
export function decodeNvfp4(q: Nvfp4Blocks, n: number): Float32Array {
  const codes = unpackNibbles(q.data);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = decodeCode(E2M1, codes[i]!) * decodeCode(E4M3, q.scales[Math.floor(i / NVFP4_BLOCK)]!) * q.globalScale;
  return out;
}

/**
 * Element formats: FP8 E4M3 and E5M2 (OCP 8-bit floating point), FP4 E2M1 (OCP MX), and the E8M0
 * scale. Reference codecs, written for exactness: every value is handled in float64, in which each
 * input (an f32 or bf16 value) and every rounding step here is exact.
 *
 *   E4M3: bias 7, 3 mantissa bits, no infinities; S.1111.111 is NaN; largest 448 (S.1111.110).
 *   E5M2: bias 15, 2 mantissa bits, IEEE-like: S.11111.00 is ±Inf, S.11111.{01,10,11} NaN; largest 57344.
 *   E2M1: bias 1, 1 mantissa bit, no Inf or NaN: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}.
 *   E8M0: 2^(code − 127) for codes 0..254; 0xFF is NaN. No sign, no zero.
 *
 * encode() rounds to nearest, ties to even (the code with an even mantissa). Beyond the largest
 * normal: with `saturate` (the default, as MX conversion and cvt.satfinite do) every finite or
 * infinite value clamps to ±max; without it, values that round (ties to even, as if the exponent
 * went on) above max become NaN (E4M3: above 464) or ±Inf (E5M2: from 61440); E2M1 always
 * saturates, having neither. NaN encodes as the format's NaN with the input's
 * sign (E4M3 0x7F / 0xFF, E5M2 0x7F / 0xFF); E2M1, having none, encodes NaN as +0 — block formats
 * never ask it to (a block holding NaN gets a NaN scale instead). Negative zero keeps its sign.
 */
import { DeepwellError, describe, invalid } from '@deepwell/core';
import { checkElement, checkOptions } from './guards.js';

export type ElementName = 'e4m3' | 'e5m2' | 'e2m1';

export interface ElementFormat {
  name: ElementName;
  bits: 8 | 4;
  expBits: number;
  manBits: number;
  bias: number;
  /** Largest finite magnitude. */
  max: number;
  /** floor(log2(max)): the emax_elem of the MX specification. */
  emax: number;
  hasInf: boolean;
  hasNaN: boolean;
}

// Frozen all the way down: every codec reads these facts, so no caller may change them.
export const ELEMENTS: Readonly<Record<ElementName, Readonly<ElementFormat>>> = Object.freeze({
  e4m3: Object.freeze<ElementFormat>({ name: 'e4m3', bits: 8, expBits: 4, manBits: 3, bias: 7, max: 448, emax: 8, hasInf: false, hasNaN: true }),
  e5m2: Object.freeze<ElementFormat>({ name: 'e5m2', bits: 8, expBits: 5, manBits: 2, bias: 15, max: 57344, emax: 15, hasInf: true, hasNaN: true }),
  e2m1: Object.freeze<ElementFormat>({ name: 'e2m1', bits: 4, expBits: 2, manBits: 1, bias: 1, max: 6, emax: 2, hasInf: false, hasNaN: false }),
});

export function elementFormat(name: unknown): ElementFormat {
  const f = typeof name === 'string' && Object.hasOwn(ELEMENTS, name) ? ELEMENTS[name as ElementName] : undefined;
  if (!f) throw new DeepwellError('INVALID_DTYPE', `Expected an element format (${Object.keys(ELEMENTS).join(', ')}) but received ${describe(name)}`);
  return f;
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
/** floor(log2(a)) for a finite a > 0, exactly (from the float64 exponent bits). */
export function ilog2(a: number): number {
  f64[0] = a;
  const e = (u32[1]! >>> 20) & 0x7ff;
  if (e !== 0) return e - 1023;
  // A float64 subnormal (never an f32 or bf16 value, but be exact anyway).
  return ilog2(a * 2 ** 64) - 64;
}

/** Round half to even of a non-negative number. */
function roundHalfEven(r: number): number {
  const f = Math.floor(r);
  const d = r - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/** The code of a finite non-negative value that is exactly representable (sign bit clear). */
function codeOfExact(fmt: ElementFormat, a: number): number {
  if (a === 0) return 0;
  const emin = 1 - fmt.bias;
  const e = Math.max(ilog2(a), emin);
  const m = a / 2 ** (e - fmt.manBits); // an integer: 2^M..2^(M+1)-1 for normals, < 2^M for subnormals
  const field = m >= 2 ** fmt.manBits ? e + fmt.bias : 0;
  return (field << fmt.manBits) | (m % 2 ** fmt.manBits);
}

export interface EncodeOptions {
  /** Clamp beyond the largest normal (default true). */
  saturate?: boolean;
}

/** The element code of x (see the file's comment for rounding, saturation and specials). */
export function encodeElement(fmt: ElementFormat, x: number, options: EncodeOptions = {}): number {
  checkElement(fmt, 'encodeElement');
  if (typeof x !== 'number') invalid('a number', 'the value to encode', x);
  return encodeValue(fmt, x, checkEncodeOptions(options));
}

function checkEncodeOptions(options: unknown): boolean {
  const { saturate } = checkOptions<EncodeOptions>(options, ['saturate'], 'encode');
  if (saturate !== undefined && typeof saturate !== 'boolean') invalid('a boolean', 'saturate', saturate);
  return saturate ?? true;
}

/** encodeElement without the checks: for the codecs' loops, whose callers checked their input. */
export function encodeValue(fmt: ElementFormat, x: number, saturate: boolean): number {
  const sign = x < 0 || Object.is(x, -0) ? 1 << (fmt.bits - 1) : 0;
  const nan = fmt.name === 'e2m1' ? 0 : sign | 0x7f;
  if (Number.isNaN(x)) return nan;
  const a = Math.abs(x);
  const maxCode = codeOfExact(fmt, fmt.max);
  if (a > fmt.max) {
    if (saturate || !fmt.hasNaN) return sign | maxCode;
    // Round as if the format went on above max (ties to even): what lands on max stays, the rest
    // overflows. E4M3's max has an even mantissa, so its tie (464) stays 448; E5M2's is odd, so
    // 61440 goes up to Inf.
    const q = 2 ** (fmt.emax - fmt.manBits);
    if (roundHalfEven(a / q) * q <= fmt.max) return sign | maxCode;
    return fmt.hasInf ? sign | (((1 << fmt.expBits) - 1) << fmt.manBits) : nan;
  }
  if (a === 0) return sign;
  const emin = 1 - fmt.bias;
  const e = Math.max(ilog2(a), emin);
  const q = 2 ** (e - fmt.manBits); // the spacing of representable values around a
  const v = roundHalfEven(a / q) * q; // exact: a / q and v are float64 values without rounding
  return sign | codeOfExact(fmt, v);
}

/** The value of an element code (an integer in [0, 2^bits)). */
export function decodeElement(fmt: ElementFormat, code: number): number {
  checkElement(fmt, 'decodeElement');
  if (!Number.isInteger(code) || code < 0 || code >= 2 ** fmt.bits) invalid(`a ${fmt.name} code (an integer in [0, ${2 ** fmt.bits - 1}])`, 'decodeElement', code);
  return decodeCode(fmt, code);
}

/** decodeElement without the checks, for the codecs' loops (codes read from bytes). */
export function decodeCode(fmt: ElementFormat, code: number): number {
  const s = (code >> (fmt.bits - 1)) & 1 ? -1 : 1;
  const field = (code >> fmt.manBits) & ((1 << fmt.expBits) - 1);
  const m = code & ((1 << fmt.manBits) - 1);
  const top = (1 << fmt.expBits) - 1;
  if (fmt.name === 'e4m3' && field === top && m === (1 << fmt.manBits) - 1) return NaN;
  if (fmt.name === 'e5m2' && field === top) return m === 0 ? s * Infinity : NaN;
  if (field === 0) return s * m * 2 ** (1 - fmt.bias - fmt.manBits);
  return s * (1 + m / 2 ** fmt.manBits) * 2 ** (field - fmt.bias);
}

// ---- E8M0 ----------------------------------------------------------------------------------------

export const E8M0_NAN = 0xff;

/** The E8M0 code of 2^e (e an integer in [-127, 127]); NaN for any other number. */
export function encodeE8m0(e: number): number {
  if (typeof e !== 'number') invalid('a number (the exponent)', 'encodeE8m0', e);
  return Number.isInteger(e) && e >= -127 && e <= 127 ? e + 127 : E8M0_NAN;
}

/** 2^(code − 127) for a code in [0, 254]; NaN for 0xFF. */
export function decodeE8m0(code: number): number {
  if (!Number.isInteger(code) || code < 0 || code > 255) invalid('an E8M0 code (an integer in [0, 255])', 'decodeE8m0', code);
  return e8m0Value(code);
}

/** decodeE8m0 without the check, for the decoders' inner loops (their scales are a checked Uint8Array). */
export function e8m0Value(code: number): number {
  return code === E8M0_NAN ? NaN : 2 ** (code - 127);
}

/** Encode every value of xs (a tensor of element codes, one per byte, before any nibble packing). */
export function encodeElements(fmt: ElementFormat, xs: ArrayLike<number>, options: EncodeOptions = {}): Uint8Array {
  checkElement(fmt, 'encodeElements');
  const saturate = checkEncodeOptions(options);
  const ok = Array.isArray(xs) ? xs.every((v) => typeof v === 'number') : ArrayBuffer.isView(xs) && !(xs instanceof DataView) && !(xs instanceof BigInt64Array) && !(xs instanceof BigUint64Array);
  if (!ok) invalid('an array or typed array of numbers', 'encodeElements', xs);
  const out = new Uint8Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = encodeValue(fmt, xs[i]!, saturate);
  return out;
}

/**
 * Data types: their sizes, their host storage, their safetensors names, and the two packings that
 * are not one element per typed-array slot (16-bit floats stored as raw bits, FP4 two per byte).
 *
 * Element codecs for the 8- and 4-bit formats (rounding, saturation, scales) belong to
 * @deepwell/precision; core only knows how many bits each takes and how they are stored.
 */
import { DeepwellError, describe, invalid } from './errors.js';

export type DTypeName = 'f32' | 'f16' | 'bf16' | 'f8e4m3' | 'f8e5m2' | 'e8m0' | 'f4e2m1' | 'i32' | 'i64' | 'u8' | 'u16';

export type HostArray = Float32Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;
type HostArrayCtor = { new (n: number): HostArray; new (b: ArrayBufferLike, off: number, n: number): HostArray; BYTES_PER_ELEMENT: number };

export interface DTypeInfo {
  readonly name: DTypeName;
  /** Bits per element; 4 for f4e2m1, which stores two elements per byte. */
  readonly bits: number;
  readonly isFloat: boolean;
  /** The name safetensors uses in its header; `F4` counts elements, two per byte. */
  readonly safetensors: string;
  /** The typed array holding the raw storage on the host (16-bit floats as their bits). */
  readonly hostArray: HostArrayCtor;
}

const info = (name: DTypeName, bits: number, isFloat: boolean, safetensors: string, hostArray: HostArrayCtor): DTypeInfo =>
  Object.freeze({ name, bits, isFloat, safetensors, hostArray });

export const DTYPES: Readonly<Record<DTypeName, DTypeInfo>> = Object.freeze({
  f32: info('f32', 32, true, 'F32', Float32Array),
  f16: info('f16', 16, true, 'F16', Uint16Array),
  bf16: info('bf16', 16, true, 'BF16', Uint16Array),
  f8e4m3: info('f8e4m3', 8, true, 'F8_E4M3', Uint8Array),
  f8e5m2: info('f8e5m2', 8, true, 'F8_E5M2', Uint8Array),
  e8m0: info('e8m0', 8, true, 'F8_E8M0', Uint8Array),
  f4e2m1: info('f4e2m1', 4, true, 'F4', Uint8Array),
  i32: info('i32', 32, false, 'I32', Int32Array),
  i64: info('i64', 64, false, 'I64', BigInt64Array),
  u8: info('u8', 8, false, 'U8', Uint8Array),
  u16: info('u16', 16, false, 'U16', Uint16Array),
});

export const DTYPE_NAMES = Object.freeze(Object.keys(DTYPES) as DTypeName[]);

/** Look a dtype up by name; an unknown name is an INVALID_DTYPE error listing the known ones. */
export function dtypeInfo(name: unknown): DTypeInfo {
  if (typeof name === 'string' && Object.hasOwn(DTYPES, name)) return DTYPES[name as DTypeName];
  throw new DeepwellError('INVALID_DTYPE', `Expected one of ${DTYPE_NAMES.join(', ')} for dtype but received ${describe(name)}`);
}

export function dtypeFromSafetensors(name: unknown): DTypeInfo {
  const found = DTYPE_NAMES.map((n) => DTYPES[n]).find((d) => d.safetensors === name);
  if (found) return found;
  const known = DTYPE_NAMES.map((n) => DTYPES[n].safetensors).join(', ');
  throw new DeepwellError('INVALID_DTYPE', `Expected one of ${known} for safetensors dtype but received ${describe(name)}`);
}

/** Bytes that `numel` elements of `dtype` occupy. FP4 needs an even count: a byte holds two. */
export function byteSize(dtype: DTypeName, numel: number): number {
  const { bits } = dtypeInfo(dtype);
  if (!Number.isSafeInteger(numel) || numel < 0) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-negative integer for element count but received ${describe(numel)}`);
  }
  if ((numel * bits) % 8 !== 0) {
    throw new DeepwellError('SHAPE_MISMATCH', `Expected an even number of elements for ${dtype} (two per byte) but received ${numel}`);
  }
  return (numel * bits) / 8;
}

/** Length of the host typed array that stores `numel` elements (FP4: bytes, not elements). */
export function hostLength(dtype: DTypeName, numel: number): number {
  return byteSize(dtype, numel) / dtypeInfo(dtype).hostArray.BYTES_PER_ELEMENT;
}

// ---- 16-bit floats stored as bits -------------------------------------------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// The conversions are called per element: their checks are a typeof or a mask, nothing more.
function checkValue(x: unknown, what: string): void {
  if (typeof x !== 'number') invalid('a number', what, x);
}

function checkBits(bits: unknown, what: string): void {
  if (typeof bits !== 'number' || (bits & 0xffff) !== bits) invalid('a 16-bit pattern (an integer in [0, 65535])', what, bits);
}

/** float32 → bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  checkValue(x, 'f32ToBf16Bits');
  return toBf16(x);
}

export function bf16BitsToF32(bits: number): number {
  checkBits(bits, 'bf16BitsToF32');
  return fromBf16(bits);
}

/** float32 → IEEE half bits, round to nearest even, overflow to infinity, subnormals kept. */
export function f32ToF16Bits(x: number): number {
  checkValue(x, 'f32ToF16Bits');
  return toF16(x);
}

export function f16BitsToF32(bits: number): number {
  checkBits(bits, 'f16BitsToF32');
  return fromF16(bits);
}

// The bodies, unchecked: for loops over data already known to be numbers / 16-bit patterns.
function toBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

function fromBf16(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

function toF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) r++;
  return sign | r;
}

// Every half is exact in float32: normals and infinities are rebuilt as float32 bits (no Math.pow
// per element), subnormals are man · 2^-24, NaN stays NaN.
function fromF16(bits: number): number {
  const exp = (bits >>> 10) & 0x1f;
  const man = bits & 0x3ff;
  if (exp === 0) return (bits & 0x8000 ? -man : man) * 2 ** -24;
  if (exp === 0x1f) return man ? NaN : bits & 0x8000 ? -Infinity : Infinity;
  u32[0] = ((bits & 0x8000) << 16) | ((exp + 112) << 23) | (man << 13);
  return f32[0]!;
}

/**
 * The four 16-bit conversions WITHOUT their argument checks, for Deepwell's own per-element loops
 * over typed arrays (whose elements are numbers, and 16-bit patterns in a Uint16Array, by
 * construction). Not for users: a value of another type gives a wrong result, not an error; call
 * f32ToBf16Bits, bf16BitsToF32, f32ToF16Bits and f16BitsToF32, which check every argument.
 */
export const float16Unchecked = Object.freeze({ f32ToBf16Bits: toBf16, bf16BitsToF32: fromBf16, f32ToF16Bits: toF16, f16BitsToF32: fromF16 });

// ---- FP4: two codes per byte, element 2i in the low nibble (as torch.float4_e2m1fn_x2) ------------
export function packNibbles(codes: ArrayLike<number>): Uint8Array {
  if (!Array.isArray(codes) && !(ArrayBuffer.isView(codes) && !(codes instanceof DataView) && !(codes instanceof BigInt64Array) && !(codes instanceof BigUint64Array))) {
    invalid('an array or typed array of 4-bit codes', 'packNibbles', codes);
  }
  if (codes.length % 2 !== 0) {
    throw new DeepwellError('SHAPE_MISMATCH', `Expected an even number of 4-bit codes for packNibbles but received ${codes.length}`);
  }
  const out = new Uint8Array(codes.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = codes[2 * i]!;
    const hi = codes[2 * i + 1]!;
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && lo < 16 && hi >= 0 && hi < 16)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected 4-bit codes (0..15) for packNibbles but received ${describe(lo)}, ${describe(hi)} at ${2 * i}`);
    }
    out[i] = lo | (hi << 4);
  }
  return out;
}

export function unpackNibbles(packed: Uint8Array): Uint8Array {
  if (!(packed instanceof Uint8Array)) invalid('a Uint8Array of packed 4-bit codes', 'unpackNibbles', packed);
  const out = new Uint8Array(packed.length * 2);
  for (let i = 0; i < packed.length; i++) {
    out[2 * i] = packed[i]! & 0xf;
    out[2 * i + 1] = packed[i]! >>> 4;
  }
  return out;
}

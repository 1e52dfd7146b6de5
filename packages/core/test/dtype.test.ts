import { describe, expect, it } from 'vitest';
import {
  DTYPES,
  DTYPE_NAMES,
  DeepwellError,
  bf16BitsToF32,
  byteSize,
  dtypeFromSafetensors,
  dtypeInfo,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  float16Unchecked,
  packNibbles,
  unpackNibbles,
} from '../src/index.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (DeepwellError.is(e)) return e.code;
    throw e;
  }
  throw new Error('expected a throw');
}

describe('dtypes', () => {
  it('knows the size and safetensors name of every dtype', () => {
    const want: Record<string, [number, string]> = {
      f32: [32, 'F32'], f16: [16, 'F16'], bf16: [16, 'BF16'], f8e4m3: [8, 'F8_E4M3'], f8e5m2: [8, 'F8_E5M2'],
      e8m0: [8, 'F8_E8M0'], f4e2m1: [4, 'F4'], i32: [32, 'I32'], i64: [64, 'I64'], u8: [8, 'U8'], u16: [16, 'U16'],
    };
    expect([...DTYPE_NAMES].sort()).toEqual(Object.keys(want).sort());
    for (const n of DTYPE_NAMES) {
      expect([DTYPES[n].bits, DTYPES[n].safetensors]).toEqual(want[n]);
      expect(dtypeFromSafetensors(DTYPES[n].safetensors).name).toBe(n);
      expect(DTYPES[n].hostArray.BYTES_PER_ELEMENT * 8).toBeGreaterThanOrEqual(Math.min(DTYPES[n].bits, 8));
    }
  });

  it('computes byte sizes, with FP4 two per byte', () => {
    const n = 2 * (1 + Math.floor(Math.random() * 1000));
    expect(byteSize('f32', n)).toBe(4 * n);
    expect(byteSize('bf16', n)).toBe(2 * n);
    expect(byteSize('i64', n)).toBe(8 * n);
    expect(byteSize('f8e4m3', n)).toBe(n);
    expect(byteSize('f4e2m1', n)).toBe(n / 2);
    expect(code(() => byteSize('f4e2m1', n + 1))).toBe('SHAPE_MISMATCH');
    expect(code(() => byteSize('f32', -1))).toBe('INVALID_ARGUMENT');
  });

  it('rejects unknown dtype names with the list of known ones', () => {
    for (const bad of ['float32', 'F32', '', 42, null, undefined, 'fp8']) {
      expect(code(() => dtypeInfo(bad))).toBe('INVALID_DTYPE');
    }
    expect(() => dtypeInfo('float32')).toThrow(/Expected one of f32, f16, bf16.* for dtype but received "float32"/);
    expect(code(() => dtypeFromSafetensors('F8_E4M3FNUZ'))).toBe('INVALID_DTYPE');
  });

  it('rounds float32 to bfloat16 to nearest even, exactly like a float64 reference', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < 200_000; i++) {
      u[0] = (Math.random() * 2 ** 32) >>> 0;
      const x = f[0]!;
      const got = f32ToBf16Bits(x);
      if (Number.isNaN(x)) {
        expect(Number.isNaN(bf16BitsToF32(got))).toBe(true);
        continue;
      }
      // Reference: the two neighbouring bf16 values, pick the nearer (ties to the even mantissa).
      const lo = u[0]! >>> 16;
      const a = bf16BitsToF32(lo);
      // Past the largest finite value the next step is 2^128 (which IEEE rounding then calls infinity).
      const b = Number.isFinite(bf16BitsToF32(lo + 1)) ? bf16BitsToF32(lo + 1) : Math.sign(x) * 2 ** 128;
      const da = Math.abs(x - a);
      const db = Math.abs(b - x);
      const want = da < db ? lo : db < da ? lo + 1 : (lo & 1) === 0 ? lo : lo + 1;
      expect(got, `x=${x}`).toBe(want & 0xffff);
    }
  });

  it('round-trips every half-precision bit pattern through float32', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = f16BitsToF32(h);
      const back = f32ToF16Bits(x);
      if (Number.isNaN(x)) expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true);
      else expect(back).toBe(h);
    }
  });

  it('rounds float32 to half to nearest even on random inputs', () => {
    for (let i = 0; i < 100_000; i++) {
      const x = Math.fround((Math.random() - 0.5) * 2 ** (Math.random() * 40 - 26));
      const h = f32ToF16Bits(x);
      const y = f16BitsToF32(h);
      // No representable half lies strictly closer to x.
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) >= 0x7c00 || n < 0 || (n & 0x8000) !== (h & 0x8000)) continue;
        expect(Math.abs(f16BitsToF32(n) - x)).toBeGreaterThanOrEqual(Math.abs(y - x));
      }
    }
    expect(f32ToF16Bits(70000)).toBe(0x7c00);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
  });

  it('float16Unchecked gives the checked conversions\' results (every 16-bit pattern, random floats)', () => {
    // The half decoder as first written (sign · (1 + man/1024) · 2^(exp-15)): the faster one must match it.
    const half = (b: number) => {
      const sign = b & 0x8000 ? -1 : 1;
      const exp = (b >>> 10) & 0x1f;
      const man = b & 0x3ff;
      if (exp === 0) return sign * man * 2 ** -24;
      if (exp === 0x1f) return man ? NaN : sign * Infinity;
      return sign * (1 + man / 1024) * 2 ** (exp - 15);
    };
    const u = float16Unchecked;
    for (let b = 0; b < 65536; b++) {
      expect(Object.is(f16BitsToF32(b), half(b))).toBe(true);
      expect(Object.is(u.f16BitsToF32(b), half(b))).toBe(true);
      expect(Object.is(u.bf16BitsToF32(b), bf16BitsToF32(b))).toBe(true);
    }
    const f = new Float32Array(1);
    const w = new Uint32Array(f.buffer);
    for (let i = 0; i < 20000; i++) {
      w[0] = (Math.random() * 2 ** 32) >>> 0;
      const x = f[0]!;
      expect(u.f32ToBf16Bits(x)).toBe(f32ToBf16Bits(x));
      expect(u.f32ToF16Bits(x)).toBe(f32ToF16Bits(x));
    }
    expect(Object.isFrozen(u)).toBe(true);
    // The public functions still check every argument.
    expect(code(() => f16BitsToF32(65536))).toBe('INVALID_ARGUMENT');
    expect(code(() => f32ToF16Bits('1' as unknown as number))).toBe('INVALID_ARGUMENT');
  });

  it('packs FP4 codes with element 2i in the low nibble', () => {
    const codes = Array.from({ length: 64 }, () => Math.floor(Math.random() * 16));
    const packed = packNibbles(codes);
    expect(packed.length).toBe(32);
    expect(packed[0]).toBe(codes[0]! | (codes[1]! << 4));
    expect([...unpackNibbles(packed)]).toEqual(codes);
    expect(code(() => packNibbles([1, 2, 3]))).toBe('SHAPE_MISMATCH');
    expect(code(() => packNibbles([1, 16]))).toBe('INVALID_ARGUMENT');
  });
});

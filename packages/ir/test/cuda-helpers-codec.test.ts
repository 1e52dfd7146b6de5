/**
 * The CUDA tests' bulk bf16 / f16 conversions (cuda-helpers.ts encode / decode, plain loops over
 * typed arrays) against @deepwell/core's checked per-element converters, bit for bit: random normal,
 * subnormal, huge and special values (±0, ±Inf, NaN), every 16-bit pattern decoded. Runs on the CPU.
 */
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import { decode, encode } from './cuda-helpers.js';

function values(n: number): Float64Array {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % 8;
    const m = (Math.random() * 2 - 1) * 2 ** Math.floor(Math.random() * 60 - 30);
    v[i] = k === 0 ? m * 2 ** -130 : k === 1 ? m * 2 ** 100 : k === 2 ? [0, -0, Infinity, -Infinity, NaN, 65504, 65520, 2 ** -24][Math.floor(Math.random() * 8)]! : m;
  }
  return v;
}

describe('cuda-helpers encode / decode', () => {
  it.each([
    ['bf16', f32ToBf16Bits, bf16BitsToF32],
    ['f16', f32ToF16Bits, f16BitsToF32],
  ] as const)('%s: the core converters\' bits and values', (dtype, to, from) => {
    const v = values(20000);
    const want = Uint16Array.from(Float32Array.from(v), to);
    const got = encode(dtype, v) as Uint16Array;
    const bad = got.findIndex((g, i) => g !== want[i]);
    expect(bad, bad < 0 ? '' : `encode ${v[bad]}: ${got[bad]} for ${want[bad]}`).toBe(-1);
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const dec = decode(dtype, new Uint8Array(all.buffer));
    const ref = Float64Array.from(all, from);
    const badDec = dec.findIndex((d, i) => !Object.is(d, ref[i]));
    expect(badDec, badDec < 0 ? '' : `decode ${badDec}: ${dec[badDec]} for ${ref[badDec]}`).toBe(-1);
  });
});

/**
 * Checks shared by the CUDA kernel tests of the nn family (cuda-nn.test.ts, cuda-adamw.test.ts):
 * error bounds against the CPU reference rounded to the storage dtype, and bit-for-bit equality.
 */
import { expect } from 'vitest';
import type { AttrValue, NumArray } from '../src/index.js';
import { UNIT_ROUNDOFF, maxError, reference, rounded, runCuda, type CudaInput } from './cuda-helpers.js';
import { randn } from './helpers.js';

export type Storage = 'f32' | 'bf16' | 'f16';
export const STORAGES: readonly Storage[] = ['f32', 'bf16', 'f16'];

export const tol = (s: Storage): number => (s === 'f32' ? 1e-5 : 2 * UNIT_ROUNDOFF[s]!);
export const scaled = (n: number, k: number, shift = 0): Float64Array => randn(n).map((v) => v * k + shift);
export const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};
/** Element-for-element equality (NaN equals NaN), reporting the first difference. */
export function expectExact(got: ArrayLike<number>, want: ArrayLike<number>, what = ''): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], want[i])) {
      expect(got[i], `${what} element ${i}`).toBe(want[i]);
      return;
    }
  }
}

/**
 * maxError row by row (rows of `len` elements) against the reference rounded to the storage dtype;
 * `scale(r, row)` is row r's scale (default: the row's max |want|, for results that cancel).
 */
export function rowsError(got: Float64Array, want: NumArray, len: number, storage: Storage, scale: (r: number, row: Float64Array) => number = (_, w) => maxAbs(w)): number {
  expect(got.length).toBe(want.length);
  const exact = Float64Array.from(want);
  const w = storage === 'f32' ? exact : rounded(storage, exact);
  let worst = 0;
  for (let r = 0, o = 0; o < got.length; r++, o += len) {
    const s = scale(r, exact.subarray(o, o + len)) || Number.MIN_VALUE;
    worst = Math.max(worst, maxError(got.subarray(o, o + len), w.subarray(o, o + len), s));
  }
  return worst;
}

/** Same, with one scale for the whole output. */
export const allError = (got: Float64Array, want: NumArray, storage: Storage, scale = maxAbs(want)): number => rowsError(got, want, Math.max(1, got.length), storage, () => scale);

export function run(op: string, inputs: CudaInput[], attrs: Record<string, AttrValue>, storage: Storage): { got: Float64Array[]; want: NumArray[] } {
  const r = runCuda(op, inputs, attrs, { storage });
  expect(r.kernel).toBe(`${op}_cuda`);
  return { got: r.outputs, want: reference(op, inputs, attrs, storage) };
}

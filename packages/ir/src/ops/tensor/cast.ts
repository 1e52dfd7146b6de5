/**
 * cast: convert x to another dtype. x: T[S...] with T in f32, f16, bf16, i32, attr dtype (one of
 * those) -> dtype[S...]. On the CPU f16 and bf16 live widened in float arrays that hold exactly the
 * narrow value, so:
 *   to bf16 / to f16: round to nearest even through core's f32ToBf16Bits / f32ToF16Bits (the
 *     value is taken as f32 first; f16 overflows to infinity, NaN stays NaN);
 *   to f32 from a float: the identity (a narrow value is already an f32 value);
 *   to f32 from i32: the nearest f32 (exact up to 2^24);
 *   to i32 from a float: truncation toward zero, saturating at the i32 range, NaN to 0;
 *   to the same dtype: the identity.
 * Written this way so the reference defines exactly what a GPU cast kernel must produce. Gradient:
 * the gradient cast back to the input's float dtype; none through i32.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { DeepwellError, float16Unchecked } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype } from '../../op.js';
import { numel } from '../../types.js';
import { isFloat } from '../float.js';
import { AMAX_ATTR, withAmax, writeAmax } from '../amax.js';

export const CAST_DTYPES = ['f32', 'f16', 'bf16', 'i32'] as const;
export type CastDType = (typeof CAST_DTYPES)[number];

// Per element of a typed array (numbers by construction): the conversions without their checks.
const { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } = float16Unchecked;

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** One value of dtype `from` converted to dtype `to`, as the widened CPU value. */
export function castScalar(v: number, from: CastDType, to: CastDType): number {
  if (from === to) return v;
  switch (to) {
    case 'f32':
      return from === 'i32' ? Math.fround(v) : v;
    case 'bf16':
      return bf16BitsToF32(f32ToBf16Bits(v));
    case 'f16':
      return f16BitsToF32(f32ToF16Bits(v));
    case 'i32':
      return Number.isNaN(v) ? 0 : Math.min(I32_MAX, Math.max(I32_MIN, Math.trunc(v)));
  }
}

export const castOp = defineOp({
  name: 'cast',
  doc: 'out = x converted to `dtype` (round to nearest even for f16/bf16, truncation for i32)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { dtype: { kind: 'string', oneOf: CAST_DTYPES }, ...AMAX_ATTR },
  elementwise: true,
  amaxOf: 0,
  infer: ([x], attrs) => {
    expectDtype('cast', 'x', x!, CAST_DTYPES);
    if (attrs.amax === true && (x!.dtype === 'i32' || attrs.dtype === 'i32')) throw new DeepwellError('INVALID_DTYPE', `cast: Expected float dtypes with attribute 'amax' but received ${x!.dtype} to ${String(attrs.dtype)}`);
    return withAmax([{ shape: x!.shape, dtype: attrs.dtype as CastDType }], attrs);
  },
  reference: ({ inputs: [x], outputs, inTypes, outTypes, attrs }) => {
    const out = outputs[0]!;
    const from = inTypes[0]!.dtype as CastDType;
    const to = outTypes[0]!.dtype as CastDType;
    for (let i = 0; i < out.length; i++) out[i] = castScalar(x![i]!, from, to);
    writeAmax(outputs, outTypes, 0, attrs);
  },
  flops: ([x]) => numel(x!.shape),
  gradient: ({ inputs: [x], outputs: [y], grads: [g] }) => (isFloat(x!.dtype) && isFloat(y!.dtype) ? [cast(g!, x!.dtype)] : [null]),
});

export function cast(x: Sym, dtype: CastDType): Sym {
  return builderOf(x, 'x of cast').op1('cast', [x], { dtype });
}

/**
 * cast_multi: cast on many tensors at once (multi-tensor apply), each output exactly what cast
 * gives for its input.
 *   x_0: F[X_0...], x_1: F[X_1...], ... (any number >= 1, one float dtype F: f32, bf16 or f16;
 *   any shapes), attribute dtype (a float dtype) -> out_k: dtype[X_k...] for each input, in order.
 * Never written by models: the fuse-casts pass (passes/fuse-casts.ts) makes it at compile time from
 * the casts whose input is a parameter (autocast's f32 -> bf16 copies of the weights, one per
 * parameter, otherwise one launch each), so a GPU casts every weight in a few launches. The
 * reference is cast's per input (round to nearest even through core's conversions), so the bits
 * are the same as the casts it replaces. Not differentiated (made after autodiff).
 *
 * The CUDA kernel (native/ops/tensor/cast_multi.cu) takes up to 128 tensors per launch by value (so
 * a captured CUDA graph holds them) and gives each block one chunk of 8192 elements of one tensor.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/optim.test.ts, cuda-optim.test.ts.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { builderOfAll, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { numel } from '../../types.js';
import { FLOAT_DTYPES, sameFloat, type FloatDType } from '../float.js';
import { castScalar } from './cast.js';

export const castMultiOp = defineOp({
  name: 'cast_multi',
  doc: 'cast of each input to `dtype` (one float dtype in, one out); made by fusion',
  inputs: ['...xs'],
  outputs: ['...outs'],
  attrs: { dtype: { kind: 'string', oneOf: FLOAT_DTYPES } },
  nonDifferentiable: true,
  infer: (xs, attrs) => {
    sameFloat('cast_multi', xs.map((x, k) => [`xs[${k}]`, x] as const));
    const to = attrs.dtype as FloatDType;
    if (!(FLOAT_DTYPES as readonly string[]).includes(to)) throw new DeepwellError('INVALID_DTYPE', `cast_multi: Expected a float dtype for attribute 'dtype' but received ${describe(to)}`);
    return xs.map((x) => ({ shape: x.shape, dtype: to }));
  },
  reference: ({ inputs, outputs, inTypes, outTypes }) => {
    inputs.forEach((x, k) => {
      const out = outputs[k]!;
      const from = inTypes[k]!.dtype as FloatDType;
      const to = outTypes[k]!.dtype as FloatDType;
      for (let i = 0; i < out.length; i++) out[i] = castScalar(x[i]!, from, to);
    });
  },
  flops: (xs) => xs.reduce((a, x) => a + numel(x.shape), 0),
});

/** Each of `xs` (one float dtype) cast to `dtype`, as cast does, in one node. */
export function castMulti(xs: readonly Sym[], dtype: FloatDType): Sym[] {
  return builderOfAll(xs, 'xs of castMulti').op('cast_multi', [...xs], { dtype });
}

/**
 * sum_squares: the sum of the squares of every element of every input, one f32 number.
 *   x_0: F_0[X_0...], x_1: F_1[X_1...], ... (any number >= 1; each any float dtype of its own: f32,
 *   bf16 or f16, any shape) -> f32[1] = Σ_k Σ_i x_k[i]².
 * trainingStep's clipping by the global gradient norm reads every gradient through one such node
 * (it was a cast, a mul, a sum and an add per parameter: ~4 launches each). The reference accumulates
 * in float64 and rounds once on store. Each input is read at its exact value whatever its storage
 * (`anyFloatInputs`), so a widening bf16 -> f32 cast in front of it may be skipped
 * (passes/elide-casts.ts) with the same result. Not differentiated (the clipping factor is a
 * constant of the optimizer step, as torch.nn.utils.clip_grad_norm_ makes it).
 *
 * The CUDA kernel (native/ops/nn/sum_squares.cu) takes up to 128 tensors per launch by value (so a
 * captured CUDA graph holds them), gives each block one chunk of SUM_SQUARES_CHUNK elements of one
 * tensor, writes one float64 partial per block into the call's workspace and adds the partials in
 * block order in a second small kernel: no float atomics, bitwise the same on every run.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/optim.test.ts, train.test.ts,
 * cuda-optim.test.ts.
 */
import { builderOfAll, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { numel } from '../../types.js';
import { expectFloat } from '../float.js';

export const sumSquaresOp = defineOp({
  name: 'sum_squares',
  doc: 'Σ over all elements of all inputs of x², as one f32 (float64 accumulation)',
  inputs: ['...xs'],
  outputs: ['sumsq'],
  attrs: {},
  nonDifferentiable: true,
  anyFloatInputs: (inputs) => Array.from({ length: inputs }, (_, k) => k),
  infer: (xs) => {
    xs.forEach((x, k) => expectFloat('sum_squares', `xs[${k}]`, x));
    return [{ shape: [1], dtype: 'f32' }];
  },
  reference: ({ inputs, outputs: [out] }) => {
    let s = 0;
    for (const x of inputs) for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
    out![0] = s;
  },
  flops: (xs) => 2 * xs.reduce((a, x) => a + numel(x.shape), 0),
});

/** f32[1]: the sum of the squares of every element of `xs` (each any float dtype). */
export function sumSquares(xs: readonly Sym[]): Sym {
  return builderOfAll(xs, 'xs of sumSquares').op1('sum_squares', [...xs], {});
}

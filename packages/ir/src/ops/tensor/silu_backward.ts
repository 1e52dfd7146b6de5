/**
 * silu_backward: the gradient of silu. g: F[S...], x: F[S...] (the forward input; F one float
 * dtype shared by both) -> F[S...],
 *   out = g * s (1 + x (1 - s)),  s = sigmoid(x).
 * One op from (g, x), recomputing s, so the backward pass keeps no sigmoid tensor alive.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { sameFloat } from '../float.js';
import { numel, sameShape } from '../../types.js';
import { sigmoidScalar } from './silu.js';

/** d silu / dx at one value, in float64. */
export function siluGradScalar(x: number): number {
  const s = sigmoidScalar(x);
  return s * (1 + x * (1 - s));
}

export const siluBackwardOp = defineOp({
  name: 'silu_backward',
  doc: "out = g * silu'(x)",
  inputs: ['g', 'x'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([g, x]) => {
    const dtype = sameFloat('silu_backward', [['g', g!], ['x', x!]]);
    if (!sameShape(g!.shape, x!.shape)) {
      shapeError('silu_backward', `Expected the shape of x [${x!.shape.join(', ')}] for input 'g' but received [${g!.shape.join(', ')}]`);
    }
    return [{ shape: x!.shape, dtype }];
  },
  reference: ({ inputs: [g, x], outputs: [out] }) => {
    for (let i = 0; i < out!.length; i++) out![i] = g![i]! * siluGradScalar(x![i]!);
  },
  flops: ([, x]) => 9 * numel(x!.shape),
});

export function siluBackward(g: Sym, x: Sym): Sym {
  const builder = builderOf(g, 'g of siluBackward');
  if (builder !== builderOf(x, 'x of siluBackward')) shapeError('silu_backward', 'Expected symbolic tensors of one graph');
  return builder.op1('silu_backward', [g, x]);
}

/**
 * swiglu: the SwiGLU gate, silu(gate) * up. gate: F[S...], up: F[S...] -> F[S...] (F one float
 * dtype shared by both).
 * The shapes must be equal (no broadcasting): gate and up are two halves of one MLP projection, and
 * a mismatch is a bug to report, not to broadcast over. One op so the forward is one kernel; its
 * gradient is silu_backward(g * up, gate) for gate and g * silu(gate) for up.
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
import { mul } from './mul.js';
import { silu } from './silu.js';
import { siluBackward } from './silu_backward.js';

export const swigluOp = defineOp({
  name: 'swiglu',
  doc: 'out = silu(gate) * up',
  inputs: ['gate', 'up'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([gate, up]) => {
    const dtype = sameFloat('swiglu', [['gate', gate!], ['up', up!]]);
    if (!sameShape(gate!.shape, up!.shape)) {
      shapeError('swiglu', `Expected the shape of gate [${gate!.shape.join(', ')}] for input 'up' but received [${up!.shape.join(', ')}]`);
    }
    return [{ shape: gate!.shape, dtype }];
  },
  reference: ({ inputs: [gate, up], outputs: [out] }) => {
    for (let i = 0; i < out!.length; i++) {
      const x = gate![i]!;
      out![i] = x * sigmoidScalar(x) * up![i]!;
    }
  },
  flops: ([gate]) => 6 * numel(gate!.shape),
  gradient: ({ inputs: [gate, up], grads: [g] }) => [siluBackward(mul(g!, up!), gate!), mul(g!, silu(gate!))],
});

export function swiglu(gate: Sym, up: Sym): Sym {
  const builder = builderOf(gate, 'gate of swiglu');
  if (builder !== builderOf(up, 'up of swiglu')) shapeError('swiglu', 'Expected symbolic tensors of one graph');
  return builder.op1('swiglu', [gate, up]);
}

/**
 * silu: x * sigmoid(x) (the swish of SwiGLU). x: F[S...] -> F[S...] (F a float dtype).
 * Its gradient is one dedicated op (silu_backward), so the backward pass is one elementwise kernel.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { expectFloat } from '../float.js';
import { numel } from '../../types.js';
import { siluBackward } from './silu_backward.js';

/** sigmoid of one value, in float64; exp(-x) overflowing to Infinity gives 0, as it should. */
export function sigmoidScalar(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export const siluOp = defineOp({
  name: 'silu',
  doc: 'out = x * sigmoid(x)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([x]) => {
    return [{ shape: x!.shape, dtype: expectFloat('silu', 'x', x!) }];
  },
  reference: ({ inputs: [x], outputs: [out] }) => {
    for (let i = 0; i < out!.length; i++) out![i] = x![i]! * sigmoidScalar(x![i]!);
  },
  // negate, exp (counted as 1), 1 + e, divide, multiply.
  flops: ([x]) => 5 * numel(x!.shape),
  gradient: ({ inputs: [x], grads: [g] }) => [siluBackward(g!, x!)],
});

export function silu(x: Sym): Sym {
  return builderOf(x, 'x of silu').op1('silu', [x]);
}

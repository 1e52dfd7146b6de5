/**
 * bias_add: add a per-feature bias along the last dimension. x: F[..., N], bias: F[N] -> F[..., N]
 * (F one float dtype shared by both). A narrower contract than add (the bias must be rank 1 and match the last dimension
 * exactly) so a misplaced bias is a shape error at the line that made it, not a silent broadcast,
 * and so a backend can fuse it into a matmul epilogue. Gradients: g for x, g summed over the
 * leading dimensions for the bias.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectRank, shapeError } from '../../op.js';
import { sameFloat } from '../float.js';
import { numel } from '../../types.js';
import { sumTo } from '../basic/sum_to.js';

export const biasAddOp = defineOp({
  name: 'bias_add',
  doc: 'out[..., n] = x[..., n] + bias[n]',
  inputs: ['x', 'bias'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([x, bias]) => {
    const dtype = sameFloat('bias_add', [['x', x!], ['bias', bias!]]);
    expectRank('bias_add', 'x', x!, 1, Infinity);
    expectRank('bias_add', 'bias', bias!, 1);
    const N = x!.shape.at(-1)!;
    if (bias!.shape[0] !== N) {
      shapeError('bias_add', `Expected a bias of shape [${N}] (the last dimension of x: [${x!.shape.join(', ')}]) for input 'bias' but received [${bias!.shape.join(', ')}]`);
    }
    return [{ shape: x!.shape, dtype }];
  },
  reference: ({ inputs: [x, bias], outputs: [out], inTypes }) => {
    const N = inTypes[0]!.shape.at(-1)!;
    for (let i = 0; i < out!.length; i++) out![i] = x![i]! + bias![i % N]!;
  },
  flops: ([x]) => numel(x!.shape),
  gradient: ({ inputs: [, bias], grads: [g] }) => [g!, sumTo(g!, bias!.shape)],
});

export function biasAdd(x: Sym, bias: Sym): Sym {
  const builder = builderOf(x, 'x of biasAdd');
  if (builder !== builderOf(bias, 'bias of biasAdd')) shapeError('bias_add', 'Expected symbolic tensors of one graph');
  return builder.op1('bias_add', [x, bias]);
}

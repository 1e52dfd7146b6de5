/**
 * mul: elementwise a * b with numpy broadcasting. a: F[A...], b: F[B...] -> F[broadcast(A, B)], F one
 * float dtype (f32, bf16 or f16) shared by both inputs.
 * Built exactly like add (same broadcast rule, same index maps) so the two fuse the same way; its
 * gradient multiplies by the other operand and sums over the broadcast dimensions (sum_to).
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { broadcastIndex, broadcastShapes, defineOp, shapeError } from '../../op.js';
import { sameFloat } from '../float.js';
import { numel, sameShape } from '../../types.js';
import { sumTo } from '../basic/sum_to.js';

export const mulOp = defineOp({
  name: 'mul',
  doc: 'out = a * b (broadcasting)',
  inputs: ['a', 'b'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([a, b]) => {
    const dtype = sameFloat('mul', [['a', a!], ['b', b!]]);
    return [{ shape: broadcastShapes('mul', a!.shape, b!.shape), dtype }];
  },
  reference: ({ inputs: [a, b], outputs: [out], inTypes, outTypes }) => {
    const shape = outTypes[0]!.shape;
    if (sameShape(inTypes[0]!.shape, shape) && sameShape(inTypes[1]!.shape, shape)) {
      for (let i = 0; i < out!.length; i++) out![i] = a![i]! * b![i]!;
      return;
    }
    const ia = broadcastIndex(shape, inTypes[0]!.shape);
    const ib = broadcastIndex(shape, inTypes[1]!.shape);
    for (let i = 0; i < out!.length; i++) out![i] = a![ia[i]!]! * b![ib[i]!]!;
  },
  flops: (_, [out]) => numel(out!.shape),
  gradient: ({ inputs: [a, b], grads: [g] }) => [sumTo(mul(g!, b!), a!.shape), sumTo(mul(g!, a!), b!.shape)],
});

export function mul(a: Sym, b: Sym): Sym {
  const builder = builderOf(a, 'a of mul');
  if (builder !== builderOf(b, 'b of mul')) shapeError('mul', 'Expected symbolic tensors of one graph');
  return builder.op1('mul', [a, b]);
}

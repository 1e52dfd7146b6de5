/**
 * add: elementwise a + b with numpy broadcasting. a: F[A...], b: F[B...] -> F[broadcast(A, B)], F one
 * float dtype (f32, bf16 or f16) shared by both inputs.
 * Its gradient sums over the broadcast dimensions (sum_to).
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/basic.test.ts, compile.test.ts,
 * dtypes.test.ts, fusion.test.ts, moe.test.ts, cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { broadcastIndex, broadcastShapes, defineOp, shapeError } from '../../op.js';
import { sameFloat } from '../float.js';
import { numel, sameShape } from '../../types.js';
import { sumTo } from './sum_to.js';
import { AMAX_ATTR, withAmax, writeAmax } from '../amax.js';

export const addOp = defineOp({
  name: 'add',
  doc: 'out = a + b (broadcasting)',
  inputs: ['a', 'b'],
  outputs: ['out'],
  attrs: { ...AMAX_ATTR },
  elementwise: true,
  amaxOf: 0,
  infer: ([a, b], attrs) => {
    const dtype = sameFloat('add', [['a', a!], ['b', b!]]);
    return withAmax([{ shape: broadcastShapes('add', a!.shape, b!.shape), dtype }], attrs);
  },
  reference: ({ inputs: [a, b], outputs, inTypes, outTypes, attrs }) => {
    const out = outputs[0]!;
    const shape = outTypes[0]!.shape;
    if (sameShape(inTypes[0]!.shape, shape) && sameShape(inTypes[1]!.shape, shape)) {
      for (let i = 0; i < out.length; i++) out[i] = a![i]! + b![i]!;
    } else {
      const ia = broadcastIndex(shape, inTypes[0]!.shape);
      const ib = broadcastIndex(shape, inTypes[1]!.shape);
      for (let i = 0; i < out.length; i++) out[i] = a![ia[i]!]! + b![ib[i]!]!;
    }
    writeAmax(outputs, outTypes, 0, attrs);
  },
  flops: (_, [out]) => numel(out!.shape),
  gradient: ({ inputs: [a, b], grads: [g] }) => [sumTo(g!, a!.shape), sumTo(g!, b!.shape)],
});

export function add(a: Sym, b: Sym): Sym {
  const builder = builderOf(a, 'a of add');
  if (builder !== builderOf(b, 'b of add')) shapeError('add', 'Expected symbolic tensors of one graph');
  return builder.op1('add', [a, b]);
}

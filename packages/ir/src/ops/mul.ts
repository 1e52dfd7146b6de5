/**
 * mul: elementwise a * b with numpy broadcasting. a: f32[A...], b: f32[B...] -> f32[broadcast(A, B)].
 * Built exactly like add (same broadcast rule, same index maps) so the two fuse the same way; its
 * gradient multiplies by the other operand and sums over the broadcast dimensions (sum_to).
 */
import type { Sym } from '../builder.js';
import { broadcastIndex, broadcastShapes, defineOp, expectDtype, shapeError } from '../op.js';
import { numel, sameShape } from '../types.js';

export const mulOp = defineOp({
  name: 'mul',
  doc: 'out = a * b (broadcasting)',
  inputs: ['a', 'b'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([a, b]) => {
    expectDtype('mul', 'a', a!, ['f32']);
    expectDtype('mul', 'b', b!, ['f32']);
    return [{ shape: broadcastShapes('mul', a!.shape, b!.shape), dtype: 'f32' }];
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
});

export function mul(a: Sym, b: Sym): Sym {
  if (a.builder !== b.builder) shapeError('mul', 'Expected symbolic tensors of one graph');
  return a.builder.op1('mul', [a, b]);
}

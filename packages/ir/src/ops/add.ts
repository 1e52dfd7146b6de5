/**
 * add: elementwise a + b with numpy broadcasting. a: f32[A...], b: f32[B...] -> f32[broadcast(A, B)].
 * Its gradient sums over the broadcast dimensions (sum_to).
 */
import type { Sym } from '../builder.js';
import { broadcastIndex, broadcastShapes, defineOp, expectDtype, shapeError } from '../op.js';
import { numel, sameShape } from '../types.js';

export const addOp = defineOp({
  name: 'add',
  doc: 'out = a + b (broadcasting)',
  inputs: ['a', 'b'],
  outputs: ['out'],
  attrs: {},
  elementwise: true,
  infer: ([a, b]) => {
    expectDtype('add', 'a', a!, ['f32']);
    expectDtype('add', 'b', b!, ['f32']);
    return [{ shape: broadcastShapes('add', a!.shape, b!.shape), dtype: 'f32' }];
  },
  reference: ({ inputs: [a, b], outputs: [out], inTypes, outTypes }) => {
    const shape = outTypes[0]!.shape;
    if (sameShape(inTypes[0]!.shape, shape) && sameShape(inTypes[1]!.shape, shape)) {
      for (let i = 0; i < out!.length; i++) out![i] = a![i]! + b![i]!;
      return;
    }
    const ia = broadcastIndex(shape, inTypes[0]!.shape);
    const ib = broadcastIndex(shape, inTypes[1]!.shape);
    for (let i = 0; i < out!.length; i++) out![i] = a![ia[i]!]! + b![ib[i]!]!;
  },
  flops: (_, [out]) => numel(out!.shape),
});

export function add(a: Sym, b: Sym): Sym {
  if (a.builder !== b.builder) shapeError('add', 'Expected symbolic tensors of one graph');
  return a.builder.op1('add', [a, b]);
}

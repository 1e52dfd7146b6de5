/**
 * broadcast_to: repeat x along broadcast dimensions. x: F[X...] (F a float dtype) -> F[S...] with
 * broadcast(X, S) = S. The gradient of sum_to, and sum_to is its gradient.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/basic.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { checkShape } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { broadcastIndex, broadcastShapes, defineOp, shapeError } from '../../op.js';
import { expectFloat } from '../float.js';
import { sameShape } from '../../types.js';
import { sumTo } from './sum_to.js';

export const broadcastToOp = defineOp({
  name: 'broadcast_to',
  doc: 'out = x repeated along the dimensions where it has size 1 (or is missing)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { shape: { kind: 'ints' } },
  infer: ([x], attrs) => {
    const dtype = expectFloat('broadcast_to', 'x', x!);
    const shape = checkShape(attrs.shape, "broadcast_to attribute 'shape'");
    if (!sameShape(broadcastShapes('broadcast_to', x!.shape, shape), shape)) {
      shapeError('broadcast_to', `Expected a shape that [${x!.shape.join(', ')}] broadcasts to but received [${shape.join(', ')}]`);
    }
    return [{ shape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, outTypes }) => {
    const idx = broadcastIndex(outTypes[0]!.shape, inTypes[0]!.shape);
    for (let i = 0; i < out!.length; i++) out![i] = x![idx[i]!]!;
  },
  gradient: ({ inputs: [x], grads: [g] }) => [sumTo(g!, x!.shape)],
});

export function broadcastTo(x: Sym, shape: readonly number[]): Sym {
  const builder = builderOf(x, 'x of broadcastTo');
  return Array.isArray(shape) && sameShape(x.shape, shape) ? x : builder.op1('broadcast_to', [x], { shape });
}

/**
 * sum_to: sum x down to a shape it was broadcast from (the gradient of broadcasting).
 * x: F[X...] (F a float dtype), shape S with broadcast(S, X) = X -> F[S]. Accumulates in float64.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/basic.test.ts, dtypes.test.ts,
 * fusion.test.ts, cuda-tensor.test.ts.
 */
import { checkShape } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { broadcastIndex, broadcastShapes, defineOp, shapeError } from '../../op.js';
import { expectFloat } from '../float.js';
import { numel, sameShape } from '../../types.js';
import { broadcastTo } from './broadcast_to.js';

export const sumToOp = defineOp({
  name: 'sum_to',
  doc: 'out = x summed over the dimensions along which `shape` was broadcast to x',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { shape: { kind: 'ints' } },
  infer: ([x], attrs) => {
    const dtype = expectFloat('sum_to', 'x', x!);
    const shape = checkShape(attrs.shape, "sum_to attribute 'shape'");
    if (!sameShape(broadcastShapes('sum_to', shape, x!.shape), x!.shape)) {
      shapeError('sum_to', `Expected a shape that broadcasts to [${x!.shape.join(', ')}] but received [${shape.join(', ')}]`);
    }
    return [{ shape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, outTypes }) => {
    const idx = broadcastIndex(inTypes[0]!.shape, outTypes[0]!.shape);
    const acc = new Float64Array(out!.length);
    for (let i = 0; i < x!.length; i++) acc[idx[i]!]! += x![i]!;
    out!.set(acc);
  },
  flops: ([x]) => numel(x!.shape),
  gradient: ({ inputs: [x], grads: [g] }) => [broadcastTo(g!, x!.shape)],
});

/** x summed to `shape`; x itself when the shapes already agree. */
export function sumTo(x: Sym, shape: readonly number[]): Sym {
  const builder = builderOf(x, 'x of sumTo');
  return Array.isArray(shape) && sameShape(x.shape, shape) ? x : builder.op1('sum_to', [x], { shape });
}

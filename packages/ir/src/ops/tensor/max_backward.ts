/**
 * max_backward: the gradient of max. g: F[the max's output shape], x: F[X...] (the forward
 * input; F one float dtype shared by both), attrs axes, keepdims (those of the max) -> F[X...]: g of each group at the group's
 * first maximal element (row-major order; the first NaN if any), 0 elsewhere. It recomputes the
 * argmax from x with max's own helper, so the two always pick the same element.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { sameFloat } from '../float.js';
import { numel, sameShape } from '../../types.js';
import { argmaxOfGroups } from './max.js';
import { reduction, REDUCE_ATTRS } from './sum.js';

export const maxBackwardOp = defineOp({
  name: 'max_backward',
  doc: 'out = g at the first maximal element of each group of x, 0 elsewhere',
  inputs: ['g', 'x'],
  outputs: ['out'],
  attrs: REDUCE_ATTRS,
  infer: ([g, x], attrs) => {
    const dtype = sameFloat('max_backward', [['g', g!], ['x', x!]]);
    const r = reduction('max_backward', x!, attrs);
    if (!sameShape(g!.shape, r.outShape)) {
      shapeError('max_backward', `Expected the max's output shape [${r.outShape.join(', ')}] for input 'g' but received [${g!.shape.join(', ')}]`);
    }
    return [{ shape: x!.shape, dtype }];
  },
  reference: ({ inputs: [g, x], outputs: [out], inTypes, attrs }) => {
    const arg = argmaxOfGroups('max_backward', x!, inTypes[1]!, attrs);
    out!.fill(0);
    for (let j = 0; j < arg.length; j++) if (arg[j] !== -1) out![arg[j]!] = g![j]!;
  },
  flops: ([, x]) => numel(x!.shape),
});

export function maxBackward(g: Sym, x: Sym, axes: readonly number[], keepdims: boolean): Sym {
  const builder = builderOf(g, 'g of maxBackward');
  if (builder !== builderOf(x, 'x of maxBackward')) shapeError('max_backward', 'Expected symbolic tensors of one graph');
  return builder.op1('max_backward', [g, x], { axes, keepdims });
}

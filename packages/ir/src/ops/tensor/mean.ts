/**
 * mean: the average over axes. x: F[X...] (F a float dtype), attrs axes ([] means every axis), keepdims -> the
 * shape sum gives. Sums in float64, then divides by the group size once. Shares sum's `reduction`
 * so the two can never disagree on shapes. Gradient: g / count broadcast back to x.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { numel } from '../../types.js';
import { groupIndex, reduction, REDUCE_ATTRS, spread } from './sum.js';
import { expectFloat } from '../float.js';
import { scale } from './scale.js';

export const meanOp = defineOp({
  name: 'mean',
  doc: 'out = x averaged over `axes` (all when empty)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: REDUCE_ATTRS,
  infer: ([x], attrs) => {
    const dtype = expectFloat('mean', 'x', x!);
    return [{ shape: reduction('mean', x!, attrs).outShape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, attrs }) => {
    const r = reduction('mean', inTypes[0]!, attrs);
    const idx = groupIndex(inTypes[0]!, r);
    const acc = new Float64Array(out!.length);
    for (let i = 0; i < x!.length; i++) acc[idx[i]!]! += x![i]!;
    for (let j = 0; j < out!.length; j++) out![j] = acc[j]! / r.count;
  },
  flops: ([x], [out]) => numel(x!.shape) + numel(out!.shape),
  gradient: ({ inputs: [x], grads: [g], attrs }) => {
    const r = reduction('mean', x!.type, attrs);
    return [spread(scale(g!, 1 / r.count), x!, r.keepShape)];
  },
});

export function mean(x: Sym, axes: readonly number[] = [], keepdims = false): Sym {
  return builderOf(x, 'x of mean').op1('mean', [x], { axes, keepdims });
}

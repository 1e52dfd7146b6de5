/**
 * max: the largest element over axes. x: F[X...] (F a float dtype), attrs axes ([] means every axis), keepdims ->
 * the shape sum gives. A NaN in a group makes the group's max NaN (as torch.amax). Its gradient
 * goes to the FIRST maximal element of each group (row-major order) only, through max_backward,
 * which finds that element the same way; a dedicated op keeps the backward one kernel and free of
 * a float mask.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp } from '../../op.js';
import { numel } from '../../types.js';
import { groupIndex, reduction, REDUCE_ATTRS } from './sum.js';
import { expectFloat } from '../float.js';
import type { NumArray, ValueType, Attrs } from '../../types.js';
import { maxBackward } from './max_backward.js';

/** For each group, the flat index in x of its first maximal element (first NaN, if any). */
export function argmaxOfGroups(op: string, x: NumArray, t: ValueType, attrs: Attrs): Int32Array {
  const r = reduction(op, t, attrs);
  const idx = groupIndex(t, r);
  const arg = new Int32Array(numel(r.keepShape)).fill(-1);
  for (let i = 0; i < x.length; i++) {
    const g = idx[i]!;
    const a = arg[g]!;
    if (a === -1) {
      arg[g] = i;
      continue;
    }
    const best = x[a]!;
    const v = x[i]!;
    if (!Number.isNaN(best) && (v > best || Number.isNaN(v))) arg[g] = i;
  }
  return arg;
}

export const maxOp = defineOp({
  name: 'max',
  doc: 'out = the maximum of x over `axes` (all when empty)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: REDUCE_ATTRS,
  infer: ([x], attrs) => {
    const dtype = expectFloat('max', 'x', x!);
    return [{ shape: reduction('max', x!, attrs).outShape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, attrs }) => {
    const arg = argmaxOfGroups('max', x!, inTypes[0]!, attrs);
    // A group of no elements (a reduced dimension of size 0) has max -Infinity.
    for (let j = 0; j < out!.length; j++) out![j] = arg[j] === -1 ? -Infinity : x![arg[j]!]!;
  },
  flops: ([x]) => numel(x!.shape),
  gradient: ({ inputs: [x], grads: [g], attrs }) => [maxBackward(g!, x!, attrs.axes as readonly number[], attrs.keepdims === true)],
});

export function max(x: Sym, axes: readonly number[] = [], keepdims = false): Sym {
  return builderOf(x, 'x of max').op1('max', [x], { axes, keepdims });
}

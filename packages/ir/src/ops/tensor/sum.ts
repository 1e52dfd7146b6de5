/**
 * sum: sum over axes. x: F[X...] (F a float dtype: f32, bf16 or f16), attrs axes (ints; negative
 * count from the end; [] means every axis), keepdims (bool, default false) -> F[X with the reduced
 * dims removed] (or set to 1 with keepdims; F[] when every axis is reduced without keepdims).
 * Accumulates in float64.
 * The reference maps each element of x to its group with broadcastIndex against the keepdims
 * shape (which has the same row-major layout as the output), so any set of axes is one loop.
 * `reduction` is shared by mean, max and max_backward. Gradient: g reshaped to the keepdims shape
 * and broadcast back to x.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { axisOf, broadcastIndex, defineOp, shapeError } from '../../op.js';
import { numel, sameShape, type Attrs, type ValueType } from '../../types.js';
import { expectFloat } from '../float.js';
import { broadcastTo } from '../basic/broadcast_to.js';
import { reshape } from '../basic/reshape.js';

export interface Reduction {
  /** Reduced axes, normalised and sorted. */
  axes: number[];
  /** The output shape with reduced dims kept as 1. */
  keepShape: number[];
  /** The output shape as declared (keepShape without the reduced dims unless keepdims). */
  outShape: number[];
  /** Elements per group. */
  count: number;
}

/** Check `axes`/`keepdims` of a reduction of x and derive its shapes. */
export function reduction(op: string, x: ValueType, attrs: Attrs): Reduction {
  const rank = x.shape.length;
  const given = attrs.axes as readonly number[];
  const axes = given.length === 0 ? x.shape.map((_, i) => i) : given.map((a) => axisOf(op, a, rank));
  if (new Set(axes).size !== axes.length) shapeError(op, `Expected distinct axes for attribute 'axes' (x: ${x.dtype}[${x.shape.join(', ')}]) but received [${given.join(', ')}]`);
  axes.sort((a, b) => a - b);
  const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outShape = attrs.keepdims === true ? keepShape : x.shape.filter((_, i) => !axes.includes(i));
  return { axes, keepShape, outShape, count: numel(axes.map((a) => x.shape[a]!)) };
}

/** For each element of x, the index of its group in the output. */
export function groupIndex(x: ValueType, r: Reduction): Int32Array {
  return broadcastIndex(x.shape, r.keepShape);
}

/** The gradient of a reduction of x: g reshaped to the keepdims shape and broadcast back over x. */
export function spread(g: Sym, x: Sym, keepShape: readonly number[]): Sym {
  return broadcastTo(sameShape(g.shape, keepShape) ? g : reshape(g, keepShape), x.shape);
}

export const REDUCE_ATTRS = { axes: { kind: 'ints', default: [] }, keepdims: { kind: 'bool', default: false } } as const;

export const sumOp = defineOp({
  name: 'sum',
  doc: 'out = x summed over `axes` (all when empty)',
  inputs: ['x'],
  outputs: ['out'],
  attrs: REDUCE_ATTRS,
  infer: ([x], attrs) => {
    const dtype = expectFloat('sum', 'x', x!);
    return [{ shape: reduction('sum', x!, attrs).outShape, dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, attrs }) => {
    const idx = groupIndex(inTypes[0]!, reduction('sum', inTypes[0]!, attrs));
    const acc = new Float64Array(out!.length);
    for (let i = 0; i < x!.length; i++) acc[idx[i]!]! += x![i]!;
    out!.set(acc);
  },
  flops: ([x]) => numel(x!.shape),
  gradient: ({ inputs: [x], grads: [g], attrs }) => [spread(g!, x!, reduction('sum', x!.type, attrs).keepShape)],
});

export function sum(x: Sym, axes: readonly number[] = [], keepdims = false): Sym {
  return builderOf(x, 'x of sum').op1('sum', [x], { axes, keepdims });
}

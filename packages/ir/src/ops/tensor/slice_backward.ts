/**
 * slice_backward: the gradient of slice, g written into zeros of the sliced input's shape.
 * g: F[..., L, ...], attrs shape (the input's shape S), axis, start with start + L <= S[axis] and
 * the other dimensions equal -> F[S...], zero outside [start, start + L) along axis. F is a float
 * dtype (f32, f16, bf16), kept as is. One op instead of a concat with zero fills so the backward
 * of a sliced projection is one kernel; its own gradient is the slice it undoes.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { checkShape } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { axisOf, defineOp, expectDtype, shapeError } from '../../op.js';
import { numel, type Attrs, type ValueType } from '../../types.js';
import { slice } from './slice.js';

function resolve(g: ValueType, attrs: Attrs): { shape: readonly number[]; axis: number; start: number } {
  const shape = checkShape(attrs.shape, "slice_backward attribute 'shape'");
  const axis = axisOf('slice_backward', attrs.axis as number, shape.length);
  const start = attrs.start as number;
  const fits = g.shape.length === shape.length && g.shape.every((d, i) => (i === axis ? start >= 0 && start + d <= shape[i]! : d === shape[i]));
  if (!fits) {
    shapeError('slice_backward', `Expected a slice of [${shape.join(', ')}] starting at ${start} along axis ${axis} for input 'g' but received ${g.dtype}[${g.shape.join(', ')}]`);
  }
  return { shape, axis, start };
}

export const sliceBackwardOp = defineOp({
  name: 'slice_backward',
  doc: 'out = zeros(shape) with out[..., start:start+L, ...] = g along `axis`',
  inputs: ['g'],
  outputs: ['out'],
  attrs: { shape: { kind: 'ints' }, axis: { kind: 'int' }, start: { kind: 'int' } },
  infer: ([g], attrs) => {
    expectDtype('slice_backward', 'g', g!, ['f32', 'f16', 'bf16']);
    return [{ shape: resolve(g!, attrs).shape, dtype: g!.dtype }];
  },
  reference: ({ inputs: [g], outputs: [out], inTypes, attrs }) => {
    const { shape, axis, start } = resolve(inTypes[0]!, attrs);
    const outer = numel(shape.slice(0, axis));
    const inner = numel(shape.slice(axis + 1));
    const A = shape[axis]!;
    const L = inTypes[0]!.shape[axis]!;
    out!.fill(0);
    for (let o = 0; o < outer; o++) {
      for (let a = 0; a < L; a++) {
        for (let k = 0; k < inner; k++) out![(o * A + start + a) * inner + k] = g![(o * L + a) * inner + k]!;
      }
    }
  },
  // Linear in g: its gradient is the slice it undoes.
  gradient: ({ inputs: [g], grads: [gg], attrs }) => {
    const start = attrs.start as number;
    const axis = attrs.axis as number;
    const length = g!.shape[axis < 0 ? axis + g!.rank : axis]!;
    return [slice(gg!, axis, start, start + length)];
  },
});

export function sliceBackward(g: Sym, shape: readonly number[], axis: number, start: number): Sym {
  return builderOf(g, 'g of sliceBackward').op1('slice_backward', [g], { shape, axis, start });
}

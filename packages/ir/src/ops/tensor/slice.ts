/**
 * slice: the elements start <= i < end along one axis. x: T[..., A, ...], attrs axis (negative
 * counts from the end), start, end with 0 <= start <= end <= A -> T[..., end - start, ...].
 * One axis, no steps: that is what models need (splitting a fused QKV projection, shifting a
 * sequence), and it keeps the rule and the gradient (slice_backward, which writes g into zeros of
 * x's shape) simple. Any dtype, since it only moves elements. The reference views x as
 * [outer, A, inner] and copies the rows [start, end) of each outer block.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { byteSizeOf } from '../../graph.js';
import { axisOf, defineOp, shapeError } from '../../op.js';
import { numel, type Attrs, type ValueType } from '../../types.js';
import { sliceBackward } from './slice_backward.js';

function resolve(x: ValueType, attrs: Attrs): { axis: number; start: number; end: number } {
  const axis = axisOf('slice', attrs.axis as number, x.shape.length);
  const start = attrs.start as number;
  const end = attrs.end as number;
  const size = x.shape[axis]!;
  if (!(start >= 0 && start <= end && end <= size)) {
    shapeError('slice', `Expected 0 <= start <= end <= ${size} (axis ${axis} of ${x.dtype}[${x.shape.join(', ')}]) for attributes 'start', 'end' but received start ${start}, end ${end}`);
  }
  return { axis, start, end };
}

export const sliceOp = defineOp({
  name: 'slice',
  doc: 'out = x[..., start:end, ...] along `axis`',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { axis: { kind: 'int' }, start: { kind: 'int' }, end: { kind: 'int' } },
  bytes: (_, [out]) => 2 * byteSizeOf(out!), // the slice read, the slice written
  infer: ([x], attrs) => {
    const { axis, start, end } = resolve(x!, attrs);
    return [{ shape: x!.shape.map((d, i) => (i === axis ? end - start : d)), dtype: x!.dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, attrs }) => {
    const shape = inTypes[0]!.shape;
    const { axis, start, end } = resolve(inTypes[0]!, attrs);
    const outer = numel(shape.slice(0, axis));
    const inner = numel(shape.slice(axis + 1));
    const A = shape[axis]!;
    const L = end - start;
    for (let o = 0; o < outer; o++) {
      for (let a = 0; a < L; a++) {
        for (let k = 0; k < inner; k++) out![(o * L + a) * inner + k] = x![(o * A + start + a) * inner + k]!;
      }
    }
  },
  gradient: ({ inputs: [x], grads: [g], attrs }) => [sliceBackward(g!, x!.shape, attrs.axis as number, attrs.start as number)],
});

export function slice(x: Sym, axis: number, start: number, end: number): Sym {
  return builderOf(x, 'x of slice').op1('slice', [x], { axis, start, end });
}

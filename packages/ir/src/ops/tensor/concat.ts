/**
 * concat: join tensors along one axis. xs: T[..., A_k, ...] (k = 0..n-1, n >= 1, one dtype T, equal
 * sizes except along axis; negative axis counts from the end) -> T[..., sum_k A_k, ...].
 * Variadic (inputs '...xs') so one node joins any number of pieces; any dtype, since it only moves
 * elements. Its gradient is one slice of g per input. The reference views each input as
 * [outer, A_k, inner] and copies its blocks to their offset in the output.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOfAll, type Sym } from '../../builder.js';
import { axisOf, defineOp, shapeError } from '../../op.js';
import { numel, shapeStr, type ValueType } from '../../types.js';
import { slice } from './slice.js';

function check(xs: ValueType[], axisAttr: number): { axis: number; shape: number[] } {
  const first = xs[0]!;
  if (first.shape.length === 0) shapeError('concat', `Expected rank >= 1 for input 'xs[0]' but received ${shapeStr(first)}`);
  const axis = axisOf('concat', axisAttr, first.shape.length);
  let total = 0;
  xs.forEach((x, k) => {
    if (x.dtype !== first.dtype) {
      throw new DeepwellError('INVALID_DTYPE', `concat: Expected ${first.dtype} (the dtype of xs[0]) for input 'xs[${k}]' but received ${shapeStr(x)}`);
    }
    const ok = x.shape.length === first.shape.length && x.shape.every((d, i) => i === axis || d === first.shape[i]);
    if (!ok) {
      shapeError('concat', `Expected the sizes of xs[0] (${shapeStr(first)}) except along axis ${axis} for input 'xs[${k}]' but received ${shapeStr(x)}`);
    }
    total += x.shape[axis]!;
  });
  return { axis, shape: first.shape.map((d, i) => (i === axis ? total : d)) };
}

export const concatOp = defineOp({
  name: 'concat',
  doc: 'out = the inputs joined along `axis`',
  inputs: ['...xs'],
  outputs: ['out'],
  attrs: { axis: { kind: 'int' } },
  infer: (xs, attrs) => {
    const { shape } = check(xs, attrs.axis as number);
    return [{ shape, dtype: xs[0]!.dtype }];
  },
  reference: ({ inputs, outputs: [out], inTypes, attrs }) => {
    const { axis, shape } = check(inTypes, attrs.axis as number);
    const outer = numel(shape.slice(0, axis));
    const inner = numel(shape.slice(axis + 1));
    const T = shape[axis]!;
    let offset = 0;
    inputs.forEach((x, k) => {
      const A = inTypes[k]!.shape[axis]!;
      for (let o = 0; o < outer; o++) {
        for (let a = 0; a < A; a++) {
          for (let i = 0; i < inner; i++) out![(o * T + offset + a) * inner + i] = x[(o * A + a) * inner + i]!;
        }
      }
      offset += A;
    });
  },
  gradient: ({ inputs, grads: [g], attrs }) => {
    const rank = inputs[0]!.rank;
    const axis = (attrs.axis as number) < 0 ? (attrs.axis as number) + rank : (attrs.axis as number);
    let offset = 0;
    return inputs.map((x) => {
      const size = x.shape[axis]!;
      offset += size;
      return slice(g!, axis, offset - size, offset);
    });
  },
});

export function concat(xs: readonly Sym[], axis: number): Sym {
  if (Array.isArray(xs) && xs.length === 0) throw new DeepwellError('INVALID_ARGUMENT', 'concat: Expected at least 1 tensor for xs but received none');
  return builderOfAll(xs, 'xs of concat').op1('concat', xs, { axis });
}

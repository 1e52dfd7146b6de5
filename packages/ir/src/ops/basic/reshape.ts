/**
 * reshape: the same elements in a new shape (row-major order kept). x: T[X...] -> T[S...] with
 * numel(S) = numel(X); one dimension of S may be -1 and is inferred.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/basic.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import { numel, type ValueType } from '../../types.js';

function resolve(x: ValueType, shape: readonly number[]): number[] {
  const n = numel(x.shape);
  const free = shape.filter((d) => d === -1).length;
  if (free > 1 || shape.some((d) => d < -1)) shapeError('reshape', `Expected non-negative sizes and at most one -1 but received [${shape.join(', ')}]`);
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const out = shape.map((d) => (d === -1 ? (known === 0 ? 0 : n / known) : d));
  if (numel(out) !== n || out.some((d) => !Number.isInteger(d))) {
    shapeError('reshape', `Expected a shape with ${n} elements for [${x.shape.join(', ')}] but received [${shape.join(', ')}]`);
  }
  return out;
}

export const reshapeOp = defineOp({
  name: 'reshape',
  doc: 'out = x with a new shape, same elements in row-major order',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { shape: { kind: 'ints' } },
  infer: ([x], attrs) => [{ shape: resolve(x!, attrs.shape as readonly number[]), dtype: x!.dtype }],
  reference: ({ inputs: [x], outputs: [out] }) => {
    out!.set(x! as never);
  },
  gradient: ({ inputs: [x], grads: [g] }) => [reshape(g!, x!.shape)],
});

export function reshape(x: Sym, shape: readonly number[]): Sym {
  return builderOf(x, 'x of reshape').op1('reshape', [x], { shape });
}

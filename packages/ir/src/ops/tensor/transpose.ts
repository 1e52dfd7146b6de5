/**
 * transpose: permute dimensions. x: T[X0, ..., Xr-1], attr perm (a permutation of 0..r-1) ->
 * T[X[perm[0]], ..., X[perm[r-1]]], out[i0, ..., ir-1] = x[j] with j[perm[d]] = i[d]. Any dtype:
 * it only moves elements (token ids as well as activations). Its gradient is the transpose by the
 * inverse permutation. The reference walks the output in row-major order and gathers from x through
 * x's strides, which is the plainest statement of the definition.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/tensor.ts; the native
 * kernel is in native/ops/tensor/; tested in packages/ir/test/tensor.test.ts, dtypes.test.ts,
 * cuda-tensor.test.ts.
 */
import { invalid } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError, stridesOf } from '../../op.js';
import type { ValueType } from '../../types.js';

function checkPerm(x: ValueType, perm: readonly number[]): void {
  const r = x.shape.length;
  const seen = new Set(perm);
  if (perm.length !== r || seen.size !== r || perm.some((p) => p < 0 || p >= r)) {
    shapeError('transpose', `Expected a permutation of 0..${r - 1} for attribute 'perm' (x: ${x.dtype}[${x.shape.join(', ')}]) but received [${perm.join(', ')}]`);
  }
}

/** The permutation that undoes `perm`. */
export function inversePerm(perm: readonly number[]): number[] {
  const ok = Array.isArray(perm) && perm.every((p) => Number.isSafeInteger(p) && p >= 0 && p < perm.length) && new Set(perm).size === perm.length;
  if (!ok) invalid('a permutation of 0 .. n-1', 'inversePerm', perm);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, d) => (inv[p] = d));
  return inv;
}

export const transposeOp = defineOp({
  name: 'transpose',
  doc: 'out = x with its dimensions permuted: out.shape[d] = x.shape[perm[d]]',
  inputs: ['x'],
  outputs: ['out'],
  attrs: { perm: { kind: 'ints' } },
  infer: ([x], attrs) => {
    const perm = attrs.perm as readonly number[];
    checkPerm(x!, perm);
    return [{ shape: perm.map((p) => x!.shape[p]!), dtype: x!.dtype }];
  },
  reference: ({ inputs: [x], outputs: [out], inTypes, outTypes, attrs }) => {
    const perm = attrs.perm as readonly number[];
    const outShape = outTypes[0]!.shape;
    const xs = stridesOf(inTypes[0]!.shape);
    const os = stridesOf(outShape);
    // Stride in x of a step along output dimension d.
    const step = perm.map((p) => xs[p]!);
    for (let i = 0; i < out!.length; i++) {
      let rem = i;
      let j = 0;
      for (let d = 0; d < outShape.length; d++) {
        const c = Math.floor(rem / os[d]!);
        rem -= c * os[d]!;
        j += c * step[d]!;
      }
      out![i] = x![j]!;
    }
  },
  gradient: ({ grads: [g], attrs }) => [transpose(g!, inversePerm(attrs.perm as readonly number[]))],
});

export function transpose(x: Sym, perm: readonly number[]): Sym {
  return builderOf(x, 'x of transpose').op1('transpose', [x], { perm });
}

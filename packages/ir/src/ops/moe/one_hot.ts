/**
 * one_hot: class indices to indicator rows.
 *   idx: i32[...], attribute classes (>= 1) -> f32[..., classes] with out[..., c] = 1 where
 *   c = idx[...] and 0 elsewhere; idx = -1 gives a zero row.
 * Mixture-of-experts uses it for the load-balancing loss: one_hot(experts, E) summed over tokens
 * and choices counts the tokens routed to each expert (the f_e of Switch Transformer). -1 gives a
 * zero row, as in gather_rows, so "no choice" counts nowhere; any other index outside
 * [0, classes) is an INVALID_ARGUMENT error naming the position. The output is a function of
 * integers only: nonDifferentiable.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/moe.ts; the native
 * kernel is in native/ops/moe/; tested in packages/ir/test/moe.test.ts, dtypes.test.ts,
 * cuda-moe.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, shapeError } from '../../op.js';

/** The multi-index of flat position `p` in a row-major `shape`, as text: "[1, 0, 2]". */
function position(shape: readonly number[], p: number): string {
  const at = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    at[d] = p % shape[d]!;
    p = Math.floor(p / shape[d]!);
  }
  return `[${at.join(', ')}]`;
}

export const oneHotOp = defineOp({
  name: 'one_hot',
  doc: 'out[..., c] = 1 if idx[...] = c else 0 (a zero row where idx = -1)',
  inputs: ['idx'],
  outputs: ['out'],
  attrs: { classes: { kind: 'int' } },
  indexInputs: [{ input: 0, bound: (_, attrs) => attrs.classes as number, allow: () => -1 }],
  nonDifferentiable: true,
  infer: ([idx], attrs) => {
    expectDtype('one_hot', 'idx', idx!, ['i32']);
    const classes = attrs.classes as number;
    if (classes < 1) shapeError('one_hot', `Expected a positive class count for attribute 'classes' but received ${classes}`);
    return [{ shape: [...idx!.shape, classes], dtype: 'f32' }];
  },
  reference: ({ inputs: [idx], outputs: [out], inTypes, attrs }) => {
    const classes = attrs.classes as number;
    out!.fill(0);
    for (let p = 0; p < idx!.length; p++) {
      const c = idx![p]!;
      if (c === -1) continue;
      if (!Number.isInteger(c) || c < 0 || c >= classes) {
        throw new DeepwellError('INVALID_ARGUMENT', `one_hot: Expected -1 or an index in [0, ${classes}) for idx${position(inTypes[0]!.shape, p)} but received ${c}`);
      }
      out![p * classes + c] = 1;
    }
  },
  // The output depends on integers only; this rule lets a loss that uses it (the load-balancing
  // loss on topk's indices) differentiate, with no gradient flowing into idx.
  gradient: () => [null],
});

/** Indicator rows f32[..., classes] for `idx` (i32[...]); -1 gives a zero row. */
export function oneHot(idx: Sym, classes: number): Sym {
  return builderOf(idx, 'idx of oneHot').op1('one_hot', [idx], { classes });
}

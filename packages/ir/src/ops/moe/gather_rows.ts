/**
 * gather_rows: pick rows of a matrix by index.
 *   x: F[R, D] (F a float dtype: f32, bf16 or f16), idx: i32[M] -> F[M, D] with out[m] = x[idx[m]], and out[m] = 0 when idx[m] = -1.
 * In mixture-of-experts this is both halves of the data movement with static shapes: dispatch
 * (tokens f32[N, D] gathered into expert slots by moe_plan's dispatch, -1 marking an empty slot)
 * and combine (expert outputs f32[E*C, D] gathered back per token choice, -1 marking a dropped
 * choice). -1 gives a zero row rather than an error so that empty slots and dropped tokens
 * contribute nothing without a mask; any other index outside [0, R) is an INVALID_ARGUMENT error
 * naming the position. Its gradient w.r.t. x is scatter_add_rows(g, idx, R).
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/moe.ts; the native
 * kernel is in native/ops/moe/; tested in packages/ir/test/moe.test.ts, dtypes.test.ts,
 * cuda-moe.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { byteSizeOf } from '../../graph.js';
import { defineOp, expectDtype, expectRank } from '../../op.js';
import { expectFloat } from '../float.js';
import { scatterAddRows } from './scatter_add_rows.js';

export const gatherRowsOp = defineOp({
  name: 'gather_rows',
  doc: 'out[m] = x[idx[m]], or a zero row where idx[m] = -1',
  inputs: ['x', 'idx'],
  outputs: ['out'],
  attrs: {},
  indexInputs: [{ input: 1, bound: ([x]) => x!.shape[0]!, allow: () => -1 }],
  bytes: ([, idx], [out]) => byteSizeOf(idx!) + 2 * byteSizeOf(out!), // the rows it takes, not all of x
  infer: ([x, idx]) => {
    const dtype = expectFloat('gather_rows', 'x', x!);
    expectDtype('gather_rows', 'idx', idx!, ['i32']);
    expectRank('gather_rows', 'x', x!, 2);
    expectRank('gather_rows', 'idx', idx!, 1);
    return [{ shape: [idx!.shape[0]!, x!.shape[1]!], dtype }];
  },
  reference: ({ inputs: [x, idx], outputs: [out], inTypes }) => {
    const [R, D] = inTypes[0]!.shape as [number, number];
    for (let m = 0; m < idx!.length; m++) {
      const r = idx![m]!;
      if (r === -1) {
        for (let d = 0; d < D; d++) out![m * D + d] = 0;
        continue;
      }
      if (!Number.isInteger(r) || r < 0 || r >= R) {
        throw new DeepwellError('INVALID_ARGUMENT', `gather_rows: Expected -1 or an index in [0, ${R}) for idx[${m}] but received ${r}`);
      }
      for (let d = 0; d < D; d++) out![m * D + d] = x![r * D + d]!;
    }
  },
  gradient: ({ inputs: [x, idx], grads: [g] }) => [scatterAddRows(g!, idx!, x!.shape[0]!), null],
});

/** Rows of `x` (F[R, D], a float dtype) at `idx` (i32[M]); -1 gives a zero row. */
export function gatherRows(x: Sym, idx: Sym): Sym {
  return builderOf(x, 'x of gatherRows').op1('gather_rows', [x, idx]);
}


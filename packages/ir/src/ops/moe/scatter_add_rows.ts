/**
 * scatter_add_rows: add rows of a matrix into a zero matrix at given row positions.
 *   src: F[M, D] (F a float dtype: f32, bf16 or f16), idx: i32[M], attribute rows (R >= 0)
 *   -> F[R, D] with
 *   out[r] = sum of src[m] over every m with idx[m] = r; rows no index names stay zero, and
 *   idx[m] = -1 skips src[m].
 * It is the adjoint of gather_rows (and its gradient w.r.t. x), so repeated indices accumulate
 * rather than overwrite, and -1 means "nowhere" just as it means "zero row" there. Accumulates in
 * float64. Any index other than -1 outside [0, R) is an INVALID_ARGUMENT error naming the position.
 * Its gradient w.r.t. src is gather_rows(g, idx).
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/moe.ts; the native
 * kernel is in native/ops/moe/; tested in packages/ir/test/moe.test.ts, dtypes.test.ts,
 * cuda-moe.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { numel, shapeStr } from '../../types.js';
import { expectFloat } from '../float.js';
import { gatherRows } from './gather_rows.js';

export const scatterAddRowsOp = defineOp({
  name: 'scatter_add_rows',
  doc: 'out = zeros[rows, D]; out[idx[m]] += src[m] for every m with idx[m] != -1',
  inputs: ['src', 'idx'],
  outputs: ['out'],
  attrs: { rows: { kind: 'int' } },
  indexInputs: [{ input: 1, bound: (_, attrs) => attrs.rows as number, allow: () => -1 }],
  infer: ([src, idx], attrs) => {
    const dtype = expectFloat('scatter_add_rows', 'src', src!);
    expectDtype('scatter_add_rows', 'idx', idx!, ['i32']);
    expectRank('scatter_add_rows', 'src', src!, 2);
    expectRank('scatter_add_rows', 'idx', idx!, 1);
    if (idx!.shape[0] !== src!.shape[0]) {
      shapeError('scatter_add_rows', `Expected i32[${src!.shape[0]}] (one index per row of src ${shapeStr(src!)}) for input 'idx' but received ${shapeStr(idx!)}`);
    }
    const rows = attrs.rows as number;
    if (rows < 0) shapeError('scatter_add_rows', `Expected a non-negative row count for attribute 'rows' but received ${rows}`);
    return [{ shape: [rows, src!.shape[1]!], dtype }];
  },
  reference: ({ inputs: [src, idx], outputs: [out], inTypes, attrs }) => {
    const D = inTypes[0]!.shape[1]!;
    const R = attrs.rows as number;
    const acc = new Float64Array(R * D);
    for (let m = 0; m < idx!.length; m++) {
      const r = idx![m]!;
      if (r === -1) continue;
      if (!Number.isInteger(r) || r < 0 || r >= R) {
        throw new DeepwellError('INVALID_ARGUMENT', `scatter_add_rows: Expected -1 or an index in [0, ${R}) for idx[${m}] but received ${r}`);
      }
      for (let d = 0; d < D; d++) acc[r * D + d]! += src![m * D + d]!;
    }
    out!.set(acc);
  },
  flops: ([src]) => numel(src!.shape),
  gradient: ({ inputs: [, idx], grads: [g] }) => [gatherRows(g!, idx!), null],
});

/** A zero F[rows, D] with each row of `src` (F[M, D], a float dtype) added at row `idx[m]`; -1 skips. */
export function scatterAddRows(src: Sym, idx: Sym, rows: number): Sym {
  return builderOf(src, 'src of scatterAddRows').op1('scatter_add_rows', [src, idx], { rows });
}

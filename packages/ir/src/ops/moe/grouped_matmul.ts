/**
 * grouped_matmul: one matmul per expert over that expert's contiguous rows (the grouped GEMM of
 * dropless mixture-of-experts, as MegaBlocks and torch._grouped_mm compute it).
 *   x: F[R, K], w: F[E, K, N] (F one float dtype: f32, bf16 or f16), offsets: i32[E + 1] ->
 *   out: F[R, N] with out[r] = x[r] · w[e] for offsets[e] <= r < offsets[e + 1].
 * Attribute transposeW (default false): w is F[E, N, K] and out[r] = x[r] · w[e]ᵀ (the gradient of x).
 * The offsets start at 0, never decrease and end at R: expert e takes rows offsets[e] to
 * offsets[e + 1] - 1, an expert with no rows has offsets[e] = offsets[e + 1], and every row belongs
 * to exactly one expert. They are data (moe_sort computes them on the device each step), so the
 * shapes stay static however the router routes; offsets that break these rules are an
 * INVALID_ARGUMENT error naming the first bad entry. The reference accumulates in float64.
 * Gradients: dx = grouped_matmul(g, w, offsets, transposeW = !transposeW); dw = grouped_matmul_wgrad
 * (x, g, offsets) (its transpose when transposeW); offsets take none.
 *
 * Tested in packages/ir/test/grouped_matmul.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { shapeStr, type ValueType } from '../../types.js';
import { sameFloat } from '../float.js';
import { groupedMatmulWgrad } from './grouped_matmul_wgrad.js';
import { transpose } from '../tensor/transpose.js';

/** The shape checks grouped_matmul and grouped_matmul_wgrad share: offsets i32[E + 1]. */
export function expectOffsets(op: string, offsets: ValueType, E: number): void {
  expectDtype(op, 'offsets', offsets, ['i32']);
  expectRank(op, 'offsets', offsets, 1);
  if (offsets.shape[0] !== E + 1) shapeError(op, `Expected i32[${E + 1}] (one more than the ${E} experts) for input 'offsets' but received ${shapeStr(offsets)}`);
}

/** Throws INVALID_ARGUMENT unless offsets (E + 1 entries) start at 0, never decrease and end at R. */
export function checkOffsets(op: string, offsets: ArrayLike<number>, R: number): void {
  const E = offsets.length - 1;
  const bad = (i: number, want: string) => {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected ${want} for offsets[${i}] but received ${offsets[i]}`);
  };
  if (offsets[0] !== 0) bad(0, '0 (the first expert starts at row 0)');
  for (let e = 1; e <= E; e++) {
    const o = offsets[e]!;
    if (!Number.isInteger(o) || o < offsets[e - 1]! || o > R) bad(e, `an integer in [offsets[${e - 1}] = ${offsets[e - 1]}, ${R}] (offsets never decrease)`);
  }
  if (offsets[E] !== R) bad(E, `${R} (the last expert ends at the last row)`);
}

export const groupedMatmulOp = defineOp({
  name: 'grouped_matmul',
  doc: 'out[r] = x[r] · w[e] (w[e]ᵀ with transposeW) for the expert e whose rows offsets[e] <= r < offsets[e+1] hold r',
  inputs: ['x', 'w', 'offsets'],
  outputs: ['out'],
  attrs: { transposeW: { kind: 'bool', default: false } },
  infer: ([x, w, offsets], attrs) => {
    const dtype = sameFloat('grouped_matmul', [['x', x!], ['w', w!]]);
    expectRank('grouped_matmul', 'x', x!, 2);
    expectRank('grouped_matmul', 'w', w!, 3);
    const [E, a, b] = w!.shape as [number, number, number];
    const [K, N] = attrs.transposeW ? [b, a] : [a, b];
    if (x!.shape[1] !== K) {
      const want = attrs.transposeW ? `[E, N, ${x!.shape[1]}]` : `[E, ${x!.shape[1]}, N]`;
      shapeError('grouped_matmul', `Expected w of shape ${want} (its reduction length that of x ${shapeStr(x!)}) but received ${shapeStr(w!)}`);
    }
    if (E < 1) shapeError('grouped_matmul', `Expected at least one expert in w but received ${shapeStr(w!)}`);
    expectOffsets('grouped_matmul', offsets!, E);
    return [{ shape: [x!.shape[0]!, N], dtype }];
  },
  reference: ({ inputs: [x, w, offsets], outputs: [out], inTypes, attrs }) => {
    const [R, K] = inTypes[0]!.shape as [number, number];
    const [E, a, b] = inTypes[1]!.shape as [number, number, number];
    const N = attrs.transposeW ? a : b;
    checkOffsets('grouped_matmul', offsets!, R);
    // w[e][k][n] at e·K·N + k·N + n, or (transposed) e·N·K + n·K + k.
    // Each output is the float64 sum over k ascending, from 0; without transposeW a row's N sums run
    // side by side (k outer, n inner: w read along its rows), the same additions in the same order.
    const row = new Float64Array(attrs.transposeW ? 0 : N);
    for (let e = 0; e < E; e++) {
      const base = e * K * N;
      for (let r = offsets![e]!; r < offsets![e + 1]!; r++) {
        if (attrs.transposeW) {
          for (let n = 0; n < N; n++) {
            let acc = 0;
            for (let k = 0; k < K; k++) acc += x![r * K + k]! * w![base + n * K + k]!;
            out![r * N + n] = acc;
          }
          continue;
        }
        row.fill(0);
        for (let k = 0; k < K; k++) {
          const xv = x![r * K + k]!;
          const wk = base + k * N;
          for (let n = 0; n < N; n++) row[n] = row[n]! + xv * w![wk + n]!;
        }
        for (let n = 0; n < N; n++) out![r * N + n] = row[n]!;
      }
    }
  },
  flops: ([x], [out]) => 2 * x!.shape[0]! * x!.shape[1]! * out!.shape[1]!,
  gradient: ({ inputs: [x, w, offsets], grads: [g], attrs }) => {
    const dx = groupedMatmul(g!, w!, offsets!, { transposeW: !attrs.transposeW });
    const dw = groupedMatmulWgrad(x!, g!, offsets!, w!.shape[0]!); // [E, K, N]
    return [dx, attrs.transposeW ? transpose(dw, [0, 2, 1]) : dw, null];
  },
});

/** x (F[R, K]) times w[e] (F[E, K, N]; F[E, N, K] transposed with transposeW) for each expert's rows offsets[e] to offsets[e + 1] - 1: F[R, N]. */
export function groupedMatmul(x: Sym, w: Sym, offsets: Sym, options: { transposeW?: boolean } = {}): Sym {
  return builderOf(x, 'x of groupedMatmul').op1('grouped_matmul', [x, w, offsets], { transposeW: options.transposeW ?? false });
}

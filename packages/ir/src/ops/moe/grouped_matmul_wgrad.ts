/**
 * grouped_matmul_wgrad: the weight gradient of grouped_matmul, itself a grouped GEMM over the same
 * groups, reducing over each expert's rows.
 *   x: F[R, K], g: F[R, N] (F one float dtype), offsets: i32[E + 1], attribute experts (E) ->
 *   dw: F[E, K, N] with dw[e] = Σ over rows r of expert e of x[r]ᵀ g[r]; an expert with no rows
 *   gets zeros.
 * The offsets follow grouped_matmul's rules (0 first, never decreasing, R last); breaking them is an
 * INVALID_ARGUMENT error. The reference accumulates in float64. Gradients: dx = grouped_matmul(g,
 * dw's gradient, transposeW), dg = grouped_matmul(x, dw's gradient).
 *
 * Tested in packages/ir/test/grouped_matmul.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectRank, shapeError } from '../../op.js';
import { shapeStr } from '../../types.js';
import { sameFloat } from '../float.js';
import { checkOffsets, expectOffsets, groupedMatmul } from './grouped_matmul.js';

export const groupedMatmulWgradOp = defineOp({
  name: 'grouped_matmul_wgrad',
  doc: 'dw[e] = x[rows of e]ᵀ · g[rows of e] for each expert e (zeros for an expert with no rows)',
  inputs: ['x', 'g', 'offsets'],
  outputs: ['dw'],
  attrs: { experts: { kind: 'int' } },
  infer: ([x, g, offsets], attrs) => {
    const dtype = sameFloat('grouped_matmul_wgrad', [['x', x!], ['g', g!]]);
    expectRank('grouped_matmul_wgrad', 'x', x!, 2);
    expectRank('grouped_matmul_wgrad', 'g', g!, 2);
    if (g!.shape[0] !== x!.shape[0]) shapeError('grouped_matmul_wgrad', `Expected g with the ${x!.shape[0]} rows of x ${shapeStr(x!)} but received ${shapeStr(g!)}`);
    const E = attrs.experts as number;
    if (!(E >= 1)) shapeError('grouped_matmul_wgrad', `Expected at least one expert for attribute 'experts' but received ${E}`);
    expectOffsets('grouped_matmul_wgrad', offsets!, E);
    return [{ shape: [E, x!.shape[1]!, g!.shape[1]!], dtype }];
  },
  reference: ({ inputs: [x, g, offsets], outputs: [dw], inTypes, attrs }) => {
    const [R, K] = inTypes[0]!.shape as [number, number];
    const N = inTypes[1]!.shape[1]!;
    const E = attrs.experts as number;
    checkOffsets('grouped_matmul_wgrad', offsets!, R);
    for (let e = 0; e < E; e++) {
      for (let k = 0; k < K; k++) {
        for (let n = 0; n < N; n++) {
          let acc = 0;
          for (let r = offsets![e]!; r < offsets![e + 1]!; r++) acc += x![r * K + k]! * g![r * N + n]!;
          dw![(e * K + k) * N + n] = acc;
        }
      }
    }
  },
  flops: ([x, g]) => 2 * x!.shape[0]! * x!.shape[1]! * g!.shape[1]!,
  gradient: ({ inputs: [x, g, offsets], grads: [d] }) => [groupedMatmul(g!, d!, offsets!, { transposeW: true }), groupedMatmul(x!, d!, offsets!), null],
});

/** Σ over each expert's rows of x[r]ᵀ g[r] (x F[R, K], g F[R, N]): F[experts, K, N]. */
export function groupedMatmulWgrad(x: Sym, g: Sym, offsets: Sym, experts: number): Sym {
  return builderOf(x, 'x of groupedMatmulWgrad').op1('grouped_matmul_wgrad', [x, g, offsets], { experts });
}

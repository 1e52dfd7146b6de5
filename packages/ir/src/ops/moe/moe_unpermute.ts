/**
 * moe_unpermute: dropless MoE's combine, each token's choices' rows summed back, weighted.
 *   ys: F[N·k, D], order: i32[N·k], slot: i32[N, k] (moe_sort's), weights: W[N, k] (optional; W
 *   any float dtype) -> y: F[N, D] with y[n] = Σ_j weights[n, j] · ys[slot[n, j]] (weights 1 when
 *   absent), summed in choice order j = 0, 1, …: deterministic.
 * The adjoint of moe_permute (see there for the rules order and slot follow). The CUDA kernel checks
 * each token's slots (in range, order[slot[n, j]] = n, none repeated), records a bad one
 * (opsErrorCheck) and leaves that choice out of the sum. The reference sums in float64 and rounds once.
 * Gradients: dys = moe_permute(g, order, slot, weights); dweights[n, j] = g[n] · ys[slot[n, j]]
 * (moe_weight_grad); order and slot take none.
 *
 * Kernels and tests: CUDA in native/ops/moe/permute.cu (registered in packages/ir/src/cuda/moe.ts);
 * tested in packages/ir/test/moe_permute.test.ts and cuda-moe.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { byteSizeOf } from '../../graph.js';
import { defineOp, expectRank, shapeError } from '../../op.js';
import { shapeStr } from '../../types.js';
import { expectFloat } from '../float.js';
import { cast } from '../tensor/cast.js';
import { choiceOfRow, expectRouting, moePermute } from './moe_permute.js';
import { moeWeightGrad } from './moe_weight_grad.js';

export const moeUnpermuteOp = defineOp({
  name: 'moe_unpermute',
  doc: 'y[n] = Σ_j weights[n, j] · ys[slot[n, j]] (weights 1 when absent): each token\'s choices summed back',
  inputs: ['ys', 'order', 'slot', 'weights?'],
  outputs: ['y'],
  attrs: {},
  indexInputs: [
    { input: 1, bound: ([, , slot]) => slot!.shape[0]! },
    { input: 2, bound: ([ys]) => ys!.shape[0]! },
  ],
  anyFloatInputs: (inputs) => (inputs > 3 ? [3] : []),
  bytes: ([ys, order, slot, weights], [y]) => byteSizeOf(ys!) + byteSizeOf(y!) + byteSizeOf(order!) + byteSizeOf(slot!) + (weights ? byteSizeOf(weights) : 0),
  infer: ([ys, order, slot, weights]) => {
    const dtype = expectFloat('moe_unpermute', 'ys', ys!);
    expectRank('moe_unpermute', 'ys', ys!, 2);
    expectRank('moe_unpermute', 'slot', slot!, 2);
    const N = slot!.shape[0]!;
    const k = expectRouting('moe_unpermute', N, order!, slot!, weights);
    if (ys!.shape[0] !== N * k) shapeError('moe_unpermute', `Expected ys with N·k = ${N * k} rows (one per choice of slot ${shapeStr(slot!)}) but received ${shapeStr(ys!)}`);
    return [{ shape: [N, ys!.shape[1]!], dtype }];
  },
  reference: ({ inputs: [ys, order, slot, weights], outputs: [y], inTypes }) => {
    const D = inTypes[0]!.shape[1]!;
    const [N, k] = inTypes[2]!.shape as [number, number];
    choiceOfRow('moe_unpermute', order!, slot!, N, k);
    for (let n = 0; n < N; n++) {
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j < k; j++) acc += (weights ? weights[n * k + j]! : 1) * ys![slot![n * k + j]! * D + d]!;
        y![n * D + d] = acc;
      }
    }
  },
  gradient: ({ inputs: [ys, order, slot, weights], grads: [g] }) => {
    const dys = moePermute(g!, order!, slot!, weights);
    if (!weights) return [dys, null, null];
    const dw = moeWeightGrad(g!, ys!, order!, slot!);
    return [dys, null, null, weights.dtype === 'f32' ? dw : cast(dw, weights.dtype as 'bf16' | 'f16')];
  },
});

/** Each token's choices' rows of ys (F[N·k, D], sorted by expert; order, slot from moeSort) summed back, weighted by weights (F[N, k]) when given: F[N, D]. */
export function moeUnpermute(ys: Sym, order: Sym, slot: Sym, weights?: Sym): Sym {
  return builderOf(ys, 'ys of moeUnpermute').op1('moe_unpermute', weights ? [ys, order, slot, weights] : [ys, order, slot], {});
}

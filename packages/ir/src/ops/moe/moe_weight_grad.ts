/**
 * moe_weight_grad: the gradient of the routing weights of moe_permute and moe_unpermute, one dot
 * product per choice.
 *   a: F[N, D] (per token), b: F[N·k, D] (per sorted row), order: i32[N·k], slot: i32[N, k] ->
 *   dw: f32[N, k] with dw[n, j] = a[n] · b[slot[n, j]].
 * For y = moe_unpermute(ys, …, w): dw = moe_weight_grad(dy, ys); for xs = moe_permute(x, …, w):
 * dw = moe_weight_grad(x, dxs). order and slot follow moe_permute's rules (the CUDA kernel records a
 * bad choice and gives it 0). The reference sums in float64; the CUDA kernel in FP32 in a fixed
 * order (a warp's butterfly), so reruns give the same bits. Not differentiated.
 *
 * Kernels and tests: CUDA in native/ops/moe/permute.cu (registered in packages/ir/src/cuda/moe.ts);
 * tested in packages/ir/test/moe_permute.test.ts and cuda-moe.test.ts.
 */
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectRank, shapeError } from '../../op.js';
import { shapeStr } from '../../types.js';
import { sameFloat } from '../float.js';
import { choiceOfRow, expectRouting } from './moe_permute.js';

export const moeWeightGradOp = defineOp({
  name: 'moe_weight_grad',
  doc: 'dw[n, j] = a[n] · b[slot[n, j]]: the gradient of the routing weights',
  inputs: ['a', 'b', 'order', 'slot'],
  outputs: ['dw'],
  attrs: {},
  nonDifferentiable: true,
  indexInputs: [
    { input: 2, bound: ([a]) => a!.shape[0]! },
    { input: 3, bound: ([, b]) => b!.shape[0]! },
  ],
  infer: ([a, b, order, slot]) => {
    sameFloat('moe_weight_grad', [['a', a!], ['b', b!]]);
    expectRank('moe_weight_grad', 'a', a!, 2);
    expectRank('moe_weight_grad', 'b', b!, 2);
    const N = a!.shape[0]!;
    const k = expectRouting('moe_weight_grad', N, order!, slot!, undefined);
    if (b!.shape[0] !== N * k || b!.shape[1] !== a!.shape[1]) shapeError('moe_weight_grad', `Expected b of shape [${N * k}, ${a!.shape[1]}] (N·k rows of a's width) but received ${shapeStr(b!)}`);
    return [{ shape: [N, k], dtype: 'f32' }];
  },
  reference: ({ inputs: [a, b, order, slot], outputs: [dw], inTypes }) => {
    const [N, D] = inTypes[0]!.shape as [number, number];
    const k = inTypes[3]!.shape[1]!;
    choiceOfRow('moe_weight_grad', order!, slot!, N, k);
    for (let c = 0; c < N * k; c++) {
      const n = Math.floor(c / k);
      const p = slot![c]!;
      let acc = 0;
      for (let d = 0; d < D; d++) acc += a![n * D + d]! * b![p * D + d]!;
      dw![c] = acc;
    }
  },
});

/** dw[n, j] = a[n] · b[slot[n, j]] (a F[N, D] per token, b F[N·k, D] per sorted row): f32[N, k]. */
export function moeWeightGrad(a: Sym, b: Sym, order: Sym, slot: Sym): Sym {
  return builderOf(a, 'a of moeWeightGrad').op1('moe_weight_grad', [a, b, order, slot], {});
}

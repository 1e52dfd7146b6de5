/**
 * moe_aux_loss: the Switch Transformer's load-balancing loss in one op.
 *   probs: F[N, E] (the router's softmax; F any float dtype, read at its exact value, so autocast
 *   leaves moe_route's f32 probabilities as they are), chosen: i32[N, k] (the experts each token took) ->
 *     loss:      f32[1] = E · Σ_e f_e · P_e, 1 when routing is uniform;
 *     fractions: f32[E]  f_e = (choices of expert e) / (N·k).
 * P_e is the mean of probs[·, e] over the N tokens. For N = 0 the loss and the fractions are 0.
 * Only P carries gradient: dprobs[n, e] = g · E · f_e / N; chosen and the fractions take none.
 * An expert id outside [0, E) is an INVALID_ARGUMENT error naming the position. The CUDA kernel
 * sums each expert's column in a fixed order and the experts in index order: the same bits every run.
 *
 * Kernels and tests: CUDA in native/ops/moe/route.cu (registered in packages/ir/src/cuda/moe.ts);
 * tested in packages/ir/test/moe_route.test.ts and cuda-grouped.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { shapeStr } from '../../types.js';
import { expectFloat } from '../float.js';
import { broadcastTo } from '../basic/broadcast_to.js';
import { reshape } from '../basic/reshape.js';
import { mul } from '../tensor/mul.js';
import { scale } from '../tensor/scale.js';
import { cast } from '../tensor/cast.js';

export const moeAuxLossOp = defineOp({
  name: 'moe_aux_loss',
  doc: 'loss = E · Σ_e f_e · mean(probs[:, e]) with f_e the share of choices of expert e; fractions = f',
  inputs: ['probs', 'chosen'],
  outputs: ['loss', 'fractions'],
  attrs: {},
  indexInputs: [{ input: 1, bound: ([probs]) => probs!.shape[1]! }],
  anyFloatInputs: () => [0],
  infer: ([probs, chosen]) => {
    expectFloat('moe_aux_loss', 'probs', probs!);
    expectRank('moe_aux_loss', 'probs', probs!, 2);
    expectDtype('moe_aux_loss', 'chosen', chosen!, ['i32']);
    expectRank('moe_aux_loss', 'chosen', chosen!, 2);
    const [N, E] = probs!.shape as [number, number];
    if (chosen!.shape[0] !== N || chosen!.shape[1]! < 1) shapeError('moe_aux_loss', `Expected chosen of shape [${N}, k] (k >= 1) but received ${shapeStr(chosen!)}`);
    if (E < 1) shapeError('moe_aux_loss', `Expected at least one expert in probs but received ${shapeStr(probs!)}`);
    return [
      { shape: [1], dtype: 'f32' },
      { shape: [E], dtype: 'f32' },
    ];
  },
  reference: ({ inputs: [probs, chosen], outputs: [loss, fractions], inTypes }) => {
    const [N, E] = inTypes[0]!.shape as [number, number];
    const k = inTypes[1]!.shape[1]!;
    const counts = new Float64Array(E);
    for (let c = 0; c < N * k; c++) {
      const e = chosen![c]!;
      if (!Number.isInteger(e) || e < 0 || e >= E) throw new DeepwellError('INVALID_ARGUMENT', `moe_aux_loss: Expected an expert id in [0, ${E}) for chosen[${Math.floor(c / k)}, ${c % k}] but received ${e}`);
      counts[e]!++;
    }
    let total = 0;
    for (let e = 0; e < E; e++) {
      const f = N === 0 ? 0 : counts[e]! / (N * k);
      let P = 0;
      for (let n = 0; n < N; n++) P += probs![n * E + e]!;
      total += f * (N === 0 ? 0 : P / N);
      fractions![e] = f;
    }
    loss![0] = E * total;
  },
  gradient: ({ inputs: [probs], outputs: [, fractions], grads: [g] }) => {
    if (!g) return [null, null];
    const [N, E] = probs!.shape as [number, number];
    const perExpert = scale(mul(fractions!, broadcastTo(g, [E])), E / Math.max(1, N)); // [E]
    const d = broadcastTo(reshape(perExpert, [1, E]), [N, E]);
    return [probs!.dtype === 'f32' ? d : cast(d, probs!.dtype as 'bf16' | 'f16'), null];
  },
});

/** The load-balancing loss of a router's probs (f32[N, E]) and choices (i32[N, k]): [loss f32[1], fractions f32[E]]. */
export function moeAuxLoss(probs: Sym, chosen: Sym): [loss: Sym, fractions: Sym] {
  const [loss, fractions] = builderOf(probs, 'probs of moeAuxLoss').op('moe_aux_loss', [probs, chosen], {});
  return [loss!, fractions!];
}

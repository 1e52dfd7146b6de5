/**
 * moe_route: a mixture-of-experts router's softmax and top-k in one op (one kernel on CUDA, where
 * softmax, topk and the gradient's scatter were three).
 *   logits: F[N, E] (F any float dtype), attribute k (1 <= k <= E) ->
 *     probs:   f32[N, E] the softmax over experts, computed in FP32 (float64 in the reference);
 *     weights: f32[N, k] each token's k largest probabilities, largest first;
 *     chosen:  i32[N, k] their experts.
 * The ranking is topk's: probability descending, NaN first, ties to the lower index. The router
 * stays in FP32 whatever the storage of its logits (DeepSeek-V3 keeps routing out of low precision).
 * Gradient (of probs and weights): moe_route_backward; chosen takes none.
 *
 * moe_route_backward: that gradient in one op.
 *   probs: f32[N, E], chosen: i32[N, k], gWeights: f32[N, k], gProbs: f32[N, E] (optional) ->
 *   dlogits: f32[N, E] = p ⊙ (dp − Σ_e p_e dp_e) with dp = gProbs + Σ_j gWeights[·, j] at chosen[·, j].
 * An expert id outside [0, E) in chosen is an INVALID_ARGUMENT error naming the position.
 *
 * Kernels and tests: CUDA in native/ops/moe/route.cu (registered in packages/ir/src/cuda/moe.ts);
 * tested in packages/ir/test/moe_route.test.ts and cuda-grouped.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { shapeStr, type ValueType } from '../../types.js';
import { expectFloat } from '../float.js';
import { softmaxBackward } from '../nn/softmax.js';
import { cast } from '../tensor/cast.js';
import { before } from './rank.js';

export const moeRouteOp = defineOp({
  name: 'moe_route',
  doc: 'probs = softmax(logits) in f32; weights, chosen = its k largest per token (ties to the lower index)',
  inputs: ['logits'],
  outputs: ['probs', 'weights', 'chosen'],
  attrs: { k: { kind: 'int' } },
  infer: ([logits], attrs) => {
    expectFloat('moe_route', 'logits', logits!);
    expectRank('moe_route', 'logits', logits!, 2);
    const [N, E] = logits!.shape as [number, number];
    const k = attrs.k as number;
    if (!(k >= 1 && k <= E)) shapeError('moe_route', `Expected k in [1, ${E}] for attribute 'k' (the experts of ${shapeStr(logits!)}) but received ${k}`);
    return [
      { shape: [N, E], dtype: 'f32' },
      { shape: [N, k], dtype: 'f32' },
      { shape: [N, k], dtype: 'i32' },
    ];
  },
  reference: ({ inputs: [logits], outputs: [probs, weights, chosen], inTypes, attrs }) => {
    const [N, E] = inTypes[0]!.shape as [number, number];
    const k = attrs.k as number;
    const p = new Float64Array(E);
    const order = Array.from({ length: E }, (_, e) => e);
    for (let n = 0; n < N; n++) {
      let top = -Infinity;
      for (let e = 0; e < E; e++) top = Math.max(top, logits![n * E + e]!);
      let z = 0;
      for (let e = 0; e < E; e++) z += p[e] = Math.exp(logits![n * E + e]! - top);
      for (let e = 0; e < E; e++) probs![n * E + e] = p[e] = p[e]! / z;
      for (let e = 0; e < E; e++) order[e] = e;
      order.sort((i, j) => (before(p[i]!, i, p[j]!, j) ? -1 : 1));
      for (let j = 0; j < k; j++) {
        weights![n * k + j] = p[order[j]!]!;
        chosen![n * k + j] = order[j]!;
      }
    }
  },
  flops: ([logits]) => 5 * logits!.shape[0]! * logits!.shape[1]!,
  gradient: ({ inputs: [logits], outputs: [probs, , chosen], grads: [gProbs, gWeights] }) => {
    if (!gProbs && !gWeights) return [null];
    const d = gWeights ? moeRouteBackward(probs!, chosen!, gWeights, gProbs ?? undefined) : softmaxBackward(gProbs!, probs!);
    return [logits!.dtype === 'f32' ? d : cast(d, logits!.dtype as 'bf16' | 'f16')];
  },
});

const expectF32 = (op: string, name: string, t: ValueType, shape: readonly number[]) => {
  expectDtype(op, name, t, ['f32']);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) shapeError(op, `Expected f32[${shape.join(', ')}] for input '${name}' but received ${shapeStr(t)}`);
};

export const moeRouteBackwardOp = defineOp({
  name: 'moe_route_backward',
  doc: 'dlogits = p ⊙ (dp − Σ p·dp), dp = gProbs + gWeights scattered to chosen: the gradient of moe_route',
  inputs: ['probs', 'chosen', 'gWeights', 'gProbs?'],
  outputs: ['dlogits'],
  attrs: {},
  indexInputs: [{ input: 1, bound: ([probs]) => probs!.shape[1]! }],
  infer: ([probs, chosen, gWeights, gProbs]) => {
    expectDtype('moe_route_backward', 'probs', probs!, ['f32']);
    expectRank('moe_route_backward', 'probs', probs!, 2);
    expectDtype('moe_route_backward', 'chosen', chosen!, ['i32']);
    expectRank('moe_route_backward', 'chosen', chosen!, 2);
    const [N, E] = probs!.shape as [number, number];
    const k = chosen!.shape[1]!;
    if (chosen!.shape[0] !== N || k < 1 || k > E) shapeError('moe_route_backward', `Expected chosen of shape [${N}, k] with k in [1, ${E}] but received ${shapeStr(chosen!)}`);
    expectF32('moe_route_backward', 'gWeights', gWeights!, [N, k]);
    if (gProbs) expectF32('moe_route_backward', 'gProbs', gProbs, [N, E]);
    return [{ shape: [N, E], dtype: 'f32' }];
  },
  reference: ({ inputs: [probs, chosen, gWeights, gProbs], outputs: [dlogits], inTypes }) => {
    const [N, E] = inTypes[0]!.shape as [number, number];
    const k = inTypes[1]!.shape[1]!;
    const dp = new Float64Array(E);
    for (let n = 0; n < N; n++) {
      for (let e = 0; e < E; e++) dp[e] = gProbs ? gProbs[n * E + e]! : 0;
      for (let j = 0; j < k; j++) {
        const e = chosen![n * k + j]!;
        if (!Number.isInteger(e) || e < 0 || e >= E) throw new DeepwellError('INVALID_ARGUMENT', `moe_route_backward: Expected an expert id in [0, ${E}) for chosen[${n}, ${j}] but received ${e}`);
        dp[e]! += gWeights![n * k + j]!;
      }
      let s = 0;
      for (let e = 0; e < E; e++) s += probs![n * E + e]! * dp[e]!;
      for (let e = 0; e < E; e++) dlogits![n * E + e] = probs![n * E + e]! * (dp[e]! - s);
    }
  },
});

/** Softmax over the E experts (f32) and each token's k best: [probs f32[N, E], weights f32[N, k], chosen i32[N, k]]. */
export function moeRoute(logits: Sym, k: number): [probs: Sym, weights: Sym, chosen: Sym] {
  const [probs, weights, chosen] = builderOf(logits, 'logits of moeRoute').op('moe_route', [logits], { k });
  return [probs!, weights!, chosen!];
}

/** The gradient of moe_route's logits from those of its weights (and probs): f32[N, E]. */
export function moeRouteBackward(probs: Sym, chosen: Sym, gWeights: Sym, gProbs?: Sym): Sym {
  return builderOf(probs, 'probs of moeRouteBackward').op1('moe_route_backward', gProbs ? [probs, chosen, gWeights, gProbs] : [probs, chosen, gWeights], {});
}

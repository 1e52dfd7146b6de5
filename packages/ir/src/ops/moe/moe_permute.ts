/**
 * moe_permute: dropless MoE's dispatch, each token's row copied to the sorted rows of its choices.
 *   x: F[N, D], order: i32[N·k], slot: i32[N, k] (moe_sort's), weights: W[N, k] (optional; W any
 *   float dtype) -> xs: F[N·k, D] with xs[p] = x[n] (times weights[n, j]) where n = order[p] and
 *   slot[n, j] = p.
 * Its adjoint is moe_unpermute (the combine): each is the other's gradient, so neither direction
 * needs a scatter-add or a float atomic, and every output row is written by exactly one reader.
 * order and slot must come from one moe_sort: slot a permutation of [0, N·k) with
 * order[slot[n, j]] = n. A pair that breaks this (order naming a token out of range, a row that no
 * slot of its token names) is an INVALID_ARGUMENT error naming the row; the CUDA kernel records it
 * (opsErrorCheck) and writes that row as zeros. The reference multiplies in float64 and rounds once.
 * Gradients: dx = moe_unpermute(g, order, slot, weights); dweights[n, j] = g[slot[n, j]] · x[n]
 * (moe_weight_grad); order and slot take none.
 *
 * Kernels and tests: CUDA in native/ops/moe/permute.cu (registered in packages/ir/src/cuda/moe.ts);
 * tested in packages/ir/test/moe_permute.test.ts and cuda-moe.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { byteSizeOf } from '../../graph.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { shapeStr, type ValueType } from '../../types.js';
import { expectFloat } from '../float.js';
import { cast } from '../tensor/cast.js';
import { moeUnpermute } from './moe_unpermute.js';
import { moeWeightGrad } from './moe_weight_grad.js';

/** The shape rules order i32[N·k], slot i32[N, k] and (when given) weights float[N, k] follow, for N tokens. */
export function expectRouting(op: string, N: number, order: ValueType, slot: ValueType, weights: ValueType | undefined): number {
  expectDtype(op, 'order', order, ['i32']);
  expectDtype(op, 'slot', slot, ['i32']);
  expectRank(op, 'order', order, 1);
  expectRank(op, 'slot', slot, 2);
  const k = slot.shape[1]!;
  if (slot.shape[0] !== N || k < 1) shapeError(op, `Expected slot of shape [${N}, k] (one row per token, k >= 1) but received ${shapeStr(slot)}`);
  if (order.shape[0] !== N * k) shapeError(op, `Expected order of shape [${N * k}] (N·k = ${N} · ${k} rows) but received ${shapeStr(order)}`);
  if (weights) {
    expectFloat(op, 'weights', weights);
    if (weights.shape.length !== 2 || weights.shape[0] !== N || weights.shape[1] !== k) shapeError(op, `Expected weights of shape [${N}, ${k}] (as slot) but received ${shapeStr(weights)}`);
  }
  return k;
}

/**
 * The choice (n, j) behind each sorted row p (n·k + j), checking that order and slot come from one
 * moe_sort: slot a permutation of [0, N·k) and order[slot[n, j]] = n. Throws INVALID_ARGUMENT naming
 * the first entry that breaks it.
 */
export function choiceOfRow(op: string, order: ArrayLike<number>, slot: ArrayLike<number>, N: number, k: number): Int32Array {
  const rows = N * k;
  const choice = new Int32Array(rows).fill(-1);
  for (let c = 0; c < rows; c++) {
    const p = slot[c]!;
    const n = Math.floor(c / k);
    const at = `slot[${n}, ${c % k}]`;
    if (!Number.isInteger(p) || p < 0 || p >= rows) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a row in [0, ${rows}) for ${at} but received ${p}`);
    if (choice[p] !== -1) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected slot to name each row once (order and slot from one moe_sort) but ${at} repeats row ${p}`);
    if (order[p] !== n) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected order[${p}] = ${n} (the token whose ${at} names row ${p}; order and slot from one moe_sort) but received ${order[p]}`);
    choice[p] = c;
  }
  return choice;
}

export const moePermuteOp = defineOp({
  name: 'moe_permute',
  doc: 'xs[p] = x[order[p]] (times weights[n, j]) for the choice slot[n, j] = p: each token copied to its sorted rows',
  inputs: ['x', 'order', 'slot', 'weights?'],
  outputs: ['xs'],
  attrs: {},
  indexInputs: [
    { input: 1, bound: ([x]) => x!.shape[0]! },
    { input: 2, bound: ([, order]) => order!.shape[0]! },
  ],
  anyFloatInputs: (inputs) => (inputs > 3 ? [3] : []),
  // The rows it takes (one per row written, as gather_rows), the indices and the weights.
  bytes: ([, order, slot, weights], [xs]) => 2 * byteSizeOf(xs!) + byteSizeOf(order!) + byteSizeOf(slot!) + (weights ? byteSizeOf(weights) : 0),
  infer: ([x, order, slot, weights]) => {
    const dtype = expectFloat('moe_permute', 'x', x!);
    expectRank('moe_permute', 'x', x!, 2);
    const N = x!.shape[0]!;
    const k = expectRouting('moe_permute', N, order!, slot!, weights);
    return [{ shape: [N * k, x!.shape[1]!], dtype }];
  },
  reference: ({ inputs: [x, order, slot, weights], outputs: [xs], inTypes }) => {
    const [N, D] = inTypes[0]!.shape as [number, number];
    const k = inTypes[2]!.shape[1]!;
    const choice = choiceOfRow('moe_permute', order!, slot!, N, k);
    for (let p = 0; p < N * k; p++) {
      const c = choice[p]!;
      const n = Math.floor(c / k);
      const s = weights ? weights[c]! : 1;
      for (let d = 0; d < D; d++) xs![p * D + d] = s * x![n * D + d]!;
    }
  },
  gradient: ({ inputs: [x, order, slot, weights], grads: [g] }) => {
    const dx = moeUnpermute(g!, order!, slot!, weights);
    if (!weights) return [dx, null, null];
    const dw = moeWeightGrad(x!, g!, order!, slot!);
    return [dx, null, null, weights.dtype === 'f32' ? dw : cast(dw, weights.dtype as 'bf16' | 'f16')];
  },
});

/** Each token's row of x (F[N, D]) at the sorted rows of its choices (order, slot from moeSort), scaled by weights (F[N, k]) when given: F[N·k, D]. */
export function moePermute(x: Sym, order: Sym, slot: Sym, weights?: Sym): Sym {
  return builderOf(x, 'x of moePermute').op1('moe_permute', weights ? [x, order, slot, weights] : [x, order, slot], {});
}

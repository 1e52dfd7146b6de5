/**
 * topk: the k largest entries along the last axis, largest first, and where they were.
 *   x: F[..., E] (F a float dtype: f32, bf16 or f16), attribute k with 1 <= k <= E
 *   -> values: F[..., k] (descending),
 *   indices: i32[..., k] (positions in [0, E)).
 * Ties go to the lower index first, so the choice is deterministic and matches a stable sort; NaN
 * ranks above every number (as in PyTorch), so a NaN router output is seen rather than hidden.
 * This is the routing step of mixture-of-experts: router probabilities f32[N, E] -> each token's k
 * gate weights and expert ids. Only `values` carries a gradient; `indices` are integers.
 *
 * topk_backward: the gradient of topk's values, written as its own op so the backward pass stays
 * plain IR with static shapes.
 *   g: F[..., k] (a float dtype), indices: i32[..., k], attribute size (= E) -> F[..., size] with
 *   out[..., indices[..., j]] += g[..., j] and zeros everywhere else. Indices outside [0, size) are
 *   an INVALID_ARGUMENT error naming the position.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/moe.ts; the native
 * kernel is in native/ops/moe/; tested in packages/ir/test/moe.test.ts, dtypes.test.ts,
 * cuda-moe.test.ts.
 */
import { DeepwellError } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, expectDtype, expectRank, shapeError } from '../../op.js';
import { numel, sameShape, shapeStr } from '../../types.js';
import { expectFloat } from '../float.js';
import { before } from './rank.js';

/** The multi-index of flat position `p` in a row-major `shape`, as text: "[1, 0, 2]". */
function position(shape: readonly number[], p: number): string {
  const at = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    at[d] = p % shape[d]!;
    p = Math.floor(p / shape[d]!);
  }
  return `[${at.join(', ')}]`;
}

export const topkOp = defineOp({
  name: 'topk',
  doc: 'values, indices = the k largest entries of x along the last axis, descending; ties to the lower index',
  inputs: ['x'],
  outputs: ['values', 'indices'],
  attrs: { k: { kind: 'int' } },
  infer: ([x], attrs) => {
    const dtype = expectFloat('topk', 'x', x!);
    expectRank('topk', 'x', x!, 1, Infinity);
    const E = x!.shape.at(-1)!;
    const k = attrs.k as number;
    if (k < 1 || k > E) shapeError('topk', `Expected k in [1, ${E}] for attribute 'k' (last dimension of ${shapeStr(x!)}) but received ${k}`);
    const shape = [...x!.shape.slice(0, -1), k];
    return [
      { shape, dtype },
      { shape, dtype: 'i32' },
    ];
  },
  reference: ({ inputs: [x], outputs: [values, indices], inTypes, attrs }) => {
    const E = inTypes[0]!.shape.at(-1)!;
    const k = attrs.k as number;
    const rows = E === 0 ? 0 : x!.length / E;
    const order = new Array<number>(E);
    for (let r = 0; r < rows; r++) {
      const base = r * E;
      for (let e = 0; e < E; e++) order[e] = e;
      // A total order (value descending, then index ascending), so the sort's result is unique.
      order.sort((i, j) => (before(x![base + i]!, i, x![base + j]!, j) ? -1 : 1));
      for (let j = 0; j < k; j++) {
        values![r * k + j] = x![base + order[j]!]!;
        indices![r * k + j] = order[j]!;
      }
    }
  },
  flops: ([x]) => numel(x!.shape) * Math.max(1, Math.ceil(Math.log2(Math.max(2, x!.shape.at(-1)!)))),
  // Only the values carry a gradient: it goes back to the positions they were taken from.
  gradient: ({ inputs: [x], outputs: [, indices], grads: [g] }) => [g ? topkBackward(g, indices!, x!.shape.at(-1)!) : null],
});

export const topkBackwardOp = defineOp({
  name: 'topk_backward',
  doc: 'out[..., indices[..., j]] += g[..., j]; zeros elsewhere (gradient of topk values)',
  inputs: ['g', 'indices'],
  outputs: ['out'],
  attrs: { size: { kind: 'int' } },
  indexInputs: [{ input: 1, bound: (_, attrs) => attrs.size as number }],
  infer: ([g, indices], attrs) => {
    const dtype = expectFloat('topk_backward', 'g', g!);
    expectDtype('topk_backward', 'indices', indices!, ['i32']);
    expectRank('topk_backward', 'g', g!, 1, Infinity);
    if (!sameShape(g!.shape, indices!.shape)) {
      shapeError('topk_backward', `Expected the shape of 'g' (${shapeStr(g!)}) for input 'indices' but received ${shapeStr(indices!)}`);
    }
    const size = attrs.size as number;
    if (size < 1) shapeError('topk_backward', `Expected a positive size for attribute 'size' but received ${size}`);
    return [{ shape: [...g!.shape.slice(0, -1), size], dtype }];
  },
  reference: ({ inputs: [g, indices], outputs: [out], inTypes, attrs }) => {
    const shape = inTypes[1]!.shape;
    const k = inTypes[0]!.shape.at(-1)!;
    const size = attrs.size as number;
    const rows = k === 0 ? 0 : g!.length / k;
    const acc = new Float64Array(out!.length);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < k; j++) {
        const p = r * k + j;
        const e = indices![p]!;
        if (!Number.isInteger(e) || e < 0 || e >= size) {
          throw new DeepwellError('INVALID_ARGUMENT', `topk_backward: Expected an index in [0, ${size}) for indices${position(shape, p)} but received ${e}`);
        }
        acc[r * size + e]! += g![p]!;
      }
    }
    out!.set(acc);
  },
});

/** The k largest entries of `x` along its last axis and their positions: [values, indices]. */
export function topk(x: Sym, k: number): [values: Sym, indices: Sym] {
  const [values, indices] = builderOf(x, 'x of topk').op('topk', [x], { k });
  return [values!, indices!];
}

/** Gradient of topk's values: scatter `g` (F[..., k]) to `indices` in a zero F[..., size]. */
export function topkBackward(g: Sym, indices: Sym, size: number): Sym {
  return builderOf(g, 'g of topkBackward').op1('topk_backward', [g, indices], { size });
}

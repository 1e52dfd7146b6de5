/**
 * sparsek_attention: SparseK top-k block-sparse self-attention. Each query block attends only to the
 * key blocks it selects: the always-on ones (its causal window, optionally block 0) and the best of
 * the rest by a cheap block score, so the cost grows with topK · blockSize per query, not with S.
 *
 *   q: F[B, H, S, D], k: F[B, Hkv, S, D], v: F[B, Hkv, S, D] (layout 'bhsd'; 'bshd' takes
 *   [B, S, heads, D]), F one of f32, bf16, f16, all the same; q's S equals k's (self-attention);
 *   H a multiple of Hkv (GQA: query head h reads key/value head floor(h / (H / Hkv))).
 *   attributes: blockSize (int >= 1, default 64; query and key blocks alike), topK (int >= 1, default
 *   16: blocks per query block, the always-on ones included; at most nB = ceil(S / blockSize)),
 *   causal (bool, default false), first (bool, default false: always select block 0), window (int
 *   >= 1, default 1: always select blocks i - window + 1 .. i; window + first at most topK), scale
 *   (float; 0, the default, means 1 / sqrt(D)), layout ('bhsd' default, or 'bshd')
 *   -> out: F[as q], lse: f32[B, H, S], indices: i32[B, Hkv, nB, topK]
 *
 *   The selection (ops/sparsek_math.ts, sparsekSelect) ranks the candidate blocks of query block i
 *   by mean(q of the block, over the group's heads) · mean(k of block j), once per kv head; indices
 *   holds each query block's selected blocks ascending, padded with -1 (early causal blocks have
 *   fewer candidates than topK). Query row r (block i) of head h then attends key c iff block(c) is
 *   selected for (b, kv head of h, i) and, with causal, c <= r; otherwise it is sdpa: s = scale q·k,
 *   lse = log Σ exp s, out = Σ exp(s - lse) v. The diagonal block is always selected, so no row is
 *   empty. With topK = nB every block is selected and this is sdpa exactly.
 *
 * sparsek_attention_backward: dout F[as q], q, k, v, out F[as q], lse f32[B, H, S], indices
 *   i32[B, Hkv, nB, topK]; the same attributes -> dq, dk, dv (as q, k, v). sdpa's backward restricted
 *   to the pairs the given indices make visible: delta_i = dout_i · out_i, p = exp(s - lse),
 *   dv_j = Σ p dout, ds = p (dout · v - delta), dq = scale Σ ds k, dk = scale Σ ds q (dk, dv summed
 *   over a group's heads). The indices are used as given, not recomputed, so the backward follows the
 *   forward's selection; every entry must be -1 or in [0, nB) (INVALID_ARGUMENT otherwise).
 *
 * The gradient rule of the forward: the selection is piecewise constant in q and k, so the gradient
 * is that of the masked attention; lse must not be used except through the backward (as sdpa),
 * indices carry none. The references accumulate in float64 and are dense attention
 * (ops/attention_math.ts) under the selected block mask, written for clarity: O(S²) whatever topK.
 * sparsekDims is the one shape and attribute rule: the CUDA candidates (src/cuda/sparsek.ts, over
 * the native sparsekForward / sparsekBackward, which select the same blocks in f32) call it too.
 * Tests in test/sparsek.test.ts.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type Sym, type ValueType } from '@deepwell/ir';
import { attentionBackward, attentionForward } from './attention_math.js';
import { checkAttrsObject, checkOpName, checkSyms, checkTypes } from './checks.js';
import { attentionDims, layoutStrides, shapeStr, type AttentionDims, type AttentionLayout } from './sdpa.js';
import { blockVisibility, sparsekFlops, sparsekSelect, type SparsekSizes } from './sparsek_math.js';

/** The sizes and attributes of a SparseK call: sdpa's (Sq = Sk = S) and the sparse ones. */
export interface SparsekDims extends AttentionDims, SparsekSizes {}

/**
 * Checks q, k, v (as sdpa does), that they share one sequence length, and the sparse attributes;
 * the sizes of the call, nB = ceil(S / blockSize) among them.
 */
export function sparsekDims(op: string, inTypes: readonly ValueType[], attrs: Attrs): SparsekDims {
  checkOpName(op);
  const a = checkAttrsObject(op, attrs, Object.keys(ATTRS));
  const { blockSize: _b, topK: _t, first: _f, window: _w, ...dense } = a;
  const n = attentionDims(op, inTypes, dense as Attrs);
  if (n.Sk !== n.Sq) shapeError(op, `Expected the sequence length of k and v (${n.Sk}) to equal q's (${n.Sq}) (SparseK is self-attention) but received q ${shapeStr(inTypes[0]!)} and k ${shapeStr(inTypes[1]!)}`);
  for (const name of ['blockSize', 'topK', 'window'] as const) {
    const x = attrs[name] ?? ATTRS[name].default;
    if (!(typeof x === 'number' && Number.isInteger(x) && x >= 1)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected an integer >= 1 for attribute '${name}' but received ${describe(x)}`);
  }
  const [blockSize, topK, window] = [(attrs.blockSize ?? ATTRS.blockSize.default) as number, (attrs.topK ?? ATTRS.topK.default) as number, (attrs.window ?? ATTRS.window.default) as number];
  const first = attrs.first ?? false;
  if (typeof first !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a boolean for attribute 'first' but received ${describe(first)}`);
  const nB = Math.ceil(n.Sq / blockSize);
  if (topK > nB) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected topK at most the number of blocks, ${nB} (ceil(S / blockSize) = ceil(${n.Sq} / ${blockSize})), but received ${topK}: k larger than the number of blocks`);
  }
  if (window + (first ? 1 : 0) > topK) {
    throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected the always-selected blocks (window ${window}${first ? ' + first 1' : ''}) to be at most topK (${topK}) but received ${window + (first ? 1 : 0)}: the always-on blocks exceed topK`);
  }
  return { ...n, blockSize, topK, first, window, nB };
}

const ATTRS = {
  blockSize: { kind: 'int', default: 64 },
  topK: { kind: 'int', default: 16 },
  causal: { kind: 'bool', default: false },
  first: { kind: 'bool', default: false },
  window: { kind: 'int', default: 1 },
  scale: { kind: 'float', default: 0 },
  layout: { kind: 'string', oneOf: ['bhsd', 'bshd'], default: 'bhsd' },
} as const;

export const sparsekAttentionOp = defineOp({
  name: 'sparsek_attention',
  doc: 'top-k block-sparse attention: each query block attends to its window (and block 0) and its best-scoring key blocks; out, the f32 log-sum-exp per row, and the i32 selected blocks',
  inputs: ['q', 'k', 'v'],
  outputs: ['out', 'lse', 'indices'],
  attrs: ATTRS,
  infer: (inputs, attrs) => {
    const n = sparsekDims('sparsek_attention', inputs, attrs);
    return [
      { shape: inputs[0]!.shape, dtype: inputs[0]!.dtype },
      { shape: [n.B, n.H, n.Sq], dtype: 'f32' },
      { shape: [n.B, n.Hkv, n.nB, n.topK], dtype: 'i32' },
    ];
  },
  flops: (inputs, _outputs, attrs) => sparsekFlops(sparsekDims('sparsek_attention', inputs, attrs), 2),
  reference: ({ inputs: [q, k, v], outputs: [out, lse, indices], inTypes, attrs }) => {
    const n = sparsekDims('sparsek_attention', inTypes, attrs);
    const st = layoutStrides(n);
    const selected = sparsekSelect(n, st, q!, k!);
    attentionForward(n, st, q!, k!, v!, out!, lse!, blockVisibility('sparsek_attention', n, selected));
    for (let p = 0; p < selected.length; p++) indices![p] = selected[p]!;
  },
  gradient: ({ inputs: [q, k, v], outputs: [out, lse, indices], grads: [g, glse], attrs }) => {
    if (glse) throw new DeepwellError('INVALID_ARGUMENT', "Expected a loss that uses sparsek_attention's lse output only through its backward, for the gradient of sparsek_attention, but received one that uses it directly");
    if (!g) return [null, null, null];
    return sparsekAttentionBackward(g, q!, k!, v!, out!, lse!, indices!, attrs);
  },
});

export const sparsekAttentionBackwardOp = defineOp({
  name: 'sparsek_attention_backward',
  doc: "sparsek_attention's gradients dq, dk, dv from dout, q, k, v, out, lse and the forward's indices",
  inputs: ['dout', 'q', 'k', 'v', 'out', 'lse', 'indices'],
  outputs: ['dq', 'dk', 'dv'],
  attrs: ATTRS,
  // The executable checks indices that are graph inputs before each step; the reference checks all.
  indexInputs: [{ input: 6, bound: (inTypes, attrs) => sparsekDims('sparsek_attention_backward', inTypes.slice(1, 4), attrs).nB, allow: () => -1 }],
  infer: (inTypes, attrs) => {
    const op = 'sparsek_attention_backward';
    const [dout, q, k, v, out, lse, indices] = checkTypes(op, inTypes, 7, ['dout', 'q', 'k', 'v', 'out', 'lse', 'indices']);
    const n = sparsekDims(op, [q!, k!, v!], attrs);
    for (const [name, t] of [['dout', dout!], ['out', out!]] as const) {
      if (t.shape.join() !== q!.shape.join() || t.dtype !== q!.dtype) shapeError(op, `Expected ${name} shaped and typed as q, ${shapeStr(q!)}, but received ${shapeStr(t)}`);
    }
    if (lse!.dtype !== 'f32' || lse!.shape.join() !== [n.B, n.H, n.Sq].join()) shapeError(op, `Expected lse f32[${n.B}, ${n.H}, ${n.Sq}] but received ${shapeStr(lse!)}`);
    if (indices!.dtype !== 'i32') throw new DeepwellError('INVALID_DTYPE', `${op}: Expected i32 for input 'indices' but received ${shapeStr(indices!)}`);
    if (indices!.shape.join() !== [n.B, n.Hkv, n.nB, n.topK].join()) shapeError(op, `Expected indices i32[${n.B}, ${n.Hkv}, ${n.nB}, ${n.topK}] ([B, Hkv, nB, topK]) but received ${shapeStr(indices!)}`);
    return [q!, k!, v!];
  },
  flops: ([, q, k, v], _outputs, attrs) => sparsekFlops(sparsekDims('sparsek_attention_backward', [q!, k!, v!], attrs), 5),
  reference: ({ inputs: [dout, q, k, v, out, lse, indices], outputs: [dq, dk, dv], inTypes, attrs }) => {
    const n = sparsekDims('sparsek_attention_backward', inTypes.slice(1, 4), attrs);
    const see = blockVisibility('sparsek_attention_backward', n, indices!);
    attentionBackward(n, layoutStrides(n), dout!, q!, k!, v!, out!, lse!, dq!, dk!, dv!, see);
  },
});

export interface SparsekAttributes {
  /** Rows per query block and per key block (default 64). */
  blockSize?: number;
  /** Key blocks per query block, the always-on ones included (default 16); at most ceil(S / blockSize). */
  topK?: number;
  causal?: boolean;
  /** Always select block 0 (default false). */
  first?: boolean;
  /** Always select the query block's own block and the window - 1 before it (default 1: the diagonal). */
  window?: number;
  /** 0 or absent: 1 / sqrt(D). */
  scale?: number;
  layout?: AttentionLayout;
}

/** sparsek_attention in a captured model: [out, lse, indices]. */
export function sparsekAttention(q: Sym, k: Sym, v: Sym, attrs: SparsekAttributes = {}): [out: Sym, lse: Sym, indices: Sym] {
  checkSyms('sparsekAttention', { q, k, v });
  checkAttrsObject('sparsekAttention', attrs);
  const [out, lse, indices] = q.builder.op('sparsek_attention', [q, k, v], { ...attrs });
  return [out!, lse!, indices!];
}

/** sparsek_attention_backward in a captured model: [dq, dk, dv], following the forward's `indices`. */
export function sparsekAttentionBackward(dout: Sym, q: Sym, k: Sym, v: Sym, out: Sym, lse: Sym, indices: Sym, attrs: Attrs | SparsekAttributes = {}): [dq: Sym, dk: Sym, dv: Sym] {
  checkSyms('sparsekAttentionBackward', { dout, q, k, v, out, lse, indices });
  checkAttrsObject('sparsekAttentionBackward', attrs);
  const [dq, dk, dv] = q.builder.op('sparsek_attention_backward', [dout, q, k, v, out, lse, indices], { ...attrs });
  return [dq!, dk!, dv!];
}

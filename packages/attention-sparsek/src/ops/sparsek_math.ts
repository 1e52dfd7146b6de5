/**
 * The math of SparseK block-sparse attention (ops/sparsek.ts) that is not dense attention's: the
 * reference block selection, the block mask it gives, and the FLOP estimate. The attention itself is
 * attention_math.ts's, under the mask (its visibility predicate), so the sparse reference is by
 * construction dense attention restricted to the selected pairs.
 *
 * Selection, per batch b, key/value head g (its query heads g·G .. g·G + G - 1, G = H / Hkv) and query
 * block i (rows [i·bs, min(S, (i+1)·bs)), bs = blockSize, nB = ceil(S / bs) blocks):
 *   qbar_i = mean of q[b, h, r, :] over the group's heads h and rows r of block i (G·|rows| vectors)
 *   kbar_j = mean of k[b, g, r, :] over the rows r of block j
 *   score(i, j) = qbar_i · kbar_j (float64 here; no scale: it only ranks)
 *   candidates C(i) = {0 .. i} with causal, else {0 .. nB - 1}
 *   forced F(i) = {j in C(i): i - window < j <= i} ∪ ({0} if first)
 *   selected(i) = F(i) ∪ the topK - |F(i)| best of C(i) \ F(i): score descending, equal scores to the
 *   lower block index, NaN below every number (then the lower index); all of them when fewer.
 *   indices[b, g, i, :] = selected(i) ascending, then -1 up to topK.
 * One selection serves all the query heads of a group, so a GQA kernel's tiles stay full (NSA, MoBA).
 */
import { DeepwellError, describe } from '@deepwell/core';
import type { NumArray } from '@deepwell/ir';
import type { AttentionSizes, AttentionStrides, RowStrides, Visibility } from './attention_math.js';
import { checkOpName, checkSizes, checkSpan, checkStrides } from './checks.js';

/** The sizes and attributes of a SparseK call (Sq = Sk = S). */
export interface SparsekSizes extends AttentionSizes {
  blockSize: number;
  topK: number;
  first: boolean;
  window: number;
  /** The number of blocks, ceil(S / blockSize). */
  nB: number;
}

const rowAt = (t: RowStrides, b: number, h: number, s: number) => t.offset + b * t.b + h * t.h + s * t.s;

/** SparseK sizes checked: attention's, Sq = Sk, window and first, and nB = ceil(S / blockSize), topK <= nB. */
function checkSparseSizes(fn: string, n: SparsekSizes): SparsekSizes {
  checkSizes(fn, n, ['blockSize', 'topK', 'window']);
  if (n.Sq !== n.Sk) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected Sq equal to Sk (SparseK is self-attention) but received Sq ${n.Sq} and Sk ${n.Sk}`);
  if (typeof n.first !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected a boolean for first but received ${describe(n.first)}`);
  const nB = Math.ceil(n.Sq / n.blockSize);
  if (n.nB !== nB) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected nB = ceil(S / blockSize) = ${nB} but received ${describe(n.nB)}`);
  if (n.topK > nB) throw new DeepwellError('INVALID_ARGUMENT', `${fn}: Expected topK at most nB (${nB}) but received ${n.topK}`);
  return n;
}

/** True when block a (score sa) ranks before block b (score sb): the spec's order, a total one. */
function ranksBefore(sa: number, a: number, sb: number, b: number): boolean {
  const na = Number.isNaN(sa);
  const nb = Number.isNaN(sb);
  if (na !== nb) return nb; // NaN ranks below every number
  if (!na && sa !== sb) return sa > sb;
  return a < b; // equal scores (or both NaN): the lower block index first
}

/** The mean of the rows [r0, r1) of heads [h0, h1) of a tensor at `t`, into `dst` at `at` (float64). */
function meanRows(x: NumArray, t: RowStrides, D: number, b: number, h0: number, h1: number, r0: number, r1: number, dst: Float64Array, at: number): void {
  for (let d = 0; d < D; d++) dst[at + d] = 0;
  for (let h = h0; h < h1; h++)
    for (let r = r0; r < r1; r++) {
      const o = rowAt(t, b, h, r);
      for (let d = 0; d < D; d++) dst[at + d]! += x[o + d]!;
    }
  const count = (h1 - h0) * (r1 - r0);
  for (let d = 0; d < D; d++) dst[at + d]! /= count;
}

/**
 * The reference selection (see the header): i32 [B, Hkv, nB, topK], each row its blocks ascending
 * then -1. q and k are read at `st.q` and `st.k`, in whatever layout those strides describe.
 */
export function sparsekSelect(n: SparsekSizes, st: AttentionStrides, q: NumArray, k: NumArray): Int32Array {
  checkSparseSizes('sparsekSelect', n);
  if (st === null || typeof st !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `sparsekSelect: Expected strides { q, k, v, out } but received ${describe(st)}`);
  checkSpan('sparsekSelect', q, 'q', checkStrides('sparsekSelect', st.q, 'q'), n.B, n.H, n.Sq, n.D);
  checkSpan('sparsekSelect', k, 'k', checkStrides('sparsekSelect', st.k, 'k'), n.B, n.Hkv, n.Sk, n.D);
  const { B, H, Hkv, D, blockSize: bs, topK, nB } = n;
  const S = n.Sq;
  const G = H / Hkv;
  const indices = new Int32Array(B * Hkv * nB * topK).fill(-1);
  const qbar = new Float64Array(nB * D);
  const kbar = new Float64Array(nB * D);
  const score = new Float64Array(nB);
  for (let b = 0; b < B; b++)
    for (let g = 0; g < Hkv; g++) {
      for (let j = 0; j < nB; j++) {
        const [r0, r1] = [j * bs, Math.min(S, (j + 1) * bs)];
        meanRows(q, st.q, D, b, g * G, (g + 1) * G, r0, r1, qbar, j * D);
        meanRows(k, st.k, D, b, g, g + 1, r0, r1, kbar, j * D);
      }
      for (let i = 0; i < nB; i++) {
        const candidates = n.causal ? i + 1 : nB;
        const forced = (j: number) => (j > i - n.window && j <= i) || (n.first && j === 0);
        const chosen: number[] = [];
        const rest: number[] = [];
        for (let j = 0; j < candidates; j++) {
          if (forced(j)) {
            chosen.push(j);
            continue;
          }
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qbar[i * D + d]! * kbar[j * D + d]!;
          score[j] = dot;
          rest.push(j);
        }
        rest.sort((a, c) => (ranksBefore(score[a]!, a, score[c]!, c) ? -1 : 1));
        chosen.push(...rest.slice(0, Math.max(0, topK - chosen.length)));
        chosen.sort((a, c) => a - c);
        indices.set(chosen, ((b * Hkv + g) * nB + i) * topK);
      }
    }
  return indices;
}

/**
 * The visibility of the block mask `indices` (i32 [B, Hkv, nB, topK]): query row i of head h sees key
 * j when block(j) is among the blocks of row (b, h's kv head, block(i)). Every entry must be -1 or in
 * [0, nB): otherwise INVALID_ARGUMENT naming `op` and the position (the backward takes them as given).
 */
export function blockVisibility(op: string, n: SparsekSizes, indices: NumArray): Visibility {
  checkOpName(op);
  checkSparseSizes(op, n);
  const want = n.B * n.Hkv * n.nB * n.topK;
  if (!(indices instanceof Int32Array || indices instanceof Float32Array || indices instanceof Float64Array)) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected an Int32Array of ${want} block indices but received ${describe(indices)}`);
  if (indices.length < want) throw new DeepwellError('SHAPE_MISMATCH', `${op}: Expected ${want} block indices ([B, Hkv, nB, topK]) but received ${indices.length}`);
  const { B, H, Hkv, topK, nB, blockSize: bs } = n;
  const G = H / Hkv;
  const mask = new Uint8Array(B * Hkv * nB * nB);
  for (let p = 0; p < B * Hkv * nB * topK; p++) {
    const j = indices[p]!;
    if (j === -1) continue;
    if (!(Number.isInteger(j) && j >= 0 && j < nB)) {
      const at = [Math.floor(p / (Hkv * nB * topK)), Math.floor(p / (nB * topK)) % Hkv, Math.floor(p / topK) % nB, p % topK];
      throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a block index in [0, ${nB}) or -1 for indices[${at.join(', ')}] but received ${j}`);
    }
    mask[Math.floor(p / topK) * nB + j] = 1;
  }
  return (b, h, i, j) => mask[((b * Hkv + Math.floor(h / G)) * nB + Math.floor(i / bs)) * nB + Math.floor(j / bs)] === 1;
}

/**
 * FLOPs of `products` matrix products of SparseK attention, an upper estimate from the shapes alone
 * (the selection is known only when it runs): query block i (m_i rows) sees min(topK, |C(i)|) blocks.
 * Without causal that is m_i · min(blocks · bs, S) pairs; with causal the diagonal block gives
 * m_i (m_i + 1) / 2 pairs and every other block (all before it, so whole) bs · m_i. With topK = nB
 * this is exactly dense attention's count. The selection itself (means and block scores, about
 * 2·B·Hkv·nB²·D) is not counted.
 */
export function sparsekFlops(n: SparsekSizes, products: number): number {
  checkSparseSizes('sparsekFlops', n);
  if (!(typeof products === 'number' && Number.isSafeInteger(products) && products >= 0)) throw new DeepwellError('INVALID_ARGUMENT', `sparsekFlops: Expected an integer >= 0 for products but received ${describe(products)}`);
  const S = n.Sq;
  let pairs = 0;
  for (let i = 0; i < n.nB; i++) {
    const m = Math.min(S, (i + 1) * n.blockSize) - i * n.blockSize;
    const blocks = Math.min(n.topK, n.causal ? i + 1 : n.nB);
    pairs += n.causal ? (blocks - 1) * n.blockSize * m + (m * (m + 1)) / 2 : m * Math.min(blocks * n.blockSize, S);
  }
  return 2 * products * n.B * n.H * pairs * n.D;
}

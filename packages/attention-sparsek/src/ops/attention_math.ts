/**
 * The math every attention op of this package shares (sdpa on separate q, k, v; sdpa_qkv on one
 * packed QKV buffer): the float64 reference forward and backward, the FLOP count, and where each
 * tensor's rows lie, as element strides. Written once, over strides, so the ops differ only in how
 * they check their inputs and where their tensors sit:
 *
 *   element (b, h, s, d) of a tensor is at offset + b·strides.b + h·strides.h + s·strides.s + d
 *
 * q, k, v and out each have their own RowStrides (dq, dk, dv and dout are laid out as q, k, v and
 * out); lse is f32 [B, H, Sq], contiguous. The CUDA candidates pass the same strides to the native
 * entry points (k and v share strides there), so the reference and the kernels read one layout.
 *
 *   forward:  s_ij = scale · q_i · k_j over the keys query i sees (all, or j <= i + Sk - Sq with
 *             causal), lse_i = log Σ_j exp(s_ij), out_i = Σ_j exp(s_ij - lse_i) v_j; a row that sees
 *             no key gives out 0 and lse -Infinity.
 *   backward: delta_i = dout_i · out_i, p_ij = exp(s_ij - lse_i), dv_j = Σ_i p_ij dout_i,
 *             ds_ij = p_ij (dout_i · v_j - delta_i), dq_i = scale Σ_j ds_ij k_j,
 *             dk_j = scale Σ_i ds_ij q_i; with GQA, dk and dv sum over the query heads of a group.
 *
 * An optional visibility predicate `see(b, h, i, j)` (h the query head) hides more pairs than the
 * causal bound: the block-sparse ops (ops/sparsek.ts) are dense attention under a block mask, written
 * once here rather than copied. A hidden pair has score -Infinity, so p_ij = 0 and it adds nothing to
 * any sum; a row that sees no key still gives out 0 and lse -Infinity (and, in the backward, no
 * gradient). Without a predicate (sdpa, sdpa_qkv) nothing changes: no call per pair.
 */
import type { NumArray } from '@deepwell/ir';
import { checkSizes } from './checks.js';

/** The sizes and attributes of an attention call, whatever its layout. */
export interface AttentionSizes {
  B: number;
  H: number;
  Hkv: number;
  Sq: number;
  Sk: number;
  D: number;
  causal: boolean;
  /** The scale actually used (the attribute, or 1 / sqrt(D) for 0). */
  scale: number;
}

/** Where one tensor's rows lie in its array: (b, h, s, d) at offset + b·b + h·h + s·s + d (elements). */
export interface RowStrides {
  offset: number;
  b: number;
  h: number;
  s: number;
}

/** The rows of q (and dq), k (and dk), v (and dv), out (and dout). */
export interface AttentionStrides {
  q: RowStrides;
  k: RowStrides;
  v: RowStrides;
  out: RowStrides;
}

/** Contiguous [B, heads, S, D] ('bhsd') or [B, S, heads, D] ('bshd'). */
export function denseStrides(layout: 'bhsd' | 'bshd', heads: number, S: number, D: number): RowStrides {
  return layout === 'bhsd' ? { offset: 0, b: heads * S * D, h: S * D, s: D } : { offset: 0, b: S * heads * D, h: D, s: heads * D };
}

/**
 * q, k and v inside one packed qkv [B, S, H + 2·Hkv, D] (q the heads from 0, k from H, v from
 * H + Hkv), out [B, S, H, D]: what a QKV projection's output reshaped is, read without a copy.
 */
export function packedStrides(n: AttentionSizes): AttentionStrides {
  checkSizes('packedStrides', n);
  const heads = n.H + 2 * n.Hkv;
  const at = (head: number): RowStrides => ({ offset: head * n.D, b: n.Sq * heads * n.D, h: n.D, s: heads * n.D });
  return { q: at(0), k: at(n.H), v: at(n.H + n.Hkv), out: denseStrides('bshd', n.H, n.Sq, n.D) };
}

const rowAt = (t: RowStrides, b: number, h: number, s: number) => t.offset + b * t.b + h * t.h + s * t.s;

/** Whether query row i of query head h (batch b) sees key j, beyond the causal bound; absent: every key. */
export type Visibility = (b: number, h: number, i: number, j: number) => boolean;

/** The last key query i sees (exclusive bound): all of them, or i + (Sk - Sq) + 1 with causal. */
export function visible(n: AttentionSizes, i: number): number {
  return n.causal ? Math.max(0, Math.min(n.Sk, i + n.Sk - n.Sq + 1)) : n.Sk;
}

/** FLOPs of `products` matrix products of attention, halved where the causal mask hides half the keys. */
export function attentionFlops(n: AttentionSizes, products: number): number {
  const pairs = n.causal ? Array.from({ length: n.Sq }, (_, i) => visible(n, i)).reduce((a, b) => a + b, 0) : n.Sq * n.Sk;
  return 2 * products * n.B * n.H * pairs * n.D;
}

/**
 * The scores of query row (b, h, i) against keys 0 .. visible(n, i) - 1, in float64; -Infinity for a
 * key `see` hides.
 */
function scores(n: AttentionSizes, st: AttentionStrides, q: NumArray, k: NumArray, b: number, h: number, i: number, see?: Visibility): Float64Array {
  const hk = Math.floor(h / (n.H / n.Hkv));
  const qo = rowAt(st.q, b, h, i);
  const s = new Float64Array(visible(n, i));
  for (let j = 0; j < s.length; j++) {
    if (see && !see(b, h, i, j)) {
      s[j] = -Infinity;
      continue;
    }
    const ko = rowAt(st.k, b, hk, j);
    let dot = 0;
    for (let d = 0; d < n.D; d++) dot += q[qo + d]! * k[ko + d]!;
    s[j] = n.scale * dot;
  }
  return s;
}

/**
 * The forward in float64: out (at st.out) and lse (f32 [B, H, Sq] contiguous), every row written;
 * `see` hides pairs beyond the causal bound.
 */
export function attentionForward(n: AttentionSizes, st: AttentionStrides, q: NumArray, k: NumArray, v: NumArray, out: NumArray, lse: NumArray, see?: Visibility): void {
  const group = n.H / n.Hkv;
  for (let b = 0; b < n.B; b++)
    for (let h = 0; h < n.H; h++)
      for (let i = 0; i < n.Sq; i++) {
        const s = scores(n, st, q, k, b, h, i, see);
        const m = s.reduce((a, x) => Math.max(a, x), -Infinity);
        // No key seen: none in the causal bound, or (with a predicate) every one hidden.
        const none = s.length === 0 || (see !== undefined && m === -Infinity);
        let l = 0;
        for (let j = 0; j < s.length; j++) l += (s[j] = none ? 0 : Math.exp(s[j]! - m));
        const oo = rowAt(st.out, b, h, i);
        for (let d = 0; d < n.D; d++) {
          let acc = 0;
          for (let j = 0; j < s.length; j++) acc += s[j]! * v[rowAt(st.v, b, Math.floor(h / group), j) + d]!;
          out[oo + d] = none ? 0 : acc / l;
        }
        lse[(b * n.H + h) * n.Sq + i] = none ? -Infinity : m + Math.log(l);
      }
}

/**
 * The backward in float64: dq, dk, dv laid out as q, k, v (they may be one array: a packed dqkv),
 * dout as out; every element of their rows written. `see` hides pairs beyond the causal bound (it
 * must be the forward's, so that lse is the log-sum-exp over the same keys).
 */
export function attentionBackward(
  n: AttentionSizes, st: AttentionStrides,
  dout: NumArray, q: NumArray, k: NumArray, v: NumArray, out: NumArray, lse: NumArray,
  dq: NumArray, dk: NumArray, dv: NumArray, see?: Visibility,
): void {
  const group = n.H / n.Hkv;
  // float64 accumulators for dk and dv, [B, Hkv, Sk, D]: they sum over query rows and a group's heads.
  const at = (b: number, hk: number, j: number) => ((b * n.Hkv + hk) * n.Sk + j) * n.D;
  const dkAcc = new Float64Array(n.B * n.Hkv * n.Sk * n.D);
  const dvAcc = new Float64Array(dkAcc.length);
  for (let b = 0; b < n.B; b++)
    for (let h = 0; h < n.H; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < n.Sq; i++) {
        const qo = rowAt(st.q, b, h, i);
        const oo = rowAt(st.out, b, h, i);
        const L = lse[(b * n.H + h) * n.Sq + i]!;
        const s = scores(n, st, q, k, b, h, i, see);
        const p = s.map((x) => Math.exp(x - L));
        let delta = 0;
        for (let d = 0; d < n.D; d++) delta += dout[oo + d]! * out[oo + d]!;
        const dqRow = new Float64Array(n.D);
        for (let j = 0; j < p.length; j++) {
          if (see && s[j] === -Infinity) continue; // hidden: p_ij = 0 (even in a row that sees nothing)
          const ko = rowAt(st.k, b, hk, j);
          const vo = rowAt(st.v, b, hk, j);
          const ao = at(b, hk, j);
          let dp = 0;
          for (let d = 0; d < n.D; d++) {
            dp += dout[oo + d]! * v[vo + d]!;
            dvAcc[ao + d]! += p[j]! * dout[oo + d]!;
          }
          const ds = p[j]! * (dp - delta);
          for (let d = 0; d < n.D; d++) {
            dqRow[d]! += n.scale * ds * k[ko + d]!;
            dkAcc[ao + d]! += n.scale * ds * q[qo + d]!;
          }
        }
        for (let d = 0; d < n.D; d++) dq[qo + d] = dqRow[d]!;
      }
    }
  for (let b = 0; b < n.B; b++)
    for (let hk = 0; hk < n.Hkv; hk++)
      for (let j = 0; j < n.Sk; j++) {
        const [ko, vo, ao] = [rowAt(st.k, b, hk, j), rowAt(st.v, b, hk, j), at(b, hk, j)];
        for (let d = 0; d < n.D; d++) {
          dk[ko + d] = dkAcc[ao + d]!;
          dv[vo + d] = dvAcc[ao + d]!;
        }
      }
}

/**
 * sdpa: scaled dot-product attention, the op every fused attention kernel of this package serves.
 *
 *   q: F[B, H, Sq, D], k: F[B, Hkv, Sk, D], v: F[B, Hkv, Sk, D] (F one float dtype: f32, bf16, f16;
 *   layout 'bhsd'), or q: F[B, Sq, H, D], k and v: F[B, Sk, Hkv, D] (layout 'bshd': the heads of a
 *   token side by side, as a QKV projection writes them)
 *   attributes: causal (bool, default false), scale (float; 0, the default, means 1 / sqrt(D)),
 *   layout ('bhsd' default, or 'bshd')
 *   -> out: F[same layout as q], lse: f32[B, H, Sq]
 *
 *   H is a multiple of Hkv: query head h reads key/value head floor(h / (H / Hkv)) (grouped-query
 *   attention; Hkv = 1 is multi-query). s_ij = scale · q_i · k_j; with causal, key j is visible to
 *   query i when j <= i + (Sk - Sq) (the mask aligned to the bottom right, as the causal_mask op and
 *   FlashAttention-2 have it, so a query block at the end of a longer key sequence sees all keys
 *   before it). p_ij = exp(s_ij - lse_i), lse_i = log Σ_j exp(s_ij) over visible j,
 *   out_i = Σ_j p_ij v_j. A row that sees no key (causal with Sk < Sq) gives out 0 and lse -Infinity.
 *   The log-sum-exp is returned (f32 whatever F is) so the backward need not recompute the softmax
 *   statistics: a fused kernel keeps no S × S matrix.
 *
 * sdpa_backward: the gradients, as FlashAttention's backward computes them from out and lse.
 *   dout: F[as q], q, k, v (as sdpa), out: F[as q], lse: f32[B, H, Sq]; the same attributes
 *   -> dq: F[as q], dk: F[as k], dv: F[as v]
 *   delta_i = dout_i · out_i, p_ij = exp(s_ij - lse_i), dv_j = Σ_i p_ij dout_i,
 *   ds_ij = p_ij (dout_i · v_j - delta_i), dq_i = scale Σ_j ds_ij k_j, dk_j = scale Σ_i ds_ij q_i;
 *   with GQA, dk and dv sum over the query heads that share a key/value head.
 *
 * The references are written for clarity and accumulate in float64; their math, over element
 * strides, is shared with sdpa_qkv (ops/attention_math.ts): this file checks the inputs and gives the
 * layout's strides. Kernels: the CUDA general path (src/cuda/sdpa.ts over native/attention/sdpa.cu;
 * the fast Hopper kernels are still to come); tests in test/sdpa.test.ts (CPU) and test/gpu.test.ts.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type Sym, type ValueType } from '@deepwell/ir';
import { attentionBackward, attentionFlops, attentionForward, denseStrides, type AttentionSizes, type AttentionStrides } from './attention_math.js';
import { checkAttrsObject, checkOpName, checkSizes, checkSyms, checkTypes } from './checks.js';

export type AttentionLayout = 'bhsd' | 'bshd';

export const FLOAT = ['f32', 'bf16', 'f16'];
export const shapeStr = (t: ValueType) => `${t.dtype}[${t.shape.join(', ')}]`;

/** The sizes of a call, from q's and k's shapes in the call's layout. */
export interface AttentionDims extends AttentionSizes {
  layout: AttentionLayout;
}

/** The scale attribute checked, and the scale it means (1 / sqrt(D) for 0). */
export function resolveScale(op: string, attrs: Attrs, D: number): number {
  const s = (attrs.scale ?? 0) as number;
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a finite scale >= 0 (0 for 1 / sqrt(D)) but received ${describe(s)}`);
  return s === 0 ? 1 / Math.sqrt(D) : s;
}

/** [B, heads, S, D] of a tensor in `layout`. */
function bhsd(t: ValueType, layout: AttentionLayout): [number, number, number, number] {
  const [B, a, b, D] = t.shape as [number, number, number, number];
  return layout === 'bhsd' ? [B, a, b, D] : [B, b, a, D];
}

/** Checks q, k, v (and their dtypes) against each other; the sizes of the call. */
export function attentionDims(op: string, inTypes: readonly ValueType[], attrs: Attrs): AttentionDims {
  checkOpName(op);
  const [q, k, v] = checkTypes(op, inTypes, 3, ['q', 'k', 'v']);
  const a = checkAttrsObject(op, attrs, Object.keys(ATTRS));
  const layout = (a.layout ?? 'bhsd') as AttentionLayout;
  if (layout !== 'bhsd' && layout !== 'bshd') throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected 'bhsd' or 'bshd' for attribute 'layout' but received ${describe(layout)}`);
  const causal = a.causal ?? false;
  if (typeof causal !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a boolean for attribute 'causal' but received ${describe(causal)}`);
  for (const [name, t] of [['q', q!], ['k', k!], ['v', v!]] as const) {
    if (!FLOAT.includes(t.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f32, bf16 or f16 for input '${name}' but received ${shapeStr(t)}`);
    if (t.shape.length !== 4) shapeError(op, `Expected a rank-4 tensor (${layout === 'bhsd' ? '[B, heads, S, D]' : '[B, S, heads, D]'}) for input '${name}' but received ${shapeStr(t)}`);
  }
  for (const [name, t] of [['k', k!], ['v', v!]] as const) {
    if (t.dtype !== q!.dtype) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected ${q!.dtype} (the dtype of q) for input '${name}' but received ${shapeStr(t)}`);
  }
  const [B, H, Sq, D] = bhsd(q!, layout);
  const [Bk, Hkv, Sk, Dk] = bhsd(k!, layout);
  if (v!.shape.join() !== k!.shape.join()) shapeError(op, `Expected v shaped as k, ${shapeStr(k!)}, but received ${shapeStr(v!)}`);
  if (Bk !== B) shapeError(op, `Expected the batch of k (${Bk}) to equal q's (${B})`);
  if (Dk !== D) shapeError(op, `Expected the head dimension of k (${Dk}) to equal q's (${D})`);
  if (Hkv < 1 || H % Hkv !== 0) shapeError(op, `Expected q's heads (${H}) to be a multiple of k's and v's heads (${Hkv})`);
  if (D < 1) shapeError(op, `Expected a head dimension of at least 1 but received ${D}`);
  return { B, H, Hkv, Sq, Sk, D, layout, causal, scale: resolveScale(op, attrs, D) };
}

/** Where q, k, v and out lie in the call's layout (contiguous tensors). */
export function layoutStrides(n: AttentionDims): AttentionStrides {
  checkSizes('layoutStrides', n);
  if (n.layout !== 'bhsd' && n.layout !== 'bshd') throw new DeepwellError('INVALID_ARGUMENT', `layoutStrides: Expected 'bhsd' or 'bshd' for layout but received ${describe(n.layout)}`);
  const kv = denseStrides(n.layout, n.Hkv, n.Sk, n.D);
  return { q: denseStrides(n.layout, n.H, n.Sq, n.D), k: kv, v: kv, out: denseStrides(n.layout, n.H, n.Sq, n.D) };
}

const ATTRS = {
  causal: { kind: 'bool', default: false },
  scale: { kind: 'float', default: 0 },
  layout: { kind: 'string', oneOf: ['bhsd', 'bshd'], default: 'bhsd' },
} as const;

export const sdpaOp = defineOp({
  name: 'sdpa',
  doc: 'out = softmax(scale · q kᵀ [+ causal mask]) v per head (GQA: heads share k and v); also the f32 log-sum-exp per row',
  inputs: ['q', 'k', 'v'],
  outputs: ['out', 'lse'],
  attrs: ATTRS,
  infer: (inputs, attrs) => {
    const n = attentionDims('sdpa', inputs, attrs);
    return [{ shape: inputs[0]!.shape, dtype: inputs[0]!.dtype }, { shape: [n.B, n.H, n.Sq], dtype: 'f32' }];
  },
  flops: (inputs, _outputs, attrs) => attentionFlops(attentionDims('sdpa', inputs, attrs), 2),
  reference: ({ inputs: [q, k, v], outputs: [out, lse], inTypes, attrs }) => {
    const n = attentionDims('sdpa', inTypes, attrs);
    attentionForward(n, layoutStrides(n), q!, k!, v!, out!, lse!);
  },
  gradient: ({ inputs: [q, k, v], outputs: [out, lse], grads: [g, glse], attrs }) => {
    if (glse) throw new DeepwellError('INVALID_ARGUMENT', "Expected a loss that uses sdpa's lse output only through its backward, for the gradient of sdpa, but received one that uses it directly");
    return sdpaBackward(g!, q!, k!, v!, out!, lse!, attrs);
  },
});

export const sdpaBackwardOp = defineOp({
  name: 'sdpa_backward',
  doc: "sdpa's gradients dq, dk, dv from dout, q, k, v, out and lse",
  inputs: ['dout', 'q', 'k', 'v', 'out', 'lse'],
  outputs: ['dq', 'dk', 'dv'],
  attrs: ATTRS,
  infer: (inTypes, attrs) => {
    const [dout, q, k, v, out, lse] = checkTypes('sdpa_backward', inTypes, 6, ['dout', 'q', 'k', 'v', 'out', 'lse']);
    const n = attentionDims('sdpa_backward', [q!, k!, v!], attrs);
    for (const [name, t] of [['dout', dout!], ['out', out!]] as const) {
      if (t.shape.join() !== q!.shape.join() || t.dtype !== q!.dtype) shapeError('sdpa_backward', `Expected ${name} shaped and typed as q, ${shapeStr(q!)}, but received ${shapeStr(t)}`);
    }
    if (lse!.dtype !== 'f32' || lse!.shape.join() !== [n.B, n.H, n.Sq].join()) shapeError('sdpa_backward', `Expected lse f32[${n.B}, ${n.H}, ${n.Sq}] but received ${shapeStr(lse!)}`);
    return [q!, k!, v!];
  },
  flops: ([, q, k, v], _outputs, attrs) => attentionFlops(attentionDims('sdpa_backward', [q!, k!, v!], attrs), 5),
  reference: ({ inputs: [dout, q, k, v, out, lse], outputs: [dq, dk, dv], inTypes, attrs }) => {
    const n = attentionDims('sdpa_backward', inTypes.slice(1, 4), attrs);
    attentionBackward(n, layoutStrides(n), dout!, q!, k!, v!, out!, lse!, dq!, dk!, dv!);
  },
});

export interface SdpaAttributes {
  causal?: boolean;
  /** 0 or absent: 1 / sqrt(D). */
  scale?: number;
  layout?: AttentionLayout;
}

/** sdpa in a captured model: [out, lse]. */
export function sdpa(q: Sym, k: Sym, v: Sym, attrs: SdpaAttributes = {}): [Sym, Sym] {
  checkSyms('sdpa', { q, k, v });
  checkAttrsObject('sdpa', attrs);
  const [out, lse] = q.builder.op('sdpa', [q, k, v], { ...attrs });
  return [out!, lse!];
}

export function sdpaBackward(dout: Sym, q: Sym, k: Sym, v: Sym, out: Sym, lse: Sym, attrs: Attrs | SdpaAttributes = {}): [Sym, Sym, Sym] {
  checkSyms('sdpaBackward', { dout, q, k, v, out, lse });
  checkAttrsObject('sdpaBackward', attrs);
  const [dq, dk, dv] = q.builder.op('sdpa_backward', [dout, q, k, v, out, lse], { ...attrs });
  return [dq!, dk!, dv!];
}

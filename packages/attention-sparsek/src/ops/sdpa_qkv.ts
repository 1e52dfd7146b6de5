/**
 * sdpa_qkv: sdpa on the packed output of a QKV projection, read where it lies.
 *
 *   qkv: F[B, S, H + 2·Hkv, D] (F one of f32, bf16, f16): per token, the H query heads, then the Hkv
 *   key heads, then the Hkv value heads: a projection's [B, S, (H + 2·Hkv)·D] output reshaped.
 *   attributes: heads (int, H; required), causal (bool, default false), scale (float; 0, the default,
 *   means 1 / sqrt(D))
 *   -> out: F[B, S, H, D], lse: f32[B, H, S]
 *
 *   Hkv = (heads of qkv − H) / 2, and H a multiple of Hkv (GQA; Hkv = 1 is MQA, Hkv = H plain
 *   multi-head). The same attention as sdpa on q = qkv[:, :, 0:H], k = qkv[:, :, H:H+Hkv],
 *   v = qkv[:, :, H+Hkv:] in the 'bshd' layout (Sq = Sk = S; causal aligned as sdpa's, which for
 *   Sq = Sk is the usual lower triangle).
 *
 * sdpa_qkv_backward: dout F[B, S, H, D], qkv, out F[B, S, H, D], lse f32[B, H, S]; the same attributes
 *   -> dqkv: F[B, S, H + 2·Hkv, D], dq, dk and dv in the heads q, k and v occupy (every element written).
 *
 * Why an op of its own: sdpa on slices of the projection makes the slices copies in the IR, and its
 * backward pads and adds the three slice gradients into one; here the kernels read q, k and v in place
 * and write dqkv whole (native strides, src/cuda/sdpa_qkv.ts). The math is sdpa's
 * (ops/attention_math.ts), over the packed strides.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { defineOp, shapeError, type Attrs, type Sym, type ValueType } from '@deepwell/ir';
import { attentionBackward, attentionFlops, attentionForward, packedStrides, type AttentionSizes } from './attention_math.js';
import { checkAttrsObject, checkOpName, checkSyms, checkTypes } from './checks.js';
import { FLOAT, resolveScale, shapeStr } from './sdpa.js';

/** Checks qkv and the heads attribute; the sizes of the call (Sq = Sk = S). */
export function qkvDims(op: string, qkv: ValueType, attrs: Attrs): AttentionSizes {
  checkOpName(op);
  checkTypes(op, [qkv], 1, ['qkv']);
  const a = checkAttrsObject(op, attrs, Object.keys(ATTRS));
  const causal = a.causal ?? false;
  if (typeof causal !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected a boolean for attribute 'causal' but received ${String(causal)}`);
  if (!FLOAT.includes(qkv.dtype)) throw new DeepwellError('INVALID_DTYPE', `${op}: Expected f32, bf16 or f16 for input 'qkv' but received ${shapeStr(qkv)}`);
  if (qkv.shape.length !== 4) shapeError(op, `Expected a rank-4 tensor ([B, S, H + 2·Hkv, D]) for input 'qkv' but received ${shapeStr(qkv)}`);
  const [B, S, heads, D] = qkv.shape as [number, number, number, number];
  const H = attrs.heads as number;
  if (!Number.isInteger(H) || H < 1) throw new DeepwellError('INVALID_ARGUMENT', `${op}: Expected an integer >= 1 for attribute 'heads' but received ${describe(H)}`);
  const Hkv = (heads - H) / 2;
  if (!Number.isInteger(Hkv) || Hkv < 1) {
    shapeError(op, `Expected input 'qkv' to hold heads (${H}) query heads and 2·Hkv key and value heads, Hkv >= 1, in its third dimension, but received ${shapeStr(qkv)} (${heads} − ${H} is not a positive even number)`);
  }
  if (H % Hkv !== 0) shapeError(op, `Expected the query heads (attribute 'heads', ${H}) to be a multiple of the key/value heads of input 'qkv' (${Hkv}) but received ${shapeStr(qkv)}`);
  if (D < 1) shapeError(op, `Expected a head dimension of at least 1 for input 'qkv' but received ${shapeStr(qkv)}`);
  return { B, H, Hkv, Sq: S, Sk: S, D, causal, scale: resolveScale(op, attrs, D) };
}

const ATTRS = {
  heads: { kind: 'int' },
  causal: { kind: 'bool', default: false },
  scale: { kind: 'float', default: 0 },
} as const;

const outShape = (n: AttentionSizes) => [n.B, n.Sq, n.H, n.D];

export const sdpaQkvOp = defineOp({
  name: 'sdpa_qkv',
  doc: 'sdpa on a packed qkv [B, S, H + 2·Hkv, D] (a QKV projection output) read in place: out [B, S, H, D] and the f32 log-sum-exp per row',
  inputs: ['qkv'],
  outputs: ['out', 'lse'],
  attrs: ATTRS,
  infer: (inTypes, attrs) => {
    const [qkv] = checkTypes('sdpa_qkv', inTypes, 1, ['qkv']);
    const n = qkvDims('sdpa_qkv', qkv!, attrs);
    return [{ shape: outShape(n), dtype: qkv!.dtype }, { shape: [n.B, n.H, n.Sq], dtype: 'f32' }];
  },
  flops: ([qkv], _outputs, attrs) => attentionFlops(qkvDims('sdpa_qkv', qkv!, attrs), 2),
  reference: ({ inputs: [qkv], outputs: [out, lse], inTypes, attrs }) => {
    const n = qkvDims('sdpa_qkv', inTypes[0]!, attrs);
    attentionForward(n, packedStrides(n), qkv!, qkv!, qkv!, out!, lse!);
  },
  gradient: ({ inputs: [qkv], outputs: [out, lse], grads: [g, glse], attrs }) => {
    if (glse) throw new DeepwellError('INVALID_ARGUMENT', "Expected a loss that uses sdpa_qkv's lse output only through its backward, for the gradient of sdpa_qkv, but received one that uses it directly");
    return [sdpaQkvBackward(g!, qkv!, out!, lse!, attrs)];
  },
});

export const sdpaQkvBackwardOp = defineOp({
  name: 'sdpa_qkv_backward',
  doc: "sdpa_qkv's gradient dqkv (dq, dk, dv in q's, k's and v's heads) from dout, qkv, out and lse",
  inputs: ['dout', 'qkv', 'out', 'lse'],
  outputs: ['dqkv'],
  attrs: ATTRS,
  infer: (inTypes, attrs) => {
    const op = 'sdpa_qkv_backward';
    const [dout, qkv, out, lse] = checkTypes(op, inTypes, 4, ['dout', 'qkv', 'out', 'lse']);
    const n = qkvDims(op, qkv!, attrs);
    const want = `${qkv!.dtype}[${outShape(n).join(', ')}]`;
    for (const [name, t] of [['dout', dout!], ['out', out!]] as const) {
      if (shapeStr(t) !== want) shapeError(op, `Expected input '${name}' ${want} (the out of sdpa_qkv on qkv) but received ${shapeStr(t)}`);
    }
    if (lse!.dtype !== 'f32' || lse!.shape.join() !== [n.B, n.H, n.Sq].join()) shapeError(op, `Expected input 'lse' f32[${n.B}, ${n.H}, ${n.Sq}] but received ${shapeStr(lse!)}`);
    return [qkv!];
  },
  flops: ([, qkv], _outputs, attrs) => attentionFlops(qkvDims('sdpa_qkv_backward', qkv!, attrs), 5),
  reference: ({ inputs: [dout, qkv, out, lse], outputs: [dqkv], inTypes, attrs }) => {
    const n = qkvDims('sdpa_qkv_backward', inTypes[1]!, attrs);
    attentionBackward(n, packedStrides(n), dout!, qkv!, qkv!, qkv!, out!, lse!, dqkv!, dqkv!, dqkv!);
  },
});

export interface SdpaQkvAttributes {
  /** The query heads H; qkv's third dimension is H + 2·Hkv. */
  heads: number;
  causal?: boolean;
  /** 0 or absent: 1 / sqrt(D). */
  scale?: number;
}

/** sdpa_qkv in a captured model: [out F[B, S, H, D], lse f32[B, H, S]]. */
export function sdpaQkv(qkv: Sym, attrs: SdpaQkvAttributes): [Sym, Sym] {
  checkSyms('sdpaQkv', { qkv });
  if (attrs === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'sdpaQkv: Expected attributes { heads, causal?, scale? } but received undefined');
  checkAttrsObject('sdpaQkv', attrs);
  const [out, lse] = qkv.builder.op('sdpa_qkv', [qkv], { ...attrs });
  return [out!, lse!];
}

export function sdpaQkvBackward(dout: Sym, qkv: Sym, out: Sym, lse: Sym, attrs: Attrs | SdpaQkvAttributes): Sym {
  checkSyms('sdpaQkvBackward', { dout, qkv, out, lse });
  if (attrs === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'sdpaQkvBackward: Expected attributes { heads, causal?, scale? } but received undefined');
  checkAttrsObject('sdpaQkvBackward', attrs);
  return qkv.builder.op1('sdpa_qkv_backward', [dout, qkv, out, lse], { ...attrs });
}

/**
 * scaledDotProductAttention on @deepwell/core Tensors, as torch.nn.functional.scaled_dot_product_attention:
 *
 *   scaledDotProductAttention(q, k, v, { causal?, scale?, enableGqa?, layout? }) -> out
 *     q: F[B, H, Sq, D], k and v: F[B, Hkv, Sk, D] (layout 'bhsd', the default; 'bshd' takes
 *     [B, S, heads, D]), F one of f32, bf16, f16, all on one device. Without enableGqa, H must equal
 *     Hkv (as PyTorch's); with it, H must be a multiple of Hkv. scale defaults to 1 / sqrt(D).
 *     out: F, shaped as q.
 *
 * It runs the sdpa op's best kernel for the tensors' device, through the kernel registry: on the CPU
 * the float64 reference (its results rounded to F as a compiled CPU step stores them), on a GPU the
 * best CUDA kernel that fits (the fused flash kernels for bf16 / f16 at head dimensions 64 and 128,
 * Hopper's on sm_90; else the general path) on the
 * legacy default stream. A device whose kernels cannot serve the call gets NO_KERNEL with every
 * candidate and its reason. The call itself (selection, host or device tensors, a kernel's workspace)
 * is tensor_call.ts's, shared with sparseKAttention.
 */
import { DeepwellError, type Tensor } from '@deepwell/core';
import { checkAttrs, getOp, type ValueType } from '@deepwell/ir';
import { attentionDims, type AttentionLayout } from './ops/sdpa.js';
import { checkCall, optionalBoolean, optionalScale, runOp } from './tensor_call.js';

export interface ScaledDotProductAttentionOptions {
  causal?: boolean;
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** Let q have more heads than k and v (a multiple of theirs): grouped-query attention. */
  enableGqa?: boolean;
  layout?: AttentionLayout;
}

const OPTIONS = ['causal', 'scale', 'enableGqa', 'layout'];

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: ScaledDotProductAttentionOptions = {}): Tensor {
  checkCall('scaledDotProductAttention', { q, k, v }, options, OPTIONS);
  optionalBoolean('causal', options.causal);
  optionalBoolean('enableGqa', options.enableGqa);
  optionalScale(options.scale);
  const op = getOp('sdpa');
  const attrs = checkAttrs(op, { causal: options.causal ?? false, scale: options.scale ?? 0, layout: options.layout ?? 'bhsd' });
  const inTypes: ValueType[] = [q, k, v].map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const n = attentionDims('scaledDotProductAttention', inTypes, attrs);
  if (!options.enableGqa && n.H !== n.Hkv) {
    throw new DeepwellError('SHAPE_MISMATCH', `scaledDotProductAttention: Expected as many heads in k and v as in q (${n.H}) but received ${n.Hkv}; pass enableGqa: true for grouped-query attention`);
  }
  return runOp('scaledDotProductAttention', 'sdpa', [q, k, v], attrs, [0])[0]!;
}

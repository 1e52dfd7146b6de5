/**
 * sparseKAttention on @deepwell/core Tensors: the sparsek_attention op (ops/sparsek.ts) called eagerly.
 *
 *   sparseKAttention(q, k, v, { blockSize?, topK?, causal?, first?, window?, scale?, layout? })
 *     -> { out, indices }
 *     q: F[B, H, S, D], k and v: F[B, Hkv, S, D] (layout 'bhsd', the default; 'bshd' takes
 *     [B, S, heads, D]), F one of f32, bf16, f16, all on one device; H a multiple of Hkv (grouped-query
 *     attention needs no flag here: the selection is per key/value head by design). blockSize
 *     (default 64), topK (default 16, at most ceil(S / blockSize)), window (default 1) integers >= 1;
 *     causal and first booleans (default false); scale a finite number > 0 (default 1 / sqrt(D)).
 *     out: F, shaped as q. indices: i32[B, Hkv, nB, topK] on q's device, each query block's selected
 *     key blocks ascending, padded with -1.
 *
 * It runs the op's best kernel for the tensors' device through the kernel registry (tensor_call.ts):
 * on the CPU the float64 reference (out rounded to F as a compiled CPU step stores it), on a GPU the
 * CUDA candidate on the legacy default stream, with the workspace it declares allocated as a device
 * tensor and freed once the device has finished. The log-sum-exp (needed only by the backward) is
 * not returned; a training step uses the op through the IR (sparsekAttention) instead.
 */
import { DeepwellError, describe, type Tensor } from '@deepwell/core';
import { checkAttrs, getOp, type ValueType } from '@deepwell/ir';
import { sparsekDims, type SparsekAttributes } from './ops/sparsek.js';
import { checkCall, optionalBoolean, optionalScale, runOp } from './tensor_call.js';

/** The op's attributes (ops/sparsek.ts); scale, when given, must be > 0 here (absent: 1 / sqrt(D)). */
export type SparseKAttentionOptions = SparsekAttributes;

export interface SparseKAttentionResult {
  /** F, shaped as q. */
  out: Tensor;
  /** i32[B, Hkv, nB, topK]: the selected key blocks of each query block, ascending, then -1. */
  indices: Tensor;
}

const OPTIONS = ['blockSize', 'topK', 'causal', 'first', 'window', 'scale', 'layout'];

export function sparseKAttention(q: Tensor, k: Tensor, v: Tensor, options: SparseKAttentionOptions = {}): SparseKAttentionResult {
  const caller = 'sparseKAttention';
  checkCall(caller, { q, k, v }, options, OPTIONS);
  for (const name of ['blockSize', 'topK', 'window'] as const) {
    const x = options[name];
    if (x !== undefined && !(typeof x === 'number' && Number.isInteger(x) && x >= 1)) throw new DeepwellError('INVALID_ARGUMENT', `Expected an integer >= 1 for ${name} but received ${describe(x)}`);
  }
  optionalBoolean('causal', options.causal);
  optionalBoolean('first', options.first);
  optionalScale(options.scale);
  if (options.layout !== undefined && options.layout !== 'bhsd' && options.layout !== 'bshd') {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected 'bhsd' or 'bshd' for layout but received ${describe(options.layout)}`);
  }
  const { scale, ...rest } = options;
  const attrs = checkAttrs(getOp('sparsek_attention'), { ...rest, scale: scale ?? 0 });
  // The shape and attribute rule with this call's name in its errors (the op's would name the op).
  sparsekDims(caller, [q, k, v].map((t): ValueType => ({ shape: t.shape, dtype: t.dtype })), attrs);
  const [out, indices] = runOp(caller, 'sparsek_attention', [q, k, v], attrs, [0, 2]);
  return { out: out!, indices: indices! };
}

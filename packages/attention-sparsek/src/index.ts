// @deepwell/attention-sparsek: attention ops with float64 references and gradient rules, and the
// Tensor-level call. Importing this module defines the ops (and registers their CPU references).
export { attentionDims, layoutStrides, sdpa, sdpaBackward, sdpaBackwardOp, sdpaOp } from './ops/sdpa.js';
export type { AttentionDims, AttentionLayout, SdpaAttributes } from './ops/sdpa.js';
export { qkvDims, sdpaQkv, sdpaQkvBackward, sdpaQkvBackwardOp, sdpaQkvOp } from './ops/sdpa_qkv.js';
export type { SdpaQkvAttributes } from './ops/sdpa_qkv.js';
export { packedStrides } from './ops/attention_math.js';
export type { AttentionSizes, AttentionStrides, RowStrides } from './ops/attention_math.js';
export { scaledDotProductAttention } from './tensor.js';
export type { ScaledDotProductAttentionOptions } from './tensor.js';
// The CUDA candidates register themselves with the kernel registry on import.
import './cuda/sdpa.js';
import './cuda/sdpa_qkv.js';
import './cuda/flash.js';

// @deepwell/attention-sparsek: attention ops with float64 references and gradient rules, and the
// Tensor-level call. Importing this module defines the ops (and registers their CPU references).
export { attentionDims, sdpa, sdpaBackward, sdpaBackwardOp, sdpaOp } from './ops/sdpa.js';
export type { AttentionDims, AttentionLayout, SdpaAttributes } from './ops/sdpa.js';
export { scaledDotProductAttention } from './tensor.js';
export type { ScaledDotProductAttentionOptions } from './tensor.js';
// The CUDA candidates register themselves with the kernel registry on import.
import './cuda/sdpa.js';

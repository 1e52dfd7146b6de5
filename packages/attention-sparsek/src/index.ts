// @deepwell/attention-sparsek: attention ops (dense sdpa, sdpa_qkv; SparseK top-k block-sparse;
// kv_cache_write and sdpa_decode for decoding with a cache) with
// float64 references and gradient rules, and the Tensor-level calls. Importing this module defines
// the ops (and registers their CPU references).
export { attentionDims, layoutStrides, sdpa, sdpaBackward, sdpaBackwardOp, sdpaOp } from './ops/sdpa.js';
export type { AttentionDims, AttentionLayout, SdpaAttributes } from './ops/sdpa.js';
export { qkvDims, sdpaQkv, sdpaQkvBackward, sdpaQkvBackwardOp, sdpaQkvOp } from './ops/sdpa_qkv.js';
export type { SdpaQkvAttributes } from './ops/sdpa_qkv.js';
export { sparsekAttention, sparsekAttentionBackward, sparsekAttentionBackwardOp, sparsekAttentionOp, sparsekDims } from './ops/sparsek.js';
export type { SparsekAttributes, SparsekDims } from './ops/sparsek.js';
export { blockVisibility, sparsekFlops, sparsekSelect } from './ops/sparsek_math.js';
export type { SparsekSizes } from './ops/sparsek_math.js';
export { decodeDims, kvCacheWrite, kvCacheWriteOp, sdpaDecode, sdpaDecodeOp } from './ops/decode.js';
export type { DecodeAttributes, DecodeDims } from './ops/decode.js';
export { packedStrides } from './ops/attention_math.js';
export type { AttentionSizes, AttentionStrides, RowStrides, Visibility } from './ops/attention_math.js';
export { scaledDotProductAttention } from './tensor.js';
export type { ScaledDotProductAttentionOptions } from './tensor.js';
export { sparseKAttention } from './tensor_sparsek.js';
export type { SparseKAttentionOptions, SparseKAttentionResult } from './tensor_sparsek.js';
// The CUDA candidates register themselves with the kernel registry on import.
import './cuda/sdpa.js';
import './cuda/sdpa_qkv.js';
import './cuda/flash.js';
import './cuda/sparsek.js';
import './cuda/decode.js';

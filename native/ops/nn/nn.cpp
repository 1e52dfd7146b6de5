// The 'nn' op family: softmax, layernorm, rmsnorm, embedding, cross_entropy, causal_mask, adamw and
// clip_coef, one file each in this folder (each file's header lists its entry points). This file
// registers them.
//
// Shared by every entry point of the family (the conventions of common/args.h): a tensor is two
// arguments, (base, offset); `dtype` is the storage code (0 f32, 1 bf16, 2 f16) of every float
// tensor of the call unless the signature names another; sizes are element counts; attributes are
// plain numbers. Arithmetic is FP32 (loss sums FP64), stores round to nearest even.
//
// Bad data (an id, target or index out of range, an AdamW step < 1) cannot throw from a kernel: it
// is recorded in the family's device error word (common/errors.h) and reported by
// opsErrorCheck(stream).
//
// Determinism: no floating-point atomics. Row reductions use a fixed shuffle/shared-memory tree
// (common/rows.cuh); dweight/dbias and the cross-entropy mean sum fixed per-block partials in a
// fixed order (a second small kernel); embedding_backward (common/rows_gather.cu) gives each thread
// its own output columns and adds the rows in ascending position order. Results are bitwise
// identical run to run (the number of partials, and so the summation order of dweight / dbias,
// depends on the GPU's SM count only).
//
// Scratch: the per-block partials live in fixed __device__ buffers (g_ws in norm_partials.cu,
// g_ceSum, ... in cross_entropy.cu), one per device, so nothing is allocated per call. Kernels that
// use them (layernorm/rmsnorm backward, cross_entropy and its backward) must not run concurrently
// on two streams of one device.
#include "ops/nn/nn.h"

namespace dw {

void initOps_nn(Napi::Env env, Napi::Object exports) {
  using namespace nn;
  DW_NN_ENTRY_POINTS(DW_DEF_ENTRY)
}

}  // namespace dw

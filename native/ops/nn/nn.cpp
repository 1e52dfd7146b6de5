// The 'nn' op family: softmax, layernorm, rmsnorm, embedding, cross_entropy, causal_mask, adamw,
// clip_coef and sum_squares, one file each in this folder (each file's header lists its entry points). This file
// registers them.
//
// Shared by every entry point of the family: the signatures are declared once, in the ABI table
// (packages/kernels-native/abi/table.mjs), and each entry point reads its arguments only through its
// generated reader (common/abi/nn.gen.h): a tensor is two arguments, (base, offset); `dtype` is the
// storage code (0 f32, 1 bf16, 2 f16) of every float tensor of the call unless the signature names
// another; sizes are element counts; attributes are plain numbers. Arithmetic is FP32 (loss sums
// FP64), stores round to nearest even.
//
// Bad data (an id, target or index out of range, an AdamW step < 1) cannot throw from a kernel: it
// is recorded in the family's device error word (common/errors.h) and reported by
// opsErrorCheck(stream).
//
// Determinism: no floating-point atomics. Row reductions use a fixed shuffle/shared-memory tree
// (common/rows.cuh); dweight/dbias and the cross-entropy mean sum fixed per-block partials in a
// fixed order (a second small kernel), as do sum_squares' per-chunk f64 partials; embedding_backward (common/rows_gather.cu) gives each thread
// its own output columns and adds the rows in ascending position order. Results are bitwise
// identical run to run (the number of partials, and so the summation order of dweight / dbias,
// depends on the GPU's SM count only).
//
// Scratch: the per-block partials (the norm backwards' column partials, cross_entropy's partial sums
// and counts, cross_entropy_backward's scale) live in the caller's workspace (the `workspace`
// argument: the compiled step's memory plan places it in its arena, sized as the TS candidate
// declares), so nothing is allocated per call and no kernel of the family keeps per-device scratch:
// they are safe on several streams of one device at once. The only device state is the family's
// error word.
#include "ops/nn/nn.h"

namespace dw {

void initOps_nn(Napi::Env env, Napi::Object exports) {
  using namespace nn;
  DW_ABI_NN_ENTRIES(DW_DEF_ENTRY)
}

}  // namespace dw

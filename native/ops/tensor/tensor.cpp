// The 'tensor' op family: elementwise ops with bias_add and broadcasting add / mul
// (elementwise.cu), data movement (movement.cu), reductions (reduce.cu) and cast (cast.cu); each
// file's header lists its entry points. This file registers them.
//
// Every entry point takes the stream handle first and a dtype code second, then sizes (plain
// integers), then each tensor as (allocation base, byte offset): inputs in the op's order, the
// output last (the conventions of common/args.h). The TypeScript side is
// packages/ir/src/cuda/tensor.ts; the two must agree on every signature. Semantics are those of
// the CPU references in packages/ir/src/ops/*.ts.
//
// Shared rules:
//   - Float tensors are f32, bf16 or f16 storage (one dtype per call); arithmetic is FP32 and
//     results are rounded to nearest even once, on store. Pure data movement (reshape, transpose,
//     slice, concat, broadcast_to) moves bits and also accepts i32.
//   - Shapes of the broadcasting, transposing and reducing ops come as `rank` followed by rank
//     numbers per shape; rank <= 8. The host code drops size-1 dimensions and merges contiguous
//     ones before launching (tensor_common.cuh).
//   - Reductions are deterministic: each output is reduced by one warp or one block in a fixed
//     order that depends on the shapes only (no atomics), accumulating in FP32.
//   - n = 0 (or any empty output) launches nothing; every launch is followed by checkLaunch.
#include "ops/tensor/tensor.h"

namespace dw {

void initOps_tensor(Napi::Env env, Napi::Object exports) {
  using namespace tensor;
  DW_TENSOR_ENTRY_POINTS(DW_DEF_ENTRY)
}

}  // namespace dw

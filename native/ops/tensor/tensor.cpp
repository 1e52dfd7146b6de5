// The 'tensor' op family: elementwise ops with bias_add and broadcasting add / mul
// (elementwise.cu), data movement (movement.cu), reductions (reduce.cu), cast (cast.cu) and
// cast_multi (cast_multi.cu, many tensors per launch; one dtype pair per call); each
// file's header lists its entry points. This file registers them.
//
// Every entry point takes the stream handle first and a dtype code second, then sizes (plain
// integers), then each tensor as (allocation base, byte offset): inputs in the op's order, the
// output last; the reductions end with their workspace (base, offset, bytes). Signatures are
// declared once in the ABI table (packages/kernels-native/abi/table.mjs); each entry point reads its
// arguments through its generated reader (abi::read<Name>, common/abi/tensor.gen.h), which checks
// the count, the kinds and the ranges; a tensor is checked against its allocation once the entry
// point knows its size. The TypeScript callers are packages/ir/src/cuda/tensor.ts (and gemm.ts for
// sumTo). Semantics are those of the CPU references in packages/ir/src/ops/*.ts.
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
  DW_ABI_TENSOR_ENTRIES(DW_DEF_ENTRY)
}

}  // namespace dw

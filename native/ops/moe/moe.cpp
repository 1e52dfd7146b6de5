// The 'moe' op family: topk (topk.cu), gather_rows and scatter_add_rows (rows.cu), moe_plan
// (moe_plan.cu) and one_hot (one_hot.cu); each file's header lists its entry points. This file
// registers them.
//
// Shared by every entry point of the family: each reads its arguments through its generated reader
// (abi::read<Name>, common/abi/moe.gen.h), which checks the count, the kinds and the ranges; a
// tensor is (base, offset), checked against its allocation once the entry point knows its size;
// `dtype` is the storage code (0 f32, 1 bf16, 2 f16) of every float tensor of the call; index
// tensors are i32; sizes are element counts.
//
// A bad index (outside its range, and not the -1 that gather_rows, scatter_add_rows and one_hot
// allow) is recorded in this family's device error word (common/errors.h), never thrown from the
// kernel and never used to write out of bounds; opsErrorCheck(stream) reads and clears it and fails
// with INVALID_ARGUMENT naming the op, the position and the value.
//
// Determinism: no floating-point atomics (each file says how its sums are ordered).
#include "ops/moe/moe.h"

namespace dw {

void initOps_moe(Napi::Env env, Napi::Object exports) {
  using namespace moe;
  DW_ABI_MOE_ENTRIES(DW_DEF_ENTRY)
}

}  // namespace dw

// The 'attention' family (@deepwell/attention-sparsek's kernels): the general path (sdpa.cu) and the
// fused flash kernels (flash.cu, over flash_sm80.cuh). This file registers their entry points.
#include "common/abi/attention.gen.h"
#include "runtime/common.h"

namespace dw {
namespace attention {
DW_ABI_ATTENTION_ENTRIES(DW_DECLARE_ENTRY)
}  // namespace attention

void initAttention(Napi::Env env, Napi::Object exports) {
  using namespace attention;
  DW_ABI_ATTENTION_ENTRIES(DW_DEF_ENTRY)
}

}  // namespace dw

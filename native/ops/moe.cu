// CUDA kernels of the 'moe' op family; see ops_common.h for the conventions.
#include "ops/ops_common.h"

namespace dw {

void initOps_moe(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace dw

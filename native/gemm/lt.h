// cuBLASLt, loaded at run time (dlopen through runtime/vendor), shared by the GEMM entry points:
// the function table, one handle per device, the status check and the alignment the heuristic may
// assume. Callers hold lt::mutex() around every use (plans and handles are shared state).
#pragma once
#include "common/launch.h"
#include "runtime/vendor/cublaslt_min.h"

#include <cstdint>
#include <mutex>

namespace dw {
namespace lt {

struct Fns {
  dw_cublasLtCreate_t create;
  dw_cublasLtMatmulDescCreate_t descCreate;
  dw_cublasLtMatmulDescDestroy_t descDestroy;
  dw_cublasLtMatmulDescSetAttribute_t descSet;
  dw_cublasLtMatrixLayoutCreate_t layoutCreate;
  dw_cublasLtMatrixLayoutDestroy_t layoutDestroy;
  dw_cublasLtMatrixLayoutSetAttribute_t layoutSet;
  dw_cublasLtMatmulPreferenceCreate_t prefCreate;
  dw_cublasLtMatmulPreferenceDestroy_t prefDestroy;
  dw_cublasLtMatmulPreferenceSetAttribute_t prefSet;
  dw_cublasLtMatmulAlgoGetHeuristic_t heuristic;
  dw_cublasLtMatmul_t matmul;
};

// The one lock around cuBLASLt state (plans, handles).
std::mutex& mutex();
// The function table, loaded on first use; LIBRARY_UNAVAILABLE when cuBLASLt is missing.
Fns& load(Napi::Env env);
// The current device's handle (made on first use) and its index.
dw_cublasLtHandle_t handle(Napi::Env env, Fns& l, int* device);
// CUDA_ERROR naming `what` and the cuBLAS status when s != 0.
void check(Napi::Env env, dw_cublasStatus_t s, const char* what);
// Largest power of two (<= 256) dividing the address.
uint32_t alignmentOf(const void* p);

}  // namespace lt
}  // namespace dw

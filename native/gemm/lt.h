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
// The heuristic's best algorithm for D = op(A)·op(B) (C = D) within maxWorkspace bytes, for operands
// aligned to al (A, B, C, D bytes), split-K partial sums kept in FP32 only; the heuristic's status,
// and in *found how many it returned (0 or 1).
dw_cublasStatus_t bestAlgo(Napi::Env env, Fns& l, dw_cublasLtHandle_t handle, dw_cublasLtMatmulDesc_t desc, dw_cublasLtMatrixLayout_t a,
                           dw_cublasLtMatrixLayout_t b, dw_cublasLtMatrixLayout_t d, uint64_t maxWorkspace, const uint32_t al[4],
                           dw_cublasLtMatmulHeuristicResult_t* res, int* found);

}  // namespace lt
}  // namespace dw

// cuBLASLt, loaded at run time (dlopen through runtime/vendor), shared by the GEMM entry points:
// the function table, one handle per device, the status check and the alignment the heuristic may
// assume. Callers hold lt::mutex() around every use (plans and handles are shared state).
#pragma once
#include "common/launch.h"
#include "runtime/vendor/cublaslt_min.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

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

// One GEMM's descriptors and the heuristic's algorithm for them (needing `workspace` bytes).
struct Plan {
  dw_cublasLtMatmulDesc_t desc;
  dw_cublasLtMatrixLayout_t a, b, d;
  dw_cublasLtMatmulAlgo_t algo;
  size_t workspace;
};

// Plans made once per key, and the keys cuBLASLt has no algorithm for (with why), so asking again
// is a lookup. Callers hold mutex().
class PlanCache {
 public:
  // The plan kept for key; nullptr with *why set when key was refused; nullptr with *why empty
  // when neither (make the descriptors and call settle).
  Plan* find(const std::string& key, std::string* why);
  // Asks the heuristic for the best algorithm for p's descriptors (D = op(A)·op(B), C = D) within
  // maxWorkspace bytes, operands aligned to al (A, B, C, D bytes), split-K partial sums in FP32
  // only, and keeps the plan under key; or, when it has none, destroys p's descriptors, remembers
  // the refusal ("cuBLASLt has no <what> for this GEMM (key), status s") and returns nullptr with
  // *why set.
  Plan* settle(Napi::Env env, Fns& l, dw_cublasLtHandle_t handle, Plan p, uint64_t maxWorkspace, const uint32_t al[4], const std::string& key,
               const char* what, std::string* why);
  size_t size() const { return plans_.size(); }

 private:
  std::unordered_map<std::string, Plan> plans_;
  std::unordered_map<std::string, std::string> refused_;
};

}  // namespace lt
}  // namespace dw

// cuBLASLt loading and handles (see lt.h).
#include "gemm/lt.h"

#include <dlfcn.h>

#include <string>

namespace dw {
namespace lt {
namespace {

Fns* fns = nullptr;
dw_cublasLtHandle_t handles[64] = {};

template <typename F>
F sym(Napi::Env env, void* h, const char* name) {
  void* p = dlsym(h, name);
  if (!p) fail(env, "LIBRARY_UNAVAILABLE", std::string("cuBLASLt lacks ") + name);
  return reinterpret_cast<F>(p);
}

}  // namespace

std::mutex& mutex() {
  static std::mutex* m = new std::mutex();
  return *m;
}

Fns& load(Napi::Env env) {
  if (fns) return *fns;
  void* h = vendorHandle("cublasLt");
  if (!h) fail(env, "LIBRARY_UNAVAILABLE", "cuBLASLt is not loaded: findLibrary('cublasLt') found none (set DEEPWELL_CUBLASLT_PATH or install the CUDA toolkit's cuBLAS)");
  fns = new Fns{
      sym<dw_cublasLtCreate_t>(env, h, "cublasLtCreate"),
      sym<dw_cublasLtMatmulDescCreate_t>(env, h, "cublasLtMatmulDescCreate"),
      sym<dw_cublasLtMatmulDescDestroy_t>(env, h, "cublasLtMatmulDescDestroy"),
      sym<dw_cublasLtMatmulDescSetAttribute_t>(env, h, "cublasLtMatmulDescSetAttribute"),
      sym<dw_cublasLtMatrixLayoutCreate_t>(env, h, "cublasLtMatrixLayoutCreate"),
      sym<dw_cublasLtMatrixLayoutDestroy_t>(env, h, "cublasLtMatrixLayoutDestroy"),
      sym<dw_cublasLtMatrixLayoutSetAttribute_t>(env, h, "cublasLtMatrixLayoutSetAttribute"),
      sym<dw_cublasLtMatmulPreferenceCreate_t>(env, h, "cublasLtMatmulPreferenceCreate"),
      sym<dw_cublasLtMatmulPreferenceDestroy_t>(env, h, "cublasLtMatmulPreferenceDestroy"),
      sym<dw_cublasLtMatmulPreferenceSetAttribute_t>(env, h, "cublasLtMatmulPreferenceSetAttribute"),
      sym<dw_cublasLtMatmulAlgoGetHeuristic_t>(env, h, "cublasLtMatmulAlgoGetHeuristic"),
      sym<dw_cublasLtMatmul_t>(env, h, "cublasLtMatmul"),
  };
  return *fns;
}

dw_cublasLtHandle_t handle(Napi::Env env, Fns& l, int* device) {
  DW_CUDA(env, cudaGetDevice(device), "cudaGetDevice");
  if (*device < 0 || *device >= 64) fail(env, "INVALID_ARGUMENT", "Expected a CUDA device index below 64 for a cuBLASLt GEMM");
  if (!handles[*device]) check(env, l.create(&handles[*device]), "cublasLtCreate");
  return handles[*device];
}

void check(Napi::Env env, dw_cublasStatus_t s, const char* what) {
  if (s != 0) fail(env, "CUDA_ERROR", std::string(what) + " failed: cuBLAS status " + std::to_string(s));
}

uint32_t alignmentOf(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

Plan* PlanCache::find(const std::string& key, std::string* why) {
  why->clear();
  auto it = plans_.find(key);
  if (it != plans_.end()) return &it->second;
  auto no = refused_.find(key);
  if (no != refused_.end()) *why = no->second;
  return nullptr;
}

Plan* PlanCache::settle(Napi::Env env, Fns& l, dw_cublasLtHandle_t handle, Plan p, uint64_t maxWorkspace, const uint32_t al[4], const std::string& key,
                        const char* what, std::string* why) {
  dw_cublasLtMatmulPreference_t pref;
  check(env, l.prefCreate(&pref), "cublasLtMatmulPreferenceCreate");
  uint64_t ws = maxWorkspace;
  l.prefSet(pref, DW_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  // FP32 accumulation throughout: a split-K algorithm may keep its partial sums only in the compute
  // type (FP32), never in the output type (bf16/f16: INPLACE and OUTPUT_TYPE round every partial).
  uint32_t reduction = DW_CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  l.prefSet(pref, DW_CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction, sizeof reduction);
  const int attrs[4] = {DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                        DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; i++) l.prefSet(pref, attrs[i], &al[i], sizeof al[i]);
  dw_cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const dw_cublasStatus_t st = l.heuristic(handle, p.desc, p.a, p.b, p.d, p.d, pref, 1, &res, &found);
  l.prefDestroy(pref);
  if (st != 0 || found == 0) {
    l.descDestroy(p.desc);
    l.layoutDestroy(p.a);
    l.layoutDestroy(p.b);
    l.layoutDestroy(p.d);
    *why = std::string("cuBLASLt has no ") + what + " for this GEMM (" + key + "), status " + std::to_string(st);
    refused_.emplace(key, *why);
    return nullptr;
  }
  p.algo = res.algo;
  p.workspace = res.workspaceSize;
  return &plans_.emplace(key, p).first->second;
}

}  // namespace lt
}  // namespace dw

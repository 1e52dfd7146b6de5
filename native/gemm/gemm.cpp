// GEMM through cuBLASLt, loaded at run time (dlopen; declarations in runtime/vendor/cublaslt_min.h).
//
// Deepwell's matmul is row-major: D[M, N] = op(A)[M, K] · op(B)[K, N], batched with strides.
// cuBLASLt is column-major, and a row-major matrix is its transpose in column-major, so we ask for
// Dᵀ = op(B)ᵀ · op(A)ᵀ: cuBLASLt's "A" is our b, its "B" is our a, and m = N, n = M.
// BF16 and FP16 use FP32 accumulation; FP32 storage uses TF32 tensor cores when asked (else FP32).
//
// Per (device, dtype, shape, transposes, batch, epilogue, pointer alignment) the descriptors and the
// heuristic's algorithm are made once and cached; one 32 MiB workspace per device.
//
// gemmLt(stream, dtype, transA, transB, M, N, K, batch, strideA, strideB, strideD, tf32,
//        aBase, aOff, bBase, bOff, dBase, dOff, epilogue, biasBase, biasOff)
//   strides in elements (0: the operand is shared by every batch); epilogue 0 none,
//   1 bias (D[m, n] += bias[n]), 2 gelu(D + bias) (tanh GELU), 3 bias gradient
//   (bias[m] = Σ_k op(A)[m, k]: the bias gradient of a weight-gradient GEMM whose op(A) is gᵀ).
//   biasBase 0 when the epilogue takes none.
#include "ops/ops_common.h"
#include "runtime/vendor/cublaslt_min.h"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <unordered_map>

namespace dw {
namespace {

struct Lt {
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

struct Plan {
  dw_cublasLtMatmulDesc_t desc;
  dw_cublasLtMatrixLayout_t a, b, d;
  dw_cublasLtMatmulAlgo_t algo;
  size_t workspace;
};

struct DeviceLt {
  dw_cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

constexpr size_t kWorkspace = 32u << 20;
std::mutex mu;
Lt* lt = nullptr;
DeviceLt devices[64];
std::unordered_map<std::string, Plan>* plans = new std::unordered_map<std::string, Plan>();

template <typename F>
F sym(Napi::Env env, void* h, const char* name) {
  void* p = dlsym(h, name);
  if (!p) fail(env, "LIBRARY_UNAVAILABLE", std::string("cuBLASLt lacks ") + name);
  return reinterpret_cast<F>(p);
}

Lt& loadLt(Napi::Env env) {
  if (lt) return *lt;
  void* h = vendorHandle("cublasLt");
  if (!h) fail(env, "LIBRARY_UNAVAILABLE", "cuBLASLt is not loaded: findLibrary('cublasLt') found none (set DEEPWELL_CUBLASLT_PATH or install the CUDA toolkit's cuBLAS)");
  Lt* l = new Lt{
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
  lt = l;
  return *lt;
}

void check(Napi::Env env, dw_cublasStatus_t s, const char* what) {
  if (s != 0) fail(env, "CUDA_ERROR", std::string(what) + " failed: cuBLAS status " + std::to_string(s));
}

// Largest power of two (<= 256) dividing the address: what the heuristic may assume.
uint32_t alignmentOf(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

int cudaTypeOf(int dtype) { return dtype == kBF16 ? DW_CUDA_R_16BF : dtype == kF16 ? DW_CUDA_R_16F : DW_CUDA_R_32F; }

Napi::Value GemmLt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t stream = streamArg(info, 0);
  int dtype = dtypeArg(info, 1);
  if (dtype == kI32) fail(env, "INVALID_DTYPE", "Expected a float dtype for gemmLt but received i32");
  bool ta = u64Arg(info, 2, "transA", 1) != 0, tb = u64Arg(info, 3, "transB", 1) != 0;
  uint64_t M = u64Arg(info, 4, "M"), N = u64Arg(info, 5, "N"), K = u64Arg(info, 6, "K");
  uint64_t batch = u64Arg(info, 7, "batch");
  uint64_t sA = u64Arg(info, 8, "strideA"), sB = u64Arg(info, 9, "strideB"), sD = u64Arg(info, 10, "strideD");
  bool tf32 = u64Arg(info, 11, "tf32", 1) != 0;
  if (M == 0 || N == 0 || K == 0 || batch == 0) fail(env, "INVALID_ARGUMENT", "Expected M, N, K and batch >= 1 for gemmLt");
  if ((sA != 0 && sA < M * K) || (sB != 0 && sB < K * N) || sD < M * N)
    fail(env, "INVALID_ARGUMENT", "Expected batch strides of 0 or at least one matrix for gemmLt");
  size_t eb = dtypeBytes(dtype);
  auto extent = [&](uint64_t stride, uint64_t mat) { return (batch - 1) * stride + mat; };
  void* A = devArg<uint8_t>(info, 12, extent(sA, M * K) * eb, 1, "gemm A");
  void* B = devArg<uint8_t>(info, 14, extent(sB, K * N) * eb, 1, "gemm B");
  void* D = devArg<uint8_t>(info, 16, extent(sD, M * N) * eb, 1, "gemm D");
  int epi = static_cast<int>(u64Arg(info, 18, "epilogue", 3));
  void* bias = nullptr;
  if (epi != 0) {
    if (batch != 1) fail(env, "INVALID_ARGUMENT", "Expected batch 1 for a gemm epilogue");
    bias = devArg<uint8_t>(info, 19, (epi == 3 ? M : N) * eb, 1, "gemm bias");
  }
  int device = 0;
  DW_CUDA(env, cudaGetDevice(&device), "cudaGetDevice");

  std::lock_guard<std::mutex> lock(mu);
  Lt& l = loadLt(env);
  DeviceLt& dev = devices[device];
  if (!dev.handle) {
    check(env, l.create(&dev.handle), "cublasLtCreate");
    DW_CUDA(env, cudaMalloc(&dev.workspace, kWorkspace), "cudaMalloc(gemm workspace)");
  }
  uint32_t al[4] = {alignmentOf(B), alignmentOf(A), alignmentOf(D), alignmentOf(D)};
  std::string key = std::to_string(device) + "/" + std::to_string(dtype) + "/" + std::to_string(ta) + std::to_string(tb) + "/" + std::to_string(M) + "x" +
                    std::to_string(N) + "x" + std::to_string(K) + "/" + std::to_string(batch) + ":" + std::to_string(sA) + "," + std::to_string(sB) + "," +
                    std::to_string(sD) + "/" + std::to_string(epi) + "/" + std::to_string(tf32) + "/" + std::to_string(al[0]) + "," + std::to_string(al[1]) + "," +
                    std::to_string(al[2]) + "," + std::to_string(alignmentOf(bias));
  auto it = plans->find(key);
  if (it == plans->end()) {
    Plan p{};
    int ctype = cudaTypeOf(dtype);
    int compute = dtype == kF32 && tf32 ? DW_CUBLAS_COMPUTE_32F_FAST_TF32 : DW_CUBLAS_COMPUTE_32F;
    check(env, l.descCreate(&p.desc, compute, DW_CUDA_R_32F), "cublasLtMatmulDescCreate");
    int opA = tb ? DW_CUBLAS_OP_T : DW_CUBLAS_OP_N;  // cuBLASLt's A is our b
    int opB = ta ? DW_CUBLAS_OP_T : DW_CUBLAS_OP_N;  // cuBLASLt's B is our a
    check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "set TRANSA");
    check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "set TRANSB");
    int epilogue = epi == 1 ? DW_CUBLASLT_EPILOGUE_BIAS : epi == 2 ? DW_CUBLASLT_EPILOGUE_GELU_BIAS : epi == 3 ? DW_CUBLASLT_EPILOGUE_BGRADB : DW_CUBLASLT_EPILOGUE_DEFAULT;
    check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "set EPILOGUE");
    if (epi != 0) {
      check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &ctype, sizeof ctype), "set BIAS_DATA_TYPE");
      check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "set BIAS_POINTER");
    }
    // Column-major views of our row-major operands (see the comment at the top).
    uint64_t aRows = tb ? K : N, aCols = tb ? N : K;  // our b
    uint64_t bRows = ta ? M : K, bCols = ta ? K : M;  // our a
    check(env, l.layoutCreate(&p.a, ctype, aRows, aCols, static_cast<int64_t>(aRows)), "layout A");
    check(env, l.layoutCreate(&p.b, ctype, bRows, bCols, static_cast<int64_t>(bRows)), "layout B");
    check(env, l.layoutCreate(&p.d, ctype, N, M, static_cast<int64_t>(N)), "layout D");
    if (batch > 1) {
      int32_t count = static_cast<int32_t>(batch);
      int64_t strides[3] = {static_cast<int64_t>(sB), static_cast<int64_t>(sA), static_cast<int64_t>(sD)};
      dw_cublasLtMatrixLayout_t ls[3] = {p.a, p.b, p.d};
      for (int i = 0; i < 3; i++) {
        check(env, l.layoutSet(ls[i], DW_CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), "set BATCH_COUNT");
        check(env, l.layoutSet(ls[i], DW_CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]), "set STRIDED_BATCH_OFFSET");
      }
    }
    dw_cublasLtMatmulPreference_t pref;
    check(env, l.prefCreate(&pref), "cublasLtMatmulPreferenceCreate");
    size_t ws = kWorkspace;
    l.prefSet(pref, DW_CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    int attrs[4] = {DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                    DW_CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++) l.prefSet(pref, attrs[i], &al[i], sizeof al[i]);
    dw_cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    dw_cublasStatus_t s = l.heuristic(dev.handle, p.desc, p.a, p.b, p.d, p.d, pref, 1, &res, &found);
    l.prefDestroy(pref);
    if (s != 0 || found == 0) {
      l.descDestroy(p.desc);
      l.layoutDestroy(p.a);
      l.layoutDestroy(p.b);
      l.layoutDestroy(p.d);
      fail(env, "INVALID_ARGUMENT",
           "cuBLASLt has no algorithm for this GEMM (" + key + "), status " + std::to_string(s));
    }
    p.algo = res.algo;
    p.workspace = res.workspaceSize;
    it = plans->emplace(key, p).first;
  }
  Plan& p = it->second;
  if (epi != 0) check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "set BIAS_POINTER");
  float alpha = 1.0f, beta = 0.0f;
  check(env, l.matmul(dev.handle, p.desc, &alpha, B, p.a, A, p.b, &beta, D, p.d, D, p.d, &p.algo, dev.workspace, kWorkspace, stream), "cublasLtMatmul");
  return env.Undefined();
}

// How many GEMM plans are cached (for tests: the cache works).
Napi::Value GemmPlanCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(mu);
  return Napi::Number::New(info.Env(), static_cast<double>(plans->size()));
}

}  // namespace

void initGemm(Napi::Env env, Napi::Object exports) {
  def(env, exports, "gemmLt", GemmLt);
  def(env, exports, "gemmPlanCount", GemmPlanCount);
  initGemmFallback(env, exports);
}

}  // namespace dw

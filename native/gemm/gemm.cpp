// GEMM through cuBLASLt, loaded at run time (gemm/lt.h; declarations in runtime/vendor/cublaslt_min.h).
//
// Deepwell's matmul is row-major: D[M, N] = op(A)[M, K] · op(B)[K, N], batched with strides.
// cuBLASLt is column-major, and a row-major matrix is its transpose in column-major, so we ask for
// Dᵀ = op(B)ᵀ · op(A)ᵀ: cuBLASLt's "A" is our b, its "B" is our a, and m = N, n = M.
// BF16 and FP16 use FP32 accumulation, split-K partial sums included (the heuristic may not pick a
// reduction in the output type); FP32 storage uses TF32 tensor cores when asked (else FP32).
//
// The signatures are in the ABI table (packages/kernels-native/abi/table.mjs); each entry point
// reads its arguments through its generated reader (common/abi/gemm.gen.h). Strides are in
// elements (0: the operand is shared by every batch); epilogue 0 none, 1 bias (D[m, n] += bias[n]),
// 2 gelu(D + bias) (tanh GELU), 3 bias gradient (bias[m] = Σ_k op(A)[m, k]: the bias gradient of a
// weight-gradient GEMM whose op(A) is gᵀ), 4 gelu(D + bias) with the pre-activation D + bias also
// written to aux, for the GELU backward, 5 the GELU backward: D = (op(A)·op(B)) * gelu'(aux), aux
// the pre-activation epilogue 4 wrote (read, [M, N] in D's layout; cuBLASLt's DGELU). bias and aux
// are optional tensors: bias is read when the epilogue takes one (1..4), aux with epilogues 4 and 5
// (its range checked); otherwise they are ignored.
//
// The cuBLASLt workspace is the caller's: gemmLt gets it with the call (the compiled step's memory
// plan places it in its arena); nothing is allocated here. The heuristic may pick algorithms that
// use up to that much scratch (gemmLtSupported takes the same size as workspaceBytes), and a call
// whose algorithm needs more than the call gives fails with INVALID_ARGUMENT.
//
// Per (device, dtype, shape, transposes, batch, epilogue, pointer alignment, max workspace) the
// descriptors and the heuristic's algorithm are made once and cached; one cuBLASLt handle per
// device. A shape cuBLASLt has no algorithm for fails with INVALID_ARGUMENT; gemmLtSupported asks
// first.
#include "common/abi/gemm.gen.h"
#include "common/dtype.h"
#include "common/launch.h"

#include "gemm/lt.h"

#include <string>

namespace dw {
namespace {

using lt::alignmentOf;
using lt::check;
using Lt = lt::Fns;

using lt::Plan;

lt::PlanCache* plans = new lt::PlanCache();

// Epilogues that take a bias vector (read, or written by BGRADB), and those with an aux matrix.
bool hasBias(int epi) { return epi == abi::epilogue::bias || epi == abi::epilogue::geluBias || epi == abi::epilogue::bgradb || epi == abi::epilogue::geluAuxBias; }
bool hasAux(int epi) { return epi == abi::epilogue::geluAuxBias || epi == abi::epilogue::dgelu; }

int cudaTypeOf(int dtype) { return dtype == kBF16 ? DW_CUDA_R_16BF : dtype == kF16 ? DW_CUDA_R_16F : DW_CUDA_R_32F; }

// One GEMM's shape and options: what a plan is made for.
struct GemmShape {
  int dtype;
  bool ta, tb, tf32;
  uint64_t M, N, K, batch, sA, sB, sD;
  int epi;
};

// The cached plan for (device, shape, operand alignments, max workspace), made on first use;
// nullptr with `why` set when cuBLASLt has no algorithm for it (remembered, so asking again is
// cheap). `maxWorkspace` is the heuristic's limit: the plan's algorithm needs at most that much.

Plan* planFor(Napi::Env env, Lt& l, dw_cublasLtHandle_t handle, int device, const GemmShape& g, const uint32_t al[5], uint64_t maxWorkspace, std::string* why) {
  const std::string key = std::to_string(device) + "/" + std::to_string(g.dtype) + "/" + std::to_string(g.ta) + std::to_string(g.tb) + "/" + std::to_string(g.M) +
                          "x" + std::to_string(g.N) + "x" + std::to_string(g.K) + "/" + std::to_string(g.batch) + ":" + std::to_string(g.sA) + "," +
                          std::to_string(g.sB) + "," + std::to_string(g.sD) + "/" + std::to_string(g.epi) + "/" + std::to_string(g.tf32) + "/" +
                          std::to_string(al[0]) + "," + std::to_string(al[1]) + "," + std::to_string(al[2]) + "," + std::to_string(al[3]) + "," +
                          std::to_string(al[4]) + "/ws" + std::to_string(maxWorkspace);
  if (Plan* hit = plans->find(key, why)) return hit;
  if (!why->empty()) return nullptr;
  Plan p{};
  int ctype = cudaTypeOf(g.dtype);
  int compute = g.dtype == kF32 && g.tf32 ? DW_CUBLAS_COMPUTE_32F_FAST_TF32 : DW_CUBLAS_COMPUTE_32F;
  check(env, l.descCreate(&p.desc, compute, DW_CUDA_R_32F), "cublasLtMatmulDescCreate");
  int opA = g.tb ? DW_CUBLAS_OP_T : DW_CUBLAS_OP_N;  // cuBLASLt's A is our b
  int opB = g.ta ? DW_CUBLAS_OP_T : DW_CUBLAS_OP_N;  // cuBLASLt's B is our a
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "set TRANSA");
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "set TRANSB");
  int epilogue = g.epi == abi::epilogue::bias          ? DW_CUBLASLT_EPILOGUE_BIAS
                 : g.epi == abi::epilogue::geluBias    ? DW_CUBLASLT_EPILOGUE_GELU_BIAS
                 : g.epi == abi::epilogue::bgradb      ? DW_CUBLASLT_EPILOGUE_BGRADB
                 : g.epi == abi::epilogue::geluAuxBias ? DW_CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                 : g.epi == abi::epilogue::dgelu       ? DW_CUBLASLT_EPILOGUE_DGELU
                                                        : DW_CUBLASLT_EPILOGUE_DEFAULT;
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "set EPILOGUE");
  if (hasBias(g.epi)) check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &ctype, sizeof ctype), "set BIAS_DATA_TYPE");
  if (hasAux(g.epi)) {
    // The pre-activation is in D's layout (column-major N x M, leading dimension N), written by
    // GELU_AUX_BIAS and read by DGELU; its type is D's (cuBLASLt's default for the aux buffer).
    int64_t ld = static_cast<int64_t>(g.N);
    check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld), "set EPILOGUE_AUX_LD");
  }
  // Column-major views of our row-major operands (see the comment at the top).
  uint64_t aRows = g.tb ? g.K : g.N, aCols = g.tb ? g.N : g.K;  // our b
  uint64_t bRows = g.ta ? g.M : g.K, bCols = g.ta ? g.K : g.M;  // our a
  check(env, l.layoutCreate(&p.a, ctype, aRows, aCols, static_cast<int64_t>(aRows)), "layout A");
  check(env, l.layoutCreate(&p.b, ctype, bRows, bCols, static_cast<int64_t>(bRows)), "layout B");
  check(env, l.layoutCreate(&p.d, ctype, g.N, g.M, static_cast<int64_t>(g.N)), "layout D");
  if (g.batch > 1) {
    int32_t count = static_cast<int32_t>(g.batch);
    int64_t strides[3] = {static_cast<int64_t>(g.sB), static_cast<int64_t>(g.sA), static_cast<int64_t>(g.sD)};
    dw_cublasLtMatrixLayout_t ls[3] = {p.a, p.b, p.d};
    for (int i = 0; i < 3; i++) {
      check(env, l.layoutSet(ls[i], DW_CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), "set BATCH_COUNT");
      check(env, l.layoutSet(ls[i], DW_CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]), "set STRIDED_BATCH_OFFSET");
    }
  }
  return plans->settle(env, l, handle, p, maxWorkspace, al, key, "algorithm", why);
}

// The shape and options of a gemmLt / gemmLtSupported call (read by their generated readers), with
// the checks both make.
template <typename A>
GemmShape shapeOf(Napi::Env env, const A& a) {
  GemmShape g{};
  g.dtype = a.dtype;
  g.ta = a.transA;
  g.tb = a.transB;
  g.M = a.M;
  g.N = a.N;
  g.K = a.K;
  g.batch = a.batch;
  g.sA = a.strideA;
  g.sB = a.strideB;
  g.sD = a.strideD;
  g.tf32 = a.tf32;
  g.epi = a.epilogue;
  if (g.M == 0 || g.N == 0 || g.K == 0 || g.batch == 0) fail(env, "INVALID_ARGUMENT", "Expected M, N, K and batch >= 1 for gemmLt");
  if ((g.sA != 0 && g.sA < g.M * g.K) || (g.sB != 0 && g.sB < g.K * g.N) || g.sD < g.M * g.N)
    fail(env, "INVALID_ARGUMENT", "Expected batch strides of 0 or at least one matrix for gemmLt");
  if (g.epi != abi::epilogue::none && g.batch != 1) fail(env, "INVALID_ARGUMENT", "Expected batch 1 for a gemm epilogue");
  return g;
}

Napi::Value GemmLt(const Napi::CallbackInfo& info) {
  const abi::GemmLtArgs a = abi::readGemmLt(info);
  Napi::Env env = info.Env();
  const int epi = a.epilogue;
  const GemmShape g = shapeOf(env, a);
  size_t eb = dtypeBytes(g.dtype);
  auto extent = [&](uint64_t stride, uint64_t mat) { return (g.batch - 1) * stride + mat; };
  void* A = a.a.ptr<uint8_t>(env, extent(g.sA, g.M * g.K) * eb);
  void* B = a.b.ptr<uint8_t>(env, extent(g.sB, g.K * g.N) * eb);
  void* D = a.d.ptr<uint8_t>(env, extent(g.sD, g.M * g.N) * eb);
  void* bias = hasBias(epi) ? a.bias.ptr<uint8_t>(env, (epi == abi::epilogue::bgradb ? g.M : g.N) * eb) : nullptr;
  void* aux = hasAux(epi) ? a.aux.ptr<uint8_t>(env, g.M * g.N * eb) : nullptr;

  std::lock_guard<std::mutex> lock(lt::mutex());
  Lt& l = lt::load(env);
  int device = 0;
  dw_cublasLtHandle_t handle = lt::handle(env, l, &device);
  const uint32_t al[5] = {alignmentOf(B), alignmentOf(A), alignmentOf(D), bias ? alignmentOf(bias) : 256u, aux ? alignmentOf(aux) : 256u};
  std::string why;
  Plan* p = planFor(env, l, handle, device, g, al, a.workspace.bytes, &why);
  if (!p) fail(env, "INVALID_ARGUMENT", why);
  // The heuristic was limited to the call's workspace; a plan that needs more is never run.
  void* workspace = a.workspace.take<void>(env, p->workspace, 256);
  if (bias) check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "set BIAS_POINTER");
  if (aux) check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux), "set EPILOGUE_AUX_POINTER");
  float alpha = 1.0f, beta = 0.0f;
  check(env, l.matmul(handle, p->desc, &alpha, B, p->a, A, p->b, &beta, D, p->d, D, p->d, &p->algo, workspace, a.workspace.bytes, a.stream), "cublasLtMatmul");
  return env.Undefined();
}

// gemmLtSupported(..., epilogue, workspaceBytes) -> "" when cuBLASLt has an algorithm for this GEMM
//   on the current device with every operand 256-byte aligned (as the compile arena and the
//   allocator place them) and at most workspaceBytes of workspace (what each gemmLt call of it will
//   give), else why not. The plan it makes is the one gemmLt then uses.
Napi::Value GemmLtSupported(const Napi::CallbackInfo& info) {
  const abi::GemmLtSupportedArgs a = abi::readGemmLtSupported(info);
  Napi::Env env = info.Env();
  const GemmShape g = shapeOf(env, a);
  std::lock_guard<std::mutex> lock(lt::mutex());
  Lt& l = lt::load(env);
  int device = 0;
  dw_cublasLtHandle_t handle = lt::handle(env, l, &device);
  const uint32_t al[5] = {256, 256, 256, 256, 256};
  std::string why;
  return Napi::String::New(env, planFor(env, l, handle, device, g, al, a.workspaceBytes, &why) ? "" : why);
}

// How many GEMM plans are cached (for tests: the cache works).
Napi::Value GemmPlanCount(const Napi::CallbackInfo& info) {
  abi::readGemmPlanCount(info);
  std::lock_guard<std::mutex> lock(lt::mutex());
  return Napi::Number::New(info.Env(), static_cast<double>(plans->size()));
}

}  // namespace

void initGemm(Napi::Env env, Napi::Object exports) {
  def(env, exports, "gemmLt", GemmLt);
  def(env, exports, "gemmPlanCount", GemmPlanCount);
  def(env, exports, "gemmLtSupported", GemmLtSupported);
  initGemmFallback(env, exports);
  initGemmGrouped(env, exports);
  initGemmGroupedFp8Wgrad(env, exports);
  initGemmScaled(env, exports);
  initGemmMx8(env, exports);
}

}  // namespace dw

// FP8 GEMM through cuBLASLt (Hopper's FP8 tensor cores; also sm_89 and Blackwell for the tensor
// and row modes).
//
//   scaledGemmLt(stream, M, N, K, aFormat, bFormat, aScaling, bScaling, outDtype, fastAccum,
//                a, aScale, b, bScale, d, epilogue, bias?, workspace)
//     D[M, N] = (a·sa)[M, K] · (b·sb)[N, K]ᵀ, accumulated in FP32, written as outDtype (bf16, f16 or
//     f32). a and b are FP8 codes (codes.fp8: e4m3, e5m2; not both e5m2), row-major with K
//     contiguous: a Linear's activations [M, K] and its weight [N, K] as stored. The backward's
//     GEMMs take the columnwise (transposed) copies the quantizer writes, so every GEMM of a
//     step is this one form, the only one cuBLASLt's FP8 kernels take ("TN").
//   scaledGemmLtSupported(M, N, K, ..., epilogue, workspaceBytes) -> "" when cuBLASLt has an
//     algorithm for it on the current device (256-byte aligned operands), else why not.
//
// Scales (f32, device memory; they multiply: sa·sb·Σ a·b, the quantizer's dequantization scales),
// for an operand of R rows (M for a, N for b) and L = K / 128:
//   tensor        f32[1]
//   row           f32[R]                       (cuBLASLt OUTER_VEC_32F)
//   block1x128    f32[L, R], R contiguous      (VEC128_32F: one per 1 × 128 block of a row)
//   block128x128  f32[ceil(R/128), L4], L4 = L rounded up to a multiple of 4, K-blocks contiguous
//                 (BLK128x128_32F; the padding is not read)
// Pairs (a, b): (tensor, tensor), (row, row), (block1x128, block1x128), (block1x128, block128x128),
// (block128x128, block1x128): what cuBLASLt offers on sm_90. fastAccum (no periodic promotion of
// the tensor cores' partial sums to FP32) only with tensor and row scaling. Epilogue: none or bias
// (bias of outDtype, [N]; not with f32 output). Sizes: K % 16 == 0 (K % 128 with block scaling),
// N such that a row of D is a multiple of 16 bytes, M % 4 == 0 with block scaling.
//
// cuBLASLt is column-major: we ask for Dᵀ[N, M] = b · aᵀ, so its A is our b (op T) and its B is
// our a (op N), m = N, n = M; its A scale is sb, its B scale sa. Plans (descriptors and the
// heuristic's algorithm) are cached per (device, shape, formats, scalings, output, epilogue,
// alignments, workspace) as gemm.cpp's are; the scale, bias and workspace pointers are set per call.
#include "common/abi/gemm.gen.h"
#include "common/dtype.h"
#include "gemm/lt.h"

#include <string>

namespace dw {
namespace {

using lt::check;

struct ScaledShape {
  uint64_t M, N, K;
  int aFormat, bFormat, aScaling, bScaling, outDtype, epilogue;
  bool fastAccum;
};

using ScaledPlan = lt::Plan;

lt::PlanCache* plans = new lt::PlanCache();

const char* scalingName(int s) {
  return s == abi::scaling::tensor ? "tensor" : s == abi::scaling::row ? "row" : s == abi::scaling::block1x128 ? "block1x128" : "block128x128";
}
bool isBlock(int s) { return s == abi::scaling::block1x128 || s == abi::scaling::block128x128; }

// The checks both entry points make, with messages that name the argument.
void checkShape(Napi::Env env, const ScaledShape& g) {
  const char* fn = "scaledGemmLt";
  auto bad = [&](const std::string& what) { fail(env, "INVALID_ARGUMENT", std::string("Expected ") + what + " for " + fn); };
  if (g.M == 0 || g.N == 0 || g.K == 0) bad("M, N and K >= 1 but received " + std::to_string(g.M) + ", " + std::to_string(g.N) + ", " + std::to_string(g.K));
  if (g.M > (1ull << 31) || g.N > (1ull << 31) || g.K > (1ull << 31)) bad("M, N and K below 2^31");
  if (g.aFormat == abi::fp8::e5m2 && g.bFormat == abi::fp8::e5m2) bad("at most one e5m2 operand (cuBLASLt has no e5m2 x e5m2 GEMM)");
  if (g.outDtype != kBF16 && g.outDtype != kF16 && g.outDtype != kF32) bad("an output dtype of bf16, f16 or f32");
  const bool pairOk = (g.aScaling == abi::scaling::tensor && g.bScaling == abi::scaling::tensor) ||
                      (g.aScaling == abi::scaling::row && g.bScaling == abi::scaling::row) ||
                      (isBlock(g.aScaling) && isBlock(g.bScaling) && !(g.aScaling == abi::scaling::block128x128 && g.bScaling == abi::scaling::block128x128));
  if (!pairOk)
    bad(std::string("scalings (tensor, tensor), (row, row) or block1x128 / block128x128 with at least one block1x128 but received (") + scalingName(g.aScaling) +
        ", " + scalingName(g.bScaling) + ")");
  if (g.fastAccum && isBlock(g.aScaling)) bad("fastAccum 0 with block scaling");
  if (g.K % 16 != 0) bad("K divisible by 16 (16-byte rows of FP8 codes) but received " + std::to_string(g.K));
  if (isBlock(g.aScaling) && g.K % 128 != 0) bad("K divisible by 128 with block scaling but received " + std::to_string(g.K));
  if (isBlock(g.aScaling) && (g.M % 4 != 0 || g.N % 4 != 0)) bad("M and N divisible by 4 with block scaling but received " + std::to_string(g.M) + " and " + std::to_string(g.N));
  if ((g.N * dtypeBytes(g.outDtype)) % 16 != 0) bad("rows of D of a multiple of 16 bytes (N = " + std::to_string(g.N) + ")");
  if (g.epilogue != abi::epilogue::none && g.epilogue != abi::epilogue::bias) bad("epilogue none or bias");
  if (g.epilogue == abi::epilogue::bias && g.outDtype == kF32) bad("no bias epilogue with f32 output");
}

// Elements of an operand's scales (rows R of the operand, K).
uint64_t scaleElems(int scaling, uint64_t R, uint64_t K) {
  const uint64_t L = (K + 127) / 128;
  if (scaling == abi::scaling::tensor) return 1;
  if (scaling == abi::scaling::row) return R;
  if (scaling == abi::scaling::block1x128) return L * R;
  return (R + 127) / 128 * ((L + 3) / 4 * 4);
}

int scaleMode(int scaling) {
  return scaling == abi::scaling::tensor       ? DW_CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F
         : scaling == abi::scaling::row        ? DW_CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
         : scaling == abi::scaling::block1x128 ? DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                               : DW_CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
}
int fp8Type(int f) { return f == abi::fp8::e5m2 ? DW_CUDA_R_8F_E5M2 : DW_CUDA_R_8F_E4M3; }
int outType(int dtype) { return dtype == kBF16 ? DW_CUDA_R_16BF : dtype == kF16 ? DW_CUDA_R_16F : DW_CUDA_R_32F; }

ScaledPlan* planFor(Napi::Env env, lt::Fns& l, dw_cublasLtHandle_t handle, int device, const ScaledShape& g, const uint32_t al[4], uint64_t maxWorkspace,
                    std::string* why) {
  const std::string key = std::to_string(device) + "/" + std::to_string(g.M) + "x" + std::to_string(g.N) + "x" + std::to_string(g.K) + "/" +
                          std::to_string(g.aFormat) + std::to_string(g.bFormat) + "/" + std::to_string(g.aScaling) + std::to_string(g.bScaling) + "/" +
                          std::to_string(g.outDtype) + "/" + std::to_string(g.fastAccum) + "/" + std::to_string(g.epilogue) + "/" + std::to_string(al[0]) + "," +
                          std::to_string(al[1]) + "," + std::to_string(al[2]) + "," + std::to_string(al[3]) + "/ws" + std::to_string(maxWorkspace);
  if (ScaledPlan* hit = plans->find(key, why)) return hit;
  if (!why->empty()) return nullptr;
  ScaledPlan p{};
  check(env, l.descCreate(&p.desc, DW_CUBLAS_COMPUTE_32F, DW_CUDA_R_32F), "cublasLtMatmulDescCreate");
  const int opA = DW_CUBLAS_OP_T, opB = DW_CUBLAS_OP_N;  // cuBLASLt's A is our b ([N, K] row-major), its B our a
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "set TRANSA");
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "set TRANSB");
  const int modeA = scaleMode(g.bScaling), modeB = scaleMode(g.aScaling);
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &modeA, sizeof modeA), "set A_SCALE_MODE");
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &modeB, sizeof modeB), "set B_SCALE_MODE");
  // Vector and block scale modes need scale pointers set when the heuristic is asked (it answers
  // INVALID_VALUE without); it does not read them, and each call sets the real ones.
  void* placeholder = reinterpret_cast<void*>(uintptr_t{256});
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &placeholder, sizeof placeholder), "set A_SCALE_POINTER");
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &placeholder, sizeof placeholder), "set B_SCALE_POINTER");
  const int8_t fast = g.fastAccum ? 1 : 0;
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast), "set FAST_ACCUM");
  const int epilogue = g.epilogue == abi::epilogue::bias ? DW_CUBLASLT_EPILOGUE_BIAS : DW_CUBLASLT_EPILOGUE_DEFAULT;
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "set EPILOGUE");
  const int dtype = outType(g.outDtype);
  if (g.epilogue == abi::epilogue::bias) check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dtype, sizeof dtype), "set BIAS_DATA_TYPE");
  // Column-major views: our b [N, K] row-major is K x N with ld K; our a [M, K] is K x M; D is N x M.
  check(env, l.layoutCreate(&p.a, fp8Type(g.bFormat), g.K, g.N, static_cast<int64_t>(g.K)), "layout A");
  check(env, l.layoutCreate(&p.b, fp8Type(g.aFormat), g.K, g.M, static_cast<int64_t>(g.K)), "layout B");
  check(env, l.layoutCreate(&p.d, dtype, g.N, g.M, static_cast<int64_t>(g.N)), "layout D");
  return plans->settle(env, l, handle, p, maxWorkspace, al, key, "FP8 algorithm", why);
}

template <typename A>
ScaledShape shapeOf(Napi::Env env, const A& a) {
  ScaledShape g{a.M, a.N, a.K, a.aFormat, a.bFormat, a.aScaling, a.bScaling, a.outDtype, a.epilogue, a.fastAccum != 0};
  checkShape(env, g);
  return g;
}

Napi::Value ScaledGemmLt(const Napi::CallbackInfo& info) {
  const abi::ScaledGemmLtArgs a = abi::readScaledGemmLt(info);
  Napi::Env env = info.Env();
  const ScaledShape g = shapeOf(env, a);
  void* A = a.a.ptr<uint8_t>(env, g.M * g.K);
  void* B = a.b.ptr<uint8_t>(env, g.N * g.K);
  void* D = a.d.ptr<uint8_t>(env, g.M * g.N * dtypeBytes(g.outDtype));
  void* sa = a.aScale.ptr<float>(env, scaleElems(g.aScaling, g.M, g.K));
  void* sb = a.bScale.ptr<float>(env, scaleElems(g.bScaling, g.N, g.K));
  void* bias = g.epilogue == abi::epilogue::bias ? a.bias.ptr<uint8_t>(env, g.N * dtypeBytes(g.outDtype)) : nullptr;
  if (reinterpret_cast<uintptr_t>(sa) % 16 != 0 || reinterpret_cast<uintptr_t>(sb) % 16 != 0)
    fail(env, "INVALID_ARGUMENT", "Expected 16-byte aligned scales for scaledGemmLt");
  if (reinterpret_cast<uintptr_t>(A) % 16 != 0 || reinterpret_cast<uintptr_t>(B) % 16 != 0 || reinterpret_cast<uintptr_t>(D) % 16 != 0)
    fail(env, "INVALID_ARGUMENT", "Expected 16-byte aligned a, b and d for scaledGemmLt");

  std::lock_guard<std::mutex> lock(lt::mutex());
  lt::Fns& l = lt::load(env);
  int device = 0;
  dw_cublasLtHandle_t handle = lt::handle(env, l, &device);
  const uint32_t al[4] = {lt::alignmentOf(B), lt::alignmentOf(A), lt::alignmentOf(D), lt::alignmentOf(D)};
  std::string why;
  ScaledPlan* p = planFor(env, l, handle, device, g, al, a.workspace.bytes, &why);
  if (!p) fail(env, "INVALID_ARGUMENT", why);
  void* workspace = a.workspace.take<void>(env, p->workspace, 256);
  check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sb, sizeof sb), "set A_SCALE_POINTER");
  check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sa, sizeof sa), "set B_SCALE_POINTER");
  if (bias) check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "set BIAS_POINTER");
  const float alpha = 1.0f, beta = 0.0f;
  check(env, l.matmul(handle, p->desc, &alpha, B, p->a, A, p->b, &beta, D, p->d, D, p->d, &p->algo, workspace, a.workspace.bytes, a.stream), "cublasLtMatmul (FP8)");
  return env.Undefined();
}

Napi::Value ScaledGemmLtSupported(const Napi::CallbackInfo& info) {
  const abi::ScaledGemmLtSupportedArgs a = abi::readScaledGemmLtSupported(info);
  Napi::Env env = info.Env();
  const ScaledShape g = shapeOf(env, a);
  std::lock_guard<std::mutex> lock(lt::mutex());
  lt::Fns& l = lt::load(env);
  int device = 0;
  dw_cublasLtHandle_t handle = lt::handle(env, l, &device);
  const uint32_t al[4] = {256, 256, 256, 256};
  std::string why;
  return Napi::String::New(env, planFor(env, l, handle, device, g, al, a.workspaceBytes, &why) ? "" : why);
}

}  // namespace

void initGemmScaled(Napi::Env env, Napi::Object exports) {
  def(env, exports, "scaledGemmLt", ScaledGemmLt);
  def(env, exports, "scaledGemmLtSupported", ScaledGemmLtSupported);
}

}  // namespace dw

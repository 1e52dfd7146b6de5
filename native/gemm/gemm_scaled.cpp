// FP8 GEMM through cuBLASLt (Hopper's FP8 tensor cores; also sm_89 and Blackwell for the tensor
// and row modes), and Blackwell's block-scaled MXFP8 / NVFP4 GEMMs.
//
//   scaledGemmLt(stream, M, N, K, aFormat, bFormat, aScaling, bScaling, outDtype, fastAccum,
//                a, aScale, b, bScale, d, epilogue, bias?, aGlobal?, bGlobal?, workspace)
//     D[M, N] = (a·sa)[M, K] · (b·sb)[N, K]ᵀ, accumulated in FP32, written as outDtype (bf16, f16 or
//     f32). a and b are codes (codes.fp8: e4m3, e5m2, and e2m1 for NVFP4; not both e5m2), row-major
//     with K contiguous: a Linear's activations [M, K] and its weight [N, K] as stored. The
//     backward's GEMMs take the columnwise (transposed) copies the quantizer writes, so every GEMM
//     of a step is this one form, the only one cuBLASLt's FP8 kernels take ("TN").
//   scaledGemmLtSupported(M, N, K, ..., epilogue, workspaceBytes) -> "" when cuBLASLt has an
//     algorithm for it on the current device (256-byte aligned operands), else why not.
//
// Scales (device memory; they multiply: sa·sb·Σ a·b, the quantizer's dequantization scales), for
// an operand of R rows (M for a, N for b) and L = K / 128:
//   tensor        f32[1]
//   row           f32[R]                       (cuBLASLt OUTER_VEC_32F)
//   block1x128    f32[L, R], R contiguous      (VEC128_32F: one per 1 × 128 block of a row)
//   block128x128  f32[ceil(R/128), L4], L4 = L rounded up to a multiple of 4, K-blocks contiguous
//                 (BLK128x128_32F; the padding is not read)
//   mx32          E8M0 codes, one per 32 of K (VEC32_UE8M0): MXFP8, e4m3 or e5m2 elements
//   nv16          E4M3 codes, one per 16 of K, read unsigned (VEC16_UE4M3): NVFP4, e2m1 elements
//                 packed two per byte (element 2i in the low nibble), a row K / 2 bytes
// mx32 and nv16 scales are in cuBLASLt's 128 × 4 tiled layout, as the quantizer writes them with
// its GEMM-layout flag: ceil(R / 128) · ceil(K / block / 4) tiles of 512 bytes, row r and K-block c
// of a tile at (r mod 32) · 16 + floor(r / 32) · 4 + (c mod 4), padding unread.
// NVFP4 also has an FP32 scale per tensor, g (value = e2m1 · s · g): aGlobal and bGlobal, f32[1]
// each, given with nv16 and only then. cuBLASLt's VEC16_UE4M3 mode has no place for them (the A/B
// scale pointers hold the block scales), and its NVFP4 recipe puts the tensor scale in alpha
// (D = alpha · Σ …; NVIDIA's LtNvfp4Matmul sample, and PyTorch's and Transformer Engine's NVFP4
// GEMMs), so: alpha = f32(ga · gb), computed on the device by a one-thread kernel
// (gemm/nvfp4_alpha.cu) into the first 256 bytes of the call's workspace, beta = 0 beside it, and
// pointer mode DEVICE. The scales stay on the device (a quantize in the same step writes them; no
// host read, and a CUDA graph captures the pair). cuBLASLt gets the rest of the workspace.
// Pairs (a, b): (tensor, tensor), (row, row), (block1x128, block1x128), (block1x128, block128x128),
// (block128x128, block1x128): what cuBLASLt offers on sm_90; (mx32, mx32), (nv16, nv16): what it
// offers from sm_100 on. fastAccum (no periodic promotion of the tensor cores' partial sums to FP32)
// only with tensor and row scaling. Epilogue: none or bias (bias of outDtype, [N]; not with f32
// output). Sizes: K % 16 == 0 (K % 128 with block scaling, K % 32 with mx32 / nv16: whole scale
// blocks and 16-byte rows of FP4 codes), N such that a row of D is a multiple of 16 bytes,
// M % 4 == 0 with block scaling.
//
// mx32 and nv16 need compute capability 10.0 or newer (Blackwell's block-scaled tensor cores): on
// an older GPU both entry points answer why without asking cuBLASLt (scaledGemmLt fails with it).
// No Blackwell GPU is available to the project: this path is compiled, never run; its refusals
// below compute capability 10 have GPU tests (precision's scaled_matmul_gpu.test.ts).
//
// cuBLASLt is column-major: we ask for Dᵀ[N, M] = b · aᵀ, so its A is our b (op T) and its B is
// our a (op N), m = N, n = M; its A scale is sb, its B scale sa. Plans (descriptors and the
// heuristic's algorithm) are cached per (device, shape, formats, scalings, output, epilogue,
// alignments, workspace) as gemm.cpp's are; the scale, bias and workspace pointers are set per call.
#include "common/abi/gemm.gen.h"
#include "common/device_info.h"
#include "common/dtype.h"
#include "gemm/lt.h"

#include <string>

namespace dw {

// gemm/nvfp4_alpha.cu: alphaBeta[0] = f32(ga · gb), alphaBeta[4] = 0, on stream s.
void launchNvfp4Alpha(Napi::Env env, cudaStream_t s, const float* ga, const float* gb, float* alphaBeta);

namespace {

using lt::check;

// With nv16, the workspace's first bytes hold alpha and beta (see the header); cuBLASLt gets the rest.
constexpr uint64_t kAlphaBytes = 256;

struct ScaledShape {
  uint64_t M, N, K;
  int aFormat, bFormat, aScaling, bScaling, outDtype, epilogue;
  bool fastAccum;
};

using ScaledPlan = lt::Plan;

lt::PlanCache* plans = new lt::PlanCache();

const char* scalingName(int s) {
  static const char* names[] = {"tensor", "row", "block1x128", "block128x128", "mx32", "nv16"};
  return s >= 0 && s < abi::scaling::kCount ? names[s] : "?";
}
const char* formatName(int f) { return f == abi::fp8::e4m3 ? "e4m3" : f == abi::fp8::e5m2 ? "e5m2" : "e2m1"; }
bool isBlock(int s) { return s == abi::scaling::block1x128 || s == abi::scaling::block128x128; }
// Blackwell's block-scaled modes: a scale code per 32 (MXFP8) or 16 (NVFP4) of K, in 128 × 4 tiles.
bool isVec(int s) { return s == abi::scaling::mx32 || s == abi::scaling::nv16; }
uint64_t vecBlock(int s) { return s == abi::scaling::mx32 ? 32 : 16; }

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
                      (isBlock(g.aScaling) && isBlock(g.bScaling) && !(g.aScaling == abi::scaling::block128x128 && g.bScaling == abi::scaling::block128x128)) ||
                      (isVec(g.aScaling) && g.bScaling == g.aScaling);
  if (!pairOk)
    bad(std::string("scalings (tensor, tensor), (row, row), block1x128 / block128x128 with at least one block1x128, (mx32, mx32) or (nv16, nv16) but received (") +
        scalingName(g.aScaling) + ", " + scalingName(g.bScaling) + ")");
  const bool nv = g.aScaling == abi::scaling::nv16;
  const bool fp4 = g.aFormat == abi::fp8::e2m1 || g.bFormat == abi::fp8::e2m1;
  if (nv && !(g.aFormat == abi::fp8::e2m1 && g.bFormat == abi::fp8::e2m1))
    bad(std::string("e2m1 operands (NVFP4) with nv16 scaling but received (") + formatName(g.aFormat) + ", " + formatName(g.bFormat) + ")");
  if (!nv && fp4)
    bad(std::string("e2m1 operands only with nv16 scaling (NVFP4) but received (") + formatName(g.aFormat) + ", " + formatName(g.bFormat) + ") with (" +
        scalingName(g.aScaling) + ", " + scalingName(g.bScaling) + ")");
  if (g.fastAccum && (isBlock(g.aScaling) || isVec(g.aScaling))) bad("fastAccum 0 with block scaling");
  if (!isVec(g.aScaling) && g.K % 16 != 0) bad("K divisible by 16 (16-byte rows of FP8 codes) but received " + std::to_string(g.K));
  if (isBlock(g.aScaling) && g.K % 128 != 0) bad("K divisible by 128 with block scaling but received " + std::to_string(g.K));
  if (isVec(g.aScaling) && g.K % 32 != 0)
    bad(std::string("K divisible by 32 with ") + scalingName(g.aScaling) + " scaling (whole scale blocks; 16-byte rows of FP4 codes) but received " + std::to_string(g.K));
  if (isBlock(g.aScaling) && (g.M % 4 != 0 || g.N % 4 != 0)) bad("M and N divisible by 4 with block scaling but received " + std::to_string(g.M) + " and " + std::to_string(g.N));
  if ((g.N * dtypeBytes(g.outDtype)) % 16 != 0) bad("rows of D of a multiple of 16 bytes (N = " + std::to_string(g.N) + ")");
  if (g.epilogue != abi::epilogue::none && g.epilogue != abi::epilogue::bias) bad("epilogue none or bias");
  if (g.epilogue == abi::epilogue::bias && g.outDtype == kF32) bad("no bias epilogue with f32 output");
}

// Elements of an operand's scales (rows R of the operand, K): f32 values, or (mx32, nv16) bytes of
// 128 × 4 tiles of codes.
uint64_t scaleElems(int scaling, uint64_t R, uint64_t K) {
  if (isVec(scaling)) return (R + 127) / 128 * ((K / vecBlock(scaling) + 3) / 4) * 512;
  const uint64_t L = (K + 127) / 128;
  if (scaling == abi::scaling::tensor) return 1;
  if (scaling == abi::scaling::row) return R;
  if (scaling == abi::scaling::block1x128) return L * R;
  return (R + 127) / 128 * ((L + 3) / 4 * 4);
}

// Bytes of an operand's codes: one per element, or two elements per byte (e2m1).
uint64_t operandBytes(int format, uint64_t R, uint64_t K) { return format == abi::fp8::e2m1 ? R * K / 2 : R * K; }

int scaleMode(int scaling) {
  switch (scaling) {
    case abi::scaling::tensor: return DW_CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
    case abi::scaling::row: return DW_CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    case abi::scaling::block1x128: return DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    case abi::scaling::block128x128: return DW_CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    case abi::scaling::mx32: return DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
    default: return DW_CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3;
  }
}
int fp8Type(int f) { return f == abi::fp8::e5m2 ? DW_CUDA_R_8F_E5M2 : f == abi::fp8::e2m1 ? DW_CUDA_R_4F_E2M1 : DW_CUDA_R_8F_E4M3; }
int outType(int dtype) { return dtype == kBF16 ? DW_CUDA_R_16BF : dtype == kF16 ? DW_CUDA_R_16F : DW_CUDA_R_32F; }

// Empty when the current device has tensor cores for the call's scaling, else why not. Asked before
// cuBLASLt is: on Hopper its heuristic would only answer "no algorithm".
std::string archReason(Napi::Env env, const ScaledShape& g) {
  if (!isVec(g.aScaling)) return "";
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  const int cc = computeCapability(dev);
  if (cc >= 100) return "";
  return std::string("block-scaled MXFP8/NVFP4 GEMMs (") + scalingName(g.aScaling) + " scaling) need compute capability 10.0 or newer (Blackwell); " +
         (cc > 0 ? "this GPU is " + std::to_string(cc / 10) + "." + std::to_string(cc % 10) : std::string("this GPU's could not be read"));
}

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
  if (!isVec(g.aScaling)) {  // Blackwell's block-scaled MMAs have no unpromoted mode to choose
    const int8_t fast = g.fastAccum ? 1 : 0;
    check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast), "set FAST_ACCUM");
  }
  if (g.aScaling == abi::scaling::nv16) {  // alpha = ga · gb and beta = 0 come from the device (see the header)
    const int32_t mode = DW_CUBLASLT_POINTER_MODE_DEVICE;
    check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof mode), "set POINTER_MODE");
  }
  const int epilogue = g.epilogue == abi::epilogue::bias ? DW_CUBLASLT_EPILOGUE_BIAS : DW_CUBLASLT_EPILOGUE_DEFAULT;
  check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "set EPILOGUE");
  const int dtype = outType(g.outDtype);
  if (g.epilogue == abi::epilogue::bias) check(env, l.descSet(p.desc, DW_CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dtype, sizeof dtype), "set BIAS_DATA_TYPE");
  // Column-major views: our b [N, K] row-major is K x N with ld K; our a [M, K] is K x M; D is N x M.
  // Leading dimensions count elements, FP4 ones too (two per byte), as NVIDIA's NVFP4 sample does.
  check(env, l.layoutCreate(&p.a, fp8Type(g.bFormat), g.K, g.N, static_cast<int64_t>(g.K)), "layout A");
  check(env, l.layoutCreate(&p.b, fp8Type(g.aFormat), g.K, g.M, static_cast<int64_t>(g.K)), "layout B");
  check(env, l.layoutCreate(&p.d, dtype, g.N, g.M, static_cast<int64_t>(g.N)), "layout D");
  return plans->settle(env, l, handle, p, maxWorkspace, al, key, isVec(g.aScaling) ? "block-scaled (MXFP8 / NVFP4) algorithm" : "FP8 algorithm", why);
}

template <typename A>
ScaledShape shapeOf(Napi::Env env, const A& a) {
  ScaledShape g{a.M, a.N, a.K, a.aFormat, a.bFormat, a.aScaling, a.bScaling, a.outDtype, a.epilogue, a.fastAccum != 0};
  checkShape(env, g);
  return g;
}

// An operand's scales: f32 values, or (mx32, nv16) the bytes of their tiles.
void* scalesOf(Napi::Env env, const abi::TensorArg& t, int scaling, uint64_t R, uint64_t K) {
  const uint64_t n = scaleElems(scaling, R, K);
  return isVec(scaling) ? static_cast<void*>(t.ptr<uint8_t>(env, n)) : static_cast<void*>(t.ptr<float>(env, n));
}

Napi::Value ScaledGemmLt(const Napi::CallbackInfo& info) {
  const abi::ScaledGemmLtArgs a = abi::readScaledGemmLt(info);
  Napi::Env env = info.Env();
  const ScaledShape g = shapeOf(env, a);
  const bool nv = g.aScaling == abi::scaling::nv16;
  void* A = a.a.ptr<uint8_t>(env, operandBytes(g.aFormat, g.M, g.K));
  void* B = a.b.ptr<uint8_t>(env, operandBytes(g.bFormat, g.N, g.K));
  void* D = a.d.ptr<uint8_t>(env, g.M * g.N * dtypeBytes(g.outDtype));
  void* sa = scalesOf(env, a.aScale, g.aScaling, g.M, g.K);
  void* sb = scalesOf(env, a.bScale, g.bScaling, g.N, g.K);
  void* bias = g.epilogue == abi::epilogue::bias ? a.bias.ptr<uint8_t>(env, g.N * dtypeBytes(g.outDtype)) : nullptr;
  if (nv && (!a.aGlobal.present || !a.bGlobal.present))
    fail(env, "INVALID_ARGUMENT", "Expected aGlobal and bGlobal (NVFP4's f32 tensor scales, f32[1] each) with nv16 scaling for scaledGemmLt");
  if (!nv && (a.aGlobal.present || a.bGlobal.present))
    fail(env, "INVALID_ARGUMENT", std::string("Expected no aGlobal or bGlobal (NVFP4's tensor scales) with ") + scalingName(g.aScaling) + " scaling for scaledGemmLt");
  const float* ga = nv ? a.aGlobal.ptr<float>(env, 1) : nullptr;
  const float* gb = nv ? a.bGlobal.ptr<float>(env, 1) : nullptr;
  if (reinterpret_cast<uintptr_t>(sa) % 16 != 0 || reinterpret_cast<uintptr_t>(sb) % 16 != 0)
    fail(env, "INVALID_ARGUMENT", "Expected 16-byte aligned scales for scaledGemmLt");
  if (reinterpret_cast<uintptr_t>(A) % 16 != 0 || reinterpret_cast<uintptr_t>(B) % 16 != 0 || reinterpret_cast<uintptr_t>(D) % 16 != 0)
    fail(env, "INVALID_ARGUMENT", "Expected 16-byte aligned a, b and d for scaledGemmLt");
  const std::string arch = archReason(env, g);
  if (!arch.empty()) fail(env, "INVALID_ARGUMENT", arch);
  const uint64_t reserve = nv ? kAlphaBytes : 0;
  if (a.workspace.bytes < reserve)
    fail(env, "INVALID_ARGUMENT", "Expected a workspace of at least 256 bytes with nv16 scaling for scaledGemmLt (alpha and beta live in its first 256) but received " +
                                      std::to_string(a.workspace.bytes));

  std::lock_guard<std::mutex> lock(lt::mutex());
  lt::Fns& l = lt::load(env);
  int device = 0;
  dw_cublasLtHandle_t handle = lt::handle(env, l, &device);
  const uint32_t al[4] = {lt::alignmentOf(B), lt::alignmentOf(A), lt::alignmentOf(D), lt::alignmentOf(D)};
  std::string why;
  ScaledPlan* p = planFor(env, l, handle, device, g, al, a.workspace.bytes - reserve, &why);
  if (!p) fail(env, "INVALID_ARGUMENT", why);
  uint8_t* ws = a.workspace.take<uint8_t>(env, reserve + p->workspace, 256);
  void* ltWorkspace = ws && a.workspace.bytes > reserve ? ws + reserve : nullptr;
  check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sb, sizeof sb), "set A_SCALE_POINTER");
  check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sa, sizeof sa), "set B_SCALE_POINTER");
  if (bias) check(env, l.descSet(p->desc, DW_CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "set BIAS_POINTER");
  const float hostAlphaBeta[2] = {1.0f, 0.0f};
  const float* alpha = &hostAlphaBeta[0];
  const float* beta = &hostAlphaBeta[1];
  if (nv) {  // pointer mode DEVICE: alpha = ga · gb and beta = 0 in the workspace, written on this stream first
    float* dev = reinterpret_cast<float*>(ws);
    launchNvfp4Alpha(env, a.stream, ga, gb, dev);
    alpha = dev;
    beta = dev + 4;
  }
  check(env, l.matmul(handle, p->desc, alpha, B, p->a, A, p->b, beta, D, p->d, D, p->d, &p->algo, ltWorkspace, a.workspace.bytes - reserve, a.stream),
        isVec(g.aScaling) ? "cublasLtMatmul (MXFP8 / NVFP4)" : "cublasLtMatmul (FP8)");
  return env.Undefined();
}

Napi::Value ScaledGemmLtSupported(const Napi::CallbackInfo& info) {
  const abi::ScaledGemmLtSupportedArgs a = abi::readScaledGemmLtSupported(info);
  Napi::Env env = info.Env();
  const ScaledShape g = shapeOf(env, a);
  const std::string arch = archReason(env, g);
  if (!arch.empty()) return Napi::String::New(env, arch);
  const uint64_t reserve = g.aScaling == abi::scaling::nv16 ? kAlphaBytes : 0;
  if (a.workspaceBytes < reserve) return Napi::String::New(env, "takes a workspace of at least 256 bytes with nv16 scaling (alpha and beta live in its first 256)");
  std::lock_guard<std::mutex> lock(lt::mutex());
  lt::Fns& l = lt::load(env);
  int device = 0;
  dw_cublasLtHandle_t handle = lt::handle(env, l, &device);
  const uint32_t al[4] = {256, 256, 256, 256};
  std::string why;
  return Napi::String::New(env, planFor(env, l, handle, device, g, al, a.workspaceBytes - reserve, &why) ? "" : why);
}

}  // namespace

void initGemmScaled(Napi::Env env, Napi::Object exports) {
  def(env, exports, "scaledGemmLt", ScaledGemmLt);
  def(env, exports, "scaledGemmLtSupported", ScaledGemmLtSupported);
}

}  // namespace dw

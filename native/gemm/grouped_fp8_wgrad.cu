// The FP8 blockwise weight gradient of dropless MoE's expert GEMMs (the ABI table's
// groupedScaledGemmWgrad; precision's grouped_scaled_matmul_wgrad):
//
//   groupedScaledGemmWgrad(stream, K, N, P, E, aFormat, bFormat, outDtype, a, aScale, b, bScale, offsets, dw)
//       dw[e, k, n] = Σ_pb sa[pb, k] · sb[pb, n] · Σ_{p in block pb} a[k, p] · b[n, p] over expert e's
//       padded 128-token blocks pb in [q_e, q_{e+1}), q_e = Σ_{e' < e} ceil(rows_e' / 128);
//       a [K, P], b [N, P] FP8 codes (quant/quantize_kgrouped.cu writes them), sa f32 [P / 128, K],
//       sb f32 [P / 128, N], offsets i32 [E + 1] (0 first, never decreasing; the rows R = offsets[E]
//       are not passed: their padded total 128 · q_E must fit in P); dw [E, K, N] bf16 or f32, zeros
//       for an expert with no rows.
//
// On a device of compute capability 9.0 with K and N multiples of 64 the Hopper kernel
// (gemm/grouped_fp8_wgrad_sm90.cuh: TMA, FP8 wgmma, per-element promotion) runs it; elsewhere, and
// under DW_GROUPED_GENERAL=1, the general path: one 64 × 64 tile of dw[e] per block, per 128-token
// block the FP32 partial of the decoded codes, then acc += partial · (sa[k] · sb[n]), the Hopper
// kernel's promotion. Bad offsets, or offsets whose padded total does not fit in P, are recorded in
// the moe family's error word (op grouped_scaled_matmul_wgrad) and nothing is computed.
#include "common/abi/gemm.gen.h"
#include "common/device_info.h"
#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/smem_limit.h"
#include "gemm/grouped_fp8_wgrad_sm90.cuh"
#include "gemm/grouped_host.h"
#include "gemm/grouped_offsets.cuh"
#include "quant/formats.cuh"

#include <cub/block/block_reduce.cuh>

#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

namespace dw {
namespace {

constexpr int kTile = 64, kStep = 16, kThreads = 256;

// The general path: block (n tile, k tile, e). Each block sums the padded block counts of the
// experts before e (a block-wide reduction) to find q_e.
template <typename OutT>
__global__ void __launch_bounds__(kThreads) groupedFp8WgradK(const uint8_t* a, const float* aScale, const uint8_t* b, const float* bScale, const int* offsets, OutT* dw, int fa,
                                                           int fb, int K, int N, int E, long long P, ErrWord* err) {
  __shared__ float as[kStep][kTile + 1];
  __shared__ float bs[kStep][kTile + 1];
  __shared__ int sums[2];
  if (!offsetsValid(offsets, E, -1, err, kOpGroupedScaledMatmulWgrad)) return;
  const int e = static_cast<int>(blockIdx.z);
  const int k0 = static_cast<int>(blockIdx.y) * kTile, n0 = static_cast<int>(blockIdx.x) * kTile;
  // q_e (the blocks before expert e) and q_E (all of them), by block-wide sums.
  int before = 0, all = 0;
  for (int i = threadIdx.x; i < E; i += kThreads) {
    const int blocks = (offsets[i + 1] - offsets[i] + 127) / 128;
    all += blocks;
    if (i < e) before += blocks;
  }
  using Reduce = cub::BlockReduce<int, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int sBefore = Reduce(tmp).Sum(before);
  __syncthreads();
  const int sAll = Reduce(tmp).Sum(all);
  if (threadIdx.x == 0) sums[0] = sBefore, sums[1] = sAll;
  __syncthreads();
  if (!grouped90::paddedFits(sums[1], static_cast<int>(P), err)) return;
  const int q0 = sums[0], blocks = (offsets[e + 1] - offsets[e] + 127) / 128;
  const auto dec = [](uint32_t code, int f) { return f == 0 ? quant::decE4M3(code) : quant::decE5M2(code); };
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // dw rows k0 + ty + 16i, columns n0 + tx + 16j
  float acc[4][4] = {};
  for (int pb = q0; pb < q0 + blocks; ++pb) {
    float part[4][4] = {};
    for (long long p0 = static_cast<long long>(pb) * 128; p0 < (pb + 1) * 128LL; p0 += kStep) {
      for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
        const int pp = i % kStep, r = i / kStep;  // position p0 + pp of row k0 + r (a) and n0 + r (b)
        as[pp][r] = k0 + r < K ? dec(a[static_cast<long long>(k0 + r) * P + p0 + pp], fa) : 0.f;
        bs[pp][r] = n0 + r < N ? dec(b[static_cast<long long>(n0 + r) * P + p0 + pp], fb) : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int pp = 0; pp < kStep; ++pp)
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) part[i][j] = fmaf(as[pp][ty + 16 * i], bs[pp][tx + 16 * j], part[i][j]);
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float sa = aScale[static_cast<long long>(pb) * K + min(k0 + ty + 16 * i, K - 1)];
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(part[i][j], sa * bScale[static_cast<long long>(pb) * N + min(n0 + tx + 16 * j, N - 1)], acc[i][j]);
    }
  }
  OutT* out = dw + static_cast<long long>(e) * K * N;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int k = k0 + ty + 16 * i;
    if (k >= K) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n < N) out[static_cast<long long>(k) * N + n] = fromF<OutT>(acc[i][j]);
    }
  }
}

using grouped::generalOnly;

// Which scale path the Hopper kernel takes (grouped_fp8_wgrad_sm90.cuh, WgScales): kWgTma, or
// kWgStaged with DEEPWELL_FP8_WGRAD_SCALES=staged (read once).
int wgradScalePath() {
  static const int path = [] {
    const char* v = std::getenv("DEEPWELL_FP8_WGRAD_SCALES");
    return static_cast<int>(v != nullptr && std::strcmp(v, "staged") == 0 ? grouped90::kWgStaged : grouped90::kWgTma);
  }();
  return path;
}

// The Hopper kernel of one pair of formats, output and scale path: launched, or false when this
// build holds only its trapping stub (no sm_90a code).
template <int FA, int FB, typename OutT, int SC>
bool launchWgradKernel(Napi::Env env, cudaStream_t s, int dev, const CUtensorMap (&maps)[4], const grouped90::Fp8WgradArgs& args) {
  namespace g = grouped90;
  constexpr auto kernel = g::groupedFp8WgradSm90Kernel<FA, FB, OutT, SC>;
  if (!grouped::redistributes<kernel>(g::kThreads, g::kProducerRegs, g::kConsumerRegs)) return false;  // setmaxnreg 40 / 232 (or the stub)
  constexpr int kMaxSmem = g::wgradSmemBytes(SC, g::kMaxExperts);
  DW_CUDA(env, (setSmemLimitOnce<kernel, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedScaledGemmWgrad)");
  const long long tiles = static_cast<long long>(args.E) * ((args.K + g::kBM - 1) / g::kBM) * ((args.N + g::kBN - 1) / g::kBN);
  const unsigned grid = static_cast<unsigned>(std::min<long long>(tiles, smCount()));
  kernel<<<grid, g::kThreads, g::wgradSmemBytes(SC, args.E), s>>>(maps[0], maps[1], maps[2], maps[3], args);
  return true;
}

template <int FA, int FB, typename OutT>
bool launchWgradPath(Napi::Env env, cudaStream_t s, int dev, int sc, const CUtensorMap (&maps)[4], const grouped90::Fp8WgradArgs& args) {
  if (sc == grouped90::kWgStaged) return launchWgradKernel<FA, FB, OutT, grouped90::kWgStaged>(env, s, dev, maps, args);
  return launchWgradKernel<FA, FB, OutT, grouped90::kWgTma>(env, s, dev, maps, args);
}

template <typename OutT>
bool launchWgradSm90(Napi::Env env, cudaStream_t s, int fa, int fb, const uint8_t* a, const uint8_t* b, uint64_t P, const grouped90::Fp8WgradArgs& args) {
  namespace g = grouped90;
  int dev = 0;
  if (generalOnly() || cudaGetDevice(&dev) != cudaSuccess || !g::fp8WgradSupported(computeCapability(dev), args.K, args.N, P, args.E)) return false;
  if (reinterpret_cast<uintptr_t>(args.dw) % 8 != 0 || reinterpret_cast<uintptr_t>(args.sb) % 8 != 0) return false;
  const int sc = wgradScalePath();
  CUtensorMap maps[4];
  if (!g::makeFp8WgradMaps(maps, sc, a, b, args.sa, args.sb, args.K, args.N, static_cast<int>(P))) return false;
  constexpr int e4 = abi::fp8::e4m3;
  if (fa == e4 && fb == e4) return launchWgradPath<0, 0, OutT>(env, s, dev, sc, maps, args);
  if (fa == e4) return launchWgradPath<0, 1, OutT>(env, s, dev, sc, maps, args);
  return launchWgradPath<1, 0, OutT>(env, s, dev, sc, maps, args);  // both e5m2 refused before
}

Napi::Value GroupedScaledGemmWgrad(const Napi::CallbackInfo& info) {
  const abi::GroupedScaledGemmWgradArgs a = abi::readGroupedScaledGemmWgrad(info);
  Napi::Env env = info.Env();
  const uint64_t K = a.K, N = a.N, P = a.P, E = a.E;
  const int fa = static_cast<int>(a.aFormat), fb = static_cast<int>(a.bFormat);
  const auto fmt = [](int f) { return std::string(f == abi::fp8::e4m3 ? "e4m3" : f == abi::fp8::e5m2 ? "e5m2" : "e2m1"); };
  const std::string op = "groupedScaledGemmWgrad";
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one expert for " + op + " but received 0");
  if (K < 1 || N < 1) fail(env, "INVALID_ARGUMENT", "Expected K and N >= 1 for " + op + " but received " + std::to_string(K) + " and " + std::to_string(N));
  if (fa == abi::fp8::e2m1 || fb == abi::fp8::e2m1 || (fa == abi::fp8::e5m2 && fb == abi::fp8::e5m2))
    fail(env, "INVALID_ARGUMENT", "Expected FP8 operands, not both e5m2, for " + op + " but received " + fmt(fa) + " and " + fmt(fb));
  if (P % 128 != 0 || P < 128) fail(env, "INVALID_ARGUMENT", "Expected P a positive multiple of 128 for " + op + " but received " + std::to_string(P));
  if ((K + kTile - 1) / kTile > 65535 || (N + kTile - 1) / kTile > 65535)
    fail(env, "INVALID_ARGUMENT", "Expected K and N at most " + std::to_string(65535 * kTile) + " for " + op + " but received " + std::to_string(K) + " and " + std::to_string(N));
  if (a.outDtype != abi::dtype::bf16 && a.outDtype != abi::dtype::f32) fail(env, "INVALID_ARGUMENT", "Expected a bf16 or f32 output for " + op);
  const int* offsets = a.offsets.ptr<int>(env, E + 1);
  const uint8_t* ap = a.a.ptr<uint8_t>(env, mulSize(env, K, P, "groupedScaledGemmWgrad a"));
  const float* sa = a.aScale.ptr<float>(env, mulSize(env, P / 128, K, "groupedScaledGemmWgrad aScale"));
  const uint8_t* bp = a.b.ptr<uint8_t>(env, mulSize(env, N, P, "groupedScaledGemmWgrad b"));
  const float* sb = a.bScale.ptr<float>(env, mulSize(env, P / 128, N, "groupedScaledGemmWgrad bScale"));
  const uint64_t dwElems = mulSize(env, E, mulSize(env, K, N, "groupedScaledGemmWgrad dw"), "groupedScaledGemmWgrad dw");
  ErrWord* err = opsErrorWord(env, kErrMoe);
  grouped90::Fp8WgradArgs args{offsets, sa, sb, nullptr, static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), static_cast<int>(P), err};
  const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile), static_cast<unsigned>((K + kTile - 1) / kTile), static_cast<unsigned>(E));
  const auto run = [&](auto* d) {
    using OutT = std::remove_pointer_t<decltype(d)>;
    args.dw = d;
    if (!launchWgradSm90<OutT>(env, a.stream, fa, fb, ap, bp, P, args))
      groupedFp8WgradK<OutT><<<grid, kThreads, 0, a.stream>>>(ap, sa, bp, sb, offsets, d, fa == abi::fp8::e4m3 ? 0 : 1, fb == abi::fp8::e4m3 ? 0 : 1, args.K, args.N, args.E,
                                                               static_cast<long long>(P), err);
  };
  if (a.outDtype == abi::dtype::f32) run(a.dw.ptr<float>(env, dwElems));
  else run(a.dw.ptr<__nv_bfloat16>(env, dwElems));
  checkLaunch(env, op.c_str());
  return env.Undefined();
}

}  // namespace

void initGemmGroupedFp8Wgrad(Napi::Env env, Napi::Object exports) { def(env, exports, "groupedScaledGemmWgrad", GroupedScaledGemmWgrad); }

}  // namespace dw

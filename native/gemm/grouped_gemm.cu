// Grouped GEMM of dropless mixture-of-experts (the ABI table's groupedGemm, groupedGemmWgrad):
//
//   groupedGemm(stream, dtype, R, K, N, E, transW, x, w, offsets, out)
//       out[r] = x[r] · w[e] for offsets[e] <= r < offsets[e + 1]; x [R, K], w [E, K, N] (transW:
//       [E, N, K], out[r] = x[r] · w[e]ᵀ), offsets i32 [E + 1] on the device, out [R, N]
//   groupedGemmWgrad(stream, dtype, R, K, N, E, x, g, offsets, dw)
//       dw[e] = Σ over e's rows of x[r]ᵀ g[r]; x [R, K], g [R, N], dw [E, K, N] (zeros for an
//       expert with no rows)
//
// The general path: SIMT, 64 × 64 output tiles, FP32 accumulation in a fixed order (deterministic),
// any float dtype, any sizes. It is the reference the fast Hopper kernel (TMA + wgmma, below) is
// checked against, and what serves shapes that kernel does not. The offsets are data: each block
// reads them, and offsets that do not start at 0, decrease or miss R are recorded in the moe
// family's error word (common/errors.h; opsErrorCheck names the entry) and nothing is computed.
//
// On a device of compute capability 9.0, bf16 and f16 calls with K and N multiples of 64 (and at
// most 4096 experts) take the Hopper kernels instead (TMA, wgmma, warp specialization):
// gemm/grouped_gemm_sm90.cuh for groupedGemm, gemm/grouped_wgrad_sm90.cuh for groupedGemmWgrad
// (both have run in the GPU tests and the MoE GPT on the H200 and the H100; docs/gpu-runs);
// DW_GROUPED_GENERAL=1 in the environment keeps every call on the general path (for checking one
// against the other). DW_GROUPED_TILE_N=256 (read at each call) moves groupedGemm
// calls without the SwiGLU epilogue to the 128 × 256 tiles of gemm/grouped_wide_sm90.cuh;
// DW_GROUPED_SCHEDULE=pingpong the rest to the 128-wide kernel's pingpong schedule.
//
// groupedGemm's tiles: expert e has ceil(rows_e / 64) row tiles; the grid's x covers the largest
// possible total, ceil(R / 64) + E, and a block finds its (expert, tile) by a block-wide scan of the
// per-expert tile counts; blocks past the real total return. groupedGemmWgrad: one block per
// (expert, 64 × 64 tile of dw), summing its expert's rows 16 at a time.
#include "common/abi/gemm.gen.h"
#include "common/dtype.h"
#include "common/errors.h"
#include "common/device_info.h"
#include "common/launch.h"
#include "common/smem_limit.h"
#include "gemm/grouped_block_sm100.cuh"
#include "gemm/grouped_epilogue.cuh"
#include "gemm/grouped_fp8_sm90.cuh"
#include "gemm/grouped_gemm_sm90.cuh"
#include "gemm/grouped_host.h"
#include "gemm/grouped_wgrad_sm90.cuh"
#include "gemm/grouped_wide_sm90.cuh"
#include "gemm/grouped_offsets.cuh"
#include "quant/formats.cuh"

#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <tuple>
#include <type_traits>

namespace dw {
namespace {

constexpr int kTile = 64, kStep = 16, kThreads = 256;

// acc[i][j] += Σ over the step of a[kk][ty + 16i] · b[kk][tx + 16j]: one 16-deep step of a 64 × 64
// tile from two shared tiles, 4 × 4 outputs a thread.
__device__ __forceinline__ void stepProduct(float (&acc)[4][4], const float (&a)[kStep][kTile + 1], const float (&b)[kStep][kTile + 1], int tx, int ty) {
#pragma unroll
  for (int kk = 0; kk < kStep; ++kk) {
    float av[4], bv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) av[i] = a[kk][ty + 16 * i];
#pragma unroll
    for (int j = 0; j < 4; ++j) bv[j] = b[kk][tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

// Stores a thread's 4 × 4 outputs: rows r0 + ty + 16i below rEnd, columns c0 + tx + 16j below cEnd,
// of a row-major matrix with `ld` columns.
template <typename T>
__device__ __forceinline__ void storeTile(T* out, long long ld, int r0, int rEnd, int c0, int cEnd, const float (&acc)[4][4], int tx, int ty) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = r0 + ty + 16 * i;
    if (r >= rEnd) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = c0 + tx + 16 * j;
      if (c < cEnd) out[r * ld + c] = fromF<T>(acc[i][j]);
    }
  }
}

// One 64 × 64 tile of out (and, for the SwiGLU epilogue, of the second product x · w3) per block,
// written through the epilogue EPI (gemm/grouped_epilogue.cuh).
template <typename T, bool TRANSW, int EPI>
__global__ void __launch_bounds__(kThreads)
    groupedGemmK(const T* x, const T* w, const T* w3, const int* offsets, T* out, grouped::EpiPtrs<T> epi, int R, int K, int N, int E, ErrWord* err) {
  constexpr bool kTwo = EPI == grouped::kEpiSwiglu;
  __shared__ float xs[kStep][kTile + 1];
  __shared__ float ws[kTwo ? 2 : 1][kStep][kTile + 1];
  if (!offsetsValid(offsets, E, R, err, kOpGroupedMatmul)) return;
  const RowTile tile = rowTileOf<kTile, kThreads>(offsets, E, static_cast<int>(blockIdx.x));
  if (tile.e < 0) return;  // past the real number of tiles
  const int e = tile.e, rowEnd = tile.rowEnd, row0 = tile.row0;
  const int col0 = static_cast<int>(blockIdx.y) * kTile;
  const long long wOff = static_cast<long long>(e) * K * N;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // 4 × 4 outputs each: rows ty + 16i, cols tx + 16j
  float acc[4][4] = {}, acc2[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kStep) {
    for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
      const int kk = i % kStep, r = i / kStep;  // x tile: rows r, columns k0 + kk
      const int row = row0 + r, kx = k0 + kk;
      xs[kk][r] = row < rowEnd && kx < K ? toF(x[static_cast<long long>(row) * K + kx]) : 0.f;
      const int c = i % kTile, kw = k0 + i / kTile;  // w tile: row k0 + i / 64, column c
      const int col = col0 + c;
      const bool in = kw < K && col < N;
      const long long at = wOff + (TRANSW ? static_cast<long long>(col) * K + kw : static_cast<long long>(kw) * N + col);
      ws[0][i / kTile][c] = in ? toF(w[at]) : 0.f;
      if constexpr (kTwo) ws[kTwo ? 1 : 0][i / kTile][c] = in ? toF(w3[at]) : 0.f;
    }
    __syncthreads();
    stepProduct(acc, xs, ws[0], tx, ty);
    if constexpr (kTwo) stepProduct(acc2, xs, ws[kTwo ? 1 : 0], tx, ty);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = row0 + ty + 16 * i;
    if (r >= rowEnd) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = col0 + tx + 16 * j;
      if (c < N) grouped::storeOne<T, EPI>(out, static_cast<long long>(r) * N + c, acc[i][j], acc2[i][j], epi);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) groupedWgradK(const T* x, const T* g, const int* offsets, T* dw, int R, int K, int N, int E, ErrWord* err) {
  __shared__ float xs[kStep][kTile + 1];
  __shared__ float gs[kStep][kTile + 1];
  if (!offsetsValid(offsets, E, R, err, kOpGroupedMatmulWgrad)) return;
  const int e = static_cast<int>(blockIdx.z);
  const int k0 = static_cast<int>(blockIdx.y) * kTile, n0 = static_cast<int>(blockIdx.x) * kTile;
  const int r0 = offsets[e], r1 = offsets[e + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // dw rows k0 + ty + 16i, columns n0 + tx + 16j
  float acc[4][4] = {};
  for (int rb = r0; rb < r1; rb += kStep) {
    for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
      const int rr = i / kTile, c = i % kTile, row = rb + rr;
      xs[rr][c] = row < r1 && k0 + c < K ? toF(x[static_cast<long long>(row) * K + k0 + c]) : 0.f;
      gs[rr][c] = row < r1 && n0 + c < N ? toF(g[static_cast<long long>(row) * N + n0 + c]) : 0.f;
    }
    __syncthreads();
    stepProduct(acc, xs, gs, tx, ty);
    __syncthreads();
  }
  storeTile(dw + static_cast<long long>(e) * K * N, N, k0, K, n0, N, acc, tx, ty);
}

// The FP8 blockwise grouped GEMM's general path (groupedScaledGemm): one 64 × 64 tile of d per
// block (rowTileOf); per 128-wide K block the FP32 partial of the decoded codes
// (exact products), then acc += partial · (sa[row] · sb[e, col / 128]), as the Hopper kernel promotes.
template <typename OutT>
__global__ void __launch_bounds__(kThreads) groupedFp8K(const uint8_t* a, const float* aScale, const uint8_t* b, const float* bScale, const int* offsets, OutT* d, int fa,
                                                      int fb, int R, int K, int N, int E, int L4, ErrWord* err) {
  __shared__ float xs[kStep][kTile + 1];
  __shared__ float ws[kStep][kTile + 1];
  if (!offsetsValid(offsets, E, R, err, kOpGroupedScaledMatmul)) return;
  const RowTile tile = rowTileOf<kTile, kThreads>(offsets, E, static_cast<int>(blockIdx.x));
  if (tile.e < 0) return;  // past the real number of tiles
  const int e = tile.e, rowEnd = tile.rowEnd, row0 = tile.row0;
  const int col0 = static_cast<int>(blockIdx.y) * kTile;
  const int tilesN128 = (N + 127) / 128;
  const auto dec = [](uint32_t code, int f) { return f == 0 ? quant::decE4M3(code) : quant::decE5M2(code); };
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int kb = 0; kb < K / 128; ++kb) {
    float part[4][4] = {};
    for (int k0 = kb * 128; k0 < (kb + 1) * 128; k0 += kStep) {
      for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
        const int kk = i % kStep, r = i / kStep;  // a tile: row row0 + r, column k0 + kk
        const int row = row0 + r;
        xs[kk][r] = row < rowEnd ? dec(a[static_cast<long long>(row) * K + k0 + kk], fa) : 0.f;
        const int col = col0 + r;  // b tile: expert e's row (N) col0 + r, column k0 + kk
        ws[kk][r] = col < N ? dec(b[(static_cast<long long>(e) * N + col) * K + k0 + kk], fb) : 0.f;
      }
      __syncthreads();
      stepProduct(part, xs, ws, tx, ty);
      __syncthreads();
    }
    const float sb = col0 < N ? bScale[(static_cast<long long>(e) * tilesN128 + col0 / 128) * L4 + kb] : 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = min(row0 + ty + 16 * i, R - 1);
      const float s = aScale[static_cast<long long>(kb) * R + row] * sb;
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(part[i][j], s, acc[i][j]);
    }
  }
  storeTile(d, N, row0, rowEnd, col0, N, acc, tx, ty);
}

unsigned tilesOf(uint64_t n) { return static_cast<unsigned>((n + kTile - 1) / kTile); }

using grouped::generalOnly;

// The pointers of one groupedGemm call.
template <typename T>
struct Call {
  const T *x, *w, *w3;
  const int* offsets;
  T* out;
  grouped::EpiPtrs<T> epi;
  ErrWord* err;
};

// The Hopper kernel of one layout, epilogue and schedule: launched, or false when this build has no
// sm_90a code for it (the trapping stub: a few registers, not the ~100 the real kernel takes).
template <typename T, bool TransW, int Epi, bool Pingpong>
bool launchSm90Kernel(Napi::Env env, cudaStream_t s, int dev, const CUtensorMap& mx, const CUtensorMap& mw, const CUtensorMap& mw3, const grouped90::Args& args) {
  namespace g = grouped90;
  constexpr auto kernel = g::groupedGemmSm90Kernel<T, TransW, Epi, Pingpong>;
  // The trapping stub of a build without sm_90a code has a few registers; the pingpong schedule's
  // warpgroups redistribute theirs (setmaxnreg 40 / 232), so it must start with all of them.
  if (Pingpong ? !grouped::redistributes<kernel>(g::kThreads, 40, 232) : grouped::kernelRegs<kernel>() < 64) return false;
  constexpr int kMaxSmem = g::smemBytes(g::kMaxExperts);
  static_assert(kMaxSmem <= 227 * 1024, "the Hopper grouped GEMM fits in shared memory");
  DW_CUDA(env, (setSmemLimitOnce<kernel, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedGemm)");
  kernel<<<static_cast<unsigned>(smCount()), g::kThreads, g::smemBytes(args.E), s>>>(mx, mw, mw3, args);
  return true;
}

// Whether DW_GROUPED_TILE_N=256 asks for the wide kernel (read at each call, so a test can run both).
bool wideTiles() {
  const char* v = std::getenv("DW_GROUPED_TILE_N");
  return v != nullptr && std::string(v) == "256";
}

// Whether DW_GROUPED_SCHEDULE=pingpong asks for the 128-wide kernel's pingpong schedule (read at each call).
bool pingpong() {
  const char* v = std::getenv("DW_GROUPED_SCHEDULE");
  return v != nullptr && std::string(v) == "pingpong";
}

// The wide Hopper kernel of one layout and epilogue (not SwiGLU): launched, or false (the stub).
template <typename T, bool TransW, int Epi>
bool launchWideKernel(Napi::Env env, cudaStream_t s, int dev, const CUtensorMap& mx, const CUtensorMap& mw, const grouped90::Args& args) {
  namespace g = grouped90;
  constexpr auto kernel = g::groupedGemmWideSm90Kernel<T, TransW, Epi>;
  if (!grouped::redistributes<kernel>(g::kThreads, 40, 232)) return false;  // setmaxnreg 40 / 232 (or the stub)
  constexpr int kMaxSmem = g::wideSmemBytes(g::kWideMaxExperts);
  DW_CUDA(env, (setSmemLimitOnce<kernel, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedGemm, wide tiles)");
  kernel<<<static_cast<unsigned>(smCount()), g::kThreads, g::wideSmemBytes(args.E), s>>>(mx, mw, args);
  return true;
}

template <typename T, int Epi>
bool launchWideEpi(Napi::Env env, cudaStream_t s, int dev, bool transW, const CUtensorMap& mx, const CUtensorMap& mw, const grouped90::Args& args) {
  return transW ? launchWideKernel<T, true, Epi>(env, s, dev, mx, mw, args) : launchWideKernel<T, false, Epi>(env, s, dev, mx, mw, args);
}

template <typename T, int Epi>
bool launchSm90Epi(Napi::Env env, cudaStream_t s, int dev, bool transW, const CUtensorMap& mx, const CUtensorMap& mw, const CUtensorMap& mw3, const grouped90::Args& args) {
  if (pingpong()) return transW ? launchSm90Kernel<T, true, Epi, true>(env, s, dev, mx, mw, mw3, args) : launchSm90Kernel<T, false, Epi, true>(env, s, dev, mx, mw, mw3, args);
  return transW ? launchSm90Kernel<T, true, Epi, false>(env, s, dev, mx, mw, mw3, args) : launchSm90Kernel<T, false, Epi, false>(env, s, dev, mx, mw, mw3, args);
}

// The Hopper kernel for a call it takes; false (nothing launched) otherwise.
template <typename T>
bool launchSm90(Napi::Env env, cudaStream_t s, const Call<T>& c, int epi, uint64_t R, uint64_t K, uint64_t N, uint64_t E, bool transW) {
  namespace g = grouped90;
  int dev = 0;
  if (generalOnly() || cudaGetDevice(&dev) != cudaSuccess || !g::supported(computeCapability(dev), static_cast<int>(sizeof(T)), R, K, N, E)) return false;
  // Pairs of 16-bit elements are stored (and dgelu's pre read) as 4-byte words.
  for (const void* p : {static_cast<const void*>(c.out), static_cast<const void*>(c.epi.aux), static_cast<const void*>(c.epi.aux2)})
    if (reinterpret_cast<uintptr_t>(p) % 4 != 0) return false;
  CUtensorMap mx, mw, mw3;
  const CUtensorMapDataType dt = std::is_same<T, __nv_bfloat16>::value ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const bool swiglu = epi == grouped::kEpiSwiglu;
  if (!swiglu && wideTiles() && E <= static_cast<uint64_t>(g::kWideMaxExperts)) {
    CUtensorMap wx, ww;
    if (!g::makeWideMaps(&wx, &ww, dt, c.x, c.w, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), transW)) return false;
    const g::Args args{c.offsets, c.out, c.epi.aux, c.epi.aux2, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), c.err};
    switch (epi) {
      case grouped::kEpiGelu: return launchWideEpi<T, grouped::kEpiGelu>(env, s, dev, transW, wx, ww, args);
      case grouped::kEpiDgelu: return launchWideEpi<T, grouped::kEpiDgelu>(env, s, dev, transW, wx, ww, args);
      default: return launchWideEpi<T, grouped::kEpiNone>(env, s, dev, transW, wx, ww, args);
    }
  }
  if (!g::makeMaps(&mx, &mw, &mw3, dt, c.x, c.w, c.w3, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), transW, swiglu)) return false;
  const g::Args args{c.offsets, c.out, c.epi.aux, c.epi.aux2, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), c.err};
  switch (epi) {
    case grouped::kEpiGelu: return launchSm90Epi<T, grouped::kEpiGelu>(env, s, dev, transW, mx, mw, mw3, args);
    case grouped::kEpiDgelu: return launchSm90Epi<T, grouped::kEpiDgelu>(env, s, dev, transW, mx, mw, mw3, args);
    case grouped::kEpiSwiglu: return launchSm90Epi<T, grouped::kEpiSwiglu>(env, s, dev, transW, mx, mw, mw3, args);
    default: return launchSm90Epi<T, grouped::kEpiNone>(env, s, dev, transW, mx, mw, mw3, args);
  }
}

// The general kernel of one layout and epilogue.
template <typename T, int Epi>
void launchGeneral(cudaStream_t s, const Call<T>& c, bool transW, dim3 grid, int R, int K, int N, int E) {
  if (transW) groupedGemmK<T, true, Epi><<<grid, kThreads, 0, s>>>(c.x, c.w, c.w3, c.offsets, c.out, c.epi, R, K, N, E, c.err);
  else groupedGemmK<T, false, Epi><<<grid, kThreads, 0, s>>>(c.x, c.w, c.w3, c.offsets, c.out, c.epi, R, K, N, E, c.err);
}

// The Hopper weight-gradient kernel for a call it takes; false (nothing launched) otherwise.
template <typename T>
bool launchWgradSm90(Napi::Env env, cudaStream_t s, const T* x, const T* gr, const int* offsets, T* dw, uint64_t R, uint64_t K, uint64_t N, uint64_t E, ErrWord* err) {
  namespace g = grouped90;
  int dev = 0;
  if (generalOnly() || cudaGetDevice(&dev) != cudaSuccess || !g::wgradSupported(computeCapability(dev), static_cast<int>(sizeof(T)), R, K, N, E)) return false;
  if (reinterpret_cast<uintptr_t>(dw) % 4 != 0) return false;
  CUtensorMap mx, mg;
  const CUtensorMapDataType dt = std::is_same<T, __nv_bfloat16>::value ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  if (!g::makeWgradMaps(&mx, &mg, dt, x, gr, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N))) return false;
  constexpr int kMaxSmem = g::smemBytes(g::kMaxExperts);
  if (grouped::kernelRegs<g::groupedWgradSm90Kernel<T>>() < 64) return false;  // the trapping stub of a build without sm_90a code
  const g::WgradArgs args{offsets, dw, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), err};
  const uint64_t tiles = E * ((K + g::kBM - 1) / g::kBM) * ((N + g::kBN - 1) / g::kBN);
  const unsigned grid = static_cast<unsigned>(std::min<uint64_t>(tiles, static_cast<uint64_t>(smCount())));
  DW_CUDA(env, (setSmemLimitOnce<g::groupedWgradSm90Kernel<T>, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedGemmWgrad)");
  g::groupedWgradSm90Kernel<T><<<grid, g::kThreads, g::smemBytes(static_cast<int>(E)), s>>>(mx, mg, args);
  return true;
}

Napi::Value GroupedGemm(const Napi::CallbackInfo& info) {
  const abi::GroupedGemmArgs a = abi::readGroupedGemm(info);
  Napi::Env env = info.Env();
  const uint64_t R = a.R, K = a.K, N = a.N, E = a.E;
  const int epi = static_cast<int>(a.epilogue);
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one expert for groupedGemm but received 0");
  if (tilesOf(N) > 65535) fail(env, "INVALID_ARGUMENT", "Expected N at most 4194240 for groupedGemm but received " + std::to_string(N));
  // The epilogue's tensors: each one it uses is required, each one it does not must be absent.
  const bool wantW3 = epi == grouped::kEpiSwiglu, wantAux = epi != grouped::kEpiNone, wantAux2 = epi == grouped::kEpiSwiglu;
  for (const auto& [given, want, name] : {std::make_tuple(a.w3.present, wantW3, "w3"), std::make_tuple(a.aux.present, wantAux, "aux"), std::make_tuple(a.aux2.present, wantAux2, "aux2")})
    if (given != want) fail(env, "INVALID_ARGUMENT", std::string("Expected ") + (want ? "a tensor" : "none") + " for " + name + " of groupedGemm with epilogue " + std::to_string(epi));
  const int* offsets = a.offsets.ptr<int>(env, E + 1);
  ErrWord* err = opsErrorWord(env, kErrMoe);
  // At least one block, so the offsets are checked even with nothing to compute.
  const dim3 grid(tilesOf(R) + static_cast<unsigned>(E), tilesOf(N) > 0 ? tilesOf(N) : 1);
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const uint64_t wElems = mulSize(env, E, mulSize(env, K, N, "groupedGemm w"), "groupedGemm w"), outElems = mulSize(env, R, N, "groupedGemm out");
    const Call<T> c{a.x.ptr<T>(env, mulSize(env, R, K, "groupedGemm x")), a.w.ptr<T>(env, wElems), a.w3.optPtr<T>(env, wElems), offsets, a.out.ptr<T>(env, outElems),
                    grouped::EpiPtrs<T>{a.aux.optPtr<T>(env, outElems), a.aux2.optPtr<T>(env, outElems)}, err};
    const bool transW = a.transW != 0;
    if constexpr (sizeof(T) == 2) {
      if (launchSm90<T>(env, a.stream, c, epi, R, K, N, E, transW)) {
        checkLaunch(env, "groupedGemm");
        return env.Undefined();
      }
    }
    const int Ri = static_cast<int>(R), Ki = static_cast<int>(K), Ni = static_cast<int>(N), Ei = static_cast<int>(E);
    switch (epi) {
      case grouped::kEpiGelu: launchGeneral<T, grouped::kEpiGelu>(a.stream, c, transW, grid, Ri, Ki, Ni, Ei); break;
      case grouped::kEpiDgelu: launchGeneral<T, grouped::kEpiDgelu>(a.stream, c, transW, grid, Ri, Ki, Ni, Ei); break;
      case grouped::kEpiSwiglu: launchGeneral<T, grouped::kEpiSwiglu>(a.stream, c, transW, grid, Ri, Ki, Ni, Ei); break;
      default: launchGeneral<T, grouped::kEpiNone>(a.stream, c, transW, grid, Ri, Ki, Ni, Ei); break;
    }
  });
  checkLaunch(env, "groupedGemm");
  return env.Undefined();
}

Napi::Value GroupedGemmWgrad(const Napi::CallbackInfo& info) {
  const abi::GroupedGemmWgradArgs a = abi::readGroupedGemmWgrad(info);
  Napi::Env env = info.Env();
  const uint64_t R = a.R, K = a.K, N = a.N, E = a.E;
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one expert for groupedGemmWgrad but received 0");
  if (tilesOf(K) > 65535) fail(env, "INVALID_ARGUMENT", "Expected K at most 4194240 for groupedGemmWgrad but received " + std::to_string(K));
  const int* offsets = a.offsets.ptr<int>(env, E + 1);
  ErrWord* err = opsErrorWord(env, kErrMoe);
  const dim3 grid(tilesOf(N) > 0 ? tilesOf(N) : 1, tilesOf(K) > 0 ? tilesOf(K) : 1, static_cast<unsigned>(E));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, mulSize(env, R, K, "groupedGemmWgrad x"));
    const T* g = a.g.ptr<T>(env, mulSize(env, R, N, "groupedGemmWgrad g"));
    T* dw = a.dw.ptr<T>(env, mulSize(env, E, mulSize(env, K, N, "groupedGemmWgrad dw"), "groupedGemmWgrad dw"));
    if constexpr (sizeof(T) == 2) {
      if (launchWgradSm90<T>(env, a.stream, x, g, offsets, dw, R, K, N, E, err)) {
        checkLaunch(env, "groupedGemmWgrad");
        return env.Undefined();
      }
    }
    groupedWgradK<T><<<grid, kThreads, 0, a.stream>>>(x, g, offsets, dw, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), err);
  });
  checkLaunch(env, "groupedGemmWgrad");
  return env.Undefined();
}

// The Hopper FP8 kernel for a call it takes; false (nothing launched) otherwise.
template <int FA, int FB, typename OutT, int Epi>
bool launchFp8Sm90Kernel(Napi::Env env, cudaStream_t s, int dev, const CUtensorMap& ma, const CUtensorMap& mb, const CUtensorMap& mb3, const grouped90::Fp8Args& args) {
  namespace g = grouped90;
  constexpr auto kernel = g::groupedFp8Sm90Kernel<FA, FB, OutT, Epi>;
  if (!grouped::redistributes<kernel>(g::kThreads, g::kProducerRegs, g::kConsumerRegs)) return false;  // setmaxnreg (or the stub)
  constexpr int kMaxSmem = g::smemBytes(g::kMaxExperts);
  DW_CUDA(env, (setSmemLimitOnce<kernel, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedScaledGemm)");
  kernel<<<static_cast<unsigned>(smCount()), g::kThreads, g::smemBytes(args.E), s>>>(ma, mb, mb3, args);
  return true;
}

// b3: SwiGLU's second weight (Epi kEpiSwiglu; null otherwise).
template <typename OutT, int Epi = grouped::kEpiNone>
bool launchFp8Sm90(Napi::Env env, cudaStream_t s, int fa, int fb, const void* a, const void* b, const grouped90::Fp8Args& args, const void* b3 = nullptr) {
  namespace g = grouped90;
  int dev = 0;
  if (generalOnly() || cudaGetDevice(&dev) != cudaSuccess || !g::fp8Supported(computeCapability(dev), args.R, args.K, args.N, args.E)) return false;
  if (reinterpret_cast<uintptr_t>(args.d) % 8 != 0) return false;
  // The act epilogues move d, aux (aux2) 16 bytes and the codes 8 bytes at a time (storeQuantRow).
  const auto at16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (Epi != grouped::kEpiNone && (!at16(args.d) || !at16(args.aux) || reinterpret_cast<uintptr_t>(args.q) % 8 != 0)) return false;
  if (Epi == grouped::kEpiSwiglu && (b3 == nullptr || !at16(args.aux2))) return false;
  CUtensorMap ma, mb, mb3;
  if (!g::makeFp8Maps(&ma, &mb, &mb3, a, b, b3, args.R, args.K, args.N, args.E)) return false;
  constexpr int e4 = abi::fp8::e4m3;
  if (fa == e4 && fb == e4) return launchFp8Sm90Kernel<0, 0, OutT, Epi>(env, s, dev, ma, mb, mb3, args);
  if (fa == e4) return launchFp8Sm90Kernel<0, 1, OutT, Epi>(env, s, dev, ma, mb, mb3, args);
  return launchFp8Sm90Kernel<1, 0, OutT, Epi>(env, s, dev, ma, mb, mb3, args);  // both e5m2 refused before
}

// The operands of a groupedScaledGemm or groupedScaledGemmAct call (Args: the ABI's struct of
// either), every size and pointer checked; `name` names the entry in the errors.
struct ScaledOperands {
  const uint8_t *a, *b;
  const float *aScale, *bScale;
  const int* offsets;
  grouped90::Fp8Args args;  // d and the epilogue's pointers still null
};

template <typename Args>
ScaledOperands readScaledOperands(Napi::Env env, const Args& a, const std::string& name) {
  const uint64_t R = a.R, K = a.K, N = a.N, E = a.E;
  const int fa = static_cast<int>(a.aFormat), fb = static_cast<int>(a.bFormat);
  const auto fmt = [](int f) { return std::string(f == abi::fp8::e4m3 ? "e4m3" : f == abi::fp8::e5m2 ? "e5m2" : "e2m1"); };
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one expert for " + name + " but received 0");
  if (fa == abi::fp8::e2m1 || fb == abi::fp8::e2m1 || (fa == abi::fp8::e5m2 && fb == abi::fp8::e5m2))
    fail(env, "INVALID_ARGUMENT", "Expected FP8 operands, not both e5m2, for " + name + " but received " + fmt(fa) + " and " + fmt(fb));
  if (K % 128 != 0) fail(env, "INVALID_ARGUMENT", "Expected K a multiple of 128 for " + name + " but received " + std::to_string(K));
  if (tilesOf(N) > 65535) fail(env, "INVALID_ARGUMENT", "Expected N at most 4194240 for " + name + " but received " + std::to_string(N));
  const uint64_t kBlocks = K / 128, L4 = (kBlocks + 3) / 4 * 4, tilesN128 = (N + 127) / 128;
  ScaledOperands o;
  o.offsets = a.offsets.template ptr<int>(env, E + 1);
  o.a = a.a.template ptr<uint8_t>(env, mulSize(env, R, K, (name + " a").c_str()));
  o.aScale = a.aScale.template ptr<float>(env, mulSize(env, kBlocks, R, (name + " aScale").c_str()));
  o.b = a.b.template ptr<uint8_t>(env, mulSize(env, E, mulSize(env, N, K, (name + " b").c_str()), (name + " b").c_str()));
  o.bScale = a.bScale.template ptr<float>(env, mulSize(env, E, mulSize(env, tilesN128, L4, (name + " bScale").c_str()), (name + " bScale").c_str()));
  o.args = grouped90::Fp8Args{o.offsets, o.aScale, o.bScale, nullptr, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), static_cast<int>(L4), opsErrorWord(env, kErrMoe)};
  return o;
}

// The general path's FP8 grid: groupedFp8K's tiles.
dim3 fp8Grid(const grouped90::Fp8Args& a) { return dim3(tilesOf(static_cast<uint64_t>(a.R)) + static_cast<unsigned>(a.E), tilesOf(static_cast<uint64_t>(a.N)) > 0 ? tilesOf(static_cast<uint64_t>(a.N)) : 1); }

Napi::Value GroupedScaledGemm(const Napi::CallbackInfo& info) {
  const abi::GroupedScaledGemmArgs a = abi::readGroupedScaledGemm(info);
  Napi::Env env = info.Env();
  const ScaledOperands o = readScaledOperands(env, a, "groupedScaledGemm");
  const int fa = static_cast<int>(a.aFormat), fb = static_cast<int>(a.bFormat);
  if (a.outDtype != abi::dtype::bf16 && a.outDtype != abi::dtype::f32) fail(env, "INVALID_ARGUMENT", "Expected a bf16 or f32 output for groupedScaledGemm");
  const grouped90::Fp8Args& args = o.args;
  const auto run = [&](auto* d) {
    using OutT = std::remove_pointer_t<decltype(d)>;
    grouped90::Fp8Args call = args;
    call.d = d;
    if (!launchFp8Sm90<OutT>(env, a.stream, fa, fb, o.a, o.b, call))
      groupedFp8K<OutT><<<fp8Grid(args), kThreads, 0, a.stream>>>(o.a, o.aScale, o.b, o.bScale, o.offsets, d, fa == abi::fp8::e4m3 ? 0 : 1, fb == abi::fp8::e4m3 ? 0 : 1, args.R, args.K, args.N, args.E, args.L4, args.err);
  };
  if (a.outDtype == abi::dtype::f32) run(a.d.ptr<float>(env, mulSize(env, a.R, a.N, "groupedScaledGemm d")));
  else run(a.d.ptr<__nv_bfloat16>(env, mulSize(env, a.R, a.N, "groupedScaledGemm d")));
  checkLaunch(env, "groupedScaledGemm");
  return env.Undefined();
}

// groupedScaledGemmAct's and groupedScaledGemmSwiglu's general path, after groupedFp8K has stored
// the bf16 products (gelu: the pre-activation in aux; dgelu: the product in d; swiglu: gate in aux,
// up in aux2): one warp per row and 128-column block, 4 columns a lane. The epilogue as the Hopper
// kernel's storeActQuant (storeSwigluQuant) computes it (the same functions, the same roundings),
// then the block's amax as bf16 bit patterns, fp8Scale and the codes, as quantize's fp8-block1x128
// rowwise. Never aliased: d, aux and aux2 are distinct [R, N] tensors.
template <int Epi>
__global__ void __launch_bounds__(kThreads) actQuantK(__nv_bfloat16* d, const __nv_bfloat16* aux, const __nv_bfloat16* aux2, uint8_t* q, float* qScale, int R, int N) {
  constexpr int F = quant::kBlk1x128;
  using grouped90::bf16Pair;
  using grouped90::pairBits;
  const long long warp = (static_cast<long long>(blockIdx.x) * kThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32, blocks = N / 128;
  if (warp >= static_cast<long long>(R) * blocks) return;  // whole warps leave together
  const int row = static_cast<int>(warp / blocks), kb = static_cast<int>(warp % blocks);
  const long long at = static_cast<long long>(row) * N + kb * 128 + 4 * lane;
  uint2 pre = *reinterpret_cast<const uint2*>(aux + at), out;
  if constexpr (Epi == grouped::kEpiGelu) {
    const auto act = [&](uint32_t w) { return pairBits(__floats2bfloat162_rn(geluF(__low2float(bf16Pair(w))), geluF(__high2float(bf16Pair(w))))); };
    out = make_uint2(act(pre.x), act(pre.y));
  } else if constexpr (Epi == grouped::kEpiSwiglu) {
    const uint2 up = *reinterpret_cast<const uint2*>(aux2 + at);
    const auto swi = [&](uint32_t g, uint32_t u) {
      return pairBits(__floats2bfloat162_rn(siluF(__low2float(bf16Pair(g))) * __low2float(bf16Pair(u)), siluF(__high2float(bf16Pair(g))) * __high2float(bf16Pair(u))));
    };
    out = make_uint2(swi(pre.x, up.x), swi(pre.y, up.y));
  } else {
    const uint2 prod = *reinterpret_cast<const uint2*>(d + at);
    const auto grad = [&](uint32_t g, uint32_t p) {
      return pairBits(__floats2bfloat162_rn(__low2float(bf16Pair(g)) * geluGradF(__low2float(bf16Pair(p))), __high2float(bf16Pair(g)) * geluGradF(__high2float(bf16Pair(p)))));
    };
    out = make_uint2(grad(prod.x, pre.x), grad(prod.y, pre.y));
  }
  uint32_t m = __vmaxu2(out.x & 0x7fff7fffu, out.y & 0x7fff7fffu);
  m = max(m & 0xffffu, m >> 16);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  const quant::BlockScale s = quant::fp8Scale<F>(__uint_as_float(m << 16));
  *reinterpret_cast<uint2*>(d + at) = out;
  uint32_t codes = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t w = i < 2 ? out.x : out.y;
    const float v = __uint_as_float(i % 2 ? w & 0xffff0000u : w << 16);
    codes |= static_cast<uint32_t>(quant::encElem<F>(__fmul_rn(v, s.mul))) << (8 * i);
  }
  *reinterpret_cast<uint32_t*>(q + at) = codes;
  if (lane == 0) qScale[static_cast<long long>(kb) * R + row] = s.scaleF;
}

// The outputs of an act call into args: d, aux and (SwiGLU) aux2 bf16 [R, N], the codes q [R, N] and
// scales qScale f32 [N / 128, R], each sized and aligned; N a multiple of 128 (whole scale blocks).
void readActOutputs(Napi::Env env, grouped90::Fp8Args& args, uint64_t R, uint64_t N, const abi::TensorArg& d, const abi::TensorArg& aux, const abi::TensorArg* aux2,
                    const abi::TensorArg& q, const abi::TensorArg& qScale, const std::string& name) {
  if (N % 128 != 0) fail(env, "INVALID_ARGUMENT", "Expected N a multiple of 128 (whole 1 x 128 scale blocks) for " + name + " but received " + std::to_string(N));
  const uint64_t RN = mulSize(env, R, N, (name + " d").c_str());
  args.d = d.ptr<__nv_bfloat16>(env, RN);
  args.aux = aux.ptr<__nv_bfloat16>(env, RN);
  args.aux2 = aux2 != nullptr ? aux2->ptr<__nv_bfloat16>(env, RN) : nullptr;
  args.q = q.ptr<uint8_t>(env, RN);
  args.qScale = qScale.ptr<float>(env, mulSize(env, N / 128, R, (name + " qScale").c_str()));
  for (const auto& [p, align, what] : {std::make_tuple(static_cast<const void*>(args.d), 8, "d"), std::make_tuple(static_cast<const void*>(args.aux), 8, aux2 ? "gate" : "aux"),
                                       std::make_tuple(static_cast<const void*>(args.aux2), 8, "up"), std::make_tuple(static_cast<const void*>(args.q), 4, "q"),
                                       std::make_tuple(static_cast<const void*>(args.qScale), 4, "qScale")})
    if (reinterpret_cast<uintptr_t>(p) % align != 0) fail(env, "INVALID_ARGUMENT", "Expected a " + std::to_string(align) + "-byte aligned " + what + " for " + name);
}

// actQuantK over every row and 128-column block of an act call (the general path's epilogue).
template <int Epi>
void launchActQuant(Napi::Env env, cudaStream_t s, const grouped90::Fp8Args& args, const std::string& name) {
  const uint64_t warps = static_cast<uint64_t>(args.R) * (args.N / 128), grid = (warps * 32 + kThreads - 1) / kThreads;
  if (grid > 0x7fffffffu) fail(env, "INVALID_ARGUMENT", name + ": too many rows and blocks for one launch");
  actQuantK<Epi><<<static_cast<unsigned>(grid), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(args.d), args.aux, args.aux2, args.q, args.qScale, args.R, args.N);
}

// groupedScaledGemm with the expert MLP's GELU (or its gradient) and the next GEMM's 1 × 128 FP8
// quantization in the epilogue (the ABI table's groupedScaledGemmAct): the Hopper kernel with
// storeActQuant where it takes the call, else the general path (groupedFp8K, then actQuantK).
Napi::Value GroupedScaledGemmAct(const Napi::CallbackInfo& info) {
  const abi::GroupedScaledGemmActArgs a = abi::readGroupedScaledGemmAct(info);
  Napi::Env env = info.Env();
  const std::string name = "groupedScaledGemmAct";
  const ScaledOperands o = readScaledOperands(env, a, name);
  const int fa = static_cast<int>(a.aFormat), fb = static_cast<int>(a.bFormat), epi = a.epilogue;
  if (epi != grouped::kEpiGelu && epi != grouped::kEpiDgelu) fail(env, "INVALID_ARGUMENT", "Expected the gelu or dgelu epilogue for " + name + " but received code " + std::to_string(epi));
  grouped90::Fp8Args args = o.args;
  readActOutputs(env, args, a.R, a.N, a.d, a.aux, nullptr, a.q, a.qScale, name);
  if (a.R == 0) return env.Undefined();
  const bool fast = epi == grouped::kEpiGelu ? launchFp8Sm90<__nv_bfloat16, grouped::kEpiGelu>(env, a.stream, fa, fb, o.a, o.b, args)
                                             : launchFp8Sm90<__nv_bfloat16, grouped::kEpiDgelu>(env, a.stream, fa, fb, o.a, o.b, args);
  if (!fast) {
    __nv_bfloat16* product = epi == grouped::kEpiGelu ? args.aux : static_cast<__nv_bfloat16*>(args.d);
    groupedFp8K<__nv_bfloat16><<<fp8Grid(args), kThreads, 0, a.stream>>>(o.a, o.aScale, o.b, o.bScale, o.offsets, product, fa == abi::fp8::e4m3 ? 0 : 1, fb == abi::fp8::e4m3 ? 0 : 1, args.R,
                                                                     args.K, args.N, args.E, args.L4, args.err);
    checkLaunch(env, name.c_str());
    if (epi == grouped::kEpiGelu) launchActQuant<grouped::kEpiGelu>(env, a.stream, args, name);
    else launchActQuant<grouped::kEpiDgelu>(env, a.stream, args, name);
  }
  checkLaunch(env, name.c_str());
  return env.Undefined();
}

// The FP8 grouped GEMMs of a SwiGLU expert MLP's first layer, gate = a · b and up = a · b3 (one
// input, two weights of one shape and format), with silu(gate) · up and the next GEMM's 1 × 128 FP8
// quantization in the epilogue (the ABI table's groupedScaledGemmSwiglu): the Hopper kernel with
// storeSwigluQuant where it takes the call, else the general path (groupedFp8K twice, then
// actQuantK).
Napi::Value GroupedScaledGemmSwiglu(const Napi::CallbackInfo& info) {
  const abi::GroupedScaledGemmSwigluArgs a = abi::readGroupedScaledGemmSwiglu(info);
  Napi::Env env = info.Env();
  const std::string name = "groupedScaledGemmSwiglu";
  const ScaledOperands o = readScaledOperands(env, a, name);
  const int fa = static_cast<int>(a.aFormat), fb = static_cast<int>(a.bFormat);
  grouped90::Fp8Args args = o.args;
  // b3 and its scales: b's sizes (readScaledOperands checked b's).
  const uint64_t L4 = static_cast<uint64_t>(args.L4), tilesN128 = (a.N + 127) / 128;
  const uint8_t* b3 = a.b3.ptr<uint8_t>(env, mulSize(env, a.E, mulSize(env, a.N, a.K, (name + " b3").c_str()), (name + " b3").c_str()));
  args.b3Scale = a.b3Scale.ptr<float>(env, mulSize(env, a.E, mulSize(env, tilesN128, L4, (name + " b3Scale").c_str()), (name + " b3Scale").c_str()));
  readActOutputs(env, args, a.R, a.N, a.d, a.gate, &a.up, a.q, a.qScale, name);
  if (a.R == 0) return env.Undefined();
  if (!launchFp8Sm90<__nv_bfloat16, grouped::kEpiSwiglu>(env, a.stream, fa, fb, o.a, o.b, args, b3)) {
    const int ca = fa == abi::fp8::e4m3 ? 0 : 1, cb = fb == abi::fp8::e4m3 ? 0 : 1;
    groupedFp8K<__nv_bfloat16><<<fp8Grid(args), kThreads, 0, a.stream>>>(o.a, o.aScale, o.b, o.bScale, o.offsets, args.aux, ca, cb, args.R, args.K, args.N, args.E, args.L4, args.err);
    checkLaunch(env, name.c_str());
    groupedFp8K<__nv_bfloat16><<<fp8Grid(args), kThreads, 0, a.stream>>>(o.a, o.aScale, b3, args.b3Scale, o.offsets, args.aux2, ca, cb, args.R, args.K, args.N, args.E, args.L4, args.err);
    checkLaunch(env, name.c_str());
    launchActQuant<grouped::kEpiSwiglu>(env, a.stream, args, name);
  }
  checkLaunch(env, name.c_str());
  return env.Undefined();
}

// The Blackwell kernel of one format: launched, or NO_KERNEL when this build holds only its trapping
// stub (no sm_100 code: the stub comes from the compute_90 PTX, a few registers). One cache per
// instantiation, set once.
template <int F>
void launchBlockSm100(Napi::Env env, cudaStream_t s, const CUtensorMap& ma, const CUtensorMap& mb, const grouped100::Args& args) {
  namespace g = grouped100;
  constexpr auto kernel = g::groupedBlockSm100Kernel<F>;
  if (grouped::kernelRegs<kernel>() < 32) fail(env, "NO_KERNEL", "groupedBlockScaledGemm: this build of the addon has no sm_100 code for it");
  const int smem = g::smemBytes(F, args.E);
  DW_CUDA(env, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "cudaFuncSetAttribute (groupedBlockScaledGemm)");
  kernel<<<static_cast<unsigned>(smCount()), g::kThreads, smem, s>>>(ma, mb, args);
}

// The Blackwell block-scaled grouped GEMM (MXFP8 / NVFP4; gemm/grouped_block_sm100.cuh). It has no
// other path: every argument is checked first, then a GPU other than compute capability 10.x is
// refused (NO_KERNEL), so the checks run (and are tested) on any GPU.
Napi::Value GroupedBlockScaledGemm(const Napi::CallbackInfo& info) {
  namespace g = grouped100;
  const abi::GroupedBlockScaledGemmArgs a = abi::readGroupedBlockScaledGemm(info);
  Napi::Env env = info.Env();
  const uint64_t R = a.R, K = a.K, N = a.N, E = a.E;
  const int fmt = static_cast<int>(a.format);
  if (fmt != abi::format::mxfp8_e4m3 && fmt != abi::format::nvfp4) fail(env, "INVALID_ARGUMENT", "Expected format mxfp8-e4m3 or nvfp4 for groupedBlockScaledGemm but received code " + std::to_string(fmt));
  const int f = fmt == abi::format::nvfp4 ? g::kNvfp4 : g::kMxfp8;
  if ((f == g::kNvfp4) != a.aGlobal.present || (f == g::kNvfp4) != a.bGlobal.present)
    fail(env, "INVALID_ARGUMENT", std::string("Expected ") + (f == g::kNvfp4 ? "the tensor scales aGlobal and bGlobal (NVFP4)" : "no tensor scales (MXFP8)") + " for groupedBlockScaledGemm");
  if (!g::shapeOk(f, R, K, N, E))
    fail(env, "INVALID_ARGUMENT", "Expected K a multiple of " + std::to_string(g::kInK(f)) + ", N of 128, 1 to " + std::to_string(g::kMaxExperts) + " experts and R >= 1 for groupedBlockScaledGemm but received R " +
                                      std::to_string(R) + ", K " + std::to_string(K) + ", N " + std::to_string(N) + ", E " + std::to_string(E));
  const uint64_t kBytes = f == g::kNvfp4 ? K / 2 : K, tilesC = (K / (f == g::kNvfp4 ? 16 : 32) + 3) / 4;
  g::Args args{a.offsets.ptr<int>(env, E + 1),
               a.aScale.ptr<uint8_t>(env, mulSize(env, (R + 127) / 128, tilesC * 512, "groupedBlockScaledGemm aScale")),
               a.bScale.ptr<uint8_t>(env, mulSize(env, E * (N / 128), tilesC * 512, "groupedBlockScaledGemm bScale")),
               a.aGlobal.optPtr<float>(env, 1),
               a.bGlobal.optPtr<float>(env, E),
               a.d.ptr<__nv_bfloat16>(env, mulSize(env, R, N, "groupedBlockScaledGemm d")),
               static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), opsErrorWord(env, kErrMoe)};
  const uint8_t* ap = a.a.ptr<uint8_t>(env, mulSize(env, R, kBytes, "groupedBlockScaledGemm a"));
  const uint8_t* bp = a.b.ptr<uint8_t>(env, mulSize(env, E * N, kBytes, "groupedBlockScaledGemm b"));
  // The scale atoms are 1-D bulk copies (16-byte aligned sources), d is stored 16 bytes at a time,
  // and a and b are TMA operands (16-byte aligned bases).
  for (const auto& [p, name] : {std::make_pair(static_cast<const void*>(args.aScale), "aScale"), std::make_pair(static_cast<const void*>(args.bScale), "bScale"),
                                std::make_pair(static_cast<const void*>(args.d), "d"), std::make_pair(static_cast<const void*>(ap), "a"), std::make_pair(static_cast<const void*>(bp), "b")})
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fail(env, "INVALID_ARGUMENT", std::string("Expected a 16-byte aligned ") + name + " for groupedBlockScaledGemm");
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice (groupedBlockScaledGemm)");
  const int cc = computeCapability(dev);
  if (cc / 10 != 10) fail(env, "NO_KERNEL", "groupedBlockScaledGemm runs on Blackwell (compute capability 10.x) only, not " + std::to_string(cc / 10) + "." + std::to_string(cc % 10));
  CUtensorMap ma, mb;
  if (!g::makeMaps(&ma, &mb, ap, bp, R, kBytes, N, E)) fail(env, "INVALID_ARGUMENT", "groupedBlockScaledGemm: TMA cannot describe a or b");
  if (f == g::kNvfp4) launchBlockSm100<g::kNvfp4>(env, a.stream, ma, mb, args);
  else launchBlockSm100<g::kMxfp8>(env, a.stream, ma, mb, args);
  checkLaunch(env, "groupedBlockScaledGemm");
  return env.Undefined();
}

}  // namespace

void initGemmGrouped(Napi::Env env, Napi::Object exports) {
  def(env, exports, "groupedGemm", GroupedGemm);
  def(env, exports, "groupedGemmWgrad", GroupedGemmWgrad);
  def(env, exports, "groupedScaledGemm", GroupedScaledGemm);
  def(env, exports, "groupedScaledGemmAct", GroupedScaledGemmAct);
  def(env, exports, "groupedScaledGemmSwiglu", GroupedScaledGemmSwiglu);
  def(env, exports, "groupedBlockScaledGemm", GroupedBlockScaledGemm);
}

}  // namespace dw

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
// most 4096 experts) take the Hopper kernel instead (gemm/grouped_gemm_sm90.cuh: TMA, wgmma, warp
// specialization; FIRST VERSION, not yet run on a GPU); DW_GROUPED_GENERAL=1 in the environment
// keeps every call on the general path (for checking one against the other).
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
#include "gemm/grouped_gemm_sm90.cuh"
#include "gemm/grouped_offsets.cuh"

#include <cub/block/block_scan.cuh>

#include <cstdlib>
#include <string>
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

template <typename T, bool TRANSW>
__global__ void __launch_bounds__(kThreads) groupedGemmK(const T* x, const T* w, const int* offsets, T* out, int R, int K, int N, int E, ErrWord* err) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ int found[3];  // expert, its first row, the tile's first row
  __shared__ float xs[kStep][kTile + 1];
  __shared__ float ws[kStep][kTile + 1];
  if (!offsetsValid(offsets, E, R, err, kOpGroupedMatmul)) return;
  // Which expert's tile is block x: each thread takes a run of experts, counts their tiles, and
  // the block's exclusive scan places the runs.
  const int per = (E + kThreads - 1) / kThreads;
  const int e0 = min(E, static_cast<int>(threadIdx.x) * per), e1 = min(E, e0 + per);
  int mine = 0;
  for (int e = e0; e < e1; ++e) mine += (offsets[e + 1] - offsets[e] + kTile - 1) / kTile;
  int before;
  if (threadIdx.x == 0) found[0] = -1;
  __syncthreads();
  Scan(tmp).ExclusiveSum(mine, before);
  const int b = static_cast<int>(blockIdx.x);
  if (b >= before && b < before + mine) {
    int t = b - before;
    for (int e = e0; e < e1; ++e) {
      const int tiles = (offsets[e + 1] - offsets[e] + kTile - 1) / kTile;
      if (t < tiles) {
        found[0] = e;
        found[1] = offsets[e + 1];
        found[2] = offsets[e] + t * kTile;
        break;
      }
      t -= tiles;
    }
  }
  __syncthreads();
  if (found[0] < 0) return;  // past the real number of tiles
  const int e = found[0], rowEnd = found[1], row0 = found[2];
  const int col0 = static_cast<int>(blockIdx.y) * kTile;
  const T* we = w + static_cast<long long>(e) * K * N;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // 4 × 4 outputs each: rows ty + 16i, cols tx + 16j
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kStep) {
    for (int i = threadIdx.x; i < kStep * kTile; i += kThreads) {
      const int kk = i % kStep, r = i / kStep;  // x tile: rows r, columns k0 + kk
      const int row = row0 + r, kx = k0 + kk;
      xs[kk][r] = row < rowEnd && kx < K ? toF(x[static_cast<long long>(row) * K + kx]) : 0.f;
      const int c = i % kTile, kw = k0 + i / kTile;  // w tile: row k0 + i / 64, column c
      const int col = col0 + c;
      float v = 0.f;
      if (kw < K && col < N) v = toF(TRANSW ? we[static_cast<long long>(col) * K + kw] : we[static_cast<long long>(kw) * N + col]);
      ws[i / kTile][c] = v;
    }
    __syncthreads();
    stepProduct(acc, xs, ws, tx, ty);
    __syncthreads();
  }
  storeTile(out, N, row0, rowEnd, col0, N, acc, tx, ty);
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

unsigned tilesOf(uint64_t n) { return static_cast<unsigned>((n + kTile - 1) / kTile); }

bool generalOnly() {
  static const bool only = [] {
    const char* v = std::getenv("DW_GROUPED_GENERAL");
    return v != nullptr && v[0] == '1';
  }();
  return only;
}

// The Hopper kernel for a call it takes; false (nothing launched) otherwise.
template <typename T>
bool launchSm90(Napi::Env env, cudaStream_t s, const T* x, const T* w, const int* offsets, T* out, uint64_t R, uint64_t K, uint64_t N, uint64_t E, bool transW, ErrWord* err) {
  namespace g = grouped90;
  int dev = 0;
  if (generalOnly() || cudaGetDevice(&dev) != cudaSuccess || !g::supported(computeCapability(dev), static_cast<int>(sizeof(T)), R, K, N, E)) return false;
  if (reinterpret_cast<uintptr_t>(out) % 4 != 0) return false;
  CUtensorMap mx, mw;
  const CUtensorMapDataType dt = std::is_same<T, __nv_bfloat16>::value ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  if (!g::makeMaps(&mx, &mw, dt, x, w, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), transW)) return false;
  constexpr int kMaxSmem = g::smemBytes(g::kMaxExperts);
  static_assert(kMaxSmem <= 227 * 1024, "the Hopper grouped GEMM fits in shared memory");
  const g::Args args{offsets, out, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), err};
  const int smem = g::smemBytes(static_cast<int>(E));
  const unsigned grid = static_cast<unsigned>(smCount());
  // A build without sm_90a device code holds only the trapping stub (a few registers, not the 96
  // the real kernel takes): take the general path rather than launch it.
  auto kernel = transW ? g::groupedGemmSm90Kernel<T, true> : g::groupedGemmSm90Kernel<T, false>;
  static const int regs = [&] {
    cudaFuncAttributes fa{};
    return cudaFuncGetAttributes(&fa, kernel) == cudaSuccess ? fa.numRegs : 0;
  }();
  if (regs < 64) return false;
  if (transW) {
    DW_CUDA(env, (setSmemLimitOnce<g::groupedGemmSm90Kernel<T, true>, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedGemm)");
    g::groupedGemmSm90Kernel<T, true><<<grid, g::kThreads, smem, s>>>(mx, mw, args);
  } else {
    DW_CUDA(env, (setSmemLimitOnce<g::groupedGemmSm90Kernel<T, false>, kMaxSmem>(dev)), "cudaFuncSetAttribute (groupedGemm)");
    g::groupedGemmSm90Kernel<T, false><<<grid, g::kThreads, smem, s>>>(mx, mw, args);
  }
  return true;
}

Napi::Value GroupedGemm(const Napi::CallbackInfo& info) {
  const abi::GroupedGemmArgs a = abi::readGroupedGemm(info);
  Napi::Env env = info.Env();
  const uint64_t R = a.R, K = a.K, N = a.N, E = a.E;
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected at least one expert for groupedGemm but received 0");
  if (tilesOf(N) > 65535) fail(env, "INVALID_ARGUMENT", "Expected N at most 4194240 for groupedGemm but received " + std::to_string(N));
  const int* offsets = a.offsets.ptr<int>(env, E + 1);
  ErrWord* err = opsErrorWord(env, kErrMoe);
  // At least one block, so the offsets are checked even with nothing to compute.
  const dim3 grid(tilesOf(R) + static_cast<unsigned>(E), tilesOf(N) > 0 ? tilesOf(N) : 1);
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, mulSize(env, R, K, "groupedGemm x"));
    const T* w = a.w.ptr<T>(env, mulSize(env, E, mulSize(env, K, N, "groupedGemm w"), "groupedGemm w"));
    T* out = a.out.ptr<T>(env, mulSize(env, R, N, "groupedGemm out"));
    const int Ri = static_cast<int>(R), Ki = static_cast<int>(K), Ni = static_cast<int>(N), Ei = static_cast<int>(E);
    if constexpr (sizeof(T) == 2) {
      if (launchSm90<T>(env, a.stream, x, w, offsets, out, R, K, N, E, a.transW != 0, err)) {
        checkLaunch(env, "groupedGemm");
        return env.Undefined();
      }
    }
    if (a.transW) groupedGemmK<T, true><<<grid, kThreads, 0, a.stream>>>(x, w, offsets, out, Ri, Ki, Ni, Ei, err);
    else groupedGemmK<T, false><<<grid, kThreads, 0, a.stream>>>(x, w, offsets, out, Ri, Ki, Ni, Ei, err);
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
    groupedWgradK<T><<<grid, kThreads, 0, a.stream>>>(x, g, offsets, dw, static_cast<int>(R), static_cast<int>(K), static_cast<int>(N), static_cast<int>(E), err);
  });
  checkLaunch(env, "groupedGemmWgrad");
  return env.Undefined();
}

}  // namespace

void initGemmGrouped(Napi::Env env, Napi::Object exports) {
  def(env, exports, "groupedGemm", GroupedGemm);
  def(env, exports, "groupedGemmWgrad", GroupedGemmWgrad);
}

}  // namespace dw

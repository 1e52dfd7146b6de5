// The register-row framework of the layernorm kernels (ops/nn/layernorm.cu, and the backward's
// default in ops/nn/layernorm_bwd.cu): rows of 16-byte chunks held whole in registers by a row group
// of W warps, with a persistent grid.
//
// Why beside common/rows.cuh: that framework sizes a row group to the row (64 threads for a bf16
// row of 768 in the backward, a block of its own with two block barriers a row) and launches a
// block per few rows, so a block's column partials cover few rows and there are many of them; it
// also reloads w and b for every row. Here:
//   - a block is kRegThreads threads, G = kRegThreads / (32 W) row groups (blockDim (32 W, G));
//     thread t of a group owns chunks t, t + 32 W, ... (NCH of them), the same columns in every
//     row, so per-column operands (weight, bias) are loaded once per thread and per-column sums
//     (dweight, dbias) are the thread's own over all of its rows (in registers in layernormBwdRegK,
//     in the thread's slots of shared memory in layernormBwdPipeK);
//   - the grid is what the GPU holds at once (occupancy x SMs, capped by the rows), and the block's
//     row groups take rows in rounds: round k, group y -> row (blockIdx.x + k gridDim.x) G + y.
//     Every thread of a block runs every round (a group past the last row is idle in it), so a
//     group of several warps can meet at block barriers;
//   - one warp per row (W = 1) up to 96 chunks of bf16 / f16 (768 elements) or 128 of f32 (512): its sums are
//     shuffles only. Longer rows take 2, 4 or 8 warps; their sums meet in shared memory at one block
//     barrier, double-buffered so the next sum needs no second barrier.
// Sums use a fixed shuffle tree and add warp totals in warp order: a row's statistics depend on its
// length and the launch shape only. Rows longer than 8 warps x 32 threads x 4 chunks (3 for bf16 / f16), and rows that do not
// split into 16-byte chunks, go to the row framework's kernels.
#pragma once
#include "common/launch.h"
#include "common/rows.cuh"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace dw::nn {

constexpr int kRegThreads = 256;
constexpr int kRegMaxWarps = 8;  // warps per row

// Chunks per thread: 4 for f32 (16 elements), 3 for bf16 / f16 (24 elements). With two blocks of
// 256 threads per SM (128 registers a thread), layernormBwdRegK holds 24 elements of g and x and 48
// column sums a thread (and spills some for bf16); 32 elements spill more. layernormBwdPipeK takes
// the same plan (so the same dx bits) with its column sums in shared memory.
template <typename T>
constexpr int regMaxChunks() {
  return sizeof(T) == 4 ? 4 : 3;
}

// DEEPWELL_NORM_KERNEL=rows sends every row through the row framework's kernels, where these would
// take them: for bench/layernorm.mjs, which times both in one run. Read at each call (a compiled
// step's CUDA graph keeps what it captured).
inline bool regRowsAllowed() {
  const char* e = std::getenv("DEEPWELL_NORM_KERNEL");
  return !(e && std::strcmp(e, "rows") == 0);
}

// The layernorm backward's kernel, read at each call like regRowsAllowed: Pipe (the default) is
// layernormBwdPipeK (ops/nn/layernorm_bwd.cu), Wide its variant without the prefetch, Reg the first
// register-row backward (layernormBwdRegK in ops/nn/layernorm.cu), Rows the row framework's:
// DEEPWELL_NORM_BWD_KERNEL=wide, =reg or =rows picks those (anything else, the default), and
// DEEPWELL_NORM_KERNEL=rows still sends every norm kernel to the row framework. Pipe, Wide and Reg
// take the same rows (regPlan) and give the same dx bits.
enum class NormBwdPath { Pipe, Wide, Reg, Rows };
inline NormBwdPath normBwdPath() {
  if (!regRowsAllowed()) return NormBwdPath::Rows;
  const char* e = std::getenv("DEEPWELL_NORM_BWD_KERNEL");
  if (!e) return NormBwdPath::Pipe;
  if (std::strcmp(e, "wide") == 0) return NormBwdPath::Wide;
  if (std::strcmp(e, "reg") == 0) return NormBwdPath::Reg;
  if (std::strcmp(e, "rows") == 0) return NormBwdPath::Rows;
  return NormBwdPath::Pipe;
}

struct RegPlan {
  int W = 0;    // warps per row; 0: the row does not fit (use the row framework)
  int NCH = 0;  // chunks per thread, 1..kRegMaxChunks
  int groups() const { return kRegThreads / (32 * W); }
  dim3 block() const { return dim3(32 * W, groups()); }
};

// The fewest warps (1, 2, 4, 8) whose threads hold a row of nch chunks in at most maxChunks each.
inline RegPlan regPlan(int64_t nch, int maxChunks) {
  for (int W = 1; W <= kRegMaxWarps; W *= 2)
    if (nch <= int64_t(32) * W * maxChunks) return {W, static_cast<int>((nch + 32 * W - 1) / (32 * W))};
  return {};
}

// f(W, NCH) with both as std::integral_constant, for the plan's values (NCH 4 only for 4-byte T).
template <typename T, class F>
void regDispatch(const RegPlan& p, F&& f) {
  auto chunks = [&](auto w) {
    if constexpr (regMaxChunks<T>() >= 4) {
      if (p.NCH == 4) return f(w, std::integral_constant<int, 4>{});
    }
    switch (p.NCH) {
      case 1: f(w, std::integral_constant<int, 1>{}); break;
      case 2: f(w, std::integral_constant<int, 2>{}); break;
      default: f(w, std::integral_constant<int, 3>{}); break;
    }
  };
  switch (p.W) {
    case 1: chunks(std::integral_constant<int, 1>{}); break;
    case 2: chunks(std::integral_constant<int, 2>{}); break;
    case 4: chunks(std::integral_constant<int, 4>{}); break;
    default: chunks(std::integral_constant<int, 8>{}); break;
  }
}

// Blocks of Kernel one SM holds with `smem` bytes of dynamic shared memory (at least 1), cached per
// device and kernel: the persistent grid's size. The same kernel, block and device always give the
// same count, so the grid (and the number of column partials it writes) is fixed for a device and
// shape. Each caller passes one smem per kernel. Where `smem` is past the default limit, it also
// allows the kernel that much (once per device), so call it before the kernel's launches.
template <auto Kernel>
unsigned regBlocksPerSm(Napi::Env env, size_t smem) {
  static std::atomic<int> cache[64];
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  if (dev >= 0 && dev < 64) {
    const int c = cache[dev].load(std::memory_order_relaxed);
    if (c > 0) return static_cast<unsigned>(c);
  }
  // Past the default dynamic shared memory (48 KiB less the static), the kernel must be allowed more
  // before it can launch (and before the occupancy counts it); once per device, as the cache.
  cudaFuncAttributes fa{};
  DW_CUDA(env, cudaFuncGetAttributes(&fa, Kernel), "cudaFuncGetAttributes");
  if (smem > static_cast<size_t>(fa.maxDynamicSharedSizeBytes))
    DW_CUDA(env, cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)), "cudaFuncSetAttribute(maxDynamicSharedMemorySize)");
  int n = 0;
  DW_CUDA(env, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, Kernel, kRegThreads, smem), "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  if (n < 1) n = 1;
  if (dev >= 0 && dev < 64) cache[dev].store(n, std::memory_order_relaxed);
  return static_cast<unsigned>(n);
}

// The persistent grid: blocks per SM x SMs, at most one block per G rows and at most `cap`.
inline unsigned regGrid(unsigned perSm, uint64_t rows, int groups, uint64_t cap) {
  uint64_t g = static_cast<uint64_t>(perSm) * smCount();
  const uint64_t byRows = (rows + groups - 1) / groups;
  if (g > byRows) g = byRows;
  if (g > cap) g = cap;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

template <typename T, int V>
__device__ __forceinline__ Pack<T, V> ldPack(const T* p, int64_t chunk) {
  return reinterpret_cast<const Pack<T, V>*>(p)[chunk];
}

template <typename T, int V>
__device__ __forceinline__ void stPack(T* p, int64_t chunk, const float (&f)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int k = 0; k < V; k++) pk.v[k] = fromF<T>(f[k]);
  reinterpret_cast<Pack<T, V>*>(p)[chunk] = pk;
}

// Sums a and b over the thread's row group (W warps); every thread of the group gets the same bits.
// With W > 1 every thread of the block must call it (one block barrier); `sh` is a [2][8] buffer
// and `parity` flips between consecutive calls, so a call never overwrites what a slower warp of
// the previous call has still to read.
template <int W>
__device__ __forceinline__ void groupSum2(float& a, float& b, float2 (*sh)[kRegMaxWarps], int parity) {
  a = warpSum(a);
  b = warpSum(b);
  if constexpr (W > 1) {
    const int wid = threadIdx.x >> 5;
    float2* s = sh[parity] + threadIdx.y * W;
    if ((threadIdx.x & 31) == 0) s[wid] = make_float2(a, b);
    __syncthreads();
    float sa = 0.f, sb = 0.f;
#pragma unroll
    for (int i = 0; i < W; i++) {
      sa += s[i].x;
      sb += s[i].y;
    }
    a = sa;
    b = sb;
  }
}

template <int W>
__device__ __forceinline__ float groupSum(float a, float2 (*sh)[kRegMaxWarps], int parity) {
  float b = 0.f;
  groupSum2<W>(a, b, sh, parity);
  return a;
}

}  // namespace dw::nn

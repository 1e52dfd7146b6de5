// Device helpers of the row kernels (softmax, layernorm, rmsnorm, cross_entropy, causal_mask, the
// row gather / scatter of common/rows_gather.cu) and the host side that plans their launches: packed
// loads and stores, warp and block sums, and the row framework below.
//
// Determinism: row reductions use a fixed shuffle/shared-memory tree (warpSum, blockSum), so a
// row's sums depend on its length and the launch shape only, never on timing.
#pragma once
#include "common/dtype.h"
#include "common/launch.h"

#include <initializer_list>

namespace dw {

constexpr unsigned kFull = 0xffffffffu;

// V elements of storage T as one aligned access (16 bytes when V * sizeof(T) == 16).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void loadF(const T* p, float (&f)[V]) {
  const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int k = 0; k < V; k++) f[k] = toF(pk.v[k]);
}

template <typename T, int V>
__device__ __forceinline__ void storeF(T* p, const float (&f)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int k = 0; k < V; k++) pk.v[k] = fromF<T>(f[k]);
  *reinterpret_cast<Pack<T, V>*>(p) = pk;
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Sums over the block (blockDim a multiple of 32); every thread gets the same bits. The xor butterfly
// is symmetric (a + b == b + a), and the warp totals are added in warp order by every thread.
// Ends with a barrier, so `sh` (32 entries) may be reused at once.
__device__ __forceinline__ float blockSum(float v, float* sh) {
  v = warpSum(v);
  const int nw = blockDim.x >> 5;
  if (nw == 1) return v;
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float s = 0.f;
  for (int i = 0; i < nw; i++) s += sh[i];
  __syncthreads();
  return s;
}

__device__ __forceinline__ void blockSum2(float& a, float& b, float2* sh) {
  a = warpSum(a);
  b = warpSum(b);
  const int nw = blockDim.x >> 5;
  if (nw == 1) return;
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = make_float2(a, b);
  __syncthreads();
  float sa = 0.f, sb = 0.f;
  for (int i = 0; i < nw; i++) {
    sa += sh[i].x;
    sb += sh[i].y;
  }
  __syncthreads();
  a = sa;
  b = sb;
}

// Online softmax statistics: M = the running max (raw units) and s = sum(2^((x - M) * log2(e))),
// one subtraction, one multiplication and one MUFU exp2 per element. x - M is exactly 0 at the max
// and stays exact-or-huge for masked entries (a -1e30 causal mask gives 2^-1.4e30 = 0); scaling M

// ---- row framework ----------------------------------------------------------------------------------
//
// A row belongs to a row group of blockDim.x threads (a multiple of 32): a whole block (blockDim.y
// = 1; reductions through shared memory), or one warp of a block of 4 warps (blockDim.y = 4, for
// short rows; reductions by shuffles only, so the warps run independently). Row groups take rows
// grid-stride. A row is nch chunks of V elements (V = 16 bytes' worth when the row length and every
// row pointer allow, else 1); thread t of a group owns chunks t, t + blockDim.x, ... . CACHED: at
// most NCH chunks per thread, loaded once and kept in registers in their storage format (so bf16
// rows cost half the registers of f32 ones); otherwise each pass reloads them (from L1/L2). Up to
// 512 threads per group when cached, 1024 otherwise.

constexpr int kCachedThreads = 512;

__device__ __forceinline__ int64_t firstRow() { return static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; }
__device__ __forceinline__ int64_t rowStride() { return static_cast<int64_t>(gridDim.x) * blockDim.y; }

template <typename T, int V>
__device__ __forceinline__ void unpack(const Pack<T, V>& pk, float (&f)[V]) {
#pragma unroll
  for (int k = 0; k < V; k++) f[k] = toF(pk.v[k]);
}

template <typename T, int V, int NCH, bool CACHED>
struct RowData {
  Pack<T, V> c[CACHED ? NCH : 1];

  __device__ __forceinline__ void load(const T* row, int nch) {
    if constexpr (CACHED) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < nch) c[i] = reinterpret_cast<const Pack<T, V>*>(row)[j];
      }
    }
  }

  // f(slot, chunk, values): slot is the register slot when CACHED (-1 otherwise).
  template <class F>
  __device__ __forceinline__ void each(const T* row, int nch, F&& f) {
    if constexpr (CACHED) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < nch) {
          float t[V];
          unpack<T, V>(c[i], t);
          f(i, j, t);
        }
      }
    } else {
#pragma unroll 4
      for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        float t[V];
        loadF<T, V>(row + static_cast<int64_t>(j) * V, t);
        f(-1, j, t);
      }
    }
  }
};

template <typename T, int V, int NCH, bool CACHED, class F>
__device__ __forceinline__ void each2(RowData<T, V, NCH, CACHED>& a, const T* ra, RowData<T, V, NCH, CACHED>& b, const T* rb, int nch, F&& f) {
  if constexpr (CACHED) {
#pragma unroll
    for (int i = 0; i < NCH; i++) {
      const int j = threadIdx.x + i * blockDim.x;
      if (j < nch) {
        float ta[V], tb[V];
        unpack<T, V>(a.c[i], ta);
        unpack<T, V>(b.c[i], tb);
        f(i, j, ta, tb);
      }
    }
  } else {
#pragma unroll 4
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float ta[V], tb[V];
      loadF<T, V>(ra + static_cast<int64_t>(j) * V, ta);
      loadF<T, V>(rb + static_cast<int64_t>(j) * V, tb);
      f(-1, j, ta, tb);
    }
  }
}

constexpr int chunksFor(int floats, int V) { return floats / V < 1 ? 1 : floats / V; }

struct RowPlan {
  int threads;  // per row group (blockDim.x)
  int groups;   // row groups per block (blockDim.y)
  bool cached;
  dim3 block() const { return dim3(threads, groups); }
  unsigned grid(uint64_t rows) const { return capBlocks((rows + groups - 1) / groups); }
};

// Fewest threads (a multiple of 32) that hold the row in NCH chunks each; uncached past 512.
inline RowPlan rowPlan(int64_t nch, int NCH) {
  int64_t t = (nch + NCH - 1) / NCH;
  t = (t + 31) / 32 * 32;
  if (t < 32) t = 32;
  if (t > kCachedThreads) return {1024, 1, false};
  return {static_cast<int>(t), t == 32 ? 4 : 1, true};
}

// Elements per thread held in registers: 64 bytes of storage for single-input row kernels (16 f32 or
// 32 bf16 / f16: on an H200, 16 beat 32 for f32 rows and 32 beat 16 for bf16 ones), 16 elements per
// input for the two-input backward kernels.
constexpr int kFwdBytes = 64;
constexpr int kBwdFloats = 16;
#define DW_FWD_ELEMS(T) (kFwdBytes / static_cast<int>(sizeof(T)))

// True when rows of D elements and every pointer allow 16-byte packs.
template <typename T>
bool canVec(uint64_t D, std::initializer_list<const void*> ptrs) {
  constexpr uint64_t V = 16 / sizeof(T);
  if (D % V != 0) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

// Runs body(V, NCH, CACHED) as a template-lambda for the vector width the row and pointers allow.
#define DW_ROW_DISPATCH(T, vec, FLOATS, ...)                                                           \
  do {                                                                                                 \
    if (vec) {                                                                                         \
      constexpr int V = 16 / sizeof(T);                                                                \
      constexpr int NCH = chunksFor(FLOATS, V);                                                        \
      __VA_ARGS__                                                                                      \
    } else {                                                                                           \
      constexpr int V = 1;                                                                             \
      constexpr int NCH = chunksFor(FLOATS, V);                                                        \
      __VA_ARGS__                                                                                      \
    }                                                                                                  \
  } while (0)

}  // namespace dw

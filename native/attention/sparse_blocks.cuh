// What every SparseK attention kernel reads of a selection (indices i32 [B, Hkv, nB, topK]: each
// query block's chosen key blocks in ascending order, -1 after the last; sparsek_select.cuh writes
// it): the portable kernels (sparsek_sm80.cuh) and the Hopper ones (flash_fwd_sm90.cuh,
// flash_bwd_sm90.cuh with Sparse = true). An entry outside [0, nB) ends a list, so a corrupt list
// cannot make a kernel read out of bounds.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dw {
namespace attention {

struct SparseIdx {
  const int* idx;  // i32 [B, Hkv, nB, topK]
  int bs, topK, nB;
};

__device__ __forceinline__ const int* selectionRow(const SparseIdx& s, int Hkv, int b, int hk, int qb) {
  return s.idx + ((int64_t(b) * Hkv + hk) * s.nB + qb) * s.topK;
}

// An entry as a sort key: past the end (INT_MAX) when outside [0, nB).
__device__ __forceinline__ int entryKey(const SparseIdx& s, int v) { return v < 0 || v >= s.nB ? 0x7fffffff : v; }

// The first position of `row` whose entry is >= kb (binary search of the ascending list).
__device__ __forceinline__ int lowerBound(const SparseIdx& s, const int* row, int kb) {
  int lo = 0, hi = s.topK;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (entryKey(s, row[mid]) < kb) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Query block qb's list entries before the end (its selected blocks).
__device__ __forceinline__ int listLength(const SparseIdx& s, const int* row) { return lowerBound(s, row, 0x7fffffff); }

// The query blocks that selected key block kb (causal: only kb and later can), ascending, into
// `list`; with `rank` non-null also, per entry, how many blocks that query block selected above kb
// (the position of kb in a descending walk of its list). Returns their number. Every one of the
// CTA's NT threads calls it (it synchronizes the CTA).
template <int NT>
__device__ int selectingBlocks(const SparseIdx& s, int Hkv, int b, int hk, int kb, bool causal, int* list, int* rank) {
  __shared__ int warpCount[NT / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int n = 0;
  for (int base = causal ? kb : 0; base < s.nB; base += NT) {
    const int qb = base + threadIdx.x;
    bool on = false;
    int above = 0;
    if (qb < s.nB) {
      const int* row = selectionRow(s, Hkv, b, hk, qb);
      const int at = lowerBound(s, row, kb);
      on = at < s.topK && row[at] == kb;
      if (on && rank != nullptr) above = listLength(s, row) - 1 - at;
    }
    const unsigned bal = __ballot_sync(0xffffffffu, on);
    if (lane == 0) warpCount[warp] = __popc(bal);
    __syncthreads();
    int before = n;
    for (int w = 0; w < warp; ++w) before += warpCount[w];
    if (on) {
      const int at = before + __popc(bal & ((1u << lane) - 1u));
      list[at] = qb;
      if (rank != nullptr) rank[at] = above;
    }
    for (int w = 0; w < NT / 32; ++w) n += warpCount[w];
    __syncthreads();
  }
  return n;
}

}  // namespace attention
}  // namespace dw

// The group offsets check every grouped GEMM kernel makes before it computes (gemm/grouped_gemm.cu's
// general kernels and the Hopper kernel of gemm/grouped_gemm_sm90.cuh): offsets i32 [E + 1] start at
// 0, never decrease and end at R. The offsets may be in global or shared memory.
#pragma once
#include "common/errors.h"

namespace dw {

// Whether the offsets are valid; every thread of the block must call it, and every thread gets the
// answer. Block (0, 0, 0) records the first bad entry in the error word under `op`.
__device__ __forceinline__ bool offsetsValid(const int* offsets, int E, int R, ErrWord* err, int op) {
  __shared__ unsigned bad;
  if (threadIdx.x == 0) bad = ~0u;
  __syncthreads();
  for (int e = threadIdx.x; e <= E; e += blockDim.x) {
    const int o = offsets[e];
    const bool wrong = e == 0 ? o != 0 : (o < offsets[e - 1] || o > R || (e == E && o != R));
    if (wrong) atomicMin(&bad, static_cast<unsigned>(e));
  }
  __syncthreads();
  const unsigned first = bad;
  if (first != ~0u && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0) raiseErr(err, op, first, offsets[first], R);
  return first == ~0u;
}

}  // namespace dw

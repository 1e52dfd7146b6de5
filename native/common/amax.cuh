// Fused amax (ir's ops/amax.ts): a kernel that writes a tensor an FP8 quantizer will read also
// reduces the largest finite magnitude of the values it stores, so the quantizer's tensor scale
// needs no second pass. Each thread keeps a running maximum of finiteAbs(stored value); at the end
// every thread of the block calls blockAmaxAtomic, which meets them in shared memory and makes one
// atomicMax per block on the bits of an f32[1] the entry point zeroed first (zeroAmax).
// Non-negative floats order as their bit patterns, so the result is exact and independent of the
// order the blocks arrive in: deterministic.
#pragma once

#include "common/launch.h"  // DW_CUDA

#include <cuda_runtime.h>

namespace dw {

/** |v| for finite v; 0 for NaN and ±Inf (they do not count, as in the quantizer's own amax). */
__device__ __forceinline__ float finiteAbs(float v) {
  const float a = fabsf(v);
  return a <= 3.402823466e38f ? a : 0.f;
}

/** Folds each thread's maximum m into *amax; every thread of the block must call it. */
__device__ __forceinline__ void blockAmaxAtomic(float m, float* amax) {
  __shared__ unsigned part[32];
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned n = blockDim.x * blockDim.y * blockDim.z, warps = (n + 31) / 32;
  // The lanes this thread's warp has (a block need not be a whole number of warps).
  const unsigned lanes = min(32u, n - t / 32 * 32);
  unsigned bits = __reduce_max_sync(lanes == 32 ? 0xffffffffu : (1u << lanes) - 1, __float_as_uint(m));
  if (t % 32 == 0) part[t / 32] = bits;
  __syncthreads();
  if (t < 32) {
    bits = __reduce_max_sync(0xffffffffu, t < warps ? part[t] : 0u);
    if (t == 0 && bits != 0) atomicMax(reinterpret_cast<unsigned*>(amax), bits);
  }
}

/** Zeroes the amax before the kernel that reduces into it (a no-op for none). */
inline void zeroAmax(Napi::Env env, float* amax, cudaStream_t s) {
  if (amax) DW_CUDA(env, cudaMemsetAsync(amax, 0, sizeof(float), s), "cudaMemsetAsync (amax)");
}

}  // namespace dw

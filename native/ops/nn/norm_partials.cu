// The fixed-order reduction of the norm backwards' column partials (see norm_partials.h).
#include "ops/nn/norm_partials.h"

namespace dw::nn {
namespace {

// out0[d] = sum over b in [0, nb) of ws[b * stride + d] (and out1 from ws[b * stride + D + d]),
// in a fixed order: warp w adds b = w, w + 32, ... in turn, then warp 0 adds the 32 warp sums in order.
// Lanes take consecutive columns. nb = 0 writes zeros.
constexpr int kReduceThreads = 1024;
constexpr int kUnroll = 8;

template <typename T>
__global__ void __launch_bounds__(kReduceThreads) colReduceK(const float* ws, int nb, int64_t D, int64_t stride, T* out0, T* out1) {
  __shared__ float sh[2][kReduceThreads / 32][33];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int64_t c0 = blockIdx.x * 32LL; c0 < D; c0 += gridDim.x * 32LL) {
    const int64_t d = c0 + lane;
    float s0 = 0.f, s1 = 0.f;
    if (d < D) {
      // kUnroll slices' loads in flight before their adds (one memory latency per kUnroll slices,
      // not per slice); the adds keep the order b = w, w + nw, ... (a slice past nb adds +0, which
      // changes no sum: s starts at +0 and a sum of floats is never -0 unless all its terms are).
      for (int b0 = w; b0 < nb; b0 += kUnroll * nw) {
        float v0[kUnroll], v1[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
          const int b = b0 + u * nw;
          v0[u] = b < nb ? ws[b * stride + d] : 0.f;
          v1[u] = out1 && b < nb ? ws[b * stride + D + d] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; u++) {
          s0 += v0[u];
          s1 += v1[u];
        }
      }
    }
    sh[0][w][lane] = s0;
    sh[1][w][lane] = s1;
    __syncthreads();
    if (w == 0 && d < D) {
      float t0 = 0.f, t1 = 0.f;
      for (int i = 0; i < nw; i++) {
        t0 += sh[0][i][lane];
        t1 += sh[1][i][lane];
      }
      out0[d] = fromF<T>(t0);
      if (out1) out1[d] = fromF<T>(t1);
    }
    __syncthreads();
  }
}

}  // namespace

template <typename T>
void launchColReduce(cudaStream_t s, const float* ws, unsigned nb, uint64_t D, uint64_t stride, T* out0, T* out1) {
  colReduceK<T><<<capBlocks((D + 31) / 32, 4096), kReduceThreads, 0, s>>>(ws, static_cast<int>(nb), static_cast<int64_t>(D), static_cast<int64_t>(stride), out0, out1);
}

template void launchColReduce<float>(cudaStream_t, const float*, unsigned, uint64_t, uint64_t, float*, float*);
template void launchColReduce<__nv_bfloat16>(cudaStream_t, const float*, unsigned, uint64_t, uint64_t, __nv_bfloat16*, __nv_bfloat16*);
template void launchColReduce<__half>(cudaStream_t, const float*, unsigned, uint64_t, uint64_t, __half*, __half*);

}  // namespace dw::nn

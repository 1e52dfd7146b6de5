// The tensor amax of the quantization family (see quant.cpp).
//
//   quantAmax(stream, dtype, n, x, amax)
//       amax (f32[1]) = the largest finite |x| (NaN and ±Inf ignored, 0 for none).
//
// Also the first pass of fakeQuant and quantStats for tensorwise FP8 and NVFP4 (launchAmax).
#include "quant/quant.h"

#include "quant/formats.cuh"

namespace dw::quant {
namespace {

template <typename T>
__global__ void amaxK(const T* __restrict__ x, uint64_t n, float* __restrict__ out) {
  float m = 0.f;
  bool special = false;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) accumulate(toF(x[i]), m, special);
  m = warpMax(m, 32);
  __shared__ float part[32];
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x < 32) {
    m = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.f;
    m = warpMax(m, 32);
    // Non-negative floats order as their bit patterns.
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned*>(out), __float_as_uint(m));
  }
}

template <typename T>
void launchAmaxT(cudaStream_t s, const void* x, uint64_t n, float* out) {
  cudaMemsetAsync(out, 0, 4, s);
  if (n) amaxK<T><<<blocksFor(n, 256, 132 * 8), 256, 0, s>>>(static_cast<const T*>(x), n, out);
}

}  // namespace

void launchAmax(Napi::Env env, cudaStream_t s, int dtype, const void* x, uint64_t n, float* out) {
  DW_DISPATCH_FLOAT(env, dtype, T, launchAmaxT<T>(s, x, n, out));
}

Napi::Value QuantAmax(const Napi::CallbackInfo& info) {
  const abi::QuantAmaxArgs a = abi::readQuantAmax(info);
  Napi::Env env = info.Env();
  const void* x = a.x.ptr<void>(env, a.n, dtypeBytes(a.dtype));
  float* out = a.amax.ptr<float>(env, 1);
  launchAmax(env, a.stream, a.dtype, x, a.n, out);
  checkLaunch(env, "quantAmax");
  return env.Undefined();
}

}  // namespace dw::quant

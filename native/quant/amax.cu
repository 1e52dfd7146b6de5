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

// The same over 16-byte aligned x: 8-element chunks (16- or 32-byte loads), four in flight per
// thread, reduced through the bit patterns (Bits<T>); a chunk holding NaN or ±Inf is redone with
// the finite-only scan. One element-wise thread per leftover element past the last chunk. About
// 0.9 of copy bandwidth on the H200, where the scalar kernel above reached ~0.7 TB/s on 2-byte
// loads (it kept too few bytes in flight per SM); it stays for unaligned x.
template <typename T>
__global__ void __launch_bounds__(256) amaxVecK(const T* __restrict__ x, uint64_t n, float* __restrict__ out) {
  const Chunk<T>* c = reinterpret_cast<const Chunk<T>*>(x);
  const uint64_t chunks = n / 8, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const auto bitsOf = [](const Chunk<T>& ch) {
    const uint32_t b = chunkAmaxBits(ch);
    return b < Bits<T>::kInf ? b : chunkAmaxFiniteBits(ch);
  };
  uint32_t m = 0;
  uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < chunks; i += 4 * stride) {
    Chunk<T> v[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = c[i + k * stride];
#pragma unroll
    for (int k = 0; k < 4; ++k) m = max(m, bitsOf(v[k]));
  }
  for (; i < chunks; i += stride) m = max(m, bitsOf(c[i]));
  float f = Bits<T>::value(m);
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < n - chunks * 8) {
    const float v = toF(x[chunks * 8 + t]);
    if (isfinite(v)) f = fmaxf(f, fabsf(v));
  }
  f = warpMax(f, 32);
  __shared__ float part[8];
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = f;
  __syncthreads();
  if (threadIdx.x < 32) {
    f = warpMax(threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.f, 32);
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned*>(out), __float_as_uint(f));
  }
}

template <typename T>
void launchAmaxT(cudaStream_t s, const void* x, uint64_t n, float* out) {
  cudaMemsetAsync(out, 0, 4, s);
  if (!n) return;
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0)
    amaxVecK<T><<<blocksFor((n + 7) / 8, 256, 132 * 8), 256, 0, s>>>(static_cast<const T*>(x), n, out);
  else
    amaxK<T><<<blocksFor(n, 256, 132 * 8), 256, 0, s>>>(static_cast<const T*>(x), n, out);
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

// Statistics of fake-quantize (quantization family; see quant.cpp).
//
//   quantStats(stream, fmt, scaleMode, dtype, outer, len, inner, x, stats, workspace)
//       stats (f32[6]): what fakeQuant does to x (amax; non-finite, underflowed and clamped shares;
//       log2 of the smallest and largest usable block scale), as the quant_stats op defines them.
//
// What fake_quant does to x, counted (packages/precision/src/ops/quant_stats.ts defines each number):
// per-thread sums over the thread's blocks, reduced per warp, then one atomic per warp into the
// accumulators (StatsAcc); statsFinishK turns the sums into the six values.
//
// Workspace (at most kBlockedWorkspaceBytes, what the TS candidate declares): the StatsAcc
// accumulators at offset 0 (sizeof(StatsAcc) = 48 bytes, 8-byte aligned), zeroed on the stream by
// each call; for tensorwise FP8 and NVFP4 then the tensor amax word (one float) at
// kStatsAmaxOffset = sizeof(StatsAcc): 52 bytes in all.
#include "quant/quant.h"

#include "quant/fake_quant.cuh"

#include <string>

namespace dw::quant {
namespace {

struct StatsAcc {
  unsigned long long nonfinite, underflow, saturated;
  unsigned long long sMin, sMax;  // bit patterns of the smallest / largest usable decode scale (double)
  unsigned int amax;              // bit pattern of the largest finite |x| (float)
};
// The call's workspace: the accumulators at 0, then (needsTensorAmax) the tensor amax word.
constexpr uint64_t kStatsAmaxOffset = sizeof(StatsAcc);
static_assert(sizeof(StatsAcc) == 48 && alignof(StatsAcc) == 8, "the layout the header describes");
static_assert(kStatsAmaxOffset % alignof(float) == 0 && kStatsAmaxOffset + sizeof(float) <= kBlockedWorkspaceBytes,
              "quantStats' workspace must fit what its TS candidate declares");

template <int F>
__device__ __forceinline__ bool clampsAt(float scaled) {
  const float a = fabsf(scaled);
  if constexpr (isFp4(F)) return a >= 7.f;
  else if constexpr (isE5M2(F)) return a >= 61440.f;
  else return a > 464.f;
}

struct StatsLocal {
  unsigned long long nonfinite = 0, underflow = 0, saturated = 0, sMin = ~0ull, sMax = 0;
  float amax = 0.f;
  __device__ void scale(double S) {
    const unsigned long long b = static_cast<unsigned long long>(__double_as_longlong(S));
    sMin = b < sMin ? b : sMin;
    sMax = b > sMax ? b : sMax;
  }
  // One element of a block quantized with s (decode scale dec, NVFP4's g), `encoded` unless the
  // block's codes were all forced to zero.
  template <int F>
  __device__ void element(float v, const BlockScale& s, float dec, float g, bool encoded) {
    if (!isfinite(v)) {
      ++nonfinite;
      return;
    }
    amax = fmaxf(amax, fabsf(v));
    float y = decElem<F>(encode<F>(v, s)) * dec;
    if constexpr (F == kNvfp4) y = __fmul_rn(y, g);
    if (v != 0.f && y == 0.f) ++underflow;
    if (encoded && clampsAt<F>(s.useDiv ? __fdiv_rn(v, s.div) : __fmul_rn(v, s.mul))) ++saturated;
  }
  // Sums of the warp into the accumulator (every lane calls it).
  __device__ void flush(StatsAcc* acc) {
    unsigned long long c[3] = {nonfinite, underflow, saturated};
    unsigned long long lo = sMin, hi = sMax;
    unsigned int am = __float_as_uint(amax);
    for (int o = 16; o > 0; o >>= 1) {
      for (int i = 0; i < 3; ++i) c[i] += __shfl_xor_sync(0xffffffffu, c[i], o);
      const unsigned long long l2 = __shfl_xor_sync(0xffffffffu, lo, o), h2 = __shfl_xor_sync(0xffffffffu, hi, o);
      lo = l2 < lo ? l2 : lo;
      hi = h2 > hi ? h2 : hi;
      am = max(am, __shfl_xor_sync(0xffffffffu, am, o));
    }
    if ((threadIdx.x & 31) == 0) {
      if (c[0]) atomicAdd(&acc->nonfinite, c[0]);
      if (c[1]) atomicAdd(&acc->underflow, c[1]);
      if (c[2]) atomicAdd(&acc->saturated, c[2]);
      if (lo != ~0ull) atomicMin(&acc->sMin, lo);
      if (hi) atomicMax(&acc->sMax, hi);
      if (am) atomicMax(&acc->amax, am);
    }
  }
};

// Blocks along len (stride inner), one thread per block; tensorwise FP8 one thread per element.
template <typename T, int F>
__global__ void statsK(const T* __restrict__ x, uint64_t outer, uint64_t len, uint64_t inner, const float* tensorAmax, int rceil, StatsAcc* acc) {
  constexpr int B = blockOf(F);
  StatsLocal st;
  float g = 0.f;
  if constexpr (F == kNvfp4) g = tensorScale<F>(*tensorAmax);
  if constexpr (isTensorwise(F)) {
    const BlockScale s = fp8Scale<F>(*tensorAmax);
    const uint64_t n = outer * len * inner, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
    for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) st.element<F>(toF(x[i]), s, s.div, 0.f, true);
  } else {
    forEachBlock<B>(x, outer, len, inner, [&](uint64_t base, float m, bool sp) {
      const BlockQuant q = blockQuant<F>(m, sp, rceil, g);
      if (!sp && m > 0.f && q.S > 0.0 && isfinite(q.S)) st.scale(q.S);
      for (int k = 0; k < B; ++k) st.element<F>(toF(x[base + k * inner]), q.s, q.dec, g, q.encoded);
    });
  }
  st.flush(acc);
}

// 128 x 128 tiles of [len, inner] matrices: one CTA per tile.
template <typename T>
__global__ void statsTileK(const T* __restrict__ x, uint64_t len, uint64_t inner, StatsAcc* acc) {
  const uint64_t tilesC = inner / 128, tilesR = len / 128;
  const uint64_t o = blockIdx.x / (tilesR * tilesC), tr = (blockIdx.x / tilesC) % tilesR, tc = blockIdx.x % tilesC;
  const uint64_t base = o * len * inner + tr * 128 * inner + tc * 128;
  float m;
  bool sp;
  tileAmax(x, base, inner, m, sp);
  const BlockScale s = fp8Scale<kBlk128x128>(m);
  StatsLocal st;
  if (threadIdx.x == 0 && !sp && m > 0.f) st.scale(s.div);
  for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) st.element<kBlk128x128>(toF(x[base + (e / 128) * inner + e % 128]), s, s.div, 0.f, true);
  st.flush(acc);
}

// The six values (tensorwise FP8: its one scale counts when the tensor is finite and not all zero).
template <int F>
__global__ void statsFinishK(const StatsAcc* acc, uint64_t n, float* out) {
  const double dn = static_cast<double>(n);
  const float amax = __uint_as_float(acc->amax);
  unsigned long long lo = acc->sMin, hi = acc->sMax;
  if constexpr (isTensorwise(F)) {
    if (acc->nonfinite == 0 && amax > 0.f) lo = hi = static_cast<unsigned long long>(__double_as_longlong(static_cast<double>(fp8Scale<F>(amax).div)));
  }
  out[0] = amax;
  out[1] = static_cast<float>(static_cast<double>(acc->nonfinite) / dn);
  out[2] = static_cast<float>(static_cast<double>(acc->underflow) / dn);
  out[3] = static_cast<float>(static_cast<double>(acc->saturated) / dn);
  const bool none = lo == ~0ull;
  out[4] = none ? __uint_as_float(0x7fffffff) : static_cast<float>(log2(__longlong_as_double(static_cast<long long>(lo))));
  out[5] = none ? __uint_as_float(0x7fffffff) : static_cast<float>(log2(__longlong_as_double(static_cast<long long>(hi))));
}

}  // namespace

Napi::Value QuantStats(const Napi::CallbackInfo& info) {
  const abi::QuantStatsArgs a = abi::readQuantStats(info);
  Napi::Env env = info.Env();
  const BlockedCall c = blockedCall(env, a, "quantStats x");
  float* out = a.stats.ptr<float>(env, 6);
  const cudaStream_t s = c.s;
  const int dtype = c.dtype, B = c.B, rceil = c.rceil;
  const uint64_t outer = c.outer, len = c.len, inner = c.inner, n = c.n;
  const void* x = c.x;
  const bool withAmax = needsTensorAmax(c);
  uint8_t* ws = a.workspace.take<uint8_t>(env, kStatsAmaxOffset + (withAmax ? sizeof(float) : 0), alignof(StatsAcc));
  StatsAcc* acc = reinterpret_cast<StatsAcc*>(ws);
  DW_CUDA(env, cudaMemsetAsync(acc, 0, sizeof(StatsAcc), s), "cudaMemsetAsync (quantStats)");
  DW_CUDA(env, cudaMemsetAsync(&acc->sMin, 0xff, sizeof(acc->sMin), s), "cudaMemsetAsync (quantStats)");
  float* amax = tensorAmaxFirst(env, c, withAmax ? reinterpret_cast<float*>(ws + kStatsAmaxOffset) : nullptr);
  dispatchFormat(env, c.f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    if (n) {
      DW_DISPATCH_FLOAT(env, dtype, T, {
        if constexpr (F == kBlk128x128) {
          const uint64_t tiles = outer * (len / 128) * (inner / 128);
          if (tiles > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 tiles for quantStats");
          statsTileK<T><<<static_cast<unsigned>(tiles), 256, 0, s>>>(static_cast<const T*>(x), len, inner, acc);
        } else {
          statsK<T, F><<<blocksFor(B ? n / B : n), 256, 0, s>>>(static_cast<const T*>(x), outer, len, inner, amax, rceil, acc);
        }
      });
    }
    statsFinishK<F><<<1, 1, 0, s>>>(acc, n ? n : 1, out);
  });
  checkLaunch(env, "quantStats");
  return env.Undefined();
}

}  // namespace dw::quant

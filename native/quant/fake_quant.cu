// Fake-quantize (quantization family; see quant.cpp).
//
//   fakeQuant(stream, fmt, scaleMode, dtype, outer, len, inner, x, y)
//       y = dequantize(quantize(x)) in x's storage, x viewed as [outer, len, inner] with blocks of
//       consecutive elements along len (for 128 x 128 tiles: along len and inner).
//
// Scratch: tensorwise FP8 and NVFP4 first reduce the tensor amax into g_fakeQuantAmax, one word per
// device (shared with quantStats through tensorAmaxFirst).
#include "quant/quant.h"

#include "quant/fake_quant.cuh"

#include <string>

namespace dw::quant {
namespace {

// One thread per block of B elements along len (stride inner). Tensorwise: one thread per element.
template <typename T, int F>
__global__ void fakeQuantK(const T* __restrict__ x, T* __restrict__ y, uint64_t outer, uint64_t len, uint64_t inner, const float* amax, int rceil) {
  constexpr int B = blockOf(F);
  float g = 0.f;
  if constexpr (F == kNvfp4) g = tensorScale<F>(*amax);
  if constexpr (isTensorwise(F)) {
    const BlockScale fixed = fp8Scale<F>(*amax);
    const uint64_t n = outer * len * inner, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
    for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
      y[i] = fromF<T>(decElem<F>(encode<F>(toF(x[i]), fixed)) * fixed.div);
  } else {
    forEachBlock<B>(x, outer, len, inner, [&](uint64_t base, float m, bool sp) {
      const BlockQuant q = blockQuant<F>(m, sp, rceil, g);
      for (int k = 0; k < B; ++k) {
        float v = decElem<F>(encode<F>(toF(x[base + k * inner]), q.s)) * q.dec;
        if constexpr (F == kNvfp4) v = __fmul_rn(v, g);
        y[base + k * inner] = fromF<T>(v);
      }
    });
  }
}

// 128 x 128 tiles of [len, inner] matrices: one CTA per tile.
template <typename T>
__global__ void fakeQuantTileK(const T* __restrict__ x, T* __restrict__ y, uint64_t len, uint64_t inner) {
  const uint64_t tilesC = inner / 128, tilesR = len / 128;
  const uint64_t o = blockIdx.x / (tilesR * tilesC), tr = (blockIdx.x / tilesC) % tilesR, tc = blockIdx.x % tilesC;
  const uint64_t base = o * len * inner + tr * 128 * inner + tc * 128;
  float m;
  bool sp;
  tileAmax(x, base, inner, m, sp);
  const BlockScale s = fp8Scale<kBlk128x128>(m);
  for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) {
    const uint64_t k = base + (e / 128) * inner + e % 128;
    y[k] = fromF<T>(decE4M3(encode<kBlk128x128>(toF(x[k]), s)) * s.div);
  }
}

__device__ float g_fakeQuantAmax;
void* g_fakeQuantAmaxAddr[64];

}  // namespace

BlockedCall blockedArgs(Args& a, const char* fn) {
  Napi::Env env = a.env();
  BlockedCall c{};
  c.s = a.stream();
  c.f = static_cast<int>(a.u64("format code", kNumFormats - 1));
  c.rceil = static_cast<int>(a.u64("scaleMode (0 floor, 1 rceil)", 1));
  c.dtype = a.floatDtype();
  c.outer = a.u64("outer"), c.len = a.u64("len"), c.inner = a.u64("inner");
  c.n = c.outer * c.len * c.inner;
  c.B = blockOf(c.f);
  if (c.B && c.len % c.B != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected a length along the axis divisible by ") + std::to_string(c.B) + " for " + fmtName(c.f) + " but received " + std::to_string(c.len));
  if (c.f == kBlk128x128 && c.inner % 128 != 0)
    fail(env, "SHAPE_MISMATCH", "Expected both of the last two dimensions divisible by 128 for fp8-block128x128 but received " + std::to_string(c.len) + " x " + std::to_string(c.inner));
  c.x = a.dev(c.n, dtypeBytes(c.dtype), (std::string(fn) + " x").c_str());
  return c;
}

float* tensorAmaxFirst(Napi::Env env, const BlockedCall& c) {
  if (c.n == 0 || !(isTensorwise(c.f) || c.f == kNvfp4)) return nullptr;
  float* amax = static_cast<float*>(deviceSymbol(env, g_fakeQuantAmax, g_fakeQuantAmaxAddr, "g_fakeQuantAmax"));
  launchAmax(env, c.s, c.dtype, c.x, c.n, amax);
  return amax;
}

Napi::Value FakeQuant(const Napi::CallbackInfo& info) {
  Args a(info, "fakeQuant");
  Napi::Env env = a.env();
  const BlockedCall c = blockedArgs(a, "fakeQuant");
  void* y = a.dev(c.n, dtypeBytes(c.dtype), "fakeQuant y");
  a.end();
  if (c.n == 0) return env.Undefined();
  const cudaStream_t s = c.s;
  const int dtype = c.dtype, B = c.B, rceil = c.rceil;
  const uint64_t outer = c.outer, len = c.len, inner = c.inner, n = c.n;
  const void* x = c.x;
  float* amax = tensorAmaxFirst(env, c);
  dispatchFormat(env, c.f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    DW_DISPATCH_FLOAT(env, dtype, T, {
      if constexpr (F == kBlk128x128) {
        const uint64_t tiles = outer * (len / 128) * (inner / 128);
        if (tiles > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 tiles for fakeQuant");
        fakeQuantTileK<T><<<static_cast<unsigned>(tiles), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), len, inner);
      } else {
        const uint64_t work = B ? n / B : n;
        fakeQuantK<T, F><<<blocksFor(work), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), outer, len, inner, amax, rceil);
      }
    });
  });
  checkLaunch(env, "fakeQuant");
  return env.Undefined();
}

}  // namespace dw::quant

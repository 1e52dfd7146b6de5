// Fake-quantize (quantization family; see quant.cpp).
//
//   fakeQuant(stream, fmt, scaleMode, dtype, outer, len, inner, x, y, workspace)
//       y = dequantize(quantize(x)) in x's storage, x viewed as [outer, len, inner] with blocks of
//       consecutive elements along len (for 128 x 128 tiles: along len and inner).
//
// Workspace: tensorwise FP8 and NVFP4 first reduce the tensor amax into one float of the call's
// workspace (its first 4 bytes; tensorAmaxFirst, shared with quantStats); other formats use none.
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

}  // namespace

float* tensorAmaxFirst(Napi::Env env, const BlockedCall& c, float* word) {
  if (!needsTensorAmax(c)) return nullptr;
  launchAmax(env, c.s, c.dtype, c.x, c.n, word);
  return word;
}

Napi::Value FakeQuant(const Napi::CallbackInfo& info) {
  const abi::FakeQuantArgs a = abi::readFakeQuant(info);
  Napi::Env env = info.Env();
  const BlockedCall c = blockedCall(env, a, "fakeQuant x");
  void* y = a.y.ptr<void>(env, c.n, dtypeBytes(c.dtype));
  if (c.n == 0) return env.Undefined();
  const cudaStream_t s = c.s;
  const int dtype = c.dtype, B = c.B, rceil = c.rceil;
  const uint64_t outer = c.outer, len = c.len, inner = c.inner, n = c.n;
  const void* x = c.x;
  // The workspace: the tensor amax word, where the format uses it.
  float* word = nullptr;
  if (needsTensorAmax(c)) {
    word = a.workspace.take<float>(env, sizeof(float));
  }
  float* amax = tensorAmaxFirst(env, c, word);
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

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

// Blocks of B contiguous elements (inner == 1, the rowwise case): B / 4 lanes a block, 4 consecutive
// elements a lane, the block's amax by shuffles within its lanes. A warp reads 256 contiguous bytes
// (bf16) at once, where fakeQuantK's one thread per block reads 32 rows B elements apart (on the
// H200, 2026-12-05, the MoE GPT's emulated backward spent 41.9 ms in fake_quant, about 12% of copy
// bandwidth). Same arithmetic per element, so the same bits (max is exact in any order).
template <typename T, int F>
__global__ void fakeQuantRowK(const T* __restrict__ x, T* __restrict__ y, uint64_t n, const float* amax, int rceil) {
  constexpr int B = blockOf(F), L = B / 4;
  static_assert(B % 4 == 0 && L >= 1 && L <= 32 && 32 % L == 0, "a block's lanes must tile a warp");
  float g = 0.f;
  if constexpr (F == kNvfp4) g = tensorScale<F>(*amax);
  const uint64_t units = n / 4, total = (units + 31) / 32 * 32;  // whole warps in every iteration
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const bool on = t < units;  // a block's lanes are all on or all off (units is a multiple of L)
    float v[4];
    float m = 0.f;
    bool sp = false;
    for (int k = 0; k < 4; ++k) {
      v[k] = on ? toF(x[t * 4 + k]) : 0.f;
      accumulate(v[k], m, sp);
    }
    int spi = sp ? 1 : 0;
    for (int o = L / 2; o > 0; o >>= 1) {
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      spi |= __shfl_xor_sync(0xffffffffu, spi, o);
    }
    if (!on) continue;
    const BlockQuant q = blockQuant<F>(m, spi != 0, rceil, g);
    for (int k = 0; k < 4; ++k) {
      float r = decElem<F>(encode<F>(v[k], q.s)) * q.dec;
      if constexpr (F == kNvfp4) r = __fmul_rn(r, g);
      y[t * 4 + k] = fromF<T>(r);
    }
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
      } else if constexpr (!isTensorwise(F)) {
        if (inner == 1) {
          fakeQuantRowK<T, F><<<blocksFor(n / 4), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), n, amax, rceil);
        } else {
          fakeQuantK<T, F><<<blocksFor(n / B), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), outer, len, inner, amax, rceil);
        }
      } else {
        fakeQuantK<T, F><<<blocksFor(n), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), outer, len, inner, amax, rceil);
      }
    });
  });
  checkLaunch(env, "fakeQuant");
  return env.Undefined();
}

}  // namespace dw::quant

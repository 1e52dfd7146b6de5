// What fake_quant.cu and quant_stats.cu share: how fake_quant treats a block (blockQuant), the
// walks over blocks and 128 x 128 tiles, and the arguments both entry points take.
#pragma once
#include "common/abi/quant.gen.h"
#include "quant/formats.cuh"

#include <string>

namespace dw::quant {

// How fake_quant treats one block with largest |x| m (sp: it holds NaN or ±Inf): its scale, the
// decode scale its codes are multiplied by, the scale quant_stats reports (S), and whether its codes
// are encoded at all (false where they are all forced to zero).
struct BlockQuant {
  BlockScale s;
  float dec;
  double S;
  bool encoded;
};
template <int F>
__device__ __forceinline__ BlockQuant blockQuant(float m, bool sp, int rceil, float g) {
  BlockQuant q;
  if constexpr (isMx(F)) {
    q.s = mxScale<F>(m, sp, rceil);
    q.dec = q.s.scaleCode == 0xff ? __uint_as_float(0x7fffffff) : pow2(static_cast<int>(q.s.scaleCode) - 127);
    q.S = q.dec, q.encoded = !sp;
  } else if constexpr (F == kNvfp4) {
    q.s = nvfp4Scale(m, sp, g);
    q.dec = decE4M3(q.s.scaleCode);
    q.S = static_cast<double>(q.dec) * g, q.encoded = !q.s.zero;
  } else {
    q.s = fp8Scale<F>(m);
    q.dec = q.s.div, q.S = q.s.div, q.encoded = true;
  }
  return q;
}

// Grid-stride over the blocks of B elements along len (stride inner) of an [outer, len, inner]
// tensor, one thread per block: fn(base, m, sp) after the block's amax pass, with element k of the
// block at base + k * inner, m its largest |x| and sp whether it holds NaN or ±Inf.
template <int B, typename T, typename Fn>
__device__ __forceinline__ void forEachBlock(const T* __restrict__ x, uint64_t outer, uint64_t len, uint64_t inner, Fn&& fn) {
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x, blocks = outer * (len / B) * inner;
  for (uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < blocks; t += stride) {
    const uint64_t i = t % inner, b = (t / inner) % (len / B), o = t / inner / (len / B);
    const uint64_t base = (o * len + b * B) * inner + i;
    float m = 0.f;
    bool sp = false;
    for (int k = 0; k < B; ++k) accumulate(toF(x[base + k * inner]), m, sp);
    fn(base, m, sp);
  }
}

// The largest |x| (m) of a 128 x 128 tile at x + base (rows inner apart) over the CTA, and whether
// it holds NaN or ±Inf (sp); every thread gets both.
template <typename T>
__device__ __forceinline__ void tileAmax(const T* __restrict__ x, uint64_t base, uint64_t inner, float& m, bool& sp) {
  __shared__ float part[32];
  m = 0.f, sp = false;
  for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) accumulate(toF(x[base + (e / 128) * inner + e % 128]), m, sp);
  m = warpMax(m, 32);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = m;
  sp = __syncthreads_or(sp);
  m = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, part[w]);
}

// The arguments fakeQuant and quantStats share: (stream, fmt, scaleMode, dtype, outer, len, inner,
// x), x viewed as [outer, len, inner] with whole blocks along len (and 128 x 128 tiles of [len, inner]).
struct BlockedCall {
  cudaStream_t s;
  int f, rceil, dtype, B;
  uint64_t outer, len, inner, n;
  const void* x;
};

// The shared part of a fakeQuant or quantStats call (A: abi::FakeQuantArgs or abi::QuantStatsArgs,
// as read), its shape rules checked and x's range (`what` names x in messages).
template <typename A>
BlockedCall blockedCall(Napi::Env env, const A& a, const char* what) {
  BlockedCall c{};
  c.s = a.stream;
  c.f = a.format;
  c.rceil = a.scaleMode == abi::scaleMode::rceil ? 1 : 0;
  c.dtype = a.dtype;
  c.outer = a.outer, c.len = a.len, c.inner = a.inner;
  c.B = blockOf(c.f);
  if (c.B && c.len % c.B != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected a length along the axis divisible by ") + std::to_string(c.B) + " for " + fmtName(c.f) + " but received " + std::to_string(c.len));
  if (c.f == kBlk128x128 && c.inner % 128 != 0)
    fail(env, "SHAPE_MISMATCH", "Expected both of the last two dimensions divisible by 128 for fp8-block128x128 but received " + std::to_string(c.len) + " x " + std::to_string(c.inner));
  c.n = mulSize(env, mulSize(env, c.outer, c.len, what), c.inner, what);
  c.x = a.x.template ptr<void>(env, c.n, dtypeBytes(c.dtype));
  return c;
}

// The bytes of the workspace the TS candidates of fakeQuant and quantStats declare
// (packages/precision/src/cuda/fake_quant.ts, BLOCKED_WORKSPACE): what either may use at most.
constexpr uint64_t kBlockedWorkspaceBytes = 256;

// Whether the call's scales come from the tensor amax (tensorwise FP8, NVFP4), which is then
// reduced first, into one float of the call's workspace.
inline bool needsTensorAmax(const BlockedCall& c) { return c.n != 0 && (isTensorwise(c.f) || c.f == kNvfp4); }

// Where needsTensorAmax(c): reduces the tensor amax into `word` (a float of the call's workspace,
// on the call's stream) and returns it; else null.
float* tensorAmaxFirst(Napi::Env env, const BlockedCall& c, float* word);

}  // namespace dw::quant

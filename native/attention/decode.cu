// Decoding with a key/value cache (@deepwell/attention-sparsek: kv_cache_write, sdpa_decode), the two
// kernels a generation step needs beside the model's ordinary ones. Both read the positions of the
// step's tokens from device memory (i32 pos[n]), so one captured CUDA graph serves every step: the
// host writes the new positions and replays it.
//
//   kvCacheWrite(stream, dtype, B, Hkv, n, Tmax, D, tokenStride, kcache, vcache, k, v, pos, kout, vout)
//       kout = kcache, vout = vcache, then for each token i (in order, so a repeated position keeps
//       the last token's row) kout[b, h, pos[i], :] = k[b, i, h, :] and the same for v. The caches
//       are [B, Hkv, Tmax, D]; k and v are the key and value heads inside the packed QKV projection
//       output: element (b, i, h, d) at b·n·tokenStride + i·tokenStride + h·D + d (each tensor
//       argument at its first head). kout may be kcache itself (the step updates its cache in place,
//       the usual case) or a range of its own (then kcache is copied there first); a partial
//       overlap is refused. A position outside [0, Tmax) writes nothing (the op's host check refuses
//       it before a step: pos is an index input).
//   sdpaDecode(stream, dtype, B, H, Hkv, n, Tmax, D, scale, qTokenStride, q, kcache, vcache, pos, out)
//       out[b, i, h, :] = softmax_j(scale · q[b, i, h] · kcache[b, h / (H / Hkv), j]) · vcache[...]
//       over the keys j <= pos[i] (clamped to [0, Tmax)): causal attention of the step's tokens over
//       the cache. q's element (b, i, h, d) is at b·n·qTokenStride + i·qTokenStride + h·D + d; out is
//       [B, n, H, D], contiguous. A row that sees no key (pos < 0) gets 0.
//
// Why this shape: a decode step has one query row per head (B·n·H rows) and up to Tmax keys each, so
// the work is spread over the keys: one block of 256 threads per query row, 32 groups of 8 lanes,
// group g taking keys g, g + 32, ... with each lane owning a contiguous eighth of the head dimension
// (a key's score is 3 shuffles away). Each group keeps an online softmax (running max, sum and an FP32
// accumulator for its eighth); the 32 groups are combined in shared memory in a fixed order, so the
// result is the same bits on every run (no atomics). Arithmetic is FP32; storage f32, bf16 or f16.
#include "attention/checks.h"
#include "common/abi/attention.gen.h"
#include "common/dtype.h"
#include "common/launch.h"

#include <cmath>

namespace dw {
namespace attention {
namespace {

constexpr int kMaxD = 256;
constexpr int kLanes = 8;                 // lanes sharing one key
constexpr int kGroups = 256 / kLanes;     // keys in flight per block
constexpr int kMaxE = kMaxD / kLanes;     // head elements per lane

struct DecodeDims {
  int64_t B, H, Hkv, n, Tmax, D, qTokenStride;
  float scale;
};

template <typename T>
__global__ void __launch_bounds__(256) kvCacheWriteK(int64_t B, int64_t Hkv, int64_t n, int64_t Tmax, int64_t D, int64_t tokenStride, const T* k, const T* v,
                                                     const int* pos, T* kout, T* vout) {
  const int64_t total = B * Hkv * D;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = e % D, h = (e / D) % Hkv, b = e / (D * Hkv);
    for (int64_t i = 0; i < n; ++i) {
      const int p = pos[i];
      if (p < 0 || p >= Tmax) continue;
      const int64_t src = b * n * tokenStride + i * tokenStride + h * D + d;
      const int64_t dst = ((b * Hkv + h) * Tmax + p) * D + d;
      kout[dst] = k[src];
      vout[dst] = v[src];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(256) sdpaDecodeK(DecodeDims n, const T* q, const T* kc, const T* vc, const int* pos, T* out) {
  const int64_t h = blockIdx.x, i = blockIdx.y, b = blockIdx.z;
  const int64_t hk = h / (n.H / n.Hkv);
  const int g = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const unsigned gmask = 0xffu << (threadIdx.x & 24u);  // this group's 8 lanes in the warp
  const int E = static_cast<int>((n.D + kLanes - 1) / kLanes);
  const int64_t d0 = int64_t(lane) * E;
  const T* qrow = q + b * n.n * n.qTokenStride + i * n.qTokenStride + h * n.D;
  float qr[kMaxE], acc[kMaxE];
#pragma unroll
  for (int t = 0; t < kMaxE; ++t) {
    qr[t] = (t < E && d0 + t < n.D) ? toF(qrow[d0 + t]) * n.scale : 0.f;
    acc[t] = 0.f;
  }
  const int p = pos[i];
  const int64_t end = p < 0 ? 0 : (p >= n.Tmax ? n.Tmax : int64_t(p) + 1);
  const T* kb = kc + (b * n.Hkv + hk) * n.Tmax * n.D;
  const T* vb = vc + (b * n.Hkv + hk) * n.Tmax * n.D;
  float m = -INFINITY, l = 0.f;
  for (int64_t j = g; j < end; j += kGroups) {
    const T* kr = kb + j * n.D;
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < kMaxE; ++t)
      if (t < E && d0 + t < n.D) s += qr[t] * toF(kr[d0 + t]);
    // The 8 lanes of a group are aligned in the warp: xor 4, 2, 1 stays inside it. The mask names
    // only the group's lanes: the 4 groups of a warp can run different numbers of keys (a full-warp
    // mask here, with some lanes already out of the loop, is undefined and hangs).
    s += __shfl_xor_sync(gmask, s, 4);
    s += __shfl_xor_sync(gmask, s, 2);
    s += __shfl_xor_sync(gmask, s, 1);
    const float mn = fmaxf(m, s);
    const float c = expf(m - mn);  // 0 on the first key (m = -inf)
    const float e = expf(s - mn);
    l = l * c + e;
    const T* vr = vb + j * n.D;
#pragma unroll
    for (int t = 0; t < kMaxE; ++t)
      if (t < E && d0 + t < n.D) acc[t] = acc[t] * c + e * toF(vr[d0 + t]);
    m = mn;
  }
  __shared__ float sm[kGroups], sl[kGroups];
  __shared__ float sacc[kGroups][kMaxD];
  if (lane == 0) {
    sm[g] = m;
    sl[g] = l;
  }
#pragma unroll
  for (int t = 0; t < kMaxE; ++t)
    if (t < E && d0 + t < n.D) sacc[g][d0 + t] = acc[t];
  __syncthreads();
  float M = -INFINITY;
  for (int r = 0; r < kGroups; ++r) M = fmaxf(M, sm[r]);
  T* orow = out + ((b * n.n + i) * n.H + h) * n.D;
  for (int64_t d = threadIdx.x; d < n.D; d += blockDim.x) {
    float L = 0.f, o = 0.f;
    if (M != -INFINITY) {
      for (int r = 0; r < kGroups; ++r) {
        if (sm[r] == -INFINITY) continue;  // a group that saw no key
        const float w = expf(sm[r] - M);
        L += sl[r] * w;
        o += sacc[r][d] * w;
      }
    }
    orow[d] = fromF<T>(L > 0.f ? o / L : 0.f);
  }
}

// The caches' shape checked: [B, Hkv, Tmax, D] within 2^53 - 1 elements; grid dimensions in range.
uint64_t cacheElems(Napi::Env env, uint64_t B, uint64_t Hkv, uint64_t Tmax, uint64_t D, const char* fn) {
  if (Tmax > 2147483647u || B > 65535 || Hkv > 65535) fail(env, "INVALID_ARGUMENT", std::string("Expected Tmax < 2^31 and B, Hkv <= 65535 for ") + fn);
  return mulSize(env, mulSize(env, mulSize(env, B, Hkv, fn), Tmax, fn), D, fn);
}

}  // namespace

Napi::Value KvCacheWrite(const Napi::CallbackInfo& info) {
  const abi::KvCacheWriteArgs a = abi::readKvCacheWrite(info);
  Napi::Env env = info.Env();
  const char* fn = "kvCacheWrite";
  if (a.D == 0) fail(env, "INVALID_ARGUMENT", std::string("Expected a head dimension of at least 1 for ") + fn);
  if (a.n > 2147483647u) fail(env, "INVALID_ARGUMENT", std::string("Expected n < 2^31 for ") + fn);
  if (a.tokenStride < a.Hkv * a.D) fail(env, "INVALID_ARGUMENT", std::string("Expected a tokenStride of at least Hkv·D for ") + fn);
  const uint64_t cache = cacheElems(env, a.B, a.Hkv, a.Tmax, a.D, fn);
  // The source's extent: (B·n - 1)·tokenStride + Hkv·D elements (0 when there are no tokens).
  const uint64_t tokens = mulSize(env, a.B, a.n, fn);
  const uint64_t src = tokens == 0 ? 0 : addSize(env, mulSize(env, tokens - 1, a.tokenStride, fn), a.Hkv * a.D, fn);
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* kc = a.kcache.template ptr<T>(env, cache);
    const T* vc = a.vcache.template ptr<T>(env, cache);
    const T* k = a.k.template ptr<T>(env, src);
    const T* v = a.v.template ptr<T>(env, src);
    const int* pos = a.pos.template ptr<int>(env, a.n);
    T* ko = a.kout.template ptr<T>(env, cache);
    T* vo = a.vout.template ptr<T>(env, cache);
    const uint64_t bytes = cache * sizeof(T);
    const Span sko{ko, bytes, "kout"}, svo{vo, bytes, "vout"};
    checkNoOverlap(env, sko, {{k, src * sizeof(T), "k"}, {v, src * sizeof(T), "v"}, {pos, a.n * 4, "pos"}, {vc, bytes, "vcache"}, svo}, fn);
    checkNoOverlap(env, svo, {{k, src * sizeof(T), "k"}, {v, src * sizeof(T), "v"}, {pos, a.n * 4, "pos"}, {kc, bytes, "kcache"}}, fn);
    if (badOverlap(ko, bytes, kc, bytes) || badOverlap(vo, bytes, vc, bytes))
      fail(env, "INVALID_ARGUMENT", std::string("Expected kout and vout of ") + fn + " to be kcache and vcache themselves or apart from them but received partly overlapping ranges");
    if (cache == 0) return env.Undefined();
    if (ko != kc) DW_CUDA(env, cudaMemcpyAsync(ko, kc, bytes, cudaMemcpyDeviceToDevice, a.stream), "kvCacheWrite copy of kcache");
    if (vo != vc) DW_CUDA(env, cudaMemcpyAsync(vo, vc, bytes, cudaMemcpyDeviceToDevice, a.stream), "kvCacheWrite copy of vcache");
    if (tokens == 0) return env.Undefined();
    const uint64_t total = a.B * a.Hkv * a.D;
    kvCacheWriteK<T><<<blocksFor(total), 256, 0, a.stream>>>(a.B, a.Hkv, a.n, a.Tmax, a.D, a.tokenStride, k, v, pos, ko, vo);
  });
  checkLaunch(env, fn);
  return env.Undefined();
}

Napi::Value SdpaDecode(const Napi::CallbackInfo& info) {
  const abi::SdpaDecodeArgs a = abi::readSdpaDecode(info);
  Napi::Env env = info.Env();
  const char* fn = "sdpaDecode";
  checkSizes(env, a.B, a.H, a.Hkv, a.n, a.Tmax, a.D, fn);
  if (!std::isfinite(a.scale)) fail(env, "INVALID_ARGUMENT", std::string("Expected a finite scale for ") + fn);
  if (a.n > 65535) fail(env, "INVALID_ARGUMENT", std::string("Expected at most 65535 tokens a step for ") + fn);
  if (a.qTokenStride < a.H * a.D) fail(env, "INVALID_ARGUMENT", std::string("Expected a qTokenStride of at least H·D for ") + fn);
  const uint64_t cache = cacheElems(env, a.B, a.Hkv, a.Tmax, a.D, fn);
  const uint64_t tokens = mulSize(env, a.B, a.n, fn);
  const uint64_t qx = tokens == 0 ? 0 : addSize(env, mulSize(env, tokens - 1, a.qTokenStride, fn), a.H * a.D, fn);
  const uint64_t ox = mulSize(env, tokens, a.H * a.D, fn);
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* q = a.q.template ptr<T>(env, qx);
    const T* kc = a.kcache.template ptr<T>(env, cache);
    const T* vc = a.vcache.template ptr<T>(env, cache);
    const int* pos = a.pos.template ptr<int>(env, a.n);
    T* out = a.out.template ptr<T>(env, ox);
    checkNoOverlap(env, {out, ox * sizeof(T), "out"}, {{q, qx * sizeof(T), "q"}, {kc, cache * sizeof(T), "kcache"}, {vc, cache * sizeof(T), "vcache"}, {pos, a.n * 4, "pos"}}, fn);
    if (ox == 0) return env.Undefined();
    const DecodeDims n{int64_t(a.B), int64_t(a.H), int64_t(a.Hkv), int64_t(a.n), int64_t(a.Tmax), int64_t(a.D), int64_t(a.qTokenStride), static_cast<float>(a.scale)};
    sdpaDecodeK<T><<<dim3(static_cast<unsigned>(a.H), static_cast<unsigned>(a.n), static_cast<unsigned>(a.B)), 256, 0, a.stream>>>(n, q, kc, vc, pos, out);
  });
  checkLaunch(env, fn);
  return env.Undefined();
}

}  // namespace attention
}  // namespace dw

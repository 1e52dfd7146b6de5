// The general path of the sdpa op (@deepwell/attention-sparsek): scaled dot-product attention,
// forward and backward, on CUDA cores, for any S, any head dimension up to 256, causal or not,
// grouped-query heads, and either layout ([B, heads, S, D] or [B, S, heads, D]).
//
// Why this shape: it is the correct, deterministic fallback that every shape can take, written
// for clarity rather than speed (no tensor cores, no shared-memory tiling). The fast Hopper kernels
// (TMA, wgmma, warp specialization) are to come and will take the shapes they fit; this one serves
// the rest and is the device-side reference they are checked against.
//
//   sdpaForward(stream, dtype, B, H, Hkv, Sq, Sk, D, causal, layout, scale, q, k, v, out, lse)
//       One warp per query row: for each visible key, the score (a warp-shuffle sum of q · k),
//       then the online softmax (running max m, sum l, and out accumulated in FP32 registers, D / 32
//       elements per lane). out = acc / l, lse = m + log l (f32); a row that sees no key gets 0 and
//       -Infinity.
//   sdpaBackward(stream, dtype, B, H, Hkv, Sq, Sk, D, causal, layout, scale,
//                dout, q, k, v, out, lse, dq, dk, dv)
//       dq: one warp per query row, over its visible keys in order. dk, dv: one warp per key row of
//       a key/value head, over the query heads of its group and their queries in ascending order,
//       so every sum has one fixed order (no atomics): two runs give the same bits. delta_i =
//       dout_i · out_i is recomputed where needed.
//
// Causal: key j is visible to query i when j <= i + (Sk - Sq) (bottom-right aligned, as the op).
// Arithmetic is FP32 (exp and log with expf / logf), storage f32, bf16 or f16, rounded on store.
#include "common/abi/attention.gen.h"
#include "common/dtype.h"
#include "common/launch.h"

#include <cmath>

namespace dw {
namespace attention {
namespace {

constexpr int kMaxD = 256;
constexpr int kPerLane = kMaxD / 32;

struct Dims {
  int64_t B, H, Hkv, Sq, Sk, D;
  bool causal, bshd;
  float scale;
  uint64_t nq, nk;  // elements of q (and out, dout, dq) and of k (and v, dk, dv)
};

// Element offset of row s of head h of batch b in a tensor of `heads` heads and length S.
__device__ __forceinline__ int64_t rowAt(const Dims& n, int64_t heads, int64_t S, int64_t b, int64_t h, int64_t s) {
  return (n.bshd ? (b * S + s) * heads + h : (b * heads + h) * S + s) * n.D;
}

// Keys [0, visibleEnd) are visible to query i.
__device__ __forceinline__ int64_t visibleEnd(const Dims& n, int64_t i) {
  if (!n.causal) return n.Sk;
  const int64_t e = i + n.Sk - n.Sq + 1;
  return e < 0 ? 0 : e > n.Sk ? n.Sk : e;
}

// The sum over the warp, the same bits in every lane (xor butterfly).
__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// a · b over a row of D elements (lane owns d = lane, lane + 32, ...).
template <typename T>
__device__ __forceinline__ float rowDot(const T* a, const T* b, int64_t D) {
  float s = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += 32) s += toF(a[d]) * toF(b[d]);
  return warpSum(s);
}

template <typename T>
__global__ void __launch_bounds__(32) sdpaFwdK(Dims n, const T* q, const T* k, const T* v, T* out, float* lse) {
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t hk = h / (n.H / n.Hkv);
  const T* qr = q + rowAt(n, n.H, n.Sq, b, h, i);
  float acc[kPerLane];
  for (int c = 0; c < kPerLane; ++c) acc[c] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int64_t end = visibleEnd(n, i);
  for (int64_t j = 0; j < end; ++j) {
    const int64_t ko = rowAt(n, n.Hkv, n.Sk, b, hk, j);
    const float s = n.scale * rowDot(qr, k + ko, n.D);
    const float mNew = fmaxf(m, s);
    const float corr = expf(m - mNew), p = expf(s - mNew);
    l = l * corr + p;
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t d = threadIdx.x + 32 * c;
      if (d < n.D) acc[c] = acc[c] * corr + p * toF(v[ko + d]);
    }
    m = mNew;
  }
  T* orow = out + rowAt(n, n.H, n.Sq, b, h, i);
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = threadIdx.x + 32 * c;
    if (d < n.D) orow[d] = fromF<T>(end > 0 ? acc[c] / l : 0.f);
  }
  if (threadIdx.x == 0) lse[(b * n.H + h) * n.Sq + i] = end > 0 ? m + logf(l) : -INFINITY;
}

template <typename T>
__global__ void __launch_bounds__(32) sdpaDqK(Dims n, const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse, T* dq) {
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t hk = h / (n.H / n.Hkv);
  const int64_t qo = rowAt(n, n.H, n.Sq, b, h, i);
  const float delta = rowDot(dout + qo, out + qo, n.D);
  const float L = lse[(b * n.H + h) * n.Sq + i];
  float acc[kPerLane];
  for (int c = 0; c < kPerLane; ++c) acc[c] = 0.f;
  const int64_t end = visibleEnd(n, i);
  for (int64_t j = 0; j < end; ++j) {
    const int64_t ko = rowAt(n, n.Hkv, n.Sk, b, hk, j);
    const float p = expf(n.scale * rowDot(q + qo, k + ko, n.D) - L);
    const float ds = p * (rowDot(dout + qo, v + ko, n.D) - delta);
    for (int c = 0; c < kPerLane; ++c) {
      const int64_t d = threadIdx.x + 32 * c;
      if (d < n.D) acc[c] += n.scale * ds * toF(k[ko + d]);
    }
  }
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = threadIdx.x + 32 * c;
    if (d < n.D) dq[qo + d] = fromF<T>(acc[c]);
  }
}

template <typename T>
__global__ void __launch_bounds__(32) sdpaDkvK(Dims n, const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse, T* dk, T* dv) {
  const int64_t j = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int64_t group = n.H / n.Hkv;
  const int64_t ko = rowAt(n, n.Hkv, n.Sk, b, hk, j);
  // The first query that sees key j: j <= i + Sk - Sq.
  const int64_t first = n.causal ? (j - (n.Sk - n.Sq) > 0 ? j - (n.Sk - n.Sq) : 0) : 0;
  float accK[kPerLane], accV[kPerLane];
  for (int c = 0; c < kPerLane; ++c) accK[c] = accV[c] = 0.f;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
    for (int64_t i = first; i < n.Sq; ++i) {
      const int64_t qo = rowAt(n, n.H, n.Sq, b, h, i);
      const float p = expf(n.scale * rowDot(q + qo, k + ko, n.D) - lse[(b * n.H + h) * n.Sq + i]);
      const float ds = p * (rowDot(dout + qo, v + ko, n.D) - rowDot(dout + qo, out + qo, n.D));
      for (int c = 0; c < kPerLane; ++c) {
        const int64_t d = threadIdx.x + 32 * c;
        if (d < n.D) {
          accV[c] += p * toF(dout[qo + d]);
          accK[c] += n.scale * ds * toF(q[qo + d]);
        }
      }
    }
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = threadIdx.x + 32 * c;
    if (d < n.D) {
      dk[ko + d] = fromF<T>(accK[c]);
      dv[ko + d] = fromF<T>(accV[c]);
    }
  }
}

// The sizes of a call, checked: heads a multiple of kv heads, grid dimensions in range, element
// counts that fit 64 bits.
template <typename A>
Dims dimsOf(Napi::Env env, const A& a, const char* fn) {
  Dims n{static_cast<int64_t>(a.B), static_cast<int64_t>(a.H), static_cast<int64_t>(a.Hkv), static_cast<int64_t>(a.Sq), static_cast<int64_t>(a.Sk),
         static_cast<int64_t>(a.D), a.causal, a.layout, static_cast<float>(a.scale), 0, 0};
  if (a.Hkv == 0 || a.H % a.Hkv != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected H (") + std::to_string(a.H) + ") to be a multiple of Hkv (" + std::to_string(a.Hkv) + ") for " + fn);
  if (a.D == 0) fail(env, "INVALID_ARGUMENT", std::string("Expected a head dimension of at least 1 for ") + fn);
  if (a.Sq > 2147483647u || a.Sk > 2147483647u || a.H > 65535 || a.B > 65535)
    fail(env, "INVALID_ARGUMENT", std::string("Expected Sq, Sk < 2^31 and H, B <= 65535 for ") + fn);
  if (!(std::isfinite(a.scale))) fail(env, "INVALID_ARGUMENT", std::string("Expected a finite scale for ") + fn);
  n.nq = mulSize(env, mulSize(env, a.B * a.H, a.Sq, fn), a.D, fn);
  n.nk = mulSize(env, mulSize(env, a.B * a.Hkv, a.Sk, fn), a.D, fn);
  return n;
}

}  // namespace

Napi::Value SdpaForward(const Napi::CallbackInfo& info) {
  const abi::SdpaForwardArgs a = abi::readSdpaForward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "sdpaForward");
  const uint64_t nq = n.nq, nk = n.nk;
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* q = a.q.ptr<T>(env, nq);
    const T* k = a.k.ptr<T>(env, nk);
    const T* v = a.v.ptr<T>(env, nk);
    T* out = a.out.ptr<T>(env, nq);
    float* lse = a.lse.ptr<float>(env, a.B * a.H * a.Sq);
    if (nq == 0) return env.Undefined();
    sdpaFwdK<T><<<dim3(static_cast<unsigned>(a.Sq), static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, q, k, v, out, lse);
  });
  checkLaunch(env, "sdpaForward");
  return env.Undefined();
}

Napi::Value SdpaBackward(const Napi::CallbackInfo& info) {
  const abi::SdpaBackwardArgs a = abi::readSdpaBackward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "sdpaBackward");
  const uint64_t nq = n.nq, nk = n.nk;
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* dout = a.dout.ptr<T>(env, nq);
    const T* q = a.q.ptr<T>(env, nq);
    const T* k = a.k.ptr<T>(env, nk);
    const T* v = a.v.ptr<T>(env, nk);
    const T* out = a.out.ptr<T>(env, nq);
    const float* lse = a.lse.ptr<float>(env, a.B * a.H * a.Sq);
    T* dq = a.dq.ptr<T>(env, nq);
    T* dk = a.dk.ptr<T>(env, nk);
    T* dv = a.dv.ptr<T>(env, nk);
    if (nq > 0) sdpaDqK<T><<<dim3(static_cast<unsigned>(a.Sq), static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, dout, q, k, v, out, lse, dq);
    if (nk > 0) sdpaDkvK<T><<<dim3(static_cast<unsigned>(a.Sk), static_cast<unsigned>(a.Hkv), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, dout, q, k, v, out, lse, dk, dv);
  });
  checkLaunch(env, "sdpaBackward");
  return env.Undefined();
}

}  // namespace attention

void initAttention(Napi::Env env, Napi::Object exports) {
  using namespace attention;
  DW_ABI_ATTENTION_ENTRIES(DW_DEF_ENTRY)
}

}  // namespace dw

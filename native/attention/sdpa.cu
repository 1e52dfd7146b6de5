// The general path of the sdpa ops (@deepwell/attention-sparsek: sdpa, and sdpa_qkv on a packed QKV
// projection): scaled dot-product attention, forward and backward, on CUDA cores, for any S, any head
// dimension up to 256, causal or not, grouped-query heads, and any layout given by element strides.
//
// Why this shape: it is the correct, deterministic fallback that every shape can take, written
// for clarity rather than speed (no tensor cores, no shared-memory tiling). The fast Hopper kernels
// (TMA, wgmma, warp specialization) are to come and will take the shapes they fit; this one serves
// the rest and is the device-side reference they are checked against.
//
// Layout: element (b, h, s, d) of q and dq is at b·qsb + h·qsh + s·qss + d; of k, v, dk and dv at
// b·ksb + h·ksh + s·kss + d (k and v share strides, each from its own base); of out and dout at
// b·osb + h·osh + s·oss + d; lse is f32 [B, H, Sq], contiguous. [B, heads, S, D], [B, S, heads, D] and
// q, k, v inside one packed [B, S, H + 2·Hkv, D] buffer (each tensor argument at its head's byte
// offset) are all just strides, so no caller copies. Each tensor's extent (its largest element
// offset + 1) is checked against its allocation; outputs must not overlap any input, and rows of an
// output must not overlap each other. q, k and v may share one allocation, and so may dq, dk and dv
// (a packed backward writes disjoint heads of one buffer), so inputs are not checked against each
// other, nor dq, dk, dv against each other.
//
//   sdpaForward(stream, dtype, B, H, Hkv, Sq, Sk, D, causal, scale, q, k, v, out, lse,
//               qsb, qsh, qss, ksb, ksh, kss, osb, osh, oss, workspace)
//       One warp per query row: for each visible key, the score (a warp-shuffle sum of q · k),
//       then the online softmax (running max m, sum l, and out accumulated in FP32 registers, D / 32
//       elements per lane). out = acc / l, lse = m + log l (f32); a row that sees no key gets 0 and
//       -Infinity.
//   sdpaBackward(stream, dtype, B, H, Hkv, Sq, Sk, D, causal, scale, dout, q, k, v, out, lse,
//                dq, dk, dv, qsb, qsh, qss, ksb, ksh, kss, osb, osh, oss, workspace)
//       dq: one warp per query row, over its visible keys in order. dk, dv: one warp per key row of
//       a key/value head, over the query heads of its group and their queries in ascending order,
//       so every sum has one fixed order (no atomics): two runs give the same bits. delta_i =
//       dout_i · out_i is recomputed where needed.
//   The workspace may be empty: this path needs none (the argument is there because every attention
//   entry point takes the same arguments, and the fast kernels will use it).
//
// Causal: key j is visible to query i when j <= i + (Sk - Sq) (bottom-right aligned, as the op).
// Arithmetic is FP32 (exp and log with expf / logf), storage f32, bf16 or f16, rounded on store.
#include "attention/checks.h"
#include "common/abi/attention.gen.h"
#include "common/dtype.h"
#include "common/launch.h"

#include <cmath>

namespace dw {
namespace attention {
namespace {

constexpr int kMaxD = 256;
constexpr int kPerLane = kMaxD / 32;

// Element offset of row s of head h of batch b.
__device__ __forceinline__ int64_t rowAt(const RowStrides& st, int64_t b, int64_t h, int64_t s) {
  return b * st.b + h * st.h + s * st.s;
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
  const T* qr = q + rowAt(n.qs, b, h, i);
  float acc[kPerLane];
  for (int c = 0; c < kPerLane; ++c) acc[c] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int64_t end = visibleEnd(n, i);
  for (int64_t j = 0; j < end; ++j) {
    const int64_t ko = rowAt(n.ks, b, hk, j);
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
  T* orow = out + rowAt(n.os, b, h, i);
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
  const int64_t qo = rowAt(n.qs, b, h, i), oo = rowAt(n.os, b, h, i);
  const float delta = rowDot(dout + oo, out + oo, n.D);
  const float L = lse[(b * n.H + h) * n.Sq + i];
  float acc[kPerLane];
  for (int c = 0; c < kPerLane; ++c) acc[c] = 0.f;
  const int64_t end = visibleEnd(n, i);
  for (int64_t j = 0; j < end; ++j) {
    const int64_t ko = rowAt(n.ks, b, hk, j);
    const float p = expf(n.scale * rowDot(q + qo, k + ko, n.D) - L);
    const float ds = p * (rowDot(dout + oo, v + ko, n.D) - delta);
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
  const int64_t ko = rowAt(n.ks, b, hk, j);
  // The first query that sees key j: j <= i + Sk - Sq.
  const int64_t first = n.causal ? (j - (n.Sk - n.Sq) > 0 ? j - (n.Sk - n.Sq) : 0) : 0;
  float accK[kPerLane], accV[kPerLane];
  for (int c = 0; c < kPerLane; ++c) accK[c] = accV[c] = 0.f;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
    for (int64_t i = first; i < n.Sq; ++i) {
      const int64_t qo = rowAt(n.qs, b, h, i), oo = rowAt(n.os, b, h, i);
      const float p = expf(n.scale * rowDot(q + qo, k + ko, n.D) - lse[(b * n.H + h) * n.Sq + i]);
      const float ds = p * (rowDot(dout + oo, v + ko, n.D) - rowDot(dout + oo, out + oo, n.D));
      for (int c = 0; c < kPerLane; ++c) {
        const int64_t d = threadIdx.x + 32 * c;
        if (d < n.D) {
          accV[c] += p * toF(dout[oo + d]);
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

}  // namespace

Napi::Value SdpaForward(const Napi::CallbackInfo& info) {
  const abi::SdpaForwardArgs a = abi::readSdpaForward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "sdpaForward", false);
  // a.workspace may be empty: the general path takes no scratch.
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const FwdTensors<T> t = forwardTensors<T>(env, a, n, "sdpaForward");
    if (n.qRows == 0) return env.Undefined();
    sdpaFwdK<T><<<dim3(static_cast<unsigned>(a.Sq), static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, t.q, t.k, t.v, t.out, t.lse);
  });
  checkLaunch(env, "sdpaForward");
  return env.Undefined();
}

Napi::Value SdpaBackward(const Napi::CallbackInfo& info) {
  const abi::SdpaBackwardArgs a = abi::readSdpaBackward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "sdpaBackward", true);
  // a.workspace may be empty: the general path takes no scratch.
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const BwdTensors<T> t = backwardTensors<T>(env, a, n, "sdpaBackward");
    if (n.qRows > 0)
      sdpaDqK<T><<<dim3(static_cast<unsigned>(a.Sq), static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, t.dout, t.q, t.k, t.v, t.out, t.lse, t.dq);
    if (n.kRows > 0)
      sdpaDkvK<T><<<dim3(static_cast<unsigned>(a.Sk), static_cast<unsigned>(a.Hkv), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, t.dout, t.q, t.k, t.v, t.out, t.lse, t.dk, t.dv);
  });
  checkLaunch(env, "sdpaBackward");
  return env.Undefined();
}

}  // namespace attention

}  // namespace dw

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
#include "common/abi/attention.gen.h"
#include "common/dtype.h"
#include "common/launch.h"

#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

namespace dw {
namespace attention {
namespace {

constexpr int kMaxD = 256;
constexpr int kPerLane = kMaxD / 32;

// Element strides of one tensor's rows (d is contiguous).
struct RowStrides {
  int64_t b, h, s;
};

struct Dims {
  int64_t B, H, Hkv, Sq, Sk, D;
  bool causal;
  float scale;
  RowStrides qs, ks, os;  // q and dq; k, v, dk and dv; out and dout
  uint64_t qx, kx, ox;    // the extents of those tensors in elements (largest offset + 1; 0 if empty)
  uint64_t qRows, kRows;  // B·H·Sq query rows and B·Hkv·Sk key rows
};

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

// a + b elements, failing instead of passing 2^53 - 1 (mulSize's partner).
inline uint64_t addSize(Napi::Env env, uint64_t a, uint64_t b, const char* what) {
  if (b > static_cast<uint64_t>(kMaxSafeInt) - a)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received " + std::to_string(a) + " + " + std::to_string(b));
  return a + b;
}

// The extent of a strided [B, heads, S, D] tensor in elements: its largest element offset + 1,
// (B-1)·sb + (heads-1)·sh + (S-1)·ss + D, or 0 when it has no rows; computed without overflow.
uint64_t extentOf(Napi::Env env, uint64_t B, uint64_t heads, uint64_t S, uint64_t D, uint64_t sb, uint64_t sh, uint64_t ss, const std::string& what) {
  if (B == 0 || heads == 0 || S == 0) return 0;
  uint64_t e = D;
  e = addSize(env, e, mulSize(env, B - 1, sb, what.c_str()), what.c_str());
  e = addSize(env, e, mulSize(env, heads - 1, sh, what.c_str()), what.c_str());
  return addSize(env, e, mulSize(env, S - 1, ss, what.c_str()), what.c_str());
}

// Rows of an output that never share an element, so no two warps write one: taken from the smallest
// stride up, each dimension of more than one row steps at least over the span of those inside it
// (sufficient, and true of every dense layout and of the heads of a packed QKV buffer).
void checkRowsDisjoint(Napi::Env env, uint64_t D, uint64_t B, uint64_t heads, uint64_t S, uint64_t sb, uint64_t sh, uint64_t ss, const char* name, const char* fn) {
  uint64_t dim[3][2] = {{B, sb}, {heads, sh}, {S, ss}};
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j)
      if (dim[j][1] < dim[i][1]) std::swap(dim[i], dim[j]);
  uint64_t span = D;  // every span here is at most the checked extent, < 2^53
  for (auto& d : dim) {
    if (d[0] < 2) continue;
    if (d[1] < span)
      fail(env, "INVALID_ARGUMENT", std::string("Expected strides for ") + name + " of " + fn + " whose rows do not overlap but received a stride of " + std::to_string(d[1]) +
                                        " elements over rows spanning " + std::to_string(span));
    span = (d[0] - 1) * d[1] + span;
  }
}

// Two byte ranges that share a byte (strict: unlike launch.h's badOverlap, the very same range is an
// overlap too, since no output of attention may be computed in place).
bool overlaps(const void* a, uint64_t ab, const void* b, uint64_t bb) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  return ab != 0 && bb != 0 && a0 < b0 + bb && b0 < a0 + ab;
}

// A device range of a call: a tensor's pointer and the bytes its extent spans.
struct Span {
  const void* p;
  uint64_t bytes;
  const char* name;
};

// Fails when an output's range meets an input's.
void checkNoOverlap(Napi::Env env, const Span& out, std::initializer_list<Span> ins, const char* fn) {
  for (const Span& in : ins)
    if (overlaps(out.p, out.bytes, in.p, in.bytes))
      fail(env, "INVALID_ARGUMENT", std::string("Expected ") + out.name + " of " + fn + " not to overlap the input " + in.name + " but received overlapping device ranges");
}

// The sizes and strides of a call, checked: heads a multiple of kv heads, grid dimensions in range,
// each tensor's extent within 2^53 - 1 elements, output rows that do not overlap.
template <typename A>
Dims dimsOf(Napi::Env env, const A& a, const char* fn, bool backward) {
  Dims n{static_cast<int64_t>(a.B), static_cast<int64_t>(a.H), static_cast<int64_t>(a.Hkv), static_cast<int64_t>(a.Sq), static_cast<int64_t>(a.Sk), static_cast<int64_t>(a.D),
         a.causal, static_cast<float>(a.scale),
         {static_cast<int64_t>(a.qsb), static_cast<int64_t>(a.qsh), static_cast<int64_t>(a.qss)},
         {static_cast<int64_t>(a.ksb), static_cast<int64_t>(a.ksh), static_cast<int64_t>(a.kss)},
         {static_cast<int64_t>(a.osb), static_cast<int64_t>(a.osh), static_cast<int64_t>(a.oss)}, 0, 0, 0, 0, 0};
  if (a.Hkv == 0 || a.H % a.Hkv != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected H (") + std::to_string(a.H) + ") to be a multiple of Hkv (" + std::to_string(a.Hkv) + ") for " + fn);
  if (a.D == 0) fail(env, "INVALID_ARGUMENT", std::string("Expected a head dimension of at least 1 for ") + fn);
  if (a.Sq > 2147483647u || a.Sk > 2147483647u || a.H > 65535 || a.B > 65535)
    fail(env, "INVALID_ARGUMENT", std::string("Expected Sq, Sk < 2^31 and H, B <= 65535 for ") + fn);
  if (!(std::isfinite(a.scale))) fail(env, "INVALID_ARGUMENT", std::string("Expected a finite scale for ") + fn);
  const std::string f(fn);
  n.qx = extentOf(env, a.B, a.H, a.Sq, a.D, a.qsb, a.qsh, a.qss, f + " q (qsb, qsh, qss)");
  n.kx = extentOf(env, a.B, a.Hkv, a.Sk, a.D, a.ksb, a.ksh, a.kss, f + " k and v (ksb, ksh, kss)");
  n.ox = extentOf(env, a.B, a.H, a.Sq, a.D, a.osb, a.osh, a.oss, f + " out (osb, osh, oss)");
  n.qRows = mulSize(env, a.B * a.H, a.Sq, fn);
  n.kRows = mulSize(env, a.B * a.Hkv, a.Sk, fn);
  checkRowsDisjoint(env, a.D, a.B, a.H, a.Sq, a.osb, a.osh, a.oss, "out (osb, osh, oss)", fn);
  if (backward) {
    checkRowsDisjoint(env, a.D, a.B, a.H, a.Sq, a.qsb, a.qsh, a.qss, "dq (qsb, qsh, qss)", fn);
    checkRowsDisjoint(env, a.D, a.B, a.Hkv, a.Sk, a.ksb, a.ksh, a.kss, "dk and dv (ksb, ksh, kss)", fn);
  }
  return n;
}

}  // namespace

Napi::Value SdpaForward(const Napi::CallbackInfo& info) {
  const abi::SdpaForwardArgs a = abi::readSdpaForward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "sdpaForward", false);
  // a.workspace may be empty: the general path takes no scratch.
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* q = a.q.ptr<T>(env, n.qx);
    const T* k = a.k.ptr<T>(env, n.kx);
    const T* v = a.v.ptr<T>(env, n.kx);
    T* out = a.out.ptr<T>(env, n.ox);
    float* lse = a.lse.ptr<float>(env, n.qRows);
    const Span sq{q, n.qx * sizeof(T), "q"}, sk{k, n.kx * sizeof(T), "k"}, sv{v, n.kx * sizeof(T), "v"}, so{out, n.ox * sizeof(T), "out"};
    checkNoOverlap(env, so, {sq, sk, sv}, "sdpaForward");
    checkNoOverlap(env, {lse, n.qRows * sizeof(float), "lse"}, {sq, sk, sv, so}, "sdpaForward");
    if (n.qRows == 0) return env.Undefined();
    sdpaFwdK<T><<<dim3(static_cast<unsigned>(a.Sq), static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, q, k, v, out, lse);
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
    const T* dout = a.dout.ptr<T>(env, n.ox);
    const T* q = a.q.ptr<T>(env, n.qx);
    const T* k = a.k.ptr<T>(env, n.kx);
    const T* v = a.v.ptr<T>(env, n.kx);
    const T* out = a.out.ptr<T>(env, n.ox);
    const float* lse = a.lse.ptr<float>(env, n.qRows);
    T* dq = a.dq.ptr<T>(env, n.qx);
    T* dk = a.dk.ptr<T>(env, n.kx);
    T* dv = a.dv.ptr<T>(env, n.kx);
    const std::initializer_list<Span> ins = {{dout, n.ox * sizeof(T), "dout"}, {q, n.qx * sizeof(T), "q"}, {k, n.kx * sizeof(T), "k"},
                                             {v, n.kx * sizeof(T), "v"}, {out, n.ox * sizeof(T), "out"}, {lse, n.qRows * sizeof(float), "lse"}};
    checkNoOverlap(env, {dq, n.qx * sizeof(T), "dq"}, ins, "sdpaBackward");
    checkNoOverlap(env, {dk, n.kx * sizeof(T), "dk"}, ins, "sdpaBackward");
    checkNoOverlap(env, {dv, n.kx * sizeof(T), "dv"}, ins, "sdpaBackward");
    if (n.qRows > 0) sdpaDqK<T><<<dim3(static_cast<unsigned>(a.Sq), static_cast<unsigned>(a.H), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, dout, q, k, v, out, lse, dq);
    if (n.kRows > 0) sdpaDkvK<T><<<dim3(static_cast<unsigned>(a.Sk), static_cast<unsigned>(a.Hkv), static_cast<unsigned>(a.B)), 32, 0, a.stream>>>(n, dout, q, k, v, out, lse, dk, dv);
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

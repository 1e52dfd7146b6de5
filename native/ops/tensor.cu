// CUDA kernels of the 'tensor' op family; see common/args.h for the conventions.
//
// Every entry point takes the stream handle first and a dtype code second, then sizes (plain
// integers), then each tensor as (allocation base, byte offset): inputs in the op's order, the
// output last. The TypeScript side is packages/ir/src/cuda/tensor.ts; the two must agree on every
// signature below. Semantics are those of the CPU references in packages/ir/src/ops/*.ts.
//
// Shared rules:
//   - Float tensors are f32, bf16 or f16 storage (one dtype per call); arithmetic is FP32 and
//     results are rounded to nearest even once, on store. Pure data movement (reshape, transpose,
//     slice, concat, broadcast_to) moves bits and also accepts i32.
//   - Shapes of the broadcasting, transposing and reducing ops come as `rank` followed by rank
//     numbers per shape; rank <= 8. The host code drops size-1 dimensions and merges contiguous
//     ones before launching.
//   - Reductions are deterministic: each output is reduced by one warp or one block in a fixed
//     order that depends on the shapes only (no atomics), accumulating in FP32.
//   - n = 0 (or any empty output) launches nothing; every launch is followed by checkLaunch.
#include "common/args.h"
#include "common/launch.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace dw {
namespace {

constexpr int kMaxRank = 8;
constexpr unsigned kThreads = 256;
constexpr uint64_t kI32Limit = uint64_t(1) << 31;  // 32-bit indexing below this many elements

// ---- host helpers -------------------------------------------------------------------------------

std::string num(uint64_t v) { return std::to_string(v); }

std::string dimsStr(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + num(s[i]);
  return r + "]";
}

void expectEq(Napi::Env env, uint64_t want, uint64_t got, const std::string& what) {
  if (want != got) fail(env, "INVALID_ARGUMENT", "Expected " + num(want) + " for " + what + " but received " + num(got));
}

int rankArg(Args& a) { return static_cast<int>(a.u64("rank", kMaxRank)); }

// Product of sizes, failing instead of overflowing past 2^53.
uint64_t product(Napi::Env env, const std::vector<uint64_t>& s, const char* what) {
  for (uint64_t d : s)
    if (d == 0) return 0;  // empty, however large the other dimensions
  uint64_t p = 1;
  for (uint64_t d : s) {
    if (p > static_cast<uint64_t>(kMaxSafeInt) / d)
      fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received the shape " + dimsStr(s));
    p *= d;
  }
  return p;
}

uint64_t mulChecked(Napi::Env env, uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > static_cast<uint64_t>(kMaxSafeInt) / a)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received " + num(a) + " x " + num(b));
  return a * b;
}

std::vector<uint64_t> contiguousStrides(const std::vector<uint64_t>& s) {
  std::vector<uint64_t> st(s.size());
  uint64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Multiprocessors of the current device (set by devArg), cached per device.
unsigned smCount(Napi::Env env) {
  static std::atomic<int> cache[64];
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  if (dev >= 0 && dev < 64) {
    int c = cache[dev].load(std::memory_order_relaxed);
    if (c > 0) return static_cast<unsigned>(c);
  }
  int sms = 0;
  DW_CUDA(env, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute(multiProcessorCount)");
  if (sms < 1) sms = 1;
  if (dev >= 0 && dev < 64) cache[dev].store(sms, std::memory_order_relaxed);
  return static_cast<unsigned>(sms);
}

// Blocks for `work` items at `perBlock` items a block, capped at `perSm` resident blocks per SM
// (grid-stride loops do the rest).
unsigned gridFor(Napi::Env env, uint64_t work, uint64_t perBlock, unsigned perSm = 8) {
  uint64_t b = (work + perBlock - 1) / perBlock;
  uint64_t cap = uint64_t(smCount(env)) * perSm;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// ---- device helpers -----------------------------------------------------------------------------

// A 16-byte pack of storage elements, loaded and stored as one 128-bit access.
template <typename T>
struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};

// Sizes (row-major, index 0 outermost) with one or two stride sets: the offset of flat index i of
// `size` in each strided tensor.
template <typename I>
struct Strided {
  int rank;
  I size[kMaxRank];
  I a[kMaxRank];
  I b[kMaxRank];
};

template <typename I>
__device__ __forceinline__ I offsetA(I i, const Strided<I>& s) {
  I off = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < s.rank) {
      I q = i / s.size[d];
      off += (i - q * s.size[d]) * s.a[d];
      i = q;
    }
  }
  return off;
}

template <typename I>
__device__ __forceinline__ void offsetAB(I i, const Strided<I>& s, I& oa, I& ob) {
  I x = 0, y = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < s.rank) {
      I q = i / s.size[d];
      I c = i - q * s.size[d];
      x += c * s.a[d];
      y += c * s.b[d];
      i = q;
    }
  }
  oa = x;
  ob = y;
}

template <typename I>
Strided<I> toStrided(const std::vector<uint64_t>& size, const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  Strided<I> s{};
  s.rank = static_cast<int>(size.size());
  for (size_t d = 0; d < size.size(); ++d) {
    s.size[d] = static_cast<I>(size[d]);
    s.a[d] = static_cast<I>(a[d]);
    s.b[d] = b.empty() ? I(0) : static_cast<I>(b[d]);
  }
  return s;
}

// ---- elementwise ops ---------------------------------------------------------------------------
//
//   fill(stream, dtype, n, value, out)
//   scale(stream, dtype, n, alpha, x, out)
//   gelu(stream, dtype, n, x, out)              silu(stream, dtype, n, x, out)
//   geluBackward(stream, dtype, n, g, x, out)   siluBackward(stream, dtype, n, g, x, out)
//   swiglu(stream, dtype, n, gate, up, out)
//   biasAdd(stream, dtype, rows, cols, x, bias, out)      x, out: rows*cols; bias: cols
//
// Float dtypes only. Grid-stride loops over 16-byte packs (two packs in flight per thread) when
// every pointer is 16-byte aligned, else over single elements; the n % pack tail is done by the
// first threads.

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluK = 0.044715f;

struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MulOp {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct ScaleOp {
  float alpha;
  __device__ float operator()(float x) const { return x * alpha; }
};

// gelu(x) = 0.5 x (1 + tanh(u)) = x sigmoid(2u) = x / (1 + exp(-2u)),  u = c (x + k x^3).
// exp overflowing to inf gives x * 0 = -0 for very negative x; x = -inf gives NaN as the
// reference does (-inf * 0).
__device__ __forceinline__ float geluF(float x) {
  float u = kGeluC * fmaf(kGeluK * x * x, x, x);
  return __fdividef(x, 1.f + __expf(-2.f * u));
}
struct GeluOp {
  __device__ float operator()(float x) const { return geluF(x); }
};

// gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2) with t = tanh(u); with s = sigmoid(2u):
// 0.5 (1 + t) = s and 1 - t^2 = 4 s (1 - s), so gelu'(x) = s (1 + 2c x (1 - s)(1 + 3k x^2)).
// 1 - s = e s with e = exp(-2u) (no cancellation). x is clamped to [-10, 10] for the derivative:
// beyond it gelu' is 0 or 1 to FP32 precision, and e stays finite (|2u| <= 87.3). Infinite x gives
// NaN and NaN stays NaN, as in the reference.
__device__ __forceinline__ float geluGradF(float x) {
  float xc = fabsf(x) > 10.f ? copysignf(10.f, x) : x;
  float x2 = xc * xc;
  float u = kGeluC * fmaf(kGeluK * x2, xc, xc);
  float e = __expf(-2.f * u);
  float s = __frcp_rn(1.f + e);
  float d = s * fmaf(2.f * kGeluC * xc * (e * s), fmaf(3.f * kGeluK, x2, 1.f), 1.f);
  return isinf(x) ? __int_as_float(0x7fc00000) : d;
}
struct GeluBackwardOp {
  __device__ float operator()(float g, float x) const { return g * geluGradF(x); }
};

// silu(x) = x sigmoid(x) = x / (1 + exp(-x)).
__device__ __forceinline__ float siluF(float x) { return __fdividef(x, 1.f + __expf(-x)); }
struct SiluOp {
  __device__ float operator()(float x) const { return siluF(x); }
};
// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x). s = 1 / (1 + inf) = 0 for very negative x.
struct SiluBackwardOp {
  __device__ float operator()(float g, float x) const {
    float s = __frcp_rn(1.f + __expf(-x));
    return g * (s * fmaf(x, 1.f - s, 1.f));
  }
};
struct SwigluOp {
  __device__ float operator()(float gate, float up) const { return siluF(gate) * up; }
};

template <int NIN, typename Op>
__device__ __forceinline__ float apply(const Op& op, float a, float b) {
  if constexpr (NIN == 1) {
    (void)b;
    return op(a);
  } else {
    return op(a, b);
  }
}

template <int NIN, typename T, typename Op>
__device__ __forceinline__ Pack<T> applyPack(const Op& op, const Pack<T>& a, const Pack<T>& b) {
  Pack<T> r;
#pragma unroll
  for (int k = 0; k < Pack<T>::N; ++k) r.v[k] = fromF<T>(apply<NIN>(op, toF(a.v[k]), NIN == 2 ? toF(b.v[k]) : 0.f));
  return r;
}

// b is ignored (and may be null) when NIN == 1.
template <int NIN, typename T, typename Op>
__global__ void __launch_bounds__(kThreads) elementwiseVecKernel(T* out, const T* a, const T* b, uint64_t n, Op op) {
  using P = Pack<T>;
  const uint64_t nv = n / P::N;
  const uint64_t tid = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x;
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  const P* pa = reinterpret_cast<const P*>(a);
  const P* pb = reinterpret_cast<const P*>(b);
  P* po = reinterpret_cast<P*>(out);
  uint64_t v = tid;
  for (; v + stride < nv; v += 2 * stride) {
    P a0 = pa[v], a1 = pa[v + stride];
    P b0 = a0, b1 = a1;
    if constexpr (NIN == 2) {
      b0 = pb[v];
      b1 = pb[v + stride];
    }
    po[v] = applyPack<NIN, T>(op, a0, b0);
    po[v + stride] = applyPack<NIN, T>(op, a1, b1);
  }
  if (v < nv) {
    P a0 = pa[v];
    P b0 = a0;
    if constexpr (NIN == 2) b0 = pb[v];
    po[v] = applyPack<NIN, T>(op, a0, b0);
  }
  const uint64_t tail = n - nv * P::N;
  if (tid < tail) {
    const uint64_t i = nv * P::N + tid;
    out[i] = fromF<T>(apply<NIN>(op, toF(a[i]), NIN == 2 ? toF(b[i]) : 0.f));
  }
}

template <int NIN, typename T, typename Op>
__global__ void __launch_bounds__(kThreads) elementwiseKernel(T* out, const T* a, const T* b, uint64_t n, Op op) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    out[i] = fromF<T>(apply<NIN>(op, toF(a[i]), NIN == 2 ? toF(b[i]) : 0.f));
}

template <int NIN, typename T, typename Op>
void launchElementwise(Napi::Env env, cudaStream_t s, T* out, const T* a, const T* b, uint64_t n, Op op, const char* what) {
  if (n == 0) return;
  constexpr int W = Pack<T>::N;
  if (aligned(out, 16) && aligned(a, 16) && (NIN == 1 || aligned(b, 16))) {
    uint64_t threads = std::max<uint64_t>((n / W + 1) / 2, W);
    elementwiseVecKernel<NIN, T><<<gridFor(env, threads, kThreads), kThreads, 0, s>>>(out, a, b, n, op);
  } else {
    elementwiseKernel<NIN, T><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(out, a, b, n, op);
  }
  checkLaunch(env, what);
}

template <int NIN, typename Op>
void dispatchElementwise(Napi::Env env, cudaStream_t s, int dtype, void* out, const void* a, const void* b, uint64_t n, Op op, const char* what) {
  DW_DISPATCH_FLOAT(env, dtype, T,
                    launchElementwise<NIN, T>(env, s, static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), n, op, what));
}

template <typename Op>
Napi::Value unaryEntry(const Napi::CallbackInfo& info, const char* fn, Op op) {
  Args a(info, fn);
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  uint64_t n = a.u64("element count");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(n, es, "x");
  void* out = a.dev(n, es, "out");
  a.end();
  dispatchElementwise<1>(a.env(), s, dt, out, x, nullptr, n, op, fn);
  return a.env().Undefined();
}

template <typename Op>
Napi::Value binaryEntry(const Napi::CallbackInfo& info, const char* fn, const char* aName, const char* bName, Op op) {
  Args a(info, fn);
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  uint64_t n = a.u64("element count");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(n, es, aName);
  const void* y = a.dev(n, es, bName);
  void* out = a.dev(n, es, "out");
  a.end();
  dispatchElementwise<2>(a.env(), s, dt, out, x, y, n, op, fn);
  return a.env().Undefined();
}

Napi::Value Gelu(const Napi::CallbackInfo& info) { return unaryEntry(info, "gelu", GeluOp{}); }
Napi::Value Silu(const Napi::CallbackInfo& info) { return unaryEntry(info, "silu", SiluOp{}); }
Napi::Value GeluBackward(const Napi::CallbackInfo& info) { return binaryEntry(info, "geluBackward", "g", "x", GeluBackwardOp{}); }
Napi::Value SiluBackward(const Napi::CallbackInfo& info) { return binaryEntry(info, "siluBackward", "g", "x", SiluBackwardOp{}); }
Napi::Value Swiglu(const Napi::CallbackInfo& info) { return binaryEntry(info, "swiglu", "gate", "up", SwigluOp{}); }

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Args a(info, "scale");
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  uint64_t n = a.u64("element count");
  float alpha = static_cast<float>(a.f64("alpha"));
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(n, es, "x");
  void* out = a.dev(n, es, "out");
  a.end();
  dispatchElementwise<1>(a.env(), s, dt, out, x, nullptr, n, ScaleOp{alpha}, "scale");
  return a.env().Undefined();
}

// fill: the value is rounded to FP32, then to the storage dtype, as the host encodes it.
template <typename T>
__global__ void __launch_bounds__(kThreads) fillKernel(T* out, uint64_t n, float value, bool vec) {
  const T v = fromF<T>(value);
  const uint64_t tid = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x;
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  uint64_t done = 0;
  if (vec) {
    using P = Pack<T>;
    P p;
#pragma unroll
    for (int k = 0; k < P::N; ++k) p.v[k] = v;
    const uint64_t nv = n / P::N;
    for (uint64_t i = tid; i < nv; i += stride) reinterpret_cast<P*>(out)[i] = p;
    done = nv * P::N;
  }
  for (uint64_t i = done + tid; i < n; i += stride) out[i] = v;
}

void fillDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t n, float value, void* out) {
  if (n == 0) return;
  bool vec = aligned(out, 16);
  DW_DISPATCH_FLOAT(env, dt, T, {
    uint64_t work = vec ? std::max<uint64_t>(n / Pack<T>::N, 1) : n;
    fillKernel<T><<<gridFor(env, work, kThreads), kThreads, 0, s>>>(static_cast<T*>(out), n, value, vec);
  });
  checkLaunch(env, "fill");
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  Args a(info, "fill");
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  uint64_t n = a.u64("element count");
  float value = static_cast<float>(a.f64("value"));
  void* out = a.dev(n, dtypeBytes(dt), "out");
  a.end();
  fillDevice(a.env(), s, dt, n, value, out);
  return a.env().Undefined();
}

// out[r, c] = op(x[r, c], y[c]): bias_add, and add/mul whose second operand is broadcast over the
// leading dimensions. Packs when cols is a multiple of the pack and every pointer is aligned.
template <typename T, typename I, typename Op>
__global__ void __launch_bounds__(kThreads) rowBroadcastVecKernel(T* out, const T* x, const T* y, I nv, I colPacks, Op op) {
  using P = Pack<T>;
  const P* px = reinterpret_cast<const P*>(x);
  const P* py = reinterpret_cast<const P*>(y);
  P* po = reinterpret_cast<P*>(out);
  for (I v = blockIdx.x * I(blockDim.x) + threadIdx.x; v < nv; v += I(gridDim.x) * blockDim.x)
    po[v] = applyPack<2, T>(op, px[v], py[v % colPacks]);
}

template <typename T, typename I, typename Op>
__global__ void __launch_bounds__(kThreads) rowBroadcastKernel(T* out, const T* x, const T* y, I n, I cols, Op op) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x)
    out[i] = fromF<T>(op(toF(x[i]), toF(y[i % cols])));
}

template <typename T, typename I, typename Op>
void launchRowBroadcastI(Napi::Env env, cudaStream_t s, T* out, const T* x, const T* y, uint64_t rows, uint64_t cols, Op op, const char* what) {
  constexpr int W = Pack<T>::N;
  uint64_t n = rows * cols;
  if (cols % W == 0 && aligned(out, 16) && aligned(x, 16) && aligned(y, 16)) {
    uint64_t nv = n / W;
    rowBroadcastVecKernel<T, I><<<gridFor(env, nv, kThreads), kThreads, 0, s>>>(out, x, y, I(nv), I(cols / W), op);
  } else {
    rowBroadcastKernel<T, I><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(out, x, y, I(n), I(cols), op);
  }
  checkLaunch(env, what);
}

template <typename T, typename Op>
void launchRowBroadcast(Napi::Env env, cudaStream_t s, T* out, const T* x, const T* y, uint64_t rows, uint64_t cols, Op op, const char* what) {
  if (rows == 0 || cols == 0) return;
  if (rows * cols < kI32Limit)
    launchRowBroadcastI<T, uint32_t>(env, s, out, x, y, rows, cols, op, what);
  else
    launchRowBroadcastI<T, uint64_t>(env, s, out, x, y, rows, cols, op, what);
}

void biasAddDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t rows, uint64_t cols, const void* x, const void* bias, void* out) {
  DW_DISPATCH_FLOAT(env, dt, T,
                    launchRowBroadcast<T>(env, s, static_cast<T*>(out), static_cast<const T*>(x), static_cast<const T*>(bias), rows, cols, AddOp{}, "biasAdd"));
}

Napi::Value BiasAdd(const Napi::CallbackInfo& info) {
  Args a(info, "biasAdd");
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  uint64_t rows = a.u64("rows"), cols = a.u64("cols");
  Napi::Env env = a.env();
  uint64_t n = mulChecked(env, rows, cols, "biasAdd");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(n, es, "x");
  const void* bias = a.dev(cols, es, "bias");
  void* out = a.dev(n, es, "out");
  a.end();
  biasAddDevice(env, s, dt, rows, cols, x, bias, out);
  return env.Undefined();
}

// ---- add / mul with broadcasting ---------------------------------------------------------------
//
//   add(stream, dtype, rank, outShape[rank], aShape[rank], bShape[rank], a, b, out)
//   mul(...same...)
//
// aShape and bShape are the operands' shapes right-aligned to `rank` (padded with leading 1s); each
// dimension equals the output's or is 1. Dimensions are collapsed on the host; then equal shapes
// take the packed elementwise kernel, [R, C] op [C] (either order) the row-broadcast kernel, and
// anything else the strided kernel (one index decomposition per element).

template <typename T, typename I, typename Op>
__global__ void __launch_bounds__(kThreads) broadcastBinaryKernel(T* out, const T* a, const T* b, I n, Strided<I> s, Op op) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I ia, ib;
    offsetAB(i, s, ia, ib);
    out[i] = fromF<T>(op(toF(a[ia]), toF(b[ib])));
  }
}

// One output dimension with the strides of each operand (0 where broadcast).
struct Dim2 {
  uint64_t size, a, b;
};

// Drops size-1 dimensions and merges neighbours that are contiguous in every operand.
std::vector<Dim2> collapse(std::vector<Dim2> dims) {
  std::vector<Dim2> r;
  for (const Dim2& d : dims) {
    if (d.size == 1) continue;
    if (!r.empty()) {
      Dim2& o = r.back();
      if (o.a == d.a * d.size && o.b == d.b * d.size) {
        o.size *= d.size;
        o.a = d.a;
        o.b = d.b;
        continue;
      }
    }
    r.push_back(d);
  }
  return r;
}

// Strides of `in` (right-aligned to out's rank) as seen from out's dimensions: 0 where broadcast.
std::vector<uint64_t> broadcastStrides(Napi::Env env, const std::vector<uint64_t>& out, const std::vector<uint64_t>& in, const char* fn, const char* name) {
  for (size_t d = 0; d < out.size(); ++d) {
    if (in[d] != out[d] && in[d] != 1)
      fail(env, "SHAPE_MISMATCH", std::string("Expected ") + num(out[d]) + " or 1 for dimension " + std::to_string(d) + " of " + name + " " + dimsStr(in) + " (output " + dimsStr(out) + ") in " + fn + " but received " + num(in[d]));
  }
  std::vector<uint64_t> st = contiguousStrides(in);
  for (size_t d = 0; d < out.size(); ++d)
    if (in[d] == 1) st[d] = 0;
  return st;
}

template <typename T, typename Op>
void launchBroadcastBinary(Napi::Env env, cudaStream_t s, T* out, const T* a, const T* b, uint64_t n, const std::vector<Dim2>& dims, Op op, const char* what) {
  if (n == 0) return;
  std::vector<uint64_t> size, sa, sb;
  for (const Dim2& d : dims) {
    size.push_back(d.size);
    sa.push_back(d.a);
    sb.push_back(d.b);
  }
  // Equal shapes: one contiguous dimension (or none: a single element).
  if (dims.empty() || (dims.size() == 1 && dims[0].a == 1 && dims[0].b == 1)) {
    launchElementwise<2, T>(env, s, out, a, b, n, op, what);
    return;
  }
  // [R, C] op [C] or [C] op [R, C] (add and mul commute exactly in FP32).
  if (dims.size() == 2 && dims[1].a == 1 && dims[1].b == 1) {
    if (dims[0].a == dims[1].size && dims[0].b == 0) {
      launchRowBroadcast<T>(env, s, out, a, b, dims[0].size, dims[1].size, op, what);
      return;
    }
    if (dims[0].b == dims[1].size && dims[0].a == 0) {
      launchRowBroadcast<T>(env, s, out, b, a, dims[0].size, dims[1].size, op, what);
      return;
    }
  }
  if (n < kI32Limit)
    broadcastBinaryKernel<T, uint32_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(out, a, b, uint32_t(n), toStrided<uint32_t>(size, sa, sb), op);
  else
    broadcastBinaryKernel<T, uint64_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(out, a, b, n, toStrided<uint64_t>(size, sa, sb), op);
  checkLaunch(env, what);
}

// os, as, bs: the output's and the operands' shapes, all of one rank (checked by the caller).
template <typename Op>
void broadcastBinaryDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& os, const std::vector<uint64_t>& as, const std::vector<uint64_t>& bs,
                           const void* pa, const void* pb, void* out, Op op, const char* fn) {
  uint64_t n = product(env, os, "out");
  std::vector<uint64_t> sa = broadcastStrides(env, os, as, fn, "a"), sb = broadcastStrides(env, os, bs, fn, "b");
  std::vector<Dim2> dims;
  for (size_t d = 0; d < os.size(); ++d) dims.push_back({os[d], sa[d], sb[d]});
  dims = collapse(dims);
  DW_DISPATCH_FLOAT(env, dt, T,
                    launchBroadcastBinary<T>(env, s, static_cast<T*>(out), static_cast<const T*>(pa), static_cast<const T*>(pb), n, dims, op, fn));
}

template <typename Op>
Napi::Value broadcastBinaryEntry(const Napi::CallbackInfo& info, const char* fn, Op op) {
  Args a(info, fn);
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  int rank = rankArg(a);
  std::vector<uint64_t> os = a.shape(rank, "output shape"), as = a.shape(rank, "shape of a"), bs = a.shape(rank, "shape of b");
  Napi::Env env = a.env();
  uint64_t n = product(env, os, "out"), na = product(env, as, "a"), nb = product(env, bs, "b");
  broadcastStrides(env, os, as, fn, "a");
  broadcastStrides(env, os, bs, fn, "b");
  size_t es = dtypeBytes(dt);
  const void* pa = a.dev(na, es, "a");
  const void* pb = a.dev(nb, es, "b");
  void* out = a.dev(n, es, "out");
  a.end();
  broadcastBinaryDevice(env, s, dt, os, as, bs, pa, pb, out, op, fn);
  return env.Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) { return broadcastBinaryEntry(info, "add", AddOp{}); }
Napi::Value Mul(const Napi::CallbackInfo& info) { return broadcastBinaryEntry(info, "mul", MulOp{}); }

// ---- data movement: reshape, broadcast_to, transpose, slice, slice_backward, concat ------------
//
//   reshape(stream, dtype, n, x, out)                               cudaMemcpyAsync (none in place)
//   broadcastTo(stream, dtype, rank, outShape[rank], xShape[rank], x, out)
//        xShape right-aligned to rank with leading 1s; each dim equals out's or is 1
//   transpose(stream, dtype, rank, xShape[rank], perm[rank], x, out)   out.shape[d] = x.shape[perm[d]]
//   slice(stream, dtype, outer, size, inner, start, length, x, out)
//        x viewed as [outer, size, inner]; out = x[:, start:start+length, :]
//   sliceBackward(stream, dtype, outer, size, inner, start, length, g, out)
//        out [outer, size, inner] = 0 except out[:, start:start+length, :] = g [outer, length, inner]
//   concat(stream, dtype, outer, inner, k, sizes[k], x_0, ..., x_{k-1}, out)
//        x_j viewed as [outer, sizes[j], inner]; out [outer, sum(sizes), inner]
//
// Any dtype (sliceBackward: float dtypes); elements move as bits, in the widest unit (16, 8, 4 or
// 2 bytes) that every row length, pitch and pointer allows.

template <typename U>
__device__ __forceinline__ U zeroUnit();
template <> __device__ __forceinline__ uint16_t zeroUnit<uint16_t>() { return 0; }
template <> __device__ __forceinline__ uint32_t zeroUnit<uint32_t>() { return 0; }
template <> __device__ __forceinline__ uint2 zeroUnit<uint2>() { return make_uint2(0, 0); }
template <> __device__ __forceinline__ uint4 zeroUnit<uint4>() { return make_uint4(0, 0, 0, 0); }

// The widest unit (>= the element size) dividing every byte count and address given.
size_t unitFor(size_t es, std::initializer_list<uint64_t> bytes, std::initializer_list<const void*> ptrs) {
  for (size_t u : {size_t(16), size_t(8), size_t(4)}) {
    if (u <= es) break;
    bool ok = true;
    for (uint64_t b : bytes) ok = ok && b % u == 0;
    for (const void* p : ptrs) ok = ok && aligned(p, u);
    if (ok) return u;
  }
  return es;
}

// Runs body with U bound to the unsigned type of `unit` bytes.
#define DW_DISPATCH_UNIT(env, unit, U, ...)                           \
  switch (unit) {                                                     \
    case 2: { using U = uint16_t; __VA_ARGS__; break; }               \
    case 4: { using U = uint32_t; __VA_ARGS__; break; }               \
    case 8: { using U = uint2; __VA_ARGS__; break; }                  \
    case 16: { using U = uint4; __VA_ARGS__; break; }                 \
    default: ::dw::fail(env, "INTERNAL", "unsupported copy unit");   \
  }

Napi::Value Reshape(const Napi::CallbackInfo& info) {
  Args a(info, "reshape");
  cudaStream_t s = a.stream();
  int dt = a.dtype();
  uint64_t n = a.u64("element count");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(n, es, "x");
  void* out = a.dev(n, es, "out");
  a.end();
  Napi::Env env = a.env();
  if (n != 0 && x != out)
    DW_CUDA(env, cudaMemcpyAsync(out, x, n * es, cudaMemcpyDeviceToDevice, s), "reshape: cudaMemcpyAsync (" + num(n * es) + " bytes)");
  return env.Undefined();
}

// out[i] = in[offset of i]: broadcast_to, and transposes that keep the innermost dimension.
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads) gatherKernel(U* out, const U* in, I n, Strided<I> s) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) out[i] = in[offsetA(i, s)];
}

// Gathers n elements of `es` bytes through (size, stride) dimensions (outermost first, strides in
// elements of `in`), in the widest unit the innermost dimension allows.
void launchGather(Napi::Env env, cudaStream_t s, void* out, const void* in, uint64_t n, size_t es, std::vector<uint64_t> size, std::vector<uint64_t> stride, const char* what) {
  if (n == 0) return;
  if (size.empty()) {  // a single element
    DW_CUDA(env, cudaMemcpyAsync(out, in, es, cudaMemcpyDeviceToDevice, s), std::string(what) + ": cudaMemcpyAsync");
    return;
  }
  if (size.size() == 1 && stride[0] == 1) {  // contiguous
    DW_CUDA(env, cudaMemcpyAsync(out, in, n * es, cudaMemcpyDeviceToDevice, s), std::string(what) + ": cudaMemcpyAsync");
    return;
  }
  size_t unit = es;
  if (stride.back() == 1) {
    std::vector<uint64_t> bytes{size.back() * es};
    for (size_t d = 0; d + 1 < size.size(); ++d) bytes.push_back(stride[d] * es);
    for (size_t u : {size_t(16), size_t(8), size_t(4)}) {
      if (u <= es) break;
      bool ok = aligned(out, u) && aligned(in, u);
      for (uint64_t b : bytes) ok = ok && b % u == 0;
      if (ok) {
        unit = u;
        break;
      }
    }
  }
  if (unit != es) {
    uint64_t k = unit / es;
    size.back() /= k;
    for (size_t d = 0; d + 1 < size.size(); ++d) stride[d] /= k;
    n /= k;
  }
  DW_DISPATCH_UNIT(env, unit, U, {
    if (n < kI32Limit)
      gatherKernel<U, uint32_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(in), uint32_t(n), toStrided<uint32_t>(size, stride, {}));
    else
      gatherKernel<U, uint64_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(in), n, toStrided<uint64_t>(size, stride, {}));
  });
  checkLaunch(env, what);
}

void broadcastToDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& os, const std::vector<uint64_t>& xs, const void* x, void* out);

Napi::Value BroadcastTo(const Napi::CallbackInfo& info) {
  Args a(info, "broadcastTo");
  cudaStream_t s = a.stream();
  int dt = a.dtype();
  int rank = rankArg(a);
  std::vector<uint64_t> os = a.shape(rank, "output shape"), xs = a.shape(rank, "shape of x");
  Napi::Env env = a.env();
  uint64_t n = product(env, os, "out"), nx = product(env, xs, "x");
  broadcastStrides(env, os, xs, "broadcastTo", "x");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(nx, es, "x");
  void* out = a.dev(n, es, "out");
  a.end();
  broadcastToDevice(env, s, dt, os, xs, x, out);
  return env.Undefined();
}

void broadcastToDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& os, const std::vector<uint64_t>& xs, const void* x, void* out) {
  uint64_t n = product(env, os, "out");
  size_t es = dtypeBytes(dt);
  std::vector<uint64_t> st = broadcastStrides(env, os, xs, "broadcastTo", "x");
  std::vector<Dim2> dims;
  for (size_t d = 0; d < os.size(); ++d) dims.push_back({os[d], st[d], 0});
  dims = collapse(dims);
  std::vector<uint64_t> size, stride;
  for (const Dim2& d : dims) {
    size.push_back(d.size);
    stride.push_back(d.a);
  }
  launchGather(env, s, out, x, n, es, size, stride, "broadcastTo");
}

// Transposes that move the innermost dimension: 32x32 tiles through shared memory, read along x's
// innermost dimension (I) and written along out's innermost dimension (O); the other dimensions
// are a batch, decomposed with their strides in x (a) and in out (b).
template <typename I>
struct TileParams {
  I nI, nO;        // sizes of x's innermost dimension and of out's innermost dimension
  I xStrideO;      // x stride of a step along out's innermost dimension
  I outStrideI;    // out stride of a step along x's innermost dimension
  I tilesI, tilesO, tiles;
  Strided<I> batch;
};

template <typename U, typename I>
__global__ void __launch_bounds__(256) transposeTileKernel(U* out, const U* in, TileParams<I> p) {
  __shared__ U tile[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y;  // blockDim (32, 8)
  for (I t = blockIdx.x; t < p.tiles; t += gridDim.x) {
    const I ti = t % p.tilesI;
    const I rest = t / p.tilesI;
    const I to = rest % p.tilesO;
    const I b = rest / p.tilesO;
    I inBase, outBase;
    offsetAB(b, p.batch, inBase, outBase);
    const I i0 = ti * 32, o0 = to * 32;
    inBase += o0 * p.xStrideO + i0;
    outBase += i0 * p.outStrideI + o0;
    if (i0 + tx < p.nI) {
      for (int k = ty; k < 32; k += 8)
        if (o0 + k < p.nO) tile[k][tx] = in[inBase + I(k) * p.xStrideO + tx];
    }
    __syncthreads();
    if (o0 + tx < p.nO) {
      for (int k = ty; k < 32; k += 8)
        if (i0 + k < p.nI) out[outBase + I(k) * p.outStrideI + tx] = tile[tx][k];
    }
    __syncthreads();
  }
}

template <typename U, typename I>
void launchTransposeTiles(Napi::Env env, cudaStream_t s, void* out, const void* in, uint64_t nI, uint64_t nO, uint64_t xStrideO, uint64_t outStrideI,
                          const std::vector<uint64_t>& bsize, const std::vector<uint64_t>& bx, const std::vector<uint64_t>& bo) {
  TileParams<I> p{};
  p.nI = I(nI);
  p.nO = I(nO);
  p.xStrideO = I(xStrideO);
  p.outStrideI = I(outStrideI);
  p.tilesI = I((nI + 31) / 32);
  p.tilesO = I((nO + 31) / 32);
  uint64_t batch = 1;
  for (uint64_t d : bsize) batch *= d;
  uint64_t tiles = uint64_t(p.tilesI) * p.tilesO * batch;
  p.tiles = I(tiles);
  p.batch = toStrided<I>(bsize, bx, bo);
  transposeTileKernel<U, I><<<gridFor(env, tiles, 1, 16), dim3(32, 8), 0, s>>>(static_cast<U*>(out), static_cast<const U*>(in), p);
}

void checkPerm(Napi::Env env, const std::vector<uint64_t>& perm) {
  const size_t rank = perm.size();
  std::vector<bool> seen(rank, false);
  for (size_t d = 0; d < rank; ++d) {
    if (perm[d] >= rank || seen[perm[d]])
      fail(env, "INVALID_ARGUMENT", "Expected a permutation of 0.." + std::to_string(static_cast<long long>(rank) - 1) + " for perm of transpose but received " + dimsStr(perm));
    seen[perm[d]] = true;
  }
}

void transposeDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& permArg, const void* x, void* out);

Napi::Value Transpose(const Napi::CallbackInfo& info) {
  Args a(info, "transpose");
  cudaStream_t s = a.stream();
  int dt = a.dtype();
  int rank = rankArg(a);
  std::vector<uint64_t> xs = a.shape(rank, "shape of x"), permArg = a.shape(rank, "perm");
  Napi::Env env = a.env();
  checkPerm(env, permArg);
  uint64_t n = product(env, xs, "x");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(n, es, "x");
  void* out = a.dev(n, es, "out");
  a.end();
  transposeDevice(env, s, dt, xs, permArg, x, out);
  return env.Undefined();
}

void transposeDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& permArg, const void* x, void* out) {
  checkPerm(env, permArg);
  const int rank = static_cast<int>(xs.size());
  uint64_t n = product(env, xs, "x");
  size_t es = dtypeBytes(dt);
  if (n == 0) return;

  // Collapse: drop size-1 dimensions, then merge runs of x's dimensions that stay adjacent and in
  // order in the output (they are one contiguous block in both).
  std::vector<int> newIndex(rank, -1);
  std::vector<uint64_t> kept;
  for (int d = 0; d < rank; ++d)
    if (xs[d] != 1) {
      newIndex[d] = static_cast<int>(kept.size());
      kept.push_back(xs[d]);
    }
  std::vector<int> perm;  // over kept dims, in output order
  for (int q = 0; q < rank; ++q)
    if (newIndex[permArg[q]] >= 0) perm.push_back(newIndex[permArg[q]]);
  struct Group {
    int first;
    uint64_t size;
  };
  std::vector<Group> groups;  // in output order
  for (size_t q = 0; q < perm.size(); ++q) {
    if (q > 0 && perm[q] == perm[q - 1] + 1) {
      groups.back().size *= kept[perm[q]];
    } else {
      groups.push_back({perm[q], kept[perm[q]]});
    }
  }
  // x's collapsed dimensions are the groups ordered by their first original dimension.
  std::vector<int> order(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) order[g] = static_cast<int>(g);
  std::sort(order.begin(), order.end(), [&](int l, int r) { return groups[l].first < groups[r].first; });
  const int R = static_cast<int>(groups.size());
  std::vector<int> P(R);  // P[q] = x dimension of output dimension q
  std::vector<uint64_t> X(R);
  for (int j = 0; j < R; ++j) {
    X[j] = groups[order[j]].size;
    P[order[j]] = j;
  }
  std::vector<uint64_t> xst = contiguousStrides(X);
  std::vector<uint64_t> O(R);
  for (int q = 0; q < R; ++q) O[q] = X[P[q]];
  std::vector<uint64_t> ost = contiguousStrides(O);

  if (R <= 1 || P[R - 1] == R - 1) {
    // The innermost dimension stays innermost (or nothing moves): a gather along out.
    std::vector<uint64_t> stride(R);
    for (int q = 0; q < R; ++q) stride[q] = xst[P[q]];
    launchGather(env, s, out, x, n, es, O, stride, "transpose");
    return;
  }
  int qI = 0;  // output position of x's innermost dimension
  for (int q = 0; q < R; ++q)
    if (P[q] == R - 1) qI = q;
  const uint64_t nI = X[R - 1], nO = O[R - 1];
  const uint64_t xStrideO = xst[P[R - 1]], outStrideI = ost[qI];
  std::vector<uint64_t> bsize, bx, bo;
  for (int q = 0; q < R - 1; ++q) {
    if (q == qI) continue;
    bsize.push_back(O[q]);
    bx.push_back(xst[P[q]]);
    bo.push_back(ost[q]);
  }
  // Tiles can exceed the element count by up to 31 per tile row, so size the index on tiles too.
  uint64_t tiles = ((nI + 31) / 32) * ((nO + 31) / 32) * (n / (nI * nO));
  bool narrow = n + 64 * (nI + nO) < kI32Limit && tiles < kI32Limit;
  if (es == 2) {
    if (narrow) launchTransposeTiles<uint16_t, uint32_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
    else launchTransposeTiles<uint16_t, uint64_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
  } else {
    if (narrow) launchTransposeTiles<uint32_t, uint32_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
    else launchTransposeTiles<uint32_t, uint64_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
  }
  checkLaunch(env, "transpose");
}

// dst[r * dstPitch + c] = src[r * srcPitch + c] for r < rows, c < width (in units).
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads) copyRowsKernel(U* dst, I dstPitch, const U* src, I srcPitch, I rows, I width) {
  const I n = rows * width;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    const I r = i / width, c = i - r * width;
    dst[r * dstPitch + c] = src[r * srcPitch + c];
  }
}

// Copies `rows` rows of `width` elements between pitched layouts (all counts in elements of es bytes).
void copyRows(Napi::Env env, cudaStream_t s, void* dst, uint64_t dstPitch, const void* src, uint64_t srcPitch, uint64_t rows, uint64_t width, size_t es, const char* what) {
  if (rows == 0 || width == 0) return;
  if (rows == 1 || (dstPitch == width && srcPitch == width)) {
    DW_CUDA(env, cudaMemcpyAsync(dst, src, rows * width * es, cudaMemcpyDeviceToDevice, s), std::string(what) + ": cudaMemcpyAsync");
    return;
  }
  size_t unit = unitFor(es, {width * es, dstPitch * es, srcPitch * es}, {dst, src});
  uint64_t k = unit / es;
  width /= k;
  dstPitch /= k;
  srcPitch /= k;
  uint64_t n = rows * width;
  uint64_t span = std::max((rows - 1) * dstPitch, (rows - 1) * srcPitch) + width;
  DW_DISPATCH_UNIT(env, unit, U, {
    if (span < kI32Limit && n < kI32Limit)
      copyRowsKernel<U, uint32_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(dst), uint32_t(dstPitch), static_cast<const U*>(src), uint32_t(srcPitch), uint32_t(rows), uint32_t(width));
    else
      copyRowsKernel<U, uint64_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(dst), dstPitch, static_cast<const U*>(src), srcPitch, rows, width);
  });
  checkLaunch(env, what);
}

// Sizes checked by the caller (start + len <= size).
void sliceDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t size, uint64_t inner, uint64_t start, uint64_t len, const void* x, void* out) {
  size_t es = dtypeBytes(dt);
  copyRows(env, s, out, len * inner, static_cast<const uint8_t*>(x) + start * inner * es, size * inner, outer, len * inner, es, "slice");
}

Napi::Value Slice(const Napi::CallbackInfo& info) {
  Args a(info, "slice");
  cudaStream_t s = a.stream();
  int dt = a.dtype();
  uint64_t outer = a.u64("outer"), size = a.u64("size"), inner = a.u64("inner"), start = a.u64("start"), len = a.u64("length");
  Napi::Env env = a.env();
  if (start > size || len > size - start)
    fail(env, "SHAPE_MISMATCH", "Expected start + length <= " + num(size) + " for slice but received start " + num(start) + ", length " + num(len));
  uint64_t nx = product(env, {outer, size, inner}, "x"), n = product(env, {outer, len, inner}, "out");
  size_t es = dtypeBytes(dt);
  const void* x = a.dev(nx, es, "x");
  void* out = a.dev(n, es, "out");
  a.end();
  sliceDevice(env, s, dt, outer, size, inner, start, len, x, out);
  return env.Undefined();
}

// out row r (outWidth units) = zeros except [lo, lo + gWidth) = g row r.
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads) sliceBackwardKernel(U* out, const U* g, I rows, I outWidth, I lo, I gWidth) {
  const I n = rows * outWidth;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    const I r = i / outWidth, c = i - r * outWidth - lo;  // wraps (huge) left of the slice
    out[i] = c < gWidth ? g[r * gWidth + c] : zeroUnit<U>();
  }
}

void sliceBackwardDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t size, uint64_t inner, uint64_t start, uint64_t len, const void* g, void* out);

Napi::Value SliceBackward(const Napi::CallbackInfo& info) {
  Args a(info, "sliceBackward");
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  uint64_t outer = a.u64("outer"), size = a.u64("size"), inner = a.u64("inner"), start = a.u64("start"), len = a.u64("length");
  Napi::Env env = a.env();
  if (start > size || len > size - start)
    fail(env, "SHAPE_MISMATCH", "Expected start + length <= " + num(size) + " for sliceBackward but received start " + num(start) + ", length " + num(len));
  uint64_t n = product(env, {outer, size, inner}, "out"), ng = product(env, {outer, len, inner}, "g");
  size_t es = dtypeBytes(dt);
  const void* g = a.dev(ng, es, "g");
  void* out = a.dev(n, es, "out");
  a.end();
  sliceBackwardDevice(env, s, dt, outer, size, inner, start, len, g, out);
  return env.Undefined();
}

void sliceBackwardDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t size, uint64_t inner, uint64_t start, uint64_t len, const void* g, void* out) {
  size_t es = dtypeBytes(dt);
  if (outer == 0 || size == 0 || inner == 0) return;
  uint64_t outWidth = size * inner, lo = start * inner, gWidth = len * inner;
  size_t unit = unitFor(es, {outWidth * es, lo * es, gWidth * es}, {out, g});
  uint64_t k = unit / es;
  outWidth /= k;
  lo /= k;
  gWidth /= k;
  uint64_t nu = outer * outWidth;
  DW_DISPATCH_UNIT(env, unit, U, {
    if (nu < kI32Limit)
      sliceBackwardKernel<U, uint32_t><<<gridFor(env, nu, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(g), uint32_t(outer), uint32_t(outWidth), uint32_t(lo), uint32_t(gWidth));
    else
      sliceBackwardKernel<U, uint64_t><<<gridFor(env, nu, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(g), outer, outWidth, lo, gWidth);
  });
  checkLaunch(env, "sliceBackward");
}

void concatDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t inner, const std::vector<uint64_t>& sizes, const std::vector<const void*>& xs, void* out) {
  size_t es = dtypeBytes(dt);
  uint64_t total = 0;
  for (uint64_t v : sizes) total += v;
  uint64_t offset = 0;
  for (size_t j = 0; j < sizes.size(); ++j) {
    copyRows(env, s, static_cast<uint8_t*>(out) + offset * inner * es, total * inner, xs[j], sizes[j] * inner, outer, sizes[j] * inner, es, "concat");
    offset += sizes[j];
  }
}

Napi::Value Concat(const Napi::CallbackInfo& info) {
  Args a(info, "concat");
  cudaStream_t s = a.stream();
  int dt = a.dtype();
  uint64_t outer = a.u64("outer"), inner = a.u64("inner");
  uint64_t k = a.u64("input count", 1 << 20);
  Napi::Env env = a.env();
  if (k == 0) fail(env, "INVALID_ARGUMENT", "Expected at least 1 input for concat but received 0");
  // stream, dtype, outer, inner, k, k sizes, 2 numbers per input, 2 for out.
  expectEq(env, 5 + 3 * k + 2, a.count(), "the argument count of concat with " + num(k) + " inputs");
  std::vector<uint64_t> sizes(k);
  uint64_t total = 0;
  for (uint64_t j = 0; j < k; ++j) {
    sizes[j] = a.u64("input size along the axis");
    total += sizes[j];
    if (total > static_cast<uint64_t>(kMaxSafeInt)) fail(env, "INVALID_ARGUMENT", "Expected a total size along the concat axis of at most 2^53 - 1 but received more");
  }
  size_t es = dtypeBytes(dt);
  std::vector<const void*> xs(k);
  for (uint64_t j = 0; j < k; ++j) xs[j] = a.dev(product(env, {outer, sizes[j], inner}, "an input of concat"), es, "concat input");
  void* out = a.dev(product(env, {outer, total, inner}, "out"), es, "out");
  a.end();
  concatDevice(env, s, dt, outer, inner, sizes, xs, out);
  return env.Undefined();
}

// ---- reductions: sum, mean, max, max_backward, sum_to ------------------------------------------
//
//   sum(stream, dtype, rank, xShape[rank], keepShape[rank], x, out)
//   mean(...same...)    max(...same...)    sumTo(...same...)
//   maxBackward(stream, dtype, rank, xShape[rank], keepShape[rank], g, x, out)
//
// keepShape is x's shape with every reduced dimension set to 1 (the keepdims shape; for sum_to the
// target shape right-aligned with leading 1s); out (and g) hold prod(keepShape) elements in its
// row-major order, which is also the order of the op's output shape. Each keepShape[d] equals
// xShape[d] or 1.
//
// x's dimensions are split into kept and reduced ones (size-1 dimensions dropped, contiguous
// neighbours merged). Output o's kept offset and the reduced offset of index r < count add up to
// the element's offset in x; r runs in row-major order within the group.
//   - Innermost dimension reduced ("row"): one warp per output (count <= 1024) or one block,
//     threads striding over r (coalesced), then a fixed shuffle tree.
//   - Few outputs (<= 64) over long groups (>= 65536): split row mode (below), two kernels.
//   - Innermost dimension kept ("column"): blocks of (32, Y): x picks 32 neighbouring outputs
//     (coalesced), y strides over r; partials are combined in y order.
// Thread counts depend on the shapes only, so results are bitwise reproducible.
//
// max and max_backward reduce (value, r) pairs: NaN beats everything (the first NaN wins), then the
// larger value, then the smaller r, exactly the reference's "first maximal element (first NaN)".
// That combine is associative and commutative, so the tree order does not change the winner.

template <typename I>
struct SumRed {
  using Acc = float;
  __device__ static Acc identity() { return 0.f; }
  __device__ static Acc make(float v, I) { return v; }
  __device__ static Acc combine(Acc a, Acc b) { return a + b; }
  __device__ static Acc shflDown(Acc a, int off) { return __shfl_down_sync(0xffffffffu, a, off); }
};

template <typename I>
struct ArgMax {
  float v;
  I r;
};

template <typename I>
struct MaxRed {
  using Acc = ArgMax<I>;
  __device__ static Acc identity() { return {-INFINITY, ~I(0)}; }
  __device__ static Acc make(float v, I r) { return {v, r}; }
  __device__ static Acc combine(Acc a, Acc b) {
    const bool an = isnan(a.v), bn = isnan(b.v);
    if (an || bn) {
      if (an && bn) return a.r < b.r ? a : b;
      return an ? a : b;
    }
    if (a.v > b.v) return a;
    if (b.v > a.v) return b;
    return a.r < b.r ? a : b;
  }
  __device__ static Acc shflDown(Acc a, int off) {
    return {__shfl_down_sync(0xffffffffu, a.v, off), __shfl_down_sync(0xffffffffu, a.r, off)};
  }
};

template <typename Red>
__device__ __forceinline__ typename Red::Acc warpReduce(typename Red::Acc a) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) a = Red::combine(a, Red::shflDown(a, off));
  return a;
}

// Epilogues: what to do with the reduced value of output o (kept offset in x: keptOff).
template <typename T>
struct SumOut {
  T* out;
  float divisor;  // 1 for sum, count for mean
  bool mean;
  template <typename Acc, typename I>
  __device__ void operator()(I o, Acc acc, I, const Strided<I>&) const { out[o] = fromF<T>(mean ? acc / divisor : acc); }
};
template <typename T>
struct MaxOut {
  T* out;
  template <typename Acc, typename I>
  __device__ void operator()(I o, Acc acc, I, const Strided<I>&) const { out[o] = fromF<T>(acc.v); }
};
// out (x-shaped, zeroed first) at the group's argmax = g[o].
template <typename T>
struct MaxBackwardOut {
  T* out;
  const T* g;
  template <typename Acc, typename I>
  __device__ void operator()(I o, Acc acc, I keptOff, const Strided<I>& red) const {
    out[keptOff + (red.rank == 1 ? acc.r * red.a[0] : offsetA(acc.r, red))] = g[o];
  }
};

template <typename I>
__device__ __forceinline__ I reducedOffset(I r, const Strided<I>& red) {
  return red.rank == 1 ? r * red.a[0] : offsetA(r, red);
}

// Row mode. WARP: one warp per output (blockDim.x / 32 outputs a block); else one block per output.
template <typename T, typename I, typename Red, bool WARP, typename Ep>
__global__ void __launch_bounds__(1024) reduceRowKernel(const T* x, I nOut, I count, Strided<I> kept, Strided<I> red, Ep ep) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const I groupSize = WARP ? 32 : blockDim.x;
  const I t = WARP ? lane : threadIdx.x;
  const I groupsPerBlock = WARP ? blockDim.x / 32 : 1;
  const I first = blockIdx.x * groupsPerBlock + (WARP ? warp : 0);
  const I step = I(gridDim.x) * groupsPerBlock;
  // In block mode o is the same for every thread of the block, so the __syncthreads are uniform;
  // in warp mode o is the same for the 32 lanes of a warp, as the shuffles need.
  for (I o = first; o < nOut; o += step) {
    const I keptOff = offsetA(o, kept);
    Acc acc = Red::identity();
    for (I r = t; r < count; r += groupSize) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    acc = warpReduce<Red>(acc);
    if constexpr (!WARP) {
      if (lane == 0) partial[warp] = acc;
      __syncthreads();
      if (warp == 0) {
        const int warps = blockDim.x >> 5;
        acc = lane < warps ? partial[lane] : Red::identity();
        acc = warpReduce<Red>(acc);
      }
      __syncthreads();
      if (threadIdx.x == 0) ep(o, acc, keptOff, red);
    } else {
      if (lane == 0) ep(o, acc, keptOff, red);
    }
  }
}

// Column mode: blockDim (32, Y).
template <typename T, typename I, typename Red, typename Ep>
__global__ void __launch_bounds__(1024) reduceColKernel(const T* x, I nOut, I count, Strided<I> kept, Strided<I> red, Ep ep) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y, Y = blockDim.y;
  for (I base = I(blockIdx.x) * 32; base < nOut; base += I(gridDim.x) * 32) {
    const I o = base + tx;
    Acc acc = Red::identity();
    I keptOff = 0;
    if (o < nOut) {
      keptOff = offsetA(o, kept);
      for (I r = ty; r < count; r += Y) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < nOut) {
      for (int k = 1; k < Y; ++k) acc = Red::combine(acc, partial[k][tx]);
      ep(o, acc, keptOff, red);
    }
    __syncthreads();
  }
}

// Split row mode, for few outputs over long groups (a whole tensor summed to one value): each
// group is cut into S slices of `len` elements, block b reduces slice b % S of output b / S into
// partial slot b (g_reducePartials), then one block per output combines its S partials. S depends
// on the shapes only (never on the GPU), so results are bitwise reproducible everywhere. The
// scratch is one per device: like the norm backwards, these reductions must not run on two
// streams of one device at once.
constexpr uint64_t kSplitSlots = 1u << 16;
constexpr uint64_t kSplitMinCount = 1u << 16;  // below this, one block per output is fast enough
__device__ ulonglong2 g_reducePartials[kSplitSlots];

template <typename Red>
__device__ __forceinline__ typename Red::Acc blockReduce(typename Red::Acc acc, typename Red::Acc* partial) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  acc = warpReduce<Red>(acc);
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < int(blockDim.x >> 5) ? partial[lane] : Red::identity();
    acc = warpReduce<Red>(acc);
  }
  __syncthreads();
  return acc;  // valid in thread 0
}

template <typename T, typename I, typename Red>
__global__ void __launch_bounds__(1024)
    reduceSplitKernel(const T* x, I nOut, I count, I S, I len, Strided<I> kept, Strided<I> red, typename Red::Acc* partials) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32];
  for (I b = blockIdx.x; b < nOut * S; b += gridDim.x) {
    const I o = b / S, j = b % S;
    const I keptOff = offsetA(o, kept);
    const I lo = j * len, hi = lo + len < count ? lo + len : count;
    Acc acc = Red::identity();
    for (I r = lo + threadIdx.x; r < hi; r += blockDim.x) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    acc = blockReduce<Red>(acc, partial);
    if (threadIdx.x == 0) partials[b] = acc;
  }
}

template <typename I, typename Red, typename Ep>
__global__ void __launch_bounds__(256) reduceSplitFinishKernel(I nOut, I S, Strided<I> kept, Strided<I> red, const typename Red::Acc* partials, Ep ep) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32];
  for (I o = blockIdx.x; o < nOut; o += gridDim.x) {
    Acc acc = Red::identity();
    for (I j = threadIdx.x; j < S; j += blockDim.x) acc = Red::combine(acc, partials[o * S + j]);
    acc = blockReduce<Red>(acc, partial);
    if (threadIdx.x == 0) ep(o, acc, offsetA(o, kept), red);
  }
}

template <typename Acc>
Acc* splitScratch(Napi::Env env) {
  static_assert(sizeof(Acc) <= sizeof(ulonglong2), "a partial must fit a scratch slot");
  static void* cache[64] = {};
  return static_cast<Acc*>(deviceSymbol(env, g_reducePartials, cache, "reduce partials"));
}

enum class ReduceKind { Sum, Mean, Max, MaxBackward };

struct ReducePlan {
  uint64_t nIn, nOut, count;
  std::vector<uint64_t> keptSize, keptStride, redSize, redStride;
  bool row;  // innermost dimension reduced
};

ReducePlan planReduce(Napi::Env env, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& ks, const char* fn) {
  ReducePlan p{};
  p.nIn = product(env, xs, "x");
  p.nOut = product(env, ks, "out");
  p.count = 1;
  std::vector<uint64_t> st = contiguousStrides(xs);
  bool innerReduced = true;  // with no dimension of size > 1, use row mode
  for (size_t d = 0; d < xs.size(); ++d) {
    if (ks[d] != xs[d] && ks[d] != 1)
      fail(env, "SHAPE_MISMATCH", std::string("Expected ") + num(xs[d]) + " or 1 for dimension " + std::to_string(d) + " of the kept shape " + dimsStr(ks) + " (x: " + dimsStr(xs) + ") in " + fn + " but received " + num(ks[d]));
    if (xs[d] == 1) continue;
    bool reduced = ks[d] == 1;
    std::vector<uint64_t>& size = reduced ? p.redSize : p.keptSize;
    std::vector<uint64_t>& stride = reduced ? p.redStride : p.keptStride;
    if (reduced) p.count *= xs[d];
    innerReduced = reduced;
    if (!size.empty() && stride.back() == st[d] * xs[d]) {
      size.back() *= xs[d];
      stride.back() = st[d];
    } else {
      size.push_back(xs[d]);
      stride.push_back(st[d]);
    }
  }
  p.row = innerReduced;
  return p;
}

template <typename T, typename I, typename Red, typename Ep>
void launchReduceI(Napi::Env env, cudaStream_t s, const T* x, const ReducePlan& p, Ep ep) {
  Strided<I> kept = toStrided<I>(p.keptSize, p.keptStride, {});
  Strided<I> red = toStrided<I>(p.redSize, p.redStride, {});
  if (p.row && p.count >= kSplitMinCount && p.nOut <= 64) {
    // About 1024 blocks in all, each slice at least 4096 elements long.
    uint64_t S = (1024 + p.nOut - 1) / p.nOut;
    const uint64_t bySize = (p.count + 4095) / 4096;
    if (S > bySize) S = bySize;
    if (S * p.nOut > kSplitSlots) S = kSplitSlots / p.nOut;
    const uint64_t len = (p.count + S - 1) / S;
    using Acc = typename Red::Acc;
    Acc* partials = splitScratch<Acc>(env);
    reduceSplitKernel<T, I, Red><<<gridFor(env, p.nOut * S, 1, 2), 1024, 0, s>>>(x, I(p.nOut), I(p.count), I(S), I(len), kept, red, partials);
    reduceSplitFinishKernel<I, Red><<<gridFor(env, p.nOut, 1), 256, 0, s>>>(I(p.nOut), I(S), kept, red, partials, ep);
  } else if (p.row) {
    if (p.count <= 1024) {
      reduceRowKernel<T, I, Red, true><<<gridFor(env, p.nOut, kThreads / 32), kThreads, 0, s>>>(x, I(p.nOut), I(p.count), kept, red, ep);
    } else {
      unsigned threads = p.nOut >= 128 ? 256 : 1024;
      reduceRowKernel<T, I, Red, false><<<gridFor(env, p.nOut, 1, 2048 / threads), threads, 0, s>>>(x, I(p.nOut), I(p.count), kept, red, ep);
    }
  } else {
    unsigned Y = p.count >= 1024 ? 32 : p.count >= 128 ? 16 : p.count >= 16 ? 4 : 1;
    reduceColKernel<T, I, Red><<<gridFor(env, p.nOut, 32, 2048 / (32 * Y)), dim3(32, Y), 0, s>>>(x, I(p.nOut), I(p.count), kept, red, ep);
  }
}

template <typename T, template <typename> class Red, typename Ep>
void launchReduce(Napi::Env env, cudaStream_t s, const T* x, const ReducePlan& p, Ep ep, const char* what) {
  if (p.nIn < kI32Limit)
    launchReduceI<T, uint32_t, Red<uint32_t>>(env, s, x, p, ep);
  else
    launchReduceI<T, uint64_t, Red<uint64_t>>(env, s, x, p, ep);
  checkLaunch(env, what);
}

void reduceDevice(Napi::Env env, cudaStream_t s, int dt, ReduceKind kind, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& ks, const void* g, const void* x, void* out, const char* fn);

Napi::Value reduceEntry(const Napi::CallbackInfo& info, const char* fn, ReduceKind kind) {
  Args a(info, fn);
  cudaStream_t s = a.stream();
  int dt = a.floatDtype();
  int rank = rankArg(a);
  std::vector<uint64_t> xs = a.shape(rank, "shape of x"), ks = a.shape(rank, "kept shape");
  Napi::Env env = a.env();
  ReducePlan p = planReduce(env, xs, ks, fn);
  size_t es = dtypeBytes(dt);
  const void* g = kind == ReduceKind::MaxBackward ? a.dev(p.nOut, es, "g") : nullptr;
  const void* x = a.dev(p.nIn, es, "x");
  void* out = a.dev(kind == ReduceKind::MaxBackward ? p.nIn : p.nOut, es, "out");
  a.end();
  reduceDevice(env, s, dt, kind, xs, ks, g, x, out, fn);
  return env.Undefined();
}

// g is used by MaxBackward only.
void reduceDevice(Napi::Env env, cudaStream_t s, int dt, ReduceKind kind, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& ks, const void* g, const void* x, void* out, const char* fn) {
  ReducePlan p = planReduce(env, xs, ks, fn);
  size_t es = dtypeBytes(dt);
  if (kind == ReduceKind::MaxBackward) {
    if (p.nIn == 0) return;
    DW_CUDA(env, cudaMemsetAsync(out, 0, p.nIn * es, s), "maxBackward: cudaMemsetAsync");
  }
  if (p.nOut == 0) return;
  if (p.count == 0) {
    // Empty groups (only for sum, mean, max; maxBackward returned above): the reference's 0,
    // 0 / 0 and -Infinity.
    double v = kind == ReduceKind::Sum ? 0.0 : kind == ReduceKind::Mean ? NAN : -INFINITY;
    DW_DISPATCH_FLOAT(env, dt, T, fillKernel<T><<<gridFor(env, p.nOut, kThreads), kThreads, 0, s>>>(static_cast<T*>(out), p.nOut, float(v), false));
    checkLaunch(env, fn);
    return;
  }
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* xt = static_cast<const T*>(x);
    T* ot = static_cast<T*>(out);
    switch (kind) {
      case ReduceKind::Sum: launchReduce<T, SumRed>(env, s, xt, p, SumOut<T>{ot, 1.f, false}, fn); break;
      case ReduceKind::Mean: launchReduce<T, SumRed>(env, s, xt, p, SumOut<T>{ot, float(p.count), true}, fn); break;
      case ReduceKind::Max: launchReduce<T, MaxRed>(env, s, xt, p, MaxOut<T>{ot}, fn); break;
      case ReduceKind::MaxBackward: launchReduce<T, MaxRed>(env, s, xt, p, MaxBackwardOut<T>{ot, static_cast<const T*>(g)}, fn); break;
    }
  });
}

Napi::Value Sum(const Napi::CallbackInfo& info) { return reduceEntry(info, "sum", ReduceKind::Sum); }
Napi::Value SumTo(const Napi::CallbackInfo& info) { return reduceEntry(info, "sumTo", ReduceKind::Sum); }
Napi::Value Mean(const Napi::CallbackInfo& info) { return reduceEntry(info, "mean", ReduceKind::Mean); }
Napi::Value Max(const Napi::CallbackInfo& info) { return reduceEntry(info, "max", ReduceKind::Max); }
Napi::Value MaxBackward(const Napi::CallbackInfo& info) { return reduceEntry(info, "maxBackward", ReduceKind::MaxBackward); }

// ---- cast ----------------------------------------------------------------------------------------
//
//   cast(stream, fromDtype, toDtype, n, x, out)       any of f32, bf16, f16, i32 to any
//
// As packages/ir/src/ops/cast.ts: to bf16/f16 round to nearest even from the value as f32 (i32
// first rounds to the nearest f32); to f32 from i32 the nearest f32; to i32 from a float truncation
// toward zero, saturating, NaN to 0; the same dtype is a copy.

template <typename To>
__device__ __forceinline__ To castFromFloat(float v) {
  if constexpr (std::is_same_v<To, int32_t>) {
    if (isnan(v)) return 0;
    if (v >= 2147483648.f) return 2147483647;
    if (v <= -2147483648.f) return -2147483647 - 1;
    return static_cast<int32_t>(v);  // truncates toward zero
  } else {
    return fromF<To>(v);
  }
}

template <typename From>
__device__ __forceinline__ float castToFloat(From v) {
  if constexpr (std::is_same_v<From, int32_t>) return __int2float_rn(v);
  else return toF(v);
}

template <typename From, typename To>
__global__ void __launch_bounds__(kThreads) castKernel(To* out, const From* x, uint64_t n) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    out[i] = castFromFloat<To>(castToFloat<From>(x[i]));
}

#define DW_DISPATCH_ANY(env, dtype, T, ...)                                   \
  switch (dtype) {                                                            \
    case ::dw::kF32: { using T = float; __VA_ARGS__; break; }                 \
    case ::dw::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }        \
    case ::dw::kF16: { using T = __half; __VA_ARGS__; break; }                \
    case ::dw::kI32: { using T = int32_t; __VA_ARGS__; break; }               \
    default: ::dw::fail(env, "INVALID_DTYPE", "Expected a dtype code 0..3"); \
  }

void castDevice(Napi::Env env, cudaStream_t s, int from, int to, uint64_t n, const void* x, void* out);

Napi::Value Cast(const Napi::CallbackInfo& info) {
  Args a(info, "cast");
  cudaStream_t s = a.stream();
  int from = a.dtype(), to = a.dtype();
  uint64_t n = a.u64("element count");
  const void* x = a.dev(n, dtypeBytes(from), "x");
  void* out = a.dev(n, dtypeBytes(to), "out");
  a.end();
  castDevice(a.env(), s, from, to, n, x, out);
  return a.env().Undefined();
}

void castDevice(Napi::Env env, cudaStream_t s, int from, int to, uint64_t n, const void* x, void* out) {
  if (n == 0) return;
  if (from == to) {
    if (x != out) DW_CUDA(env, cudaMemcpyAsync(out, x, n * dtypeBytes(from), cudaMemcpyDeviceToDevice, s), "cast: cudaMemcpyAsync");
    return;
  }
  DW_DISPATCH_ANY(env, from, F, {
    DW_DISPATCH_ANY(env, to, O, {
      castKernel<F, O><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<O*>(out), static_cast<const F*>(x), n);
    });
  });
  checkLaunch(env, "cast");
}

}  // namespace

void initOps_tensor(Napi::Env env, Napi::Object exports) {
  def(env, exports, "fill", Fill);
  def(env, exports, "add", Add);
  def(env, exports, "mul", Mul);
  def(env, exports, "sumTo", SumTo);
  def(env, exports, "broadcastTo", BroadcastTo);
  def(env, exports, "reshape", Reshape);
  def(env, exports, "scale", Scale);
  def(env, exports, "biasAdd", BiasAdd);
  def(env, exports, "gelu", Gelu);
  def(env, exports, "geluBackward", GeluBackward);
  def(env, exports, "silu", Silu);
  def(env, exports, "siluBackward", SiluBackward);
  def(env, exports, "swiglu", Swiglu);
  def(env, exports, "transpose", Transpose);
  def(env, exports, "slice", Slice);
  def(env, exports, "sliceBackward", SliceBackward);
  def(env, exports, "concat", Concat);
  def(env, exports, "sum", Sum);
  def(env, exports, "mean", Mean);
  def(env, exports, "max", Max);
  def(env, exports, "maxBackward", MaxBackward);
  def(env, exports, "cast", Cast);
}

}  // namespace dw

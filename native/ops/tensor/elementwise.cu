// Elementwise ops, bias_add and add / mul with broadcasting (tensor family; see tensor.cpp).
//
//   fill(stream, dtype, n, value, out)
//   scale(stream, dtype, n, alpha, x, out)
//   gelu(stream, dtype, n, x, out, amax)        silu(stream, dtype, n, x, out)
//   geluBackward(stream, dtype, n, g, x, out, amax)   siluBackward(stream, dtype, n, g, x, out)
//   swiglu(stream, dtype, n, gate, up, out)
//   biasAdd(stream, dtype, rows, cols, x, bias, out)      x, out: rows*cols; bias: cols
//
// Float dtypes only. Grid-stride loops over 16-byte packs (two packs in flight per thread) when
// every pointer is 16-byte aligned, else over single elements; the n % pack tail is done by the
// first threads. gelu, geluBackward and add take an optional amax (f32[1]): the largest finite
// |out| as stored, reduced as out is written (common/amax.cuh; add: same-shape operands only).
//
//   add(stream, dtype, rank, outShape[rank], aShape[rank], bShape[rank], a, b, out, amax)
//   mul(stream, dtype, rank, outShape[rank], aShape[rank], bShape[rank], a, b, out)
//
// aShape and bShape are the operands' shapes right-aligned to `rank` (padded with leading 1s); each
// dimension equals the output's or is 1. Dimensions are collapsed on the host; then equal shapes
// take the packed elementwise kernel, [R, C] op [C] (either order) the row-broadcast kernel, and
// anything else the strided kernel (one index decomposition per element).
#include "ops/tensor/tensor.h"

#include "common/activations.cuh"
#include "common/amax.cuh"
#include "common/launch.h"
#include "ops/tensor/tensor_common.cuh"

#include <algorithm>
#include <vector>

namespace dw::tensor {
namespace {

// A 16-byte pack of storage elements, loaded and stored as one 128-bit access.
template <typename T>
struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};


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

// The activations (geluF, geluGradF, siluF) are common/activations.cuh's, shared with the grouped GEMM's epilogues.
struct GeluOp {
  __device__ float operator()(float x) const { return geluF(x); }
};

struct GeluBackwardOp {
  __device__ float operator()(float g, float x) const { return g * geluGradF(x); }
};

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

// The running amax of a pack as stored.
template <typename T>
__device__ __forceinline__ float packAmax(float m, const Pack<T>& p) {
#pragma unroll
  for (int k = 0; k < Pack<T>::N; ++k) m = fmaxf(m, finiteAbs(toF(p.v[k])));
  return m;
}

// b is ignored (and may be null) when NIN == 1. With AMAX, the largest finite |out| goes to amax.
template <int NIN, bool AMAX, typename T, typename Op>
__global__ void __launch_bounds__(kThreads) elementwiseVecKernel(T* out, const T* a, const T* b, uint64_t n, Op op, float* amax) {
  using P = Pack<T>;
  const uint64_t nv = n / P::N;
  const uint64_t tid = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x;
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  const P* pa = reinterpret_cast<const P*>(a);
  const P* pb = reinterpret_cast<const P*>(b);
  P* po = reinterpret_cast<P*>(out);
  float m = 0.f;
  uint64_t v = tid;
  for (; v + stride < nv; v += 2 * stride) {
    P a0 = pa[v], a1 = pa[v + stride];
    P b0 = a0, b1 = a1;
    if constexpr (NIN == 2) {
      b0 = pb[v];
      b1 = pb[v + stride];
    }
    const P r0 = applyPack<NIN, T>(op, a0, b0), r1 = applyPack<NIN, T>(op, a1, b1);
    po[v] = r0;
    po[v + stride] = r1;
    if constexpr (AMAX) m = packAmax(packAmax(m, r0), r1);
  }
  if (v < nv) {
    P a0 = pa[v];
    P b0 = a0;
    if constexpr (NIN == 2) b0 = pb[v];
    const P r0 = applyPack<NIN, T>(op, a0, b0);
    po[v] = r0;
    if constexpr (AMAX) m = packAmax(m, r0);
  }
  const uint64_t tail = n - nv * P::N;
  if (tid < tail) {
    const uint64_t i = nv * P::N + tid;
    const T r = fromF<T>(apply<NIN>(op, toF(a[i]), NIN == 2 ? toF(b[i]) : 0.f));
    out[i] = r;
    if constexpr (AMAX) m = fmaxf(m, finiteAbs(toF(r)));
  }
  if constexpr (AMAX) blockAmaxAtomic(m, amax);
}

template <int NIN, bool AMAX, typename T, typename Op>
__global__ void __launch_bounds__(kThreads) elementwiseKernel(T* out, const T* a, const T* b, uint64_t n, Op op, float* amax) {
  float m = 0.f;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x) {
    const T r = fromF<T>(apply<NIN>(op, toF(a[i]), NIN == 2 ? toF(b[i]) : 0.f));
    out[i] = r;
    if constexpr (AMAX) m = fmaxf(m, finiteAbs(toF(r)));
  }
  if constexpr (AMAX) blockAmaxAtomic(m, amax);
}

// amax: null, or an f32[1] to zero and reduce the largest finite |out| into.
template <int NIN, typename T, typename Op>
void launchElementwise(Napi::Env env, cudaStream_t s, T* out, const T* a, const T* b, uint64_t n, Op op, const char* what, float* amax = nullptr) {
  zeroAmax(env, amax, s);
  if (n == 0) return;
  constexpr int W = Pack<T>::N;
  if (aligned(out, 16) && aligned(a, 16) && (NIN == 1 || aligned(b, 16))) {
    uint64_t threads = std::max<uint64_t>((n / W + 1) / 2, W);
    const unsigned grid = gridFor(env, threads, kThreads);
    if (amax) elementwiseVecKernel<NIN, true, T><<<grid, kThreads, 0, s>>>(out, a, b, n, op, amax);
    else elementwiseVecKernel<NIN, false, T><<<grid, kThreads, 0, s>>>(out, a, b, n, op, nullptr);
  } else {
    const unsigned grid = gridFor(env, n, kThreads);
    if (amax) elementwiseKernel<NIN, true, T><<<grid, kThreads, 0, s>>>(out, a, b, n, op, amax);
    else elementwiseKernel<NIN, false, T><<<grid, kThreads, 0, s>>>(out, a, b, n, op, nullptr);
  }
  checkLaunch(env, what);
}

template <int NIN, typename Op>
void dispatchElementwise(Napi::Env env, cudaStream_t s, int dtype, void* out, const void* a, const void* b, uint64_t n, Op op, const char* what, float* amax = nullptr) {
  DW_DISPATCH_FLOAT(env, dtype, T,
                    launchElementwise<NIN, T>(env, s, static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), n, op, what, amax));
}

// The unary and binary entry points once their arguments are read: n elements of every tensor;
// amax (null for none) as launchElementwise takes it.
template <typename Op>
Napi::Value unaryEntry(Napi::Env env, cudaStream_t s, int dt, uint64_t n, const abi::TensorArg& xArg, const abi::TensorArg& outArg, Op op, const char* fn, float* amax = nullptr) {
  size_t es = dtypeBytes(dt);
  const void* x = xArg.ptr<void>(env, n, es);
  void* out = outArg.ptr<void>(env, n, es);
  dispatchElementwise<1>(env, s, dt, out, x, nullptr, n, op, fn, amax);
  return env.Undefined();
}

template <typename Op>
Napi::Value binaryEntry(Napi::Env env, cudaStream_t s, int dt, uint64_t n, const abi::TensorArg& xArg, const abi::TensorArg& yArg, const abi::TensorArg& outArg, Op op,
                        const char* fn, float* amax = nullptr) {
  size_t es = dtypeBytes(dt);
  const void* x = xArg.ptr<void>(env, n, es);
  const void* y = yArg.ptr<void>(env, n, es);
  void* out = outArg.ptr<void>(env, n, es);
  dispatchElementwise<2>(env, s, dt, out, x, y, n, op, fn, amax);
  return env.Undefined();
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
  launchFill(env, s, dt, n, value, out, vec);
  checkLaunch(env, "fill");
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

// ---- add / mul with broadcasting ---------------------------------------------------------------

template <typename T, typename I, typename Op>
__global__ void __launch_bounds__(kThreads) broadcastBinaryKernel(T* out, const T* a, const T* b, I n, Strided<I> s, Op op) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I ia, ib;
    offsetAB(i, s, ia, ib);
    out[i] = fromF<T>(op(toF(a[ia]), toF(b[ib])));
  }
}

// amax (add only) is computed for equal shapes; the caller refuses it for the others.
template <typename T, typename Op>
void launchBroadcastBinary(Napi::Env env, cudaStream_t s, T* out, const T* a, const T* b, uint64_t n, const std::vector<Dim2>& dims, Op op, const char* what, float* amax) {
  if (n == 0) {
    zeroAmax(env, amax, s);
    return;
  }
  std::vector<uint64_t> size, sa, sb;
  for (const Dim2& d : dims) {
    size.push_back(d.size);
    sa.push_back(d.a);
    sb.push_back(d.b);
  }
  // Equal shapes: one contiguous dimension (or none: a single element).
  if (dims.empty() || (dims.size() == 1 && dims[0].a == 1 && dims[0].b == 1)) {
    launchElementwise<2, T>(env, s, out, a, b, n, op, what, amax);
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
                           const void* pa, const void* pb, void* out, Op op, const char* fn, float* amax) {
  uint64_t n = product(env, os, "out");
  std::vector<uint64_t> sa = broadcastStrides(env, os, as, fn, "a"), sb = broadcastStrides(env, os, bs, fn, "b");
  std::vector<Dim2> dims;
  for (size_t d = 0; d < os.size(); ++d) dims.push_back({os[d], sa[d], sb[d]});
  dims = collapse(dims);
  if (amax && !(dims.empty() || (dims.size() == 1 && dims[0].a == 1 && dims[0].b == 1)))
    fail(env, "INVALID_ARGUMENT", std::string("Expected operands of the output's shape for ") + fn + " with an amax (it is reduced for same-shape operands only) but received broadcasting shapes");
  DW_DISPATCH_FLOAT(env, dt, T,
                    launchBroadcastBinary<T>(env, s, static_cast<T*>(out), static_cast<const T*>(pa), static_cast<const T*>(pb), n, dims, op, fn, amax));
}

// add / mul once their arguments are read: os, as, bs of one rank (the reader read rank of each).
template <typename Op>
Napi::Value broadcastBinaryEntry(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& os, const std::vector<uint64_t>& as, const std::vector<uint64_t>& bs,
                                 const abi::TensorArg& aArg, const abi::TensorArg& bArg, const abi::TensorArg& outArg, Op op, const char* fn, float* amax = nullptr) {
  uint64_t n = product(env, os, "out"), na = product(env, as, "a"), nb = product(env, bs, "b");
  broadcastStrides(env, os, as, fn, "a");
  broadcastStrides(env, os, bs, fn, "b");
  size_t es = dtypeBytes(dt);
  const void* pa = aArg.ptr<void>(env, na, es);
  const void* pb = bArg.ptr<void>(env, nb, es);
  void* out = outArg.ptr<void>(env, n, es);
  broadcastBinaryDevice(env, s, dt, os, as, bs, pa, pb, out, op, fn, amax);
  return env.Undefined();
}

}  // namespace

void launchFill(Napi::Env env, cudaStream_t s, int dt, uint64_t n, float value, void* out, bool vec) {
  DW_DISPATCH_FLOAT(env, dt, T, {
    uint64_t work = vec ? std::max<uint64_t>(n / Pack<T>::N, 1) : n;
    fillKernel<T><<<gridFor(env, work, kThreads), kThreads, 0, s>>>(static_cast<T*>(out), n, value, vec);
  });
}

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  const abi::GeluArgs a = abi::readGelu(info);
  return unaryEntry(info.Env(), a.stream, a.dtype, a.n, a.x, a.out, GeluOp{}, "gelu", a.amax.optPtr<float>(info.Env(), 1));
}

Napi::Value Silu(const Napi::CallbackInfo& info) {
  const abi::SiluArgs a = abi::readSilu(info);
  return unaryEntry(info.Env(), a.stream, a.dtype, a.n, a.x, a.out, SiluOp{}, "silu");
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const abi::GeluBackwardArgs a = abi::readGeluBackward(info);
  return binaryEntry(info.Env(), a.stream, a.dtype, a.n, a.g, a.x, a.out, GeluBackwardOp{}, "geluBackward", a.amax.optPtr<float>(info.Env(), 1));
}

Napi::Value SiluBackward(const Napi::CallbackInfo& info) {
  const abi::SiluBackwardArgs a = abi::readSiluBackward(info);
  return binaryEntry(info.Env(), a.stream, a.dtype, a.n, a.g, a.x, a.out, SiluBackwardOp{}, "siluBackward");
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const abi::SwigluArgs a = abi::readSwiglu(info);
  return binaryEntry(info.Env(), a.stream, a.dtype, a.n, a.gate, a.up, a.out, SwigluOp{}, "swiglu");
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  const abi::ScaleArgs a = abi::readScale(info);
  Napi::Env env = info.Env();
  float alpha = static_cast<float>(a.alpha);
  size_t es = dtypeBytes(a.dtype);
  const void* x = a.x.ptr<void>(env, a.n, es);
  void* out = a.out.ptr<void>(env, a.n, es);
  dispatchElementwise<1>(env, a.stream, a.dtype, out, x, nullptr, a.n, ScaleOp{alpha}, "scale");
  return env.Undefined();
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  const abi::FillArgs a = abi::readFill(info);
  Napi::Env env = info.Env();
  float value = static_cast<float>(a.value);
  void* out = a.out.ptr<void>(env, a.n, dtypeBytes(a.dtype));
  fillDevice(env, a.stream, a.dtype, a.n, value, out);
  return env.Undefined();
}

Napi::Value BiasAdd(const Napi::CallbackInfo& info) {
  const abi::BiasAddArgs a = abi::readBiasAdd(info);
  Napi::Env env = info.Env();
  uint64_t n = mulSize(env, a.rows, a.cols, "biasAdd");
  size_t es = dtypeBytes(a.dtype);
  const void* x = a.x.ptr<void>(env, n, es);
  const void* bias = a.bias.ptr<void>(env, a.cols, es);
  void* out = a.out.ptr<void>(env, n, es);
  biasAddDevice(env, a.stream, a.dtype, a.rows, a.cols, x, bias, out);
  return env.Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  const abi::AddArgs a = abi::readAdd(info);
  return broadcastBinaryEntry(info.Env(), a.stream, a.dtype, a.outShape, a.aShape, a.bShape, a.a, a.b, a.out, AddOp{}, "add", a.amax.optPtr<float>(info.Env(), 1));
}

Napi::Value Mul(const Napi::CallbackInfo& info) {
  const abi::MulArgs a = abi::readMul(info);
  return broadcastBinaryEntry(info.Env(), a.stream, a.dtype, a.outShape, a.aShape, a.bShape, a.a, a.b, a.out, MulOp{}, "mul");
}

}  // namespace dw::tensor

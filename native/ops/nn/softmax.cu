// softmax and its backward along one axis (nn family; see nn.cpp).
//
//   softmax(stream, dtype, outer, n, inner, x, y)
//   softmaxBackward(stream, dtype, outer, n, inner, g, y, dx)
//       x: [outer, n, inner], normalised along n (inner = 1 is the last axis).
//
// The last axis (inner = 1) goes through the row framework (common/rows.cuh) with the online
// max / sum of online_softmax.cuh; any other axis takes one thread per (outer, inner) column,
// coalesced across inner.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/launch.h"
#include "common/rows.cuh"
#include "ops/nn/online_softmax.cuh"

namespace dw::nn {
namespace {

template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024) softmaxRowsK(const T* x, T* y, int64_t rows, int nch) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(xr, nch);
    float M = -INFINITY, s = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) { msChunk<V>(M, s, v); });
    blockMaxSum(M, s, sh);
    const float inv = 1.f / s;
    rx.each(xr, nch, [&](int, int j, const float(&v)[V]) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = msExp(v[k], M) * inv;
      storeF<T, V>(yr + static_cast<int64_t>(j) * V, o);
    });
  }
}

// Softmax along a non-last axis: one thread per (outer, inner) column, coalesced across inner.
template <typename T>
__global__ void softmaxColsK(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const T* xp = x + o * n * inner + i;
    T* yp = y + o * n * inner + i;
    float M = -INFINITY, s = 0.f;
    for (int64_t k = 0; k < n; k++) {
      const float v[1] = {toF(xp[k * inner])};
      msChunk<1>(M, s, v);
    }
    const float inv = 1.f / s;
    for (int64_t k = 0; k < n; k++) yp[k * inner] = fromF<T>(msExp(toF(xp[k * inner]), M) * inv);
  }
}

template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024) softmaxBwdRowsK(const T* g, const T* y, T* dx, int64_t rows, int nch) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    T* dr = dx + row * D;
    RowData<T, V, NCH, CACHED> rg, ry;
    rg.load(gr, nch);
    ry.load(yr, nch);
    float dot = 0.f;
    each2(rg, gr, ry, yr, nch, [&](int, int, const float(&gv)[V], const float(&yv)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) dot += gv[k] * yv[k];
    });
    dot = blockSum(dot, sh);
    each2(rg, gr, ry, yr, nch, [&](int, int j, const float(&gv)[V], const float(&yv)[V]) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = yv[k] * (gv[k] - dot);
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
}

template <typename T>
__global__ void softmaxBwdColsK(const T* g, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const int64_t base = o * n * inner + i;
    float dot = 0.f;
    for (int64_t k = 0; k < n; k++) dot += toF(g[base + k * inner]) * toF(y[base + k * inner]);
    for (int64_t k = 0; k < n; k++) {
      const float yv = toF(y[base + k * inner]);
      dx[base + k * inner] = fromF<T>(yv * (toF(g[base + k * inner]) - dot));
    }
  }
}

}  // namespace

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const abi::SoftmaxArgs a = abi::readSoftmax(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t outer = a.outer, n = a.n, inner = a.inner;
  const uint64_t total = mulSize(env, mulSize(env, outer, n, "softmax x"), inner, "softmax x");
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, total);
    T* y = a.y.ptr<T>(env, total);
    if (total == 0) return env.Undefined();
    if (inner == 1) {
      checkRowLength(env, n, "softmax");
      DW_ROW_DISPATCH(T, canVec<T>(n, {x, y}), DW_FWD_ELEMS(T), {
        const int nch = static_cast<int>(n / V);
        const RowPlan p = rowPlan(nch, NCH);
        if (p.cached)
          softmaxRowsK<T, V, NCH, true><<<p.grid(outer), p.block(), 0, s>>>(x, y, static_cast<int64_t>(outer), nch);
        else
          softmaxRowsK<T, V, NCH, false><<<p.grid(outer), p.block(), 0, s>>>(x, y, static_cast<int64_t>(outer), nch);
      });
    } else {
      softmaxColsK<T><<<capBlocks((outer * inner + 255) / 256), 256, 0, s>>>(x, y, static_cast<int64_t>(outer), static_cast<int64_t>(n), static_cast<int64_t>(inner));
    }
    checkLaunch(env, "softmax");
  });
  return env.Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  const abi::SoftmaxBackwardArgs a = abi::readSoftmaxBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t outer = a.outer, n = a.n, inner = a.inner;
  const uint64_t total = mulSize(env, mulSize(env, outer, n, "softmax_backward g"), inner, "softmax_backward g");
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* g = a.g.ptr<T>(env, total);
    const T* y = a.y.ptr<T>(env, total);
    T* dx = a.dx.ptr<T>(env, total);
    if (total == 0) return env.Undefined();
    if (inner == 1) {
      checkRowLength(env, n, "softmax_backward");
      DW_ROW_DISPATCH(T, canVec<T>(n, {g, y, dx}), kBwdFloats, {
        const int nch = static_cast<int>(n / V);
        const RowPlan p = rowPlan(nch, NCH);
        if (p.cached)
          softmaxBwdRowsK<T, V, NCH, true><<<p.grid(outer), p.block(), 0, s>>>(g, y, dx, static_cast<int64_t>(outer), nch);
        else
          softmaxBwdRowsK<T, V, NCH, false><<<p.grid(outer), p.block(), 0, s>>>(g, y, dx, static_cast<int64_t>(outer), nch);
      });
    } else {
      softmaxBwdColsK<T><<<capBlocks((outer * inner + 255) / 256), 256, 0, s>>>(g, y, dx, static_cast<int64_t>(outer), static_cast<int64_t>(n), static_cast<int64_t>(inner));
    }
    checkLaunch(env, "softmax_backward");
  });
  return env.Undefined();
}

}  // namespace dw::nn

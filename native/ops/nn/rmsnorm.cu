// rmsnorm and its backward (nn family; see nn.cpp).
//
//   rmsnorm(stream, dtype, rows, D, eps, x, weight, y, rstd)
//   rmsnormBackward(stream, dtype, rows, D, g, x, weight, rstd, dx, dweight, workspace)
//       workspace: the column partials, at least 4 * min(4 << 20, rows * D) bytes.
//
// Rows go through the row framework (common/rows.cuh). The backward's dweight is a column sum over
// rows: per-row-group partials in the call's workspace, then a fixed-order reduction
// (norm_partials.h).
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/launch.h"
#include "common/rows.cuh"
#include "ops/nn/norm_partials.h"

#include <string>

namespace dw::nn {
namespace {

template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024) rmsnormK(const T* x, const T* w, T* y, float* rstd, int64_t rows, int nch, float eps) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(xr, nch);
    float sq = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) sq += v[k] * v[k];
    });
    const float r = 1.f / sqrtf(blockSum(sq, sh) / Df + eps);
    rx.each(xr, nch, [&](int, int j, const float(&v)[V]) {
      float wv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = v[k] * r * wv[k];
      storeF<T, V>(yr + static_cast<int64_t>(j) * V, o);
    });
    if (threadIdx.x == 0) rstd[row] = r;
  }
}

// As layernormBwdK (layernorm.cu); the workspace (ws) is [min(gridDim.x * blockDim.y, rows)][D]
// (dweight only); a row group past the last row has no slice and writes nothing.
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    rmsnormBwdK(const T* g, const T* x, const T* w, const float* rstd, T* dx, int64_t rows, int nch, float* ws) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  const bool hasSlice = firstRow() < rows;
  float* pw = ws + firstRow() * D;
  float aw[CACHED ? NCH : 1][V];
#pragma unroll
  for (int i = 0; i < (CACHED ? NCH : 1); i++)
#pragma unroll
    for (int k = 0; k < V; k++) aw[i][k] = 0.f;
  if constexpr (!CACHED) {
    if (hasSlice)
      for (int64_t e = threadIdx.x * static_cast<int64_t>(V); e < D; e += static_cast<int64_t>(blockDim.x) * V)
        for (int k = 0; k < V; k++) pw[e + k] = 0.f;
  }
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const float r = rstd[row];
    const T* gr = g + row * D;
    const T* xr = x + row * D;
    T* dr = dx + row * D;
    RowData<T, V, NCH, CACHED> rg, rx;
    rg.load(gr, nch);
    rx.load(xr, nch);
    float sGwX = 0.f;
    each2(rg, gr, rx, xr, nch, [&](int i, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) {
        sGwX += __fmul_rn(gv[k], wv[k]) * xv[k];
        if constexpr (CACHED) {
          aw[i][k] += gv[k] * xv[k] * r;
        } else {
          pw[static_cast<int64_t>(j) * V + k] += gv[k] * xv[k] * r;
        }
      }
    });
    sGwX = blockSum(sGwX, sh);
    const float c = r * r * sGwX / Df;
    each2(rg, gr, rx, xr, nch, [&](int, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = r * (__fmul_rn(gv[k], wv[k]) - xv[k] * c);
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
  if constexpr (CACHED) {
    if (hasSlice) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < nch)
#pragma unroll
          for (int k = 0; k < V; k++) pw[static_cast<int64_t>(j) * V + k] = aw[i][k];
      }
    }
  }
}

}  // namespace

Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  const abi::RmsnormArgs a = abi::readRmsnorm(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, D = a.D;
  const float eps = static_cast<float>(a.eps);
  const uint64_t total = mulSize(env, rows, D, "rmsnorm x");
  checkRowLength(env, D, "rmsnorm");
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, total);
    const T* w = a.weight.ptr<T>(env, D);
    T* y = a.y.ptr<T>(env, total);
    float* rstd = a.rstd.ptr<float>(env, rows);
    if (rows == 0) return env.Undefined();
    if (D == 0)
      fail(env, "INVALID_ARGUMENT", "Expected a row length of at least 1 for rmsnorm but received 0");
    DW_ROW_DISPATCH(T, canVec<T>(D, {x, w, y}), DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(D / V);
      const RowPlan p = rowPlan(nch, NCH);
      if (p.cached)
        rmsnormK<T, V, NCH, true><<<p.grid(rows), p.block(), 0, s>>>(x, w, y, rstd, static_cast<int64_t>(rows), nch, eps);
      else
        rmsnormK<T, V, NCH, false><<<p.grid(rows), p.block(), 0, s>>>(x, w, y, rstd, static_cast<int64_t>(rows), nch, eps);
    });
    checkLaunch(env, "rmsnorm");
  });
  return env.Undefined();
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  const abi::RmsnormBackwardArgs a = abi::readRmsnormBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, D = a.D;
  const uint64_t total = mulSize(env, rows, D, "rmsnorm_backward x");
  checkRowLength(env, D, "rmsnorm_backward");
  if (D > static_cast<uint64_t>(kWsFloats))
    fail(env, "INVALID_ARGUMENT", "Expected a row length of at most " + std::to_string(kWsFloats) + " for rmsnorm_backward but received " + std::to_string(D));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* g = a.g.ptr<T>(env, total);
    const T* x = a.x.ptr<T>(env, total);
    const T* w = a.weight.ptr<T>(env, D);
    const float* rstd = a.rstd.ptr<float>(env, rows);
    T* dx = a.dx.ptr<T>(env, total);
    T* dw = a.dweight.ptr<T>(env, D);
    if (D == 0) return env.Undefined();
    unsigned nb = 0;
    float* ws = nullptr;
    if (rows > 0) {
      DW_ROW_DISPATCH(T, canVec<T>(D, {g, x, w, dx}), kBwdFloats, {
        const int nch = static_cast<int>(D / V);
        const RowPlan p = rowPlan(nch, NCH);
        const unsigned grid = bwdGrid(p, rows, D, 1);
        nb = normPartialSlices(grid * static_cast<unsigned>(p.groups), rows);
        ws = takeNormPartials(env, a.workspace, normPartialFloats(nb, D, 1));
        if (p.cached)
          rmsnormBwdK<T, V, NCH, true><<<grid, p.block(), 0, s>>>(g, x, w, rstd, dx, static_cast<int64_t>(rows), nch, ws);
        else
          rmsnormBwdK<T, V, NCH, false><<<grid, p.block(), 0, s>>>(g, x, w, rstd, dx, static_cast<int64_t>(rows), nch, ws);
      });
      checkLaunch(env, "rmsnorm_backward");
    }
    launchColReduce<T>(s, ws, nb, D, D, dw, static_cast<T*>(nullptr));
    checkLaunch(env, "rmsnorm_backward (column sums)");
  });
  return env.Undefined();
}

}  // namespace dw::nn

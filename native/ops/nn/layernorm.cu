// layernorm, add_layernorm and the layernorm backward (nn family; see nn.cpp).
//
//   layernorm(stream, dtype, rows, D, eps, x, weight, bias, y, mean, rstd)
//   addLayernorm(stream, dtype, rows, D, eps, x, residual, weight, bias, sum, y, mean, rstd, amax)
//       sum = x + residual (stored, rounded), then layernorm of sum: add_layernorm in one pass.
//       amax (optional f32[1]): the largest finite |y| as stored, for the FP8 quantizer that reads
//       y (common/amax.cuh).
//   layernormBackward(stream, dtype, rows, D, g, x, weight, mean, rstd, dx, dweight, dbias, workspace)
//       workspace: the column partials, at least 4 * min(4 << 20, rows * 2 * D) bytes.
//
// Rows go through the row framework (common/rows.cuh). The backward's dweight and dbias are column
// sums over rows: per-row-group partials in the call's workspace, then a fixed-order reduction
// (norm_partials.h).
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/amax.cuh"
#include "common/launch.h"
#include "common/rows.cuh"
#include "ops/nn/norm_partials.h"

#include <string>

namespace dw::nn {
namespace {

// With RES (add_layernorm), the row normalised is s = x + r, rounded to T and written out first (as
// the unfused add would store it); each thread then reads back only the chunks it wrote itself.
template <typename T, int V, int NCH, bool CACHED, bool RES>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    layernormK(const T* x, const T* r, T* s, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows, int nch, float eps, float* amax) {
  __shared__ float sh[32];
  float m = 0.f;  // the largest finite |y| this thread stored (with amax)
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    if constexpr (RES) {
      const T* rr = r + row * D;
      T* sr = s + row * D;
      for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        float a[V], c[V];
        loadF<T, V>(xr + static_cast<int64_t>(j) * V, a);
        loadF<T, V>(rr + static_cast<int64_t>(j) * V, c);
#pragma unroll
        for (int k = 0; k < V; k++) a[k] += c[k];
        storeF<T, V>(sr + static_cast<int64_t>(j) * V, a);
      }
      xr = sr;
    }
    RowData<T, V, NCH, CACHED> rx;
    rx.load(xr, nch);
    float sum = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) sum += v[k];
    });
    const float mu = blockSum(sum, sh) / Df;
    float sq = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float d = v[k] - mu;
        sq += d * d;
      }
    });
    const float r = 1.f / sqrtf(blockSum(sq, sh) / Df + eps);
    rx.each(xr, nch, [&](int, int j, const float(&v)[V]) {
      float wv[V], bv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
      loadF<T, V>(b + static_cast<int64_t>(j) * V, bv);
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = (v[k] - mu) * r * wv[k] + bv[k];
      storeF<T, V>(yr + static_cast<int64_t>(j) * V, o);
      if (amax) {
#pragma unroll
        for (int k = 0; k < V; k++) m = fmaxf(m, finiteAbs(toF(fromF<T>(o[k]))));
      }
    });
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = r;
    }
  }
  if (amax) blockAmaxAtomic(m, amax);
}

// dx per row; the row group's column sums of g * xhat and g go to its slice of the workspace (ws,
// [min(gridDim.x * blockDim.y, rows)][2][D], see normPartialSlices): kept in registers when CACHED,
// read-modify-written in ws otherwise. Each column of a slice belongs to one thread, so the slices
// are deterministic. A row group past the last row has no slice and writes nothing.
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    layernormBwdK(const T* g, const T* x, const T* w, const float* mean, const float* rstd, T* dx, int64_t rows, int nch, float* ws) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  const bool hasSlice = firstRow() < rows;
  float* pw = ws + firstRow() * 2 * D;  // this row group's slice (firstRow() is its slot)
  float* pb = pw + D;
  float aw[CACHED ? NCH : 1][V], ab[CACHED ? NCH : 1][V];
#pragma unroll
  for (int i = 0; i < (CACHED ? NCH : 1); i++)
#pragma unroll
    for (int k = 0; k < V; k++) aw[i][k] = ab[i][k] = 0.f;
  if constexpr (!CACHED) {
    if (hasSlice)
      for (int64_t e = threadIdx.x * static_cast<int64_t>(V); e < D; e += static_cast<int64_t>(blockDim.x) * V)
        for (int k = 0; k < V; k++) pw[e + k] = pb[e + k] = 0.f;
  }
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const float mu = mean[row], r = rstd[row];
    const T* gr = g + row * D;
    const T* xr = x + row * D;
    T* dr = dx + row * D;
    RowData<T, V, NCH, CACHED> rg, rx;
    rg.load(gr, nch);
    rx.load(xr, nch);
    float sGw = 0.f, sGwX = 0.f;
    each2(rg, gr, rx, xr, nch, [&](int i, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float xh = (xv[k] - mu) * r;
        const float gw = __fmul_rn(gv[k], wv[k]);
        sGw += gw;
        sGwX += gw * xh;
        if constexpr (CACHED) {
          aw[i][k] += gv[k] * xh;
          ab[i][k] += gv[k];
        } else {
          pw[static_cast<int64_t>(j) * V + k] += gv[k] * xh;
          pb[static_cast<int64_t>(j) * V + k] += gv[k];
        }
      }
    });
    blockSum2(sGw, sGwX, sh);
    const float mGw = sGw / Df, mGwX = sGwX / Df;
    each2(rg, gr, rx, xr, nch, [&](int, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float xh = (xv[k] - mu) * r;
        o[k] = r * (__fmul_rn(gv[k], wv[k]) - mGw - xh * mGwX);
      }
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
          for (int k = 0; k < V; k++) {
            pw[static_cast<int64_t>(j) * V + k] = aw[i][k];
            pb[static_cast<int64_t>(j) * V + k] = ab[i][k];
          }
      }
    }
  }
}

// layernorm and add_layernorm: the same kernel; add_layernorm (RES, A = abi::AddLayernormArgs)
// takes the residual r after x and writes the sum s before y.
template <bool RES, typename A>
Napi::Value layernormCall(Napi::Env env, const A& a) {
  const bool res = RES;
  const std::string op = res ? "add_layernorm" : "layernorm";
  auto name = [&](const char* what) { return op + " " + what; };
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, D = a.D;
  const float eps = static_cast<float>(a.eps);
  const uint64_t total = mulSize(env, rows, D, name("x").c_str());
  checkRowLength(env, D, op.c_str());
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.template ptr<T>(env, total);
    const T* r = nullptr;
    if constexpr (RES) r = a.residual.template ptr<T>(env, total);
    const T* w = a.weight.template ptr<T>(env, D);
    const T* b = a.bias.template ptr<T>(env, D);
    T* sum = nullptr;
    if constexpr (RES) sum = a.sum.template ptr<T>(env, total);
    T* y = a.y.template ptr<T>(env, total);
    float* mean = a.mean.template ptr<float>(env, rows);
    float* rstd = a.rstd.template ptr<float>(env, rows);
    float* amax = nullptr;
    if constexpr (RES) amax = a.amax.template optPtr<float>(env, 1);
    zeroAmax(env, amax, s);
    if (rows == 0) return env.Undefined();
    if (D == 0) fail(env, "INVALID_ARGUMENT", "Expected a row length of at least 1 for " + op + " but received 0");
    if (res && (badOverlap(sum, total * sizeof(T), x, total * sizeof(T)) || badOverlap(sum, total * sizeof(T), r, total * sizeof(T))))
      fail(env, "INVALID_ARGUMENT", "Expected add_layernorm's sum to be the same range as x or the residual, or not to overlap them, but it overlaps one partly");
    DW_ROW_DISPATCH(T, canVec<T>(D, {x, r ? r : x, sum ? sum : y, w, b, y}), DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(D / V);
      const RowPlan p = rowPlan(nch, NCH);
      const int64_t n = static_cast<int64_t>(rows);
      if (p.cached && res)
        layernormK<T, V, NCH, true, true><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
      else if (p.cached)
        layernormK<T, V, NCH, true, false><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
      else if (res)
        layernormK<T, V, NCH, false, true><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
      else
        layernormK<T, V, NCH, false, false><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
    });
    checkLaunch(env, op.c_str());
  });
  return env.Undefined();
}

}  // namespace

Napi::Value Layernorm(const Napi::CallbackInfo& info) {
  const abi::LayernormArgs a = abi::readLayernorm(info);
  return layernormCall<false>(info.Env(), a);
}

Napi::Value AddLayernorm(const Napi::CallbackInfo& info) {
  const abi::AddLayernormArgs a = abi::readAddLayernorm(info);
  return layernormCall<true>(info.Env(), a);
}

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const abi::LayernormBackwardArgs a = abi::readLayernormBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, D = a.D;
  const uint64_t total = mulSize(env, rows, D, "layernorm_backward x");
  checkRowLength(env, D, "layernorm_backward");
  if (D > static_cast<uint64_t>(kWsFloats) / 2)
    fail(env, "INVALID_ARGUMENT", "Expected a row length of at most " + std::to_string(kWsFloats / 2) + " for layernorm_backward but received " + std::to_string(D));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* g = a.g.ptr<T>(env, total);
    const T* x = a.x.ptr<T>(env, total);
    const T* w = a.weight.ptr<T>(env, D);
    const float* mean = a.mean.ptr<float>(env, rows);
    const float* rstd = a.rstd.ptr<float>(env, rows);
    T* dx = a.dx.ptr<T>(env, total);
    T* dw = a.dweight.ptr<T>(env, D);
    T* db = a.dbias.ptr<T>(env, D);
    if (D == 0) return env.Undefined();
    unsigned nb = 0;
    float* ws = nullptr;
    if (rows > 0) {
      DW_ROW_DISPATCH(T, canVec<T>(D, {g, x, w, dx}), kBwdFloats, {
        const int nch = static_cast<int>(D / V);
        const RowPlan p = rowPlan(nch, NCH);
        const unsigned grid = bwdGrid(p, rows, D, 2);
        nb = normPartialSlices(grid * static_cast<unsigned>(p.groups), rows);
        ws = takeNormPartials(env, a.workspace, normPartialFloats(nb, D, 2));
        if (p.cached)
          layernormBwdK<T, V, NCH, true><<<grid, p.block(), 0, s>>>(g, x, w, mean, rstd, dx, static_cast<int64_t>(rows), nch, ws);
        else
          layernormBwdK<T, V, NCH, false><<<grid, p.block(), 0, s>>>(g, x, w, mean, rstd, dx, static_cast<int64_t>(rows), nch, ws);
      });
      checkLaunch(env, "layernorm_backward");
    }
    launchColReduce<T>(s, ws, nb, D, 2 * D, dw, db);
    checkLaunch(env, "layernorm_backward (column sums)");
  });
  return env.Undefined();
}

}  // namespace dw::nn

// topk and its backward (moe family; see moe.cpp).
//
//   topk(stream, dtype, rows, E, k, x, values, indices)          x: [rows, E] -> [rows, k] twice
//   topkBackward(stream, dtype, rows, k, size, g, indices, out)  g, indices: [rows, k] -> [rows, size]
//
// topk ranks by a total order (value descending, NaN first, then index ascending); topk_backward
// adds each output element's matches in ascending j. An index outside [0, size) is recorded in the
// family's error word.
#include "ops/moe/moe.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"
#include "common/rows_gather.h"

#include <string>

namespace dw::moe {
namespace {

// True when value a at index ia ranks before value b at index ib (topk.ts's before()).
__device__ __forceinline__ bool before(float a, int ia, float b, int ib) {
  const bool na = isnan(a), nb = isnan(b);
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

// One warp per row; k rounds, each taking the best element ranked strictly after the previous
// pick (the order is total, so this lists the row in rank order with no marking).
template <typename T>
__global__ void __launch_bounds__(256) topkK(const T* x, T* vals, int* inds, int64_t rows, int E, int k) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  for (int64_t row = blockIdx.x * wpb + (threadIdx.x >> 5); row < rows; row += static_cast<int64_t>(gridDim.x) * wpb) {
    const T* xr = x + row * E;
    float pv = 0.f;
    int pi = -1;
    for (int j = 0; j < k; j++) {
      float bv = 0.f;
      int bi = -1;
      for (int e = lane; e < E; e += 32) {
        const float v = toF(xr[e]);
        if (pi >= 0 && !before(pv, pi, v, e)) continue;
        if (bi < 0 || before(v, e, bv, bi)) {
          bv = v;
          bi = e;
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(kFull, bv, o);
        const int oi = __shfl_xor_sync(kFull, bi, o);
        if (oi >= 0 && (bi < 0 || before(ov, oi, bv, bi))) {
          bv = ov;
          bi = oi;
        }
      }
      // k <= E, so some element is left after the previous pick: bi >= 0, the same in every lane.
      if (lane == 0) {
        vals[row * k + j] = xr[bi];
        inds[row * k + j] = bi;
      }
      pv = bv;
      pi = bi;
    }
  }
}

// out[r, e] = sum of g[r, j] over j (ascending) with indices[r, j] = e; one thread per element.
template <typename T>
__global__ void topkBwdK(const T* g, const int* idx, T* out, int64_t rows, int k, int64_t size, ErrWord* err) {
  const int64_t total = rows * size;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / size, e = t - r * size;
    const int* ir = idx + r * k;
    const T* gr = g + r * k;
    float acc = 0.f;
    for (int j = 0; j < k; j++) {
      const int ix = ir[j];
      if (ix == e) {
        acc += toF(gr[j]);
      } else if (e == 0 && (ix < 0 || ix >= size)) {
        raiseErr(err, kOpTopkBackward, r * k + j, ix, size);
      }
    }
    out[t] = fromF<T>(acc);
  }
}

}  // namespace

Napi::Value Topk(const Napi::CallbackInfo& info) {
  const abi::TopkArgs a = abi::readTopk(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, E = a.E, k = a.k;
  if (E > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected a row length of at most 2147483647 for topk but received " + std::to_string(E));
  if (k < 1 || k > E) fail(env, "INVALID_ARGUMENT", "Expected k in [1, " + std::to_string(E) + "] for topk but received " + std::to_string(k));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, mulSize(env, rows, E, "topk x"));
    T* vals = a.values.ptr<T>(env, mulSize(env, rows, k, "topk values"));
    int* inds = a.indices.ptr<int>(env, mulSize(env, rows, k, "topk indices"));
    if (rows == 0) return env.Undefined();
    topkK<T><<<capBlocks((rows + 7) / 8), 256, 0, s>>>(x, vals, inds, static_cast<int64_t>(rows), static_cast<int>(E), static_cast<int>(k));
    checkLaunch(env, "topk");
  });
  return env.Undefined();
}

Napi::Value TopkBackward(const Napi::CallbackInfo& info) {
  const abi::TopkBackwardArgs a = abi::readTopkBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, k = a.k, size = a.size;
  if (k > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected k of at most 2147483647 for topk_backward but received " + std::to_string(k));
  if (size > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected a size of at most 2147483647 for topk_backward but received " + std::to_string(size));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const uint64_t nk = mulSize(env, rows, k, "topk_backward g");
    const T* g = a.g.ptr<T>(env, nk);
    const int* idx = a.indices.ptr<int>(env, nk);
    const uint64_t total = mulSize(env, rows, size, "topk_backward out");
    T* out = a.out.ptr<T>(env, total);
    ErrWord* err = opsErrorWord(env, kErrMoe);
    if (total > 0) {
      topkBwdK<T><<<capBlocks((total + 255) / 256), 256, 0, s>>>(g, idx, out, static_cast<int64_t>(rows), static_cast<int>(k), static_cast<int64_t>(size), err);
      checkLaunch(env, "topk_backward");
    } else if (nk > 0) {  // size 0: every index is out of range
      launchValidateIndices(s, idx, nk, size, false, err, kOpTopkBackward);
      checkLaunch(env, "topk_backward (index check)");
    }
  });
  return env.Undefined();
}

}  // namespace dw::moe

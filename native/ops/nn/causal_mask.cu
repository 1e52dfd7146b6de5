// causal_mask (nn family; see nn.cpp).
//
//   causalMask(stream, dtype, B, T, S, value, x, out)                  x: [B, T, S]
//
// out[b, i, j] = x[b, i, j] when j <= i + (S - T), else value; 16-byte packs when S and the
// pointers allow.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>

namespace dw::nn {
namespace {

// out[b, i, j] = x[b, i, j] when j <= i + (S - nq), else value. Chunks of V never straddle rows
// (V divides S).
template <typename T, int V>
__global__ void causalMaskK(const T* x, T* out, int64_t chunks, int64_t nchRow, int64_t nq, int64_t S, float value) {
  const T fill = fromF<T>(value);
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < chunks; c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = c / nchRow;
    const int64_t j0 = (c - row * nchRow) * V;
    const int64_t lim = row % nq + (S - nq);
    Pack<T, V> p = reinterpret_cast<const Pack<T, V>*>(x)[c];
#pragma unroll
    for (int k = 0; k < V; k++)
      if (j0 + k > lim) p.v[k] = fill;
    reinterpret_cast<Pack<T, V>*>(out)[c] = p;
  }
}

}  // namespace

Napi::Value CausalMask(const Napi::CallbackInfo& info) {
  const abi::CausalMaskArgs a = abi::readCausalMask(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int dt = a.dtype;
  const uint64_t B = a.B, nq = a.T, S = a.S;
  const float value = static_cast<float>(a.value);
  if (S < nq)
    fail(env, "INVALID_ARGUMENT", "Expected at least as many keys as queries (S >= T) for causal_mask but received T = " + std::to_string(nq) + ", S = " + std::to_string(S));
  const uint64_t total = mulSize(env, mulSize(env, B, nq, "causal_mask x"), S, "causal_mask x");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = a.x.ptr<T>(env, total);
    T* out = a.out.ptr<T>(env, total);
    if (total == 0) return env.Undefined();
    constexpr int VEC = 16 / sizeof(T);
    if (canVec<T>(S, {x, out}))
      causalMaskK<T, VEC><<<capBlocks((total / VEC + 255) / 256), 256, 0, s>>>(x, out, static_cast<int64_t>(total / VEC), static_cast<int64_t>(S / VEC),
                                                                            static_cast<int64_t>(nq), static_cast<int64_t>(S), value);
    else
      causalMaskK<T, 1><<<capBlocks((total + 255) / 256), 256, 0, s>>>(x, out, static_cast<int64_t>(total), static_cast<int64_t>(S), static_cast<int64_t>(nq),
                                                                      static_cast<int64_t>(S), value);
    checkLaunch(env, "causal_mask");
  });
  return env.Undefined();
}

}  // namespace dw::nn

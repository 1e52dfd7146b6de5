// moe_route, moe_route_backward and moe_aux_loss (moe family; see moe.cpp): a mixture-of-experts
// router's softmax, top-k, their gradient and the load-balancing loss, one kernel each (they were
// softmax, topk, topk_backward, softmax_backward, one_hot and four reductions).
//
//   moeRoute(stream, dtype, N, E, k, logits, probs, weights, chosen)
//       logits [N, E] (dtype) -> probs f32 [N, E] (softmax in FP32), weights f32 [N, k] and chosen
//       i32 [N, k] (the k largest probabilities, largest first; NaN first; ties to the lower index)
//   moeRouteBackward(stream, N, E, k, probs, chosen, gWeights, gProbs?, dlogits)
//       dlogits f32 [N, E] = p ⊙ (dp − Σ p·dp), dp = gProbs + gWeights at chosen
//   moeAuxLoss(stream, dtype, N, E, k, probs, chosen, loss, fractions, workspace)   probs [N, E] (dtype)
//       loss f32 [1] = E · Σ_e f_e · mean_n probs[n, e], fractions f32 [E] = f_e (the share of the
//       N·k choices that took expert e); the workspace holds E partial products and a counter
//
// One warp per token for the first two: lanes take experts e = lane, lane + 32, …; sums by the
// warp's xor butterfly, so a row's result depends on E only. moe_aux_loss: one block per expert
// (its column summed in a fixed order, its choices counted with integer atomics, whose result does
// not depend on their order); the last block to finish adds the E products in index order. So every
// result has the same bits on every run. An expert id outside [0, E) is recorded in the family's
// error word (opsErrorCheck names it) and counts nowhere.
#include "ops/moe/moe.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>

namespace dw::moe {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// The ranking of topk (topk.cu): value descending, NaN first, then index ascending.
__device__ __forceinline__ bool ranksBefore(float a, int ia, float b, int ib) {
  const bool na = isnan(a), nb = isnan(b);
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

// max that propagates NaN (as Math.max): commutative and associative, so the butterfly agrees.
__device__ __forceinline__ float maxNan(float a, float b) { return (b > a || isnan(b)) ? b : a; }

// One probability, computed the same way wherever it is needed (so a recomputed one has the same bits).
__device__ __forceinline__ float probOf(float l, float m, float z) { return expf(l - m) / z; }

template <typename T>
__global__ void __launch_bounds__(kThreads) routeK(const T* logits, float* probs, float* weights, int* chosen, int64_t N, int E, int k) {
  const int lane = threadIdx.x & 31;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); n < N; n += static_cast<int64_t>(gridDim.x) * kWarps) {
    const T* row = logits + n * E;
    float m = -INFINITY;
    for (int e = lane; e < E; e += 32) m = maxNan(m, toF(row[e]));
    for (int o = 16; o > 0; o >>= 1) m = maxNan(m, __shfl_xor_sync(kFull, m, o));
    float z = 0.f;
    for (int e = lane; e < E; e += 32) z += expf(toF(row[e]) - m);
    z = warpSum(z);
    for (int e = lane; e < E; e += 32) probs[n * E + e] = probOf(toF(row[e]), m, z);
    // k rounds, each the best probability ranked strictly after the previous pick.
    float pv = 0.f;
    int pi = -1;
    for (int j = 0; j < k; ++j) {
      float bv = 0.f;
      int bi = -1;
      for (int e = lane; e < E; e += 32) {
        const float v = probOf(toF(row[e]), m, z);
        if (pi >= 0 && !ranksBefore(pv, pi, v, e)) continue;
        if (bi < 0 || ranksBefore(v, e, bv, bi)) { bv = v; bi = e; }
      }
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(kFull, bv, o);
        const int oi = __shfl_xor_sync(kFull, bi, o);
        if (oi >= 0 && (bi < 0 || ranksBefore(ov, oi, bv, bi))) { bv = ov; bi = oi; }
      }
      if (lane == 0) {
        weights[n * k + j] = bv;
        chosen[n * k + j] = bi;
      }
      pv = bv;
      pi = bi;
    }
  }
}

__global__ void __launch_bounds__(kThreads) routeBackwardK(const float* probs, const int* chosen, const float* gW, const float* gP, float* dl, int64_t N, int E, int k, ErrWord* err) {
  const int lane = threadIdx.x & 31;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); n < N; n += static_cast<int64_t>(gridDim.x) * kWarps) {
    if (lane == 0)
      for (int j = 0; j < k; ++j) {
        const int e = chosen[n * k + j];
        if (e < 0 || e >= E) raiseErr(err, kOpMoeRouteBackward, n, e, E, j);
      }
    auto dpOf = [&](int e) {
      float d = gP ? gP[n * E + e] : 0.f;
      for (int j = 0; j < k; ++j)
        if (chosen[n * k + j] == e) d += gW[n * k + j];
      return d;
    };
    float s = 0.f;
    for (int e = lane; e < E; e += 32) s += probs[n * E + e] * dpOf(e);
    s = warpSum(s);
    for (int e = lane; e < E; e += 32) dl[n * E + e] = probs[n * E + e] * (dpOf(e) - s);
  }
}

// Block e: f_e and P_e; the last block to finish sums f_e · P_e over e in order.
template <typename T>
__global__ void __launch_bounds__(kThreads) auxLossK(const T* probs, const int* chosen, float* loss, float* fractions, float* partial, unsigned* done, int64_t N, int E, int k, ErrWord* err) {
  __shared__ float sh[32];
  __shared__ unsigned long long count;
  __shared__ bool last;
  const int e = blockIdx.x, tid = threadIdx.x;
  if (tid == 0) count = 0;
  __syncthreads();
  float s = 0.f;
  for (int64_t n = tid; n < N; n += kThreads) s += toF(probs[n * E + e]);
  s = blockSum(s, sh);
  unsigned long long mine = 0;
  for (int64_t c = tid; c < N * k; c += kThreads) {
    const int v = chosen[c];
    mine += v == e;
    if (e == 0 && (v < 0 || v >= E)) raiseErr(err, kOpMoeAuxLoss, c / k, v, E, c % k);
  }
  if (mine) atomicAdd(&count, mine);  // integers: the total does not depend on the order
  __syncthreads();
  if (tid == 0) {
    const float f = N == 0 ? 0.f : static_cast<float>(static_cast<double>(count) / (static_cast<double>(N) * k));
    fractions[e] = f;
    partial[e] = f * (N == 0 ? 0.f : s / static_cast<float>(N));
    __threadfence();
    last = atomicAdd(done, 1u) == static_cast<unsigned>(E - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  float t = 0.f;
  for (int i = tid; i < E; i += kThreads) t += __ldcg(partial + i);  // the other blocks' products, from L2
  t = blockSum(t, sh);
  if (tid == 0) loss[0] = static_cast<float>(E) * t;
}

unsigned gridFor(uint64_t rows) { return capBlocks((rows + kWarps - 1) / kWarps, uint64_t{1} << 16); }

// k <= E for the router and its gradient (k distinct experts); the loss takes any k >= 1.
void checkRouter(Napi::Env env, uint64_t N, uint64_t E, uint64_t k, const char* what, bool kAtMostE = true) {
  if (E < 1 || k < 1 || (kAtMostE && k > E) || (N != 0 && (N > static_cast<uint64_t>(kMaxSafeInt) / E || N > static_cast<uint64_t>(kMaxSafeInt) / k)))
    fail(env, "INVALID_ARGUMENT", std::string("Expected 1 <= k") + (kAtMostE ? " <= E" : "") + " and N·E, N·k below 2^53 for " + what + " but received N = " + std::to_string(N) + ", E = " + std::to_string(E) + ", k = " + std::to_string(k));
}

}  // namespace

// The workspace of moeAuxLoss: E partial products and the finishing counter (256-byte aligned).
uint64_t auxLossWorkspace(uint64_t E) { return (4 * E + 255) / 256 * 256 + 256; }

Napi::Value MoeRoute(const Napi::CallbackInfo& info) {
  const abi::MoeRouteArgs a = abi::readMoeRoute(info);
  Napi::Env env = info.Env();
  const uint64_t N = a.N, E = a.E, k = a.k;
  checkRouter(env, N, E, k, "moe_route");
  float* probs = a.probs.ptr<float>(env, N * E);
  float* weights = a.weights.ptr<float>(env, N * k);
  int* chosen = a.chosen.ptr<int>(env, N * k);
  if (N == 0) return env.Undefined();
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* logits = a.logits.ptr<T>(env, N * E);
    routeK<T><<<gridFor(N), kThreads, 0, a.stream>>>(logits, probs, weights, chosen, N, static_cast<int>(E), static_cast<int>(k));
  });
  checkLaunch(env, "moe_route");
  return env.Undefined();
}

Napi::Value MoeRouteBackward(const Napi::CallbackInfo& info) {
  const abi::MoeRouteBackwardArgs a = abi::readMoeRouteBackward(info);
  Napi::Env env = info.Env();
  const uint64_t N = a.N, E = a.E, k = a.k;
  checkRouter(env, N, E, k, "moe_route_backward");
  const float* probs = a.probs.ptr<float>(env, N * E);
  const int* chosen = a.chosen.ptr<int>(env, N * k);
  const float* gW = a.gWeights.ptr<float>(env, N * k);
  const float* gP = a.gProbs.optPtr<float>(env, N * E);
  float* dl = a.dlogits.ptr<float>(env, N * E);
  if (N == 0) return env.Undefined();
  routeBackwardK<<<gridFor(N), kThreads, 0, a.stream>>>(probs, chosen, gW, gP, dl, N, static_cast<int>(E), static_cast<int>(k), opsErrorWord(env, kErrMoe));
  checkLaunch(env, "moe_route_backward");
  return env.Undefined();
}

Napi::Value MoeAuxLossWorkspace(const Napi::CallbackInfo& info) {
  const abi::MoeAuxLossWorkspaceArgs a = abi::readMoeAuxLossWorkspace(info);
  return Napi::Number::New(info.Env(), static_cast<double>(auxLossWorkspace(a.E)));
}

Napi::Value MoeAuxLoss(const Napi::CallbackInfo& info) {
  const abi::MoeAuxLossArgs a = abi::readMoeAuxLoss(info);
  Napi::Env env = info.Env();
  const uint64_t N = a.N, E = a.E, k = a.k;
  checkRouter(env, N, E, k, "moe_aux_loss", false);
  const int* chosen = a.chosen.ptr<int>(env, N * k);
  float* loss = a.loss.ptr<float>(env, 1);
  float* fractions = a.fractions.ptr<float>(env, E);
  uint8_t* ws = a.workspace.take<uint8_t>(env, auxLossWorkspace(E), 256);
  float* partial = reinterpret_cast<float*>(ws);
  unsigned* done = reinterpret_cast<unsigned*>(ws + (4 * E + 255) / 256 * 256);
  // The counter starts at 0 on every call (a memset node when captured in a graph).
  DW_CUDA(env, cudaMemsetAsync(done, 0, sizeof(unsigned), a.stream), "cudaMemsetAsync (moe_aux_loss)");
  ErrWord* err = opsErrorWord(env, kErrMoe);
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* probs = a.probs.ptr<T>(env, N * E);
    auxLossK<T><<<static_cast<unsigned>(E), kThreads, 0, a.stream>>>(probs, chosen, loss, fractions, partial, done, N, static_cast<int>(E), static_cast<int>(k), err);
  });
  checkLaunch(env, "moe_aux_loss");
  return env.Undefined();
}

}  // namespace dw::moe

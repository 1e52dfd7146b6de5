// moe_permute, moe_unpermute and moe_weight_grad (moe family; see moe.cpp): dropless MoE's data
// movement between token order and the expert-sorted rows of moe_sort (order, slot).
//
//   moePermute(stream, dtype, wDtype, N, k, D, x, order, slot, weights?, xs)
//       xs[p] = x[n] (· weights[n, j]) for row p, n = order[p], slot[n, j] = p      x [N, D], xs [N·k, D]
//   moeUnpermute(stream, dtype, wDtype, N, k, D, ys, order, slot, weights?, y)
//       y[n] = Σ_j (weights[n, j] ·) ys[slot[n, j]], j = 0, 1, … in order             ys [N·k, D], y [N, D]
//   moeWeightGrad(stream, dtype, N, k, D, a, b, order, slot, dw)
//       dw[n, j] = a[n] · b[slot[n, j]] (f32)                                        a [N, D], b [N·k, D]
// weights (optional: passed as (0, 0)) have their own float dtype wDtype.
//
// Why these and not gather_rows / scatter_add_rows: the pair is each other's gradient, so every
// output row has exactly one reader-writer and no direction needs a scatter-add (which scans all of
// its indices in every block) or a float atomic. Each is a gather: one warp per output row, 16-byte
// loads and stores where the rows allow, so they run at copy bandwidth (bench/moe_permute.mjs).
//
// Checks: permute finds, for each row p, the choice j of token order[p] whose slot is p; unpermute
// and weight_grad check each token's slots (in [0, N·k), order[slot[n, j]] = n, none repeated). For
// order and slot not from one moe_sort, the first failure is recorded in the family's error word
// (opsErrorCheck names it) and the row is written as zeros (permute) or the choice left out (0).
// Determinism: fixed orders only (choices in j order; dot products by a warp's xor butterfly).
#include "ops/moe/moe.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <cstdlib>
#include <string>

namespace dw::moe {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// unpermute and weight_grad take a lane's chunks U at a time, loads first: more loads in flight per
// warp, fewer warps resident (more registers). The sums keep their order (chunk by chunk, then
// element by element): the same bits for every U. U = 2 unless DW_MOE_UNROLL (1, 2 or 4) says
// otherwise, a tuning knob read once. On the H100 (2026-12-05, bench/membound.mjs, fraction of a
// device copy; top-2 of 8 at width 1024 / top-8 of 64 at 2048): U = 1: unpermute 0.81 / 0.89,
// weight_grad 0.80 / 0.64; U = 2: 0.82 / 0.92, 0.79 / 0.87; U = 4: 0.69 / 0.79, 0.65 / 0.73.
int moeUnroll() {
  static const int u = [] {
    const char* e = std::getenv("DW_MOE_UNROLL");
    const int v = e != nullptr ? std::atoi(e) : 2;
    return v == 1 || v == 4 ? v : 2;
  }();
  return u;
}

// What a bad routing entry records (ErrWord.aux): the kind of failure, for the message.
enum RouteFail : int { kOrderRange = 0, kNotNamed = 1, kSlotRange = 2, kSlotRepeat = 3, kOrderMismatch = 4 };

// Why choice j of token n is unsound (its slot out of range, its row's order entry not n, or a
// repeat of an earlier slot of n), or -1 when it is sound.
__device__ __forceinline__ int whyBad(const int* order, const int* slot, int64_t n, int j, int k, int64_t rows) {
  const int p = slot[n * k + j];
  if (p < 0 || p >= rows) return kSlotRange;
  if (order[p] != n) return kOrderMismatch;
  for (int i = 0; i < j; ++i)
    if (slot[n * k + i] == p) return kSlotRepeat;
  return -1;
}

// Token n's first unsound choice (lane 0 records it in the error word for op), or -1. Choices
// before it are sound; it and those after it are checked one by one where they are read.
__device__ __forceinline__ int firstBad(const int* order, const int* slot, int64_t n, int k, int64_t rows, int op, ErrWord* err) {
  for (int j = 0; j < k; ++j) {
    const int why = whyBad(order, slot, n, j, k, rows);
    if (why < 0) continue;
    if ((threadIdx.x & 31) == 0) raiseErr(err, op, n, slot[n * k + j], rows, static_cast<long long>(j) * 8 + why);
    return j;
  }
  return -1;
}

template <typename T, typename W, int V>
__global__ void __launch_bounds__(kThreads) permuteK(const T* x, const int* order, const int* slot, const W* w, T* xs, int64_t N, int k, int64_t nch, ErrWord* err) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = N * k, D = nch * V;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); p < rows; p += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int n = order[p];
    int j = -1;
    if (n >= 0 && n < N)
      for (int c = 0; c < k; ++c)
        if (slot[static_cast<int64_t>(n) * k + c] == p) { j = c; break; }
    Pack<T, V>* o = reinterpret_cast<Pack<T, V>*>(xs + p * D);
    if (j < 0) {
      if (lane == 0) raiseErr(err, kOpMoePermute, p, n, N, n >= 0 && n < N ? kNotNamed : kOrderRange);
      Pack<T, V> z;
#pragma unroll
      for (int v = 0; v < V; v++) z.v[v] = fromF<T>(0.f);
      for (int64_t c = lane; c < nch; c += 32) o[c] = z;
      continue;
    }
    const Pack<T, V>* s = reinterpret_cast<const Pack<T, V>*>(x + static_cast<int64_t>(n) * D);
    if (w == nullptr) {
      for (int64_t c = lane; c < nch; c += 32) o[c] = s[c];
    } else {
      const float a = toF(w[static_cast<int64_t>(n) * k + j]);
      for (int64_t c = lane; c < nch; c += 32) {
        float f[V];
        loadF<T, V>(reinterpret_cast<const T*>(s + c), f);
#pragma unroll
        for (int v = 0; v < V; v++) f[v] *= a;
        storeF<T, V>(reinterpret_cast<T*>(o + c), f);
      }
    }
  }
}

template <typename T, typename W, int V, int kUnroll>
__global__ void __launch_bounds__(kThreads) unpermuteK(const T* ys, const int* order, const int* slot, const W* w, T* y, int64_t N, int k, int64_t nch, ErrWord* err) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = N * k, D = nch * V;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); n < N; n += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int bad = firstBad(order, slot, n, k, rows, kOpMoeUnpermute, err);  // a bad choice reads and adds nothing
    // kUnroll of the lane's chunks at a time (c0, c0 + 32, …): their loads in flight together.
    for (int64_t c0 = lane; c0 < nch; c0 += 32 * kUnroll) {
      float acc[kUnroll][V];
#pragma unroll
      for (int u = 0; u < kUnroll; u++)
#pragma unroll
        for (int v = 0; v < V; v++) acc[u][v] = 0.f;
      for (int j = 0; j < k; ++j) {
        if (bad >= 0 && j >= bad && whyBad(order, slot, n, j, k, rows) >= 0) continue;
        const int64_t p = slot[n * k + j];
        const float a = w == nullptr ? 1.f : toF(w[n * k + j]);
        float f[kUnroll][V];
#pragma unroll
        for (int u = 0; u < kUnroll; u++)
          if (c0 + 32 * u < nch) loadF<T, V>(ys + p * D + (c0 + 32 * u) * V, f[u]);
#pragma unroll
        for (int u = 0; u < kUnroll; u++)
#pragma unroll
          for (int v = 0; v < V; v++) acc[u][v] += a * f[u][v];
      }
#pragma unroll
      for (int u = 0; u < kUnroll; u++)
        if (c0 + 32 * u < nch) storeF<T, V>(y + n * D + (c0 + 32 * u) * V, acc[u]);
    }
  }
}

template <typename T, int V, int kUnroll>
__global__ void __launch_bounds__(kThreads) weightGradK(const T* a, const T* b, const int* order, const int* slot, float* dw, int64_t N, int k, int64_t nch, ErrWord* err) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = N * k, D = nch * V;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); n < N; n += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int bad = firstBad(order, slot, n, k, rows, kOpMoeWeightGrad, err);
    for (int j = 0; j < k; ++j) {
      const int p = slot[n * k + j];
      const bool ok = bad < 0 || j < bad || whyBad(order, slot, n, j, k, rows) < 0;
      float s = 0.f;
      if (ok)
        for (int64_t c0 = lane; c0 < nch; c0 += 32 * kUnroll) {  // as unpermuteK: kUnroll chunks' loads in flight
          float fa[kUnroll][V], fb[kUnroll][V];
#pragma unroll
          for (int u = 0; u < kUnroll; u++)
            if (c0 + 32 * u < nch) {
              loadF<T, V>(a + n * D + (c0 + 32 * u) * V, fa[u]);
              loadF<T, V>(b + static_cast<int64_t>(p) * D + (c0 + 32 * u) * V, fb[u]);
            }
#pragma unroll
          for (int u = 0; u < kUnroll; u++)
            if (c0 + 32 * u < nch)
#pragma unroll
              for (int v = 0; v < V; v++) s += fa[u][v] * fb[u][v];
        }
      s = warpSum(s);
      if (lane == 0) dw[n * k + j] = s;
    }
  }
}

// Rows of N·k and k checked once for every entry point: p and n are int on the device.
void checkRouting(Napi::Env env, uint64_t N, uint64_t k, const char* what) {
  if (k == 0 || (N != 0 && k > 2147483647u / N))
    fail(env, "INVALID_ARGUMENT", std::string("Expected k >= 1 and N·k <= 2147483647 for ") + what + " but received N = " + std::to_string(N) + ", k = " + std::to_string(k));
}

unsigned gridFor(uint64_t rows) { return capBlocks((rows + kWarps - 1) / kWarps, uint64_t{1} << 16); }

}  // namespace

namespace {

// What moePermute and moeUnpermute share: their arguments in one order (in: x or ys, out: xs or y).
struct MoveArgs {
  cudaStream_t stream;
  int dtype, wDtype;
  uint64_t N, k, D;
  const abi::TensorArg *in, *order, *slot, *weights, *out;
};

// Checks the sizes and pointers, then launches the permute (unpermute false: one warp per sorted
// row) or the unpermute (one warp per token), 16-byte packs where the rows allow.
void moveRows(Napi::Env env, const MoveArgs& a, bool unpermute, const char* what) {
  const uint64_t N = a.N, k = a.k, D = a.D;
  checkRouting(env, N, k, what);
  checkRowLength(env, D, what);
  const uint64_t rows = N * k;
  const int* order = a.order->ptr<int>(env, rows);
  const int* slot = a.slot->ptr<int>(env, rows);
  ErrWord* err = opsErrorWord(env, kErrMoe);
  if (rows == 0 || D == 0) return;
  const std::string name(what);
  const uint64_t inRows = unpermute ? rows : N, outRows = unpermute ? N : rows;
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* in = a.in->ptr<T>(env, mulSize(env, inRows, D, (name + " input").c_str()));
    T* out = a.out->ptr<T>(env, mulSize(env, outRows, D, (name + " output").c_str()));
    DW_DISPATCH_FLOAT(env, a.wDtype, W, {
      const W* w = a.weights->optPtr<W>(env, rows);
      constexpr int V = 16 / sizeof(T);
      const bool vec = canVec<T>(D, {in, out});
      const unsigned grid = gridFor(outRows);
      const int u = moeUnroll();
      if (unpermute && vec && u == 4) unpermuteK<T, W, V, 4><<<grid, kThreads, 0, a.stream>>>(in, order, slot, w, out, N, k, D / V, err);
      else if (unpermute && vec && u == 2) unpermuteK<T, W, V, 2><<<grid, kThreads, 0, a.stream>>>(in, order, slot, w, out, N, k, D / V, err);
      else if (unpermute && vec) unpermuteK<T, W, V, 1><<<grid, kThreads, 0, a.stream>>>(in, order, slot, w, out, N, k, D / V, err);
      else if (unpermute) unpermuteK<T, W, 1, 1><<<grid, kThreads, 0, a.stream>>>(in, order, slot, w, out, N, k, D, err);
      else if (vec) permuteK<T, W, V><<<grid, kThreads, 0, a.stream>>>(in, order, slot, w, out, N, k, D / V, err);
      else permuteK<T, W, 1><<<grid, kThreads, 0, a.stream>>>(in, order, slot, w, out, N, k, D, err);
    });
  });
  checkLaunch(env, what);
}

}  // namespace

Napi::Value MoePermute(const Napi::CallbackInfo& info) {
  const abi::MoePermuteArgs a = abi::readMoePermute(info);
  moveRows(info.Env(), {a.stream, a.dtype, a.wDtype, a.N, a.k, a.D, &a.x, &a.order, &a.slot, &a.weights, &a.xs}, false, "moe_permute");
  return info.Env().Undefined();
}

Napi::Value MoeUnpermute(const Napi::CallbackInfo& info) {
  const abi::MoeUnpermuteArgs a = abi::readMoeUnpermute(info);
  moveRows(info.Env(), {a.stream, a.dtype, a.wDtype, a.N, a.k, a.D, &a.ys, &a.order, &a.slot, &a.weights, &a.y}, true, "moe_unpermute");
  return info.Env().Undefined();
}

Napi::Value MoeWeightGrad(const Napi::CallbackInfo& info) {
  const abi::MoeWeightGradArgs a = abi::readMoeWeightGrad(info);
  Napi::Env env = info.Env();
  const uint64_t N = a.N, k = a.k, D = a.D;
  checkRouting(env, N, k, "moe_weight_grad");
  checkRowLength(env, D, "moe_weight_grad");
  const uint64_t rows = N * k;
  const int* order = a.order.ptr<int>(env, rows);
  const int* slot = a.slot.ptr<int>(env, rows);
  float* dw = a.dw.ptr<float>(env, rows);
  ErrWord* err = opsErrorWord(env, kErrMoe);
  if (N == 0) return env.Undefined();
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* pa = a.a.ptr<T>(env, mulSize(env, N, D, "moe_weight_grad a"));
    const T* pb = a.b.ptr<T>(env, mulSize(env, rows, D, "moe_weight_grad b"));
    constexpr int V = 16 / sizeof(T);
    const int u = moeUnroll();
    if (canVec<T>(D, {pa, pb}) && u == 4) weightGradK<T, V, 4><<<gridFor(N), kThreads, 0, a.stream>>>(pa, pb, order, slot, dw, N, k, D / V, err);
    else if (canVec<T>(D, {pa, pb}) && u == 2) weightGradK<T, V, 2><<<gridFor(N), kThreads, 0, a.stream>>>(pa, pb, order, slot, dw, N, k, D / V, err);
    else if (canVec<T>(D, {pa, pb})) weightGradK<T, V, 1><<<gridFor(N), kThreads, 0, a.stream>>>(pa, pb, order, slot, dw, N, k, D / V, err);
    else weightGradK<T, 1, 1><<<gridFor(N), kThreads, 0, a.stream>>>(pa, pb, order, slot, dw, N, k, D, err);
  });
  checkLaunch(env, "moe_weight_grad");
  return env.Undefined();
}

}  // namespace dw::moe

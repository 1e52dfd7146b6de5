// cross_entropy and its backward (nn family; see nn.cpp).
//
//   crossEntropy(stream, dtype, N, V, ignoreIndex, logits, targets, loss)      targets: i32[N]
//   crossEntropyBackward(stream, dtype, gDtype, N, V, ignoreIndex, logits, targets, g, dlogits)
//       g: one element of storage gDtype.
//
// Rows use the online max / sum of online_softmax.cuh. The mean loss sums fixed per-block partials
// (g_ceSum / g_ceCount) in a fixed order in a second small kernel, in FP64. A target outside
// [0, V) that is not the ignore index skips its row and is recorded in the family's error word.
//
// Scratch: g_ceSum, g_ceCount and g_ceScale are fixed __device__ buffers, one per device; these
// kernels must not run concurrently on two streams of one device.
#include "ops/nn/nn.h"

#include "common/args.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"
#include "ops/nn/online_softmax.cuh"

namespace dw::nn {
namespace {

constexpr int kMaxParts = 4096;  // per-block partial sums of cross_entropy
__device__ double g_ceSum[kMaxParts];
__device__ long long g_ceCount[kMaxParts];
__device__ float g_ceScale;

// One pass over each counted row: online max / sum, then loss = logsumexp - logit[target] (FP64
// from there), summed per block into g_ceSum / g_ceCount[blockIdx.x]. One row per block.
template <typename T, int V>
__global__ void __launch_bounds__(256) ceFwdK(const T* logits, const int* targets, int64_t N, int nch, int ignore, ErrWord* err) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  double acc = 0.0;
  long long cnt = 0;
  for (int64_t row = firstRow(); row < N; row += rowStride()) {
    const int t = targets[row];
    if (t == ignore) continue;
    if (t < 0 || t >= D) {
      if (threadIdx.x == 0) raiseErr(err, kOpCrossEntropy, row, t, D, ignore);
      continue;
    }
    const T* lr = logits + row * D;
    float M = -INFINITY, s = 0.f;
#pragma unroll 4
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float v[V];
      loadF<T, V>(lr + static_cast<int64_t>(j) * V, v);
      msChunk<V>(M, s, v);
    }
    blockMaxSum(M, s, sh);
    if (threadIdx.x == 0) {
      acc += static_cast<double>(M) + log(static_cast<double>(s)) - static_cast<double>(toF(lr[t]));
      cnt++;
    }
  }
  if (threadIdx.x == 0) {
    g_ceSum[blockIdx.x] = acc;
    g_ceCount[blockIdx.x] = cnt;
  }
}

// loss[0] = sum of the nb partial sums / their counts (0 when nothing counted), in a fixed order.
// The loss is f32 whatever the logits' storage (the op's rule).
__global__ void __launch_bounds__(256) ceFinalK(int nb, float* loss) {
  __shared__ double shs[8];
  __shared__ long long shc[8];
  double s = 0.0;
  long long c = 0;
  for (int b = threadIdx.x; b < nb; b += blockDim.x) {
    s += g_ceSum[b];
    c += g_ceCount[b];
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    s += __shfl_xor_sync(kFull, s, o);
    c += __shfl_xor_sync(kFull, c, o);
  }
  if ((threadIdx.x & 31) == 0) {
    shs[threadIdx.x >> 5] = s;
    shc[threadIdx.x >> 5] = c;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double ts = 0.0;
    long long tc = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); i++) {
      ts += shs[i];
      tc += shc[i];
    }
    loss[0] = tc == 0 ? 0.f : static_cast<float>(ts / static_cast<double>(tc));
  }
}

// g_ceScale = g[0] / (rows whose target is a class, not the ignore index), 0 when there are none.
__global__ void __launch_bounds__(1024) ceScaleK(const int* targets, int64_t N, int64_t D, int ignore, const void* g, int gCode) {
  __shared__ long long sh[32];
  long long c = 0;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    const int t = targets[r];
    if (t != ignore && t >= 0 && t < D) c++;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(kFull, c, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long tc = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); i++) tc += sh[i];
    const float gv = loadScalar(g, gCode);
    g_ceScale = tc == 0 ? 0.f : static_cast<float>(static_cast<double>(gv) / static_cast<double>(tc));
  }
}

// dlogits = (softmax(row) - onehot(target)) * g_ceScale; ignored rows are zero; a bad target skips
// its row (and is recorded).
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    ceBwdK(const T* logits, const int* targets, T* dlogits, int64_t N, int nch, int ignore, ErrWord* err) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t row = firstRow(); row < N; row += rowStride()) {
    const int t = targets[row];
    T* dr = dlogits + row * D;
    if (t == ignore) {
      const float z[V] = {};
      for (int j = threadIdx.x; j < nch; j += blockDim.x) storeF<T, V>(dr + static_cast<int64_t>(j) * V, z);
      continue;
    }
    if (t < 0 || t >= D) {
      if (threadIdx.x == 0) raiseErr(err, kOpCrossEntropyBackward, row, t, D, ignore);
      continue;
    }
    const T* lr = logits + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(lr, nch);
    float M = -INFINITY, s = 0.f;
    rx.each(lr, nch, [&](int, int, const float(&v)[V]) { msChunk<V>(M, s, v); });
    blockMaxSum(M, s, sh);
    const float inv = 1.f / s;
    const float scale = g_ceScale;
    rx.each(lr, nch, [&](int, int j, const float(&v)[V]) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float p = msExp(v[k], M) * inv;
        o[k] = (static_cast<int64_t>(j) * V + k == t ? p - 1.f : p) * scale;
      }
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
}

}  // namespace

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t N = u64Arg(info, 2, "cross_entropy rows"), C = u64Arg(info, 3, "cross_entropy classes");
  const int ignore = static_cast<int>(signedArg(info, 4, "cross_entropy ignoreIndex"));
  checkRowLength(env, C, "cross_entropy");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy but received 0");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* logits = devArg<T>(info, 5, mulSize(env, N, C, "cross_entropy logits"), sizeof(T), "cross_entropy logits");
    const int* targets = devArg<int>(info, 7, N, 4, "cross_entropy targets");
    float* loss = devArg<float>(info, 9, 1, 4, "cross_entropy loss");
    unsigned nb = 0;
    if (N > 0) {
      nb = capBlocks(N, kMaxParts);
      ErrWord* err = opsErrorWord(env, kErrNn);
      constexpr int VEC = 16 / sizeof(T);
      const bool vec = canVec<T>(C, {logits});
      const int nch = static_cast<int>(vec ? C / VEC : C);
      // Up to 256 threads per row (16+ chunks each): several rows in flight per SM hide each row's
      // reduction and latency (one 1024-thread block per SM ran at half the bandwidth on an H200).
      int threads = static_cast<int>(((nch + 15) / 16 + 31) / 32 * 32);
      threads = threads < 32 ? 32 : threads > 256 ? 256 : threads;
      if (vec)
        ceFwdK<T, VEC><<<nb, threads, 0, s>>>(logits, targets, static_cast<int64_t>(N), nch, ignore, err);
      else
        ceFwdK<T, 1><<<nb, threads, 0, s>>>(logits, targets, static_cast<int64_t>(N), nch, ignore, err);
      checkLaunch(env, "cross_entropy");
    }
    ceFinalK<<<1, 256, 0, s>>>(static_cast<int>(nb), loss);
    checkLaunch(env, "cross_entropy (mean)");
  });
  return env.Undefined();
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const int gdt = dtypeArg(info, 2);
  if (gdt == kI32) fail(env, "INVALID_DTYPE", "Expected a float dtype code (0 f32, 1 bf16, 2 f16) for cross_entropy_backward g but received 3 (i32)");
  const uint64_t N = u64Arg(info, 3, "cross_entropy_backward rows"), C = u64Arg(info, 4, "cross_entropy_backward classes");
  const int ignore = static_cast<int>(signedArg(info, 5, "cross_entropy_backward ignoreIndex"));
  checkRowLength(env, C, "cross_entropy_backward");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy_backward but received 0");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const uint64_t total = mulSize(env, N, C, "cross_entropy_backward logits");
    const T* logits = devArg<T>(info, 6, total, sizeof(T), "cross_entropy_backward logits");
    const int* targets = devArg<int>(info, 8, N, 4, "cross_entropy_backward targets");
    const void* g = devArg<uint8_t>(info, 10, 1, dtypeBytes(gdt), "cross_entropy_backward g");
    T* dl = devArg<T>(info, 12, total, sizeof(T), "cross_entropy_backward dlogits");
    if (N == 0) return env.Undefined();
    ErrWord* err = opsErrorWord(env, kErrNn);
    ceScaleK<<<1, 1024, 0, s>>>(targets, static_cast<int64_t>(N), static_cast<int64_t>(C), ignore, g, gdt);
    checkLaunch(env, "cross_entropy_backward (scale)");
    DW_ROW_DISPATCH(T, canVec<T>(C, {logits, dl}), DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(C / V);
      const RowPlan p = rowPlan(nch, NCH);
      if (p.cached)
        ceBwdK<T, V, NCH, true><<<p.grid(N), p.block(), 0, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err);
      else
        ceBwdK<T, V, NCH, false><<<p.grid(N), p.block(), 0, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err);
    });
    checkLaunch(env, "cross_entropy_backward");
  });
  return env.Undefined();
}

}  // namespace dw::nn

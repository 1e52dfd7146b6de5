// cross_entropy, its backward, and both in one read of the logits (nn family; see nn.cpp).
//
//   crossEntropy(stream, dtype, N, V, ignoreIndex, logits, targets, loss, workspace)   targets: i32[N]
//       workspace: the per-block partial sums (f64) then counts (i64), 16 bytes per block
//       (min(N, 4096) blocks; the TS candidate declares 16 * max(1, min(4096, N)) bytes).
//   crossEntropyBackward(stream, dtype, gDtype, N, V, ignoreIndex, logits, targets, g, dlogits, workspace)
//       g: one element of storage gDtype; workspace: the f32 scale, 4 bytes.
//   crossEntropyWithGrad(stream, dtype, gDtype, N, V, ignoreIndex, logits, targets, g, loss, dlogits, workspace)
//       the loss and dlogits of the two above from one read of each row (llm.c's fused classifier;
//       the fuse-cross-entropy pass makes the op where the loss's gradient does not depend on the
//       loss); workspace: the partials, then the f32 scale (16 * min(N, 4096) + 4 bytes).
//   dlogits may be the logits' own storage (the planner writes it in place where the logits die);
//   any other overlap with an input, the loss or the workspace is an INVALID_ARGUMENT.
//
// Rows use the online max / sum of online_softmax.cuh. The gradient kernels read a row from DRAM
// once where it fits in registers or (up to 112 KiB, as GPT-2's 50304 bf16 classes) in shared
// memory, else twice (the second from L2 where it is still there). The mean loss sums fixed
// per-block partials in a fixed order in a second small kernel, in FP64, so it is deterministic. A
// target outside [0, V) that is not the ignore index skips its row and is recorded in the family's
// error word.
//
// Scratch: the partials and the scale live in the call's workspace, so these kernels are safe on
// several streams at once.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"
#include "common/smem_limit.h"
#include "ops/nn/online_softmax.cuh"

namespace dw::nn {
namespace {

constexpr int kMaxParts = 4096;  // per-block partial sums of cross_entropy

// One pass over each counted row: online max / sum, then loss = logsumexp - logit[target] (FP64
// from there), summed per block into partSum / partCount[blockIdx.x]. One row per block.
template <typename T, int V>
__global__ void __launch_bounds__(256)
    ceFwdK(const T* logits, const int* targets, int64_t N, int nch, int ignore, ErrWord* err, double* partSum, long long* partCount) {
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
    partSum[blockIdx.x] = acc;
    partCount[blockIdx.x] = cnt;
  }
}

// loss[0] = sum of the nb partial sums / their counts (0 when nothing counted), in a fixed order.
// The loss is f32 whatever the logits' storage (the op's rule).
__global__ void __launch_bounds__(256) ceFinalK(const double* partSum, const long long* partCount, int nb, float* loss) {
  __shared__ double shs[8];
  __shared__ long long shc[8];
  double s = 0.0;
  long long c = 0;
  for (int b = threadIdx.x; b < nb; b += blockDim.x) {
    s += partSum[b];
    c += partCount[b];
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

// scale[0] = g[0] / (rows whose target is a class, not the ignore index), 0 when there are none.
__global__ void __launch_bounds__(1024) ceScaleK(const int* targets, int64_t N, int64_t D, int ignore, const void* g, int gCode, float* scale) {
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
    scale[0] = tc == 0 ? 0.f : static_cast<float>(static_cast<double>(gv) / static_cast<double>(tc));
  }
}

// The loss side of cross_entropy_with_grad: each row group's thread 0 adds its rows' losses
// (FP64) and counts; the block's groups are then added in group order into partSum / partCount
// [blockIdx.x], for ceFinalK. Every thread of the block calls it (it has a barrier).
__device__ __forceinline__ void ceBlockPartial(double acc, long long cnt, double* partSum, long long* partCount) {
  __shared__ double shs[32];
  __shared__ long long shc[32];
  if (threadIdx.x == 0) {
    shs[threadIdx.y] = acc;
    shc[threadIdx.y] = cnt;
  }
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0) {
    double ts = 0.0;
    long long tc = 0;
    for (int i = 0; i < static_cast<int>(blockDim.y); i++) {
      ts += shs[i];
      tc += shc[i];
    }
    partSum[blockIdx.x] = ts;
    partCount[blockIdx.x] = tc;
  }
}

// x[t] of a chunk's values when chunk j holds element t, else 0 (summed over the row group, which
// gives the target's logit exactly: every other term is 0).
template <int V>
__device__ __forceinline__ float targetOf(int j, int t, const float (&v)[V]) {
  float x = 0.f;
#pragma unroll
  for (int k = 0; k < V; k++)
    if (static_cast<int64_t>(j) * V + k == t) x = v[k];
  return x;
}

// dlogits = (softmax(row) - onehot(target)) * scale[0] (ceScaleK's); ignored rows are zero; a bad
// target skips its row (and is recorded). LOSS (cross_entropy_with_grad): the row's loss,
// logsumexp - logit[target], from the same read of the row (the target's logit taken from the
// first pass's values, so it is read before anything is written in place), summed per block into
// partSum / partCount [blockIdx.x].
template <typename T, int V, int NCH, bool CACHED, bool LOSS>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    ceBwdK(const T* logits, const int* targets, T* dlogits, int64_t N, int nch, int ignore, ErrWord* err, const float* scaleP, double* partSum, long long* partCount) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  double acc = 0.0;
  long long cnt = 0;
  for (int64_t row = firstRow(); row < N; row += rowStride()) {
    const int t = targets[row];
    T* dr = dlogits + row * D;
    if (t == ignore) {
      const float z[V] = {};
      for (int j = threadIdx.x; j < nch; j += blockDim.x) storeF<T, V>(dr + static_cast<int64_t>(j) * V, z);
      continue;
    }
    if (t < 0 || t >= D) {
      if (threadIdx.x == 0) raiseErr(err, LOSS ? kOpCrossEntropyWithGrad : kOpCrossEntropyBackward, row, t, D, ignore);
      continue;
    }
    const T* lr = logits + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(lr, nch);
    float M = -INFINITY, s = 0.f, xt = 0.f;
    rx.each(lr, nch, [&](int, int j, const float(&v)[V]) {
      msChunk<V>(M, s, v);
      if constexpr (LOSS) xt += targetOf<V>(j, t, v);
    });
    blockMaxSum(M, s, sh);
    if constexpr (LOSS) {
      xt = blockSum(xt, reinterpret_cast<float*>(sh));
      if (threadIdx.x == 0) {
        acc += static_cast<double>(M) + log(static_cast<double>(s)) - static_cast<double>(xt);
        cnt++;
      }
    }
    const float inv = 1.f / s;
    const float scale = scaleP[0];
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
  if constexpr (LOSS) ceBlockPartial(acc, cnt, partSum, partCount);
}

// The same for rows too long to keep in registers but short enough for shared memory (up to
// kCeSmemRow bytes: GPT-2's 50304 bf16 classes are 98 KiB): one DRAM read of each row instead of
// two. The first pass copies every chunk once into shared memory (cp.async: the whole row in flight
// at once) and folds it into the online max / sum from there; the second reads it back and writes
// dlogits. Thread t owns chunks t,
// t + blockDim.x, ... in both passes (and in the next row's), so a chunk's shared slot is only ever
// touched by one thread; blockMaxSum's barriers order the passes. In place (dlogits == logits) every
// global element is read in the first pass, before the barrier, and written in the second.
// 512 threads and at most 112 KiB a block: two rows in flight per SM. LOSS as ceBwdK.
constexpr int kCeSmemThreads = 512;
constexpr int kCeSmemRow = 112 * 1024;

template <typename T, int V, bool LOSS>
__global__ void __launch_bounds__(kCeSmemThreads, 2)
    ceBwdSmemK(const T* logits, const int* targets, T* dlogits, int64_t N, int nch, int ignore, ErrWord* err, const float* scaleP, double* partSum,
               long long* partCount) {
  extern __shared__ __align__(16) unsigned char ceRow[];
  Pack<T, V>* row = reinterpret_cast<Pack<T, V>*>(ceRow);
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  double acc = 0.0;
  long long cnt = 0;
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int t = targets[r];
    T* dr = dlogits + r * D;
    if (t == ignore) {
      const float z[V] = {};
      for (int j = threadIdx.x; j < nch; j += blockDim.x) storeF<T, V>(dr + static_cast<int64_t>(j) * V, z);
      continue;
    }
    if (t < 0 || t >= D) {
      if (threadIdx.x == 0) raiseErr(err, LOSS ? kOpCrossEntropyWithGrad : kOpCrossEntropyBackward, r, t, D, ignore);
      continue;
    }
    const Pack<T, V>* lr = reinterpret_cast<const Pack<T, V>*>(logits + r * D);
    float M = -INFINITY, s = 0.f, xt = 0.f;
    // The thread's chunks go straight to shared memory by async copies (cp.async, 16 bytes each),
    // all of them in flight at once with no registers held (a load-use loop kept one or two loads
    // in flight a thread: 0.65-0.69 of a copy's bandwidth on an H200); then folded from there in the
    // same order. Each thread reads back only the chunks it copied, after its own wait.
    if constexpr (sizeof(Pack<T, V>) == 16) {  // always, where it is launched (16-byte chunks)
      for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(row + j));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(lr + j) : "memory");
      }
      asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
    } else {
      for (int j = threadIdx.x; j < nch; j += blockDim.x) row[j] = lr[j];
    }
#pragma unroll 4
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float v[V];
      unpack<T, V>(row[j], v);
      msChunk<V>(M, s, v);
      if constexpr (LOSS) xt += targetOf<V>(j, t, v);
    }
    blockMaxSum(M, s, sh);
    if constexpr (LOSS) {
      xt = blockSum(xt, reinterpret_cast<float*>(sh));
      if (threadIdx.x == 0) {
        acc += static_cast<double>(M) + log(static_cast<double>(s)) - static_cast<double>(xt);
        cnt++;
      }
    }
    const float inv = 1.f / s;
    const float scale = scaleP[0];
#pragma unroll 4
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float v[V], o[V];
      unpack<T, V>(row[j], v);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float p = msExp(v[k], M) * inv;
        o[k] = (static_cast<int64_t>(j) * V + k == t ? p - 1.f : p) * scale;
      }
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    }
  }
  if constexpr (LOSS) ceBlockPartial(acc, cnt, partSum, partCount);
}

// Launches the row kernel of cross_entropy_backward (LOSS false) or cross_entropy_with_grad (LOSS
// true: at most `maxBlocks` blocks, one partial each; returns the block count). dlogits is checked
// by the caller: the logits' own storage or apart from every input.
template <typename T, bool LOSS>
unsigned launchCeRows(Napi::Env env, cudaStream_t s, const T* logits, const int* targets, T* dl, uint64_t N, uint64_t C, int ignore, ErrWord* err,
                      const float* scale, double* partSum, long long* partCount, unsigned maxBlocks) {
  unsigned blocks = 0;
  DW_ROW_DISPATCH(T, canVec<T>(C, {logits, dl}), DW_FWD_ELEMS(T), {
    const int nch = static_cast<int>(C / V);
    const RowPlan p = rowPlan(nch, NCH);
    const uint64_t rowBytes = C * sizeof(T);
    if (V > 1 && !p.cached && rowBytes <= static_cast<uint64_t>(kCeSmemRow)) {
      // Rows that do not fit in registers but do in shared memory: read once (see ceBwdSmemK).
      int dev = 0;
      DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
      DW_CUDA(env, (setSmemLimitOnce<ceBwdSmemK<T, V, LOSS>, kCeSmemRow>(dev)), "cross_entropy shared memory limit");
      blocks = capBlocks(N, maxBlocks);
      ceBwdSmemK<T, V, LOSS><<<blocks, kCeSmemThreads, rowBytes, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err, scale, partSum, partCount);
    } else {
      blocks = p.grid(N) < maxBlocks ? p.grid(N) : maxBlocks;
      if (p.cached)
        ceBwdK<T, V, NCH, true, LOSS><<<blocks, p.block(), 0, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err, scale, partSum, partCount);
      else
        ceBwdK<T, V, NCH, false, LOSS><<<blocks, p.block(), 0, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err, scale, partSum, partCount);
    }
  });
  return blocks;
}

// dlogits may be the logits themselves (written in place: each row is read whole before any of it
// is written, and each element by the thread that then writes it), but no part of them otherwise,
// nor of anything else the kernels read or write while rows are written.
void checkDlogits(Napi::Env env, const void* dl, uint64_t bytes, const void* logits, std::initializer_list<std::pair<const void*, uint64_t>> others,
                  const char* op) {
  bool bad = badOverlap(dl, bytes, logits, bytes);
  for (const auto& o : others) bad = bad || badOverlap(dl, bytes, o.first, o.second) || (bytes > 0 && o.second > 0 && dl == o.first);
  if (bad)
    fail(env, "INVALID_ARGUMENT",
         std::string("Expected dlogits of ") + op + " to be the logits' storage or apart from the logits, targets, g, loss and workspace, but received overlapping ranges");
}

}  // namespace

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const abi::CrossEntropyArgs a = abi::readCrossEntropy(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t N = a.N, C = a.V;
  const int ignore = static_cast<int>(a.ignoreIndex);
  checkRowLength(env, C, "cross_entropy");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy but received 0");
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* logits = a.logits.ptr<T>(env, mulSize(env, N, C, "cross_entropy logits"));
    const int* targets = a.targets.ptr<int>(env, N);
    float* loss = a.loss.ptr<float>(env, 1);
    unsigned nb = 0;
    double* partSum = nullptr;
    long long* partCount = nullptr;
    if (N > 0) {
      nb = capBlocks(N, kMaxParts);
      // The workspace: double[nb], then long long[nb].
      uint8_t* ws = a.workspace.take<uint8_t>(env, static_cast<uint64_t>(nb) * (sizeof(double) + sizeof(long long)), alignof(double));
      partSum = reinterpret_cast<double*>(ws);
      partCount = reinterpret_cast<long long*>(ws + static_cast<size_t>(nb) * sizeof(double));
      ErrWord* err = opsErrorWord(env, kErrNn);
      constexpr int VEC = 16 / sizeof(T);
      const bool vec = canVec<T>(C, {logits});
      const int nch = static_cast<int>(vec ? C / VEC : C);
      // Up to 256 threads per row (16+ chunks each): several rows in flight per SM hide each row's
      // reduction and latency (one 1024-thread block per SM ran at half the bandwidth on an H200).
      int threads = static_cast<int>(((nch + 15) / 16 + 31) / 32 * 32);
      threads = threads < 32 ? 32 : threads > 256 ? 256 : threads;
      if (vec)
        ceFwdK<T, VEC><<<nb, threads, 0, s>>>(logits, targets, static_cast<int64_t>(N), nch, ignore, err, partSum, partCount);
      else
        ceFwdK<T, 1><<<nb, threads, 0, s>>>(logits, targets, static_cast<int64_t>(N), nch, ignore, err, partSum, partCount);
      checkLaunch(env, "cross_entropy");
    }
    ceFinalK<<<1, 256, 0, s>>>(partSum, partCount, static_cast<int>(nb), loss);
    checkLaunch(env, "cross_entropy (mean)");
  });
  return env.Undefined();
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  const abi::CrossEntropyBackwardArgs a = abi::readCrossEntropyBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int gdt = a.gDtype;  // a float code (the reader checked 0..2)
  const uint64_t N = a.N, C = a.V;
  const int ignore = static_cast<int>(a.ignoreIndex);
  checkRowLength(env, C, "cross_entropy_backward");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy_backward but received 0");
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const uint64_t total = mulSize(env, N, C, "cross_entropy_backward logits");
    const T* logits = a.logits.ptr<T>(env, total);
    const int* targets = a.targets.ptr<int>(env, N);
    const void* g = a.g.ptr<void>(env, 1, dtypeBytes(gdt));
    T* dl = a.dlogits.ptr<T>(env, total);
    if (N == 0) return env.Undefined();
    float* scale = a.workspace.take<float>(env, sizeof(float));
    checkDlogits(env, dl, total * sizeof(T), logits, {{targets, N * sizeof(int)}, {g, dtypeBytes(gdt)}, {scale, sizeof(float)}}, "cross_entropy_backward");
    ErrWord* err = opsErrorWord(env, kErrNn);
    ceScaleK<<<1, 1024, 0, s>>>(targets, static_cast<int64_t>(N), static_cast<int64_t>(C), ignore, g, gdt, scale);
    checkLaunch(env, "cross_entropy_backward (scale)");
    launchCeRows<T, false>(env, s, logits, targets, dl, N, C, ignore, err, scale, nullptr, nullptr, 1u << 20);
    checkLaunch(env, "cross_entropy_backward");
  });
  return env.Undefined();
}

Napi::Value CrossEntropyWithGrad(const Napi::CallbackInfo& info) {
  const abi::CrossEntropyWithGradArgs a = abi::readCrossEntropyWithGrad(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int gdt = a.gDtype;  // a float code (the reader checked 0..2)
  const uint64_t N = a.N, C = a.V;
  const int ignore = static_cast<int>(a.ignoreIndex);
  checkRowLength(env, C, "cross_entropy_with_grad");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy_with_grad but received 0");
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const uint64_t total = mulSize(env, N, C, "cross_entropy_with_grad logits");
    const T* logits = a.logits.ptr<T>(env, total);
    const int* targets = a.targets.ptr<int>(env, N);
    const void* g = a.g.ptr<void>(env, 1, dtypeBytes(gdt));
    float* loss = a.loss.ptr<float>(env, 1);
    T* dl = a.dlogits.ptr<T>(env, total);
    // The workspace: double[nb] partial sums, long long[nb] counts, then the f32 scale.
    const unsigned nb = capBlocks(N, kMaxParts);
    const uint64_t partBytes = static_cast<uint64_t>(nb) * (sizeof(double) + sizeof(long long));
    uint8_t* ws = a.workspace.take<uint8_t>(env, partBytes + sizeof(float), alignof(double));
    double* partSum = reinterpret_cast<double*>(ws);
    long long* partCount = reinterpret_cast<long long*>(ws + static_cast<size_t>(nb) * sizeof(double));
    float* scale = reinterpret_cast<float*>(ws + partBytes);
    checkDlogits(env, dl, total * sizeof(T), logits, {{targets, N * sizeof(int)}, {g, dtypeBytes(gdt)}, {loss, sizeof(float)}, {ws, partBytes + sizeof(float)}},
                 "cross_entropy_with_grad");
    unsigned blocks = 0;
    if (N > 0) {
      ErrWord* err = opsErrorWord(env, kErrNn);
      ceScaleK<<<1, 1024, 0, s>>>(targets, static_cast<int64_t>(N), static_cast<int64_t>(C), ignore, g, gdt, scale);
      checkLaunch(env, "cross_entropy_with_grad (scale)");
      blocks = launchCeRows<T, true>(env, s, logits, targets, dl, N, C, ignore, err, scale, partSum, partCount, nb);
      checkLaunch(env, "cross_entropy_with_grad");
    }
    ceFinalK<<<1, 256, 0, s>>>(partSum, partCount, static_cast<int>(blocks), loss);
    checkLaunch(env, "cross_entropy_with_grad (mean)");
  });
  return env.Undefined();
}

}  // namespace dw::nn

// sum_squares (nn family; see nn.cpp): the global gradient norm's sum of squares in a few launches.
//
//   sumSquares(stream, count, out, workspace, then per tensor: dtype, n, x)
//       out: f32[1] = Σ over every element of every tensor of x² (each tensor f32, bf16 or f16 of
//       its own); workspace: one f64 partial per chunk of kSsChunk elements of each tensor.
//
// As packages/ir/src/ops/optim/sum_squares.ts, whose reference accumulates in float64: each square
// is exact in f64 (a float's square fits 53 bits) and every sum is f64, so the result differs from
// the reference by the f64 summation order only (far below the final f32 rounding).
//
// Multi-tensor: up to kSsBatch tensors per launch, passed by value as the kernel's parameters (so a
// captured CUDA graph holds them). Each block reduces one chunk of one tensor and writes its
// partial to its own slot; a second kernel (one block) adds the partials, thread t those of
// t, t + 1024, ..., then a fixed tree. No atomics: the order depends on the shapes only, so the
// result is bitwise the same on every run and every GPU.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>

namespace dw::nn {
namespace {

constexpr int kSsBatch = 128;
constexpr int64_t kSsChunk = 16384;  // elements per block; mirrored by packages/ir/src/cuda/nn.ts
constexpr int kSsThreads = 256;
constexpr int kSsFinalThreads = 1024;

struct SsBatch {
  const void* x[kSsBatch];
  int64_t n[kSsBatch];
  int start[kSsBatch + 1];  // first block of tensor k in this launch (a prefix sum)
  unsigned char dtype[kSsBatch];
  unsigned char vec[kSsBatch];  // 16-byte aligned: whole 16-byte loads
  int count;
  int base;  // the partial slot of this launch's block 0
};
static_assert(sizeof(SsBatch) < 4000, "kernel parameters are limited to 4 KiB");

// Sum over the block in a fixed tree (blockDim a multiple of 32, at most 1024); thread 0 gets it.
__device__ __forceinline__ double blockSumF64(double v) {
  __shared__ double sh[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (lane == 0) sh[w] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int k = 0; k < nw; k++) s += sh[k];
  return s;
}

// Σ x² over elements [begin, end) of x, by this thread (threads step by blockDim.x): 16 bytes at a
// time from `begin` (a multiple of kSsChunk, so aligned when x is) when VEC, one at a time after.
template <typename T, bool VEC>
__device__ __forceinline__ double squares(const T* x, int64_t begin, int64_t end) {
  double acc = 0;
  int64_t done = begin;
  if constexpr (VEC) {
    constexpr int V = 16 / sizeof(T);
    const int64_t c0 = begin / V, c1 = c0 + (end - begin) / V;
    for (int64_t c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
      float f[V];
      loadF<T, V>(x + c * V, f);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const double d = f[k];
        acc = fma(d, d, acc);
      }
    }
    done = c1 * V;
  }
  for (int64_t i = done + threadIdx.x; i < end; i += blockDim.x) {
    const double d = toF(x[i]);
    acc = fma(d, d, acc);
  }
  return acc;
}

template <typename T>
__device__ __forceinline__ double squaresOf(const void* x, bool vec, int64_t begin, int64_t end) {
  const T* p = static_cast<const T*>(x);
  return vec ? squares<T, true>(p, begin, end) : squares<T, false>(p, begin, end);
}

__global__ void __launch_bounds__(kSsThreads) sumSquaresK(const SsBatch b, double* partials) {
  const int blk = static_cast<int>(blockIdx.x);
  // The tensor whose blocks hold blk: the last k with start[k] <= blk (binary search).
  int lo = 0, hi = b.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (b.start[mid] <= blk) lo = mid;
    else hi = mid - 1;
  }
  const int k = lo;
  const int64_t begin = static_cast<int64_t>(blk - b.start[k]) * kSsChunk;
  const int64_t end = begin + kSsChunk < b.n[k] ? begin + kSsChunk : b.n[k];
  double acc;
  switch (b.dtype[k]) {
    case kF32: acc = squaresOf<float>(b.x[k], b.vec[k], begin, end); break;
    case kBF16: acc = squaresOf<__nv_bfloat16>(b.x[k], b.vec[k], begin, end); break;
    default: acc = squaresOf<__half>(b.x[k], b.vec[k], begin, end); break;
  }
  const double s = blockSumF64(acc);
  if (threadIdx.x == 0) partials[b.base + blk] = s;
}

// One block: the partials added in a fixed order, rounded once to f32.
__global__ void __launch_bounds__(kSsFinalThreads) sumSquaresFinalK(const double* partials, int64_t count, float* out) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = blockSumF64(s);
  if (threadIdx.x == 0) out[0] = static_cast<float>(s);
}

}  // namespace

// sumSquares(stream, count, out, workspace, then per tensor: dtype, n, x)
// Every tensor is checked before anything is launched; then one launch per kSsBatch tensors (empty
// tensors take none) and the final one.
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  const abi::SumSquaresArgs a = abi::readSumSquares(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t count = a.count;
  float* out = a.out.ptr<float>(env, 1);
  std::vector<const void*> xs(count);
  uint64_t blocks = 0;
  for (uint64_t k = 0; k < count; k++) {
    const abi::SumSquaresArgs_Tensors& e = a.tensors[k];
    xs[k] = e.x.ptr<void>(env, e.n, dtypeBytes(e.dtype));
    blocks += (e.n + kSsChunk - 1) / kSsChunk;
    if (blocks > 0x7fffffffu)
      fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 chunks of " + std::to_string(kSsChunk) + " elements in all for sum_squares");
  }
  double* partials = a.workspace.take<double>(env, blocks * sizeof(double));
  // out may overlap an input: it is written by the last kernel, after every read.
  SsBatch batch{};
  int base = 0;
  auto launch = [&]() {
    if (batch.count == 0) return;
    batch.base = base;
    sumSquaresK<<<static_cast<unsigned>(batch.start[batch.count]), kSsThreads, 0, s>>>(batch, partials);
    checkLaunch(env, "sum_squares");
    base += batch.start[batch.count];
    batch = SsBatch{};
  };
  for (uint64_t k = 0; k < count; k++) {
    const uint64_t n = a.tensors[k].n;
    if (n == 0) continue;
    if (batch.count == kSsBatch) launch();
    const int c = batch.count;
    batch.x[c] = xs[k];
    batch.n[c] = static_cast<int64_t>(n);
    batch.dtype[c] = static_cast<unsigned char>(a.tensors[k].dtype);
    batch.vec[c] = aligned16(xs[k]) ? 1 : 0;
    batch.start[c + 1] = batch.start[c] + static_cast<int>((n + kSsChunk - 1) / kSsChunk);
    batch.count = c + 1;
  }
  launch();
  sumSquaresFinalK<<<1, kSsFinalThreads, 0, s>>>(partials, static_cast<int64_t>(blocks), out);
  checkLaunch(env, "sum_squares final");
  return env.Undefined();
}

}  // namespace dw::nn

// Reductions: sum, mean, max, max_backward, sum_to (tensor family; see tensor.cpp).
//
//   sum(stream, dtype, rank, xShape[rank], keepShape[rank], x, out, workspace)
//   mean(...same...)    max(...same...)    sumTo(...same...)
//   maxBackward(stream, dtype, rank, xShape[rank], keepShape[rank], g, x, out, workspace)
//
// keepShape is x's shape with every reduced dimension set to 1 (the keepdims shape; for sum_to the
// target shape right-aligned with leading 1s); out (and g) hold prod(keepShape) elements in its
// row-major order, which is also the order of the op's output shape. Each keepShape[d] equals
// xShape[d] or 1.
//
// x's dimensions are split into kept and reduced ones (size-1 dimensions dropped, contiguous
// neighbours merged). Output o's kept offset and the reduced offset of index r < count add up to
// the element's offset in x; r runs in row-major order within the group.
//   - Innermost dimension reduced ("row"): one warp per output (count <= 1024) or one block,
//     threads striding over r (coalesced), then a fixed shuffle tree.
//   - Few outputs (<= 64) over long groups (>= 65536): split row mode (below), two kernels, with
//     the partials in the call's workspace (S * nOut * 16 bytes, at most (1024 + 63) * 16; none is
//     needed in the other modes).
//   - Innermost dimension kept ("column"): blocks of (32, Y): x picks 32 neighbouring outputs
//     (coalesced), y strides over r; partials are combined in y order. With fewer than 1024 / 2
//     such blocks over columns of >= 2048 rows, split column mode: S slices of rows, partials in
//     the workspace (S * nOut * 16 bytes), combined in slice order by a second kernel.
// Thread counts depend on the shapes only, so results are bitwise reproducible.
//
// max and max_backward reduce (value, r) pairs: NaN beats everything (the first NaN wins), then the
// larger value, then the smaller r, exactly the reference's "first maximal element (first NaN)".
// That combine is associative and commutative, so the tree order does not change the winner.
#include "ops/tensor/tensor.h"

#include "common/launch.h"
#include "ops/tensor/tensor_common.cuh"

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

namespace dw::tensor {
namespace {

template <typename I>
struct SumRed {
  using Acc = float;
  __device__ static Acc identity() { return 0.f; }
  __device__ static Acc make(float v, I) { return v; }
  __device__ static Acc combine(Acc a, Acc b) { return a + b; }
  __device__ static Acc shflDown(Acc a, int off) { return __shfl_down_sync(0xffffffffu, a, off); }
};

template <typename I>
struct ArgMax {
  float v;
  I r;
};

template <typename I>
struct MaxRed {
  using Acc = ArgMax<I>;
  __device__ static Acc identity() { return {-INFINITY, ~I(0)}; }
  __device__ static Acc make(float v, I r) { return {v, r}; }
  __device__ static Acc combine(Acc a, Acc b) {
    const bool an = isnan(a.v), bn = isnan(b.v);
    if (an || bn) {
      if (an && bn) return a.r < b.r ? a : b;
      return an ? a : b;
    }
    if (a.v > b.v) return a;
    if (b.v > a.v) return b;
    return a.r < b.r ? a : b;
  }
  __device__ static Acc shflDown(Acc a, int off) {
    return {__shfl_down_sync(0xffffffffu, a.v, off), __shfl_down_sync(0xffffffffu, a.r, off)};
  }
};

template <typename Red>
__device__ __forceinline__ typename Red::Acc warpReduce(typename Red::Acc a) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) a = Red::combine(a, Red::shflDown(a, off));
  return a;
}

// Epilogues: what to do with the reduced value of output o (kept offset in x: keptOff).
template <typename T>
struct SumOut {
  T* out;
  float divisor;  // 1 for sum, count for mean
  bool mean;
  template <typename Acc, typename I>
  __device__ void operator()(I o, Acc acc, I, const Strided<I>&) const { out[o] = fromF<T>(mean ? acc / divisor : acc); }
};
template <typename T>
struct MaxOut {
  T* out;
  template <typename Acc, typename I>
  __device__ void operator()(I o, Acc acc, I, const Strided<I>&) const { out[o] = fromF<T>(acc.v); }
};
// out (x-shaped, zeroed first) at the group's argmax = g[o].
template <typename T>
struct MaxBackwardOut {
  T* out;
  const T* g;
  template <typename Acc, typename I>
  __device__ void operator()(I o, Acc acc, I keptOff, const Strided<I>& red) const {
    out[keptOff + (red.rank == 1 ? acc.r * red.a[0] : offsetA(acc.r, red))] = g[o];
  }
};

template <typename I>
__device__ __forceinline__ I reducedOffset(I r, const Strided<I>& red) {
  return red.rank == 1 ? r * red.a[0] : offsetA(r, red);
}

// Row mode. WARP: one warp per output (blockDim.x / 32 outputs a block); else one block per output.
template <typename T, typename I, typename Red, bool WARP, typename Ep>
__global__ void __launch_bounds__(1024) reduceRowKernel(const T* x, I nOut, I count, Strided<I> kept, Strided<I> red, Ep ep) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const I groupSize = WARP ? 32 : blockDim.x;
  const I t = WARP ? lane : threadIdx.x;
  const I groupsPerBlock = WARP ? blockDim.x / 32 : 1;
  const I first = blockIdx.x * groupsPerBlock + (WARP ? warp : 0);
  const I step = I(gridDim.x) * groupsPerBlock;
  // In block mode o is the same for every thread of the block, so the __syncthreads are uniform;
  // in warp mode o is the same for the 32 lanes of a warp, as the shuffles need.
  for (I o = first; o < nOut; o += step) {
    const I keptOff = offsetA(o, kept);
    Acc acc = Red::identity();
    for (I r = t; r < count; r += groupSize) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    acc = warpReduce<Red>(acc);
    if constexpr (!WARP) {
      if (lane == 0) partial[warp] = acc;
      __syncthreads();
      if (warp == 0) {
        const int warps = blockDim.x >> 5;
        acc = lane < warps ? partial[lane] : Red::identity();
        acc = warpReduce<Red>(acc);
      }
      __syncthreads();
      if (threadIdx.x == 0) ep(o, acc, keptOff, red);
    } else {
      if (lane == 0) ep(o, acc, keptOff, red);
    }
  }
}

// Column mode: blockDim (32, Y).
template <typename T, typename I, typename Red, typename Ep>
__global__ void __launch_bounds__(1024) reduceColKernel(const T* x, I nOut, I count, Strided<I> kept, Strided<I> red, Ep ep) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y, Y = blockDim.y;
  for (I base = I(blockIdx.x) * 32; base < nOut; base += I(gridDim.x) * 32) {
    const I o = base + tx;
    Acc acc = Red::identity();
    I keptOff = 0;
    if (o < nOut) {
      keptOff = offsetA(o, kept);
      for (I r = ty; r < count; r += Y) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < nOut) {
      for (int k = 1; k < Y; ++k) acc = Red::combine(acc, partial[k][tx]);
      ep(o, acc, keptOff, red);
    }
    __syncthreads();
  }
}

// Split row mode, for few outputs over long groups (a whole tensor summed to one value): each
// group is cut into S slices of `len` elements, block b reduces slice b % S of output b / S into
// partial slot b, then one block per output combines its S partials. S depends on the shapes only
// (never on the GPU), so results are bitwise reproducible everywhere. The partials are the call's
// workspace (the caller's memory plan places it), one 16-byte slot per slice: S * nOut slots.
// S * nOut <= 1024 + nOut - 1, so the kSplitSlots cap never binds.
constexpr uint64_t kSplitSlots = 1u << 16;
constexpr uint64_t kSplitSlotBytes = 16;
constexpr uint64_t kSplitMaxOutputs = 64;
constexpr uint64_t kSplitMinCount = 1u << 16;  // below this, one block per output is fast enough
constexpr uint64_t kColSplitMinCount = 2048;     // split column mode: columns at least this long

template <typename Red>
__device__ __forceinline__ typename Red::Acc blockReduce(typename Red::Acc acc, typename Red::Acc* partial) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  acc = warpReduce<Red>(acc);
  if (lane == 0) partial[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < int(blockDim.x >> 5) ? partial[lane] : Red::identity();
    acc = warpReduce<Red>(acc);
  }
  __syncthreads();
  return acc;  // valid in thread 0
}

template <typename T, typename I, typename Red>
__global__ void __launch_bounds__(1024)
    reduceSplitKernel(const T* x, I nOut, I count, I S, I len, Strided<I> kept, Strided<I> red, typename Red::Acc* partials) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32];
  for (I b = blockIdx.x; b < nOut * S; b += gridDim.x) {
    const I o = b / S, j = b % S;
    const I keptOff = offsetA(o, kept);
    const I lo = j * len, hi = lo + len < count ? lo + len : count;
    Acc acc = Red::identity();
    for (I r = lo + threadIdx.x; r < hi; r += blockDim.x) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    acc = blockReduce<Red>(acc, partial);
    if (threadIdx.x == 0) partials[b] = acc;
  }
}

template <typename I, typename Red, typename Ep>
__global__ void __launch_bounds__(256) reduceSplitFinishKernel(I nOut, I S, Strided<I> kept, Strided<I> red, const typename Red::Acc* partials, Ep ep) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32];
  for (I o = blockIdx.x; o < nOut; o += gridDim.x) {
    Acc acc = Red::identity();
    for (I j = threadIdx.x; j < S; j += blockDim.x) acc = Red::combine(acc, partials[o * S + j]);
    acc = blockReduce<Red>(acc, partial);
    if (threadIdx.x == 0) ep(o, acc, offsetA(o, kept), red);
  }
}

// Split column mode, for narrow outputs over long columns (a bias gradient: dy [16384, 2048]
// summed over its rows): the plain column mode has only ceil(nOut / 32) blocks, too few to keep
// the GPU's memory busy. Block (x, j) takes 32 outputs and slice j of S slices of `len` rows, as a
// column-mode block does over all rows, and writes its partials to slot j · nOut + o; then one
// thread per output combines its S partials in slice order. S depends on the shapes only.
template <typename T, typename I, typename Red>
__global__ void __launch_bounds__(1024) reduceColSplitKernel(const T* x, I nOut, I count, I len, Strided<I> kept, Strided<I> red, typename Red::Acc* partials) {
  using Acc = typename Red::Acc;
  __shared__ Acc partial[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y, Y = blockDim.y;
  const I j = blockIdx.y, lo = j * len, hi = lo + len < count ? lo + len : count;
  for (I base = I(blockIdx.x) * 32; base < nOut; base += I(gridDim.x) * 32) {
    const I o = base + tx;
    Acc acc = Red::identity();
    if (o < nOut) {
      const I keptOff = offsetA(o, kept);
      for (I r = lo + ty; r < hi; r += Y) acc = Red::combine(acc, Red::make(toF(x[keptOff + reducedOffset(r, red)]), r));
    }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < nOut) {
      for (int k = 1; k < Y; ++k) acc = Red::combine(acc, partial[k][tx]);
      partials[j * nOut + o] = acc;
    }
    __syncthreads();
  }
}

template <typename I, typename Red, typename Ep>
__global__ void __launch_bounds__(256) reduceColSplitFinishKernel(I nOut, I S, Strided<I> kept, Strided<I> red, const typename Red::Acc* partials, Ep ep) {
  using Acc = typename Red::Acc;
  for (I o = I(blockIdx.x) * blockDim.x + threadIdx.x; o < nOut; o += I(gridDim.x) * blockDim.x) {
    Acc acc = partials[o];
    for (I j = 1; j < S; ++j) acc = Red::combine(acc, partials[j * nOut + o]);
    ep(o, acc, offsetA(o, kept), red);
  }
}

// Column vector mode, for sums over the rows of a row-major [count, nOut] x (every reduced
// dimension before every kept one, nOut a multiple of 8, x 16-byte aligned): the bias gradients
// of the FP8 path, dy [16384, 2048..8192] summed over its rows. The split column mode above loads
// 2 bytes per thread through the general strided indexing and reached about 1 TB/s on the H200
// (2026-12-03, the 1B step's profile); here each thread owns 8 adjacent columns, loads them as
// 16-byte vectors, 8 rows in flight, over slice blockIdx.y of S slices of `len` rows, summing the
// rows in order, and writes 8 f32 partials to slot j · nOut + o. The finish combines the S
// partials of 32 columns per block: thread row ty sums slices ty, ty + 32, ... in order, then
// row 0 adds the 32 in order. Every order depends on the shapes only.
template <typename T>
__device__ __forceinline__ void addChunk(float (&acc)[8], const uint4 (&b)[sizeof(T) / 2]) {
  const T* t = reinterpret_cast<const T*>(b);
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] += toF(t[i]);
}

template <typename T>
__global__ void __launch_bounds__(256) reduceColVecKernel(const T* __restrict__ x, uint64_t nOut, uint64_t count, uint64_t len, float* __restrict__ partials) {
  constexpr int W = sizeof(T) / 2;  // 16-byte loads per 8 elements
  const uint64_t v = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (8 * v >= nOut) return;
  const uint64_t lo = static_cast<uint64_t>(blockIdx.y) * len, hi = lo + len < count ? lo + len : count;
  const uint64_t rowStep = nOut * sizeof(T) / 16;
  const uint4* p = reinterpret_cast<const uint4*>(x + lo * nOut + 8 * v);
  float acc[8] = {};
  uint64_t r = lo;
  for (; r + 8 <= hi; r += 8, p += 8 * rowStep) {
    uint4 b[8][W];
#pragma unroll
    for (int k = 0; k < 8; ++k)
#pragma unroll
      for (int w = 0; w < W; ++w) b[k][w] = __ldg(p + k * rowStep + w);
#pragma unroll
    for (int k = 0; k < 8; ++k) addChunk<T>(acc, b[k]);
  }
  for (; r < hi; ++r, p += rowStep) {
    uint4 b[W];
#pragma unroll
    for (int w = 0; w < W; ++w) b[w] = __ldg(p + w);
    addChunk<T>(acc, b);
  }
  float4* out = reinterpret_cast<float4*>(partials + blockIdx.y * nOut + 8 * v);
  out[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
  out[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
}

template <typename I, typename Ep>
__global__ void __launch_bounds__(1024) reduceColVecFinishKernel(I nOut, I S, Strided<I> kept, Strided<I> red, const float* __restrict__ partials, Ep ep) {
  __shared__ float part[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const I o = I(blockIdx.x) * 32 + tx;
  float acc = 0.f;
  if (o < nOut)
    for (I j = ty; j < S; j += 32) acc += partials[j * nOut + o];
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && o < nOut) {
    for (int k = 1; k < 32; ++k) acc += part[k][tx];
    ep(o, acc, offsetA(o, kept), red);
  }
}

enum class ReduceKind { Sum, Mean, Max, MaxBackward };

struct ReducePlan {
  uint64_t nIn, nOut, count;
  std::vector<uint64_t> keptSize, keptStride, redSize, redStride;
  bool row;  // innermost dimension reduced
  // Split row mode: S slices of len elements per output, S * nOut workspace slots.
  bool split;
  // Split column mode: S slices of len rows, S * nOut workspace slots.
  bool colSplit;
  // Column vector mode (sums): S slices of len rows, S * nOut f32 partials in the workspace.
  bool colVec;
  uint64_t S, len;
};

ReducePlan planReduce(Napi::Env env, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& ks, bool sum, const char* fn) {
  ReducePlan p{};
  p.nIn = product(env, xs, "x");
  p.nOut = product(env, ks, "out");
  p.count = 1;
  std::vector<uint64_t> st = contiguousStrides(xs);
  bool innerReduced = true;  // with no dimension of size > 1, use row mode
  for (size_t d = 0; d < xs.size(); ++d) {
    if (ks[d] != xs[d] && ks[d] != 1)
      fail(env, "SHAPE_MISMATCH", std::string("Expected ") + num(xs[d]) + " or 1 for dimension " + std::to_string(d) + " of the kept shape " + dimsStr(ks) + " (x: " + dimsStr(xs) + ") in " + fn + " but received " + num(ks[d]));
    if (xs[d] == 1) continue;
    bool reduced = ks[d] == 1;
    std::vector<uint64_t>& size = reduced ? p.redSize : p.keptSize;
    std::vector<uint64_t>& stride = reduced ? p.redStride : p.keptStride;
    if (reduced) p.count *= xs[d];
    innerReduced = reduced;
    if (!size.empty() && stride.back() == st[d] * xs[d]) {
      size.back() *= xs[d];
      stride.back() = st[d];
    } else {
      size.push_back(xs[d]);
      stride.push_back(st[d]);
    }
  }
  p.row = innerReduced;
  // Split row mode (launchReduceI) when there are outputs to reduce (nOut >= 1, count >= 1):
  // about 1024 blocks in all, each slice at least 4096 elements long.
  p.split = p.row && p.nOut != 0 && p.count >= kSplitMinCount && p.nOut <= kSplitMaxOutputs;
  if (p.split) {
    uint64_t S = (1024 + p.nOut - 1) / p.nOut;
    const uint64_t bySize = (p.count + 4095) / 4096;
    if (S > bySize) S = bySize;
    if (S * p.nOut > kSplitSlots) S = kSplitSlots / p.nOut;
    p.S = S;
    p.len = (p.count + S - 1) / S;
  }
  // Split column mode (below kColSplitBlocks column blocks, columns of kColSplitMinCount rows or
  // more): about 1024 blocks in all, each slice at least 1024 rows. ir's reduceWorkspace
  // (packages/ir/src/cuda/tensor.ts) mirrors this rule to size the workspace.
  // Column vector mode first (sums over the rows of a row-major [count, nOut]): about 2048 blocks
  // in all (colVecThreads each), each slice at least 32 rows. GPT-2's bias gradients (nOut 768 to
  // 3072, 16384 rows) had a few warps an SM at 1024 blocks of 64 rows (0.57 of a copy's bandwidth
  // over the FP8 step's 41 of them, H200, 2026-12-03).
  if (!p.row && sum && p.nOut != 0 && p.nOut % 8 == 0 && p.count >= kColSplitMinCount && p.keptSize.size() == 1 && p.keptStride[0] == 1 && p.redSize.size() == 1 &&
      p.redStride[0] == p.nOut) {
    const uint64_t colBlocks = (p.nOut / 8 + 255) / 256;
    uint64_t S = (2048 + colBlocks - 1) / colBlocks;
    const uint64_t bySize = (p.count + 31) / 32;
    if (S > bySize) S = bySize;
    if (S >= 2 && S <= 65535) {
      p.colVec = true;
      p.S = S;
      p.len = (p.count + S - 1) / S;
      return p;
    }
  }
  if (!p.row && p.nOut != 0 && p.count >= kColSplitMinCount) {
    const uint64_t colBlocks = (p.nOut + 31) / 32;
    uint64_t S = (1024 + colBlocks - 1) / colBlocks;
    const uint64_t bySize = (p.count + 1023) / 1024;
    if (S > bySize) S = bySize;
    if (S >= 2) {
      p.colSplit = true;
      p.S = S;
      p.len = (p.count + S - 1) / S;
    }
  }
  return p;
}

// workspace: the split mode's partials (S * nOut slots of kSplitSlotBytes), nullptr otherwise.
template <typename T, typename I, typename Red, typename Ep>
void launchReduceI(Napi::Env env, cudaStream_t s, const T* x, const ReducePlan& p, Ep ep, void* workspace) {
  Strided<I> kept = toStrided<I>(p.keptSize, p.keptStride, {});
  Strided<I> red = toStrided<I>(p.redSize, p.redStride, {});
  if (p.split) {
    using Acc = typename Red::Acc;
    static_assert(sizeof(Acc) <= kSplitSlotBytes, "a partial must fit a workspace slot");
    Acc* partials = static_cast<Acc*>(workspace);
    const uint64_t S = p.S, len = p.len;
    reduceSplitKernel<T, I, Red><<<gridFor(env, p.nOut * S, 1, 2), 1024, 0, s>>>(x, I(p.nOut), I(p.count), I(S), I(len), kept, red, partials);
    reduceSplitFinishKernel<I, Red><<<gridFor(env, p.nOut, 1), 256, 0, s>>>(I(p.nOut), I(S), kept, red, partials, ep);
  } else if (p.row) {
    if (p.count <= 1024) {
      reduceRowKernel<T, I, Red, true><<<gridFor(env, p.nOut, kThreads / 32), kThreads, 0, s>>>(x, I(p.nOut), I(p.count), kept, red, ep);
    } else {
      unsigned threads = p.nOut >= 128 ? 256 : 1024;
      reduceRowKernel<T, I, Red, false><<<gridFor(env, p.nOut, 1, 2048 / threads), threads, 0, s>>>(x, I(p.nOut), I(p.count), kept, red, ep);
    }
  } else if (p.colVec) {
    if constexpr (std::is_same_v<typename Red::Acc, float>) {
      float* partials = static_cast<float*>(workspace);
      const unsigned colBlocks = static_cast<unsigned>((p.nOut / 8 + 255) / 256);
      // The vectors (8 columns each) shared evenly by the column blocks, in whole warps: 96 threads
      // for 768 columns, not 256 of which 160 idle (they hold the block's slot on the SM).
      const uint64_t vecs = p.nOut / 8, per = (vecs + colBlocks - 1) / colBlocks;
      const unsigned threads = static_cast<unsigned>((per + 31) / 32 * 32);
      reduceColVecKernel<T><<<dim3(colBlocks, static_cast<unsigned>(p.S)), threads, 0, s>>>(x, p.nOut, p.count, p.len, partials);
      reduceColVecFinishKernel<I, Ep><<<static_cast<unsigned>((p.nOut + 31) / 32), dim3(32, 32), 0, s>>>(I(p.nOut), I(p.S), kept, red, partials, ep);
    }
  } else if (p.colSplit) {
    using Acc = typename Red::Acc;
    static_assert(sizeof(Acc) <= kSplitSlotBytes, "a partial must fit a workspace slot");
    Acc* partials = static_cast<Acc*>(workspace);
    const unsigned colBlocks = static_cast<unsigned>((p.nOut + 31) / 32);
    reduceColSplitKernel<T, I, Red><<<dim3(colBlocks, static_cast<unsigned>(p.S)), dim3(32, 32), 0, s>>>(x, I(p.nOut), I(p.count), I(p.len), kept, red, partials);
    reduceColSplitFinishKernel<I, Red><<<gridFor(env, p.nOut, 256), 256, 0, s>>>(I(p.nOut), I(p.S), kept, red, partials, ep);
  } else {
    unsigned Y = p.count >= 1024 ? 32 : p.count >= 128 ? 16 : p.count >= 16 ? 4 : 1;
    reduceColKernel<T, I, Red><<<gridFor(env, p.nOut, 32, 2048 / (32 * Y)), dim3(32, Y), 0, s>>>(x, I(p.nOut), I(p.count), kept, red, ep);
  }
}

template <typename T, template <typename> class Red, typename Ep>
void launchReduce(Napi::Env env, cudaStream_t s, const T* x, const ReducePlan& p, Ep ep, void* workspace, const char* what) {
  if (p.nIn < kI32Limit)
    launchReduceI<T, uint32_t, Red<uint32_t>>(env, s, x, p, ep, workspace);
  else
    launchReduceI<T, uint64_t, Red<uint64_t>>(env, s, x, p, ep, workspace);
  checkLaunch(env, what);
}

// g is used by MaxBackward only; workspace as launchReduceI's.
void reduceDevice(Napi::Env env, cudaStream_t s, int dt, ReduceKind kind, const ReducePlan& p, const void* g, const void* x, void* out, void* workspace, const char* fn) {
  size_t es = dtypeBytes(dt);
  if (kind == ReduceKind::MaxBackward) {
    if (p.nIn == 0) return;
    DW_CUDA(env, cudaMemsetAsync(out, 0, p.nIn * es, s), "maxBackward: cudaMemsetAsync");
  }
  if (p.nOut == 0) return;
  if (p.count == 0) {
    // Empty groups (only for sum, mean, max; maxBackward returned above): the reference's 0,
    // 0 / 0 and -Infinity.
    double v = kind == ReduceKind::Sum ? 0.0 : kind == ReduceKind::Mean ? NAN : -INFINITY;
    launchFill(env, s, dt, p.nOut, float(v), out, false);
    checkLaunch(env, fn);
    return;
  }
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* xt = static_cast<const T*>(x);
    T* ot = static_cast<T*>(out);
    switch (kind) {
      case ReduceKind::Sum: launchReduce<T, SumRed>(env, s, xt, p, SumOut<T>{ot, 1.f, false}, workspace, fn); break;
      case ReduceKind::Mean: launchReduce<T, SumRed>(env, s, xt, p, SumOut<T>{ot, float(p.count), true}, workspace, fn); break;
      case ReduceKind::Max: launchReduce<T, MaxRed>(env, s, xt, p, MaxOut<T>{ot}, workspace, fn); break;
      case ReduceKind::MaxBackward: launchReduce<T, MaxRed>(env, s, xt, p, MaxBackwardOut<T>{ot, static_cast<const T*>(g)}, workspace, fn); break;
    }
  });
}

// The reductions once their arguments are read; gArg is maxBackward's g (nullptr for the others).
Napi::Value reduceEntry(Napi::Env env, cudaStream_t s, int dt, ReduceKind kind, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& ks, const abi::TensorArg* gArg,
                        const abi::TensorArg& xArg, const abi::TensorArg& outArg, const abi::WorkspaceArg& ws, const char* fn) {
  ReducePlan p = planReduce(env, xs, ks, kind == ReduceKind::Sum || kind == ReduceKind::Mean, fn);
  size_t es = dtypeBytes(dt);
  const void* g = kind == ReduceKind::MaxBackward ? gArg->ptr<void>(env, p.nOut, es) : nullptr;
  const void* x = xArg.ptr<void>(env, p.nIn, es);
  void* out = outArg.ptr<void>(env, kind == ReduceKind::MaxBackward ? p.nIn : p.nOut, es);
  void* workspace = nullptr;
  // An unaligned x (a view into the middle of a buffer) takes the plain column mode instead.
  if (p.colVec && reinterpret_cast<uintptr_t>(x) % 16 != 0) p.colVec = false;
  if (p.split || p.colSplit) {
    workspace = ws.take<void>(env, p.S * p.nOut * kSplitSlotBytes, kSplitSlotBytes);
  } else if (p.colVec) {
    workspace = ws.take<void>(env, p.S * p.nOut * sizeof(float), 16);
  }
  reduceDevice(env, s, dt, kind, p, g, x, out, workspace, fn);
  return env.Undefined();
}

}  // namespace

Napi::Value Sum(const Napi::CallbackInfo& info) {
  const abi::SumArgs a = abi::readSum(info);
  return reduceEntry(info.Env(), a.stream, a.dtype, ReduceKind::Sum, a.xShape, a.keepShape, nullptr, a.x, a.out, a.workspace, "sum");
}

Napi::Value SumTo(const Napi::CallbackInfo& info) {
  const abi::SumToArgs a = abi::readSumTo(info);
  return reduceEntry(info.Env(), a.stream, a.dtype, ReduceKind::Sum, a.xShape, a.keepShape, nullptr, a.x, a.out, a.workspace, "sumTo");
}

Napi::Value Mean(const Napi::CallbackInfo& info) {
  const abi::MeanArgs a = abi::readMean(info);
  return reduceEntry(info.Env(), a.stream, a.dtype, ReduceKind::Mean, a.xShape, a.keepShape, nullptr, a.x, a.out, a.workspace, "mean");
}

Napi::Value Max(const Napi::CallbackInfo& info) {
  const abi::MaxArgs a = abi::readMax(info);
  return reduceEntry(info.Env(), a.stream, a.dtype, ReduceKind::Max, a.xShape, a.keepShape, nullptr, a.x, a.out, a.workspace, "max");
}

Napi::Value MaxBackward(const Napi::CallbackInfo& info) {
  const abi::MaxBackwardArgs a = abi::readMaxBackward(info);
  return reduceEntry(info.Env(), a.stream, a.dtype, ReduceKind::MaxBackward, a.xShape, a.keepShape, &a.g, a.x, a.out, a.workspace, "maxBackward");
}

}  // namespace dw::tensor

// Data movement: reshape, broadcast_to, transpose, slice, slice_backward, concat (tensor family;
// see tensor.cpp).
//
//   reshape(stream, dtype, n, x, out)                               cudaMemcpyAsync (none in place)
//   broadcastTo(stream, dtype, rank, outShape[rank], xShape[rank], x, out)
//        xShape right-aligned to rank with leading 1s; each dim equals out's or is 1
//   transpose(stream, dtype, rank, xShape[rank], perm[rank], x, out)   out.shape[d] = x.shape[perm[d]]
//   slice(stream, dtype, outer, size, inner, start, length, x, out)
//        x viewed as [outer, size, inner]; out = x[:, start:start+length, :]
//   sliceBackward(stream, dtype, outer, size, inner, start, length, g, out)
//        out [outer, size, inner] = 0 except out[:, start:start+length, :] = g [outer, length, inner]
//   concat(stream, dtype, outer, inner, k, sizes[k], xs[k], out)
//        x_j viewed as [outer, sizes[j], inner]; out [outer, sum(sizes), inner]
//
// Any dtype (sliceBackward: float dtypes); elements move as bits, in the widest unit (16, 8, 4 or
// 2 bytes) that every row length, pitch and pointer allows.
#include "ops/tensor/tensor.h"

#include "common/launch.h"
#include "ops/tensor/tensor_common.cuh"

#include <algorithm>
#include <string>
#include <vector>

namespace dw::tensor {
namespace {

template <typename U>
__device__ __forceinline__ U zeroUnit();
template <> __device__ __forceinline__ uint16_t zeroUnit<uint16_t>() { return 0; }
template <> __device__ __forceinline__ uint32_t zeroUnit<uint32_t>() { return 0; }
template <> __device__ __forceinline__ uint2 zeroUnit<uint2>() { return make_uint2(0, 0); }
template <> __device__ __forceinline__ uint4 zeroUnit<uint4>() { return make_uint4(0, 0, 0, 0); }

// The widest unit (>= the element size) dividing every byte count and address given.
size_t unitFor(size_t es, std::initializer_list<uint64_t> bytes, std::initializer_list<const void*> ptrs) {
  for (size_t u : {size_t(16), size_t(8), size_t(4)}) {
    if (u <= es) break;
    bool ok = true;
    for (uint64_t b : bytes) ok = ok && b % u == 0;
    for (const void* p : ptrs) ok = ok && aligned(p, u);
    if (ok) return u;
  }
  return es;
}

// Runs body with U bound to the unsigned type of `unit` bytes.
#define DW_DISPATCH_UNIT(env, unit, U, ...)                           \
  switch (unit) {                                                     \
    case 2: { using U = uint16_t; __VA_ARGS__; break; }               \
    case 4: { using U = uint32_t; __VA_ARGS__; break; }               \
    case 8: { using U = uint2; __VA_ARGS__; break; }                  \
    case 16: { using U = uint4; __VA_ARGS__; break; }                 \
    default: ::dw::fail(env, "INTERNAL", "unsupported copy unit");   \
  }

// out[i] = in[offset of i]: broadcast_to, and transposes that keep the innermost dimension.
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads) gatherKernel(U* out, const U* in, I n, Strided<I> s) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) out[i] = in[offsetA(i, s)];
}

// Gathers n elements of `es` bytes through (size, stride) dimensions (outermost first, strides in
// elements of `in`), in the widest unit the innermost dimension allows.
void launchGather(Napi::Env env, cudaStream_t s, void* out, const void* in, uint64_t n, size_t es, std::vector<uint64_t> size, std::vector<uint64_t> stride, const char* what) {
  if (n == 0) return;
  if (size.empty()) {  // a single element
    DW_CUDA(env, cudaMemcpyAsync(out, in, es, cudaMemcpyDeviceToDevice, s), std::string(what) + ": cudaMemcpyAsync");
    return;
  }
  if (size.size() == 1 && stride[0] == 1) {  // contiguous
    DW_CUDA(env, cudaMemcpyAsync(out, in, n * es, cudaMemcpyDeviceToDevice, s), std::string(what) + ": cudaMemcpyAsync");
    return;
  }
  size_t unit = es;
  if (stride.back() == 1) {
    std::vector<uint64_t> bytes{size.back() * es};
    for (size_t d = 0; d + 1 < size.size(); ++d) bytes.push_back(stride[d] * es);
    for (size_t u : {size_t(16), size_t(8), size_t(4)}) {
      if (u <= es) break;
      bool ok = aligned(out, u) && aligned(in, u);
      for (uint64_t b : bytes) ok = ok && b % u == 0;
      if (ok) {
        unit = u;
        break;
      }
    }
  }
  if (unit != es) {
    uint64_t k = unit / es;
    size.back() /= k;
    for (size_t d = 0; d + 1 < size.size(); ++d) stride[d] /= k;
    n /= k;
  }
  DW_DISPATCH_UNIT(env, unit, U, {
    if (n < kI32Limit)
      gatherKernel<U, uint32_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(in), uint32_t(n), toStrided<uint32_t>(size, stride, {}));
    else
      gatherKernel<U, uint64_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(in), n, toStrided<uint64_t>(size, stride, {}));
  });
  checkLaunch(env, what);
}

void broadcastToDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& os, const std::vector<uint64_t>& xs, const void* x, void* out) {
  uint64_t n = product(env, os, "out");
  size_t es = dtypeBytes(dt);
  std::vector<uint64_t> st = broadcastStrides(env, os, xs, "broadcastTo", "x");
  std::vector<Dim2> dims;
  for (size_t d = 0; d < os.size(); ++d) dims.push_back({os[d], st[d], 0});
  dims = collapse(dims);
  std::vector<uint64_t> size, stride;
  for (const Dim2& d : dims) {
    size.push_back(d.size);
    stride.push_back(d.a);
  }
  launchGather(env, s, out, x, n, es, size, stride, "broadcastTo");
}

// Transposes that move the innermost dimension: 32x32 tiles through shared memory, read along x's
// innermost dimension (I) and written along out's innermost dimension (O); the other dimensions
// are a batch, decomposed with their strides in x (a) and in out (b).
template <typename I>
struct TileParams {
  I nI, nO;        // sizes of x's innermost dimension and of out's innermost dimension
  I xStrideO;      // x stride of a step along out's innermost dimension
  I outStrideI;    // out stride of a step along x's innermost dimension
  I tilesI, tilesO, tiles;
  Strided<I> batch;
};

template <typename U, typename I>
__global__ void __launch_bounds__(256) transposeTileKernel(U* out, const U* in, TileParams<I> p) {
  __shared__ U tile[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y;  // blockDim (32, 8)
  for (I t = blockIdx.x; t < p.tiles; t += gridDim.x) {
    const I ti = t % p.tilesI;
    const I rest = t / p.tilesI;
    const I to = rest % p.tilesO;
    const I b = rest / p.tilesO;
    I inBase, outBase;
    offsetAB(b, p.batch, inBase, outBase);
    const I i0 = ti * 32, o0 = to * 32;
    inBase += o0 * p.xStrideO + i0;
    outBase += i0 * p.outStrideI + o0;
    if (i0 + tx < p.nI) {
      for (int k = ty; k < 32; k += 8)
        if (o0 + k < p.nO) tile[k][tx] = in[inBase + I(k) * p.xStrideO + tx];
    }
    __syncthreads();
    if (o0 + tx < p.nO) {
      for (int k = ty; k < 32; k += 8)
        if (i0 + k < p.nI) out[outBase + I(k) * p.outStrideI + tx] = tile[tx][k];
    }
    __syncthreads();
  }
}

template <typename U, typename I>
void launchTransposeTiles(Napi::Env env, cudaStream_t s, void* out, const void* in, uint64_t nI, uint64_t nO, uint64_t xStrideO, uint64_t outStrideI,
                          const std::vector<uint64_t>& bsize, const std::vector<uint64_t>& bx, const std::vector<uint64_t>& bo) {
  TileParams<I> p{};
  p.nI = I(nI);
  p.nO = I(nO);
  p.xStrideO = I(xStrideO);
  p.outStrideI = I(outStrideI);
  p.tilesI = I((nI + 31) / 32);
  p.tilesO = I((nO + 31) / 32);
  uint64_t batch = 1;
  for (uint64_t d : bsize) batch *= d;
  uint64_t tiles = uint64_t(p.tilesI) * p.tilesO * batch;
  p.tiles = I(tiles);
  p.batch = toStrided<I>(bsize, bx, bo);
  transposeTileKernel<U, I><<<gridFor(env, tiles, 1, 16), dim3(32, 8), 0, s>>>(static_cast<U*>(out), static_cast<const U*>(in), p);
}

void checkPerm(Napi::Env env, const std::vector<uint64_t>& perm) {
  const size_t rank = perm.size();
  std::vector<bool> seen(rank, false);
  for (size_t d = 0; d < rank; ++d) {
    if (perm[d] >= rank || seen[perm[d]])
      fail(env, "INVALID_ARGUMENT", "Expected a permutation of 0.." + std::to_string(static_cast<long long>(rank) - 1) + " for perm of transpose but received " + dimsStr(perm));
    seen[perm[d]] = true;
  }
}

void transposeDevice(Napi::Env env, cudaStream_t s, int dt, const std::vector<uint64_t>& xs, const std::vector<uint64_t>& permArg, const void* x, void* out) {
  checkPerm(env, permArg);
  const int rank = static_cast<int>(xs.size());
  uint64_t n = product(env, xs, "x");
  size_t es = dtypeBytes(dt);
  if (n == 0) return;

  // Collapse: drop size-1 dimensions, then merge runs of x's dimensions that stay adjacent and in
  // order in the output (they are one contiguous block in both).
  std::vector<int> newIndex(rank, -1);
  std::vector<uint64_t> kept;
  for (int d = 0; d < rank; ++d)
    if (xs[d] != 1) {
      newIndex[d] = static_cast<int>(kept.size());
      kept.push_back(xs[d]);
    }
  std::vector<int> perm;  // over kept dims, in output order
  for (int q = 0; q < rank; ++q)
    if (newIndex[permArg[q]] >= 0) perm.push_back(newIndex[permArg[q]]);
  struct Group {
    int first;
    uint64_t size;
  };
  std::vector<Group> groups;  // in output order
  for (size_t q = 0; q < perm.size(); ++q) {
    if (q > 0 && perm[q] == perm[q - 1] + 1) {
      groups.back().size *= kept[perm[q]];
    } else {
      groups.push_back({perm[q], kept[perm[q]]});
    }
  }
  // x's collapsed dimensions are the groups ordered by their first original dimension.
  std::vector<int> order(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) order[g] = static_cast<int>(g);
  std::sort(order.begin(), order.end(), [&](int l, int r) { return groups[l].first < groups[r].first; });
  const int R = static_cast<int>(groups.size());
  std::vector<int> P(R);  // P[q] = x dimension of output dimension q
  std::vector<uint64_t> X(R);
  for (int j = 0; j < R; ++j) {
    X[j] = groups[order[j]].size;
    P[order[j]] = j;
  }
  std::vector<uint64_t> xst = contiguousStrides(X);
  std::vector<uint64_t> O(R);
  for (int q = 0; q < R; ++q) O[q] = X[P[q]];
  std::vector<uint64_t> ost = contiguousStrides(O);

  if (R <= 1 || P[R - 1] == R - 1) {
    // The innermost dimension stays innermost (or nothing moves): a gather along out.
    std::vector<uint64_t> stride(R);
    for (int q = 0; q < R; ++q) stride[q] = xst[P[q]];
    launchGather(env, s, out, x, n, es, O, stride, "transpose");
    return;
  }
  int qI = 0;  // output position of x's innermost dimension
  for (int q = 0; q < R; ++q)
    if (P[q] == R - 1) qI = q;
  const uint64_t nI = X[R - 1], nO = O[R - 1];
  const uint64_t xStrideO = xst[P[R - 1]], outStrideI = ost[qI];
  std::vector<uint64_t> bsize, bx, bo;
  for (int q = 0; q < R - 1; ++q) {
    if (q == qI) continue;
    bsize.push_back(O[q]);
    bx.push_back(xst[P[q]]);
    bo.push_back(ost[q]);
  }
  // Tiles can exceed the element count by up to 31 per tile row, so size the index on tiles too.
  uint64_t tiles = ((nI + 31) / 32) * ((nO + 31) / 32) * (n / (nI * nO));
  bool narrow = n + 64 * (nI + nO) < kI32Limit && tiles < kI32Limit;
  if (es == 2) {
    if (narrow) launchTransposeTiles<uint16_t, uint32_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
    else launchTransposeTiles<uint16_t, uint64_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
  } else {
    if (narrow) launchTransposeTiles<uint32_t, uint32_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
    else launchTransposeTiles<uint32_t, uint64_t>(env, s, out, x, nI, nO, xStrideO, outStrideI, bsize, bx, bo);
  }
  checkLaunch(env, "transpose");
}

// dst[r * dstPitch + c] = src[r * srcPitch + c] for r < rows, c < width (in units).
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads) copyRowsKernel(U* dst, I dstPitch, const U* src, I srcPitch, I rows, I width) {
  const I n = rows * width;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    const I r = i / width, c = i - r * width;
    dst[r * dstPitch + c] = src[r * srcPitch + c];
  }
}

// Copies `rows` rows of `width` elements between pitched layouts (all counts in elements of es bytes).
void copyRows(Napi::Env env, cudaStream_t s, void* dst, uint64_t dstPitch, const void* src, uint64_t srcPitch, uint64_t rows, uint64_t width, size_t es, const char* what) {
  if (rows == 0 || width == 0) return;
  if (rows == 1 || (dstPitch == width && srcPitch == width)) {
    DW_CUDA(env, cudaMemcpyAsync(dst, src, rows * width * es, cudaMemcpyDeviceToDevice, s), std::string(what) + ": cudaMemcpyAsync");
    return;
  }
  size_t unit = unitFor(es, {width * es, dstPitch * es, srcPitch * es}, {dst, src});
  uint64_t k = unit / es;
  width /= k;
  dstPitch /= k;
  srcPitch /= k;
  uint64_t n = rows * width;
  uint64_t span = std::max((rows - 1) * dstPitch, (rows - 1) * srcPitch) + width;
  DW_DISPATCH_UNIT(env, unit, U, {
    if (span < kI32Limit && n < kI32Limit)
      copyRowsKernel<U, uint32_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(dst), uint32_t(dstPitch), static_cast<const U*>(src), uint32_t(srcPitch), uint32_t(rows), uint32_t(width));
    else
      copyRowsKernel<U, uint64_t><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<U*>(dst), dstPitch, static_cast<const U*>(src), srcPitch, rows, width);
  });
  checkLaunch(env, what);
}

// Sizes checked by the caller (start + len <= size).
void sliceDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t size, uint64_t inner, uint64_t start, uint64_t len, const void* x, void* out) {
  size_t es = dtypeBytes(dt);
  copyRows(env, s, out, len * inner, static_cast<const uint8_t*>(x) + start * inner * es, size * inner, outer, len * inner, es, "slice");
}

// out row r (outWidth units) = zeros except [lo, lo + gWidth) = g row r.
template <typename U, typename I>
__global__ void __launch_bounds__(kThreads) sliceBackwardKernel(U* out, const U* g, I rows, I outWidth, I lo, I gWidth) {
  const I n = rows * outWidth;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    const I r = i / outWidth, c = i - r * outWidth - lo;  // wraps (huge) left of the slice
    out[i] = c < gWidth ? g[r * gWidth + c] : zeroUnit<U>();
  }
}

void sliceBackwardDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t size, uint64_t inner, uint64_t start, uint64_t len, const void* g, void* out) {
  size_t es = dtypeBytes(dt);
  if (outer == 0 || size == 0 || inner == 0) return;
  uint64_t outWidth = size * inner, lo = start * inner, gWidth = len * inner;
  size_t unit = unitFor(es, {outWidth * es, lo * es, gWidth * es}, {out, g});
  uint64_t k = unit / es;
  outWidth /= k;
  lo /= k;
  gWidth /= k;
  uint64_t nu = outer * outWidth;
  DW_DISPATCH_UNIT(env, unit, U, {
    if (nu < kI32Limit)
      sliceBackwardKernel<U, uint32_t><<<gridFor(env, nu, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(g), uint32_t(outer), uint32_t(outWidth), uint32_t(lo), uint32_t(gWidth));
    else
      sliceBackwardKernel<U, uint64_t><<<gridFor(env, nu, kThreads), kThreads, 0, s>>>(static_cast<U*>(out), static_cast<const U*>(g), outer, outWidth, lo, gWidth);
  });
  checkLaunch(env, "sliceBackward");
}

void concatDevice(Napi::Env env, cudaStream_t s, int dt, uint64_t outer, uint64_t inner, const std::vector<uint64_t>& sizes, const std::vector<const void*>& xs, void* out) {
  size_t es = dtypeBytes(dt);
  uint64_t total = 0;
  for (uint64_t v : sizes) total += v;
  uint64_t offset = 0;
  for (size_t j = 0; j < sizes.size(); ++j) {
    copyRows(env, s, static_cast<uint8_t*>(out) + offset * inner * es, total * inner, xs[j], sizes[j] * inner, outer, sizes[j] * inner, es, "concat");
    offset += sizes[j];
  }
}

}  // namespace

Napi::Value Reshape(const Napi::CallbackInfo& info) {
  const abi::ReshapeArgs a = abi::readReshape(info);
  Napi::Env env = info.Env();
  const uint64_t n = a.n;
  size_t es = dtypeBytes(a.dtype);
  const void* x = a.x.ptr<void>(env, n, es);
  void* out = a.out.ptr<void>(env, n, es);
  if (n != 0 && x != out)
    DW_CUDA(env, cudaMemcpyAsync(out, x, n * es, cudaMemcpyDeviceToDevice, a.stream), "reshape: cudaMemcpyAsync (" + num(n * es) + " bytes)");
  return env.Undefined();
}

Napi::Value BroadcastTo(const Napi::CallbackInfo& info) {
  const abi::BroadcastToArgs a = abi::readBroadcastTo(info);
  Napi::Env env = info.Env();
  const std::vector<uint64_t>& os = a.outShape;
  const std::vector<uint64_t>& xs = a.xShape;
  uint64_t n = product(env, os, "out"), nx = product(env, xs, "x");
  broadcastStrides(env, os, xs, "broadcastTo", "x");
  size_t es = dtypeBytes(a.dtype);
  const void* x = a.x.ptr<void>(env, nx, es);
  void* out = a.out.ptr<void>(env, n, es);
  broadcastToDevice(env, a.stream, a.dtype, os, xs, x, out);
  return env.Undefined();
}

Napi::Value Transpose(const Napi::CallbackInfo& info) {
  const abi::TransposeArgs a = abi::readTranspose(info);
  Napi::Env env = info.Env();
  const std::vector<uint64_t>& xs = a.xShape;
  checkPerm(env, a.perm);
  uint64_t n = product(env, xs, "x");
  size_t es = dtypeBytes(a.dtype);
  const void* x = a.x.ptr<void>(env, n, es);
  void* out = a.out.ptr<void>(env, n, es);
  transposeDevice(env, a.stream, a.dtype, xs, a.perm, x, out);
  return env.Undefined();
}

Napi::Value Slice(const Napi::CallbackInfo& info) {
  const abi::SliceArgs a = abi::readSlice(info);
  Napi::Env env = info.Env();
  const uint64_t outer = a.outer, size = a.size, inner = a.inner, start = a.start, len = a.length;
  if (start > size || len > size - start)
    fail(env, "SHAPE_MISMATCH", "Expected start + length <= " + num(size) + " for slice but received start " + num(start) + ", length " + num(len));
  uint64_t nx = product(env, {outer, size, inner}, "x"), n = product(env, {outer, len, inner}, "out");
  size_t es = dtypeBytes(a.dtype);
  const void* x = a.x.ptr<void>(env, nx, es);
  void* out = a.out.ptr<void>(env, n, es);
  sliceDevice(env, a.stream, a.dtype, outer, size, inner, start, len, x, out);
  return env.Undefined();
}

Napi::Value SliceBackward(const Napi::CallbackInfo& info) {
  const abi::SliceBackwardArgs a = abi::readSliceBackward(info);
  Napi::Env env = info.Env();
  const uint64_t outer = a.outer, size = a.size, inner = a.inner, start = a.start, len = a.length;
  if (start > size || len > size - start)
    fail(env, "SHAPE_MISMATCH", "Expected start + length <= " + num(size) + " for sliceBackward but received start " + num(start) + ", length " + num(len));
  uint64_t n = product(env, {outer, size, inner}, "out"), ng = product(env, {outer, len, inner}, "g");
  size_t es = dtypeBytes(a.dtype);
  const void* g = a.g.ptr<void>(env, ng, es);
  void* out = a.out.ptr<void>(env, n, es);
  sliceBackwardDevice(env, a.stream, a.dtype, outer, size, inner, start, len, g, out);
  return env.Undefined();
}

Napi::Value Concat(const Napi::CallbackInfo& info) {
  const abi::ConcatArgs a = abi::readConcat(info);  // k <= 2^20, k sizes and k tensors, counted
  Napi::Env env = info.Env();
  const uint64_t outer = a.outer, inner = a.inner, k = a.k;
  if (k == 0) fail(env, "INVALID_ARGUMENT", "Expected at least 1 input for concat but received 0");
  uint64_t total = 0;
  for (uint64_t j = 0; j < k; ++j) {
    total += a.sizes[j];
    if (total > static_cast<uint64_t>(kMaxSafeInt)) fail(env, "INVALID_ARGUMENT", "Expected a total size along the concat axis of at most 2^53 - 1 but received more");
  }
  size_t es = dtypeBytes(a.dtype);
  std::vector<const void*> xs(k);
  for (uint64_t j = 0; j < k; ++j) xs[j] = a.xs[j].ptr<void>(env, product(env, {outer, a.sizes[j], inner}, "an input of concat"), es);
  void* out = a.out.ptr<void>(env, product(env, {outer, total, inner}, "out"), es);
  concatDevice(env, a.stream, a.dtype, outer, inner, a.sizes, xs, out);
  return env.Undefined();
}

}  // namespace dw::tensor

// cast_multi (tensor family; see tensor.cpp): cast of many tensors in a few launches.
//
//   castMulti(stream, from, to, count, then per tensor: n, x, out)
//       each out[i] = x[i] converted from float storage `from` to float storage `to` (f32, bf16,
//       f16), exactly as cast (cast.cu): the value as f32, rounded to nearest even on store.
//
// Multi-tensor apply (as adamwMulti): up to kCmBatch tensors per launch, passed by value as the
// kernel's parameters (so a captured CUDA graph holds them); each block converts one chunk of
// kCmChunk elements of one tensor, 4 elements at a time where both pointers allow it. The
// compiled step uses it for autocast's f32 -> bf16 weight copies (passes/fuse-casts.ts), one launch
// per 128 weights instead of one per weight.
#include "ops/tensor/tensor.h"

#include "common/dtype.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <algorithm>
#include <string>
#include <vector>

namespace dw::tensor {
namespace {

constexpr int kCmBatch = 128;
constexpr int64_t kCmChunk = 8192;
constexpr int kCmThreads = 256;

struct CmBatch {
  const void* x[kCmBatch];
  void* out[kCmBatch];
  int64_t n[kCmBatch];
  int start[kCmBatch + 1];  // first block of tensor k (a prefix sum)
  unsigned char vec[kCmBatch];
  int count;
};
static_assert(sizeof(CmBatch) < 4000, "kernel parameters are limited to 4 KiB");

// Vectors of 4 elements a thread converts per pass of a full chunk: every load of the pass is
// issued before the first store (the pointers are not __restrict__-provably apart, so a loop of
// load-convert-store waits on each load in turn; at one 16-byte load in flight per thread the kernel
// ran at about a third of a copy's bandwidth on an H200).
constexpr int kCmVecs = kCmChunk / 4 / kCmThreads;  // 8
static_assert(kCmChunk % (4 * kCmThreads) == 0, "a full chunk is whole passes of 4-element vectors");

template <typename F, typename T, bool VEC>
__device__ __forceinline__ void castRange(const F* x, T* out, int64_t begin, int64_t end) {
  int64_t done = begin;
  if constexpr (VEC) {
    if (end - begin == kCmChunk) {
      const Pack<F, 4>* xs = reinterpret_cast<const Pack<F, 4>*>(x + begin);
      Pack<F, 4> v[kCmVecs];
#pragma unroll
      for (int i = 0; i < kCmVecs; i++) v[i] = xs[threadIdx.x + i * kCmThreads];
#pragma unroll
      for (int i = 0; i < kCmVecs; i++) {
        float f[4];
#pragma unroll
        for (int k = 0; k < 4; k++) f[k] = toF(v[i].v[k]);
        storeF<T, 4>(out + begin + (threadIdx.x + i * kCmThreads) * 4, f);
      }
      return;
    }
    const int64_t c0 = begin / 4, c1 = c0 + (end - begin) / 4;
    for (int64_t c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
      float f[4];
      loadF<F, 4>(x + c * 4, f);
      storeF<T, 4>(out + c * 4, f);
    }
    done = c1 * 4;
  }
  for (int64_t i = done + threadIdx.x; i < end; i += blockDim.x) out[i] = fromF<T>(toF(x[i]));
}

template <typename F, typename T>
__global__ void __launch_bounds__(kCmThreads) castMultiK(const CmBatch b) {
  const int blk = static_cast<int>(blockIdx.x);
  int lo = 0, hi = b.count - 1;  // the last k with start[k] <= blk
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (b.start[mid] <= blk) lo = mid;
    else hi = mid - 1;
  }
  const int k = lo;
  const int64_t begin = static_cast<int64_t>(blk - b.start[k]) * kCmChunk;
  const int64_t end = begin + kCmChunk < b.n[k] ? begin + kCmChunk : b.n[k];
  const F* x = static_cast<const F*>(b.x[k]);
  T* out = static_cast<T*>(b.out[k]);
  if (b.vec[k]) castRange<F, T, true>(x, out, begin, end);
  else castRange<F, T, false>(x, out, begin, end);
}

}  // namespace

// Every tensor is checked before anything is launched (ranges, and overlaps below).
Napi::Value CastMulti(const Napi::CallbackInfo& info) {
  const abi::CastMultiArgs a = abi::readCastMulti(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t count = a.count;
  const size_t fb = dtypeBytes(a.from), tb = dtypeBytes(a.to);
  std::vector<const void*> xs(count);
  std::vector<void*> outs(count);
  for (uint64_t k = 0; k < count; k++) {
    const abi::CastMultiArgs_Tensors& e = a.tensors[k];
    xs[k] = e.x.ptr<void>(env, e.n, fb);
    outs[k] = e.out.ptr<void>(env, e.n, tb);
  }
  // No output may overlap an input or another output (blocks run in any order); inputs may share
  // memory. A sweep over the ranges sorted by start (n log n, for any tensor count): a range that
  // starts before the furthest end seen so far overlaps the range that reached it.
  struct Range {
    uintptr_t begin, end;
    bool out;
    uint64_t k;
  };
  std::vector<Range> rs;
  rs.reserve(2 * count);
  for (uint64_t k = 0; k < count; k++) {
    const uint64_t n = a.tensors[k].n;
    if (n == 0) continue;
    rs.push_back({reinterpret_cast<uintptr_t>(xs[k]), reinterpret_cast<uintptr_t>(xs[k]) + n * fb, false, k});
    rs.push_back({reinterpret_cast<uintptr_t>(outs[k]), reinterpret_cast<uintptr_t>(outs[k]) + n * tb, true, k});
  }
  std::sort(rs.begin(), rs.end(), [](const Range& x, const Range& y) { return x.begin < y.begin || (x.begin == y.begin && x.out < y.out); });
  const Range* furthest = nullptr;     // of every range so far
  const Range* furthestOut = nullptr;  // of the outputs so far
  auto name = [](const Range& r) { return std::string(r.out ? "output " : "input ") + std::to_string(r.k); };
  for (const Range& r : rs) {
    const Range* hit = r.out ? furthest : furthestOut;
    if (hit && r.begin < hit->end)
      fail(env, "INVALID_ARGUMENT", "Expected the outputs of cast_multi not to overlap any of its tensors, but " + name(r) + " overlaps " + name(*hit));
    if (!furthest || r.end > furthest->end) furthest = &r;
    if (r.out && (!furthestOut || r.end > furthestOut->end)) furthestOut = &r;
  }
  DW_DISPATCH_FLOAT(env, a.from, F, {
    DW_DISPATCH_FLOAT(env, a.to, T, {
      CmBatch batch{};
      auto launch = [&]() {
        if (batch.count == 0) return;
        castMultiK<F, T><<<static_cast<unsigned>(batch.start[batch.count]), kCmThreads, 0, s>>>(batch);
        checkLaunch(env, "cast_multi");
        batch = CmBatch{};
      };
      for (uint64_t k = 0; k < count; k++) {
        const uint64_t n = a.tensors[k].n;
        if (n == 0) continue;
        const uint64_t blocks = (n + kCmChunk - 1) / kCmChunk;
        if (blocks > 0x7fffffffu) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 chunks of " + std::to_string(kCmChunk) + " elements per tensor for cast_multi");
        if (batch.count == kCmBatch || static_cast<uint64_t>(batch.start[batch.count]) + blocks > 0x7fffffffu) launch();
        const int c = batch.count;
        batch.x[c] = xs[k];
        batch.out[c] = outs[k];
        batch.n[c] = static_cast<int64_t>(n);
        batch.vec[c] = aligned(xs[k], 4 * sizeof(F)) && aligned(outs[k], 4 * sizeof(T)) ? 1 : 0;
        batch.start[c + 1] = batch.start[c] + static_cast<int>(blocks);
        batch.count = c + 1;
      }
      launch();
    });
  });
  return env.Undefined();
}

}  // namespace dw::tensor

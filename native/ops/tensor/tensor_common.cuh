// Helpers shared by the tensor family's files: shape arithmetic and messages, grid sizes, strided
// index decomposition (Strided, offsetA, offsetAB) and the collapse of broadcast dimensions.
#pragma once
#include "common/dtype.h"
#include "common/launch.h"

#include <cstdint>
#include <string>
#include <vector>

namespace dw::tensor {

constexpr int kMaxRank = 8;
constexpr unsigned kThreads = 256;
constexpr uint64_t kI32Limit = uint64_t(1) << 31;  // 32-bit indexing below this many elements

inline std::string num(uint64_t v) { return std::to_string(v); }

inline std::string dimsStr(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + num(s[i]);
  return r + "]";
}

// Product of sizes, failing instead of overflowing past 2^53.
inline uint64_t product(Napi::Env env, const std::vector<uint64_t>& s, const char* what) {
  for (uint64_t d : s)
    if (d == 0) return 0;  // empty, however large the other dimensions
  uint64_t p = 1;
  for (uint64_t d : s) {
    if (p > static_cast<uint64_t>(kMaxSafeInt) / d)
      fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received the shape " + dimsStr(s));
    p *= d;
  }
  return p;
}

inline std::vector<uint64_t> contiguousStrides(const std::vector<uint64_t>& s) {
  std::vector<uint64_t> st(s.size());
  uint64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Blocks for `work` items at `perBlock` items a block, capped at `perSm` resident blocks per SM
// (grid-stride loops do the rest).
inline unsigned gridFor(Napi::Env env, uint64_t work, uint64_t perBlock, unsigned perSm = 8) {
  uint64_t b = (work + perBlock - 1) / perBlock;
  uint64_t cap = uint64_t(smCount(env)) * perSm;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// Sizes (row-major, index 0 outermost) with one or two stride sets: the offset of flat index i of
// `size` in each strided tensor.
template <typename I>
struct Strided {
  int rank;
  I size[kMaxRank];
  I a[kMaxRank];
  I b[kMaxRank];
};

template <typename I>
__device__ __forceinline__ I offsetA(I i, const Strided<I>& s) {
  I off = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < s.rank) {
      I q = i / s.size[d];
      off += (i - q * s.size[d]) * s.a[d];
      i = q;
    }
  }
  return off;
}

template <typename I>
__device__ __forceinline__ void offsetAB(I i, const Strided<I>& s, I& oa, I& ob) {
  I x = 0, y = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < s.rank) {
      I q = i / s.size[d];
      I c = i - q * s.size[d];
      x += c * s.a[d];
      y += c * s.b[d];
      i = q;
    }
  }
  oa = x;
  ob = y;
}

template <typename I>
Strided<I> toStrided(const std::vector<uint64_t>& size, const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  Strided<I> s{};
  s.rank = static_cast<int>(size.size());
  for (size_t d = 0; d < size.size(); ++d) {
    s.size[d] = static_cast<I>(size[d]);
    s.a[d] = static_cast<I>(a[d]);
    s.b[d] = b.empty() ? I(0) : static_cast<I>(b[d]);
  }
  return s;
}

// One output dimension with the strides of each operand (0 where broadcast).
struct Dim2 {
  uint64_t size, a, b;
};

// Drops size-1 dimensions and merges neighbours that are contiguous in every operand.
inline std::vector<Dim2> collapse(std::vector<Dim2> dims) {
  std::vector<Dim2> r;
  for (const Dim2& d : dims) {
    if (d.size == 1) continue;
    if (!r.empty()) {
      Dim2& o = r.back();
      if (o.a == d.a * d.size && o.b == d.b * d.size) {
        o.size *= d.size;
        o.a = d.a;
        o.b = d.b;
        continue;
      }
    }
    r.push_back(d);
  }
  return r;
}

// Strides of `in` (right-aligned to out's rank) as seen from out's dimensions: 0 where broadcast.
inline std::vector<uint64_t> broadcastStrides(Napi::Env env, const std::vector<uint64_t>& out, const std::vector<uint64_t>& in, const char* fn, const char* name) {
  for (size_t d = 0; d < out.size(); ++d) {
    if (in[d] != out[d] && in[d] != 1)
      fail(env, "SHAPE_MISMATCH", std::string("Expected ") + num(out[d]) + " or 1 for dimension " + std::to_string(d) + " of " + name + " " + dimsStr(in) + " (output " + dimsStr(out) + ") in " + fn + " but received " + num(in[d]));
  }
  std::vector<uint64_t> st = contiguousStrides(in);
  for (size_t d = 0; d < out.size(); ++d)
    if (in[d] == 1) st[d] = 0;
  return st;
}

// fill's kernel (elementwise.cu) over n elements of `out`, 16-byte packs when vec, on fill's grid;
// reduce.cu fills empty groups with it. The caller checks the launch.
void launchFill(Napi::Env env, cudaStream_t s, int dt, uint64_t n, float value, void* out, bool vec);

}  // namespace dw::tensor

// The epilogues of the grouped GEMM (ABI groupedGemm's `epilogue`; ir's fused ops
// grouped_matmul_gelu, grouped_matmul_dgelu and grouped_matmul_swiglu): what a kernel writes for
// the FP32 product v (and, for SwiGLU, the second product u) at element i of the output.
//   none    out = v
//   gelu    aux = pre = round(v); out = gelu(pre)
//   dgelu   out = round(v) · gelu'(aux)        (aux: the pre-activation, read)
//   swiglu  aux = gate = round(v); aux2 = up = round(u); out = silu(gate) · up
// round() is the storage dtype's rounding: every epilogue computes from the product as the unfused
// graph stored it, so the fused result is the unfused one's (ir's references say so). Shared by the
// general kernel (gemm/grouped_gemm.cu, one element at a time) and the Hopper kernel
// (gemm/grouped_gemm_sm90.cuh, two adjacent columns at a time).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/activations.cuh"
#include "common/dtype.h"

namespace dw {
namespace grouped {

enum Epilogue : int { kEpiNone = 0, kEpiGelu = 1, kEpiDgelu = 2, kEpiSwiglu = 3 };

// The extra tensors of an epilogue (null where it has none), in the output's dtype.
template <typename T>
struct EpiPtrs {
  T* aux;   // gelu: pre (written); dgelu: pre (read); swiglu: gate (written)
  T* aux2;  // swiglu: up (written)
};

template <typename T>
__device__ __forceinline__ float rounded(float v) {
  return toF(fromF<T>(v));
}

// Element i of the output: v the product, u the second product (SwiGLU's up; ignored otherwise).
template <typename T, int Epi>
__device__ __forceinline__ void storeOne(T* out, long long i, float v, float u, const EpiPtrs<T>& p) {
  if constexpr (Epi == kEpiNone) {
    out[i] = fromF<T>(v);
  } else if constexpr (Epi == kEpiGelu) {
    const T pre = fromF<T>(v);
    p.aux[i] = pre;
    out[i] = fromF<T>(geluF(toF(pre)));
  } else if constexpr (Epi == kEpiDgelu) {
    out[i] = fromF<T>(rounded<T>(v) * geluGradF(toF(p.aux[i])));
  } else {
    const T gate = fromF<T>(v), up = fromF<T>(u);
    p.aux[i] = gate;
    p.aux2[i] = up;
    out[i] = fromF<T>(siluF(toF(gate)) * toF(up));
  }
}

// Elements i and i + 1 (i even, the row's length even: 4-byte aligned pairs) of a 16-bit output.
template <typename T, int Epi>
__device__ __forceinline__ void storePair(T* out, long long i, float v0, float v1, float u0, float u1, const EpiPtrs<T>& p) {
  using T2 = typename std::conditional<std::is_same<T, __nv_bfloat16>::value, __nv_bfloat162, __half2>::type;
  const auto pack = [](float a, float b) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) return __floats2bfloat162_rn(a, b);
    else return __floats2half2_rn(a, b);
  };
  const auto lo = [](T2 x) { return toF(x.x); };
  const auto hi = [](T2 x) { return toF(x.y); };
  T2* const o = reinterpret_cast<T2*>(out + i);
  if constexpr (Epi == kEpiNone) {
    *o = pack(v0, v1);
  } else if constexpr (Epi == kEpiGelu) {
    const T2 pre = pack(v0, v1);
    *reinterpret_cast<T2*>(p.aux + i) = pre;
    *o = pack(geluF(lo(pre)), geluF(hi(pre)));
  } else if constexpr (Epi == kEpiDgelu) {
    const T2 prod = pack(v0, v1), pre = *reinterpret_cast<const T2*>(p.aux + i);
    *o = pack(lo(prod) * geluGradF(lo(pre)), hi(prod) * geluGradF(hi(pre)));
  } else {
    const T2 gate = pack(v0, v1), up = pack(u0, u1);
    *reinterpret_cast<T2*>(p.aux + i) = gate;
    *reinterpret_cast<T2*>(p.aux2 + i) = up;
    *o = pack(siluF(lo(gate)) * lo(up), siluF(hi(gate)) * hi(up));
  }
}

// The dgelu epilogue's pair with its pre-activation already loaded (`preBits`: the pair's two 16-bit
// values as one word). The Hopper kernels load a row's pre values before storing any of its outputs:
// loaded one pair at a time, each load would wait behind the previous pair's store (the compiler
// cannot tell out from aux), a global round trip per pair.
template <typename T>
__device__ __forceinline__ void storeDgelu(T* out, long long i, float v0, float v1, uint32_t preBits) {
  using T2 = typename std::conditional<std::is_same<T, __nv_bfloat16>::value, __nv_bfloat162, __half2>::type;
  const auto pack = [](float a, float b) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) return __floats2bfloat162_rn(a, b);
    else return __floats2half2_rn(a, b);
  };
  T2 pre;
  static_assert(sizeof(T2) == sizeof(uint32_t), "a pair of 16-bit values is one word");
  memcpy(&pre, &preBits, sizeof(pre));
  const T2 prod = pack(v0, v1);
  *reinterpret_cast<T2*>(out + i) = pack(toF(prod.x) * geluGradF(toF(pre.x)), toF(prod.y) * geluGradF(toF(pre.y)));
}

// Loads the pre-activation pair at element i (i even) for storeDgelu, through the read-only path.
template <typename T>
__device__ __forceinline__ uint32_t loadPrePair(const T* aux, long long i) {
  return __ldg(reinterpret_cast<const unsigned int*>(aux + i));
}

}  // namespace grouped
}  // namespace dw

// Online softmax statistics, shared by the softmax and cross_entropy kernels of the nn family.
#pragma once
#include "common/rows.cuh"

namespace dw::nn {

// Online softmax statistics: M = the running max (raw units) and s = sum(2^((x - M) * log2(e))),
// one subtraction, one multiplication and one MUFU exp2 per element. x - M is exactly 0 at the max
// and stays exact-or-huge for masked entries (a -1e30 causal mask gives 2^-1.4e30 = 0); scaling M
// by log2(e) first and cancelling with an FMA, as an earlier version did, leaves a rounding residue
// of about 1e23 at such magnitudes, which exp2 turns into inf and the merge into NaN.
// -inf elements add nothing (a row of only -inf keeps s = 0 and gives NaN, as exp(-inf - -inf) does
// in the reference); a NaN element makes s NaN, so the whole row is NaN as in the reference.
// exp2 is the hardware approximation (relative error about 2^-22; results below 2^-126, i.e.
// probabilities under 1e-38, flush to 0): the library exp2f spends several more instructions per
// element on subnormal results, and with it the bf16 kernels were bound by instructions, not memory.
// The log-sum-exp of a row is M + ln(s).
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// exp(x - M) for an element, given the statistics' M.
__device__ __forceinline__ float msExp(float x, float M) { return ex2((x - M) * kLog2e); }

template <int V>
__device__ __forceinline__ void msChunk(float& M, float& s, const float (&v)[V]) {
  float cm = v[0];
#pragma unroll
  for (int k = 1; k < V; k++) cm = fmaxf(cm, v[k]);
  if (cm > M) {
    s *= msExp(M, cm);
    M = cm;
  }
  // While everything so far is -inf (M = -inf), shift by 0 instead: -inf elements then add
  // 2^-inf = 0 rather than 2^(-inf + inf) = NaN, and NaN elements still add NaN.
  const float shift = M == -INFINITY ? 0.f : M;
#pragma unroll
  for (int k = 0; k < V; k++) s += msExp(v[k], shift);
}

// Merge two (M, s) pairs; symmetric in its arguments, bit for bit.
__device__ __forceinline__ void msMerge(float& M, float& s, float M2, float s2) {
  const float mm = fmaxf(M, M2);
  const float a = M == mm ? s : s * msExp(M, mm);
  const float b = M2 == mm ? s2 : s2 * msExp(M2, mm);
  M = mm;
  s = a + b;
}

__device__ __forceinline__ void blockMaxSum(float& m, float& s, float2* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(kFull, m, o);
    const float s2 = __shfl_xor_sync(kFull, s, o);
    msMerge(m, s, m2, s2);
  }
  const int nw = blockDim.x >> 5;
  if (nw == 1) return;
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = make_float2(m, s);
  __syncthreads();
  float mm = -INFINITY, ss = 0.f;
  for (int i = 0; i < nw; i++) msMerge(mm, ss, sh[i].x, sh[i].y);
  __syncthreads();
  m = mm;
  s = ss;
}

}  // namespace dw::nn

// SparseK's block selection on the GPU (any sm_80 and up; on sm_100 compiled, never run here): the
// MoBA score of every (query block, key block) pair of one key/value head, and the top-k of each
// query block, without an S × S (or nB × nB) array in global memory. Two kernels:
//
//   means   a CTA per (block i, kv head, batch): qbar_i, the mean of the group's query rows of block i
//           (G heads × up to bs rows), and kbar_i, the mean of its key rows; f32 [B, Hkv, nB, D]
//           each, summed in a fixed order (deterministic).
//   select  a CTA per (QT query blocks, kv head, batch), 256 threads: the scores of its QT query
//           blocks against every candidate key block (causal: j <= i) into shared memory (QT × nB
//           f32, plus a taken flag per pair), then one warp per query block: the always-on blocks
//           (the diagonal, the window before it, optionally block 0), then the best remaining ones by
//           repeated warp arg-max, then the chosen blocks written in ascending order, -1 after them.
//           Memory O(B·Hkv·nB·topK) out, O(QT·nB) shared per CTA.
//
// The order (the op's tie rule, ops/sparsek.ts): higher score first; equal scores: the lower block
// index; a NaN score ranks below every number (among NaNs, the lower index). Scores are f32 here and
// float64 in the reference: the two agree except where two scores lie within f32 rounding of each
// other (the tests allow exactly that).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace dw {
namespace attention {
namespace sparsek {

struct SelectArgs {
  const void* q;  // [B, H, S, D] at the given strides (element (b, h, s, d) at b·qs.b + h·qs.h + s·qs.s + d)
  const void* k;
  int64_t qsb, qsh, qss, ksb, ksh, kss;
  float* qbar;  // f32 [B, Hkv, nB, D]
  float* kbar;
  int* idx;  // i32 [B, Hkv, nB, topK]
  int B, H, Hkv, S, D, bs, nB, topK, window, first, causal;
};

constexpr int kSelectThreads = 256;

template <typename T>
__global__ void __launch_bounds__(128) meansKernel(SelectArgs a) {
  const int i = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int G = a.H / a.Hkv, r0 = i * a.bs, r1 = min(a.S, r0 + a.bs), rows = r1 - r0;
  const T* q = static_cast<const T*>(a.q) + b * a.qsb + int64_t(hk) * G * a.qsh;
  const T* k = static_cast<const T*>(a.k) + b * a.ksb + hk * a.ksh;
  float* qo = a.qbar + ((int64_t(b) * a.Hkv + hk) * a.nB + i) * a.D;
  float* ko = a.kbar + ((int64_t(b) * a.Hkv + hk) * a.nB + i) * a.D;
  for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
    float sq = 0.f, sk = 0.f;
    for (int g = 0; g < G; ++g)
#pragma unroll 8
      for (int r = r0; r < r1; ++r) sq += float(q[g * a.qsh + r * a.qss + d]);
#pragma unroll 8
    for (int r = r0; r < r1; ++r) sk += float(k[r * a.kss + d]);
    qo[d] = sq / float(G * rows);
    ko[d] = sk / float(rows);
  }
}

// Is (s1, i1) ranked before (s2, i2)? (The tie rule above.)
__device__ __forceinline__ bool better(float s1, int i1, float s2, int i2) {
  const bool n1 = s1 != s1, n2 = s2 != s2;
  if (n1 != n2) return n2;
  if (!n1 && s1 != s2) return s1 > s2;
  return i1 < i2;
}

// Dynamic shared memory: qbar rows [QT][D] f32, scores [QT][nB] f32, taken [QT][nB] bytes.
template <int QT, int D>
__global__ void __launch_bounds__(kSelectThreads) selectKernel(SelectArgs a) {
  extern __shared__ __align__(16) uint8_t smem[];
  float* qs = reinterpret_cast<float*>(smem);
  float* sc = qs + QT * D;
  uint8_t* taken = reinterpret_cast<uint8_t*>(sc + QT * a.nB);
  const int i0 = blockIdx.x * QT, hk = blockIdx.y, b = blockIdx.z;
  const int nq = min(QT, a.nB - i0);
  const int64_t head = int64_t(b) * a.Hkv + hk;
  const float* qbar = a.qbar + (head * a.nB + i0) * D;
  const float4* kbar = reinterpret_cast<const float4*>(a.kbar + head * a.nB * D);
  for (int e = threadIdx.x; e < QT * D; e += kSelectThreads) qs[e] = e < nq * D ? qbar[e] : 0.f;
  __syncthreads();
  const int jEnd = a.causal ? i0 + nq : a.nB;  // candidates of any of the QT blocks: j < jEnd
  for (int j = threadIdx.x; j < jEnd; j += kSelectThreads) {
    float acc[QT];
#pragma unroll
    for (int t = 0; t < QT; ++t) acc[t] = 0.f;
    const float4* kr = kbar + int64_t(j) * (D / 4);
#pragma unroll 4
    for (int d4 = 0; d4 < D / 4; ++d4) {
      const float4 kv = kr[d4];
#pragma unroll
      for (int t = 0; t < QT; ++t) {
        const float4 qv = reinterpret_cast<const float4*>(qs + t * D)[d4];
        acc[t] = fmaf(kv.x, qv.x, fmaf(kv.y, qv.y, fmaf(kv.z, qv.z, fmaf(kv.w, qv.w, acc[t]))));
      }
    }
#pragma unroll
    for (int t = 0; t < QT; ++t) {
      sc[t * a.nB + j] = acc[t];
      taken[t * a.nB + j] = 0;
    }
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int t = warp; t < nq; t += kSelectThreads / 32) {
    const int i = i0 + t;
    const int nC = a.causal ? i + 1 : a.nB;  // candidates 0 .. nC - 1
    float* s = sc + t * a.nB;
    uint8_t* tk = taken + t * a.nB;
    int forced = 0;
    for (int base = 0; base < nC; base += 32) {  // warp-uniform trip count: the ballot needs every lane
      const int j = base + lane;
      const bool f = j < nC && ((j > i - a.window && j <= i) || (a.first && j == 0));
      if (j < nC) tk[j] = f ? 1 : 0;
      forced += __popc(__ballot_sync(0xffffffffu, f));
    }
    const int want = min(a.topK, nC) - forced;
    __syncwarp();
    for (int r = 0; r < want; ++r) {
      float bs = NAN;
      int bi = 0x7fffffff;
      for (int j = lane; j < nC; j += 32)
        if (!tk[j] && better(s[j], j, bs, bi)) bs = s[j], bi = j;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float os = __shfl_xor_sync(0xffffffffu, bs, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (better(os, oi, bs, bi)) bs = os, bi = oi;
      }
      if (lane == 0 && bi < nC) tk[bi] = 1;  // always true: `want` never exceeds what is left
      __syncwarp();
    }
    int* out = a.idx + (head * a.nB + i) * a.topK;
    int pos = 0;
    for (int base = 0; base < nC; base += 32) {
      const int j = base + lane;
      const bool on = j < nC && tk[j];
      const unsigned m = __ballot_sync(0xffffffffu, on);
      if (on) out[pos + __popc(m & ((1u << lane) - 1u))] = j;
      pos += __popc(m);
    }
    for (int p = pos + lane; p < a.topK; p += 32) out[p] = -1;
  }
}

// Shared bytes of selectKernel<QT, D> for nB blocks.
inline size_t selectSmem(int qt, int D, int nB) { return size_t(qt) * D * 4 + size_t(qt) * nB * 5; }

}  // namespace sparsek
}  // namespace attention
}  // namespace dw

// The portable fused attention kernels: forward and a deterministic backward on mma.sync tensor
// cores (sm_80 and up), bf16 and f16, head dimensions 64 and 128, any Sq and Sk, causal or not,
// grouped-query heads, strided q, k, v and out (flash_params.h). They serve where the Hopper kernels
// do not fit and on Blackwell until a tcgen05 kernel exists (compiled for sm_100, never run there).
//
// Forward (FlashAttention-2's schedule): a CTA of NW warps owns BM = 16·NW query rows of one head;
// each warp owns 16 rows and keeps its Q fragments in registers. Key/value blocks of BN rows stream
// through a double-buffered shared-memory ring (cp.async, 16-byte chunks XOR-swizzled so ldmatrix
// is conflict-free). Per block: S = Q Kᵀ (mma.sync m16n8k16, FP32), the mask only on the blocks that
// need it, the online softmax in the log2 domain (exp2 of scale·log2(e)·s − m), then O += P V with
// P repacked from the S accumulators into A fragments without leaving registers. out = O / l and
// lse = (m + log2 l)·ln 2 per row. Causal grids start with the heaviest (last) query blocks.
//
// Backward (deterministic: no atomics, every sum in one fixed order), three kernels:
//   delta   delta_i = dout_i · out_i, one warp per row (f32, into the plan's workspace)
//   dk, dv  a CTA per (key block of BN = 16·NW keys, key/value head, batch); each warp keeps 16 keys'
//           dK and dV in registers and walks the query heads of its group and their query blocks
//           (BM rows) in ascending order: Sᵀ = K Qᵀ, Pᵀ = exp(Sᵀ − lse), dV += Pᵀ dO,
//           dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − delta), dK += dSᵀ Q
//   dq      a CTA per (query block, head, batch), as the forward: S, P, dP = dO Vᵀ, dS,
//           dQ += dS K over the key blocks in order
// S and P are recomputed in both (7 products instead of the 5 of an atomic dQ): the price of
// determinism without a dQ accumulation buffer.
#pragma once
#include "attention/flash_params.h"
#include "common/device_info.h"
#include "common/smem_limit.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace dw {
namespace attention {
namespace sm80 {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ uint32_t smemAddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cpAsyncWaitAll() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
__device__ __forceinline__ void ldsm4t(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}

// d += a · b on m16n8k16 with FP32 accumulators; pack: two floats into one A/B register.
template <typename T> struct Mma;
template <> struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};
template <> struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};

// Byte address of 16-byte chunk `c` of row `r` in a tile of rows of D 16-bit elements: the chunk
// index XORed with the row's low 3 bits, so the 8 rows an ldmatrix reads hit 8 different banks.
template <int D>
__device__ __forceinline__ uint32_t swz(uint32_t base, int r, int c) {
  return base + r * (D * 2) + ((c ^ (r & 7)) << 4);
}

// ROWS rows of D elements from g (row stride rs elements) into a swizzled tile; rows >= valid are
// zero-filled.
template <int ROWS, int D, int NT, typename T>
__device__ __forceinline__ void loadTile(uint32_t tile, const T* g, int64_t rs, int valid, int tid) {
  constexpr int CH = D / 8;
#pragma unroll
  for (int idx = tid; idx < ROWS * CH; idx += NT) {
    const int r = idx / CH, c = idx % CH;
    const bool ok = r < valid;
    cpAsync16(swz<D>(tile, r, c), g + (ok ? r * rs : 0) + c * 8, ok);
  }
}

// A fragments (16 rows of this warp starting at row r0, k16 step kk) from a swizzled tile.
template <int D>
__device__ __forceinline__ void ldsmA(uint32_t tile, int r0, int kk, int lane, uint32_t (&a)[4]) {
  ldsm4(swz<D>(tile, r0 + (lane & 7) + ((lane >> 3) & 1) * 8, kk * 2 + (lane >> 4)), a);
}
// B fragments of two n8 tiles (rows n0..n0+15 of the tile are n; k16 step kk along the row): for
// S = A · tileᵀ. r[0], r[1]: tile n0; r[2], r[3]: tile n0 + 8.
template <int D>
__device__ __forceinline__ void ldsmBt(uint32_t tile, int n0, int kk, int lane, uint32_t (&r)[4]) {
  ldsm4(swz<D>(tile, n0 + (lane & 7) + (lane >> 4) * 8, kk * 2 + ((lane >> 3) & 1)), r);
}
// B fragments of two n8 tiles (columns 16·nn.. of the tile are n; rows k0..k0+15 are k): for
// O = A · tile.
template <int D>
__device__ __forceinline__ void ldsmB(uint32_t tile, int k0, int nn, int lane, uint32_t (&r)[4]) {
  ldsm4t(swz<D>(tile, k0 + (lane & 7) + ((lane >> 3) & 1) * 8, nn * 2 + (lane >> 4)), r);
}

// Sum and max over the 4 lanes of a quad (the lanes that share a row of an accumulator).
__device__ __forceinline__ float quadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// A fragment of k16 step kk from accumulators (two n8 tiles 2kk and 2kk + 1), scaled by f(x).
template <typename T, int N>
__device__ __forceinline__ void accToA(const float (&s)[N][4], int kk, uint32_t (&a)[4]) {
  a[0] = Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]);
  a[1] = Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]);
  a[2] = Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Rows r0 and r0 + 8 of a warp's 16 x D accumulator, times `mul`, into global rows (stride rs)
// that are < valid.
template <typename T, int D>
__device__ __forceinline__ void storeRows(const float (&o)[D / 8][4], T* g, int64_t rs, int r0, int valid, int lane, float mul0, float mul1) {
  const int gr = lane / 4, t = lane % 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = r0 + gr + half * 8;
    if (r >= valid) continue;
    const float mul = half ? mul1 : mul0;
    T* row = g + r * rs;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt)
      *reinterpret_cast<uint32_t*>(row + nt * 8 + 2 * t) = Mma<T>::pack(o[nt][2 * half] * mul, o[nt][2 * half + 1] * mul);
  }
}

// ---- forward ------------------------------------------------------------------------------------

template <typename T, int D, int NW, int BN>
__global__ void __launch_bounds__(NW * 32) fwdKernel(FlashFwdParams p) {
  constexpr int BM = NW * 16, NT = NW * 32, KD = D / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sQ = smemAddr(smem), sK = sQ + BM * D * 2, sV = sK + 2 * BN * D * 2;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, t = lane % 4;
  const int qb = p.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z, hk = h / (p.H / p.Hkv);
  const int i0 = qb * BM, shift = p.Sk - p.Sq;
  const T* q = static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h + i0 * p.qs.s;
  const T* k = static_cast<const T*>(p.k) + b * p.ks.b + hk * p.ks.h;
  const T* v = static_cast<const T*>(p.v) + b * p.vs.b + hk * p.vs.h;
  // Keys [0, kEnd) are visible to some row of the block.
  const int kEnd = p.causal ? max(0, min(p.Sk, min(i0 + BM, p.Sq) + shift)) : p.Sk;
  const int nBlocks = (kEnd + BN - 1) / BN;

  loadTile<BM, D, NT>(sQ, q, p.qs.s, p.Sq - i0, tid);
  if (nBlocks > 0) {
    loadTile<BN, D, NT>(sK, k, p.ks.s, p.Sk, tid);
    loadTile<BN, D, NT>(sV, v, p.vs.s, p.Sk, tid);
  }
  cpAsyncCommit();

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  uint32_t qf[KD][4];
  const float sl2 = p.scale * kLog2e;
  const int row0 = i0 + warp * 16 + gr;  // this thread's rows: row0 and row0 + 8

  for (int jb = 0; jb < nBlocks; ++jb) {
    cpAsyncWaitAll();
    __syncthreads();
    if (jb == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) ldsmA<D>(sQ, warp * 16, kk, lane, qf[kk]);
    }
    if (jb + 1 < nBlocks) {
      const int nb = (jb + 1) & 1, j1 = (jb + 1) * BN;
      loadTile<BN, D, NT>(sK + nb * BN * D * 2, k + j1 * p.ks.s, p.ks.s, p.Sk - j1, tid);
      loadTile<BN, D, NT>(sV + nb * BN * D * 2, v + j1 * p.vs.s, p.vs.s, p.Sk - j1, tid);
    }
    cpAsyncCommit();
    const uint32_t cK = sK + (jb & 1) * BN * D * 2, cV = sV + (jb & 1) * BN * D * 2;

    float s[BN / 8][4];
#pragma unroll
    for (int n = 0; n < BN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk)
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t r[4];
        ldsmBt<D>(cK, nn * 16, kk, lane, r);
        Mma<T>::run(s[2 * nn], qf[kk], r[0], r[1]);
        Mma<T>::run(s[2 * nn + 1], qf[kk], r[2], r[3]);
      }

    const int j0 = jb * BN;
    if (j0 + BN > p.Sk || (p.causal && j0 + BN - 1 > i0 + shift)) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = j0 + nt * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
          if (col >= p.Sk || (p.causal && col > row + shift)) s[nt][e] = -INFINITY;
        }
    }

#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hf], s[nt][2 * hf + 1]));
      const float mNew = fmaxf(m[hf], quadMax(mx) * sl2);
      const float mUse = mNew == -INFINITY ? 0.f : mNew;
      const float corr = exp2f(m[hf] - mUse);
      m[hf] = mNew;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 2 * hf; e < 2 * hf + 2; ++e) {
          s[nt][e] = exp2f(fmaf(s[nt][e], sl2, -mUse));
          sum += s[nt][e];
        }
      l[hf] = l[hf] * corr + sum;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][2 * hf] *= corr;
        o[n][2 * hf + 1] *= corr;
      }
    }

#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      accToA<T>(s, kk, a);
#pragma unroll
      for (int nn = 0; nn < D / 16; ++nn) {
        uint32_t r[4];
        ldsmB<D>(cV, kk * 16, nn, lane, r);
        Mma<T>::run(o[2 * nn], a, r[0], r[1]);
        Mma<T>::run(o[2 * nn + 1], a, r[2], r[3]);
      }
    }
  }

  float inv[2];
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const float sum = quadSum(l[hf]);
    inv[hf] = sum > 0.f ? 1.f / sum : 0.f;
    const int row = row0 + hf * 8;
    if (t == 0 && row < p.Sq) p.lse[(int64_t(b) * p.H + h) * p.Sq + row] = sum > 0.f ? (m[hf] + log2f(sum)) * kLn2 : -INFINITY;
  }
  T* out = static_cast<T*>(p.out) + b * p.os.b + h * p.os.h + i0 * p.os.s;
  storeRows<T, D>(o, out, p.os.s, warp * 16, p.Sq - i0, lane, inv[0], inv[1]);
}

// ---- backward -----------------------------------------------------------------------------------

template <typename T, int D>
__global__ void __launch_bounds__(128) deltaKernel(FlashBwdParams p) {
  const int64_t rowId = int64_t(blockIdx.x) * 4 + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (rowId >= int64_t(p.B) * p.H * p.Sq) return;
  const int i = int(rowId % p.Sq), h = int(rowId / p.Sq % p.H), b = int(rowId / p.Sq / p.H);
  const T* dout = static_cast<const T*>(p.dout) + b * p.dos.b + h * p.dos.h + i * p.dos.s;
  const T* out = static_cast<const T*>(p.out) + b * p.os.b + h * p.os.h + i * p.os.s;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += float(dout[d]) * float(out[d]);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) p.delta[rowId] = s;
}

// lse in the log2 domain, +inf for a row that sees no key (so every p of it is 0).
__device__ __forceinline__ float lse2Of(float lse) { return lse == -INFINITY ? INFINITY : lse * kLog2e; }

template <typename T, int D, int NW, int BN>
__global__ void __launch_bounds__(NW * 32) dqKernel(FlashBwdParams p) {
  constexpr int BM = NW * 16, NT = NW * 32, KD = D / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sQ = smemAddr(smem), sdO = sQ + BM * D * 2, sK = sdO + BM * D * 2, sV = sK + 2 * BN * D * 2;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, t = lane % 4;
  const int qb = p.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z, hk = h / (p.H / p.Hkv);
  const int i0 = qb * BM, shift = p.Sk - p.Sq;
  const T* k = static_cast<const T*>(p.k) + b * p.ks.b + hk * p.ks.h;
  const T* v = static_cast<const T*>(p.v) + b * p.vs.b + hk * p.vs.h;
  const int kEnd = p.causal ? max(0, min(p.Sk, min(i0 + BM, p.Sq) + shift)) : p.Sk;
  const int nBlocks = (kEnd + BN - 1) / BN;

  loadTile<BM, D, NT>(sQ, static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h + i0 * p.qs.s, p.qs.s, p.Sq - i0, tid);
  loadTile<BM, D, NT>(sdO, static_cast<const T*>(p.dout) + b * p.dos.b + h * p.dos.h + i0 * p.dos.s, p.dos.s, p.Sq - i0, tid);
  if (nBlocks > 0) {
    loadTile<BN, D, NT>(sK, k, p.ks.s, p.Sk, tid);
    loadTile<BN, D, NT>(sV, v, p.vs.s, p.Sk, tid);
  }
  cpAsyncCommit();

  const int row0 = i0 + warp * 16 + gr;
  float lse2[2], delta[2];
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = row0 + hf * 8;
    const int64_t at = (int64_t(b) * p.H + h) * p.Sq + row;
    lse2[hf] = row < p.Sq ? lse2Of(p.lse[at]) : INFINITY;
    delta[hf] = row < p.Sq ? p.delta[at] : 0.f;
  }
  float dq[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
  uint32_t qf[KD][4], df[KD][4];
  const float sl2 = p.scale * kLog2e;

  for (int jb = 0; jb < nBlocks; ++jb) {
    cpAsyncWaitAll();
    __syncthreads();
    if (jb == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) {
        ldsmA<D>(sQ, warp * 16, kk, lane, qf[kk]);
        ldsmA<D>(sdO, warp * 16, kk, lane, df[kk]);
      }
    }
    if (jb + 1 < nBlocks) {
      const int nb = (jb + 1) & 1, j1 = (jb + 1) * BN;
      loadTile<BN, D, NT>(sK + nb * BN * D * 2, k + j1 * p.ks.s, p.ks.s, p.Sk - j1, tid);
      loadTile<BN, D, NT>(sV + nb * BN * D * 2, v + j1 * p.vs.s, p.vs.s, p.Sk - j1, tid);
    }
    cpAsyncCommit();
    const uint32_t cK = sK + (jb & 1) * BN * D * 2, cV = sV + (jb & 1) * BN * D * 2;

    float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk)
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t r[4];
        ldsmBt<D>(cK, nn * 16, kk, lane, r);
        Mma<T>::run(s[2 * nn], qf[kk], r[0], r[1]);
        Mma<T>::run(s[2 * nn + 1], qf[kk], r[2], r[3]);
        ldsmBt<D>(cV, nn * 16, kk, lane, r);
        Mma<T>::run(dp[2 * nn], df[kk], r[0], r[1]);
        Mma<T>::run(dp[2 * nn + 1], df[kk], r[2], r[3]);
      }
    const int j0 = jb * BN;
    const bool mask = j0 + BN > p.Sk || (p.causal && j0 + BN - 1 > i0 + shift);
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = j0 + nt * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
        const bool hidden = mask && (col >= p.Sk || (p.causal && col > row + shift));
        const float pr = hidden ? 0.f : exp2f(fmaf(s[nt][e], sl2, -lse2[e >> 1]));
        s[nt][e] = pr * (dp[nt][e] - delta[e >> 1]);  // dS
      }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      accToA<T>(s, kk, a);
#pragma unroll
      for (int nn = 0; nn < D / 16; ++nn) {
        uint32_t r[4];
        ldsmB<D>(cK, kk * 16, nn, lane, r);
        Mma<T>::run(dq[2 * nn], a, r[0], r[1]);
        Mma<T>::run(dq[2 * nn + 1], a, r[2], r[3]);
      }
    }
  }
  T* dqg = static_cast<T*>(p.dq) + b * p.dqs.b + h * p.dqs.h + i0 * p.dqs.s;
  storeRows<T, D>(dq, dqg, p.dqs.s, warp * 16, p.Sq - i0, lane, p.scale, p.scale);
}

template <typename T, int D, int NW, int BM>
__global__ void __launch_bounds__(NW * 32) dkvKernel(FlashBwdParams p) {
  constexpr int BN = NW * 16, NT = NW * 32, KD = D / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sK = smemAddr(smem), sV = sK + BN * D * 2, sQ = sV + BN * D * 2, sdO = sQ + 2 * BM * D * 2;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, t = lane % 4;
  const int kb = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int j0 = kb * BN, shift = p.Sk - p.Sq, group = p.H / p.Hkv;
  // The first query that sees key j0, and the query blocks from it on.
  const int iFirst = p.causal ? max(0, j0 - shift) : 0;
  const int nQB = (p.Sq + BM - 1) / BM, qbFirst = min(iFirst / BM, nQB);
  const int perHead = nQB - qbFirst, nIter = group * perHead;

  loadTile<BN, D, NT>(sK, static_cast<const T*>(p.k) + b * p.ks.b + hk * p.ks.h + j0 * p.ks.s, p.ks.s, p.Sk - j0, tid);
  loadTile<BN, D, NT>(sV, static_cast<const T*>(p.v) + b * p.vs.b + hk * p.vs.h + j0 * p.vs.s, p.vs.s, p.Sk - j0, tid);
  auto loadQ = [&](int it, int buf) {
    const int h = hk * group + it / perHead, i0 = (qbFirst + it % perHead) * BM;
    loadTile<BM, D, NT>(sQ + buf * BM * D * 2, static_cast<const T*>(p.q) + b * p.qs.b + h * p.qs.h + i0 * p.qs.s, p.qs.s, p.Sq - i0, tid);
    loadTile<BM, D, NT>(sdO + buf * BM * D * 2, static_cast<const T*>(p.dout) + b * p.dos.b + h * p.dos.h + i0 * p.dos.s, p.dos.s, p.Sq - i0, tid);
  };
  if (nIter > 0) loadQ(0, 0);
  cpAsyncCommit();

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;
  const float sl2 = p.scale * kLog2e;
  const int key0 = j0 + warp * 16 + gr;  // this thread's keys: key0 and key0 + 8

  for (int it = 0; it < nIter; ++it) {
    cpAsyncWaitAll();
    __syncthreads();
    if (it + 1 < nIter) loadQ(it + 1, (it + 1) & 1);
    cpAsyncCommit();
    const uint32_t cQ = sQ + (it & 1) * BM * D * 2, cdO = sdO + (it & 1) * BM * D * 2;
    const int h = hk * group + it / perHead, i0 = (qbFirst + it % perHead) * BM;

    float s[BM / 8][4], dp[BM / 8][4];
#pragma unroll
    for (int n = 0; n < BM / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      uint32_t ka[4], va[4];
      ldsmA<D>(sK, warp * 16, kk, lane, ka);
      ldsmA<D>(sV, warp * 16, kk, lane, va);
#pragma unroll
      for (int nn = 0; nn < BM / 16; ++nn) {
        uint32_t r[4];
        ldsmBt<D>(cQ, nn * 16, kk, lane, r);
        Mma<T>::run(s[2 * nn], ka, r[0], r[1]);
        Mma<T>::run(s[2 * nn + 1], ka, r[2], r[3]);
        ldsmBt<D>(cdO, nn * 16, kk, lane, r);
        Mma<T>::run(dp[2 * nn], va, r[0], r[1]);
        Mma<T>::run(dp[2 * nn + 1], va, r[2], r[3]);
      }
    }
    // Pᵀ and dSᵀ; columns are queries i0 + nt·8 + 2t (+1).
    const bool mask = i0 + BM > p.Sq || (p.causal && j0 + BN - 1 > i0 + shift);
    const float* lse = p.lse + (int64_t(b) * p.H + h) * p.Sq;
    const float* dl = p.delta + (int64_t(b) * p.H + h) * p.Sq;
#pragma unroll
    for (int nt = 0; nt < BM / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = i0 + nt * 8 + 2 * t + c;
        const bool inRange = col < p.Sq;
        const float l2 = inRange ? lse2Of(lse[col]) : INFINITY;
        const float de = inRange ? dl[col] : 0.f;
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const int e = 2 * hf + c, key = key0 + hf * 8;
          const bool hidden = mask && (!inRange || (p.causal && key > col + shift));
          const float pr = hidden ? 0.f : exp2f(fmaf(s[nt][e], sl2, -l2));
          s[nt][e] = pr;
          dp[nt][e] = pr * (dp[nt][e] - de);
        }
      }
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      uint32_t pa[4], da[4];
      accToA<T>(s, kk, pa);
      accToA<T>(dp, kk, da);
#pragma unroll
      for (int nn = 0; nn < D / 16; ++nn) {
        uint32_t r[4];
        ldsmB<D>(cdO, kk * 16, nn, lane, r);
        Mma<T>::run(dv[2 * nn], pa, r[0], r[1]);
        Mma<T>::run(dv[2 * nn + 1], pa, r[2], r[3]);
        ldsmB<D>(cQ, kk * 16, nn, lane, r);
        Mma<T>::run(dk[2 * nn], da, r[0], r[1]);
        Mma<T>::run(dk[2 * nn + 1], da, r[2], r[3]);
      }
    }
  }
  T* dkg = static_cast<T*>(p.dk) + b * p.dks.b + hk * p.dks.h + j0 * p.dks.s;
  T* dvg = static_cast<T*>(p.dv) + b * p.dvs.b + hk * p.dvs.h + j0 * p.dvs.s;
  storeRows<T, D>(dk, dkg, p.dks.s, warp * 16, p.Sk - j0, lane, p.scale, p.scale);
  storeRows<T, D>(dv, dvg, p.dvs.s, warp * 16, p.Sk - j0, lane, 1.f, 1.f);
}

// ---- launchers ----------------------------------------------------------------------------------

// Kernel with Smem bytes of dynamic shared memory; its limit is set once per device (smem_limit.h).
template <auto Kernel, int Smem>
cudaError_t launch(dim3 grid, int threads, cudaStream_t st, const void* params) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = setSmemLimitOnce<Kernel, Smem>(dev);
  if (e != cudaSuccess) return e;
  void* args[] = {const_cast<void*>(params)};
  return cudaLaunchKernel(reinterpret_cast<const void*>(Kernel), grid, dim3(threads), args, Smem, st);
}

template <typename T, int D, int NW, int BN>
cudaError_t forwardWith(const FlashFwdParams& p, cudaStream_t st) {
  constexpr int BM = NW * 16;
  const dim3 grid((p.Sq + BM - 1) / BM, p.H, p.B);
  return launch<fwdKernel<T, D, NW, BN>, (BM + 4 * BN) * D * 2>(grid, NW * 32, st, &p);
}

}  // namespace sm80

// The forward: 128-row query blocks when they fill the GPU twice over, else 64 or 32 rows, so small
// shapes (the seed's B1 H8 S512) are not starved of CTAs.
template <typename T, int D>
cudaError_t flashForwardSm80(const FlashFwdParams& p, cudaStream_t st) {
  static_assert(D == 64 || D == 128, "flash_sm80 takes head dimensions 64 and 128");
  if (p.Sq == 0 || p.B == 0 || p.H == 0) return cudaSuccess;
  const int64_t heads = int64_t(p.B) * p.H, sms = smCount();
  if (heads * ((p.Sq + 127) / 128) >= 2 * sms) return sm80::forwardWith<T, D, 8, 64>(p, st);
  if (heads * ((p.Sq + 63) / 64) >= sms) return sm80::forwardWith<T, D, 4, 64>(p, st);
  return sm80::forwardWith<T, D, 2, 64>(p, st);
}

// The backward's workspace: delta, f32 [B, H, Sq].
inline size_t flashBackwardWorkspaceBytes(int B, int H, int Sq) { return size_t(B) * H * Sq * sizeof(float); }

template <typename T, int D>
cudaError_t flashBackwardSm80(const FlashBwdParams& p, cudaStream_t st) {
  static_assert(D == 64 || D == 128, "flash_sm80 takes head dimensions 64 and 128");
  using namespace sm80;
  if (p.B == 0 || p.H == 0) return cudaSuccess;
  const int64_t rows = int64_t(p.B) * p.H * p.Sq;
  if (rows > 0) {
    deltaKernel<T, D><<<static_cast<unsigned>((rows + 3) / 4), 128, 0, st>>>(p);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  constexpr int NW = 4, KBN = NW * 16, QBM = NW * 16;
  constexpr int DKV_BM = D == 128 ? 32 : 64, DQ_BN = D == 128 ? 32 : 64;
  if (p.Sk > 0) {
    cudaError_t e = launch<dkvKernel<T, D, NW, DKV_BM>, (2 * KBN + 4 * DKV_BM) * D * 2>(dim3((p.Sk + KBN - 1) / KBN, p.Hkv, p.B), NW * 32, st, &p);
    if (e != cudaSuccess) return e;
  }
  if (p.Sq == 0) return cudaSuccess;
  return launch<dqKernel<T, D, NW, DQ_BN>, (2 * QBM + 4 * DQ_BN) * D * 2>(dim3((p.Sq + QBM - 1) / QBM, p.H, p.B), NW * 32, st, &p);
}

}  // namespace attention
}  // namespace dw

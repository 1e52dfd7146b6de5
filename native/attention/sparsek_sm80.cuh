// SparseK block-sparse attention on mma.sync tensor cores (sm_80 and up: the portable path, which
// also runs on the H200; on sm_100 compiled, never run here). Built on flash_sm80.cuh's machinery
// (swizzled cp.async tiles, ldmatrix fragments, the log2-domain online softmax, accumulators
// repacked as A fragments): the same schedules, walking a query block's selected key blocks
// (indices i32 [B, Hkv, nB, topK], ascending, -1 after the last) instead of every block.
//
//   forward  a CTA per (query block, GH query heads of one group, batch); NW = GH·BS/16 warps, 16
//            query rows each. The GH heads share the group's selection, so each K/V tile is loaded
//            once for all of them (GH = 2 when the group has an even number of heads; the group's
//            other pairs read the same tiles from L2). Tiles of 64 keys, double-buffered.
//   backward (deterministic: no atomics, every sum in one fixed order), three kernels:
//     delta  flash_sm80's: delta_i = dout_i · out_i
//     dk,dv  a CTA per (key block, kv head, batch), BS/16 warps of 16 keys: first the query blocks
//            that selected this key block (sparse_blocks.cuh: found by binary search in each query
//            block's sorted list, compacted in ascending order in shared memory: no inverse index
//            in global memory), then for each head of the group, each such query block, each BM-row part of it:
//            Sᵀ, Pᵀ, dV += Pᵀ dO, dPᵀ, dSᵀ, dK += dSᵀ Q
//     dq     a CTA per (query block, GH heads, batch), as the forward: S, P, dP, dS, dQ += dS K over
//            the selected tiles in ascending order.
// Index entries outside [-1, nB) are treated as the end of the list (a corrupt list cannot make a
// kernel read out of bounds).
#pragma once
#include "attention/flash_sm80.cuh"
#include "attention/sparse_blocks.cuh"

namespace dw {
namespace attention {

namespace sparse80 {
using namespace sm80;

// Query block qb's selected blocks (of kv head hk, batch b) into shared `sel`; returns how many
// (the entries before the first one outside [0, nB)). Every thread of the CTA calls it.
template <int NT>
__device__ __forceinline__ int loadSelection(const SparseIdx& s, int Hkv, int b, int hk, int qb, int* sel, int* count) {
  const int* row = s.idx + ((int64_t(b) * Hkv + hk) * s.nB + qb) * s.topK;
  if (threadIdx.x == 0) *count = s.topK;
  __syncthreads();
  for (int t = threadIdx.x; t < s.topK; t += NT) {
    const int v = row[t];
    sel[t] = v;
    if (v < 0 || v >= s.nB) atomicMin(count, t);  // an integer minimum: the same whatever the order
  }
  __syncthreads();
  return *count;
}

template <typename T, int D, int BS, int GH>
__global__ void __launch_bounds__(GH * BS / 16 * 32) sparseFwdKernel(FlashFwdParams p, SparseIdx s) {
  constexpr int NW = GH * BS / 16, NT = NW * 32, KD = D / 16, BN = 64, SUB = BS / BN, WPH = BS / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sQ = smemAddr(smem), sK = sQ + GH * BS * D * 2, sV = sK + 2 * BN * D * 2;
  int* sel = reinterpret_cast<int*>(smem + (GH * BS + 4 * BN) * D * 2);
  __shared__ int nSel;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, t = lane % 4;
  const int qb = blockIdx.x, h0 = blockIdx.y * GH, b = blockIdx.z, hk = h0 / (p.H / p.Hkv);
  const int hw = h0 + warp / WPH, r0 = (warp % WPH) * 16;  // this warp's head and first row in the block
  const int i0 = qb * BS, S = p.Sk;
  const T* k = static_cast<const T*>(p.k) + b * p.ks.b + hk * p.ks.h;
  const T* v = static_cast<const T*>(p.v) + b * p.vs.b + hk * p.vs.h;
  const int nTiles = loadSelection<NT>(s, p.Hkv, b, hk, qb, sel, &nSel) * SUB;
  auto keyOf = [&](int tile) { return sel[tile / SUB] * BS + (tile % SUB) * BN; };

#pragma unroll
  for (int g = 0; g < GH; ++g)
    loadTile<BS, D, NT>(sQ + g * BS * D * 2, static_cast<const T*>(p.q) + b * p.qs.b + (h0 + g) * p.qs.h + i0 * p.qs.s, p.qs.s, p.Sq - i0, tid);
  if (nTiles > 0) {
    const int j0 = keyOf(0);
    loadTile<BN, D, NT>(sK, k + j0 * p.ks.s, p.ks.s, S - j0, tid);
    loadTile<BN, D, NT>(sV, v + j0 * p.vs.s, p.vs.s, S - j0, tid);
  }
  cpAsyncCommit();

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  uint32_t qf[KD][4];
  const float sl2 = p.scale * kLog2e;
  const int row0 = i0 + r0 + gr;  // this thread's rows: row0 and row0 + 8

  for (int jb = 0; jb < nTiles; ++jb) {
    cpAsyncWaitAll();
    __syncthreads();
    if (jb == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) ldsmA<D>(sQ, warp * 16, kk, lane, qf[kk]);
    }
    if (jb + 1 < nTiles) {
      const int nb = (jb + 1) & 1, j1 = keyOf(jb + 1);
      loadTile<BN, D, NT>(sK + nb * BN * D * 2, k + j1 * p.ks.s, p.ks.s, S - j1, tid);
      loadTile<BN, D, NT>(sV + nb * BN * D * 2, v + j1 * p.vs.s, p.vs.s, S - j1, tid);
    }
    cpAsyncCommit();
    const uint32_t cK = sK + (jb & 1) * BN * D * 2, cV = sV + (jb & 1) * BN * D * 2;

    float sc[BN / 8][4];
#pragma unroll
    for (int n = 0; n < BN / 8; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk)
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t r[4];
        ldsmBt<D>(cK, nn * 16, kk, lane, r);
        Mma<T>::run(sc[2 * nn], qf[kk], r[0], r[1]);
        Mma<T>::run(sc[2 * nn + 1], qf[kk], r[2], r[3]);
      }

    const int j0 = keyOf(jb);
    if (j0 + BN > S || (p.causal && j0 + BN - 1 > i0 + r0)) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = j0 + nt * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
          if (col >= S || (p.causal && col > row)) sc[nt][e] = -INFINITY;
        }
    }

#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(sc[nt][2 * hf], sc[nt][2 * hf + 1]));
      const float mNew = fmaxf(m[hf], quadMax(mx) * sl2);
      const float mUse = mNew == -INFINITY ? 0.f : mNew;
      const float corr = exp2f(m[hf] - mUse);
      m[hf] = mNew;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 2 * hf; e < 2 * hf + 2; ++e) {
          sc[nt][e] = exp2f(fmaf(sc[nt][e], sl2, -mUse));
          sum += sc[nt][e];
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
      accToA<T>(sc, kk, a);
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
    if (t == 0 && row < p.Sq) p.lse[(int64_t(b) * p.H + hw) * p.Sq + row] = sum > 0.f ? (m[hf] + log2f(sum)) * kLn2 : -INFINITY;
  }
  T* out = static_cast<T*>(p.out) + b * p.os.b + hw * p.os.h + i0 * p.os.s;
  storeRows<T, D>(o, out, p.os.s, r0, p.Sq - i0, lane, inv[0], inv[1]);
}

template <typename T, int D, int BS, int GH>
__global__ void __launch_bounds__(GH * BS / 16 * 32) sparseDqKernel(FlashBwdParams p, SparseIdx s) {
  constexpr int NW = GH * BS / 16, NT = NW * 32, KD = D / 16, BN = D == 128 ? 32 : 64, SUB = BS / BN, WPH = BS / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sQ = smemAddr(smem), sdO = sQ + GH * BS * D * 2, sK = sdO + GH * BS * D * 2, sV = sK + 2 * BN * D * 2;
  int* sel = reinterpret_cast<int*>(smem + (2 * GH * BS + 4 * BN) * D * 2);
  __shared__ int nSel;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, t = lane % 4;
  const int qb = blockIdx.x, h0 = blockIdx.y * GH, b = blockIdx.z, hk = h0 / (p.H / p.Hkv);
  const int hw = h0 + warp / WPH, r0 = (warp % WPH) * 16;
  const int i0 = qb * BS, S = p.Sk;
  const T* k = static_cast<const T*>(p.k) + b * p.ks.b + hk * p.ks.h;
  const T* v = static_cast<const T*>(p.v) + b * p.vs.b + hk * p.vs.h;
  const int nTiles = loadSelection<NT>(s, p.Hkv, b, hk, qb, sel, &nSel) * SUB;
  auto keyOf = [&](int tile) { return sel[tile / SUB] * BS + (tile % SUB) * BN; };

#pragma unroll
  for (int g = 0; g < GH; ++g) {
    loadTile<BS, D, NT>(sQ + g * BS * D * 2, static_cast<const T*>(p.q) + b * p.qs.b + (h0 + g) * p.qs.h + i0 * p.qs.s, p.qs.s, p.Sq - i0, tid);
    loadTile<BS, D, NT>(sdO + g * BS * D * 2, static_cast<const T*>(p.dout) + b * p.dos.b + (h0 + g) * p.dos.h + i0 * p.dos.s, p.dos.s, p.Sq - i0, tid);
  }
  if (nTiles > 0) {
    const int j0 = keyOf(0);
    loadTile<BN, D, NT>(sK, k + j0 * p.ks.s, p.ks.s, S - j0, tid);
    loadTile<BN, D, NT>(sV, v + j0 * p.vs.s, p.vs.s, S - j0, tid);
  }
  cpAsyncCommit();

  const int row0 = i0 + r0 + gr;
  float lse2[2], delta[2];
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = row0 + hf * 8;
    const int64_t at = (int64_t(b) * p.H + hw) * p.Sq + row;
    lse2[hf] = row < p.Sq ? lse2Of(p.lse[at]) : INFINITY;
    delta[hf] = row < p.Sq ? p.delta[at] : 0.f;
  }
  float dq[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
  uint32_t qf[KD][4], df[KD][4];
  const float sl2 = p.scale * kLog2e;

  for (int jb = 0; jb < nTiles; ++jb) {
    cpAsyncWaitAll();
    __syncthreads();
    if (jb == 0) {
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) {
        ldsmA<D>(sQ, warp * 16, kk, lane, qf[kk]);
        ldsmA<D>(sdO, warp * 16, kk, lane, df[kk]);
      }
    }
    if (jb + 1 < nTiles) {
      const int nb = (jb + 1) & 1, j1 = keyOf(jb + 1);
      loadTile<BN, D, NT>(sK + nb * BN * D * 2, k + j1 * p.ks.s, p.ks.s, S - j1, tid);
      loadTile<BN, D, NT>(sV + nb * BN * D * 2, v + j1 * p.vs.s, p.vs.s, S - j1, tid);
    }
    cpAsyncCommit();
    const uint32_t cK = sK + (jb & 1) * BN * D * 2, cV = sV + (jb & 1) * BN * D * 2;

    float sc[BN / 8][4], dp[BN / 8][4];
#pragma unroll
    for (int n = 0; n < BN / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk)
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t r[4];
        ldsmBt<D>(cK, nn * 16, kk, lane, r);
        Mma<T>::run(sc[2 * nn], qf[kk], r[0], r[1]);
        Mma<T>::run(sc[2 * nn + 1], qf[kk], r[2], r[3]);
        ldsmBt<D>(cV, nn * 16, kk, lane, r);
        Mma<T>::run(dp[2 * nn], df[kk], r[0], r[1]);
        Mma<T>::run(dp[2 * nn + 1], df[kk], r[2], r[3]);
      }
    const int j0 = keyOf(jb);
    const bool mask = j0 + BN > S || (p.causal && j0 + BN - 1 > i0 + r0);
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = j0 + nt * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
        const bool hidden = mask && (col >= S || (p.causal && col > row));
        const float pr = hidden ? 0.f : exp2f(fmaf(sc[nt][e], sl2, -lse2[e >> 1]));
        sc[nt][e] = pr * (dp[nt][e] - delta[e >> 1]);  // dS
      }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      accToA<T>(sc, kk, a);
#pragma unroll
      for (int nn = 0; nn < D / 16; ++nn) {
        uint32_t r[4];
        ldsmB<D>(cK, kk * 16, nn, lane, r);
        Mma<T>::run(dq[2 * nn], a, r[0], r[1]);
        Mma<T>::run(dq[2 * nn + 1], a, r[2], r[3]);
      }
    }
  }
  T* dqg = static_cast<T*>(p.dq) + b * p.dqs.b + hw * p.dqs.h + i0 * p.dqs.s;
  storeRows<T, D>(dq, dqg, p.dqs.s, r0, p.Sq - i0, lane, p.scale, p.scale);
}

template <typename T, int D, int BS>
__global__ void __launch_bounds__(BS / 16 * 32) sparseDkvKernel(FlashBwdParams p, SparseIdx s) {
  constexpr int NW = BS / 16, BN = BS, NT = NW * 32, KD = D / 16, BM = D == 128 ? 32 : 64, SUBQ = BS / BM;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sK = smemAddr(smem), sV = sK + BN * D * 2, sQ = sV + BN * D * 2, sdO = sQ + 2 * BM * D * 2;
  int* list = reinterpret_cast<int*>(smem + (2 * BN + 4 * BM) * D * 2);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gr = lane / 4, t = lane % 4;
  const int kb = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int j0 = kb * BS, S = p.Sk, group = p.H / p.Hkv;

  // The query blocks that selected this key block, ascending (causal: only kb and later can).
  const int nList = selectingBlocks<NT>(s, p.Hkv, b, hk, kb, p.causal, list, nullptr);
  const int nIter = group * nList * SUBQ;
  auto stepOf = [&](int it, int& h, int& i0) {
    const int per = nList * SUBQ, r = it % per;
    h = hk * group + it / per;
    i0 = list[r / SUBQ] * BS + (r % SUBQ) * BM;
  };

  loadTile<BN, D, NT>(sK, static_cast<const T*>(p.k) + b * p.ks.b + hk * p.ks.h + j0 * p.ks.s, p.ks.s, S - j0, tid);
  loadTile<BN, D, NT>(sV, static_cast<const T*>(p.v) + b * p.vs.b + hk * p.vs.h + j0 * p.vs.s, p.vs.s, S - j0, tid);
  auto loadQ = [&](int it, int buf) {
    int h, i0;
    stepOf(it, h, i0);
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
    int h, i0;
    stepOf(it, h, i0);

    float sc[BM / 8][4], dp[BM / 8][4];
#pragma unroll
    for (int n = 0; n < BM / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) sc[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      uint32_t ka[4], va[4];
      ldsmA<D>(sK, warp * 16, kk, lane, ka);
      ldsmA<D>(sV, warp * 16, kk, lane, va);
#pragma unroll
      for (int nn = 0; nn < BM / 16; ++nn) {
        uint32_t r[4];
        ldsmBt<D>(cQ, nn * 16, kk, lane, r);
        Mma<T>::run(sc[2 * nn], ka, r[0], r[1]);
        Mma<T>::run(sc[2 * nn + 1], ka, r[2], r[3]);
        ldsmBt<D>(cdO, nn * 16, kk, lane, r);
        Mma<T>::run(dp[2 * nn], va, r[0], r[1]);
        Mma<T>::run(dp[2 * nn + 1], va, r[2], r[3]);
      }
    }
    // Pᵀ and dSᵀ; columns are queries i0 + nt·8 + 2t (+1).
    const bool mask = i0 + BM > p.Sq || j0 + BN > S || (p.causal && j0 + BN - 1 > i0);
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
          const bool hidden = mask && (!inRange || key >= S || (p.causal && key > col));
          const float pr = hidden ? 0.f : exp2f(fmaf(sc[nt][e], sl2, -l2));
          sc[nt][e] = pr;
          dp[nt][e] = pr * (dp[nt][e] - de);
        }
      }
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      uint32_t pa[4], da[4];
      accToA<T>(sc, kk, pa);
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
  storeRows<T, D>(dk, dkg, p.dks.s, warp * 16, S - j0, lane, p.scale, p.scale);
  storeRows<T, D>(dv, dvg, p.dvs.s, warp * 16, S - j0, lane, 1.f, 1.f);
}

// Dynamic shared memory of each kernel, besides `extra` bytes of lists.
template <int D, int BS, int GH>
constexpr int fwdSmem() { return (GH * BS + 4 * 64) * D * 2; }
template <int D, int BS, int GH>
constexpr int dqSmem() { return (2 * GH * BS + 4 * (D == 128 ? 32 : 64)) * D * 2; }
template <int D, int BS>
constexpr int dkvSmem() { return (2 * BS + 4 * (D == 128 ? 32 : 64)) * D * 2; }
// The most list bytes a launch may add (the limit set once per kernel): topK or nB ints.
constexpr int kListSmemMax = 64 * 1024;

template <auto Kernel, int Smem>
cudaError_t launchSparse(dim3 grid, int threads, size_t smem, cudaStream_t st, const FlashFwdParams* fp, const FlashBwdParams* bp, const SparseIdx& s) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = setSmemLimitOnce<Kernel, Smem + kListSmemMax>(dev);
  if (e != cudaSuccess) return e;
  void* params = fp != nullptr ? const_cast<FlashFwdParams*>(fp) : static_cast<void*>(const_cast<FlashBwdParams*>(bp));
  void* args[] = {params, const_cast<SparseIdx*>(&s)};
  return cudaLaunchKernel(reinterpret_cast<const void*>(Kernel), grid, dim3(threads), args, smem, st);
}

}  // namespace sparse80

// The portable forward: BS = s.bs (64 or 128), GH = 2 heads per CTA when BS is 64 and the group's
// head count is even, else 1.
template <typename T, int D>
cudaError_t sparseForwardSm80(const FlashFwdParams& p, const SparseIdx& s, cudaStream_t st) {
  using namespace sparse80;
  const int G = p.H / p.Hkv;
  const size_t list = size_t(s.topK) * 4;
  if (s.bs == 64 && G % 2 == 0)
    return launchSparse<sparseFwdKernel<T, D, 64, 2>, fwdSmem<D, 64, 2>()>(dim3(s.nB, p.H / 2, p.B), 256, fwdSmem<D, 64, 2>() + list, st, &p, nullptr, s);
  if (s.bs == 64) return launchSparse<sparseFwdKernel<T, D, 64, 1>, fwdSmem<D, 64, 1>()>(dim3(s.nB, p.H, p.B), 128, fwdSmem<D, 64, 1>() + list, st, &p, nullptr, s);
  if (s.bs == 128) return launchSparse<sparseFwdKernel<T, D, 128, 1>, fwdSmem<D, 128, 1>()>(dim3(s.nB, p.H, p.B), 256, fwdSmem<D, 128, 1>() + list, st, &p, nullptr, s);
  return cudaErrorInvalidValue;
}

// The portable backward (p.delta: f32 [B, H, S] of workspace).
template <typename T, int D>
cudaError_t sparseBackwardSm80(const FlashBwdParams& p, const SparseIdx& s, cudaStream_t st) {
  using namespace sparse80;
  const int64_t rows = int64_t(p.B) * p.H * p.Sq;
  if (rows == 0) return cudaSuccess;
  deltaKernel<T, D><<<static_cast<unsigned>((rows + 3) / 4), 128, 0, st>>>(p);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const int G = p.H / p.Hkv;
  const size_t topk = size_t(s.topK) * 4, nb = size_t(s.nB) * 4;
  if (s.bs == 64) {
    e = launchSparse<sparseDkvKernel<T, D, 64>, dkvSmem<D, 64>()>(dim3(s.nB, p.Hkv, p.B), 128, dkvSmem<D, 64>() + nb, st, nullptr, &p, s);
    if (e != cudaSuccess) return e;
    if (G % 2 == 0) return launchSparse<sparseDqKernel<T, D, 64, 2>, dqSmem<D, 64, 2>()>(dim3(s.nB, p.H / 2, p.B), 256, dqSmem<D, 64, 2>() + topk, st, nullptr, &p, s);
    return launchSparse<sparseDqKernel<T, D, 64, 1>, dqSmem<D, 64, 1>()>(dim3(s.nB, p.H, p.B), 128, dqSmem<D, 64, 1>() + topk, st, nullptr, &p, s);
  }
  if (s.bs == 128) {
    e = launchSparse<sparseDkvKernel<T, D, 128>, dkvSmem<D, 128>()>(dim3(s.nB, p.Hkv, p.B), 256, dkvSmem<D, 128>() + nb, st, nullptr, &p, s);
    if (e != cudaSuccess) return e;
    return launchSparse<sparseDqKernel<T, D, 128, 1>, dqSmem<D, 128, 1>()>(dim3(s.nB, p.H, p.B), 256, dqSmem<D, 128, 1>() + topk, st, nullptr, &p, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace attention
}  // namespace dw

// Flash-attention backward for Hopper (sm_90a), FlashAttention-3's design made deterministic: TMA,
// wgmma, warp specialization, dQ accumulated in f32 in a fixed order. bf16 and f16, head dims 64
// and 128, any Sq, Sk >= 1, any B, H, Hkv (GQA / MQA), causal (bottom right) or not, strided q, k,
// v, out, dout, dq, dk, dv (d contiguous). Same math and conventions as flash_sm80.cuh's backward
// (log2-domain exp2, lse2 = lse·log2e with +inf for rows that see no key, dK and dQ scaled last).
//
//   flashBackwardSm90Scratch(p)              bytes of scratch it needs (besides p.delta); also by
//                                            sizes (B, H, Sq, D)
//   flashBackwardSm90<T, D>(p, scratch, st)  T = __nv_bfloat16 or __half, D = 64 or 128
//   Returns cudaErrorInvalidValue without launching when the layout does not suit TMA or the vector
//   accesses (a base not 16-byte aligned, a stride not a multiple of 8 elements; dk/dv: 4 bytes and
//   even strides), cudaErrorNotSupported off sm_90; the caller then takes another path. Three
//   launches, no host sync: graph-capturable.
//
// Three kernels:
//   pre   a CTA per (query block, h, b): delta_i = dout_i·out_i (into p.delta), and padded copies
//         lse2 / delta (f32 [B, H, SqPad]; rows >= Sq: +inf / 0, so they add nothing) that the
//         main kernel reads whole blocks of; zeroes the block's semaphore. (The dQ accumulator needs no zeroing: the first
//         partial in the fixed order is a bulk store, the others bulk reduce-adds.)
//   main  a CTA per (key block of 128 keys, kv head, batch), 384 threads = 3 warpgroups:
//         WG0 warp 0, the producer: K, V once (TMA), then per step Q_i, dO_i (TMA, 128-byte
//           swizzle) into a 2-stage ring (full / empty mbarriers). lse2_i, delta_i reach the
//           consumers as the `Stats` parameter says (production: kProductionStats): Staged, the consumers copy the
//           next step's rows into the other of two smem slots with 4-byte cp.async while this step
//           runs, published by the dSᵀ barrier they already share; Bulk, the producer bulk-copies
//           them into the ring stages; Global, the consumers read them from global memory.
//         WG0 warp 1, the dQ writer: per step waits for the step's semaphore, bulk-stores (first in
//           the order) or bulk-reduce-adds the two warpgroups' dQ partials (f32, staged in smem)
//           into the global accumulator, frees the staging once read, waits for completion,
//           releases the semaphore.
//         (WG0 drops to 24 registers with setmaxnreg; the writer is written to fit them.)
//         WG1, WG2, the consumers (setmaxnreg 240): each owns 64 keys and keeps their dK, dV (64 x D
//           f32) in registers for the whole CTA. Steps: the group's query heads in ascending order,
//           each over its query blocks (BM = 64 at D128, 128 at D64) in ascending order:
//             Sᵀ = K Qᵀ, dPᵀ = V dOᵀ          wgmma SS, K-major both (m64nBM)
//             Pᵀ = exp2(Sᵀ·scale·log2e − lse2), masked; dSᵀ = Pᵀ∘(dPᵀ − delta)
//             dV += Pᵀ dO, dK += dSᵀ Q        wgmma RS: A from the accumulators, B MN-major (at
//                                             D128 dV is issued before dSᵀ is computed, overlapping it)
//             dSᵀ -> smem (bf16/f16), both warpgroups sync
//             dQ_i partial = dS K             wgmma SS, both MN-major; each WG one 64 x 64 quarter
//               (D128: d columns 64·wg.., all 64 queries; D64: queries 64·wg.., all 64 columns)
//             dQ -> smem staging (in accumulator order, 16-byte stores) -> the writer.
//   post  a CTA per (query block, h, b): dq = scale·dQaccum, reordered through smem, 16-byte stores.
// Determinism: every dQ element is a sum in one fixed order. The partials of query block i (of head
//   h) are added by the key blocks that see it, {0 .. jmax(i)}, in DESCENDING key-block order: the
//   CTA of key block kb waits until semaphore(b, h, i) == jmax(i) − kb. Descending because a causal
//   CTA starts at its diagonal query block, which it is the first to reach (so it rarely waits), and
//   the grid launches the highest key block first (blockIdx.x = nKB − 1 − kb), so every CTA waits
//   only on CTAs launched before it (no deadlock while CTAs are dispatched in blockIdx order). dK
//   and dV sum over the group's heads and query blocks in program order inside one CTA.
// Non-causal CTAs of one head all start at query block 0, so they stagger by one writer hand-off
//   each at the start (the price of the fixed order; a rotated order among co-resident CTAs would
//   remove it but can deadlock when fewer CTAs fit than assumed, so it is not done).
// The lab (dev/cuda/attention/bwd_sm90.cu) checks it on the GPU against a float64 backward, two runs
// bitwise, and A/Bs the Stats variants.
#pragma once
#include <cuda.h>  // CUtensorMap types only; the encode function comes through cudaGetDriverEntryPoint
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attention/flash_bwd_sm90_ptx.cuh"
#include "attention/flash_params.h"
#include "attention/sparse_blocks.cuh"
#include "common/device_info.h"
#include "attention/sm90_tma.h"
#include "common/smem_limit.h"

namespace dw {
namespace attention {
namespace bwd90 {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DW_BWD90_DEVICE 1
#endif

constexpr int kBN = 128;  // keys per CTA (64 per consumer warpgroup)
constexpr int kThreads = 384;
constexpr int kProducerRegs = 24;
constexpr int kConsumerRegs = 240;
constexpr float kLog2e = 1.4426950408889634f;
// A dQ writer that polls its semaphore this often (tens of seconds) traps instead of hanging.
constexpr uint32_t kWatchdogSpins = 1u << 27;
// Named barriers (0 is __syncthreads): dQ staged (consumer WG w arrives, writer syncs), dQ staging
// free (writer arrives, WG w syncs), dSᵀ written (both consumer WGs).
constexpr uint32_t kBarDqFull = 1, kBarDqEmpty = 3, kBarDs = 5;

// How lse2 and delta reach the consumers (see the header). Production: Staged at D64, Global at
// D128, each within 5 % of Bulk's speed at its head dim on the H200 (the lab's A/B, 2026-12-03:
// Staged lost 3–14 % at D128, Global 19–25 % at D64) and both clean under compute-sanitizer's
// racecheck, which does not follow Bulk's hand-off (generic reads released by an mbarrier arrive,
// then the producer's async-proxy bulk copy into the stage) and reports it. Bulk stays for the lab.
enum class Stats { Staged, Bulk, Global };
template <int D>
constexpr Stats kProductionStats = D == 64 ? Stats::Staged : Stats::Global;

template <int D>
struct Cfg {
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  static constexpr int kBM = D == 128 ? 64 : 128;   // queries per step: (BM/64)·(D/64) = 2 dQ quarters
  static constexpr int kPanels = D / 64;            // 64-column (128-byte) swizzle panels of a row
  static constexpr uint32_t kKVBytes = kBN * D * 2;   // K or V
  static constexpr uint32_t kQBytes = kBM * D * 2;    // Q or dO, one stage
  static constexpr uint32_t kDSBytes = kBN * kBM * 2;  // dSᵀ, one stage: rows = keys, panels of 64 queries
  static constexpr uint32_t kDQBytes = kBM * D * 4;   // dQ staging, both warpgroups (half each)
  static constexpr uint32_t kK = 0;
  static constexpr uint32_t kV = kK + kKVBytes;
  static constexpr uint32_t kQ = kV + kKVBytes;
  static constexpr uint32_t kDO = kQ + 2 * kQBytes;
  static constexpr uint32_t kDS = kDO + 2 * kQBytes;
  static constexpr uint32_t kDQ = kDS + 2 * kDSBytes;
  static constexpr uint32_t kLse = kDQ + kDQBytes;
  static constexpr uint32_t kDelta = kLse + 2 * kBM * 4;
  static constexpr uint32_t kBar = kDelta + 2 * kBM * 4;  // kvFull, qFull[2], doFull[2], empty[2]
  static constexpr uint32_t kSmem = kBar + 8 * 7 + 1024;  // + slack to align the base to 1024
};

struct Args {
  float* dqAcc;        // f32 [B][H][nQB][BM·D]: per block two 64x64 quarters in accumulator order
  const float* lse2;   // f32 [B][H][SqPad]
  const float* delta;  // f32 [B][H][SqPad]
  int* sem;            // [B][H][nQB]
  void* dk;
  void* dv;
  Stride3 dks, dvs;
  int B, H, Hkv, Sq, Sk, nQB, nKB, SqPad;
  int causal;
  float scale, scaleLog2;
  SparseIdx sp;  // Sparse only: the selection (block size kBN), whose query blocks each key block walks
};

// The first query block key block kb touches (causal: the first query that sees its first key).
__host__ __device__ __forceinline__ int firstQueryBlock(const Args& a, int kb, int BM) {
  if (!a.causal) return 0;
  const int64_t first = int64_t(kb) * kBN - (int64_t(a.Sk) - a.Sq);
  const int64_t qb = first > 0 ? first / BM : 0;
  return int(qb < a.nQB ? qb : a.nQB);
}
// The highest key block that touches query block qb (the touching ones are exactly 0 .. this).
__device__ __forceinline__ int lastKeyBlock(const Args& a, int qb, int BM) {
  if (!a.causal) return a.nKB - 1;
  const int64_t lastRowEnd = min(int64_t(qb + 1) * BM, int64_t(a.Sq));
  const int64_t end = lastRowEnd + int64_t(a.Sk) - a.Sq;  // exclusive end of the keys its last row sees
  if (end <= 0) return -1;  // no key block touches it
  const int64_t nb = (end + kBN - 1) / kBN;
  return int(nb < a.nKB ? nb : a.nKB) - 1;
}

#ifdef DW_BWD90_DEVICE
// Pᵀ in place of Sᵀ. Accumulator layout (m64nBM f32): element 4i + 2r + e is key row
// (16·warp + lane/4 + 8r) of the warpgroup's 64, query column 8i + 2(lane%4) + e. A column below
// lim[r] is hidden for row r (the causal diagonal, or every column for a key past Sk).
template <bool Mask, int BM>
__device__ __forceinline__ void computeP(float (&s)[BM / 2], const float* lse2s, int c, const int (&lim)[2], float sl2) {
#pragma unroll
  for (int i = 0; i < BM / 8; ++i) {
    const float2 l = *reinterpret_cast<const float2*>(lse2s + 8 * i + 2 * c);
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = s[4 * i + 2 * r + e];
        const float p = sm90::fastExp2(fmaf(x, sl2, -(e ? l.y : l.x)));
        x = (Mask && 8 * i + 2 * c + e < lim[r]) ? 0.f : p;
      }
  }
}

// One (query head, query block) step counter, shared by the three roles so they agree. Dense: the
// query blocks qbFirst .. nQB − 1 of each head. Sparse: of each head, the key block's list of query
// blocks (of kBN rows: R = kBN / BM steps each); li is the position in the list.
struct Step {
  int g, qb, li;
  template <bool Sparse, int R>
  __device__ __forceinline__ void next(int qbFirst, int nQB, const int* list, int nList) {
    if constexpr (!Sparse) {
      if (++qb == nQB) qb = qbFirst, ++g;
    } else {
      if ((qb + 1) % R != 0) {
        ++qb;
        return;
      }
      if (++li == nList) li = 0, ++g;
      qb = list[li] * R;
    }
  }
};
#endif  // DW_BWD90_DEVICE

// Mode: how lse2 and delta reach the consumers (Stats; the lab A/Bs the three).
// Sparse: walk only the query blocks whose selection lists this key block (SparseK, block size kBN;
// the list and each entry's rank in the dQ order in dynamic shared memory past C::kSmem), and add
// dQ partials in descending order of each query block's selected key blocks.
template <typename T, int D, Stats Mode = Stats::Staged, bool Sparse = false>
__global__ void __launch_bounds__(kThreads, 1)
    bwdSm90Kernel(const __grid_constant__ CUtensorMap tmQ, const __grid_constant__ CUtensorMap tmDO, const __grid_constant__ CUtensorMap tmK,
                  const __grid_constant__ CUtensorMap tmV, const Args a) {
#ifdef DW_BWD90_DEVICE
  using C = Cfg<D>;
  constexpr int BM = C::kBM;
  extern __shared__ uint8_t smemRaw[];
  const uint32_t raw = sm90::smemAddr(smemRaw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  uint8_t* const sm = smemRaw + (base - raw);
  const uint32_t kvFull = base + C::kBar;
  auto qFull = [&](int s) { return base + C::kBar + 8u * (1 + s); };
  auto doFull = [&](int s) { return base + C::kBar + 8u * (3 + s); };
  auto empty = [&](int s) { return base + C::kBar + 8u * (5 + s); };

  const int wg = threadIdx.x / 128, warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  if (threadIdx.x == 0) {
    sm90::mbarInit(kvFull, 1);
    for (int s = 0; s < 2; ++s) {
      sm90::mbarInit(qFull(s), 1);
      sm90::mbarInit(doFull(s), 1);
      sm90::mbarInit(empty(s), 8);  // one arrive per consumer warp
    }
    sm90::fenceBarrierInit();
  }
  const int kb = a.nKB - 1 - int(blockIdx.x);  // highest key block first (see the header)
  const int hk = blockIdx.y, b = blockIdx.z;
  constexpr int R = kBN / BM;  // steps per query block of a sparse list
  int* const list = reinterpret_cast<int*>(smemRaw + C::kSmem);
  const int* const rank = list + (Sparse ? a.sp.nB : 0);
  int nList = 0;
  if constexpr (Sparse) nList = selectingBlocks<kThreads>(a.sp, a.Hkv, b, hk, kb, a.causal != 0, list, list + a.sp.nB);
  __syncthreads();  // the last CTA-wide barrier

  const int group = a.H / a.Hkv;
  const int64_t shift = int64_t(a.Sk) - a.Sq;
  const int qbFirst = Sparse ? 0 : firstQueryBlock(a, kb, BM);
  const int nIter = Sparse ? group * nList * R : group * (a.nQB - qbFirst);
  const Step start{0, Sparse ? (nList > 0 ? list[0] * R : 0) : qbFirst, 0};
  constexpr bool kBulk = Mode == Stats::Bulk, kGlobal = Mode == Stats::Global;

  if (wg == 0) {
    sm90::setmaxnregDec<kProducerRegs>();
    if (warp == 0 && lane == 0 && nIter > 0) {
      // ---------------- producer ----------------
      sm90::prefetchTensorMap(&tmQ);
      sm90::prefetchTensorMap(&tmDO);
      sm90::mbarArriveExpectTx(kvFull, 2 * C::kKVBytes);
#pragma unroll
      for (int p = 0; p < C::kPanels; ++p) {
        sm90::tmaLoad4d(base + C::kK + p * (kBN * 128), &tmK, kvFull, p * 64, kb * kBN, hk, b);
        sm90::tmaLoad4d(base + C::kV + p * (kBN * 128), &tmV, kvFull, p * 64, kb * kBN, hk, b);
      }
      const uint64_t keep = sm90::policyEvictLast();  // Q and dO are reread by every key block
      Step st = start;
      for (int it = 0; it < nIter; ++it) {
        const int s = it & 1, ph = (it >> 1) & 1;
        const int h = hk * group + st.g, i0 = st.qb * BM;
        const int64_t row = (int64_t(b) * a.H + h) * a.SqPad + i0;
        sm90::mbarWait(empty(s), ph ^ 1);
        sm90::mbarArriveExpectTx(qFull(s), C::kQBytes + (kBulk ? BM * 4 : 0));
#pragma unroll
        for (int p = 0; p < C::kPanels; ++p)
          sm90::tmaLoad4dHint(base + C::kQ + s * C::kQBytes + p * (BM * 128), &tmQ, qFull(s), p * 64, i0, h, b, keep);
        if (kBulk) sm90::bulkLoad(base + C::kLse + s * BM * 4, a.lse2 + row, BM * 4, qFull(s));
        sm90::mbarArriveExpectTx(doFull(s), C::kQBytes + (kBulk ? BM * 4 : 0));
#pragma unroll
        for (int p = 0; p < C::kPanels; ++p)
          sm90::tmaLoad4dHint(base + C::kDO + s * C::kQBytes + p * (BM * 128), &tmDO, doFull(s), p * 64, i0, h, b, keep);
        if (kBulk) sm90::bulkLoad(base + C::kDelta + s * BM * 4, a.delta + row, BM * 4, doFull(s));
        st.next<Sparse, R>(qbFirst, a.nQB, list, nList);
      }
    } else if (warp == 1) {
      // ---------------- dQ writer ----------------
      // (Within 24 registers: one block index relative to the group's first head, the block row,
      // a spin counter; everything else from the constant bank.)
      const int64_t blk0 = (int64_t(b) * a.H + int64_t(hk) * group) * a.nQB;
      Step st = start;
      for (int it = 0; it < nIter; ++it) {
        const int idx = st.g * a.nQB + st.qb;
        const int target = Sparse ? rank[st.li] : lastKeyBlock(a, st.qb, BM) - kb;
        if (lane == 0) {
          uint32_t spins = 0;
          while (sm90::ldAcquire(a.sem + blk0 + idx) != target) {
#ifndef DW_BWD90_NO_WATCHDOG
            if (++spins == kWatchdogSpins) __trap();  // a broken order would hang: fail loudly
#endif
          }
          sm90::fenceProxyAsyncGlobal();
        }
        __syncwarp();
#pragma unroll
        for (int w = 0; w < 2; ++w) {
          sm90::namedBarSync(kBarDqFull + w, 160);
          if (lane == 0) {  // the first in the order stores (no zeroed accumulator needed), the rest add
            float* dst = a.dqAcc + (blk0 + idx) * (BM * D) + w * (BM * D / 2);
            const uint32_t src = base + C::kDQ + w * (C::kDQBytes / 2);
            if (target == 0)
              sm90::bulkStore(dst, src, C::kDQBytes / 2);
            else
              sm90::bulkReduceAddF32(dst, src, C::kDQBytes / 2);
            sm90::bulkCommit();
          }
        }
        if (lane == 0) sm90::bulkWaitRead();  // staging read: the consumers may refill it
        __syncwarp();
        if (it + 1 < nIter) {
          sm90::namedBarArrive(kBarDqEmpty, 160);
          sm90::namedBarArrive(kBarDqEmpty + 1, 160);
        }
        if (lane == 0) {
          sm90::bulkWaitAll();  // the adds performed before the next key block may add
          sm90::fenceProxyAsyncGlobal();
          __threadfence();
          sm90::redReleaseAdd(a.sem + blk0 + idx, 1);
        }
        st.next<Sparse, R>(qbFirst, a.nQB, list, nList);
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  sm90::setmaxnregInc<kConsumerRegs>();
  const int wc = wg - 1;                 // keys 64·wc .. 64·wc+63 of the block
  const int tw = threadIdx.x - 128 * wg;  // thread in the warpgroup
  const int wq = tw >> 5, g8 = lane >> 2, c = lane & 3;
  const int keyBase = kb * kBN + 64 * wc;
  const int key0 = keyBase + 16 * wq + g8;  // this thread's keys: key0 and key0 + 8
  const float sl2 = a.scaleLog2;

  float dk[D / 2], dv[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;

  if (nIter > 0) {
    float s[BM / 2], dp[BM / 2], dq[32];
    uint32_t pf[BM / 4], dsf[BM / 4];
    // Descriptors (offsets in bytes are added >> 4). K-major: LBO unused, SBO = 8 rows of 128 B.
    // MN-major: LBO = the stride between 64-wide panels, SBO = 8 rows of 128 B; a k16 step = 2048 B.
    const uint64_t descK = sm90::descSw128(base + C::kK + wc * 64 * 128, 16, 1024);
    const uint64_t descV = sm90::descSw128(base + C::kV + wc * 64 * 128, 16, 1024);
    const uint64_t descQ = sm90::descSw128(base + C::kQ, 16, 1024);
    const uint64_t descDO = sm90::descSw128(base + C::kDO, 16, 1024);
    const uint64_t descQt = sm90::descSw128(base + C::kQ, BM * 128, 1024);
    const uint64_t descDOt = sm90::descSw128(base + C::kDO, BM * 128, 1024);
    // dQ quarter of this warpgroup: D128: A = all 64 queries of dSᵀ, B = K's d panel wc;
    // D64: A = queries 64·wc.. (dSᵀ panel wc), B = K's only panel.
    const uint64_t descDSt = sm90::descSw128(base + C::kDS + (BM == 128 ? wc * kBN * 128 : 0), kBN * 128, 1024);
    const uint64_t descKt = sm90::descSw128(base + C::kK + (BM == 64 ? wc * kBN * 128 : 0), kBN * 128, 1024);

    // Staged: consumer thread ct < 2·BM owns one float of each step's stats: row ct % BM of lse2
    // (ct < BM) or of delta, copied into slot (step & 1). Step 0's now; step it+1's during step it,
    // into the slot step it−1 read (free: its reads all precede step it−1's dSᵀ barrier), waited for
    // before step it's dSᵀ barrier, which publishes it to step it+1's reads.
    const int ct = threadIdx.x - 128;
    const bool stager = Mode == Stats::Staged && ct < 2 * BM;
    const float* statSrc = ct < BM ? a.lse2 : a.delta;
    const uint32_t statDst = base + (ct < BM ? C::kLse : C::kDelta) + 4u * uint32_t(ct % BM);
    auto stageStats = [&](const Step& x, int slot) {
      const int64_t row = (int64_t(b) * a.H + int64_t(hk) * group + x.g) * a.SqPad + int64_t(x.qb) * BM + ct % BM;
      sm90::cpAsync4(statDst + uint32_t(slot) * BM * 4, statSrc + row);
      sm90::cpAsyncCommitGroup();
    };
    if (Mode == Stats::Staged) {
      if (stager) stageStats(start, 0), sm90::cpAsyncWaitGroups();
      sm90::namedBarSync(kBarDs, 256);
    }
    sm90::mbarWait(kvFull, 0);
    Step st = start;
    for (int it = 0; it < nIter; ++it) {
      const int sg = it & 1, ph = (it >> 1) & 1;
      const int i0 = st.qb * BM;
      const uint32_t qOff = sg * C::kQBytes;
      // This step's rows of lse2 and delta: in global memory (Global; computed where read, so no
      // pointer stays live across the GEMMs), or the stage's (Bulk) or slot's (Staged) copies.
      auto statRow = [&] { return (int64_t(b) * a.H + int64_t(hk) * group + st.g) * a.SqPad + i0; };
      if (kGlobal && wc == 0 && tw < BM / 32) sm90::prefetchL1(a.lse2 + statRow() + 32 * tw), sm90::prefetchL1(a.delta + statRow() + 32 * tw);
      if (stager && it + 1 < nIter) {
        Step nx = st;
        nx.next<Sparse, R>(qbFirst, a.nQB, list, nList);
        stageStats(nx, sg ^ 1);
      }

      // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (k = d).
      sm90::mbarWait(qFull(sg), ph);
      sm90::fenceRegs(s);
      sm90::fenceRegs(dp);
      sm90::wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t ka = (kk / 4) * (kBN * 128) + (kk % 4) * 32, kq = qOff + (kk / 4) * (BM * 128) + (kk % 4) * 32;
        sm90::wgmmaSS<BM, T>(s, descK + (ka >> 4), descQ + (kq >> 4), kk > 0 ? 1 : 0);
      }
      sm90::wgmmaCommit();
      sm90::mbarWait(doFull(sg), ph);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t ka = (kk / 4) * (kBN * 128) + (kk % 4) * 32, kq = qOff + (kk / 4) * (BM * 128) + (kk % 4) * 32;
        sm90::wgmmaSS<BM, T>(dp, descV + (ka >> 4), descDO + (kq >> 4), kk > 0 ? 1 : 0);
      }
      sm90::wgmmaCommit();

      // Pᵀ while dPᵀ is still running.
      sm90::wgmmaWait<1>();
      sm90::fenceRegs(s);
      const float* lse2s = kGlobal ? a.lse2 + statRow() : reinterpret_cast<const float*>(sm + C::kLse) + sg * BM;
      const bool needMask = keyBase + 64 > a.Sk || (a.causal && int64_t(keyBase) + 63 - shift > i0);
      if (needMask) {
        int lim[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t key = key0 + 8 * r;
          const int64_t l = key >= a.Sk ? BM : (a.causal ? key - shift - i0 : 0);
          lim[r] = int(l < 0 ? 0 : (l > BM ? BM : l));
        }
        computeP<true, BM>(s, lse2s, c, lim, sl2);
      } else {
        const int lim[2] = {0, 0};
        computeP<false, BM>(s, lse2s, c, lim, sl2);
      }
      // Pᵀ as 16-bit A fragments (register q = accumulator elements 2q, 2q+1), then dV += Pᵀ dO (k =
      // queries, B MN-major). At D128 dV runs while dSᵀ is computed; at D64 (BM = 128: Sᵀ and dPᵀ
      // are 64 registers each) that would not fit in 240 registers, so dV waits for dPᵀ.
      constexpr bool kEarlyDV = D == 128;
      auto issueDV = [&] {
#pragma unroll
        for (int q = 0; q < BM / 4; ++q) pf[q] = sm90::packPair<T>(s[2 * q], s[2 * q + 1]);
        sm90::fenceRegs(pf);
        sm90::fenceRegs(dv);
        sm90::wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) sm90::wgmmaRS<D, T>(dv, &pf[4 * kk], descDOt + ((qOff + kk * 2048) >> 4));
        sm90::wgmmaCommit();
      };
      if constexpr (kEarlyDV) {
        issueDV();
        sm90::wgmmaWait<1>();  // Sᵀ, dPᵀ done; dV may still run
      } else {
        sm90::wgmmaWait<0>();
      }
      sm90::fenceRegs(dp);

      // dSᵀ = Pᵀ∘(dPᵀ − delta) as A fragments.
      const float* dls = kGlobal ? a.delta + statRow() : reinterpret_cast<const float*>(sm + C::kDelta) + sg * BM;
#pragma unroll
      for (int i = 0; i < BM / 8; ++i) {
        const float2 dl = *reinterpret_cast<const float2*>(dls + 8 * i + 2 * c);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int e0 = 4 * i + 2 * r;
          if constexpr (!kEarlyDV) pf[2 * i + r] = sm90::packPair<T>(s[e0], s[e0 + 1]);
          dsf[2 * i + r] = sm90::packPair<T>(s[e0] * (dp[e0] - dl.x), s[e0 + 1] * (dp[e0 + 1] - dl.y));
        }
      }
      if constexpr (!kEarlyDV) {
        sm90::fenceRegs(pf);
        sm90::fenceRegs(dv);
        sm90::wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) sm90::wgmmaRS<D, T>(dv, &pf[4 * kk], descDOt + ((qOff + kk * 2048) >> 4));
        sm90::wgmmaCommit();
      }
      // dSᵀ into smem (rows = keys, 128-byte swizzled panels of 64 queries) for the dQ GEMM.
      uint8_t* dsTile = sm + C::kDS + sg * C::kDSBytes;
#pragma unroll
      for (int i = 0; i < BM / 8; ++i)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int row = 64 * wc + 16 * wq + g8 + 8 * r;  // row % 8 == g8
          *reinterpret_cast<uint32_t*>(dsTile + (i / 8) * (kBN * 128) + row * 128 + (((i % 8) ^ g8) << 4) + 4 * c) = dsf[2 * i + r];
        }

      // dK += dSᵀ Q (k = queries, B MN-major).
      sm90::fenceRegs(dsf);
      sm90::fenceRegs(dk);
      sm90::wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) sm90::wgmmaRS<D, T>(dk, &dsf[4 * kk], descQt + ((qOff + kk * 2048) >> 4));
      sm90::wgmmaCommit();

      // Both warpgroups' dSᵀ in smem (and, Staged, the next step's stats), then this warpgroup's
      // dQ quarter = dS K (k = the 128 keys).
      if (stager) sm90::cpAsyncWaitGroups();
      sm90::fenceProxyAsyncShared();
      sm90::namedBarSync(kBarDs, 256);
      sm90::fenceRegs(dq);
      sm90::wgmmaFence();
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk)
        sm90::wgmmaSSTT64<T>(dq, descDSt + ((sg * C::kDSBytes + kk * 2048) >> 4), descKt + ((kk * 2048) >> 4), kk > 0 ? 1 : 0);
      sm90::wgmmaCommit();
      sm90::wgmmaWait<0>();
      sm90::fenceRegs(dq);
      sm90::fenceRegs(dk);
      sm90::fenceRegs(dv);
      sm90::fenceRegs(pf);
      sm90::fenceRegs(dsf);
      // Q, dO, lse2, delta of this stage are consumed: every lane's reads of lse2 and delta are ordered
      // before lane 0's arrive (__syncwarp), so the producer's next bulk copy cannot overtake one.
      __syncwarp();
      if (lane == 0) sm90::mbarArrive(empty(sg));

      // dQ quarter -> staging (float4 r4 of thread tw at (r4·128 + tw)·16 bytes) -> the writer.
      if (it > 0) sm90::namedBarSync(kBarDqEmpty + wc, 160);
      float4* stg = reinterpret_cast<float4*>(sm + C::kDQ + wc * (C::kDQBytes / 2)) + tw;
#pragma unroll
      for (int r4 = 0; r4 < 8; ++r4) stg[r4 * 128] = make_float4(dq[4 * r4], dq[4 * r4 + 1], dq[4 * r4 + 2], dq[4 * r4 + 3]);
      sm90::fenceProxyAsyncShared();
      sm90::namedBarArrive(kBarDqFull + wc, 160);
      st.next<Sparse, R>(qbFirst, a.nQB, list, nList);
    }
  }

  // ---------------- epilogue: dK (scaled), dV ----------------
  T* dkp = static_cast<T*>(a.dk) + int64_t(b) * a.dks.b + int64_t(hk) * a.dks.h + 2 * c;
  T* dvp = static_cast<T*>(a.dv) + int64_t(b) * a.dvs.b + int64_t(hk) * a.dvs.h + 2 * c;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key0 + 8 * r;
    if (key >= a.Sk) continue;
    T* kr = dkp + int64_t(key) * a.dks.s;
    T* vr = dvp + int64_t(key) * a.dvs.s;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      *reinterpret_cast<uint32_t*>(kr + 8 * i) = sm90::packPair<T>(dk[4 * i + 2 * r] * a.scale, dk[4 * i + 2 * r + 1] * a.scale);
      *reinterpret_cast<uint32_t*>(vr + 8 * i) = sm90::packPair<T>(dv[4 * i + 2 * r], dv[4 * i + 2 * r + 1]);
    }
  }
#else
  __trap();  // built for another architecture: the host side never launches it there
#endif
}

// ---------------- preprocess and postprocess ----------------

// 8 packed 16-bit values (a uint4) dotted with 8 others, in f32.
template <typename T>
__device__ __forceinline__ float dot8(const uint4& x, const uint4& y) {
  const uint32_t xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    float2 a, b;
    if constexpr (std::is_same<T, __half>::value) {
      a = __half22float2(*reinterpret_cast<const __half2*>(&xs[k]));
      b = __half22float2(*reinterpret_cast<const __half2*>(&ys[k]));
    } else {
      a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&xs[k]));
      b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&ys[k]));
    }
    s = fmaf(a.x, b.x, s);
    s = fmaf(a.y, b.y, s);
  }
  return s;
}

template <typename T, int D>
__global__ void __launch_bounds__(256) bwdSm90PreKernel(FlashBwdParams p, Args a) {
  constexpr int BM = Cfg<D>::kBM, TPR = D / 8, RPP = 256 / TPR;  // threads per row, rows per pass
  const int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t bh = int64_t(b) * p.H + h;
  if (threadIdx.x == 0) a.sem[bh * a.nQB + qb] = 0;
  const int sub = threadIdx.x % TPR;
  const T* dout = static_cast<const T*>(p.dout) + b * p.dos.b + h * p.dos.h + sub * 8;
  const T* out = static_cast<const T*>(p.out) + b * p.os.b + h * p.os.h + sub * 8;
  float* lse2 = const_cast<float*>(a.lse2) + bh * a.SqPad;
  float* dpad = const_cast<float*>(a.delta) + bh * a.SqPad;
#pragma unroll
  for (int r0 = 0; r0 < BM; r0 += RPP) {
    const int i = qb * BM + r0 + threadIdx.x / TPR;
    float sum = 0.f;
    if (i < p.Sq)
      sum = dot8<T>(*reinterpret_cast<const uint4*>(dout + i * p.dos.s), *reinterpret_cast<const uint4*>(out + i * p.os.s));
#pragma unroll
    for (int o = TPR / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (sub == 0) {
      if (i < p.Sq) {
        const float l = p.lse[bh * p.Sq + i];
        p.delta[bh * p.Sq + i] = sum;
        lse2[i] = l == -INFINITY ? INFINITY : l * kLog2e;
        dpad[i] = sum;
      } else {
        lse2[i] = INFINITY;  // p = 0 for padding rows
        dpad[i] = 0.f;
      }
    }
  }
}

// dQ accumulator (two 64x64 quarters per block, each in the wgmma accumulator order the main kernel
// staged) -> dq rows (scaled, T, strided). A block no key block touched (causal, rows that see no
// key) was never written: its dq is 0.
template <typename T, int D>
__global__ void __launch_bounds__(256) bwdSm90PostKernel(void* dqOut, Stride3 dqs, Args a) {
  constexpr int BM = Cfg<D>::kBM, LD = D + 8;  // padded rows: conflict-free float2 scatter
  __shared__ __align__(16) float tile[BM * LD];
  const int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int Sq = a.Sq;
  const float scale = a.scale;
  const int64_t blk = (int64_t(b) * a.H + h) * a.nQB + qb;
  const float4* src = reinterpret_cast<const float4*>(a.dqAcc + blk * (BM * D));
  const bool touched = lastKeyBlock(a, qb, BM) >= 0;
  const int w = threadIdx.x / 128, t = threadIdx.x % 128;
  const int row = 16 * (t / 32) + (t % 32) / 4, colIn = 2 * (t % 4);
#pragma unroll
  for (int r4 = 0; r4 < 8; ++r4) {
    const float4 v = touched ? src[w * (BM * D / 8) + r4 * 128 + t] : make_float4(0.f, 0.f, 0.f, 0.f);
    const int R = BM == 64 ? row : 64 * w + row;
    const int Cc = (BM == 64 ? 64 * w : 0) + 8 * r4 + colIn;
    *reinterpret_cast<float2*>(&tile[R * LD + Cc]) = make_float2(v.x, v.y);
    *reinterpret_cast<float2*>(&tile[(R + 8) * LD + Cc]) = make_float2(v.z, v.w);
  }
  __syncthreads();
  T* dq = static_cast<T*>(dqOut) + b * dqs.b + h * dqs.h;
  for (int k = threadIdx.x; k < BM * D / 8; k += 256) {
    const int R = k / (D / 8), c8 = k % (D / 8);
    const int i = qb * BM + R;
    if (i >= Sq) continue;
    const float4 x0 = *reinterpret_cast<const float4*>(&tile[R * LD + c8 * 8]);
    const float4 x1 = *reinterpret_cast<const float4*>(&tile[R * LD + c8 * 8 + 4]);
    uint4 o;
    o.x = sm90::packPair<T>(x0.x * scale, x0.y * scale);
    o.y = sm90::packPair<T>(x0.z * scale, x0.w * scale);
    o.z = sm90::packPair<T>(x1.x * scale, x1.y * scale);
    o.w = sm90::packPair<T>(x1.z * scale, x1.w * scale);
    *reinterpret_cast<uint4*>(dq + i * dqs.s + c8 * 8) = o;
  }
}

// ---------------- host side ----------------
inline size_t align256(size_t x) { return (x + 255) / 256 * 256; }

// Scratch pieces, each 256-byte aligned: dQ accumulator, lse2, delta (padded), semaphores.
struct ScratchLayout {
  size_t acc = 0, lse2 = 0, delta = 0, sem = 0, total = 0;
  int BM = 0, nQB = 0, SqPad = 0;
};
inline ScratchLayout scratchLayout(int B, int H, int Sq, int D) {
  ScratchLayout l;
  if ((D != 64 && D != 128) || B < 1 || H < 1 || Sq < 1) return l;
  l.BM = D == 128 ? Cfg<128>::kBM : Cfg<64>::kBM;
  l.nQB = (Sq + l.BM - 1) / l.BM;
  l.SqPad = l.nQB * l.BM;
  const size_t bh = size_t(B) * H;
  l.lse2 = align256(bh * l.SqPad * D * sizeof(float));
  l.delta = l.lse2 + align256(bh * l.SqPad * sizeof(float));
  l.sem = l.delta + align256(bh * l.SqPad * sizeof(float));
  l.total = l.sem + align256(bh * l.nQB * sizeof(int));
  return l;
}
inline ScratchLayout scratchLayout(const FlashBwdParams& p) { return scratchLayout(p.B, p.H, p.Sq, p.D); }

// A stride of a dimension longer than 1 must be a multiple of m elements.
inline bool strideOk(int64_t st, int extent, int64_t m) { return extent <= 1 || st % m == 0; }

}  // namespace bwd90

// Bytes of scratch flashBackwardSm90 needs besides p.delta (0 for an unsupported head dim); by sizes
// for flash.cu's flashBackwardWorkspace entry point, which sizes the plan's workspace.
inline size_t flashBackwardSm90Scratch(int B, int H, int Sq, int D) { return bwd90::scratchLayout(B, H, Sq, D).total; }
inline size_t flashBackwardSm90Scratch(const FlashBwdParams& p) { return bwd90::scratchLayout(p).total; }
// The sparse backward's: its query blocks are whole 128-row blocks of the selection, so the padded
// layout covers Sq rounded up to 128 (at D 128 both 64-row halves of the last block exist).
inline size_t flashBackwardSparseSm90Scratch(int B, int H, int Sq, int D) { return bwd90::scratchLayout(B, H, (Sq + 127) / 128 * 128, D).total; }

namespace bwd90 {
// The most blocks a sparse launch takes: it adds a query block and its rank per key block, 8 · nB
// bytes, to the kernel's dynamic shared memory, which with the static (1 KiB kept for it:
// selectingBlocks' warp counts) stays within the 227 KiB a CTA may have (about 3.9 K blocks).
template <int D>
constexpr int sparseMaxBlocks() { return (227 * 1024 - 1024 - int(Cfg<D>::kSmem)) / 8; }

// The launcher of every variant (Stats: see the kernel). sp: a SparseK selection (block size kBN,
// Sq = Sk, at most kSparseMaxBlocks blocks), or null for dense attention.
template <typename T, int D, Stats Mode, bool Sparse = false>
cudaError_t flashBackwardSm90Impl(const FlashBwdParams& p, void* scratch, cudaStream_t stream, const SparseIdx* sp = nullptr) {
  using C = Cfg<D>;
  if (Sparse && (sp == nullptr || sp->bs != kBN || p.Sq != p.Sk || sp->nB != (p.Sk + kBN - 1) / kBN || sp->nB > sparseMaxBlocks<D>())) return cudaErrorInvalidValue;
  if (p.D != D || p.B < 1 || p.H < 1 || p.Hkv < 1 || p.H % p.Hkv != 0 || p.Sq < 1 || p.Sk < 1) return cudaErrorInvalidValue;
  if (p.B > 65535 || p.H > 65535 || scratch == nullptr || reinterpret_cast<uintptr_t>(scratch) % 256 != 0) return cudaErrorInvalidValue;
  if (p.lse == nullptr || p.delta == nullptr || p.out == nullptr || p.dq == nullptr || p.dk == nullptr || p.dv == nullptr)
    return cudaErrorInvalidValue;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  if (computeCapability(dev) != 90) return cudaErrorNotSupported;
  // 16-byte vector rows: out, dout (pre), dq (post); 4-byte pairs: dk, dv.
  auto vec16 = [&](const void* ptr, Stride3 s, int heads, int S) {
    return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && strideOk(s.b, p.B, 8) && strideOk(s.h, heads, 8) && strideOk(s.s, S, 8);
  };
  auto vec4 = [&](const void* ptr, Stride3 s, int heads, int S) {
    return reinterpret_cast<uintptr_t>(ptr) % 4 == 0 && strideOk(s.b, p.B, 2) && strideOk(s.h, heads, 2) && strideOk(s.s, S, 2);
  };
  if (!vec16(p.out, p.os, p.H, p.Sq) || !vec16(p.dout, p.dos, p.H, p.Sq) || !vec16(p.dq, p.dqs, p.H, p.Sq) ||
      !vec4(p.dk, p.dks, p.Hkv, p.Sk) || !vec4(p.dv, p.dvs, p.Hkv, p.Sk))
    return cudaErrorInvalidValue;
  const CUtensorMapDataType dt = std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  CUtensorMap mq, mdo, mk, mv;
  if (!makeHeadMap(&mq, dt, p.q, D, p.Sq, p.H, p.B, p.qs, C::kBM) || !makeHeadMap(&mdo, dt, p.dout, D, p.Sq, p.H, p.B, p.dos, C::kBM) ||
      !makeHeadMap(&mk, dt, p.k, D, p.Sk, p.Hkv, p.B, p.ks, kBN) || !makeHeadMap(&mv, dt, p.v, D, p.Sk, p.Hkv, p.B, p.vs, kBN))
    return cudaErrorInvalidValue;

  // Sparse: steps are whole 128-row query blocks (R of BM rows each), so the layout is padded to them.
  const ScratchLayout l = scratchLayout(p.B, p.H, Sparse ? (p.Sq + kBN - 1) / kBN * kBN : p.Sq, D);
  uint8_t* sc = static_cast<uint8_t*>(scratch);
  Args a;
  a.dqAcc = reinterpret_cast<float*>(sc + l.acc);
  a.lse2 = reinterpret_cast<const float*>(sc + l.lse2);
  a.delta = reinterpret_cast<const float*>(sc + l.delta);
  a.sem = reinterpret_cast<int*>(sc + l.sem);
  a.dk = p.dk;
  a.dv = p.dv;
  a.dks = p.dks;
  a.dvs = p.dvs;
  a.B = p.B;
  a.H = p.H;
  a.Hkv = p.Hkv;
  a.Sq = p.Sq;
  a.Sk = p.Sk;
  a.nQB = l.nQB;
  a.nKB = (p.Sk + kBN - 1) / kBN;
  a.SqPad = l.SqPad;
  a.causal = p.causal ? 1 : 0;
  a.scale = p.scale;
  a.scaleLog2 = p.scale * kLog2e;
  a.sp = Sparse ? *sp : SparseIdx{nullptr, 0, 0, 0};

  const dim3 qGrid(unsigned(l.nQB), unsigned(p.H), unsigned(p.B));
  bwdSm90PreKernel<T, D><<<qGrid, 256, 0, stream>>>(p, a);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  auto kernel = bwdSm90Kernel<T, D, Mode, Sparse>;
  constexpr int kSmemMax = int(C::kSmem) + (Sparse ? 8 * sparseMaxBlocks<D>() : 0);
  if ((e = setSmemLimitOnce<bwdSm90Kernel<T, D, Mode, Sparse>, kSmemMax>(dev)) != cudaSuccess) return e;
  const size_t smem = C::kSmem + (Sparse ? 8 * size_t(sp->nB) : 0);
  kernel<<<dim3(unsigned(a.nKB), unsigned(p.Hkv), unsigned(p.B)), kThreads, smem, stream>>>(mq, mdo, mk, mv, a);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  bwdSm90PostKernel<T, D><<<qGrid, 256, 0, stream>>>(p.dq, p.dqs, a);
  return cudaGetLastError();
}
}  // namespace bwd90

// The Hopper backward (see the header of this file). T = __nv_bfloat16 or __half, D = 64 or 128.
template <typename T, int D>
cudaError_t flashBackwardSm90(const FlashBwdParams& p, void* scratch, cudaStream_t stream) {
  return bwd90::flashBackwardSm90Impl<T, D, bwd90::kProductionStats<D>>(p, scratch, stream);
}

// The same backward over a SparseK selection of 128-key blocks (sparsek.cu; at most
// bwd90::sparseMaxBlocks<D>() blocks, else cudaErrorInvalidValue): each key block walks only the
// query blocks that chose it. Scratch as flashBackwardSm90's (flashBackwardSm90Scratch).
template <typename T, int D>
cudaError_t flashBackwardSparseSm90(const FlashBwdParams& p, const SparseIdx& sp, void* scratch, cudaStream_t stream) {
  return bwd90::flashBackwardSm90Impl<T, D, bwd90::kProductionStats<D>, true>(p, scratch, stream, &sp);
}

}  // namespace attention
}  // namespace dw

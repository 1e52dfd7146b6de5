// Flash-attention forward for Hopper (sm_90a), the FlashAttention-3 way: TMA, wgmma, warp
// specialization. bf16 and f16, head dims 64 and 128, any Sq, Sk >= 1, any B, H, Hkv (GQA / MQA),
// causal (bottom right) or not, strided q/k/v/out (d contiguous; [B,H,S,D], [B,S,H,D], packed QKV).
//
//   flashForwardSm90<T, D>(params, stream)  T = __nv_bfloat16 or __half, D = 64 or 128.
//   Returns cudaErrorInvalidValue without launching when the layout does not suit TMA (a base
//   address not 16-byte aligned, a stride (of a dimension longer than 1) not a multiple of 16 bytes,
//   out not 4-byte aligned or with odd strides), or params.D != D; cudaErrorNotSupported on a device
//   that is not sm_90. The caller then takes another path.
//
// Tiling: one CTA per 128-row query tile of one (b, h), 384 threads = 3 warpgroups.
//   WG0, the producer (setmaxnreg down to 24 registers): one thread issues TMA loads: the Q tile
//     once, then per key block (128 keys) K and V into an S-stage ring (S = 2 at D128, 4 at D64), each
//     stage guarded by a full barrier (TMA transaction bytes) and an empty barrier (one arrive per
//     consumer warp). 4-D tensor maps (d, s, head, batch) with the caller's strides: out-of-range
//     rows of a partial tile are zero-filled by TMA (and still counted in the transaction bytes).
//   WG1, WG2, the consumers (setmaxnreg up to 240): each owns 64 query rows of the tile and keeps,
//     per thread, S (64 x 128 f32 scores: 64 regs), O (64 x D f32: 32 or 64 regs), P (S as 16-bit
//     pairs: 32 regs), and the running max m and sum l of its two rows.
//       S = Q·Kᵀ   wgmma m64n128k16, both operands in smem (K-major, 128-byte swizzle), D/16 steps.
//       O += P·V   wgmma m64nDk16 RS form: P from registers (the S accumulator layout repacked as the
//                  A fragment, no shuffles), V from smem as an MN-major operand (transpose bit).
//     Online softmax in FP32 in log2 space: p = 2^(s·scale·log2e − m·scale·log2e) (one FFMA + ex2),
//     O and l rescaled by 2^(m_old − m_new) when the max moves; lse = (m·scale·log2e + log2 l)·ln 2.
// Pipeline (why: the tensor cores must never wait on the exp / max work):
//   * intra-warpgroup overlap: iteration j issues S_j = Q·K_jᵀ and O += P_{j-1}·V_{j-1} back to back,
//     waits only for S_j, runs softmax(S_j) while the PV wgmma is still running, then waits for it,
//     rescales O and repacks P_j;
//   * ping-pong: two named barriers make the consumer warpgroups issue their GEMMs in turn, so one's
//     softmax runs while the other's GEMMs occupy the tensor cores.
//   Key blocks are visited from last to first, so the masked ones (the partial block at Sk, the causal
//   diagonal) come first and the mask code runs only there; causal tiles skip fully masked blocks.
// Key-split mode (grids of 128-row tiles under one wave, e.g. the seed's B1 H8 S512 D64: 32 tiles on
//   132 SMs): 64-row tiles, twice the CTAs, and the two consumer warpgroups share the tile's rows and
//   take alternate key blocks, so a tile's critical path is half its blocks; at the end warpgroup 1
//   hands O, m and l to warpgroup 0 through shared memory, which merges them in that fixed order
//   (deterministic) and writes the tile. No ping-pong there (the two may see different block counts).
// Grid: 1-D over (query tile, b·h), ordered so that groups of heads whose K and V fit in ~24 MB of L2
//   are done together, and within a group the heaviest (causal: last) query tiles start first.
// Output: each thread stores its O pairs (4 bytes) directly; rows >= Sq are never written. A row that
//   sees no key gets O = 0 and lse = -inf.
#pragma once
#include <cuda.h>  // CUtensorMap and the encode function's types only (no -lcuda: the driver entry point is looked up)
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attention/flash_params.h"
#include "attention/sparse_blocks.cuh"
#include "common/device_info.h"
#include "attention/sm90_ptx.cuh"
#include "attention/sm90_tma.h"
#include "common/smem_limit.h"

namespace dw {
namespace attention {
namespace fwd90 {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DW_FWD90_DEVICE 1
#endif

constexpr int kBM = 128;  // query rows per CTA (64 per consumer warpgroup)
constexpr int kBN = 128;  // keys per block
constexpr int kThreads = 384;
constexpr int kProducerRegs = 24;
constexpr int kConsumerRegs = 240;

template <int D>
struct Cfg {
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  static constexpr int kStages = D == 128 ? 2 : 4;
  static constexpr int kPanels = D / 64;                  // 64-column (128-byte) swizzle panels
  static constexpr uint32_t kQBytes = kBM * D * 2;        // one panel: kBM * 128 bytes
  static constexpr uint32_t kKVBytes = kBN * D * 2;       // one K or V stage; one panel: kBN * 128
  static constexpr uint32_t kQOff = 0;
  static constexpr uint32_t kKOff = kQOff + kQBytes;
  static constexpr uint32_t kVOff = kKOff + kStages * kKVBytes;
  static constexpr uint32_t kBarOff = kVOff + kStages * kKVBytes;
  static constexpr uint32_t kBarCount = 1 + 4 * kStages;  // qFull, kFull[], kEmpty[], vFull[], vEmpty[]
  static constexpr uint32_t kSmem = kBarOff + 8 * kBarCount + 1024;  // + slack to align the base to 1024
};

struct Args {
  void* out;
  float* lse;
  Stride3 os;
  int B, H, Hkv, Sq, Sk;
  int rows;        // query rows per tile: kBM, or 64 in the key-split mode
  int numM;        // query tiles per (b, h)
  int groupHeads;  // (b, h) pairs per L2 group of the tile order
  int causal;
  float scaleLog2;  // scale * log2(e)
  SparseIdx sp;     // Sparse only: the selection (block size kBN = kBM: query tile m is query block m)
};

#ifdef DW_FWD90_DEVICE
// The tile of this CTA: query tile m of (b, h). See the grid order in the header.
__device__ __forceinline__ void decodeTile(const Args& a, int& m, int& b, int& h) {
  const int L = blockIdx.x;
  const int BH = a.B * a.H;
  const int per = a.groupHeads * a.numM;
  const int grp = L / per;
  const int r = L - grp * per;
  const int gHeads = min(a.groupHeads, BH - grp * a.groupHeads);
  const int mRev = r / gHeads;
  const int bh = grp * a.groupHeads + (r - mRev * gHeads);
  m = a.numM - 1 - mRev;
  b = bh / a.H;
  h = bh - b * a.H;
}

// Key blocks this tile visits: [0, nBlocks).
__device__ __forceinline__ int numKeyBlocks(const Args& a, int m) {
  int64_t end = a.Sk;
  if (a.causal) {
    const int64_t lastRow = min(int64_t(a.Sq), int64_t(m + 1) * a.rows) - 1;
    end = min(end, lastRow + 1 + int64_t(a.Sk) - a.Sq);
  }
  return end > 0 ? int((end + kBN - 1) / kBN) : 0;
}

// S = Q·Kᵀ for this warpgroup's 64 rows: D/16 wgmma k-steps over the 128-byte swizzle panels.
template <typename T, int D>
__device__ __forceinline__ void gemmQK(float (&s)[kBN / 2], uint64_t qDesc, uint64_t kDesc) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t qOff = (kk / 4) * (kBM * 128) + (kk % 4) * 32;
    const uint32_t kOff = (kk / 4) * (kBN * 128) + (kk % 4) * 32;
    sm90::wgmmaSS<kBN, T>(s, qDesc + (qOff >> 4), kDesc + (kOff >> 4), kk > 0 ? 1 : 0);
  }
}

// O += P·V: kBN/16 k-steps of 16 keys (2048 bytes of the MN-major V tile each).
template <typename T, int D>
__device__ __forceinline__ void gemmPV(float (&o)[D / 2], const uint32_t (&p)[kBN / 4], uint64_t vDesc) {
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk) sm90::wgmmaRS<D, T>(o, &p[4 * kk], vDesc + ((kk * 2048) >> 4));
}

// Accumulator layout (m64nN f32, per thread): element 4i + 2r + e is row (lane/4 + 8r) of the warp's
// 16, column 8i + 2(lane%4) + e. Keys at or past lim[r] (exclusive visible end of row r) get -inf.
__device__ __forceinline__ void applyMask(float (&s)[kBN / 2], int col0, const int (&lim)[2]) {
#pragma unroll
  for (int i = 0; i < kBN / 8; ++i)
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        if (col0 + 8 * i + e >= lim[r]) s[4 * i + 2 * r + e] = -INFINITY;
}

// One online-softmax step on S (in place: S becomes P = 2^(s·sl2 − m·sl2), unnormalized). corr[r]
// is the factor for O and l of row r. Row statistics are shared across the quad (lanes 4g..4g+3).
template <bool First>
__device__ __forceinline__ void softmaxStep(float (&s)[kBN / 2], float (&m)[2], float (&l)[2], float (&corr)[2], float sl2) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = m[r];
#pragma unroll
    for (int i = 0; i < kBN / 8; ++i) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * r], s[4 * i + 2 * r + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float ms = mx == -INFINITY ? 0.f : mx * sl2;  // a row with nothing visible yet: all p = 0
    corr[r] = First ? 1.f : sm90::fastExp2(m[r] * sl2 - ms);
    m[r] = mx;
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kBN / 8; ++i)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float p = sm90::fastExp2(fmaf(s[4 * i + 2 * r + e], sl2, -ms));
        s[4 * i + 2 * r + e] = p;
        sum += p;
      }
    l[r] = First ? sum : l[r] * corr[r] + sum;
  }
}

// The S accumulator as the A fragments of the PV wgmma: k-step kk (keys 16kk..16kk+15) needs
// {row g cols 2c,2c+1}, {row g+8 same}, {row g cols 8+2c..}, {row g+8 same} = s[8kk .. 8kk+7] in
// order, so P register q is simply the pair (s[2q], s[2q+1]).
template <typename T>
__device__ __forceinline__ void packP(const float (&s)[kBN / 2], uint32_t (&p)[kBN / 4]) {
#pragma unroll
  for (int q = 0; q < kBN / 4; ++q) p[q] = sm90::packPair<T>(s[2 * q], s[2 * q + 1]);
}
#endif  // DW_FWD90_DEVICE

// Sparse: visit only the key blocks the tile's query block selected (SparseK, block size 128; its
// list in dynamic shared memory past C::kSmem), last first, as the dense order.
template <typename T, int D, bool PingPong, bool Split, bool Pdl, bool Sparse = false>
__global__ void __launch_bounds__(kThreads, 1)
    flashFwdSm90Kernel(const __grid_constant__ CUtensorMap tmQ, const __grid_constant__ CUtensorMap tmK,
                       const __grid_constant__ CUtensorMap tmV, const Args a) {
#ifdef DW_FWD90_DEVICE
  using C = Cfg<D>;
  constexpr int S = C::kStages;
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  const uint32_t barBase = base + C::kBarOff;
  const uint32_t qFull = barBase;
  auto kFull = [&](int s) { return barBase + 8u * (1 + s); };
  auto kEmpty = [&](int s) { return barBase + 8u * (1 + S + s); };
  auto vFull = [&](int s) { return barBase + 8u * (1 + 2 * S + s); };
  auto vEmpty = [&](int s) { return barBase + 8u * (1 + 3 * S + s); };

  const int wg = threadIdx.x / 128;
  const int lane = threadIdx.x & 31;

  if (threadIdx.x == 0) {
    sm90::mbarInit(qFull, 1);
    for (int s = 0; s < S; ++s) {
      sm90::mbarInit(kFull(s), 1);
      sm90::mbarInit(vFull(s), 1);
      sm90::mbarInit(kEmpty(s), Split ? 4 : 8);  // one arrive per consumer warp that reads the stage
      sm90::mbarInit(vEmpty(s), Split ? 4 : 8);
    }
    sm90::fenceBarrierInit();
  }
  int m, b, h;
  decodeTile(a, m, b, h);
  // Sparse: the selected key blocks, ascending (the visit order below is from the last).
  int* const sel = reinterpret_cast<int*>(smemRaw + C::kSmem);
  __shared__ int selCount;
  if constexpr (Sparse) {
    const int* row = selectionRow(a.sp, a.Hkv, b, h / (a.H / a.Hkv), m);
    for (int t = threadIdx.x; t < a.sp.topK; t += kThreads) sel[t] = row[t];
    if (threadIdx.x == 0) selCount = listLength(a.sp, row);
  }
  __syncthreads();  // the last CTA-wide barrier: producer threads exit early

  const int nBlocks = Sparse ? selCount : numKeyBlocks(a, m);
  auto blockAt = [&](int j) { return Sparse ? sel[j] : j; };  // the key block of visit position j

  if (wg == 0) {
    // ---------------- producer ----------------
    sm90::setmaxnregDec<kProducerRegs>();
    if (threadIdx.x == 0 && nBlocks > 0) {
      sm90::prefetchTensorMap(&tmK);
      sm90::prefetchTensorMap(&tmV);
      if (Pdl) sm90::gridDepWait();  // the grid before (which wrote q, k, v) is done
      const int hk = h / (a.H / a.Hkv);
      // Split: 64 rows into the first half of each panel (the panel stride stays kBM * 128).
      sm90::mbarArriveExpectTx(qFull, Split ? C::kQBytes / 2 : C::kQBytes);
#pragma unroll
      for (int p = 0; p < C::kPanels; ++p) sm90::tmaLoad4d(base + C::kQOff + p * (kBM * 128), &tmQ, qFull, p * 64, m * a.rows, h, b);
      const uint64_t keep = sm90::policyEvictLast();  // K and V are reread by the head's other tiles
      int stage = 0, phase = 0;
      for (int it = 0; it < nBlocks; ++it) {
        const int j = nBlocks - 1 - it;
        sm90::mbarWait(kEmpty(stage), phase ^ 1);
        sm90::mbarArriveExpectTx(kFull(stage), C::kKVBytes);
#pragma unroll
        for (int p = 0; p < C::kPanels; ++p)
          sm90::tmaLoad4dHint(base + C::kKOff + stage * C::kKVBytes + p * (kBN * 128), &tmK, kFull(stage), p * 64, blockAt(j) * kBN, hk, b, keep);
        sm90::mbarWait(vEmpty(stage), phase ^ 1);
        sm90::mbarArriveExpectTx(vFull(stage), C::kKVBytes);
#pragma unroll
        for (int p = 0; p < C::kPanels; ++p)
          sm90::tmaLoad4dHint(base + C::kVOff + stage * C::kKVBytes + p * (kBN * 128), &tmV, vFull(stage), p * 64, blockAt(j) * kBN, hk, b, keep);
        if (++stage == S) stage = 0, phase ^= 1;
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  sm90::setmaxnregInc<kConsumerRegs>();
  if (Pdl) sm90::gridDepWait();  // nothing of out or lse is written before the grid before is done
  // cw: 0 or 1. Rows cw*64 .. cw*64+63 of the tile; in the key-split mode both own the tile's 64 rows
  // and take alternate key blocks (cw, cw + 2, ...).
  const int cw = wg - 1;
  const int t = threadIdx.x - 128 * wg;
  const int g = lane >> 2, c = lane & 3;
  const int wgRow = m * a.rows + (Split ? 0 : cw * 64);
  const int row0 = wgRow + (t >> 5) * 16 + g;  // this thread's rows: row0, row0 + 8
  const float sl2 = a.scaleLog2;
  const int shift = a.Sk - a.Sq;
  int lim[2];  // exclusive end of the visible keys of each row
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t e = a.causal ? int64_t(row0 + 8 * r) + shift + 1 : int64_t(a.Sk);
    lim[r] = int(e < 0 ? 0 : (e > a.Sk ? a.Sk : e));
  }
  const int64_t wgFirstRow = wgRow;
  // This warpgroup's key blocks, as indices `it` of the producer's order (block nBlocks - 1 - it):
  // first, first + step, ... (`mine` of them); ring stage and phase follow from it.
  constexpr int step = Split ? 2 : 1;
  const int first = Split ? cw : 0;
  const int mine = nBlocks > first ? (nBlocks - first + step - 1) / step : 0;
  auto stageOf = [](int it) { return it % S; };
  auto phaseOf = [](int it) { return (it / S) & 1; };

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f}, corr[2];

  if (mine > 0) {
    float s[kBN / 2];
    uint32_t pf[kBN / 4];
    const uint64_t qDesc = sm90::descSw128(base + C::kQOff + (Split ? 0 : cw * 64 * 128), 16, 1024);
    const uint64_t kDesc0 = sm90::descSw128(base + C::kKOff, 16, 1024);
    const uint64_t vDesc0 = sm90::descSw128(base + C::kVOff, kBN * 128, 1024);
    constexpr uint32_t kStageDesc = C::kKVBytes >> 4;
    // Does key block j need the mask for some row of this warpgroup?
    auto needMask = [&](int j) {
      const int64_t last = int64_t(j + 1) * kBN;  // one past the block's last key
      return last > a.Sk || (a.causal && last - 1 > wgFirstRow + shift);
    };
    const uint32_t myBar = 1 + cw, other = 2 - cw;  // named barriers 1, 2 order the GEMM issue
    if (PingPong && cw == 1) sm90::namedBarArrive(1, 256);  // warpgroup 0 goes first

    sm90::mbarWait(qFull, 0);
    // This warpgroup's first block: S only.
    {
      sm90::mbarWait(kFull(stageOf(first)), phaseOf(first));
      if (PingPong) sm90::namedBarSync(myBar, 256);
      sm90::fenceRegs(s);
      sm90::wgmmaFence();
      gemmQK<T, D>(s, qDesc, kDesc0 + stageOf(first) * kStageDesc);
      sm90::wgmmaCommit();
      if (PingPong) sm90::namedBarArrive(other, 256);
      sm90::wgmmaWait<0>();
      sm90::fenceRegs(s);
      if (lane == 0) sm90::mbarArrive(kEmpty(stageOf(first)));
      const int j = blockAt(nBlocks - 1 - first);
      if (needMask(j)) applyMask(s, j * kBN + 2 * c, lim);
      softmaxStep<true>(s, mrow, lrow, corr, sl2);
      packP<T>(s, pf);
    }
    for (int n = 1; n < mine; ++n) {
      const int it = first + n * step, prev = it - step;
      const int j = blockAt(nBlocks - 1 - it);
      const int sK = stageOf(it), sV = stageOf(prev);
      sm90::mbarWait(kFull(sK), phaseOf(it));
      sm90::mbarWait(vFull(sV), phaseOf(prev));
      if (PingPong) sm90::namedBarSync(myBar, 256);
      sm90::fenceRegs(s);
      sm90::fenceRegs(o);
      sm90::fenceRegs(pf);
      sm90::wgmmaFence();
      gemmQK<T, D>(s, qDesc, kDesc0 + sK * kStageDesc);
      sm90::wgmmaCommit();
      gemmPV<T, D>(o, pf, vDesc0 + sV * kStageDesc);
      sm90::wgmmaCommit();
      if (PingPong) sm90::namedBarArrive(other, 256);
      sm90::wgmmaWait<1>();  // S_j is ready; P_{j+1}·V_{j+1} may still run
      sm90::fenceRegs(s);
      if (lane == 0) sm90::mbarArrive(kEmpty(sK));
      if (needMask(j)) {
        applyMask(s, j * kBN + 2 * c, lim);
        softmaxStep<false>(s, mrow, lrow, corr, sl2);
      } else {
        softmaxStep<false>(s, mrow, lrow, corr, sl2);
      }
      sm90::wgmmaWait<0>();
      sm90::fenceRegs(o);
      sm90::fenceRegs(pf);
      if (lane == 0) sm90::mbarArrive(vEmpty(sV));
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o[4 * i + 0] *= corr[0];
        o[4 * i + 1] *= corr[0];
        o[4 * i + 2] *= corr[1];
        o[4 * i + 3] *= corr[1];
      }
      packP<T>(s, pf);
    }
    // The last P·V.
    const int last = first + (mine - 1) * step;
    const int sV = stageOf(last);
    sm90::mbarWait(vFull(sV), phaseOf(last));
    if (PingPong) sm90::namedBarSync(myBar, 256);
    sm90::fenceRegs(o);
    sm90::fenceRegs(pf);
    sm90::wgmmaFence();
    gemmPV<T, D>(o, pf, vDesc0 + sV * kStageDesc);
    sm90::wgmmaCommit();
    if (PingPong && cw == 0) sm90::namedBarArrive(other, 256);  // warpgroup 1's last arrive has no partner
    sm90::wgmmaWait<0>();
    sm90::fenceRegs(o);
    if (lane == 0) sm90::mbarArrive(vEmpty(sV));
  }

  if (Pdl) sm90::gridDepLaunch();  // the next grid may start its prologue (it waits for this one's writes)

  // ---------------- key-split merge ----------------
  // Warpgroup 1 hands its O, m and l (the same rows, other keys) to warpgroup 0 through the K ring
  // (free once both are past their last block: every loaded block was consumed), which merges them
  // in this fixed order and writes the tile.
  if (Split) {
    float* xch = reinterpret_cast<float*>(smemRaw + (base + C::kKOff - sm90::smemAddr(smemRaw)));
    // A thread hands over D/2 + 4 floats (O, then m and l of its two rows), stored [D/2 + 4][128] so
    // a warp's accesses are consecutive. They fit in the K ring (S · kBN · D · 2 bytes).
    static_assert((D / 2 + 4) * 128 * 4 <= C::kStages * C::kKVBytes, "the hand-over fits in the K ring");
    sm90::namedBarSync(3, 256);
    if (cw == 1) {
#pragma unroll
      for (int i = 0; i < D / 2; ++i) xch[i * 128 + t] = o[i];
#pragma unroll
      for (int r = 0; r < 2; ++r) xch[(D / 2 + r) * 128 + t] = mrow[r], xch[(D / 2 + 2 + r) * 128 + t] = lrow[r];
    }
    sm90::namedBarSync(3, 256);
    if (cw == 1) return;
    float f0[2], f1[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m1 = xch[(D / 2 + r) * 128 + t], l1 = xch[(D / 2 + 2 + r) * 128 + t];
      const float mx = fmaxf(mrow[r], m1);
      const float ms = mx == -INFINITY ? 0.f : mx * sl2;
      f0[r] = sm90::fastExp2(mrow[r] * sl2 - ms);  // 0 for a side that saw no key (m = -inf)
      f1[r] = sm90::fastExp2(m1 * sl2 - ms);
      lrow[r] = lrow[r] * f0[r] + l1 * f1[r];
      mrow[r] = mx;
    }
#pragma unroll
    for (int i = 0; i < D / 2; ++i) {
      const int r = (i >> 1) & 1;  // element 4k + 2r + e belongs to row r
      o[i] = o[i] * f0[r] + xch[i * 128 + t] * f1[r];
    }
  }

  // ---------------- epilogue ----------------
  T* out = static_cast<T*>(a.out) + int64_t(b) * a.os.b + int64_t(h) * a.os.h;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = lrow[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = row0 + 8 * r;
    if (row >= a.Sq) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    T* orow = out + int64_t(row) * a.os.s + 2 * c;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<uint32_t*>(orow + 8 * i) = sm90::packPair<T>(o[4 * i + 2 * r] * inv, o[4 * i + 2 * r + 1] * inv);
    if (c == 0 && a.lse != nullptr)
      a.lse[(int64_t(b) * a.H + h) * a.Sq + row] = l > 0.f ? (mrow[r] * sl2 + __log2f(l)) * 0.6931471805599453f : -INFINITY;
  }
#else
  __trap();  // built for another architecture: the host side never launches it there
#endif
}

// ---------------- host side ----------------
// PingPong: the two consumer warpgroups take 64 rows each of a 128-row tile and issue their GEMMs in
// turn. Split: they share a 64-row tile and take alternate key blocks (twice the CTAs, half the
// blocks on each tile's critical path: for grids under one wave). Not both.
// Pdl: launched as a programmatic dependent of the grid before it in the stream, so its start-up
// (barrier init, tensor-map prefetch, register reallocation) overlaps that grid's tail; the kernel
// waits (griddepcontrol.wait) before it reads q, k, v or writes anything. A lab variant for now.
// Sparse: a SparseK selection `sp` (block size 128 = kBM, Sq = Sk, topK ints of shared memory).
template <typename T, int D, bool PingPong = true, bool Split = false, bool Pdl = false, bool Sparse = false>
cudaError_t flashForwardSm90Impl(const FlashFwdParams& p, cudaStream_t stream, const SparseIdx* sp = nullptr) {
  static_assert(!(PingPong && Split), "ping-pong orders two warpgroups' GEMMs over the same number of key blocks");
  static_assert(!(Sparse && Split), "a sparse tile is one query block of kBM rows");
  if (Sparse && (sp == nullptr || sp->bs != kBM || p.Sq != p.Sk || sp->nB != (p.Sq + kBM - 1) / kBM || sp->topK > 4096)) return cudaErrorInvalidValue;
  using C = Cfg<D>;
  constexpr int rows = Split ? 64 : kBM;
  if (p.D != D || p.B < 1 || p.H < 1 || p.Hkv < 1 || p.H % p.Hkv != 0 || p.Sq < 1 || p.Sk < 1) return cudaErrorInvalidValue;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  if (computeCapability(dev) != 90) return cudaErrorNotSupported;
  // out: 4-byte stores of column pairs.
  if (p.out == nullptr || reinterpret_cast<uintptr_t>(p.out) % 4 != 0 || (p.os.b | p.os.h | p.os.s) % 2 != 0) return cudaErrorInvalidValue;
  const CUtensorMapDataType dt = std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  CUtensorMap mq, mk, mv;
  if (!makeHeadMap(&mq, dt, p.q, D, p.Sq, p.H, p.B, p.qs, rows) || !makeHeadMap(&mk, dt, p.k, D, p.Sk, p.Hkv, p.B, p.ks, kBN) ||
      !makeHeadMap(&mv, dt, p.v, D, p.Sk, p.Hkv, p.B, p.vs, kBN))
    return cudaErrorInvalidValue;

  Args a;
  a.out = p.out;
  a.lse = p.lse;
  a.os = p.os;
  a.B = p.B;
  a.H = p.H;
  a.Hkv = p.Hkv;
  a.Sq = p.Sq;
  a.Sk = p.Sk;
  a.causal = p.causal ? 1 : 0;
  a.scaleLog2 = p.scale * 1.4426950408889634f;
  a.rows = rows;
  a.numM = (p.Sq + rows - 1) / rows;
  a.sp = Sparse ? *sp : SparseIdx{nullptr, 0, 0, 0};
  const int64_t bh = int64_t(p.B) * p.H;
  const int64_t tiles = bh * a.numM;
  if (tiles > 0x7fffffff) return cudaErrorInvalidValue;
  // L2 grouping: (b, h) pairs whose K and V (shared by H/Hkv query heads) fit in ~24 MB.
  const double kvBytes = 4.0 * p.Sk * D;
  int64_t group = int64_t(24.0 * 1024 * 1024 / kvBytes) * (p.H / p.Hkv);
  group = group < 1 ? 1 : (group > bh ? bh : group);
  a.groupHeads = int(group);

  auto kernel = flashFwdSm90Kernel<T, D, PingPong, Split, Pdl, Sparse>;
  // A build without sm_90a device code holds only the trapping stub (a handful of registers, not the
  // 168 the real kernel takes): refuse rather than launch it.
  static const int regs = [&] {
    cudaFuncAttributes fa{};
    return cudaFuncGetAttributes(&fa, kernel) == cudaSuccess ? fa.numRegs : 0;
  }();
  if (regs < 128) return cudaErrorNotSupported;
  // The shared-memory limit is a per-device function attribute: set once per device, not per call.
  if ((e = setSmemLimitOnce<flashFwdSm90Kernel<T, D, PingPong, Split, Pdl, Sparse>, int(C::kSmem) + (Sparse ? 4 * 4096 : 0)>(dev)) != cudaSuccess) return e;
  if (!Pdl) {
    kernel<<<unsigned(tiles), kThreads, C::kSmem + (Sparse ? 4 * size_t(sp->topK) : 0), stream>>>(mq, mk, mv, a);
    return cudaGetLastError();
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(tiles));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = C::kSmem;
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, mq, mk, mv, a);
}

}  // namespace fwd90

// The Hopper forward (see the header of this file). T = __nv_bfloat16 or __half, D = 64 or 128.
// A grid of 128-row tiles under one wave (the seed's B1 H8 S512: 32 tiles on 132 SMs) runs in the
// key-split mode, whose latency is about half; larger grids ping-pong.
template <typename T, int D>
cudaError_t flashForwardSm90(const FlashFwdParams& p, cudaStream_t stream) {
  const int64_t tiles = int64_t(p.B) * p.H * ((int64_t(p.Sq) + fwd90::kBM - 1) / fwd90::kBM);
  if (tiles < smCount()) return fwd90::flashForwardSm90Impl<T, D, false, true>(p, stream);
  return fwd90::flashForwardSm90Impl<T, D, true, false>(p, stream);
}

// The same forward over a SparseK selection of 128-key blocks (sparsek.cu; topK <= 4096, else
// cudaErrorInvalidValue): each 128-row query tile visits only its selected key blocks.
template <typename T, int D>
cudaError_t flashForwardSparseSm90(const FlashFwdParams& p, const SparseIdx& sp, cudaStream_t stream) {
  return fwd90::flashForwardSm90Impl<T, D, true, false, false, true>(p, stream, &sp);
}

}  // namespace attention
}  // namespace dw

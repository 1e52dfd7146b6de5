// The Hopper (sm_90a) grouped GEMM of dropless MoE, bf16 / f16 with FP32 accumulation:
//   out[r] = x[r] · w[e] for offsets[e] <= r < offsets[e + 1]
// x [R, K] row-major; w [E, K, N] row-major (TransW: [E, N, K], out[r] = x[r] · w[e]ᵀ); offsets i32
// [E + 1] on the device; out [R, N]. Included by gemm/grouped_gemm.cu (behind groupedGemm) and by
// the kernel lab (dev/cuda/gemm/grouped_sm90.cu). Its GPU tests (ir cuda-grouped) have run on the
// H200 and the H100 (docs/gpu-runs).
//
// Persistent and warp-specialized, as Hopper GEMMs are (CUTLASS's, DeepGEMM's; our own code):
//   * one CTA per SM walks the tiles t = blockIdx.x, + gridDim.x, ...; the tiles are 128 × 128
//     blocks of out, expert by expert, N fastest (a tile's expert rows start at offsets[e] + 128·m);
//     the per-expert tile counts are scanned once per CTA into shared memory, and a tile's expert is
//     found by a binary search there;
//   * warpgroup 0 is the producer: one thread issues the TMA loads of each 64-deep K block (x's 128
//     rows, w's 64 × 128 block) into a ring of kStages stages, signalling `full`;
//   * warpgroups 1 and 2 each own 64 rows of the tile: wgmma m64n128k16 from shared memory (A
//     K-major; B MN-major, or K-major with TransW), releasing each stage (`empty`) once the wgmma
//     that read it is done; then they store their rows (those below the expert's end, columns < N)
//     from registers.
// x's TMA box may run past the expert's rows into the next expert's (or past R, read as zero): those
// rows are computed and never stored. The fast path needs K % 64 == 0 and N % 64 == 0 (a K block
// never crosses into the next expert's weights), 16-byte aligned bases, and a device of compute
// capability 9.0; the launcher falls back to the general path otherwise.
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/sm90_ptx.cuh"
#include "attention/sm90_tma.h"
#include "common/errors.h"
#include "gemm/grouped_epilogue.cuh"
#include "gemm/grouped_offsets.cuh"

#include <cub/block/block_scan.cuh>
#include <type_traits>

namespace dw {
namespace grouped90 {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DW_GROUPED90_DEVICE 1
#endif

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 5, kThreads = 384;
constexpr uint32_t kATileBytes = kBM * kBK * 2;  // 16 KB: 128 rows of 128 bytes
constexpr uint32_t kBTileBytes = kBK * kBN * 2;  // 16 KB
constexpr uint32_t kStageBytes = kATileBytes + kBTileBytes;
constexpr uint32_t kBarOff = kStages * kStageBytes;        // full[kStages], empty[kStages]
constexpr uint32_t kTilesOff = kBarOff + 16 * kStages;     // offsets, then the tile prefix: 2 × (E + 1) ints
constexpr int kMaxExperts = 4096;
// Dynamic shared memory for E experts: the stages, the barriers, offsets and tile prefix, 1 KB to align.
constexpr int smemBytes(int E) { return static_cast<int>(kTilesOff + 8u * (E + 1) + 1024u); }

struct Args {
  const int* offsets;
  void* out;
  void* aux;   // the epilogue's tensors (gemm/grouped_epilogue.cuh): gelu / dgelu pre, swiglu gate
  void* aux2;  // swiglu up
  int R, K, N, E;
  ErrWord* err;
};

#ifdef DW_GROUPED90_DEVICE
__device__ __forceinline__ void tmaLoad2d(uint32_t dst, const void* map, uint32_t bar, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
               ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
               : "memory");
}

// D(64 × 128, f32) += A(64 × 16, smem; TransA: MN-major, else K-major) · B(16 × 128, smem; TransB:
// MN-major, else K-major), bf16 or f16. (The weight gradient, gemm/grouped_wgrad_sm90.cuh, reads
// both operands MN-major.)
template <typename T, int TransA, int TransB>
__device__ __forceinline__ void mma128(float (&d)[64], uint64_t a, uint64_t b) {
#define DW_G90_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define DW_G90_MMA(TY)                                                                                                              \
  asm volatile(                                                                                                                     \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                                                  \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY                                                                      \
      " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25,"  \
      " %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50," \
      " %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, %68, %67;\n}\n"                         \
      : DW_G90_D8(0), DW_G90_D8(8), DW_G90_D8(16), DW_G90_D8(24), DW_G90_D8(32), DW_G90_D8(40), DW_G90_D8(48), DW_G90_D8(56)      \
      : "l"(a), "l"(b), "r"(1), "n"(TransB), "n"(TransA))
  if constexpr (std::is_same<T, __nv_bfloat16>::value) DW_G90_MMA("bf16");
  else DW_G90_MMA("f16");
#undef DW_G90_MMA
#undef DW_G90_D8
}

// D(64 × 64, f32) += A(64 × 16, K-major smem) · B(16 × 64, smem; TransB: MN-major, else K-major):
// the SwiGLU epilogue's two products of one A.
template <typename T, int TransB>
__device__ __forceinline__ void mma64(float* d, uint64_t a, uint64_t b) {
#define DW_G90_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define DW_G90_MMA(TY)                                                                                                              \
  asm volatile(                                                                                                                     \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                                                  \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY                                                                       \
      " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25,"  \
      " %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, %35;\n}\n"                                                          \
      : DW_G90_D8(0), DW_G90_D8(8), DW_G90_D8(16), DW_G90_D8(24)                                                                    \
      : "l"(a), "l"(b), "r"(1), "n"(TransB))
  if constexpr (std::is_same<T, __nv_bfloat16>::value) DW_G90_MMA("bf16");
  else DW_G90_MMA("f16");
#undef DW_G90_MMA
#undef DW_G90_D8
}

// The expert whose tiles hold tile t: the last e with prefix[e] <= t (prefix[E] = the total).
__device__ __forceinline__ int expertOfTile(const int* prefix, int E, int t) {
  int lo = 0, hi = E - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (prefix[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// A position in a ring of S stages: the stage, and the parity of the barriers' phase there.
template <int S>
struct RingOf {
  int stage = 0;
  uint32_t phase = 0;
  __device__ __forceinline__ void next() {
    if (++stage == S) stage = 0, phase ^= 1;
  }
  // n positions on (the stages of another consumer's tile, under the pingpong schedule).
  __device__ __forceinline__ void skip(int n) {
    const int to = stage + n;
    phase ^= static_cast<uint32_t>(to / S) & 1u;
    stage = to % S;
  }
};
using Ring = RingOf<kStages>;

// Tile t of the persistent grouped kernels (tiles expert by expert, N fastest): its expert, its
// first row and its column tile.
struct TileAt {
  int e, row0, nTile;
};
__device__ __forceinline__ TileAt tileAt(const int* prefix, const int* offs, int E, int t, int tilesN) {
  const int e = expertOfTile(prefix, E, t);
  const int local = t - prefix[e];
  return {e, offs[e] + (local / tilesN) * kBM, local % tilesN};
}

// Stores one of a thread's two rows (h) of a tile held in wgmma accumulators (the Hopper grouped
// kernels' epilogue): accumulators 4j + 2h + {0, 1} are columns col0 + 8j + 2·(lane % 4) + {0, 1},
// j < Cols / 8; `at` is the row's first element in out (and aux). SwiGLU's second product (up) is
// acc[i + NAcc / 2]. The dgelu epilogue loads all of the row's pre-activation pairs before storing
// any output: loaded one pair at a time, each load would wait behind the previous pair's store (the
// compiler cannot tell out from aux).
template <typename T, int Epi, int Cols, int NAcc>
__device__ __forceinline__ void storeAccRow(const float (&acc)[NAcc], int h, long long at, int col0, int N, int lane, T* out, const grouped::EpiPtrs<T>& epi) {
  if constexpr (Epi == grouped::kEpiDgelu) {
    uint32_t pre[Cols / 8];
#pragma unroll
    for (int j = 0; j < Cols / 8; ++j) {
      const int col = col0 + 8 * j + 2 * (lane % 4);
      pre[j] = col < N ? grouped::loadPrePair<T>(epi.aux, at + col) : 0u;
    }
#pragma unroll
    for (int j = 0; j < Cols / 8; ++j) {
      const int col = col0 + 8 * j + 2 * (lane % 4);
      if (col < N) grouped::storeDgelu<T>(out, at + col, acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1], pre[j]);
    }
  } else {
    constexpr bool kSwi = Epi == grouped::kEpiSwiglu;
#pragma unroll
    for (int j = 0; j < Cols / 8; ++j) {
      const int col = col0 + 8 * j + 2 * (lane % 4);
      if (col < N) {
        const int i = 4 * j + 2 * h;
        if constexpr (kSwi) grouped::storePair<T, Epi>(out, at + col, acc[i], acc[i + 1], acc[i + NAcc / 2], acc[i + 1 + NAcc / 2], epi);
        else grouped::storePair<T, Epi>(out, at + col, acc[i], acc[i + 1], 0.f, 0.f, epi);
      }
    }
  }
}

// The prologue of the persistent grouped kernels (this one, gemm/grouped_fp8_sm90.cuh and the wide
// kernel of gemm/grouped_wide_sm90.cuh, whose ring has Stages stages and its barriers at BarOff): the
// ring's barriers initialised (full: the producer's arrival; empty: one per consumer warpgroup), the
// offsets copied into shared memory and checked (offsetsValid: block 0 records the first bad entry
// under `op`), then the per-expert tile counts (ceil(rows / kBM) · tilesN) scanned by the block, a
// chunk of kThreads experts at a time, into prefix[E + 1]. Every thread calls it; it returns the
// total number of tiles, or -1 (to every thread) when the offsets are bad.
// `releases` is how many arrivals free a stage: 2 when both consumer warpgroups read every stage, 1
// under the pingpong schedule (a tile's stages read by its one warpgroup).
template <int Stages = kStages, uint32_t BarOff = kBarOff>
__device__ __forceinline__ int ringPrologue(uint32_t base, int* offs, int* prefix, const int* offsets, int E, int R, int tilesN, ErrWord* err, int op, int releases = 2) {
  __shared__ int carry;
  if (threadIdx.x == 0) {
    carry = 0;
    for (int s = 0; s < Stages; ++s) {
      sm90::mbarInit(base + BarOff + 8u * s, 1);
      sm90::mbarInit(base + BarOff + 8u * (Stages + s), releases);
    }
    sm90::fenceBarrierInit();
  }
  for (int e = threadIdx.x; e <= E; e += kThreads) offs[e] = offsets[e];
  if (!offsetsValid(offs, E, R, err, op)) return -1;  // its first barrier orders the copy
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scanTmp;
  for (int e0 = 0; e0 <= E; e0 += kThreads) {
    const int e = e0 + threadIdx.x;
    const int tiles = e < E ? (offs[e + 1] - offs[e] + kBM - 1) / kBM * tilesN : 0;
    int before, sum;
    Scan(scanTmp).ExclusiveSum(tiles, before, sum);
    if (e <= E) prefix[e] = carry + before;
    __syncthreads();
    if (threadIdx.x == 0) carry += sum;
    __syncthreads();
  }
  return prefix[E];
}
#endif  // DW_GROUPED90_DEVICE

// Epi (gemm/grouped_epilogue.cuh) picks what is stored. With kEpiSwiglu a tile is 128 × 64 of both
// products: each stage holds x's block and a 64-column panel of w and of w3 (tmW3; the maps' w boxes
// are then 64 × 64 in both layouts), two m64n64k16 wgmma per k step from one A.
// Pingpong (the schedule CUTLASS calls so; session 19, not yet run on a GPU): instead of both
// consumer warpgroups sharing each tile (64 rows each), warpgroup 1 takes the CTA's even tiles and
// warpgroup 2 its odd ones, whole (128 rows: two wgmma per k step, 128 accumulators; setmaxnreg 40 /
// 232). The ring hands the stages out in tile order, so one warpgroup's mainloop runs while the other
// stores its tile: the epilogue (GELU and its gradient cost as much as half the mainloop at K =
// 1024) is hidden behind the tensor cores' work instead of stopping them.
template <typename T, bool TransW, int Epi, bool Pingpong = false>
__global__ void __launch_bounds__(kThreads, 1)
    groupedGemmSm90Kernel(const __grid_constant__ CUtensorMap tmX, const __grid_constant__ CUtensorMap tmW, const __grid_constant__ CUtensorMap tmW3,
                          const Args a) {
#ifdef DW_GROUPED90_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  int* const offs = reinterpret_cast<int*>(generic + kTilesOff);  // [E + 1]: the offsets
  int* const prefix = offs + a.E + 1;                                // [E + 1]: tiles before expert e
  auto full = [&](int s) { return base + kBarOff + 8u * s; };
  auto empty = [&](int s) { return base + kBarOff + 8u * (kStages + s); };
  constexpr bool kSwi = Epi == grouped::kEpiSwiglu;
  constexpr int kTileN = kSwi ? 64 : kBN;
  const int tilesN = (a.N + kTileN - 1) / kTileN;
  const int kBlocks = a.K / kBK;
  const int wg = threadIdx.x / 128;

  // Pingpong's turns: turn[c] completes a phase each time every warp of the other consumer
  // warpgroup has waited for every stage of its tile (four arrivals; see below).
  __shared__ alignas(8) uint64_t turn[2];
  if (Pingpong && threadIdx.x == 0) {
    sm90::mbarInit(sm90::smemAddr(&turn[0]), 4);
    sm90::mbarInit(sm90::smemAddr(&turn[1]), 4);
  }  // made visible by ringPrologue's fence and barrier
  const int total = ringPrologue(base, offs, prefix, a.offsets, a.E, a.R, tilesN, a.err, kOpGroupedMatmul, Pingpong ? 1 : 2);
  if (total < 0) return;  // bad offsets (recorded)

  if (wg == 0) {
    if constexpr (Pingpong) sm90::setmaxnregDec<40>();
    // Producer: one thread issues every load.
    if (threadIdx.x == 0) {
      sm90::prefetchTensorMap(&tmX);
      sm90::prefetchTensorMap(&tmW);
      if constexpr (kSwi) sm90::prefetchTensorMap(&tmW3);
      Ring ring;
      for (int t = blockIdx.x; t < total; t += gridDim.x) {
        const TileAt at = tileAt(prefix, offs, a.E, t, tilesN);
        const int e = at.e, row0 = at.row0, col0 = at.nTile * kTileN;
        for (int kb = 0; kb < kBlocks; ++kb) {
          sm90::mbarWait(empty(ring.stage), ring.phase ^ 1);
          const uint32_t sA = base + ring.stage * kStageBytes, sB = sA + kATileBytes;
          sm90::mbarArriveExpectTx(full(ring.stage), kStageBytes);
          tmaLoad2d(sA, &tmX, full(ring.stage), kb * kBK, row0);
          if constexpr (kSwi) {
            // 64 columns of w and of w3: [E·N, K] boxes of 64 rows (N) by 64 (K), K-major; or
            // [E·K, N] boxes of 64 rows (K) by 64 (N), MN-major.
            const int c0 = TransW ? kb * kBK : col0, c1 = TransW ? e * a.N + col0 : e * a.K + kb * kBK;
            tmaLoad2d(sB, &tmW, full(ring.stage), c0, c1);
            tmaLoad2d(sB + kBTileBytes / 2, &tmW3, full(ring.stage), c0, c1);
          } else if constexpr (TransW) {
            // w viewed as [E·N, K]: 128 rows (N) of 64 (K), K-major.
            tmaLoad2d(sB, &tmW, full(ring.stage), kb * kBK, e * a.N + col0);
          } else {
            // w viewed as [E·K, N]: 64 rows (K) by two 64-wide N panels, MN-major.
            tmaLoad2d(sB, &tmW, full(ring.stage), col0, e * a.K + kb * kBK);
            tmaLoad2d(sB + kBTileBytes / 2, &tmW, full(ring.stage), col0 + 64, e * a.K + kb * kBK);
          }
          ring.next();
        }
      }
    }
    return;
  }

  const int c = wg - 1;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  const grouped::EpiPtrs<T> epi{static_cast<T*>(a.aux), static_cast<T*>(a.aux2)};
  // Stores 64 rows of a tile from `acc` (rows rowBase..rowBase + 63; accumulator j·4 + h·2 + {0, 1}
  // is row warp·16 + lane/4 + 8h; SwiGLU: acc[0, 32) the gate's 64 columns, acc[32, 64) up's).
  const auto store = [&](const float (&acc)[64], int rowBase, int rowEnd, int col0) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = rowBase + warp * 16 + lane / 4 + 8 * h;
      if (row < rowEnd && row < a.R) storeAccRow<T, Epi, kTileN>(acc, h, static_cast<long long>(row) * a.N, col0, a.N, lane, static_cast<T*>(a.out), epi);
    }
  };
  // One k step's wgmma of the 64 rows of x at sA into acc.
  const auto mmaRows = [&](float (&acc)[64], uint32_t sA, uint32_t sB, int k) {
    const uint64_t da = sm90::descSw128(sA + 32u * k, 0, 1024);
    // B's k step: 16 elements along a K-major row (32 bytes) or 16 MN-major rows (2048 bytes).
    const uint32_t kStep = TransW ? 32u * k : 2048u * k;
    if constexpr (kSwi) {
      mma64<T, TransW ? 0 : 1>(acc, da, sm90::descSw128(sB + kStep, 0, 1024));
      mma64<T, TransW ? 0 : 1>(acc + 32, da, sm90::descSw128(sB + kBTileBytes / 2 + kStep, 0, 1024));
    } else {
      mma128<T, 0, TransW ? 0 : 1>(acc, da, sm90::descSw128(sB + kStep, TransW ? 0 : kBTileBytes / 2, 1024));
    }
  };
  Ring ring;
  if constexpr (!Pingpong) {
    // Cooperative: warpgroup 1 rows 0..63 of each tile, warpgroup 2 rows 64..127.
    float acc[64];
    for (int t = blockIdx.x; t < total; t += gridDim.x) {
      const TileAt at = tileAt(prefix, offs, a.E, t, tilesN);
#pragma unroll
      for (int i = 0; i < 64; ++i) acc[i] = 0.f;
      int prev = -1;
      for (int kb = 0; kb < kBlocks; ++kb) {
        sm90::mbarWait(full(ring.stage), ring.phase);
        const uint32_t sA = base + ring.stage * kStageBytes + c * (kATileBytes / 2), sB = base + ring.stage * kStageBytes + kATileBytes;
        sm90::wgmmaFence();
#pragma unroll
        for (int k = 0; k < kBK / 16; ++k) mmaRows(acc, sA, sB, k);
        sm90::wgmmaCommit();
        sm90::wgmmaWait<1>();  // the previous K block's wgmma is done: its stage can be refilled
        if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
        prev = ring.stage;
        ring.next();
      }
      sm90::wgmmaWait<0>();
      sm90::fenceRegs(acc);
      if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
      store(acc, at.row0 + c * 64, offs[at.e + 1], at.nTile * kTileN);
    }
  } else {
    // Pingpong: warpgroup c + 1 takes the CTA's tiles j with j % 2 == c, all 128 rows.
    // Turns: a warpgroup starts waiting for its tile's stages only once the other has waited for all
    // of the previous tile's. Without them, warpgroup 2 would wait for its first stage (ring position
    // kBlocks) while the producer is still kBlocks positions behind: a barrier's parity names only
    // its current or previous phase, so that wait would pass on an older phase and read a stage
    // before its load. With them, every wait is at most one phase ahead of the producer (the ring
    // holds kStages positions), and the other warpgroup's epilogue still runs under this one's
    // mainloop.
    sm90::setmaxnregInc<232>();
    float acc0[64], acc1[64];
    const uint32_t myTurn = sm90::smemAddr(&turn[c]), theirTurn = sm90::smemAddr(&turn[c ^ 1]);
    int j = 0, mine = 0;
    for (int t = blockIdx.x; t < total; t += gridDim.x, ++j) {
      if ((j & 1) != c) {
        ring.skip(kBlocks);  // the other warpgroup's tile
        continue;
      }
      // Tile j - 1 (the other's) done waiting: its (mine - 1)-th turn for warpgroup 1, mine-th for 2.
      if (c == 1) sm90::mbarWait(myTurn, static_cast<uint32_t>(mine) & 1u);
      else if (mine > 0) sm90::mbarWait(myTurn, static_cast<uint32_t>(mine - 1) & 1u);
      ++mine;
      const TileAt at = tileAt(prefix, offs, a.E, t, tilesN);
#pragma unroll
      for (int i = 0; i < 64; ++i) acc0[i] = 0.f, acc1[i] = 0.f;
      int prev = -1;
      for (int kb = 0; kb < kBlocks; ++kb) {
        sm90::mbarWait(full(ring.stage), ring.phase);
        const uint32_t sA = base + ring.stage * kStageBytes, sB = sA + kATileBytes;
        sm90::wgmmaFence();
#pragma unroll
        for (int k = 0; k < kBK / 16; ++k) {
          mmaRows(acc0, sA, sB, k);
          mmaRows(acc1, sA + kATileBytes / 2, sB, k);
        }
        sm90::wgmmaCommit();
        sm90::wgmmaWait<1>();
        if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
        prev = ring.stage;
        ring.next();
      }
      // This warp has seen every stage of the tile arrive: once all four have, the other warpgroup may
      // wait for its own. Each warp arrives for itself: with one K block nothing else holds a lagging
      // warp to its warpgroup, and a warp still in the previous turn's wait would find the barrier
      // two phases on.
      if (lane == 0) sm90::mbarArrive(theirTurn);
      sm90::wgmmaWait<0>();
      sm90::fenceRegs(acc0);
      sm90::fenceRegs(acc1);
      if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
      const int rowEnd = offs[at.e + 1], col0 = at.nTile * kTileN;
      store(acc0, at.row0, rowEnd, col0);
      store(acc1, at.row0 + 64, rowEnd, col0);
    }
  }
#else
  // A build without sm_90a device code: launchSm90 refuses this stub (its register count) and the
  // general path runs instead; trap should it ever be launched.
  __trap();
#endif  // DW_GROUPED90_DEVICE
}

// A 2-D map of a row-major [rows, inner] matrix of 2-byte elements, boxes of 64 (128 bytes, the
// 128-byte swizzle's row) by boxRows, elements past either end read as zero. False when TMA cannot
// describe it (or the driver's encoder is missing).
inline bool map2d(CUtensorMap* m, CUtensorMapDataType dt, const void* p, uint64_t inner, uint64_t rows, uint32_t boxRows) {
  const attention::EncodeTiledFn enc = attention::encodeTiledFn();
  if (enc == nullptr || p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  const cuuint32_t estride[2] = {1, 1};
  const cuuint64_t dims[2] = {inner, rows > 0 ? rows : 1}, strides[1] = {inner * 2};
  const cuuint32_t box[2] = {64, boxRows};
  return enc(m, dt, 2, const_cast<void*>(p), dims, strides, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The maps: x as [R, K] (box 64 × 128 rows) and w as [E·K, N] (box 64 × 64: MN-major panels) or,
// TransW, [E·N, K] (box 64 × 128 rows; 64 rows for the SwiGLU epilogue, whose tiles are 64 wide),
// 128-byte swizzle; w3 (SwiGLU's second weight, else w again) as w. False when TMA cannot describe them.
inline bool makeMaps(CUtensorMap* mx, CUtensorMap* mw, CUtensorMap* mw3, CUtensorMapDataType dt, const void* x, const void* w, const void* w3, int R, int K, int N, int E,
                     bool transW, bool swiglu) {
  if (!map2d(mx, dt, x, K, R, kBM)) return false;
  const auto weight = [&](CUtensorMap* m, const void* p) {
    return transW ? map2d(m, dt, p, K, uint64_t(E) * N, swiglu ? 64 : kBN) : map2d(m, dt, p, N, uint64_t(E) * K, kBK);
  };
  return weight(mw, w) && weight(mw3, w3 != nullptr ? w3 : w);
}

// Whether the fast path takes a call: compute capability 9.0, bf16 or f16, K and N multiples of 64,
// at most kMaxExperts experts, sizes that index as int.
inline bool supported(int cc, int dtypeBytes, uint64_t R, uint64_t K, uint64_t N, uint64_t E) {
  return cc == 90 && dtypeBytes == 2 && K > 0 && N > 0 && K % 64 == 0 && N % 64 == 0 && E >= 1 && E <= kMaxExperts && R < (1u << 31) &&
         uint64_t(E) * K < (1u << 31) && uint64_t(E) * N < (1u << 31);
}

}  // namespace grouped90
}  // namespace dw

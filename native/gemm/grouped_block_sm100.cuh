// The Blackwell (sm_100) block-scaled grouped GEMM of dropless MoE, through tcgen05's block-scaled
// MMA: MXFP8 (e4m3 × e4m3, an E8M0 scale per 32 of K; kind::mxf8f6f4) and NVFP4 (e2m1 × e2m1 packed
// two per byte, a UE4M3 scale per 16 of K, kind::mxf4nvf4, then ga · gb[e] in the epilogue):
//   d[r] = α_e · Σ_k a(r, k)·sa(r, k/vec) · b(e, n, k)·sb(e, n, k/vec) for offsets[e] <= r < offsets[e + 1]
// a [R, K] codes K-major, scales in cuBLASLt's 128 × 4 tiles over all R rows (common/scale_tiles.h,
// what quantize writes with scaleLayout 'tiled128x4'); b [E, N, K] codes, each expert K-major, its
// scales tiled per expert (a batch quantize; with N % 128 == 0 the same as tiling [E·N, K]); d [R, N]
// bf16; NVFP4's ga f32[1] and gb f32[E] the tensor scales. Included by gemm/grouped_gemm.cu
// (groupedBlockScaledGemm). COMPILED ONLY: no Blackwell GPU exists here; it has never run.
// The PTX facts it rests on are collected in docs/research/blackwell-block-scaled.md.
//
// Structure (our own; the roles follow the usual Blackwell pipeline):
//   * persistent, one CTA per SM, 256 threads: warp 0 the TMA producer, warp 1 the MMA issuer (it
//     also allocates and frees tensor memory), warps 4-7 the epilogue warpgroup (warp w % 4 reads
//     TMEM lanes 32w .. 32w + 31), warps 2-3 idle;
//   * work tiles are 128 × 128 blocks of d over x's *global* 128-row blocks, split by expert: expert
//     e covers blocks floor(off_e / 128) .. ceil(off_{e+1} / 128) - 1, each with w[e]. So every A
//     tile and its scale atoms are 128-row aligned (the 128 × 4 tiles need no re-layout and no
//     padding per expert); a block shared by two experts is computed twice, each storing its own
//     rows (at most E - 1 extra tiles per column of tiles);
//   * a stage holds 128 bytes of K for A and B (128 e4m3 or 256 e2m1 codes) plus their scale atoms
//     (MXFP8: one 512-byte atom each; NVFP4: four), loaded by TMA and 1-D bulk copies into a ring of
//     kStages, completion counted on `full`;
//   * the MMA thread copies the stage's atoms into the stage's own TMEM scale slot (tcgen05.cp
//     .32x128b.warpx4: the atom is exactly that copy's source layout) and issues four MMAs (K 32 or
//     64 each) into one of two TMEM accumulators, then tcgen05.commit releases the stage (`empty`);
//     after a tile's last stage a commit signals `tmemFull`;
//   * the epilogue warpgroup reads its 128 rows × 128 FP32 columns (tcgen05.ld 32x32b), releases the
//     accumulator (`tmemEmpty`), scales (NVFP4), rounds to bf16 and stores the rows of its expert.
// Deterministic (no split K, no atomics). Needs K % 128 == 0 (MXFP8) / % 256 == 0 (NVFP4), N % 128
// == 0, E <= kMaxExperts; the launcher refuses other shapes and other GPUs (there is no other path).
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/sm90_ptx.cuh"
#include "attention/sm90_tma.h"
#include "common/errors.h"
#include "common/sm90_async.cuh"
#include "gemm/grouped_offsets.cuh"

#include <cub/block/block_scan.cuh>

namespace dw {
namespace grouped100 {

#if defined(__CUDA_ARCH__) && ((defined(__CUDA_ARCH_FAMILY_SPECIFIC__) && __CUDA_ARCH_FAMILY_SPECIFIC__ == 1000) || defined(__CUDA_ARCH_FEAT_SM100_ALL))
#define DW_GROUPED100_DEVICE 1
#endif

enum Fmt : int { kMxfp8 = 0, kNvfp4 = 1 };

constexpr int kThreads = 256, kStages = 5, kMaxExperts = 2048;
constexpr int kBM = 128, kBN = 128, kRowBytes = 128;      // a stage: 128 bytes of K per row
constexpr uint32_t kTileBytes = kBM * kRowBytes;          // 16 KB for A, 16 KB for B
__host__ __device__ constexpr int atomsPerStage(int f) { return f == kMxfp8 ? 1 : 4; }  // 128 × 4 scale atoms per operand
__host__ __device__ constexpr int kInK(int f) { return f == kMxfp8 ? 128 : 256; }        // K elements per stage
__host__ __device__ constexpr uint32_t stageBytes(int f) { return 2 * kTileBytes + 2 * 512u * atomsPerStage(f); }
// TMEM columns: two 128-column accumulators, then per stage a scale slot (4 columns an atom, A then B).
constexpr uint32_t kTmemCols = 512, kAccCols = 128;
__host__ __device__ constexpr uint32_t slotCols(int f) { return 2 * 4 * atomsPerStage(f); }
static_assert(2 * kAccCols + kStages * slotCols(kNvfp4) <= kTmemCols, "accumulators and scale slots fit in tensor memory");
static_assert(stageBytes(kMxfp8) % 1024 == 0 && stageBytes(kNvfp4) % 1024 == 0, "stages stay 1024-byte aligned (the 128-byte swizzle's base offset 0)");
// Shared memory after the stages: full, empty [kStages], tmemFull, tmemEmpty [2], the TMEM address,
// then offsets and the per-expert tile prefix (2 × (E + 1) ints); 1 KB to align.
__host__ __device__ constexpr uint32_t barOff(int f) { return kStages * stageBytes(f); }
__host__ __device__ constexpr uint32_t tilesOff(int f) { return barOff(f) + 8 * (2 * kStages + 4) + 16; }
__host__ __device__ constexpr int smemBytes(int f, int E) { return static_cast<int>(tilesOff(f) + 8u * (E + 1) + 1024u); }

static_assert(smemBytes(kNvfp4, kMaxExperts) + 2048 <= 232448 && smemBytes(kMxfp8, kMaxExperts) + 2048 <= 232448,
              "a CTA's shared memory (dynamic, plus the static scan storage) fits Blackwell's 227 KB");

struct Args {
  const int* offsets;
  const uint8_t* aScale;  // 128 × 4 tiles over [R, K / vec]
  const uint8_t* bScale;  // per expert, 128 × 4 tiles over [N, K / vec]
  const float* aGlobal;   // NVFP4: ga f32[1]; MXFP8: null
  const float* bGlobal;   // NVFP4: gb f32[E]
  __nv_bfloat16* d;
  int R, K, N, E;
  ErrWord* err;
};

#ifdef DW_GROUPED100_DEVICE
// ---- tcgen05 (PTX ISA 8.8+, sm_100a / sm_100f) ----
__device__ __forceinline__ void tmemAlloc(uint32_t dstSmem, uint32_t cols) {
  asm volatile("tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%0], %1;" ::"r"(dstSmem), "r"(cols) : "memory");
  asm volatile("tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void tmemDealloc(uint32_t taddr, uint32_t cols) {
  asm volatile("tcgen05.dealloc.cta_group::1.sync.aligned.b32 %0, %1;" ::"r"(taddr), "r"(cols) : "memory");
}
__device__ __forceinline__ void fenceBeforeSync() { asm volatile("tcgen05.fence::before_thread_sync;" ::: "memory"); }
__device__ __forceinline__ void fenceAfterSync() { asm volatile("tcgen05.fence::after_thread_sync;" ::: "memory"); }
// Arrives once on `bar` when every tcgen05 operation this thread issued before has completed.
__device__ __forceinline__ void commitTo(uint32_t bar) {
  asm volatile("tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%0];" ::"r"(bar) : "memory");
}
// One 512-byte 128 × 4 scale atom (32 rows of 16 bytes, multicast to the four lane quadrants) from
// shared memory into 4 TMEM columns.
__device__ __forceinline__ void copyScaleAtom(uint32_t taddr, uint32_t smem) {
  // No swizzle, 8-row × 16-byte core matrices: SBO 128 bytes, version bit 46.
  const uint64_t desc = uint64_t((smem & 0x3FFFF) >> 4) | (uint64_t(128 >> 4) << 32) | (uint64_t(1) << 46);
  asm volatile("tcgen05.cp.cta_group::1.32x128b.warpx4 [%0], %1;" ::"r"(taddr), "l"(desc) : "memory");
}
// The sm_100 shared-memory descriptor of a K-major operand with 128-byte swizzle: SBO 1024 (8-row
// groups), version bit 46, swizzle code 2 in bits 61-63.
__device__ __forceinline__ uint64_t operandDesc(uint32_t smem) {
  return uint64_t((smem & 0x3FFFF) >> 4) | (uint64_t(16 >> 4) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 46) | (uint64_t(2) << 61);
}
// The instruction descriptor: M 128, N 128; MXFP8 e4m3 × e4m3, UE8M0 scales (bit 23), scale-factor
// IDs sf (A at bits 29-30, B at 4-5); NVFP4 e2m1 × e2m1 (codes 1), UE4M3 scales, IDs 0.
template <int F>
__device__ __forceinline__ uint32_t instrDesc(uint32_t sf) {
  constexpr uint32_t mn = (uint32_t(kBN >> 3) << 17) | (uint32_t(kBM >> 7) << 27);
  if constexpr (F == kMxfp8) return mn | (1u << 23) | (sf << 29) | (sf << 4);
  else return mn | (1u << 7) | (1u << 10);
}
template <int F>
__device__ __forceinline__ void mmaBlockScaled(uint32_t dTmem, uint64_t aDesc, uint64_t bDesc, uint32_t idesc, uint32_t sfa, uint32_t sfb, uint32_t accumulate) {
  if constexpr (F == kMxfp8) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
        "tcgen05.mma.cta_group::1.kind::mxf8f6f4.block_scale.block32 [%0], %1, %2, %3, [%4], [%5], p;\n}\n" ::"r"(dTmem),
        "l"(aDesc), "l"(bDesc), "r"(idesc), "r"(sfa), "r"(sfb), "r"(accumulate)
        : "memory");
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
        "tcgen05.mma.cta_group::1.kind::mxf4nvf4.block_scale.block16 [%0], %1, %2, %3, [%4], [%5], p;\n}\n" ::"r"(dTmem),
        "l"(aDesc), "l"(bDesc), "r"(idesc), "r"(sfa), "r"(sfb), "r"(accumulate)
        : "memory");
  }
}
// 32 consecutive FP32 columns of this warp's 32 lanes (thread t: lane 32w + t).
__device__ __forceinline__ void tmemLoad32(uint32_t taddr, float (&v)[32]) {
  uint32_t r[32];
  asm volatile(
      "tcgen05.ld.sync.aligned.32x32b.x32.b32 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
      "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, [%32];"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]), "=r"(r[4]), "=r"(r[5]), "=r"(r[6]), "=r"(r[7]), "=r"(r[8]), "=r"(r[9]), "=r"(r[10]), "=r"(r[11]),
        "=r"(r[12]), "=r"(r[13]), "=r"(r[14]), "=r"(r[15]), "=r"(r[16]), "=r"(r[17]), "=r"(r[18]), "=r"(r[19]), "=r"(r[20]), "=r"(r[21]), "=r"(r[22]),
        "=r"(r[23]), "=r"(r[24]), "=r"(r[25]), "=r"(r[26]), "=r"(r[27]), "=r"(r[28]), "=r"(r[29]), "=r"(r[30]), "=r"(r[31])
      : "r"(taddr)
      : "memory");
  asm volatile("tcgen05.wait::ld.sync.aligned;" ::: "memory");
#pragma unroll
  for (int i = 0; i < 32; ++i) v[i] = __uint_as_float(r[i]);
}
__device__ __forceinline__ void tmaLoad2d(uint32_t dst, const void* map, uint32_t bar, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
               : "memory");
}

// The expert of work tile t: the last e with prefix[e] <= t.
__device__ __forceinline__ int expertOf(const int* prefix, int E, int t) {
  int lo = 0, hi = E - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (prefix[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
// Expert e's first global 128-row block and how many it touches (0 for no rows).
__device__ __forceinline__ int firstBlock(const int* offs, int e) { return offs[e] / kBM; }
__device__ __forceinline__ int blocksOf(const int* offs, int e) {
  return offs[e + 1] > offs[e] ? (offs[e + 1] + kBM - 1) / kBM - offs[e] / kBM : 0;
}
#endif  // DW_GROUPED100_DEVICE

template <int F>
__global__ void __launch_bounds__(kThreads, 1)
    groupedBlockSm100Kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB, const Args a) {
#ifdef DW_GROUPED100_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  const uint32_t bars = base + barOff(F);
  auto full = [&](int s) { return bars + 8u * s; };
  auto empty = [&](int s) { return bars + 8u * (kStages + s); };
  auto tmemFull = [&](int i) { return bars + 8u * (2 * kStages + i); };
  auto tmemEmpty = [&](int i) { return bars + 8u * (2 * kStages + 2 + i); };
  const uint32_t tmemSlot = bars + 8u * (2 * kStages + 4);  // where tcgen05.alloc writes the address
  int* const offs = reinterpret_cast<int*>(generic + tilesOff(F));
  int* const prefix = offs + a.E + 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int tilesN = a.N / kBN, kBlocks = a.K / kInK(F);
  constexpr int atoms = atomsPerStage(F);
  // Scale tiles per 128-row block: K / vec scale columns, 4 to a tile.
  const int tilesC = (a.K / (F == kMxfp8 ? 32 : 16) + 3) / 4;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      sm90::mbarInit(full(s), 1);
      sm90::mbarInit(empty(s), 1);  // the MMA thread's commit
    }
    for (int i = 0; i < 2; ++i) {
      sm90::mbarInit(tmemFull(i), 1);     // the MMA thread's commit
      sm90::mbarInit(tmemEmpty(i), 128);  // every epilogue thread
    }
    sm90::fenceBarrierInit();
  }
  if (warp == 1) tmemAlloc(tmemSlot, kTmemCols);
  // Offsets into shared memory and checked, then the per-expert tile counts (blocks × tilesN) scanned.
  for (int e = threadIdx.x; e <= a.E; e += kThreads) offs[e] = a.offsets[e];
  const bool ok = offsetsValid(offs, a.E, a.R, a.err, kOpGroupedScaledMatmul);
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scanTmp;
  __shared__ int carry;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  for (int e0 = 0; ok && e0 <= a.E; e0 += kThreads) {
    const int e = e0 + threadIdx.x;
    const int tiles = e < a.E ? blocksOf(offs, e) * tilesN : 0;
    int before, sum;
    Scan(scanTmp).ExclusiveSum(tiles, before, sum);
    if (e <= a.E) prefix[e] = carry + before;
    __syncthreads();
    if (threadIdx.x == 0) carry += sum;
    __syncthreads();
  }
  const int total = ok ? prefix[a.E] : 0;  // bad offsets: nothing to do, but TMEM is still freed below
  fenceBeforeSync();
  __syncthreads();
  fenceAfterSync();
  const uint32_t tmem = *reinterpret_cast<volatile uint32_t*>(generic + (tmemSlot - base));

  if (warp == 0 && lane == 0) {
    // Producer.
    sm90::prefetchTensorMap(&tmA);
    sm90::prefetchTensorMap(&tmB);
    int stage = 0;
    uint32_t phase = 0;
    for (int t = blockIdx.x; t < total; t += gridDim.x) {
      const int e = expertOf(prefix, a.E, t), local = t - prefix[e];
      const int mb = firstBlock(offs, e) + local / tilesN, nt = local % tilesN;
      for (int kb = 0; kb < kBlocks; ++kb) {
        sm90::mbarWait(empty(stage), phase ^ 1);
        const uint32_t sA = base + stage * stageBytes(F), sB = sA + kTileBytes, sSf = sB + kTileBytes;
        sm90::mbarArriveExpectTx(full(stage), stageBytes(F));
        tmaLoad2d(sA, &tmA, full(stage), kb * kRowBytes, mb * kBM);                  // a's bytes: 128 rows × 128
        tmaLoad2d(sB, &tmB, full(stage), kb * kRowBytes, e * a.N + nt * kBN);        // w[e] as [E·N, K bytes]
        const uint8_t* sfa = a.aScale + (static_cast<long long>(mb) * tilesC + kb * atoms) * 512;
        const uint8_t* sfb = a.bScale + ((static_cast<long long>(e) * tilesN + nt) * tilesC + kb * atoms) * 512;
        sm90::bulkLoad(sSf, sfa, 512u * atoms, full(stage));
        sm90::bulkLoad(sSf + 512u * atoms, sfb, 512u * atoms, full(stage));
        if (++stage == kStages) stage = 0, phase ^= 1;
      }
    }
  } else if (warp == 1 && lane == 0) {
    // MMA issuer.
    int stage = 0;
    uint32_t phase = 0;
    int i = 0;
    for (int t = blockIdx.x; t < total; t += gridDim.x, ++i) {
      const int acc = i & 1;
      sm90::mbarWait(tmemEmpty(acc), ((i >> 1) & 1) ^ 1);  // the epilogue has read this accumulator's last tile
      fenceAfterSync();
      const uint32_t dTmem = tmem + acc * kAccCols;
      for (int kb = 0; kb < kBlocks; ++kb) {
        sm90::mbarWait(full(stage), phase);
        fenceAfterSync();
        const uint32_t sA = base + stage * stageBytes(F), sB = sA + kTileBytes, sSf = sB + kTileBytes;
        const uint32_t slot = tmem + 2 * kAccCols + stage * slotCols(F);  // A's atoms, then B's
        for (int q = 0; q < 2 * atoms; ++q) copyScaleAtom(slot + 4 * q, sSf + 512u * q);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          // MXFP8: one atom holds the four 32-wide K blocks (scale-factor ID kk); NVFP4: atom kk holds
          // the four 16-wide blocks of MMA kk (ID 0).
          const uint32_t sfa = F == kMxfp8 ? slot : slot + 4 * kk, sfb = F == kMxfp8 ? slot + 4 : slot + 4 * atoms + 4 * kk;
          mmaBlockScaled<F>(dTmem, operandDesc(sA + 32u * kk), operandDesc(sB + 32u * kk), instrDesc<F>(F == kMxfp8 ? kk : 0), sfa, sfb, (kb | kk) != 0);
        }
        commitTo(empty(stage));  // the stage (and its scale slot) is free once these MMAs are done
        if (++stage == kStages) stage = 0, phase ^= 1;
      }
      commitTo(tmemFull(acc));
    }
  } else if (warp >= 4) {
    // Epilogue warpgroup: warp w reads TMEM lanes 32w .. 32w + 31, i.e. rows 32w + lane of the tile.
    const int w = warp - 4;
    int i = 0;
    for (int t = blockIdx.x; t < total; t += gridDim.x, ++i) {
      const int e = expertOf(prefix, a.E, t), local = t - prefix[e];
      const int mb = firstBlock(offs, e) + local / tilesN, nt = local % tilesN;
      const int acc = i & 1;
      sm90::mbarWait(tmemFull(acc), (i >> 1) & 1);
      fenceAfterSync();
      float v[128];
#pragma unroll
      for (int c = 0; c < 4; ++c) tmemLoad32(tmem + acc * kAccCols + ((32u * w) << 16) + 32u * c, *reinterpret_cast<float(*)[32]>(v + 32 * c));
      fenceBeforeSync();
      sm90::mbarArrive(tmemEmpty(acc));
      const float alpha = F == kNvfp4 ? a.aGlobal[0] * a.bGlobal[e] : 1.f;
      const int row = mb * kBM + 32 * w + lane;
      if (row >= offs[e] && row < offs[e + 1]) {
        __nv_bfloat16* out = a.d + static_cast<long long>(row) * a.N + nt * kBN;
#pragma unroll
        for (int c = 0; c < 128; c += 8) {
          __align__(16) __nv_bfloat162 p[4];
#pragma unroll
          for (int j = 0; j < 4; ++j) p[j] = __floats2bfloat162_rn(v[c + 2 * j] * alpha, v[c + 2 * j + 1] * alpha);
          *reinterpret_cast<uint4*>(out + c) = *reinterpret_cast<const uint4*>(p);
        }
      }
    }
  }
  // Every role done (every tcgen05.ld waited on, every MMA committed and consumed): free TMEM.
  fenceBeforeSync();
  __syncthreads();
  fenceAfterSync();
  if (warp == 1) tmemDealloc(tmem, kTmemCols);
#else
  __trap();  // no sm_100 device code in this build: the launcher refuses it (its register count)
#endif  // DW_GROUPED100_DEVICE
}

// a as [R, K bytes] and b as [E·N, K bytes] (FP4: K / 2 bytes, two codes a byte), boxes of 128 bytes
// by 128 rows, 128-byte swizzle. False when TMA cannot describe them.
inline bool makeMaps(CUtensorMap* ma, CUtensorMap* mb, const void* a, const void* b, uint64_t R, uint64_t kBytes, uint64_t N, uint64_t E) {
  const attention::EncodeTiledFn enc = attention::encodeTiledFn();
  if (enc == nullptr) return false;
  const auto map = [&](CUtensorMap* m, const void* p, uint64_t rows) {
    if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
    const cuuint32_t estride[2] = {1, 1};
    const cuuint64_t dims[2] = {kBytes, rows > 0 ? rows : 1}, strides[1] = {kBytes};
    const cuuint32_t box[2] = {kRowBytes, kBM};
    return enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(p), dims, strides, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  return map(ma, a, R) && map(mb, b, E * N);
}

// Whether the kernel takes a call's sizes: K a whole number of stages, N of 128-wide tiles, at most
// kMaxExperts experts, at least one row, sizes that index as int (the launcher checks the GPU).
inline bool shapeOk(int f, uint64_t R, uint64_t K, uint64_t N, uint64_t E) {
  return K > 0 && K % static_cast<uint64_t>(kInK(f)) == 0 && N > 0 && N % kBN == 0 && E >= 1 && E <= kMaxExperts && R >= 1 && R < (1u << 31) && E * N < (1u << 31) &&
         K < (1u << 31);
}

}  // namespace grouped100
}  // namespace dw

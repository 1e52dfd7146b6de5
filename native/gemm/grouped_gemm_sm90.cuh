// The Hopper (sm_90a) grouped GEMM of dropless MoE, bf16 / f16 with FP32 accumulation:
//   out[r] = x[r] · w[e] for offsets[e] <= r < offsets[e + 1]
// x [R, K] row-major; w [E, K, N] row-major (TransW: [E, N, K], out[r] = x[r] · w[e]ᵀ); offsets i32
// [E + 1] on the device; out [R, N]. Included by gemm/grouped_gemm.cu (behind groupedGemm) and by
// the kernel lab (dev/cuda/gemm/grouped_sm90.cu). FIRST VERSION: compiled, not yet run on a GPU.
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
  int R, K, N, E;
  ErrWord* err;
};

#ifdef DW_GROUPED90_DEVICE
__device__ __forceinline__ void tmaLoad2d(uint32_t dst, const void* map, uint32_t bar, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
               ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
               : "memory");
}

// D(64 × 128, f32) += A(64 × 16, K-major smem) · B(16 × 128, smem; TransB: MN-major), bf16 or f16.
template <typename T, int TransB>
__device__ __forceinline__ void mma128(float (&d)[64], uint64_t a, uint64_t b) {
#define DW_G90_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define DW_G90_MMA(TY)                                                                                                              \
  asm volatile(                                                                                                                     \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                                                  \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY                                                                      \
      " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25,"  \
      " %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50," \
      " %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, %67;\n}\n"                         \
      : DW_G90_D8(0), DW_G90_D8(8), DW_G90_D8(16), DW_G90_D8(24), DW_G90_D8(32), DW_G90_D8(40), DW_G90_D8(48), DW_G90_D8(56)      \
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
#endif  // DW_GROUPED90_DEVICE

template <typename T, bool TransW>
__global__ void __launch_bounds__(kThreads, 1)
    groupedGemmSm90Kernel(const __grid_constant__ CUtensorMap tmX, const __grid_constant__ CUtensorMap tmW, const Args a) {
#ifdef DW_GROUPED90_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  int* const offs = reinterpret_cast<int*>(generic + kTilesOff);  // [E + 1]: the offsets
  int* const prefix = offs + a.E + 1;                                // [E + 1]: tiles before expert e
  auto full = [&](int s) { return base + kBarOff + 8u * s; };
  auto empty = [&](int s) { return base + kBarOff + 8u * (kStages + s); };
  const int tilesN = a.N / kBN + (a.N % kBN != 0);
  const int kBlocks = a.K / kBK;
  const int wg = threadIdx.x / 128;

  // The offsets into shared memory and checked (offsetsValid: block 0 records the first bad entry),
  // then the per-expert tile counts scanned by the block, a chunk of kThreads experts at a time.
  __shared__ int carry;
  if (threadIdx.x == 0) {
    carry = 0;
    for (int s = 0; s < kStages; ++s) {
      sm90::mbarInit(full(s), 1);
      sm90::mbarInit(empty(s), 2);  // one arrival per consumer warpgroup
    }
    sm90::fenceBarrierInit();
  }
  for (int e = threadIdx.x; e <= a.E; e += kThreads) offs[e] = a.offsets[e];
  if (!offsetsValid(offs, a.E, a.R, a.err, kOpGroupedMatmul)) return;  // its first barrier orders the copy
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scanTmp;
  for (int e0 = 0; e0 <= a.E; e0 += kThreads) {
    const int e = e0 + threadIdx.x;
    const int tiles = e < a.E ? (offs[e + 1] - offs[e] + kBM - 1) / kBM * tilesN : 0;
    int before, sum;
    Scan(scanTmp).ExclusiveSum(tiles, before, sum);
    if (e <= a.E) prefix[e] = carry + before;
    __syncthreads();
    if (threadIdx.x == 0) carry += sum;
    __syncthreads();
  }
  const int total = prefix[a.E];

  if (wg == 0) {
    // Producer: one thread issues every load.
    if (threadIdx.x == 0) {
      sm90::prefetchTensorMap(&tmX);
      sm90::prefetchTensorMap(&tmW);
      int stage = 0;
      uint32_t phase = 0;
      for (int t = blockIdx.x; t < total; t += gridDim.x) {
        const int e = expertOfTile(prefix, a.E, t);
        const int local = t - prefix[e];
        const int row0 = offs[e] + (local / tilesN) * kBM, col0 = (local % tilesN) * kBN;
        for (int kb = 0; kb < kBlocks; ++kb) {
          sm90::mbarWait(empty(stage), phase ^ 1);
          const uint32_t sA = base + stage * kStageBytes, sB = sA + kATileBytes;
          sm90::mbarArriveExpectTx(full(stage), kStageBytes);
          tmaLoad2d(sA, &tmX, full(stage), kb * kBK, row0);
          if constexpr (TransW) {
            // w viewed as [E·N, K]: 128 rows (N) of 64 (K), K-major.
            tmaLoad2d(sB, &tmW, full(stage), kb * kBK, e * a.N + col0);
          } else {
            // w viewed as [E·K, N]: 64 rows (K) by two 64-wide N panels, MN-major.
            tmaLoad2d(sB, &tmW, full(stage), col0, e * a.K + kb * kBK);
            tmaLoad2d(sB + kBTileBytes / 2, &tmW, full(stage), col0 + 64, e * a.K + kb * kBK);
          }
          if (++stage == kStages) stage = 0, phase ^= 1;
        }
      }
    }
    return;
  }

  // Consumers: warpgroup 1 rows 0..63 of the tile, warpgroup 2 rows 64..127.
  const int c = wg - 1;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  int stage = 0;
  uint32_t phase = 0;
  float acc[64];
  for (int t = blockIdx.x; t < total; t += gridDim.x) {
    const int e = expertOfTile(prefix, a.E, t);
    const int local = t - prefix[e];
    const int row0 = offs[e] + (local / tilesN) * kBM, col0 = (local % tilesN) * kBN;
    const int rowEnd = offs[e + 1];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    int prev = -1;
    for (int kb = 0; kb < kBlocks; ++kb) {
      sm90::mbarWait(full(stage), phase);
      const uint32_t sA = base + stage * kStageBytes + c * (kATileBytes / 2), sB = base + stage * kStageBytes + kATileBytes;
      sm90::wgmmaFence();
#pragma unroll
      for (int k = 0; k < kBK / 16; ++k) {
        const uint64_t da = sm90::descSw128(sA + 32u * k, 0, 1024);
        const uint64_t db = TransW ? sm90::descSw128(sB + 32u * k, 0, 1024) : sm90::descSw128(sB + 2048u * k, kBTileBytes / 2, 1024);
        mma128<T, TransW ? 0 : 1>(acc, da, db);
      }
      sm90::wgmmaCommit();
      sm90::wgmmaWait<1>();  // the previous K block's wgmma is done: its stage can be refilled
      if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
      prev = stage;
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
    sm90::wgmmaWait<0>();
    sm90::fenceRegs(acc);
    if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
    // Store this warpgroup's 64 rows: accumulator j·4 + h·2 + {0, 1} is row warp·16 + lane/4 + 8h,
    // columns 8j + 2·(lane % 4) + {0, 1}.
    T* out = static_cast<T*>(a.out);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = row0 + c * 64 + warp * 16 + lane / 4 + 8 * h;
      if (row >= rowEnd || row >= a.R) continue;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int col = col0 + 8 * j + 2 * (lane % 4);
        if (col < a.N) {
          T* p = out + static_cast<long long>(row) * a.N + col;
          if constexpr (std::is_same<T, __nv_bfloat16>::value) *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
          else *reinterpret_cast<__half2*>(p) = __floats2half2_rn(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
        }
      }
    }
  }
#else
  // A build without sm_90a device code: launchSm90 refuses this stub (its register count) and the
  // general path runs instead; trap should it ever be launched.
  __trap();
#endif  // DW_GROUPED90_DEVICE
}

// The two maps: x as [R, K] (box 64 × 128 rows) and w as [E·K, N] (box 64 × 64: MN-major panels)
// or, TransW, [E·N, K] (box 64 × 128 rows), 128-byte swizzle. False when TMA cannot describe them.
inline bool makeMaps(CUtensorMap* mx, CUtensorMap* mw, CUtensorMapDataType dt, const void* x, const void* w, int R, int K, int N, int E, bool transW) {
  const attention::EncodeTiledFn enc = attention::encodeTiledFn();
  if (enc == nullptr || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0) return false;
  const cuuint32_t estride[2] = {1, 1};
  const auto map2d = [&](CUtensorMap* m, const void* p, uint64_t inner, uint64_t rows, uint32_t boxRows) {
    const cuuint64_t dims[2] = {inner, rows > 0 ? rows : 1}, strides[1] = {inner * 2};
    const cuuint32_t box[2] = {64, boxRows};
    return enc(m, dt, 2, const_cast<void*>(p), dims, strides, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  if (!map2d(mx, x, K, R, kBM)) return false;
  return transW ? map2d(mw, w, K, uint64_t(E) * N, kBN) : map2d(mw, w, N, uint64_t(E) * K, kBK);
}

// Whether the fast path takes a call: compute capability 9.0, bf16 or f16, K and N multiples of 64,
// at most kMaxExperts experts, sizes that index as int.
inline bool supported(int cc, int dtypeBytes, uint64_t R, uint64_t K, uint64_t N, uint64_t E) {
  return cc == 90 && dtypeBytes == 2 && K > 0 && N > 0 && K % 64 == 0 && N % 64 == 0 && E >= 1 && E <= kMaxExperts && R < (1u << 31) &&
         uint64_t(E) * K < (1u << 31) && uint64_t(E) * N < (1u << 31);
}

}  // namespace grouped90
}  // namespace dw

// The wide tiles of the Hopper (sm_90a) grouped GEMM (gemm/grouped_gemm_sm90.cuh): 128 × 256 blocks
// of out, each consumer warpgroup 64 × 256 (wgmma m64n256k16, 128 f32 accumulators a thread), as
// CUTLASS's cooperative kernels and torch._grouped_mm's Hopper configuration for large problems tile.
// Against the 128 × 128 tiles, each A block read from shared memory feeds twice the columns, and the
// producer issues half the A loads per output element. Same structure, same tile order (expert by
// expert, N fastest), same epilogues (none / gelu / dgelu; SwiGLU stays on the 128-wide kernel, whose
// tiles hold both of its products), same fallbacks; a ring of kWideStages stages of 48 KB.
// Registers: setmaxnreg gives the producer warpgroup 40 and each consumer 232.
// Chosen by the launcher in gemm/grouped_gemm.cu (DW_GROUPED_TILE_N=256 in the environment;
// the 128-wide kernel otherwise). Its test (ir cuda-grouped -t wide) and the MoE GPT with it have
// run on the H100 and the H200 (docs/gpu-runs).
#pragma once
#include "gemm/grouped_gemm_sm90.cuh"

namespace dw {
namespace grouped90 {

constexpr int kWideBN = 256, kWideStages = 4;
constexpr uint32_t kWideBTileBytes = kBK * kWideBN * 2;                 // 32 KB: four 64-column panels (MN-major) or 256 rows (K-major)
constexpr uint32_t kWideStageBytes = kATileBytes + kWideBTileBytes;     // 48 KB
constexpr uint32_t kWideBarOff = kWideStages * kWideStageBytes;         // full[kWideStages], empty[kWideStages]
constexpr uint32_t kWideTilesOff = kWideBarOff + 16 * kWideStages;      // offsets, then the tile prefix
constexpr int wideSmemBytes(int E) { return static_cast<int>(kWideTilesOff + 8u * (E + 1) + 1024u); }
// At most kWideMaxExperts experts (more take the 128-wide kernel), so that 2 KB stay free for the
// static shared memory on top (the block scan's storage: 1.7 KB today).
constexpr int kWideMaxExperts = 4000;
static_assert(wideSmemBytes(kWideMaxExperts) + 2048 <= 232448, "the wide grouped GEMM fits in shared memory with kWideMaxExperts experts");

#ifdef DW_GROUPED90_DEVICE
// D(64 × 256, f32) += A(64 × 16, K-major smem) · B(16 × 256, smem; TransB: MN-major, else K-major).
template <typename T, int TransB>
__device__ __forceinline__ void mma256(float (&d)[128], uint64_t a, uint64_t b) {
#define DW_G90_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define DW_G90_MMA(TY)                                                                                  \
  asm volatile(                                                                                         \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                                     \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " {"                                     \
      " %0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"                          \
      " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"                \
      " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"                \
      " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"                \
      " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"                \
      " %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95,"                \
      " %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111,"    \
      " %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
      "}, %128, %129, p, 1, 1, 0, %131;\n}\n"                                                           \
      : DW_G90_D8(0), DW_G90_D8(8), DW_G90_D8(16), DW_G90_D8(24), DW_G90_D8(32), DW_G90_D8(40),         \
        DW_G90_D8(48), DW_G90_D8(56), DW_G90_D8(64), DW_G90_D8(72), DW_G90_D8(80), DW_G90_D8(88),       \
        DW_G90_D8(96), DW_G90_D8(104), DW_G90_D8(112), DW_G90_D8(120)                                   \
      : "l"(a), "l"(b), "r"(1), "n"(TransB))
  if constexpr (std::is_same<T, __nv_bfloat16>::value) DW_G90_MMA("bf16");
  else DW_G90_MMA("f16");
#undef DW_G90_MMA
#undef DW_G90_D8
}
#endif

template <typename T, bool TransW, int Epi>
__global__ void __launch_bounds__(kThreads, 1)
    groupedGemmWideSm90Kernel(const __grid_constant__ CUtensorMap tmX, const __grid_constant__ CUtensorMap tmW, const Args a) {
  static_assert(Epi != grouped::kEpiSwiglu, "SwiGLU runs on the 128-wide kernel");
#ifdef DW_GROUPED90_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  int* const offs = reinterpret_cast<int*>(generic + kWideTilesOff);  // [E + 1]: the offsets
  int* const prefix = offs + a.E + 1;                                   // [E + 1]: tiles before expert e
  auto full = [&](int s) { return base + kWideBarOff + 8u * s; };
  auto empty = [&](int s) { return base + kWideBarOff + 8u * (kWideStages + s); };
  const int tilesN = (a.N + kWideBN - 1) / kWideBN;
  const int kBlocks = a.K / kBK;
  const int wg = threadIdx.x / 128;
  using WideRing = RingOf<kWideStages>;

  const int total = ringPrologue<kWideStages, kWideBarOff>(base, offs, prefix, a.offsets, a.E, a.R, tilesN, a.err, kOpGroupedMatmul);
  if (total < 0) return;  // bad offsets (recorded)

  if (wg == 0) {
    sm90::setmaxnregDec<40>();
    // Producer: one thread issues every load.
    if (threadIdx.x == 0) {
      sm90::prefetchTensorMap(&tmX);
      sm90::prefetchTensorMap(&tmW);
      WideRing ring;
      for (int t = blockIdx.x; t < total; t += gridDim.x) {
        const int e = expertOfTile(prefix, a.E, t);
        const int local = t - prefix[e];
        const int row0 = offs[e] + (local / tilesN) * kBM, col0 = (local % tilesN) * kWideBN;
        for (int kb = 0; kb < kBlocks; ++kb) {
          sm90::mbarWait(empty(ring.stage), ring.phase ^ 1);
          const uint32_t sA = base + ring.stage * kWideStageBytes, sB = sA + kATileBytes;
          sm90::mbarArriveExpectTx(full(ring.stage), kWideStageBytes);  // boxes past N or R count in full (zero-filled)
          tmaLoad2d(sA, &tmX, full(ring.stage), kb * kBK, row0);
          if constexpr (TransW) {
            // w viewed as [E·N, K]: 256 rows (N) of 64 (K), K-major.
            tmaLoad2d(sB, &tmW, full(ring.stage), kb * kBK, e * a.N + col0);
          } else {
            // w viewed as [E·K, N]: 64 rows (K) by four 64-wide N panels, MN-major.
#pragma unroll
            for (int p = 0; p < 4; ++p) tmaLoad2d(sB + p * (kWideBTileBytes / 4), &tmW, full(ring.stage), col0 + 64 * p, e * a.K + kb * kBK);
          }
          ring.next();
        }
      }
    }
    return;
  }

  sm90::setmaxnregInc<232>();
  // Consumers: warpgroup 1 rows 0..63 of the tile, warpgroup 2 rows 64..127.
  const int c = wg - 1;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  WideRing ring;
  float acc[128];
  for (int t = blockIdx.x; t < total; t += gridDim.x) {
    const int e = expertOfTile(prefix, a.E, t);
    const int local = t - prefix[e];
    const int row0 = offs[e] + (local / tilesN) * kBM, col0 = (local % tilesN) * kWideBN;
    const int rowEnd = offs[e + 1];
#pragma unroll
    for (int i = 0; i < 128; ++i) acc[i] = 0.f;
    int prev = -1;
    for (int kb = 0; kb < kBlocks; ++kb) {
      sm90::mbarWait(full(ring.stage), ring.phase);
      const uint32_t sA = base + ring.stage * kWideStageBytes + c * (kATileBytes / 2), sB = base + ring.stage * kWideStageBytes + kATileBytes;
      sm90::wgmmaFence();
#pragma unroll
      for (int k = 0; k < kBK / 16; ++k) {
        // B's k step: 16 elements along a K-major row (32 bytes) or 16 MN-major rows (2048 bytes);
        // MN-major panels of 64 columns lie 8 KB apart (the descriptor's leading byte offset).
        const uint32_t kStep = TransW ? 32u * k : 2048u * k;
        mma256<T, TransW ? 0 : 1>(acc, sm90::descSw128(sA + 32u * k, 0, 1024), sm90::descSw128(sB + kStep, TransW ? 0 : kWideBTileBytes / 4, 1024));
      }
      sm90::wgmmaCommit();
      sm90::wgmmaWait<1>();  // the previous K block's wgmma is done: its stage can be refilled
      if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
      prev = ring.stage;
      ring.next();
    }
    sm90::wgmmaWait<0>();
    sm90::fenceRegs(acc);
    if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
    // Store this warpgroup's 64 rows (accumulator j·4 + h·2 + {0, 1} is row warp·16 + lane/4 + 8h).
    const grouped::EpiPtrs<T> epi{static_cast<T*>(a.aux), static_cast<T*>(a.aux2)};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = row0 + c * 64 + warp * 16 + lane / 4 + 8 * h;
      if (row < rowEnd && row < a.R) storeAccRow<T, Epi, kWideBN>(acc, h, static_cast<long long>(row) * a.N, col0, a.N, lane, static_cast<T*>(a.out), epi);
    }
  }
#else
  __trap();  // no sm_90a device code in this build: the launcher refuses the stub (its register count)
#endif  // DW_GROUPED90_DEVICE
}

// The maps of the wide kernel: x as [R, K] (box 64 × 128 rows) and w as [E·K, N] (box 64 × 64:
// MN-major panels) or, TransW, [E·N, K] (box 64 × 256 rows), 128-byte swizzle.
inline bool makeWideMaps(CUtensorMap* mx, CUtensorMap* mw, CUtensorMapDataType dt, const void* x, const void* w, int R, int K, int N, int E, bool transW) {
  return map2d(mx, dt, x, K, R, kBM) && (transW ? map2d(mw, dt, w, K, uint64_t(E) * N, kWideBN) : map2d(mw, dt, w, N, uint64_t(E) * K, kBK));
}

}  // namespace grouped90
}  // namespace dw

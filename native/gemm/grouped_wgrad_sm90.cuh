// The Hopper (sm_90a) weight gradient of the grouped GEMM (dropless MoE's expert weights), bf16 /
// f16 with FP32 accumulation:
//   dw[e] = Σ_{offsets[e] <= r < offsets[e + 1]} x[r]ᵀ · g[r]
// x [R, K], g [R, N] row-major; offsets i32 [E + 1] on the device; dw [E, K, N] row-major (zeros for
// an expert with no rows). Included by gemm/grouped_gemm.cu (behind groupedGemmWgrad). FIRST
// VERSION: compiled, not yet run on a GPU.
//
// The reduction runs over an expert's rows ("k-grouped", as DeepGEMM calls it), so both operands lie
// in memory with the reduced index as their rows: A = x_eᵀ and B = g_e are both MN-major, which
// bf16 / f16 wgmma reads directly (both transpose bits set; the attention backward's dQ = dS·K is
// the same case). The structure is the forward kernel's (gemm/grouped_gemm_sm90.cuh):
//   * persistent, one CTA per SM walking the tiles t = blockIdx.x, + gridDim.x, ...; a tile is a
//     128 × 128 block of dw[e], expert by expert, N fastest (no scan: every expert has the same
//     tiles; an expert with no rows has its tiles stored as zeros);
//   * warpgroup 0 is the producer: one thread loads each 64-row block of the expert's rows — x's
//     rows × 128 K columns and g's rows × 128 N columns, each as two 64-column (128-byte) panels —
//     into a ring of kStages stages;
//   * warpgroups 1 and 2 each own 64 rows of the tile (the K panel c of x): wgmma m64n128k16,
//     releasing each stage once the wgmma that read it is done, then storing from registers.
// An expert's last block usually runs past its rows into the next expert's (TMA zero-fills only past
// R): before the wgmma reads that stage, each consumer warpgroup zeroes those rows in its own x panel
// and in g's panel c, then the two warpgroups meet at a named barrier (each wgmma reads both of g's
// panels). So no other expert's values ever enter a sum, not even a NaN times zero.
// Deterministic: one CTA sums a tile's rows in order; no split K, no atomics.
// The fast path needs K % 64 == 0 and N % 64 == 0, 16-byte aligned bases and compute capability 9.0
// (the launcher in grouped_gemm.cu falls back to the general path otherwise).
#pragma once
#include "gemm/grouped_gemm_sm90.cuh"

namespace dw {
namespace grouped90 {

constexpr uint32_t kPanelBytes = 64 * 128;  // 64 rows of a 64-column (128-byte) panel
constexpr uint32_t kBarZeroed = 1;          // named barrier: both consumers zeroed their rows

struct WgradArgs {
  const int* offsets;
  void* dw;
  int R, K, N, E;
  ErrWord* err;
};

#ifdef DW_GROUPED90_DEVICE
// Zeroes rows first..63 of a 64-row panel (128 bytes a row: whole rows, so the swizzle does not
// matter), by the 128 threads of a warpgroup.
__device__ __forceinline__ void zeroRows(uint8_t* panel, int first, int tid) {
  const int n = (64 - first) * 8;  // 16-byte chunks
  uint4* p = reinterpret_cast<uint4*>(panel + first * 128);
  for (int i = tid; i < n; i += 128) p[i] = make_uint4(0, 0, 0, 0);
}
#endif

template <typename T>
__global__ void __launch_bounds__(kThreads, 1)
    groupedWgradSm90Kernel(const __grid_constant__ CUtensorMap tmX, const __grid_constant__ CUtensorMap tmG, const WgradArgs a) {
#ifdef DW_GROUPED90_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  int* const offs = reinterpret_cast<int*>(generic + kTilesOff);  // [E + 1], then the prologue's scan [E + 1]
  auto full = [&](int s) { return base + kBarOff + 8u * s; };
  auto empty = [&](int s) { return base + kBarOff + 8u * (kStages + s); };
  const int tilesK = (a.K + kBM - 1) / kBM, tilesN = (a.N + kBN - 1) / kBN;
  const int perExpert = tilesK * tilesN;
  const long long total = static_cast<long long>(perExpert) * a.E;
  const int wg = threadIdx.x / 128;

  // Barriers and offsets as the forward's (its tile scan unused here: every expert has perExpert tiles).
  if (ringPrologue(base, offs, offs + a.E + 1, a.offsets, a.E, a.R, 1, a.err, kOpGroupedMatmulWgrad) < 0) return;

  if (wg == 0) {
    if (threadIdx.x == 0) {
      sm90::prefetchTensorMap(&tmX);
      sm90::prefetchTensorMap(&tmG);
      Ring ring;
      for (long long t = blockIdx.x; t < total; t += gridDim.x) {
        const int e = static_cast<int>(t / perExpert), local = static_cast<int>(t % perExpert);
        const int k0 = (local / tilesN) * kBM, n0 = (local % tilesN) * kBN;
        for (int r = offs[e]; r < offs[e + 1]; r += kBK) {
          sm90::mbarWait(empty(ring.stage), ring.phase ^ 1);
          const uint32_t sA = base + ring.stage * kStageBytes, sB = sA + kATileBytes;
          sm90::mbarArriveExpectTx(full(ring.stage), kStageBytes);  // boxes past K, N or R count in full (zero-filled)
          tmaLoad2d(sA, &tmX, full(ring.stage), k0, r);
          tmaLoad2d(sA + kPanelBytes, &tmX, full(ring.stage), k0 + 64, r);
          tmaLoad2d(sB, &tmG, full(ring.stage), n0, r);
          tmaLoad2d(sB + kPanelBytes, &tmG, full(ring.stage), n0 + 64, r);
          ring.next();
        }
      }
    }
    return;
  }

  // Consumers: warpgroup 1 the tile's rows (K) 0..63, warpgroup 2 rows 64..127.
  const int c = wg - 1;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  Ring ring;
  float acc[64];
  T* const dwAll = static_cast<T*>(a.dw);
  for (long long t = blockIdx.x; t < total; t += gridDim.x) {
    const int e = static_cast<int>(t / perExpert), local = static_cast<int>(t % perExpert);
    const int k0 = (local / tilesN) * kBM, n0 = (local % tilesN) * kBN;
    const int rowEnd = offs[e + 1];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    int prev = -1;
    for (int r = offs[e]; r < rowEnd; r += kBK) {
      sm90::mbarWait(full(ring.stage), ring.phase);
      const uint32_t sA = base + ring.stage * kStageBytes, sB = sA + kATileBytes;
      if (rowEnd - r < kBK) {
        // The block runs past the expert: zero its other rows (x's panel c and g's panel c), make
        // the writes visible to wgmma (async proxy), and wait for the other warpgroup's.
        uint8_t* const gA = generic + (sA - base), *const gB = generic + (sB - base);
        zeroRows(gA + c * kPanelBytes, rowEnd - r, tid);
        zeroRows(gB + c * kPanelBytes, rowEnd - r, tid);
        sm90::fenceProxyAsyncShared();
        sm90::namedBarSync(kBarZeroed, 256);
      }
      sm90::wgmmaFence();
#pragma unroll
      for (int k = 0; k < kBK / 16; ++k) {
        // 16 rows of 128 bytes a step; A: x's panel c (64 of K), B: both of g's panels (LBO apart).
        const uint64_t da = sm90::descSw128(sA + c * kPanelBytes + 2048u * k, kPanelBytes, 1024);
        const uint64_t db = sm90::descSw128(sB + 2048u * k, kPanelBytes, 1024);
        mma128<T, 1, 1>(acc, da, db);
      }
      sm90::wgmmaCommit();
      sm90::wgmmaWait<1>();
      if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
      prev = ring.stage;
      ring.next();
    }
    sm90::wgmmaWait<0>();
    sm90::fenceRegs(acc);
    if (prev >= 0 && tid == 0) sm90::mbarArrive(empty(prev));
    // Accumulator j·4 + h·2 + {0, 1} is row warp·16 + lane/4 + 8h, columns 8j + 2·(lane % 4) + {0, 1}.
    T* const out = dwAll + static_cast<long long>(e) * a.K * a.N;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = k0 + c * 64 + warp * 16 + lane / 4 + 8 * h;
      if (row >= a.K) continue;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int col = n0 + 8 * j + 2 * (lane % 4);
        if (col < a.N) grouped::storePair<T, grouped::kEpiNone>(out, static_cast<long long>(row) * a.N + col, acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1], 0.f, 0.f, {});
      }
    }
  }
#else
  __trap();  // a build without sm_90a device code: the launcher refuses this stub (its register count)
#endif  // DW_GROUPED90_DEVICE
}

// x as [R, K] and g as [R, N], boxes of 64 columns by 64 rows (one panel).
inline bool makeWgradMaps(CUtensorMap* mx, CUtensorMap* mg, CUtensorMapDataType dt, const void* x, const void* g, int R, int K, int N) {
  return map2d(mx, dt, x, K, R, kBK) && map2d(mg, dt, g, N, R, kBK);
}

// Whether the fast path takes a weight gradient: as the forward, plus at least one row (with none,
// the general path's zero fill is all there is to do).
inline bool wgradSupported(int cc, int dtypeBytes, uint64_t R, uint64_t K, uint64_t N, uint64_t E) {
  return R >= 1 && supported(cc, dtypeBytes, R, K, N, E);
}

}  // namespace grouped90
}  // namespace dw

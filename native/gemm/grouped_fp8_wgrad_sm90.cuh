// The Hopper (sm_90a) FP8 blockwise weight gradient of dropless MoE's expert GEMMs (precision's
// grouped_scaled_matmul_wgrad; DeepGEMM calls this layout "k-grouped"):
//   dw[e, k, n] = Σ_pb sa[pb, k] · sb[pb, n] · Σ_{p in block pb} a[k, p] · b[n, p]
// over expert e's padded blocks pb in [q_e, q_{e+1}), q_e = Σ_{e' < e} ceil(rows_e' / 128) (q_E·128 <= P,
// else nothing is computed and the error word says so). a [K, P]
// and b [N, P] are FP8 codes with the reduced index (the expert's tokens, each expert's run padded
// with zero codes to a multiple of 128; quant/quantize_kgrouped.cu writes them) contiguous: the
// K-major operands FP8 wgmma reads. sa f32 [P / 128, K] and sb f32 [P / 128, N] are the 128 × 1
// block scales (one per channel per 128 tokens). dw [E, K, N] bf16 or f32, zeros for an expert with
// no rows. Included by gemm/grouped_fp8_wgrad.cu. Its GPU test (precision kgrouped_gpu) passes on the
// H100 (session 26, both scale paths below; the H200 before session 25), and MoE trainings with it
// repeat bit for bit (docs/gpu-runs/2026-12-06-session26).
//
// The forward FP8 kernel's structure (gemm/grouped_fp8_sm90.cuh: persistent CTAs, a producer
// warpgroup, two consumer warpgroups of 64 rows each, a ring of stages, each 128-deep block's partial
// promoted into FP32 with two partials in turn), with the weight gradient's tiles and scales:
//   * a tile is a 128 × 128 block of dw[e] (K rows, N columns), expert by expert, N fastest; every
//     expert has the same tiles (ringPrologue's scan with one tile per 128 rows gives q_e);
//   * a stage holds a's 128 rows (K) and b's 128 rows (N) of one padded block, 128 codes each;
//   * a scale varies along both of the tile's dimensions, so promotion is per element:
//     acc += partial · (sa[row] · sb[col]), with the block's scales of the tile's rows and columns
//     (WgScales below: by default TMA-loaded into the stage beside the codes).
// Until session 25 the scales came into the stage by TMA and were read there with generic loads just
// before the stage's release, with no proxy fence between those loads and the producer's next TMA
// writes into the stage, as the PTX memory model asks for: trainings with this kernel did not repeat
// bit for bit (six of six 40-step reruns left the first; about one launch in several hundred gave
// other bits). With the fence (kWgTma), and with no shared memory touched by both proxies (kWgStaged,
// and session 25's reads from global memory), twelve of twelve such reruns repeated (session 26).
// Deterministic: one CTA sums a tile's blocks in order; no split K, no atomics. The fast path needs
// K and N multiples of 64, 16-byte aligned operands and compute capability 9.0; the launcher takes
// the general path otherwise.
#pragma once
#include "gemm/grouped_fp8_sm90.cuh"

namespace dw {
namespace grouped90 {

// Where the promotion's scales come from (session 26 measured both, and a third that read them from
// global memory in the promotion: 0.47-0.64x of kWgTma, for its L2 round trip and spills; docs/gpu-runs/
// 2026-12-06-session26):
//   kWgTma     (the default) TMA boxes of 128 × 1 f32 in the stage beside the codes, read there with
//              generic loads, then a proxy fence and the warpgroup's barrier before the stage's
//              release;
//   kWgStaged  (DEEPWELL_FP8_WGRAD_SCALES=staged) each consumer warpgroup loads the next block's
//              scales from global memory into two registers a thread during the current block's
//              promotion, stores them into its own double buffer at the next promotion and reads
//              them there after a named barrier: nothing in shared memory touched by both proxies,
//              at 0.88-0.92x the speed of kWgTma.
enum WgScales : int { kWgTma = 1, kWgStaged = 2 };
constexpr uint32_t kWgScaleBytes = 128 * 4;             // one block's 128 scales of an operand (kWgTma)
constexpr uint32_t kWgStagedFloats = 64 + 128;          // a warpgroup's 64 rows' and the tile's 128 columns' scales
constexpr uint32_t kWgStagedBytes = 2 * 2 * kWgStagedFloats * 4;  // two warpgroups × two buffers (kWgStaged)
__host__ __device__ constexpr uint32_t wgStageBytes(int sc) { return kATileBytes + kBTileBytes + (sc == kWgTma ? 2 * kWgScaleBytes : 0); }
__host__ __device__ constexpr uint32_t wgBarOff(int sc) { return kStages * wgStageBytes(sc) + (sc == kWgStaged ? kWgStagedBytes : 0); }
__host__ __device__ constexpr uint32_t wgTilesOff(int sc) { return wgBarOff(sc) + 16 * kStages; }
constexpr int wgradSmemBytes(int sc, int E) { return static_cast<int>(wgTilesOff(sc) + 8u * (E + 1) + 1024u); }
static_assert(wgStageBytes(kWgTma) % 1024 == 0 && wgStageBytes(kWgStaged) % 1024 == 0, "an FP8 wgrad stage is 1024-aligned");
static_assert(wgradSmemBytes(kWgTma, kMaxExperts) <= 227 * 1024 && wgradSmemBytes(kWgStaged, kMaxExperts) <= 227 * 1024, "the FP8 wgrad kernel fits in shared memory");

struct Fp8WgradArgs {
  const int* offsets;
  const float* sa;  // [P / 128, K]
  const float* sb;  // [P / 128, N], 8-byte aligned (read as float2)
  void* dw;         // [E, K, N]
  int K, N, E, P;
  ErrWord* err;
};

// The padded total q_E (blocks) against the codes' P positions: false (recorded by block 0 with aux
// 1: value the padded positions, bound P) when the offsets' padded rows do not fit.
__device__ __forceinline__ bool paddedFits(int qE, int P, ErrWord* err) {
  if (static_cast<long long>(qE) * 128 <= P) return true;
  if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0) raiseErr(err, kOpGroupedScaledMatmulWgrad, 0, 128.0 * qE, P, 1);
  return false;
}

template <int FA, int FB, typename OutT, int SC>
__global__ void __launch_bounds__(kThreads, 1)
    groupedFp8WgradSm90Kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB, const __grid_constant__ CUtensorMap tmSa,
                              const __grid_constant__ CUtensorMap tmSb, const Fp8WgradArgs a) {
#ifdef DW_GROUPED90_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  constexpr uint32_t kWgStageBytes = wgStageBytes(SC), kWgBarOff = wgBarOff(SC);
  int* const offs = reinterpret_cast<int*>(generic + wgTilesOff(SC));  // [E + 1]: the offsets
  int* const q = offs + a.E + 1;                                      // [E + 1]: the padded blocks before expert e
  auto full = [&](int s) { return base + kWgBarOff + 8u * s; };
  auto empty = [&](int s) { return base + kWgBarOff + 8u * (kStages + s); };
  const int tilesK = (a.K + kBM - 1) / kBM, tilesN = (a.N + kBN - 1) / kBN;
  const int perExpert = tilesK * tilesN;
  const long long total = static_cast<long long>(perExpert) * a.E;
  const int wg = threadIdx.x / 128;
  // One "tile" per 128 rows: q[e] = Σ ceil(rows / 128) over the experts before e.
  // The rows are not known (R -1): offsets are checked for 0 first and never decreasing, and their
  // padded total against P.
  const int qE = ringPrologue<kStages, kWgBarOff>(base, offs, q, a.offsets, a.E, -1, 1, a.err, kOpGroupedScaledMatmulWgrad);
  if (qE < 0 || !paddedFits(qE, a.P, a.err)) return;

  if (wg == 0) {
    sm90::setmaxnregDec<kProducerRegs>();
    if (threadIdx.x == 0) {
      sm90::prefetchTensorMap(&tmA);
      sm90::prefetchTensorMap(&tmB);
      if constexpr (SC == kWgTma) {
        sm90::prefetchTensorMap(&tmSa);
        sm90::prefetchTensorMap(&tmSb);
      }
      Ring ring;
      for (long long t = blockIdx.x; t < total; t += gridDim.x) {
        const int e = static_cast<int>(t / perExpert), local = static_cast<int>(t % perExpert);
        const int k0 = (local / tilesN) * kBM, n0 = (local % tilesN) * kBN;
        for (int pb = q[e]; pb < q[e + 1]; ++pb) {
          sm90::mbarWait(empty(ring.stage), ring.phase ^ 1);
          const uint32_t sA = base + ring.stage * kWgStageBytes, sB = sA + kATileBytes;
          sm90::mbarArriveExpectTx(full(ring.stage), kWgStageBytes);  // boxes past K or N count in full (zero-filled)
          tmaLoad2d(sA, &tmA, full(ring.stage), pb * 128, k0);  // a: 128 rows (K) × 128 codes (tokens)
          tmaLoad2d(sB, &tmB, full(ring.stage), pb * 128, n0);  // b: 128 rows (N) × 128 codes
          if constexpr (SC == kWgTma) {
            tmaLoad2d(sB + kBTileBytes, &tmSa, full(ring.stage), k0, pb);                  // sa[pb, k0 .. k0 + 127]
            tmaLoad2d(sB + kBTileBytes + kWgScaleBytes, &tmSb, full(ring.stage), n0, pb);  // sb[pb, n0 .. n0 + 127]
          }
          ring.next();
        }
      }
    }
    return;
  }

  // Consumers: warpgroup 1 the tile's rows (K) 0..63, warpgroup 2 rows 64..127.
  sm90::setmaxnregInc<kConsumerRegs>();
  const int c = wg - 1;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  const int rowIn = c * 64 + warp * 16 + lane / 4;  // this thread's first row in the tile (the second is 8 below)
  const int t4 = lane % 4;                           // its columns: 8j + 2·t4 + {0, 1}
  Ring ring;  // the next block to promote; `issue` runs one ahead of it
  float acc[64], partA[64], partB[64];
  OutT* const dwAll = static_cast<OutT*>(a.dw);
  // kWgStaged: this warpgroup's two buffers, the next block's scales in flight (a thread's row
  // c·64 + tid if tid < 64, and column tid), and the promotions so far (which buffer is next).
  float* const staged = reinterpret_cast<float*>(generic + kStages * kWgStageBytes);
  float nextSa = 0.f, nextSb = 0.f;
  unsigned promoted = 0;
  for (long long t = blockIdx.x; t < total; t += gridDim.x) {
    const int e = static_cast<int>(t / perExpert), local = static_cast<int>(t % perExpert);
    const int k0 = (local / tilesN) * kBM, n0 = (local % tilesN) * kBN;
    const int blocks = q[e + 1] - q[e];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    const auto loadScales = [&](int kb) {  // kWgStaged: block kb's scales of this thread's row and column
      const long long pb = q[e] + kb;
      if (tid < 64) nextSa = __ldg(a.sa + pb * a.K + min(k0 + c * 64 + tid, a.K - 1));
      nextSb = __ldg(a.sb + pb * a.N + min(n0 + tid, a.N - 1));
    };
    Ring next = ring;
    // Block kb's four wgmma into a fresh partial, committed as one group.
    const auto issue = [&](float (&part)[64]) {
      sm90::mbarWait(full(next.stage), next.phase);
      const uint32_t sA = base + next.stage * kWgStageBytes + c * (kATileBytes / 2), sB = base + next.stage * kWgStageBytes + kATileBytes;
      sm90::wgmmaFence();
#pragma unroll
      for (int k = 0; k < kFp8BK / 32; ++k) mmaFp8<FA, FB>(part, sm90::descSw128(sA + 32u * k, 0, 1024), sm90::descSw128(sB + 32u * k, 0, 1024), k > 0 ? 1 : 0);
      sm90::wgmmaCommit();
      next.next();
    };
    // Block kb of the tile (the oldest in flight), whose wgmma are done: its partial promoted into
    // acc with the block's scales, and its stage released. Accumulator 4j + 2h + {0, 1} is row
    // rowIn + 8h, columns 8j + 2·t4 + {0, 1}. Rows past K and columns past N take zero (kWgTma) or
    // the last row's or column's scales (kWgStaged); their results are never stored.
    const auto promote = [&](float (&part)[64], int kb) {
      sm90::fenceRegs(part);
      const float* sa;  // the warpgroup's 64 rows' scales (sa[i] is row c·64 + i's)
      const float* sb;  // the tile's 128 columns' scales
      if constexpr (SC == kWgTma) {
        sa = reinterpret_cast<const float*>(generic + ring.stage * kWgStageBytes + kATileBytes + kBTileBytes) + c * 64;
        sb = sa - c * 64 + 128;
      } else {
        // kWgStaged releases the stage now (this warp's wait covers the warpgroup's wgmma, as in
        // the forward kernel): nothing of it is read below.
        if (tid == 0) sm90::mbarArrive(empty(ring.stage));
        ring.next();
        float* const buf = staged + 2 * kWgStagedFloats * c + kWgStagedFloats * (promoted++ & 1);
        if (tid < 64) buf[tid] = nextSa;
        buf[64 + tid] = nextSb;
        sm90::namedBarSync(2 + c, 128);  // the warpgroup's stores are seen (its buffer's last reads were before the previous barrier)
        sa = buf;
        sb = buf + 64;
        if (kb + 1 < blocks) loadScales(kb + 1);
      }
      const int r0 = rowIn - c * 64;
      const float s0 = sa[r0], s1 = sa[r0 + 8];
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const float2 sc2 = *reinterpret_cast<const float2*>(sb + 8 * j + 2 * t4);
        acc[4 * j] = fmaf(part[4 * j], s0 * sc2.x, acc[4 * j]);
        acc[4 * j + 1] = fmaf(part[4 * j + 1], s0 * sc2.y, acc[4 * j + 1]);
        acc[4 * j + 2] = fmaf(part[4 * j + 2], s1 * sc2.x, acc[4 * j + 2]);
        acc[4 * j + 3] = fmaf(part[4 * j + 3], s1 * sc2.y, acc[4 * j + 3]);
      }
      if constexpr (SC == kWgTma) {
        // The scales were read with generic loads from memory the producer's next TMA writes into:
        // a proxy fence, then every lane's reads done, then the release.
        sm90::fenceProxyAsyncShared();
        sm90::namedBarSync(2 + c, 128);
        if (tid == 0) sm90::mbarArrive(empty(ring.stage));
        ring.next();
      }
    };
    if constexpr (SC == kWgStaged) {
      if (blocks > 0) loadScales(0);
    }
    // Two partials in turn, as the forward kernel (none for an expert with no rows).
    twoPartials(blocks, partA, partB, issue, promote);
    // Store this warpgroup's 64 rows of dw[e] (zeros for an expert with no rows).
    OutT* const out = dwAll + static_cast<long long>(e) * a.K * a.N;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = k0 + rowIn + 8 * h;
      if (row >= a.K) continue;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int col = n0 + 8 * j + 2 * t4;
        if (col >= a.N) continue;
        OutT* p = out + static_cast<long long>(row) * a.N + col;
        const float v0 = acc[4 * j + 2 * h], v1 = acc[4 * j + 2 * h + 1];
        if constexpr (std::is_same<OutT, float>::value) *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
        else *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
      }
    }
  }
#else
  __trap();  // a build without sm_90a device code: the launcher refuses this stub (its register count)
#endif  // DW_GROUPED90_DEVICE
}

// The maps: a as [K, P] and b as [N, P] bytes (boxes of 128 codes by 128 rows, 128-byte swizzle),
// and for kWgTma sa as [P / 128, K] and sb as [P / 128, N] f32 (boxes of 128 × 1, no swizzle; zero
// past K or N). False when TMA cannot describe them (or the driver's encoder is missing).
inline bool makeFp8WgradMaps(CUtensorMap (&m)[4], int sc, const void* a, const void* b, const float* sa, const float* sb, int K, int N, int P) {
  const attention::EncodeTiledFn enc = attention::encodeTiledFn();
  if (enc == nullptr) return false;
  const auto map = [&](CUtensorMap* m, const void* p, CUtensorMapDataType dt, uint64_t inner, uint64_t rows, uint64_t rowBytes, uint32_t boxRows, CUtensorMapSwizzle sw) {
    if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0 || rowBytes % 16 != 0) return false;
    const cuuint32_t estride[2] = {1, 1};
    const cuuint64_t dims[2] = {inner, rows}, strides[1] = {rowBytes};
    const cuuint32_t box[2] = {128, boxRows};
    return enc(m, dt, 2, const_cast<void*>(p), dims, strides, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE, sw, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  if (!map(&m[0], a, CU_TENSOR_MAP_DATA_TYPE_UINT8, P, K, P, 128, CU_TENSOR_MAP_SWIZZLE_128B) || !map(&m[1], b, CU_TENSOR_MAP_DATA_TYPE_UINT8, P, N, P, 128, CU_TENSOR_MAP_SWIZZLE_128B))
    return false;
  if (sc != kWgTma) {
    m[2] = m[0];  // unused (kWgStaged)
    m[3] = m[1];
    return true;
  }
  const uint64_t blocks = static_cast<uint64_t>(P) / 128;
  return map(&m[2], sa, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, K, blocks, uint64_t(K) * 4, 1, CU_TENSOR_MAP_SWIZZLE_NONE) &&
         map(&m[3], sb, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, N, blocks, uint64_t(N) * 4, 1, CU_TENSOR_MAP_SWIZZLE_NONE);
}

// Whether the fast path takes a call: compute capability 9.0, K and N multiples of 64, at most
// kMaxExperts experts, sizes that index as int.
inline bool fp8WgradSupported(int cc, uint64_t K, uint64_t N, uint64_t P, uint64_t E) {
  return cc == 90 && K > 0 && N > 0 && P >= 128 && K % 64 == 0 && N % 64 == 0 && E >= 1 && E <= kMaxExperts && P < (1u << 31) &&
         uint64_t(E) * K * N < (1ull << 62);
}

}  // namespace grouped90
}  // namespace dw

// The Hopper (sm_90a) FP8 blockwise grouped GEMM of dropless MoE (DeepSeek-V3's recipe on each
// expert; precision's grouped_scaled_matmul):
//   d[r, n] = Σ_kb sa[kb, r] · sb[e, n / 128, kb] · Σ_{k in block kb} a[r, k] · b[e, n, k]
// for offsets[e] <= r < offsets[e + 1]. a [R, K] FP8 codes (e4m3 / e5m2) with 1 × 128 scales aScale
// f32 [K / 128, R] (the 'gemm' layout: rows contiguous); b [E, N, K] codes, each expert K-major (the
// columnwise copy of w [E, K, N]), with 128 × 128 scales bScale f32 [E, ceil(N / 128), L4] (L4 =
// K / 128 rounded up to 4); d [R, N] bf16 or f32. Included by gemm/grouped_gemm.cu. Its GPU tests
// (precision grouped_scaled_matmul_gpu, grouped_act_gpu) have run on the H200 and the H100
// (docs/gpu-runs).
//
// The bf16 kernel's structure (gemm/grouped_gemm_sm90.cuh: persistent CTAs over 128 × 128 tiles,
// expert by expert, N fastest; the same prologue, ring and barriers), with FP8's differences:
//   * a K block is 128 codes (128 bytes, one scale block): each stage holds a's 128 rows and b's 128
//     rows (N) of it, both K-major, 128-byte swizzle; FP8 wgmma reads K-major operands only;
//   * per K block each consumer warpgroup runs four wgmma m64n128k32 into a fresh FP32 partial,
//     and once they are done releases the stage and promotes: acc += partial · (sa[row] · sb) — one
//     FFMA per output per 128 MACs, in FP32 on the CUDA cores (the tensor cores' FP8 accumulator
//     keeps fewer bits than FP32, DeepSeek-V3 §3.3.2; promoting every 128 is their remedy). Two
//     partials in turn: the next block's wgmma are issued before this block's are waited for, so
//     the tensor cores stay busy while a warpgroup promotes (and the other warpgroup's run too);
//   * the scales are read from global memory (L2) as a block is promoted, after its wgmma are
//     waited for: a thread's two rows' sa and the tile's sb; rows past R are read clamped (never
//     stored);
//   * registers: the producer gives its own back (setmaxnreg 40), the consumers take 232, for 64
//     accumulators and two sets of 64 partials each.
// Deterministic: no split K, no atomics. The fast path needs K % 128 == 0, N % 64 == 0, 16-byte
// aligned bases and compute capability 9.0; the launcher takes the general path otherwise.
#pragma once
#include "gemm/grouped_gemm_sm90.cuh"
#include "quant/formats.cuh"

namespace dw {
namespace grouped90 {

constexpr int kFp8BK = 128;                          // codes (bytes) per K block = one scale block
constexpr int kProducerRegs = 40, kConsumerRegs = 232;  // 40·128 + 232·256 <= 65536
static_assert(kFp8BK * kBM == static_cast<int>(kATileBytes) && kFp8BK * kBN == static_cast<int>(kBTileBytes), "an FP8 stage is the bf16 stage's bytes");

struct Fp8Args {
  const int* offsets;
  const float* aScale;  // [K / 128, R]
  const float* bScale;  // [E, ceil(N / 128), L4]
  void* d;
  int R, K, N, E, L4;
  ErrWord* err;
  // groupedScaledGemmAct only (the kernel's Epi not kEpiNone; null otherwise): pre bf16 [R, N]
  // (gelu: written; dgelu: read), and d's rowwise 1 × 128 FP8 (e4m3) codes [R, N] and scales
  // f32 [N / 128, R].
  __nv_bfloat16* aux;
  uint8_t* q;
  float* qScale;
  // groupedScaledGemmSwiglu only: w3's 128 × 128 scales (b3's; b3 comes as the third tensor map),
  // and up bf16 [R, N] (aux is gate).
  const float* b3Scale;
  __nv_bfloat16* aux2;
};

// A pair of bf16 values as one 32-bit word, and back (the epilogues' 16-byte moves).
__device__ __forceinline__ __nv_bfloat162 bf16Pair(uint32_t w) {
  __nv_bfloat162 v;
  memcpy(&v, &w, sizeof(v));
  return v;
}
__device__ __forceinline__ uint32_t pairBits(__nv_bfloat162 v) {
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}

#ifdef DW_GROUPED90_DEVICE
// D(64 × 128, f32) (+)= A(64 × 32, K-major smem) · B(32 × 128, K-major smem), FP8 codes of the
// formats FA, FB (0 e4m3, 1 e5m2); scaleD = 0 overwrites D.
template <int FA, int FB>
__device__ __forceinline__ void mmaFp8(float (&d)[64], uint64_t a, uint64_t b, int scaleD) {
#define DW_G90_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define DW_G90_MMA(TA, TB)                                                                                                          \
  asm volatile(                                                                                                                     \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                                                  \
      "wgmma.mma_async.sync.aligned.m64n128k32.f32." TA "." TB                                                                      \
      " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25,"  \
      " %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50," \
      " %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"                                 \
      : DW_G90_D8(0), DW_G90_D8(8), DW_G90_D8(16), DW_G90_D8(24), DW_G90_D8(32), DW_G90_D8(40), DW_G90_D8(48), DW_G90_D8(56)      \
      : "l"(a), "l"(b), "r"(scaleD))
  if constexpr (FA == 0 && FB == 0) DW_G90_MMA("e4m3", "e4m3");
  else if constexpr (FA == 0) DW_G90_MMA("e4m3", "e5m2");
  else if constexpr (FB == 0) DW_G90_MMA("e5m2", "e4m3");
  else DW_G90_MMA("e5m2", "e5m2");
#undef DW_G90_MMA
#undef DW_G90_D8
}

// The FP8 kernels' schedule of `blocks` K blocks (this one and gemm/grouped_fp8_wgrad_sm90.cuh):
// two partials in turn, so that block kb + 1's wgmma run on the tensor cores while block kb is
// promoted on the CUDA cores. issue(part) waits for the next block's stage and commits its wgmma
// into part (as one group); promote(part, kb) takes block kb's partial, whose group is done, into the
// accumulators and releases its stage. The same partials and the same order of promotion as one
// block at a time, so the same bits.
template <typename Issue, typename Promote>
__device__ __forceinline__ void twoPartials(int blocks, float (&pa)[64], float (&pb)[64], const Issue& issue, const Promote& promote) {
  if (blocks <= 0) return;
  issue(pa);
  int kb = 0;
  for (; kb + 2 < blocks; kb += 2) {  // block kb's group (pa) in flight
    issue(pb);
    sm90::wgmmaWait<1>();  // block kb's group is done, kb + 1's may still run
    promote(pa, kb);
    issue(pa);
    sm90::wgmmaWait<1>();
    promote(pb, kb + 1);
  }
  if (kb + 1 < blocks) {
    issue(pb);
    sm90::wgmmaWait<1>();
    promote(pa, kb);
    sm90::wgmmaWait<0>();
    promote(pb, kb + 1);
  } else {
    sm90::wgmmaWait<0>();
    promote(pa, kb);
  }
}

// A 4 × 4 transpose of words within each quad (lanes 4g .. 4g + 3; t = lane % 4), in each of the
// four blocks of w: before, lane t's w[4m + i] is its word of pair column 4m + i; after, lane t's
// w[4m + i] is lane i's word of pair column 4m + t. Two exchanges per block (bit 0 of the lane and
// the slot, then bit 1), each two shuffles.
__device__ __forceinline__ void quadTranspose(uint32_t (&w)[16], int t) {
#pragma unroll
  for (int m = 0; m < 4; ++m) {
#pragma unroll
    for (int p = 0; p < 4; p += 2) {
      const uint32_t got = __shfl_xor_sync(0xffffffffu, (t & 1) ? w[4 * m + p] : w[4 * m + p + 1], 1);
      if (t & 1) w[4 * m + p] = got;
      else w[4 * m + p + 1] = got;
    }
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const uint32_t got = __shfl_xor_sync(0xffffffffu, (t & 2) ? w[4 * m + p] : w[4 * m + p + 2], 2);
      if (t & 2) w[4 * m + p] = got;
      else w[4 * m + p + 2] = got;
    }
  }
}

// The act epilogues' last step, for one of a thread's rows: out holds the row's 8 adjacent bf16
// results in each 32-column block m (columns 32m + 8t .. + 7 of the tile, after quadTranspose), at
// element `at` (the row's column col0 + 8t). The amax of the row's 128 bf16 values as bit patterns
// (the 4 lanes of a quad hold a row: two shuffles), fp8Scale, then d, and the codes of
// f32(v · mul), as quantize's fp8-block1x128 rowwise makes them (quant/quantize_mx8.cu); d moves 16
// bytes and the codes 8 at a time. Every lane takes part in the shuffles; only a live row is stored.
__device__ __forceinline__ void storeQuantRow(const Fp8Args& a, const uint32_t (&out)[16], long long at, int row, bool live, int col0, int t) {
  constexpr int F = quant::kBlk1x128;
  uint32_t mx = 0;
#pragma unroll
  for (int j = 0; j < 16; ++j) mx = __vmaxu2(mx, out[j] & 0x7fff7fffu);
  mx = max(mx & 0xffffu, mx >> 16);
  mx = max(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = max(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const quant::BlockScale s = quant::fp8Scale<F>(__uint_as_float(mx << 16));
  if (!live) return;
  const auto code2 = [&](uint32_t v) {
    return static_cast<uint32_t>(quant::encElem<F>(__fmul_rn(__uint_as_float(v << 16), s.mul))) |
           static_cast<uint32_t>(quant::encElem<F>(__fmul_rn(__uint_as_float(v & 0xffff0000u), s.mul))) << 8;
  };
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(a.d) + at + 32 * m) = make_uint4(out[4 * m], out[4 * m + 1], out[4 * m + 2], out[4 * m + 3]);
    const uint2 codes = make_uint2(code2(out[4 * m]) | code2(out[4 * m + 1]) << 16, code2(out[4 * m + 2]) | code2(out[4 * m + 3]) << 16);
    *reinterpret_cast<uint2*>(a.q + at + 32 * m) = codes;
  }
  if (t == 0) a.qScale[static_cast<long long>(col0 / 128) * a.R + row] = s.scaleF;
}

// Row h (0, 1) of a thread's accumulators rounded to bf16 pairs: word j is columns 8j + 2t + {0, 1}.
__device__ __forceinline__ void roundedRow(uint32_t (&w)[16], const float (&acc)[64], int h) {
#pragma unroll
  for (int j = 0; j < 16; ++j) w[j] = pairBits(__floats2bfloat162_rn(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]));
}

// groupedScaledGemmAct's epilogue: this thread's two rows of a 128-column tile (the tile is one
// 1 × 128 scale block of each row: N % 128 == 0), from the FP32 products acc.
//   gelu:  aux = pre = bf16(v), d = bf16(gelu(pre));  dgelu: d = bf16(bf16(v) · gelu'(aux))
// (grouped_epilogue.cuh's storePair and storeDgelu), then d's codes and scale (storeQuantRow). So
// the fused result is the unfused chain's, bit for bit. The accumulator layout gives a lane pairs 8
// columns apart; after quadTranspose of the rounded products a lane holds 8 adjacent columns
// (32m + 8t .. + 7, m = 0..3), so pre, d and aux move 16 bytes at a time, a quad's row a whole
// 64-byte run, not 2- and 4-byte pieces. Only rows of the tile's expert (row < rowEnd) are stored.
template <int Epi>
__device__ __forceinline__ void storeActQuant(const Fp8Args& a, const float (&acc)[64], int rowH0, int rowH1, int rowEnd, int col0, int lane) {
  static_assert(Epi == grouped::kEpiGelu || Epi == grouped::kEpiDgelu, "gelu or dgelu");
  const int t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = h ? rowH1 : rowH0;
    const bool live = row < rowEnd && row < a.R;
    uint32_t w[16];  // the rounded products, then (transposed) 8 adjacent columns per block m
    roundedRow(w, acc, h);
    quadTranspose(w, t);
    const long long at = static_cast<long long>(row) * a.N + col0 + 8 * t;  // block m at at + 32m
    uint32_t out[16];
    if constexpr (Epi == grouped::kEpiDgelu) {
      uint4 pre[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) pre[m] = live ? __ldg(reinterpret_cast<const uint4*>(a.aux + at + 32 * m)) : make_uint4(0u, 0u, 0u, 0u);
      const auto grad = [&](uint32_t g, uint32_t p) {
        return pairBits(__floats2bfloat162_rn(__low2float(bf16Pair(g)) * geluGradF(__low2float(bf16Pair(p))), __high2float(bf16Pair(g)) * geluGradF(__high2float(bf16Pair(p)))));
      };
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        out[4 * m] = grad(w[4 * m], pre[m].x);
        out[4 * m + 1] = grad(w[4 * m + 1], pre[m].y);
        out[4 * m + 2] = grad(w[4 * m + 2], pre[m].z);
        out[4 * m + 3] = grad(w[4 * m + 3], pre[m].w);
      }
    } else {
      if (live) {
#pragma unroll
        for (int m = 0; m < 4; ++m) *reinterpret_cast<uint4*>(a.aux + at + 32 * m) = make_uint4(w[4 * m], w[4 * m + 1], w[4 * m + 2], w[4 * m + 3]);
      }
#pragma unroll
      for (int j = 0; j < 16; ++j) out[j] = pairBits(__floats2bfloat162_rn(geluF(__low2float(bf16Pair(w[j]))), geluF(__high2float(bf16Pair(w[j])))));
    }
    storeQuantRow(a, out, at, row, live, col0, t);
  }
}

// groupedScaledGemmSwiglu's epilogue: gate (this thread's two rows of the first product, already
// rounded to bf16 pairs by roundedRow) and the second product acc (up): aux = gate, aux2 = up =
// bf16(u), d = bf16(silu(gate) · up) (grouped_epilogue.cuh's storePair for kEpiSwiglu), then d's
// codes and scale (storeQuantRow); stored as storeActQuant stores, 16 bytes at a time.
__device__ __forceinline__ void storeSwigluQuant(const Fp8Args& a, uint32_t (&gate)[2][16], const float (&acc)[64], int rowH0, int rowH1, int rowEnd, int col0, int lane) {
  const int t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = h ? rowH1 : rowH0;
    const bool live = row < rowEnd && row < a.R;
    uint32_t up[16];
    roundedRow(up, acc, h);
    quadTranspose(up, t);
    quadTranspose(gate[h], t);
    const long long at = static_cast<long long>(row) * a.N + col0 + 8 * t;
    if (live) {
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        *reinterpret_cast<uint4*>(a.aux + at + 32 * m) = make_uint4(gate[h][4 * m], gate[h][4 * m + 1], gate[h][4 * m + 2], gate[h][4 * m + 3]);
        *reinterpret_cast<uint4*>(a.aux2 + at + 32 * m) = make_uint4(up[4 * m], up[4 * m + 1], up[4 * m + 2], up[4 * m + 3]);
      }
    }
    uint32_t out[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const __nv_bfloat162 g = bf16Pair(gate[h][j]), u = bf16Pair(up[j]);
      out[j] = pairBits(__floats2bfloat162_rn(siluF(__low2float(g)) * __low2float(u), siluF(__high2float(g)) * __high2float(u)));
    }
    storeQuantRow(a, out, at, row, live, col0, t);
  }
}
#endif  // DW_GROUPED90_DEVICE

// Epi: grouped::kEpiNone (groupedScaledGemm: d of OutT), kEpiGelu / kEpiDgelu (groupedScaledGemmAct,
// OutT bf16: storeActQuant) or kEpiSwiglu (groupedScaledGemmSwiglu, OutT bf16: storeSwigluQuant).
// SwiGLU runs each tile's K loop twice, against b (tmB: gate) then b3 (tmB3: up), through the same
// ring: the producer loads x's block again with w3's (from L2: the tile's x block was just read),
// the consumers keep gate as bf16 pairs (32 registers) while they compute up. Two GEMMs' tensor-core
// work and loads, as unfused; what the fusion saves is gate and up read back for swiglu, and the
// activation's round trip through memory for quantize. tmB3 is tmB again for the other epilogues.
template <int FA, int FB, typename OutT, int Epi = grouped::kEpiNone>
__global__ void __launch_bounds__(kThreads, 1) groupedFp8Sm90Kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB, const __grid_constant__ CUtensorMap tmB3,
                                                                    const Fp8Args a) {
#ifdef DW_GROUPED90_DEVICE
  extern __shared__ uint8_t smemRaw[];
  const uint32_t base = (sm90::smemAddr(smemRaw) + 1023u) & ~1023u;
  uint8_t* const generic = smemRaw + (base - sm90::smemAddr(smemRaw));
  int* const offs = reinterpret_cast<int*>(generic + kTilesOff);  // [E + 1]: the offsets
  int* const prefix = offs + a.E + 1;                                // [E + 1]: tiles before expert e
  auto full = [&](int s) { return base + kBarOff + 8u * s; };
  auto empty = [&](int s) { return base + kBarOff + 8u * (kStages + s); };
  const int tilesN = (a.N + kBN - 1) / kBN;
  const int kBlocks = a.K / kFp8BK;
  const int wg = threadIdx.x / 128;
  const int total = ringPrologue(base, offs, prefix, a.offsets, a.E, a.R, tilesN, a.err, kOpGroupedScaledMatmul);
  if (total < 0) return;  // bad offsets (recorded)

  constexpr bool kSwi = Epi == grouped::kEpiSwiglu;
  constexpr int kPasses = kSwi ? 2 : 1;  // K loops per tile: SwiGLU's gate, then up
  if (wg == 0) {
    sm90::setmaxnregDec<kProducerRegs>();
    if (threadIdx.x == 0) {
      sm90::prefetchTensorMap(&tmA);
      sm90::prefetchTensorMap(&tmB);
      if constexpr (kSwi) sm90::prefetchTensorMap(&tmB3);
      Ring ring;
      for (int t = blockIdx.x; t < total; t += gridDim.x) {
        const TileAt at = tileAt(prefix, offs, a.E, t, tilesN);
        const int e = at.e, row0 = at.row0, col0 = at.nTile * kBN;
        for (int pass = 0; pass < kPasses; ++pass) {
          const CUtensorMap* const mb = pass ? &tmB3 : &tmB;
          for (int kb = 0; kb < kBlocks; ++kb) {
            sm90::mbarWait(empty(ring.stage), ring.phase ^ 1);
            const uint32_t sA = base + ring.stage * kStageBytes, sB = sA + kATileBytes;
            sm90::mbarArriveExpectTx(full(ring.stage), kStageBytes);
            tmaLoad2d(sA, &tmA, full(ring.stage), kb * kFp8BK, row0);           // a: 128 rows × 128 codes
            tmaLoad2d(sB, mb, full(ring.stage), kb * kFp8BK, e * a.N + col0);   // b (b3) as [E·N, K]: 128 rows (N) × 128 codes
            ring.next();
          }
        }
      }
    }
    return;
  }

  // Consumers: warpgroup 1 rows 0..63 of the tile, warpgroup 2 rows 64..127.
  sm90::setmaxnregInc<kConsumerRegs>();
  const int c = wg - 1;
  const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
  Ring ring;  // the next K block to promote; `issue` runs one ahead of it
  float acc[64], partA[64], partB[64];
  uint32_t gate[2][16];  // SwiGLU: the first product of this thread's two rows, rounded (roundedRow)
  for (int t = blockIdx.x; t < total; t += gridDim.x) {
    const TileAt at = tileAt(prefix, offs, a.E, t, tilesN);
    const int e = at.e, row0 = at.row0, nTile = at.nTile, col0 = nTile * kBN;
    const int rowEnd = offs[e + 1];
    // This thread's rows (accumulators 4j + 2h + {0, 1} are row warp·16 + lane/4 + 8h), clamped for the scale reads.
    const int rowH0 = row0 + c * 64 + warp * 16 + lane / 4, rowH1 = rowH0 + 8;
    const int r0 = min(rowH0, a.R - 1), r1 = min(rowH1, a.R - 1);
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      const float* const sbRow = (pass ? a.b3Scale : a.bScale) + (static_cast<long long>(e) * tilesN + nTile) * a.L4;
#pragma unroll
      for (int i = 0; i < 64; ++i) acc[i] = 0.f;
      // K block kb's four wgmma into a fresh partial, committed as one group.
      Ring next = ring;
      const auto issue = [&](float (&part)[64]) {
        sm90::mbarWait(full(next.stage), next.phase);
        const uint32_t sA = base + next.stage * kStageBytes + c * (kATileBytes / 2), sB = base + next.stage * kStageBytes + kATileBytes;
        sm90::wgmmaFence();
#pragma unroll
        for (int k = 0; k < kFp8BK / 32; ++k) mmaFp8<FA, FB>(part, sm90::descSw128(sA + 32u * k, 0, 1024), sm90::descSw128(sB + 32u * k, 0, 1024), k > 0 ? 1 : 0);
        sm90::wgmmaCommit();
        next.next();
      };
      // K block kb, whose wgmma are done: its stage released, its partial promoted into acc.
      const auto promote = [&](float (&part)[64], int kb) {
        sm90::fenceRegs(part);
        if (tid == 0) sm90::mbarArrive(empty(ring.stage));  // the stage is read: the producer may refill it
        ring.next();
        const float* const saCol = a.aScale + static_cast<long long>(kb) * a.R;
        const float sb = __ldg(sbRow + kb), s0 = __ldg(saCol + r0) * sb, s1 = __ldg(saCol + r1) * sb;
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = fmaf(part[i], (i & 2) ? s1 : s0, acc[i]);
      };
      twoPartials(kBlocks, partA, partB, issue, promote);
      if (kSwi && pass == 0) {
        roundedRow(gate[0], acc, 0);
        roundedRow(gate[1], acc, 1);
      }
    }  // pass
    if constexpr (kSwi) {
      storeSwigluQuant(a, gate, acc, rowH0, rowH1, rowEnd, col0, lane);
    } else if constexpr (Epi != grouped::kEpiNone) {
      storeActQuant<Epi>(a, acc, rowH0, rowH1, rowEnd, col0, lane);
    } else {
      // Store this warpgroup's 64 rows: columns 8j + 2·(lane % 4) + {0, 1}.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = h ? rowH1 : rowH0;
        if (row >= rowEnd || row >= a.R) continue;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
          const int col = col0 + 8 * j + 2 * (lane % 4);
          if (col >= a.N) continue;
          OutT* p = static_cast<OutT*>(a.d) + static_cast<long long>(row) * a.N + col;
          const float v0 = acc[4 * j + 2 * h], v1 = acc[4 * j + 2 * h + 1];
          if constexpr (std::is_same<OutT, float>::value) *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
          else *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
        }
      }
    }
  }
#else
  __trap();  // a build without sm_90a device code: the launcher refuses this stub (its register count)
#endif  // DW_GROUPED90_DEVICE
}

// a as [R, K] and b (and b3, SwiGLU's second weight; else b again) as [E·N, K] bytes, boxes of 128
// codes by 128 rows, 128-byte swizzle. False when TMA cannot describe them (or the driver's encoder
// is missing).
inline bool makeFp8Maps(CUtensorMap* ma, CUtensorMap* mb, CUtensorMap* mb3, const void* a, const void* b, const void* b3, int R, int K, int N, int E) {
  const attention::EncodeTiledFn enc = attention::encodeTiledFn();
  if (enc == nullptr) return false;
  const auto map = [&](CUtensorMap* m, const void* p, uint64_t rows) {
    if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
    const cuuint32_t estride[2] = {1, 1};
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(K), rows > 0 ? rows : 1}, strides[1] = {static_cast<cuuint64_t>(K)};
    const cuuint32_t box[2] = {kFp8BK, 128};
    return enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(p), dims, strides, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  return map(ma, a, static_cast<uint64_t>(R)) && map(mb, b, static_cast<uint64_t>(E) * N) && map(mb3, b3 != nullptr ? b3 : b, static_cast<uint64_t>(E) * N);
}

// Whether the FP8 fast path takes a call: compute capability 9.0, K a multiple of 128, N of 64, at
// most kMaxExperts experts, sizes that index as int.
inline bool fp8Supported(int cc, uint64_t R, uint64_t K, uint64_t N, uint64_t E) {
  return cc == 90 && K > 0 && N > 0 && K % 128 == 0 && N % 64 == 0 && E >= 1 && E <= kMaxExperts && R < (1u << 31) && uint64_t(E) * N < (1u << 31) &&
         K < (1u << 31);
}

}  // namespace grouped90
}  // namespace dw

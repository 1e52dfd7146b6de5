// MXFP8, tensorwise and blockwise FP8 quantize from bf16 / f16: the fast path of quantize
// (quantization family; see quant.cpp; quantize.cu calls launchQuantizeMx8 and
// launchScalesFromScratch). Tensorwise FP8 (one multiplier m from the tensor amax, codes of
// f32(x · m)) takes the same loads, staging and stores with the block-scale work compiled out (TW
// below); blockwise FP8 (1 x 128 and 128 x 128 blocks, whole tiles only) reduces its block maxima
// across warps in shared memory (BW below). Blockwise is compiled, not yet run on a GPU
// (2026-12-03).
//
// The common training case. A CTA of 8 warps takes a tile of 128 x 128 elements; each warp a
// 32 x 64 part of it, each lane an 8 x 8 block (8 rows of 16 bytes) held in registers, so one read
// of x serves both directions. The 4 lanes of a 32-column row block are cc = 0..3 (lane bits 0-1),
// the 4 lanes of a 32-row column block rc = 0..3 (lane bits 2-3); lane bit 4 picks the warp's
// 32-column half. Block amaxes are reduced with shuffles so that each lane owns 2 of its group's 8
// row blocks and 2 of its 8 column blocks: it computes those scales (from the bits, for bf16), and
// shuffles hand the group the multipliers. Row codes go straight out (8 bytes per lane and row);
// transposed codes are staged in shared memory and leave in whole 128-byte lines (128 rows of one
// column), and scales in 16-byte pieces of the tile's 512 bytes. Written straight from the lanes,
// the transposed codes would go out 32 bytes per line and the scales a byte at a time, which
// measured far slower. Each warp streams its part of the next tile into its own ring in
// shared memory with cp.async while this one is encoded; staging alternates between two buffers,
// so a tile costs one barrier.
//
// In scratch runs on the H200 (2026-11-21, 16384 x 16384 bf16), the kernel with its arithmetic
// taken out ran no faster: the time goes to memory traffic, not to the encoding. Three stages
// instead of two, staging the row codes too, bulk (TMA) stores of the staged lines, full-line
// input reads per quarter warp, streaming stores, an L2 evict-first hint on the input, and tiles
// taken in bands or skewed orders made no difference or were slower. What helped was the launch:
// about two tiles per CTA (many short-lived CTAs) instead of one resident CTA per slot. Plain
// scales written straight from the kernel (4 bytes per line and tile) were slower than staging
// them, and so was a per-group completion count that let the last tile of a group write it.
#include "quant/quantize.cuh"

#include <cstring>
#include <type_traits>

namespace dw::quant {
namespace {

constexpr int kMxTile = 128, kMxStages = 2;
// Shared memory: the warps' rings (8 warps x stages x 8 rows x 32 lanes x 16 bytes), then two
// staging buffers (alternate tiles), each: column codes [128 columns][128 rows], row scales
// [128][4], column scales [128][4].
constexpr size_t kMxRingBytes = static_cast<size_t>(kQThreads / 32) * kMxStages * 8 * 32 * 16;
constexpr size_t kMxStageBytes = kMxTile * kMxTile + 2 * kMxTile * 4;
constexpr size_t kMxSmemBytes = kMxRingBytes + 2 * kMxStageBytes;
// Blockwise FP8 adds its block maxima: rows [2 column halves][128], columns [4 row bands][128].
constexpr size_t kBwRedBytes = (2 + 4) * kMxTile * 4;

// Two elements of a 16-bit word as floats (element 2i in the low half).
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t w) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
  else {
    __half2 h;
    memcpy(&h, &w, 4);
    return __half22float2(h);
  }
}

// Scale codes (one per 16-bit half) and multipliers of two MX blocks from their |x| maxima as bit
// patterns (Bits<T>). A block holding NaN or ±Inf gets code 0xff and multiplier 0 (its codes are
// zeroed afterwards). bf16 straight from the bits: code = E - emax + up clamped at 0, with E the
// biased exponent and up = rceil and a mantissa above the element maximum's (448 and 57344 are
// 1.75 x 2^emax: 7-bit mantissa 0x60). Adding 0x7f - 0x60 carries into E exactly when up; an
// all-zero or subnormal amax gives E + up <= 1, so code 0 as mxScale's clamp does. The multiplier
// 2^-e = 2^(127 - code) is normal for every code <= 253. f16 goes through mxScale.
template <typename T, int F>
__device__ __forceinline__ void mxScale2(uint32_t m2, int rceil, uint32_t& codes, float& mulLo, float& mulHi) {
  uint32_t lo, hi;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    constexpr uint32_t negEmax = static_cast<uint16_t>(isE5M2(F) ? -15 : -8);
    const uint32_t eu = ((m2 + (rceil ? 0x001f001fu : 0u)) >> 7) & 0x01ff01ffu;
    const uint32_t c = __viaddmax_s16x2(eu, negEmax | negEmax << 16, 0u);
    lo = c & 0xffffu, hi = c >> 16;
    mulLo = __uint_as_float((254u - lo) << 23), mulHi = __uint_as_float((254u - hi) << 23);
  } else {
    const BlockScale sl = mxScale<F>(Bits<T>::value(m2 & 0xffffu), false, rceil), sh = mxScale<F>(Bits<T>::value(m2 >> 16), false, rceil);
    lo = sl.scaleCode, hi = sh.scaleCode, mulLo = sl.mul, mulHi = sh.mul;
  }
  if ((m2 & 0xffffu) >= Bits<T>::kInf) lo = 0xff, mulLo = 0.f;
  if ((m2 >> 16) >= Bits<T>::kInf) hi = 0xff, mulHi = 0.f;
  codes = lo | hi << 16;
}

// Reduce-scatter of 4 words of packed 16-bit maxima over the lane pairs xor `hiBit` then xor
// `loBit`: the lane with bits (b1, b0) keeps word 2 b1 + b0, the maximum over its 4 lanes.
__device__ __forceinline__ uint32_t reduceScatter4(const uint32_t (&p)[4], bool b1, bool b0, int hiBit, int loBit) {
  uint32_t k0 = b1 ? p[2] : p[0], k1 = b1 ? p[3] : p[1];
  const uint32_t s0 = b1 ? p[0] : p[2], s1 = b1 ? p[1] : p[3];
  k0 = __vmaxu2(k0, __shfl_xor_sync(0xffffffffu, s0, hiBit));
  k1 = __vmaxu2(k1, __shfl_xor_sync(0xffffffffu, s1, hiBit));
  const uint32_t k = b0 ? k1 : k0, s = b0 ? k0 : k1;
  return __vmaxu2(k, __shfl_xor_sync(0xffffffffu, s, loBit));
}

// Staged codes: line l (a row of the tile, or a column for the transposed codes) holds 128 bytes
// as 16 units of 8. Unit u of line l sits at unit u ^ (((l >> 3) & 3) << 2), so that a warp's
// 8-byte stores (16 distinct units per half-warp) and 16-byte reads of one line are conflict-free.
__device__ __forceinline__ uint32_t stagedUnit(uint32_t l, uint32_t u) { return l * 128 + ((u ^ (((l >> 3) & 3) << 2)) << 3); }

// The scales of one tile and direction, staged as [128 lines][4 blocks], out as the tile's 512
// bytes in 16-byte pieces by threads u = 0..31: to `base` in cuBLASLt's 128 x 4 tiled layout
// (piece u holds lines u, u + 32, u + 64, u + 96), or for the plain layout to `scratch` in the
// staged order, tile after tile (scalesFromScratchK then writes the plain matrix in whole lines:
// written from here, a plain matrix takes one 4-byte store per line and tile, which measured
// clearly slower in scratch runs).
__device__ __forceinline__ void writeScales(uint8_t* base, uint8_t* scratch, const uint8_t* staged, int u, uint64_t line0, uint64_t block0, uint64_t nBlocks) {
  const uint64_t tile = (line0 / 128) * ((nBlocks + 3) / 4) + block0 / 4;
  if (scratch) {
    // Marked evict-last, so that the staged tiles are still in L2 when scalesFromScratchK reads
    // them (which then drops them from L2 unwritten).
    const uint4 v = *reinterpret_cast<const uint4*>(staged + u * 16);
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n" : "=l"(policy));
    asm volatile("st.global.L2::cache_hint.v4.u32 [%0], {%1, %2, %3, %4}, %5;\n" ::"l"(scratch + tile * 512 + u * 16), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w), "l"(policy) : "memory");
    return;
  }
  const uint32_t* s = reinterpret_cast<const uint32_t*>(staged);
  *reinterpret_cast<uint4*>(base + tile * 512 + u * 16) = make_uint4(s[u], s[u + 32], s[u + 64], s[u + 96]);
}

// The plain [nLines, nBlocks] scale matrices of both directions (blockIdx.z) from the staged tiles
// in scratch (see writeScales). A CTA (blockIdx.x: 128 lines, blockIdx.y: 32 tiles, 128 blocks)
// reads 16 KB in order, drops those lines from L2 (the scratch is the call's workspace, not read
// after this kernel, so they need not be written back), and writes whole lines. Launched as a
// programmatic dependent of quantizeMx8K: it waits for that grid's writes here, while its own
// launch overlaps its tail.
struct UnstageArgs {
  const uint8_t* scratch[2];
  uint8_t* out[2];
  uint64_t nLines[2], nBlocks[2];
};
__global__ void __launch_bounds__(256) scalesFromScratchK(UnstageArgs a) {
  __shared__ uint32_t s[32 * 129];  // [tile][line], padded so that reads of one line's words spread over the banks
  const int d = blockIdx.z;
  const uint64_t nLines = a.nLines[d], nBlocks = a.nBlocks[d], nTiles = (nBlocks + 3) / 4, band = blockIdx.x, tb0 = static_cast<uint64_t>(blockIdx.y) * 32;
  if (!a.scratch[d] || band * 128 >= nLines || tb0 >= nTiles) return;
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  const uint8_t* src = a.scratch[d] + (band * nTiles + tb0) * 512;
  const uint64_t have = nTiles - tb0 < 32 ? nTiles - tb0 : 32;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int u = threadIdx.x + 256 * k, tile = u / 32, piece = u % 32;
    if (static_cast<uint64_t>(tile) < have) {
      const uint4 v = __ldcg(reinterpret_cast<const uint4*>(src) + u);
      uint32_t* t = s + tile * 129 + piece * 4;
      t[0] = v.x, t[1] = v.y, t[2] = v.z, t[3] = v.w;
    }
  }
  __syncthreads();
  if (threadIdx.x < 128 && static_cast<uint64_t>(threadIdx.x / 4) < have) asm volatile("discard.global.L2 [%0], 128;\n" ::"l"(src + threadIdx.x * 128) : "memory");
  const bool aligned = nBlocks % 16 == 0;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    // Line l's 16 bytes from tiles 4p .. 4p + 3: a warp writes 4 lines of 128 bytes.
    const int u = threadIdx.x + 256 * k, l = u / 8, p = u % 8;
    const uint64_t line = band * 128 + l, tile = tb0 + 4 * p;
    if (line >= nLines || tile >= nTiles) continue;
    uint32_t v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = s[(4 * p + j) * 129 + l];
    uint8_t* dst = a.out[d] + line * nBlocks + tile * 4;
    if (aligned && tile + 3 < nTiles) *reinterpret_cast<uint4*>(dst) = make_uint4(v[0], v[1], v[2], v[3]);
    else
      for (uint64_t b = 0; b < 16 && tile * 4 + b < nBlocks; ++b) dst[b] = static_cast<uint8_t>(v[b / 4] >> (8 * (b % 4)));
  }
}

// Tensorwise FP8 codes of two values: f32(v * m) (__fmul_rn, m from fp8Scale), then encElem
// (NaN keeps its sign, ±Inf saturates), as quantize.cu's encode does for tensorwise FP8, so the
// register path is bit-identical to it and to the reference.
template <int F>
__device__ __forceinline__ uint32_t encTw2(float a, float b, float mul) {
  return static_cast<uint32_t>(encElem<F>(__fmul_rn(a, mul))) | static_cast<uint32_t>(encElem<F>(__fmul_rn(b, mul))) << 8;
}

// |x| patterns of a word's two 16-bit elements with NaN and ±Inf as 0 (blockwise FP8's amax
// ignores them).
template <typename T>
__device__ __forceinline__ uint32_t finiteAbs2(uint32_t w) {
  const uint32_t a = w & 0x7fff7fffu;
  return a & ~__vcmpgeu2(a, Bits<T>::kInf | Bits<T>::kInf << 16);
}

// F: MXFP8 (per-block scales, below), tensorwise FP8 (TW: one scale s from the tensor amax that
// quantAmax left in a.amax; no scale arrays; the kernel writes s to a.globalScale once), or
// blockwise FP8 (BW: 1 x 128 blocks, a tile row or column, or the 128 x 128 tile itself; rows and
// cols multiples of 128). A blockwise block spans warps, so its maxima meet in shared memory
// (one more barrier per tile); each lane then computes the multipliers of its 8 rows and 8
// columns (fp8Scale, as quantize.cu's tile kernel) and the scales go out as storeScale writes them.
template <typename T, int F, bool ROW, bool COL>
__global__ void __launch_bounds__(kQThreads, 2) quantizeMx8K(QArgs a, uint64_t tiles) {
  constexpr bool TW = isTensorwise(F), B1 = F == kBlk1x128, B128 = F == kBlk128x128, BW = B1 || B128;
  static_assert(sizeof(T) == 2 && ((isMx(F) && !isFp4(F)) || TW || BW), "the fast path is MXFP8, tensorwise or blockwise FP8 from 16-bit input");
  constexpr uint32_t kInf = Bits<T>::kInf;
  float twMul = 1.f;
  if constexpr (TW) {
    const BlockScale tw = fp8Scale<F>(*a.amax);
    twMul = tw.mul;
    if (blockIdx.x == 0 && threadIdx.x == 0) *a.globalScale = tw.div;
  }
  extern __shared__ __align__(16) unsigned char smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, cc = lane & 3, rc = (lane >> 2) & 3, half = lane >> 4;
  // This lane's block within a tile: rows br .. br + 8, columns bc .. bc + 8.
  const int br = (warp / 2) * 32 + rc * 8, bc = (warp % 2) * 64 + half * 32 + cc * 8;
  const uint64_t colTiles = (a.cols + kMxTile - 1) / kMxTile;
  // Tile t's origin, row-major (bands of 8 tiles, column-major within, measured no better).
  const auto origin = [&](uint64_t t, uint64_t& r, uint64_t& c) { r = (t / colTiles) * kMxTile, c = (t % colTiles) * kMxTile; };

  // Each lane's own ring of kMxStages tiles (stage s, row i at ring[(s * 8 + i) * 32]: a warp's
  // 16-byte accesses are consecutive), filled with cp.async, zeros past the matrix. A lane reads
  // back only what it wrote, so the ring needs no barrier.
  uint4* ring = reinterpret_cast<uint4*>(smem) + warp * kMxStages * 256 + lane;
  const auto issue = [&](uint64_t t, int s) {
    if (t < tiles) {
      uint64_t r, c;
      origin(t, r, c);
      r += br, c += bc;
      const T* p = static_cast<const T*>(a.x) + r * a.cols + c;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const bool ok = c < a.cols && r + i < a.rows;
        const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(ring + (s * 8 + i) * 32));
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(ok ? p + i * a.cols : a.x), "r"(ok ? 16 : 0) : "memory");
      }
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };

#pragma unroll
  for (int s = 0; s < kMxStages - 1; ++s) issue(blockIdx.x + static_cast<uint64_t>(s) * gridDim.x, s);
  int stage = 0, parity = 0;
  for (uint64_t t = blockIdx.x; t < tiles; t += gridDim.x, stage = stage == kMxStages - 1 ? 0 : stage + 1, parity ^= 1) {
    issue(t + static_cast<uint64_t>(kMxStages - 1) * gridDim.x, stage == 0 ? kMxStages - 1 : stage - 1);
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kMxStages - 1) : "memory");
    uint32_t w[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint4 v = ring[(stage * 8 + i) * 32];
      w[i][0] = v.x, w[i][1] = v.y, w[i][2] = v.z, w[i][3] = v.w;
    }
    uint64_t r0, c0;
    origin(t, r0, c0);

    // Row i's largest |x| pattern per word half (even and odd columns), and column pairs' over the
    // 8 rows; whether the warp holds a NaN or ±Inf anywhere.
    uint32_t rowMax[8], colMax[4] = {0, 0, 0, 0};
    bool special = false;
    if constexpr (isMx(F)) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        uint32_t m[4];
#pragma unroll
        for (int p = 0; p < 4; ++p) m[p] = w[i][p] & 0x7fff7fffu, colMax[p] = __vmaxu2(colMax[p], m[p]);
        rowMax[i] = __vmaxu2(__vimax3_u16x2(m[0], m[1], m[2]), m[3]);
      }
      const uint32_t all = __vimax3_u16x2(colMax[0], colMax[1], __vmaxu2(colMax[2], colMax[3]));
      special = __any_sync(0xffffffffu, (all & 0xffffu) >= kInf || (all >> 16) >= kInf);
    }

    // Rows 2j and 2j + 1 in one word, reduced over the row block's 4 lanes: this lane keeps rows
    // 2 cc and 2 cc + 1. Column pairs reduced over the column block's 4 lanes: it keeps columns
    // 2 rc and 2 rc + 1.
    uint32_t rowCodes = 0, colCodes = 0;
    float rowLo = 0.f, rowHi = 0.f, colLo = 0.f, colHi = 0.f;
    if constexpr (ROW && isMx(F)) {
      uint32_t pairs[4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        pairs[j] = __vmaxu2(__byte_perm(rowMax[2 * j], rowMax[2 * j + 1], 0x5410), __byte_perm(rowMax[2 * j], rowMax[2 * j + 1], 0x7632));
      mxScale2<T, F>(reduceScatter4(pairs, cc & 2, cc & 1, 2, 1), a.rceil, rowCodes, rowLo, rowHi);
    }
    if constexpr (COL && isMx(F)) mxScale2<T, F>(reduceScatter4(colMax, rc & 2, rc & 1, 8, 4), a.rceil, colCodes, colLo, colHi);

    // Blockwise: the maxima of this lane's rows and columns over their blocks, then the
    // multipliers (rowMul[i] of row br + i, colMul[k] of column bc + k).
    float rowMul[8], colMul[8];
    if constexpr (BW) {
      uint32_t* redRow = reinterpret_cast<uint32_t*>(smem + kMxRingBytes + 2 * kMxStageBytes);
      uint32_t* redCol = redRow + 2 * kMxTile;
      uint32_t rm[8], cm[4] = {0, 0, 0, 0};
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        uint32_t m[4];
#pragma unroll
        for (int p = 0; p < 4; ++p) m[p] = finiteAbs2<T>(w[i][p]), cm[p] = __vmaxu2(cm[p], m[p]);
        const uint32_t r2 = __vmaxu2(__vimax3_u16x2(m[0], m[1], m[2]), m[3]);
        rm[i] = max(r2 & 0xffffu, r2 >> 16);
      }
      if constexpr (B128) {
        uint32_t m = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) m = max(m, rm[i]);
        m = warpMaxU(m, 32);
        if (lane == 0) redRow[warp] = m;
      } else {
        // Rows: over the 16 lanes of a row (cc, half), then the two warps of a column half.
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          rm[i] = max(rm[i], __shfl_xor_sync(0xffffffffu, rm[i], 1));
          rm[i] = max(rm[i], __shfl_xor_sync(0xffffffffu, rm[i], 2));
          rm[i] = max(rm[i], __shfl_xor_sync(0xffffffffu, rm[i], 16));
        }
        if (ROW && (lane & 0x13) == 0)
#pragma unroll
          for (int i = 0; i < 8; ++i) redRow[(warp & 1) * kMxTile + br + i] = rm[i];
        // Columns: over the 4 lanes of a column (rc), then the four warps down the tile.
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          cm[p] = __vmaxu2(cm[p], __shfl_xor_sync(0xffffffffu, cm[p], 4));
          cm[p] = __vmaxu2(cm[p], __shfl_xor_sync(0xffffffffu, cm[p], 8));
        }
        if (COL && rc == 0)
#pragma unroll
          for (int p = 0; p < 4; ++p) redCol[(warp >> 1) * kMxTile + bc + 2 * p] = cm[p] & 0xffffu, redCol[(warp >> 1) * kMxTile + bc + 2 * p + 1] = cm[p] >> 16;
      }
      __syncthreads();  // the block maxima are in
      if constexpr (B128) {
        uint32_t m = 0;
#pragma unroll
        for (int v = 0; v < kQThreads / 32; ++v) m = max(m, redRow[v]);
        const BlockScale s = fp8Scale<F>(Bits<T>::value(m));
#pragma unroll
        for (int i = 0; i < 8; ++i) rowMul[i] = colMul[i] = s.mul;
        if (threadIdx.x == 0) {
          // As the tile kernel: rowwise the stored matrix is [rows, cols] (K = cols), columnwise
          // [cols, rows] (K = rows); in the GEMM layout the last K-block's tile zeroes the padding.
          const uint64_t Lr = a.cols / 128, Lc = a.rows / 128;
          if (ROW) storeScale<F>(a.rowScales, r0 / 128, c0 / 128, a.rows / 128, Lr, s, a.gemm);
          if (COL) storeScale<F>(a.colScales, c0 / 128, r0 / 128, a.cols / 128, Lc, s, a.gemm);
          if (a.gemm && ROW && c0 / 128 == Lr - 1) zeroBlockPadding(a.rowScales, r0 / 128, Lr);
          if (a.gemm && COL && r0 / 128 == Lc - 1) zeroBlockPadding(a.colScales, c0 / 128, Lc);
        }
      } else {
        if constexpr (ROW) {
          const bool writer = (lane & 0x13) == 0 && (warp & 1) == 0;
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const BlockScale s = fp8Scale<F>(Bits<T>::value(max(redRow[br + i], redRow[kMxTile + br + i])));
            rowMul[i] = s.mul;
            if (writer) storeScale<F>(a.rowScales, r0 + br + i, c0 / 128, a.rows, a.cols / 128, s, a.gemm);
          }
        }
        if constexpr (COL) {
          const bool writer = rc == 0 && (warp >> 1) == 0;
#pragma unroll
          for (int k = 0; k < 8; ++k) {
            const uint32_t m = max(max(redCol[bc + k], redCol[kMxTile + bc + k]), max(redCol[2 * kMxTile + bc + k], redCol[3 * kMxTile + bc + k]));
            const BlockScale s = fp8Scale<F>(Bits<T>::value(m));
            colMul[k] = s.mul;
            if (writer) storeScale<F>(a.colScales, c0 + bc + k, r0 / 128, a.cols, a.rows / 128, s, a.gemm);
          }
        }
      }
    }

    // This tile's staging buffer; the barrier at the end of the previous tile's encoding ordered
    // the write-out of the tile before it (same buffer) before these stores.
    uint8_t* colStage = smem + kMxRingBytes + parity * kMxStageBytes;
    uint8_t* rowScaleStage = colStage + kMxTile * kMxTile;
    uint8_t* colScaleStage = rowScaleStage + kMxTile * 4;
    if constexpr (ROW) {
      if constexpr (isMx(F)) {
        const int sb = bc / 32;
        rowScaleStage[(br + 2 * cc) * 4 + sb] = static_cast<uint8_t>(rowCodes);
        rowScaleStage[(br + 2 * cc + 1) * 4 + sb] = static_cast<uint8_t>(rowCodes >> 16);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float m = !isMx(F) ? 0.f : __shfl_sync(0xffffffffu, i & 1 ? rowHi : rowLo, (lane & ~3) | (i >> 1));
        uint32_t q[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float2 x0 = unpack2<T>(w[i][2 * h]), x1 = unpack2<T>(w[i][2 * h + 1]);
          if constexpr (TW) q[h] = encTw2<F>(x0.x, x0.y, twMul) | encTw2<F>(x1.x, x1.y, twMul) << 16;
          else if constexpr (BW) q[h] = encTw2<F>(x0.x, x0.y, rowMul[i]) | encTw2<F>(x1.x, x1.y, rowMul[i]) << 16;
          else q[h] = cvt2<F>(x0.x * m, x0.y * m) | cvt2<F>(x1.x * m, x1.y * m) << 16;
        }
        if (isMx(F) && special && m == 0.f) q[0] = q[1] = 0;  // a block with NaN or ±Inf
        if (r0 + br + i < a.rows && c0 + bc < a.cols) *reinterpret_cast<uint2*>(a.rowData + (r0 + br + i) * a.cols + c0 + bc) = make_uint2(q[0], q[1]);
      }
    }
    if constexpr (COL) {
      if constexpr (isMx(F)) {
        colScaleStage[(bc + 2 * rc) * 4 + br / 32] = static_cast<uint8_t>(colCodes);
        colScaleStage[(bc + 2 * rc + 1) * 4 + br / 32] = static_cast<uint8_t>(colCodes >> 16);
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const float m = !isMx(F) ? 0.f : __shfl_sync(0xffffffffu, k & 1 ? colHi : colLo, (lane & ~12) | (k >> 1) << 2);
        float x[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float2 f = unpack2<T>(w[i][k / 2]);
          x[i] = k & 1 ? f.y : f.x;
        }
        uint32_t q[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          if constexpr (TW) q[h] = encTw2<F>(x[4 * h], x[4 * h + 1], twMul) | encTw2<F>(x[4 * h + 2], x[4 * h + 3], twMul) << 16;
          else if constexpr (BW) q[h] = encTw2<F>(x[4 * h], x[4 * h + 1], colMul[k]) | encTw2<F>(x[4 * h + 2], x[4 * h + 3], colMul[k]) << 16;
          else q[h] = cvt2<F>(x[4 * h] * m, x[4 * h + 1] * m) | cvt2<F>(x[4 * h + 2] * m, x[4 * h + 3] * m) << 16;
        }
        if (isMx(F) && special && m == 0.f) q[0] = q[1] = 0;
        *reinterpret_cast<uint2*>(colStage + stagedUnit(bc + k, br / 8)) = make_uint2(q[0], q[1]);
      }
    }
    __syncthreads();  // this tile's codes are staged

    // Transposed codes out in whole lines: 8 threads per line, 16 bytes each (a line's two units
    // 2j, 2j + 1 stay together under the swizzle); rows % 32 == 0, so no piece is cut.
#pragma unroll
    for (int k = 0; k < (COL ? kMxTile * 8 / kQThreads : 0); ++k) {
      const int u = threadIdx.x + k * kQThreads, l = u / 8, j = u % 8;
      if constexpr (COL) {
        if (c0 + l < a.cols && r0 + j * 16 < a.rows)
          *reinterpret_cast<uint4*>(a.colData + (c0 + l) * a.rows + r0 + j * 16) = *reinterpret_cast<const uint4*>(colStage + stagedUnit(l, 2 * j));
      }
    }
    if (isMx(F) && ROW && threadIdx.x < 32) writeScales(a.rowScales, a.rowScratch, rowScaleStage, threadIdx.x, r0, c0 / 32, a.cols / 32);
    if (isMx(F) && COL && threadIdx.x >= kQThreads - 32) writeScales(a.colScales, a.colScratch, colScaleStage, threadIdx.x - (kQThreads - 32), c0, r0 / 32, a.rows / 32);
  }
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

}  // namespace

template <typename T, int F>
void launchQuantizeMx8(Napi::Env env, cudaStream_t s, const QArgs& q, bool row, bool col) {
  const uint64_t rows = q.rows, cols = q.cols;
  const uint64_t n = ((rows + kMxTile - 1) / kMxTile) * ((cols + kMxTile - 1) / kMxTile);
  const size_t smem = kMxSmemBytes + (f32Scales(F) ? kBwRedBytes : 0);
  if (row && col) launchTiles(env, s, quantizeMx8K<T, F, true, true>, smem, q, n, n, true);
  else if (row) launchTiles(env, s, quantizeMx8K<T, F, true, false>, smem, q, n, n, true);
  else launchTiles(env, s, quantizeMx8K<T, F, false, true>, smem, q, n, n, true);
}

template void launchQuantizeMx8<__nv_bfloat16, kMxE4M3>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__nv_bfloat16, kMxE5M2>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__half, kMxE4M3>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__half, kMxE5M2>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__nv_bfloat16, kTwE4M3>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__nv_bfloat16, kTwE5M2>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__half, kTwE4M3>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__half, kTwE5M2>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__nv_bfloat16, kBlk1x128>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__nv_bfloat16, kBlk128x128>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__half, kBlk1x128>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);
template void launchQuantizeMx8<__half, kBlk128x128>(Napi::Env, cudaStream_t, const QArgs&, bool, bool);

void launchScalesFromScratch(Napi::Env env, cudaStream_t s, const QArgs& q) {
  const uint64_t rows = q.rows, cols = q.cols;
  UnstageArgs u{};
  u.scratch[0] = q.rowScratch, u.out[0] = q.rowScales, u.nLines[0] = rows, u.nBlocks[0] = cols / 32;
  u.scratch[1] = q.colScratch, u.out[1] = q.colScales, u.nLines[1] = cols, u.nBlocks[1] = rows / 32;
  const uint64_t lines = rows > cols ? rows : cols, blocks = (rows > cols ? rows : cols) / 32;
  const uint64_t bands = (lines + 127) / 128, groups = ((blocks + 3) / 4 + 31) / 32;
  if (bands > 2147483647u || groups > 65535u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 row bands and 65535 x 128 scale columns for quantize");
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(bands), static_cast<unsigned>(groups), 2);
  cfg.blockDim = dim3(256);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr, cfg.numAttrs = 1;
  DW_CUDA(env, cudaLaunchKernelEx(&cfg, scalesFromScratchK, u), "cudaLaunchKernelEx (quantize scales)");
}

}  // namespace dw::quant

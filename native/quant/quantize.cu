// Fused quantize (quantization family; see quant.cpp).
//
//   quantize(stream, fmt, scaleMode, dtype, rows, cols, flags, x, amax, rowData, rowScales, colData,
//            colScales, globalScale, workspace)
//       x: a row-major [rows, cols] matrix (f32, bf16 or f16). flags: 1 rowwise, 2 columnwise
//       (stored transposed: data [cols, rows], scales [cols, rows / block]), 4 (kGemmLayout) the
//       scales in the layout the format's GEMM reads, for each direction's stored [R, K] matrix
//       (a columnwise part's is [cols, rows]: R = cols, K = rows), L = K / block:
//         MX, NVFP4         cuBLASLt's 128 x 4 tiles of scale codes (zero padding);
//         fp8-block1x128    f32 [L, R], R contiguous (scaledGemmLt's VEC128_32F);
//         fp8-block128x128  f32 [R / 128, L4], L4 = L rounded up to a multiple of 4, K-blocks
//                           contiguous (BLK128x128_32F), the padding columns written as 0;
//       refused for tensorwise FP8. The kernels write that layout directly (storeScale).
//       amax (f32[1], from quantAmax or a delayed history) is read for tensorwise FP8 and NVFP4,
//       which write their FP32 scale to globalScale.
//       workspace: MXFP8 from bf16 / f16 with plain scales stages the scales there, in the tiled
//       size: scaleBytes(..., true) of each direction written, rowwise first (at least that many
//       bytes, 128-byte aligned); other calls use none.
//
// One CTA of 256 threads per tile of TR rows x 128 columns. Threads load 8-element chunks (16
// lanes per tile row), all of a thread's chunks before any use. Rowwise: the lanes holding one
// block reduce its amax with shuffles and each writes its 8 codes. Columnwise: the tile goes through
// shared memory; a thread takes a column and G rows of it (G = the block, or 32 where the scale is
// not per block), finds the amax in one pass and encodes in a second, writing the codes as a
// contiguous run of the transposed output.
//
// MXFP8, tensorwise FP8 and blockwise FP8 (whole 128 x 128 tiles) from bf16 / f16 take the
// register path of quantize_mx8.cu instead.
#include "quant/quant.h"

#include "quant/quantize.cuh"

#include <string>

namespace dw::quant {
namespace {

// Rows of a tile: 128 when the columnwise pass runs (blocks of up to 128 down a column; pairs of
// columns keep every thread busy) or for 128 x 128 blocks, else 64 (fewer registers per thread).
template <int F, bool COL>
__host__ __device__ constexpr int tileRows() { return COL || F == kBlk1x128 || F == kBlk128x128 ? 128 : 64; }

// Shared memory of quantizeK: two input tiles (double buffering), then with the columnwise pass
// the codes of the transposed tile.
template <typename T, int F, bool COL>
constexpr size_t quantSmemBytes() {
  return 2 * static_cast<size_t>(tileRows<F, COL>()) * kTileC * sizeof(T) + (COL ? static_cast<size_t>(kTileC) * 128 * (isFp4(F) ? 1 : 2) / 2 : 0);
}

// Codes of 2 values (FP8: 2 bytes, first in the low byte). MX blocks that reach here are finite,
// so their codes come straight from cvt2.
template <int F>
__device__ __forceinline__ uint32_t encode2(float a, float b, const BlockScale& s) {
  if constexpr (isMx(F) && !isFp4(F)) {
    if (s.zero) return 0;
    return cvt2<F>(a * s.mul, b * s.mul);
  } else {
    return static_cast<uint32_t>(encode<F>(a, s)) | static_cast<uint32_t>(encode<F>(b, s)) << (isFp4(F) ? 4 : 8);
  }
}

// Codes of 8 values as 8 bytes (FP8) or 4 (FP4, element 2i in the low nibble).
template <int F>
__device__ __forceinline__ void storeCodes8(uint8_t* dst, const float* v, const BlockScale& s) {
  if constexpr (isFp4(F)) {
    uint32_t w = 0;
#pragma unroll
    for (int i = 0; i < 8; i += 2) w |= encode2<F>(v[i], v[i + 1], s) << (4 * i);
    *reinterpret_cast<uint32_t*>(dst) = w;
  } else {
    const uint32_t lo = encode2<F>(v[0], v[1], s) | encode2<F>(v[2], v[3], s) << 16;
    const uint32_t hi = encode2<F>(v[4], v[5], s) | encode2<F>(v[6], v[7], s) << 16;
    *reinterpret_cast<uint2*>(dst) = make_uint2(lo, hi);
  }
}

// One tile, already in shared memory (`tile`, TR rows x 128 columns): rowwise codes and scales
// from each thread's chunks, columnwise through `codes` (the transposed tile's codes).
template <typename T, int F, bool ROW, bool COL>
__device__ __forceinline__ void quantizeTile(const QArgs& a, uint64_t tileIdx, const T* tile, uint8_t* codes, const BlockScale& tensorScale_, float g) {
  constexpr int TR = tileRows<F, COL>();
  constexpr int PASSES = TR * (kTileC / 8) / kQThreads;  // chunks per thread
  constexpr int B = blockOf(F);
  const uint64_t colTiles = (a.cols + kTileC - 1) / kTileC;
  const uint64_t r0 = (tileIdx / colTiles) * TR, c0 = (tileIdx % colTiles) * kTileC;
  const int chunkCol = threadIdx.x % 16, rowInPass = threadIdx.x / 16;
  const uint64_t gc = c0 + chunkCol * 8;
  const bool colOk = gc < a.cols;
  Chunk<T> ch[PASSES];
#pragma unroll
  for (int p = 0; p < PASSES; ++p) ch[p] = *reinterpret_cast<const Chunk<T>*>(tile + (p * (kQThreads / 16) + rowInPass) * kTileC + chunkCol * 8);
  BlockScale fixed = tensorScale_;
  if constexpr (F == kBlk128x128) {
    __shared__ uint32_t part[kQThreads / 32];
    uint32_t m = 0;
#pragma unroll
    for (int p = 0; p < PASSES; ++p) m = max(m, chunkAmaxFiniteBits(ch[p]));
    m = warpMaxU(m, 32);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = m;
    __syncthreads();
    m = 0;
    for (int w = 0; w < kQThreads / 32; ++w) m = max(m, part[w]);
    fixed = fp8Scale<F>(Bits<T>::value(m));
    if (threadIdx.x == 0) {
      // Rowwise the stored matrix is [rows, cols] (K = cols); columnwise [cols, rows] (K = rows).
      const uint64_t Lr = (a.cols + 127) / 128, Lc = (a.rows + 127) / 128;
      if (ROW) storeScale<F>(a.rowScales, r0 / 128, c0 / 128, (a.rows + 127) / 128, Lr, fixed, a.gemm);
      if (COL) storeScale<F>(a.colScales, c0 / 128, r0 / 128, (a.cols + 127) / 128, Lc, fixed, a.gemm);
      if (a.gemm && ROW && c0 / 128 == Lr - 1) zeroBlockPadding(a.rowScales, r0 / 128, Lr);
      if (a.gemm && COL && r0 / 128 == Lc - 1) zeroBlockPadding(a.colScales, c0 / 128, Lc);
    }
  }

  if constexpr (ROW) {
    // Lanes per block along the row (a whole row of the tile for tensorwise and 128 x 128).
    constexpr int LPB = B == 0 || F == kBlk128x128 ? 16 : B / 8;
    const uint64_t nScaleCols = B ? a.cols / B : 0;
#pragma unroll
    for (int p = 0; p < PASSES; ++p) {
      const uint64_t gr = r0 + p * (kQThreads / 16) + rowInPass;
      const bool ok = colOk && gr < a.rows;
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = ch[p].at(i);
      BlockScale s = fixed;
      if constexpr (!isTensorwise(F) && F != kBlk128x128) {
        // Blockwise FP8's amax ignores NaN and ±Inf; MX and NVFP4 blocks holding them are special.
        const uint32_t m = warpMaxU(F == kBlk1x128 ? chunkAmaxFiniteBits(ch[p]) : chunkAmaxBits(ch[p]), LPB);
        const bool sp = m >= Bits<T>::kInf;
        const float amax = sp ? 0.f : Bits<T>::value(m);
        if constexpr (isMx(F)) s = mxScale<F>(amax, sp, a.rceil);
        else if constexpr (F == kNvfp4) s = nvfp4Scale(amax, sp, g);
        else s = fp8Scale<F>(amax);  // blockwise FP8 ignores NaN and ±Inf in the amax
        if (ok && chunkCol % LPB == 0) storeScale<F>(a.rowScales, gr, gc / B, a.rows, nScaleCols, s, a.gemm);
      }
      if (ok) storeCodes8<F>(a.rowData + (gr * a.cols + gc) * (isFp4(F) ? 1 : 2) / 2, v, s);
    }
  }

  if constexpr (COL) {
    // A task: two neighbouring columns and G rows of them (read as pairs, one 32-bit word for
    // 16-bit storage). Pass 1 finds each column's amax, pass 2 encodes 16 rows at a time into the
    // transposed code tile in shared memory (rows of 8 units of 16 rows: 16 bytes FP8, 8 FP4,
    // swizzled so a warp's stores hit distinct banks); then the tile goes out in full lines.
    constexpr int G = B == 0 || F == kBlk128x128 ? 32 : B;
    constexpr int TASKS = (kTileC / 2) * (TR / G);
    constexpr int UNIT = isFp4(F) ? 8 : 16;  // bytes of 16 codes
    constexpr int ROWB = TR / 16 * UNIT;      // bytes of one transposed row (one column of x)
    const auto unitAt = [&](int c, int q) { return codes + c * ROWB + (q ^ ((c >> 1) & 7)) * UNIT; };
    const uint64_t nScaleCols = B ? a.rows / B : 0;
    for (int t = threadIdx.x; t < TASKS; t += kQThreads) {
      const int pair = t % (kTileC / 2), rb = t / (kTileC / 2);
      const uint64_t gcol = c0 + 2 * pair, grow = r0 + static_cast<uint64_t>(rb) * G;
      if (gcol >= a.cols || grow >= a.rows) continue;  // cols % 8 == 0: both columns or neither
      const T* colp = tile + rb * G * kTileC + 2 * pair;
      BlockScale s0 = fixed, s1 = fixed;
      if constexpr (!isTensorwise(F) && F != kBlk128x128) {
        uint32_t m0 = 0, m1 = 0;
        if constexpr (F == kBlk1x128) {
          // Blockwise FP8's amax is over the finite elements.
          float f0 = 0.f, f1 = 0.f;
          for (int i = 0; i < G; ++i) {
            const Pair<T> w = *reinterpret_cast<const Pair<T>*>(colp + i * kTileC);
            const float x0 = toF(w.a), x1 = toF(w.b);
            if (isfinite(x0)) f0 = fmaxf(f0, fabsf(x0));
            if (isfinite(x1)) f1 = fmaxf(f1, fabsf(x1));
          }
          s0 = fp8Scale<F>(f0), s1 = fp8Scale<F>(f1);
        } else {
          if constexpr (sizeof(T) == 2) {
            uint32_t m = 0;
            for (int i = 0; i < G; ++i) m = Bits<T>::fold(m, *reinterpret_cast<const uint32_t*>(colp + i * kTileC));
            m0 = m & 0xffffu, m1 = m >> 16;
          } else {
            for (int i = 0; i < G; ++i) {
              const uint2 w = *reinterpret_cast<const uint2*>(colp + i * kTileC);
              m0 = Bits<T>::fold(m0, w.x), m1 = Bits<T>::fold(m1, w.y);
            }
          }
          const bool sp0 = m0 >= Bits<T>::kInf, sp1 = m1 >= Bits<T>::kInf;
          const float a0 = sp0 ? 0.f : Bits<T>::value(m0), a1 = sp1 ? 0.f : Bits<T>::value(m1);
          if constexpr (isMx(F)) s0 = mxScale<F>(a0, sp0, a.rceil), s1 = mxScale<F>(a1, sp1, a.rceil);
          else s0 = nvfp4Scale(a0, sp0, g), s1 = nvfp4Scale(a1, sp1, g);
        }
        storeScale<F>(a.colScales, gcol, grow / B, a.cols, nScaleCols, s0, a.gemm);
        storeScale<F>(a.colScales, gcol + 1, grow / B, a.cols, nScaleCols, s1, a.gemm);
      }
      for (int j = 0; j < G; j += 16) {
        float v0[16], v1[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
          const Pair<T> w = *reinterpret_cast<const Pair<T>*>(colp + (j + i) * kTileC);
          v0[i] = toF(w.a), v1[i] = toF(w.b);
        }
        const int q = (rb * G + j) / 16;
        if constexpr (isFp4(F)) {
          uint32_t w0[2] = {0, 0}, w1[2] = {0, 0};
#pragma unroll
          for (int i = 0; i < 16; i += 2) w0[i / 8] |= encode2<F>(v0[i], v0[i + 1], s0) << (4 * (i % 8)), w1[i / 8] |= encode2<F>(v1[i], v1[i + 1], s1) << (4 * (i % 8));
          *reinterpret_cast<uint2*>(unitAt(2 * pair, q)) = make_uint2(w0[0], w0[1]);
          *reinterpret_cast<uint2*>(unitAt(2 * pair + 1, q)) = make_uint2(w1[0], w1[1]);
        } else {
          uint32_t w0[4] = {0, 0, 0, 0}, w1[4] = {0, 0, 0, 0};
#pragma unroll
          for (int i = 0; i < 16; i += 2) w0[i / 4] |= encode2<F>(v0[i], v0[i + 1], s0) << (8 * (i % 4)), w1[i / 4] |= encode2<F>(v1[i], v1[i + 1], s1) << (8 * (i % 4));
          *reinterpret_cast<uint4*>(unitAt(2 * pair, q)) = make_uint4(w0[0], w0[1], w0[2], w0[3]);
          *reinterpret_cast<uint4*>(unitAt(2 * pair + 1, q)) = make_uint4(w1[0], w1[1], w1[2], w1[3]);
        }
      }
    }
    __syncthreads();
    // Out: transposed row c (column c0 + c of x) holds rows r0 .. r0 + TR of it, 16 per unit.
    constexpr int UNITS = TR / 16;
    for (int u = threadIdx.x; u < kTileC * UNITS; u += kQThreads) {
      const int c = u / UNITS, q = u % UNITS;
      const uint64_t gcol = c0 + c, grow = r0 + static_cast<uint64_t>(q) * 16;
      if (gcol >= a.cols || grow >= a.rows) continue;  // rows % 16 == 0: whole units
      uint8_t* dst = a.colData + (gcol * a.rows + grow) * (isFp4(F) ? 1 : 2) / 2;
      if constexpr (isFp4(F)) *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(unitAt(c, q));
      else *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(unitAt(c, q));
    }
  }
}

// Persistent CTAs: each takes tiles blockIdx.x, + gridDim.x, ..., loading the next tile into the
// other half of a double buffer (cp.async, zero-filled past the matrix) while it quantizes this one.
template <typename T, int F, bool ROW, bool COL>
__global__ void __launch_bounds__(kQThreads) quantizeK(QArgs a, uint64_t tiles) {
  constexpr int TR = tileRows<F, COL>();
  constexpr int PASSES = TR * (kTileC / 8) / kQThreads;
  constexpr size_t TILE_BYTES = static_cast<size_t>(TR) * kTileC * sizeof(T);
  extern __shared__ __align__(16) unsigned char smem[];
  uint8_t* codes = smem + 2 * TILE_BYTES;
  const uint64_t colTiles = (a.cols + kTileC - 1) / kTileC;
  const int chunkCol = threadIdx.x % 16, rowInPass = threadIdx.x / 16;

  const auto issue = [&](uint64_t tileIdx, int buf) {
    const uint64_t r0 = (tileIdx / colTiles) * TR, c0 = (tileIdx % colTiles) * kTileC, gc = c0 + chunkCol * 8;
#pragma unroll
    for (int p = 0; p < PASSES; ++p) {
      const int row = p * (kQThreads / 16) + rowInPass;
      const uint64_t gr = r0 + row;
      const bool ok = gc < a.cols && gr < a.rows;
      const T* src = static_cast<const T*>(a.x) + (ok ? gr * a.cols + gc : 0);
      const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem + buf * TILE_BYTES + (static_cast<size_t>(row) * kTileC + chunkCol * 8) * sizeof(T)));
#pragma unroll
      for (int k = 0; k < Chunk<T>::kVec; ++k)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst + 16 * k), "l"(reinterpret_cast<const char*>(src) + 16 * k), "r"(ok ? 16 : 0));
    }
    asm volatile("cp.async.commit_group;\n" ::);
  };

  // The tensor-level scale (tensorwise FP8, NVFP4), once.
  BlockScale fixed;
  if constexpr (isTensorwise(F)) fixed = fp8Scale<F>(*a.amax);
  float g = 0.f;
  if constexpr (F == kNvfp4) g = tensorScale<F>(*a.amax);
  if constexpr (isTensorwise(F) || F == kNvfp4) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *a.globalScale = isTensorwise(F) ? fixed.div : g;
  }

  int buf = 0;
  if (blockIdx.x < tiles) issue(blockIdx.x, 0);
  for (uint64_t t = blockIdx.x; t < tiles; t += gridDim.x, buf ^= 1) {
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();  // this tile is in; every thread is done with the other buffer and the codes
    if (t + gridDim.x < tiles) issue(t + gridDim.x, buf ^ 1);
    quantizeTile<T, F, ROW, COL>(a, t, reinterpret_cast<const T*>(smem + buf * TILE_BYTES), codes, fixed, g);
  }
}

}  // namespace

Napi::Value Quantize(const Napi::CallbackInfo& info) {
  const abi::QuantizeArgs a = abi::readQuantize(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int f = a.format;
  const int rceil = a.scaleMode == abi::scaleMode::rceil ? 1 : 0;
  const int dtype = a.dtype;
  const uint64_t rows = a.rows, cols = a.cols;
  const int flags = static_cast<int>(a.flags);
  const bool row = flags & kRowwise, col = flags & kColumnwise, gemm = flags & kGemmLayout;
  if (!row && !col) fail(env, "INVALID_ARGUMENT", "Expected flags with rowwise (1), columnwise (2) or both for quantize but received " + std::to_string(flags));
  checkGemmLayout(env, f, flags, "quantize");
  if (cols % 8 != 0) fail(env, "SHAPE_MISMATCH", "Expected cols divisible by 8 for quantize but received " + std::to_string(cols));
  if (row) checkDirection(env, f, rows, cols, "rowwise");
  if (col) checkDirection(env, f, cols, rows, "columnwise");
  if (col && isTensorwise(f) && rows % 32 != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected rows divisible by 32 for columnwise ") + fmtName(f) + " but received " + std::to_string(rows));
  const bool global = isTensorwise(f) || f == kNvfp4;
  QArgs q{};
  q.rows = rows, q.cols = cols, q.rceil = rceil, q.gemm = gemm;
  q.x = a.x.ptr<void>(env, rows * cols, dtypeBytes(dtype));
  if (reinterpret_cast<uintptr_t>(q.x) % 16 != 0) fail(env, "INVALID_ARGUMENT", "Expected x aligned to 16 bytes for quantize");
  q.amax = global ? a.amax.ptr<const float>(env, 1) : a.amax.optPtr<const float>(env, 1);
  const auto need = [&](const abi::TensorArg& t, bool want, uint64_t bytes) -> uint8_t* {
    return want && bytes ? t.ptr<uint8_t>(env, bytes) : t.optPtr<uint8_t>(env, bytes);
  };
  q.rowData = need(a.rowData, row, codeBytes(f, rows, cols));
  q.rowScales = need(a.rowScales, row, scaleBytes(f, rows, cols, gemm));
  q.colData = need(a.colData, col, codeBytes(f, cols, rows));
  q.colScales = need(a.colScales, col, scaleBytes(f, cols, rows, gemm));
  q.globalScale = global ? a.globalScale.ptr<float>(env, 1) : a.globalScale.optPtr<float>(env, 1);
  if (rows == 0 || cols == 0) return env.Undefined();
  // MXFP8 from bf16 / f16 takes quantizeMx8K, which writes every byte of tiled scales (padding
  // too) and stages plain ones in the call's workspace, in the tiled size.
  const bool fast = dtype != kF32 && (f == kMxE4M3 || f == kMxE5M2);
  if (gemm && (isMx(f) || f == kNvfp4) && !fast) {
    if (row) DW_CUDA(env, cudaMemsetAsync(q.rowScales, 0, scaleBytes(f, rows, cols, true), s), "cudaMemsetAsync (tiled scales)");
    if (col) DW_CUDA(env, cudaMemsetAsync(q.colScales, 0, scaleBytes(f, cols, rows, true), s), "cudaMemsetAsync (tiled scales)");
  }
  uint8_t* staging = nullptr;
  if (fast && !gemm) {
    const uint64_t rowBytes = row ? scaleBytes(f, rows, cols, true) : 0, colBytes = col ? scaleBytes(f, cols, rows, true) : 0;
    // The staged tiles are stored in 16-byte pieces and dropped from L2 in 128-byte lines.
    staging = a.workspace.take<uint8_t>(env, rowBytes + colBytes, 128);
    q.rowScratch = row ? staging : nullptr;
    q.colScratch = col ? staging + rowBytes : nullptr;
  }
  dispatchFormat(env, f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    constexpr int TRr = tileRows<F, false>(), TRc = tileRows<F, true>();
    const uint64_t TR = col ? TRc : TRr, tiles = ((rows + TR - 1) / TR) * ((cols + kTileC - 1) / kTileC);
    if (tiles > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 tiles for quantize but received " + std::to_string(tiles));
    DW_DISPATCH_FLOAT(env, dtype, T, {
      // MXFP8, tensorwise FP8 and blockwise FP8 (whole 128 x 128 tiles) from bf16 / f16: the
      // register path, 128 x 128 tiles, about two per CTA on large inputs: CTAs that start and end
      // at different times keep the memory system busier than resident CTAs that walk the tiles in
      // step (measured on the H200 for MXFP8, docs/gpu-runs.md). Tensorwise FP8 took the tile
      // kernel below until 2026-12-03, at about 40% of copy bandwidth in the 1B model's step
      // (docs/gpu-runs/2026-12-03-fp8-e2e); blockwise FP8 at about a third of copy bandwidth.
      // Blockwise FP8 on partial tiles (1 x 128 one way, rows or cols not a multiple of 128) stays
      // with the tile kernel.
      constexpr bool regT = sizeof(T) == 2 && ((isMx(F) && !isFp4(F)) || isTensorwise(F) || f32Scales(F));
      const bool reg = regT && (!f32Scales(F) || (rows % 128 == 0 && cols % 128 == 0));
      if constexpr (regT) {
        if (reg) launchQuantizeMx8<T, F>(env, s, q, row, col);
      }
      if (!reg) {
        if (row && col) launchTiles(env, s, quantizeK<T, F, true, true>, quantSmemBytes<T, F, true>(), q, tiles, tiles);
        else if (row) launchTiles(env, s, quantizeK<T, F, true, false>, quantSmemBytes<T, F, false>(), q, tiles, tiles);
        else launchTiles(env, s, quantizeK<T, F, false, true>, quantSmemBytes<T, F, true>(), q, tiles, tiles);
      }
    });
  });
  if (staging) launchScalesFromScratch(env, s, q);
  checkLaunch(env, "quantize");
  return env.Undefined();
}

}  // namespace dw::quant

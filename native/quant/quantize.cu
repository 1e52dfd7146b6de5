// Quantization kernels: amax, fused quantize (rowwise, columnwise-transposed, or both from one read
// of the input), dequantize and fake-quantize, for every format of @deepwell/precision. Each is
// bit-identical to that package's TypeScript reference (packages/precision/src/{blocks,quantize,
// layout}.ts), whose comments define the formats; the CUDA candidates and the Tensor API that call
// these are packages/precision/src/cuda/.
//
// Format codes (fmt):
//   0 mxfp8-e4m3   1 mxfp8-e5m2   2 mxfp4        blocks of 32, E8M0 scales ('floor' or 'rceil')
//   3 nvfp4                                      blocks of 16, E4M3 scales, FP32 tensor scale g
//   4 fp8-e4m3     5 fp8-e5m2                    tensorwise: one FP32 scale s = amax / max
//   6 fp8-block1x128   7 fp8-block128x128        E4M3, FP32 scale per block / per 128 x 128 tile
//
// Arithmetic follows the references operation by operation: MX scales come from the exponent bits
// (no rounded division decides them), V / X is an exact multiplication by a power of two, and the
// NVFP4 / FP8 scale and element divisions are correctly rounded FP32 divisions (__fdiv_rn). E4M3
// and E5M2 elements are rounded by the hardware conversion (cvt.rn.satfinite: nearest even,
// saturating), with NaN handled before it; E2M1 by comparisons with its rounding boundaries.
//
// Entry points (tensors as (base, offset); an unused one as (0, 0)):
//   quantAmax(stream, dtype, n, x, amax)
//       amax (f32[1]) = the largest finite |x| (NaN and ±Inf ignored, 0 for none).
//   quantize(stream, fmt, scaleMode, dtype, rows, cols, flags, x, amax, rowData, rowScales, colData,
//            colScales, globalScale)
//       x: a row-major [rows, cols] matrix (f32, bf16 or f16). flags: 1 rowwise, 2 columnwise
//       (stored transposed: data [cols, rows], scales [cols, rows / block]), 4 scales of MX and NVFP4
//       in cuBLASLt's 128 x 4 tiled layout (zero padding). amax (f32[1], from quantAmax or a delayed
//       history) is read for tensorwise FP8 and NVFP4, which write their FP32 scale to globalScale.
//   dequantize(stream, fmt, outDtype, R, C, flags, data, scales, globalScale, out)
//       The stored [R, C] matrix's values (C divisible by 8): out [R, C], or [C, R] with flags & 1
//       (the transpose, i.e. a columnwise result's original layout); flags & 4: tiled scales.
//   fakeQuant(stream, fmt, scaleMode, dtype, outer, len, inner, x, y)
//       y = dequantize(quantize(x)) in x's storage, x viewed as [outer, len, inner] with blocks of
//       consecutive elements along len (for 128 x 128 tiles: along len and inner).
//   quantStats(stream, fmt, scaleMode, dtype, outer, len, inner, x, stats)
//       stats (f32[6]): what fakeQuant does to x (amax; non-finite, underflowed and clamped shares;
//       log2 of the smallest and largest usable block scale), as the quant_stats op defines them.
#include "common/args.h"
#include "common/launch.h"

#include <cuda_fp8.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>

namespace dw {
namespace {

enum QFmt : int { kMxE4M3 = 0, kMxE5M2, kMxFp4, kNvfp4, kTwE4M3, kTwE5M2, kBlk1x128, kBlk128x128, kNumFormats };

constexpr const char* kFormatNames[kNumFormats] = {"mxfp8-e4m3", "mxfp8-e5m2", "mxfp4", "nvfp4", "fp8-e4m3", "fp8-e5m2", "fp8-block1x128", "fp8-block128x128"};

// Host and device facts of a format.
__host__ __device__ constexpr bool isMx(int f) { return f <= kMxFp4; }
__host__ __device__ constexpr bool isFp4(int f) { return f == kMxFp4 || f == kNvfp4; }
__host__ __device__ constexpr bool isE5M2(int f) { return f == kMxE5M2 || f == kTwE5M2; }
__host__ __device__ constexpr bool isTensorwise(int f) { return f == kTwE4M3 || f == kTwE5M2; }
__host__ __device__ constexpr bool f32Scales(int f) { return f == kBlk1x128 || f == kBlk128x128; }
// Elements per scale along the blocks (0: one scale for the tensor).
__host__ __device__ constexpr int blockOf(int f) { return isMx(f) ? 32 : f == kNvfp4 ? 16 : isTensorwise(f) ? 0 : 128; }
__host__ __device__ constexpr float elemMax(int f) { return isFp4(f) ? 6.f : isE5M2(f) ? 57344.f : 448.f; }

// ---- element codecs -----------------------------------------------------------------------------

__device__ __forceinline__ uint32_t signOf(float v) { return __float_as_uint(v) >> 31; }

// E4M3 / E5M2 code of v: nearest even, saturating; NaN keeps its sign (S.1111111).
template <bool E5>
__device__ __forceinline__ uint8_t encFp8(float v) {
  if (isnan(v)) return static_cast<uint8_t>((signOf(v) << 7) | 0x7f);
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, E5 ? __NV_E5M2 : __NV_E4M3));
}

// E2M1 code of v: nearest even, saturating (never given NaN). Boundaries are the midpoints of
// {0, 0.5, 1, 1.5, 2, 3, 4, 6}; a tie goes to the even code (strict > or >= accordingly).
__device__ __forceinline__ uint8_t encE2M1(float v) {
  const float a = fabsf(v);
  const uint32_t c = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.f);
  return static_cast<uint8_t>(c | (signOf(v) << 3));
}

__device__ __forceinline__ float pow2(int e) {  // 2^e for e in [-149, 127], exact
  return e >= -126 ? __uint_as_float(static_cast<uint32_t>(e + 127) << 23) : __uint_as_float(1u << (e + 149));
}

__device__ __forceinline__ float decE4M3(uint32_t c) {
  const uint32_t f = (c >> 3) & 15, m = c & 7;
  if (f == 15 && m == 7) return __uint_as_float(0x7fffffff);
  const float v = f == 0 ? m * 0x1p-9f : (8 + m) * pow2(static_cast<int>(f) - 10);
  return c & 0x80 ? -v : v;
}
__device__ __forceinline__ float decE5M2(uint32_t c) {
  const uint32_t f = (c >> 2) & 31, m = c & 3;
  float v;
  if (f == 31) v = m == 0 ? __uint_as_float(0x7f800000) : __uint_as_float(0x7fffffff);
  else v = f == 0 ? m * 0x1p-16f : (4 + m) * pow2(static_cast<int>(f) - 17);
  return c & 0x80 ? -v : v;
}
__device__ __forceinline__ float decE2M1(uint32_t c) {
  const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float v = mag[c & 7];
  return c & 8 ? -v : v;
}

template <int F>
__device__ __forceinline__ uint8_t encElem(float v) {
  if constexpr (isFp4(F)) return encE2M1(v);
  else return encFp8<isE5M2(F)>(v);
}
template <int F>
__device__ __forceinline__ float decElem(uint32_t c) {
  if constexpr (isFp4(F)) return decE2M1(c);
  else if constexpr (isE5M2(F)) return decE5M2(c);
  else return decE4M3(c);
}

// floor(log2(a)) of a finite a > 0, subnormals included.
__device__ __forceinline__ int ilog2f(float a) {
  const uint32_t b = __float_as_uint(a) & 0x7fffffffu;
  const int e = static_cast<int>(b >> 23);
  return e ? e - 127 : (31 - __clz(static_cast<int>(b))) - 149;
}

// ---- block scales -------------------------------------------------------------------------------

// How a block of values turns into codes, once its scale is known: v -> code(v * mul) or
// code(f32(v / div)), or all zeros (`zero`). `scaleCode` is what the scale array stores (a code
// for MX / NVFP4; for blockwise FP8 the FP32 scale in `scaleF`).
struct BlockScale {
  float mul = 1.f, div = 1.f;
  bool useDiv = false, zero = false;
  uint8_t scaleCode = 0;
  float scaleF = 1.f;
};

// MX: X = 2^e with e from the block's amax; NaN scale when the block holds NaN or ±Inf.
template <int F>
__device__ __forceinline__ BlockScale mxScale(float amax, bool special, int rceil) {
  BlockScale s;
  if (special) {
    s.scaleCode = 0xff;
    s.zero = true;
    return s;
  }
  int e;
  if (amax == 0.f) e = -127;
  else {
    constexpr int emax = isFp4(F) ? 2 : isE5M2(F) ? 15 : 8;  // floor(log2(max_elem))
    if (!rceil) e = ilog2f(amax) - emax;
    else {
      // Smallest e with max_elem * 2^e >= amax: with amax = ma * 2^ea and max_elem = mm * 2^emax
      // (ma, mm in [1, 2)), e = ea - emax, plus one when ma > mm. Compared as mantissa bits.
      constexpr uint32_t mm = isFp4(F) ? 0x400000u : 0x600000u;  // 1.5 (E2M1's 6), 1.75 (448, 57344)
      const uint32_t b = __float_as_uint(amax);
      uint32_t ma;
      if (b >> 23) ma = b & 0x7fffffu;
      else ma = (b << (__clz(static_cast<int>(b)) - 8)) & 0x7fffffu;  // a subnormal, normalised
      e = ilog2f(amax) - emax + (ma > mm ? 1 : 0);
    }
    e = e < -127 ? -127 : e > 127 ? 127 : e;
  }
  s.scaleCode = static_cast<uint8_t>(e + 127);
  s.mul = pow2(-e);
  return s;
}

// NVFP4: the E4M3 block scale from the block amax and the tensor scale g.
__device__ __forceinline__ BlockScale nvfp4Scale(float amax, bool special, float g) {
  BlockScale s;
  s.zero = true;
  if (special) {
    s.scaleCode = 0x7f;
    return s;
  }
  if (g == 0.f) return s;
  s.scaleCode = encFp8<false>(__fdiv_rn(__fdiv_rn(amax, 6.f), g));
  const float denom = __fmul_rn(decE4M3(s.scaleCode), g);
  if (denom == 0.f) return s;
  s.zero = false;
  s.useDiv = true;
  s.div = denom;
  return s;
}

// Tensorwise and blockwise FP8: s = f32(amax / max), 1 for an all-zero amax.
template <int F>
__device__ __forceinline__ BlockScale fp8Scale(float amax) {
  BlockScale s;
  s.useDiv = true;
  s.div = amax == 0.f ? 1.f : __fdiv_rn(amax, elemMax(F));
  s.scaleF = s.div;
  return s;
}

template <int F>
__device__ __forceinline__ uint8_t encode(float v, const BlockScale& s) {
  if (s.zero) return 0;
  return encElem<F>(s.useDiv ? __fdiv_rn(v, s.div) : v * s.mul);
}

// The tensor-level scale (tensorwise: s; NVFP4: g) from the tensor amax.
template <int F>
__device__ __forceinline__ float tensorScale(float amax) {
  if constexpr (F == kNvfp4) return __fdiv_rn(amax, 448.f * 6.f);
  else return amax == 0.f ? 1.f : __fdiv_rn(amax, elemMax(F));
}

// Index of scale (r, c) of a [*, nCols] scale matrix in cuBLASLt's 128 x 4 tiled layout.
__device__ __forceinline__ uint64_t tiledIndex(uint64_t r, uint64_t c, uint64_t nCols) {
  const uint64_t tilesC = (nCols + 3) / 4, rr = r % 128;
  return ((r / 128) * tilesC + c / 4) * 512 + (rr % 32) * 16 + (rr / 32) * 4 + (c % 4);
}

// ---- storage ------------------------------------------------------------------------------------

// 8 consecutive input elements, loaded as 16-byte vectors.
template <typename T>
struct Chunk {
  static constexpr int kVec = sizeof(T) * 8 / 16;  // 16-byte loads per chunk
  uint4 raw[kVec];
  __device__ __forceinline__ float at(int i) const { return toF(reinterpret_cast<const T*>(raw)[i]); }
};

// amax through the bit patterns: with the sign cleared, finite floats order as integers and every
// NaN or ±Inf lies at or above the infinity pattern. Bits<T>::fold reduces a chunk's 32-bit words
// to the largest |x| pattern (16-bit formats two per word, with max.u16x2).
template <typename T>
struct Bits;
template <>
struct Bits<__nv_bfloat16> {
  static constexpr uint32_t kInf = 0x7f80;
  __device__ static uint32_t fold(uint32_t acc, uint32_t w) { return __vmaxu2(acc, w & 0x7fff7fffu); }
  __device__ static uint32_t finish(uint32_t acc) { return max(acc & 0xffffu, acc >> 16); }
  __device__ static float value(uint32_t m) { return __uint_as_float(m << 16); }
};
template <>
struct Bits<__half> {
  static constexpr uint32_t kInf = 0x7c00;
  __device__ static uint32_t fold(uint32_t acc, uint32_t w) { return __vmaxu2(acc, w & 0x7fff7fffu); }
  __device__ static uint32_t finish(uint32_t acc) { return max(acc & 0xffffu, acc >> 16); }
  __device__ static float value(uint32_t m) { return __half2float(__ushort_as_half(static_cast<unsigned short>(m))); }
};
template <>
struct Bits<float> {
  static constexpr uint32_t kInf = 0x7f800000u;
  __device__ static uint32_t fold(uint32_t acc, uint32_t w) { return max(acc, w & 0x7fffffffu); }
  __device__ static uint32_t finish(uint32_t acc) { return acc; }
  __device__ static float value(uint32_t m) { return __uint_as_float(m); }
};

// Two neighbouring elements, read with one load.
template <typename T>
struct alignas(2 * sizeof(T)) Pair {
  T a, b;
};

// The largest |x| pattern of a chunk's finite elements (0 for none).
template <typename T>
__device__ __forceinline__ uint32_t chunkAmaxFiniteBits(const Chunk<T>& c) {
  float m = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float v = c.at(i);
    if (isfinite(v)) m = fmaxf(m, fabsf(v));
  }
  // m is one of the chunk's values, so T holds it exactly.
  const T t = fromF<T>(m);
  if constexpr (sizeof(T) == 4) return __float_as_uint(m);
  else {
    unsigned short u;
    memcpy(&u, &t, 2);
    return u;
  }
}

// The largest |x| pattern of a chunk.
template <typename T>
__device__ __forceinline__ uint32_t chunkAmaxBits(const Chunk<T>& c) {
  uint32_t acc = 0;
#pragma unroll
  for (int k = 0; k < Chunk<T>::kVec; ++k) acc = Bits<T>::fold(Bits<T>::fold(Bits<T>::fold(Bits<T>::fold(acc, c.raw[k].x), c.raw[k].y), c.raw[k].z), c.raw[k].w);
  return Bits<T>::finish(acc);
}

__device__ __forceinline__ uint32_t warpMaxU(uint32_t v, int width) {
  for (int o = 1; o < width; o <<= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warpMax(float v, int width) {
  for (int o = 1; o < width; o <<= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// amax of finite values and whether a non-finite one is among them.
__device__ __forceinline__ void accumulate(float v, float& amax, bool& special) {
  if (isfinite(v)) amax = fmaxf(amax, fabsf(v));
  else special = true;
}

// ---- amax ---------------------------------------------------------------------------------------

template <typename T>
__global__ void amaxK(const T* __restrict__ x, uint64_t n, float* __restrict__ out) {
  float m = 0.f;
  bool special = false;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) accumulate(toF(x[i]), m, special);
  m = warpMax(m, 32);
  __shared__ float part[32];
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x < 32) {
    m = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.f;
    m = warpMax(m, 32);
    // Non-negative floats order as their bit patterns.
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned*>(out), __float_as_uint(m));
  }
}

template <typename T>
void launchAmax(cudaStream_t s, const void* x, uint64_t n, float* out) {
  cudaMemsetAsync(out, 0, 4, s);
  if (n) amaxK<T><<<blocksFor(n, 256, 132 * 8), 256, 0, s>>>(static_cast<const T*>(x), n, out);
}

// ---- fused quantize -----------------------------------------------------------------------------
//
// One CTA of 256 threads per tile of TR rows x 128 columns. Threads load 8-element chunks (16
// lanes per tile row), all of a thread's chunks before any use. Rowwise: the lanes holding one
// block reduce its amax with shuffles and each writes its 8 codes. Columnwise: the tile goes through
// shared memory; a thread takes a column and G rows of it (G = the block, or 32 where the scale is
// not per block), finds the amax in one pass and encodes in a second, writing the codes as a
// contiguous run of the transposed output.

constexpr int kQThreads = 256, kTileC = 128;

struct QArgs {
  const void* x;
  const float* amax;
  uint8_t *rowData, *rowScales, *colData, *colScales;
  float* globalScale;
  uint64_t rows, cols;
  int rceil, tiled;
  uint8_t *rowScratch, *colScratch;  // quantizeMx8K with plain scales: the staged scale tiles
};

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

template <int F>
__device__ __forceinline__ void storeScale(uint8_t* base, uint64_t r, uint64_t c, uint64_t nCols, const BlockScale& s, int tiled) {
  if constexpr (f32Scales(F)) reinterpret_cast<float*>(base)[r * nCols + c] = s.scaleF;
  else base[tiled ? tiledIndex(r, c, nCols) : r * nCols + c] = s.scaleCode;
}

// FP8 codes of 2 already-scaled values (a in the low byte), saturating: the paired hardware
// conversion.
template <int F>
__device__ __forceinline__ uint32_t cvt2(float a, float b) {
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, isE5M2(F) ? __NV_E5M2 : __NV_E4M3);
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
      if (ROW) storeScale<F>(a.rowScales, r0 / 128, c0 / 128, (a.cols + 127) / 128, fixed, 0);
      if (COL) storeScale<F>(a.colScales, c0 / 128, r0 / 128, (a.rows + 127) / 128, fixed, 0);
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
        if (ok && chunkCol % LPB == 0) storeScale<F>(a.rowScales, gr, gc / B, nScaleCols, s, a.tiled);
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
        storeScale<F>(a.colScales, gcol, grow / B, nScaleCols, s0, a.tiled);
        storeScale<F>(a.colScales, gcol + 1, grow / B, nScaleCols, s1, a.tiled);
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

// ---- MXFP8 from bf16 / f16: the fast path -------------------------------------------------------
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

constexpr int kMxTile = 128, kMxStages = 2;
// Shared memory: the warps' rings (8 warps x stages x 8 rows x 32 lanes x 16 bytes), then two
// staging buffers (alternate tiles), each: column codes [128 columns][128 rows], row scales
// [128][4], column scales [128][4].
constexpr size_t kMxRingBytes = static_cast<size_t>(kQThreads / 32) * kMxStages * 8 * 32 * 16;
constexpr size_t kMxStageBytes = kMxTile * kMxTile + 2 * kMxTile * 4;
constexpr size_t kMxSmemBytes = kMxRingBytes + 2 * kMxStageBytes;

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
// reads 16 KB in order, drops those lines from L2 (the scratch is freed after this kernel, so they
// need not be written back), and writes whole lines. Launched as a programmatic dependent of
// quantizeMx8K: it waits for that grid's writes here, while its own launch overlaps its tail.
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

template <typename T, int F, bool ROW, bool COL>
__global__ void __launch_bounds__(kQThreads, 2) quantizeMx8K(QArgs a, uint64_t tiles) {
  static_assert(sizeof(T) == 2 && isMx(F) && !isFp4(F), "the fast path is MXFP8 from 16-bit input");
  constexpr uint32_t kInf = Bits<T>::kInf;
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
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      uint32_t m[4];
#pragma unroll
      for (int p = 0; p < 4; ++p) m[p] = w[i][p] & 0x7fff7fffu, colMax[p] = __vmaxu2(colMax[p], m[p]);
      rowMax[i] = __vmaxu2(__vimax3_u16x2(m[0], m[1], m[2]), m[3]);
    }
    const uint32_t all = __vimax3_u16x2(colMax[0], colMax[1], __vmaxu2(colMax[2], colMax[3]));
    const bool special = __any_sync(0xffffffffu, (all & 0xffffu) >= kInf || (all >> 16) >= kInf);

    // Rows 2j and 2j + 1 in one word, reduced over the row block's 4 lanes: this lane keeps rows
    // 2 cc and 2 cc + 1. Column pairs reduced over the column block's 4 lanes: it keeps columns
    // 2 rc and 2 rc + 1.
    uint32_t rowCodes = 0, colCodes = 0;
    float rowLo = 0.f, rowHi = 0.f, colLo = 0.f, colHi = 0.f;
    if constexpr (ROW) {
      uint32_t pairs[4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        pairs[j] = __vmaxu2(__byte_perm(rowMax[2 * j], rowMax[2 * j + 1], 0x5410), __byte_perm(rowMax[2 * j], rowMax[2 * j + 1], 0x7632));
      mxScale2<T, F>(reduceScatter4(pairs, cc & 2, cc & 1, 2, 1), a.rceil, rowCodes, rowLo, rowHi);
    }
    if constexpr (COL) mxScale2<T, F>(reduceScatter4(colMax, rc & 2, rc & 1, 8, 4), a.rceil, colCodes, colLo, colHi);

    // This tile's staging buffer; the barrier at the end of the previous tile's encoding ordered
    // the write-out of the tile before it (same buffer) before these stores.
    uint8_t* colStage = smem + kMxRingBytes + parity * kMxStageBytes;
    uint8_t* rowScaleStage = colStage + kMxTile * kMxTile;
    uint8_t* colScaleStage = rowScaleStage + kMxTile * 4;
    if constexpr (ROW) {
      const int sb = bc / 32;
      rowScaleStage[(br + 2 * cc) * 4 + sb] = static_cast<uint8_t>(rowCodes);
      rowScaleStage[(br + 2 * cc + 1) * 4 + sb] = static_cast<uint8_t>(rowCodes >> 16);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float m = __shfl_sync(0xffffffffu, i & 1 ? rowHi : rowLo, (lane & ~3) | (i >> 1));
        uint32_t q[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float2 x0 = unpack2<T>(w[i][2 * h]), x1 = unpack2<T>(w[i][2 * h + 1]);
          q[h] = cvt2<F>(x0.x * m, x0.y * m) | cvt2<F>(x1.x * m, x1.y * m) << 16;
        }
        if (special && m == 0.f) q[0] = q[1] = 0;  // a block with NaN or ±Inf
        if (r0 + br + i < a.rows && c0 + bc < a.cols) *reinterpret_cast<uint2*>(a.rowData + (r0 + br + i) * a.cols + c0 + bc) = make_uint2(q[0], q[1]);
      }
    }
    if constexpr (COL) {
      colScaleStage[(bc + 2 * rc) * 4 + br / 32] = static_cast<uint8_t>(colCodes);
      colScaleStage[(bc + 2 * rc + 1) * 4 + br / 32] = static_cast<uint8_t>(colCodes >> 16);
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const float m = __shfl_sync(0xffffffffu, k & 1 ? colHi : colLo, (lane & ~12) | (k >> 1) << 2);
        float x[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float2 f = unpack2<T>(w[i][k / 2]);
          x[i] = k & 1 ? f.y : f.x;
        }
        uint32_t q[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) q[h] = cvt2<F>(x[4 * h] * m, x[4 * h + 1] * m) | cvt2<F>(x[4 * h + 2] * m, x[4 * h + 3] * m) << 16;
        if (special && m == 0.f) q[0] = q[1] = 0;
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
    if (ROW && threadIdx.x < 32) writeScales(a.rowScales, a.rowScratch, rowScaleStage, threadIdx.x, r0, c0 / 32, a.cols / 32);
    if (COL && threadIdx.x >= kQThreads - 32) writeScales(a.colScales, a.colScratch, colScaleStage, threadIdx.x - (kQThreads - 32), c0, r0 / 32, a.rows / 32);
  }
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

// ---- dequantize ---------------------------------------------------------------------------------

struct DArgs {
  const uint8_t* data;
  const uint8_t* scales;
  const float* globalScale;
  void* out;
  uint64_t R, C;
  int transpose, tiled;
};

template <int F>
__device__ __forceinline__ float scaleValue(const DArgs& a, uint64_t r, uint64_t c) {
  constexpr int B = blockOf(F);
  if constexpr (isTensorwise(F)) return *a.globalScale;
  else if constexpr (F == kBlk1x128) return reinterpret_cast<const float*>(a.scales)[r * (a.C / 128) + c / 128];
  else if constexpr (F == kBlk128x128) return reinterpret_cast<const float*>(a.scales)[(r / 128) * ((a.C + 127) / 128) + c / 128];
  else {
    const uint64_t n = a.C / B;
    const uint32_t code = a.scales[a.tiled ? tiledIndex(r, c / B, n) : r * n + c / B];
    if constexpr (isMx(F)) return code == 0xff ? __uint_as_float(0x7fffffff) : pow2(static_cast<int>(code) - 127);
    else return decE4M3(code);
  }
}

// One thread per 8 consecutive stored elements (one block's scale: blocks are >= 16 long), codes
// read as one 8- or 4-byte word; the values go out as one vector, or down a column (transpose).
template <typename T, int F>
__global__ void dequantizeK(DArgs a) {
  const uint64_t chunksPerRow = a.C / 8, n = a.R * chunksPerRow, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += stride) {
    const uint64_t r = t / chunksPerRow, c = (t % chunksPerRow) * 8, k = r * a.C + c;
    uint32_t codes[8];
    if constexpr (isFp4(F)) {
      const uint32_t w = *reinterpret_cast<const uint32_t*>(a.data + k / 2);
      for (int i = 0; i < 8; ++i) codes[i] = (w >> (4 * i)) & 15;
    } else {
      const uint2 w = *reinterpret_cast<const uint2*>(a.data + k);
      for (int i = 0; i < 8; ++i) codes[i] = ((i < 4 ? w.x : w.y) >> (8 * (i % 4))) & 255;
    }
    const float sc = scaleValue<F>(a, r, c);
    T out[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float v = decElem<F>(codes[i]) * sc;  // exact product, rounded once
      if constexpr (F == kNvfp4) v = __fmul_rn(v, *a.globalScale);
      out[i] = fromF<T>(v);
    }
    if (!a.transpose) {
#pragma unroll
      for (int k2 = 0; k2 < static_cast<int>(sizeof(T)) / 2; ++k2) reinterpret_cast<uint4*>(static_cast<T*>(a.out) + k)[k2] = reinterpret_cast<const uint4*>(out)[k2];
    } else {
      for (int i = 0; i < 8; ++i) static_cast<T*>(a.out)[(c + i) * a.R + r] = out[i];
    }
  }
}

// ---- fake quantize ------------------------------------------------------------------------------

// How fake_quant treats one block with largest |x| m (sp: it holds NaN or ±Inf): its scale, the
// decode scale its codes are multiplied by, the scale quant_stats reports (S), and whether its codes
// are encoded at all (false where they are all forced to zero).
struct BlockQuant {
  BlockScale s;
  float dec;
  double S;
  bool encoded;
};
template <int F>
__device__ __forceinline__ BlockQuant blockQuant(float m, bool sp, int rceil, float g) {
  BlockQuant q;
  if constexpr (isMx(F)) {
    q.s = mxScale<F>(m, sp, rceil);
    q.dec = q.s.scaleCode == 0xff ? __uint_as_float(0x7fffffff) : pow2(static_cast<int>(q.s.scaleCode) - 127);
    q.S = q.dec, q.encoded = !sp;
  } else if constexpr (F == kNvfp4) {
    q.s = nvfp4Scale(m, sp, g);
    q.dec = decE4M3(q.s.scaleCode);
    q.S = static_cast<double>(q.dec) * g, q.encoded = !q.s.zero;
  } else {
    q.s = fp8Scale<F>(m);
    q.dec = q.s.div, q.S = q.s.div, q.encoded = true;
  }
  return q;
}

// Grid-stride over the blocks of B elements along len (stride inner) of an [outer, len, inner]
// tensor, one thread per block: fn(base, m, sp) after the block's amax pass, with element k of the
// block at base + k * inner, m its largest |x| and sp whether it holds NaN or ±Inf.
template <int B, typename T, typename Fn>
__device__ __forceinline__ void forEachBlock(const T* __restrict__ x, uint64_t outer, uint64_t len, uint64_t inner, Fn&& fn) {
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x, blocks = outer * (len / B) * inner;
  for (uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < blocks; t += stride) {
    const uint64_t i = t % inner, b = (t / inner) % (len / B), o = t / inner / (len / B);
    const uint64_t base = (o * len + b * B) * inner + i;
    float m = 0.f;
    bool sp = false;
    for (int k = 0; k < B; ++k) accumulate(toF(x[base + k * inner]), m, sp);
    fn(base, m, sp);
  }
}

// The largest |x| (m) of a 128 x 128 tile at x + base (rows inner apart) over the CTA, and whether
// it holds NaN or ±Inf (sp); every thread gets both.
template <typename T>
__device__ __forceinline__ void tileAmax(const T* __restrict__ x, uint64_t base, uint64_t inner, float& m, bool& sp) {
  __shared__ float part[32];
  m = 0.f, sp = false;
  for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) accumulate(toF(x[base + (e / 128) * inner + e % 128]), m, sp);
  m = warpMax(m, 32);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = m;
  sp = __syncthreads_or(sp);
  m = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, part[w]);
}

// One thread per block of B elements along len (stride inner). Tensorwise: one thread per element.
template <typename T, int F>
__global__ void fakeQuantK(const T* __restrict__ x, T* __restrict__ y, uint64_t outer, uint64_t len, uint64_t inner, const float* amax, int rceil) {
  constexpr int B = blockOf(F);
  float g = 0.f;
  if constexpr (F == kNvfp4) g = tensorScale<F>(*amax);
  if constexpr (isTensorwise(F)) {
    const BlockScale fixed = fp8Scale<F>(*amax);
    const uint64_t n = outer * len * inner, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
    for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
      y[i] = fromF<T>(decElem<F>(encode<F>(toF(x[i]), fixed)) * fixed.div);
  } else {
    forEachBlock<B>(x, outer, len, inner, [&](uint64_t base, float m, bool sp) {
      const BlockQuant q = blockQuant<F>(m, sp, rceil, g);
      for (int k = 0; k < B; ++k) {
        float v = decElem<F>(encode<F>(toF(x[base + k * inner]), q.s)) * q.dec;
        if constexpr (F == kNvfp4) v = __fmul_rn(v, g);
        y[base + k * inner] = fromF<T>(v);
      }
    });
  }
}

// 128 x 128 tiles of [len, inner] matrices: one CTA per tile.
template <typename T>
__global__ void fakeQuantTileK(const T* __restrict__ x, T* __restrict__ y, uint64_t len, uint64_t inner) {
  const uint64_t tilesC = inner / 128, tilesR = len / 128;
  const uint64_t o = blockIdx.x / (tilesR * tilesC), tr = (blockIdx.x / tilesC) % tilesR, tc = blockIdx.x % tilesC;
  const uint64_t base = o * len * inner + tr * 128 * inner + tc * 128;
  float m;
  bool sp;
  tileAmax(x, base, inner, m, sp);
  const BlockScale s = fp8Scale<kBlk128x128>(m);
  for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) {
    const uint64_t k = base + (e / 128) * inner + e % 128;
    y[k] = fromF<T>(decE4M3(encode<kBlk128x128>(toF(x[k]), s)) * s.div);
  }
}

// ---- quant_stats ----------------------------------------------------------------------------------
// What fake_quant does to x, counted (packages/precision/src/ops/quant_stats.ts defines each number):
// per-thread sums over the thread's blocks, reduced per warp, then one atomic per warp into
// g_statsAcc; statsFinishK turns the sums into the six values.

struct StatsAcc {
  unsigned long long nonfinite, underflow, saturated;
  unsigned long long sMin, sMax;  // bit patterns of the smallest / largest usable decode scale (double)
  unsigned int amax;              // bit pattern of the largest finite |x| (float)
};
__device__ StatsAcc g_statsAcc;
void* g_statsAccAddr[64];

template <int F>
__device__ __forceinline__ bool clampsAt(float scaled) {
  const float a = fabsf(scaled);
  if constexpr (isFp4(F)) return a >= 7.f;
  else if constexpr (isE5M2(F)) return a >= 61440.f;
  else return a > 464.f;
}

struct StatsLocal {
  unsigned long long nonfinite = 0, underflow = 0, saturated = 0, sMin = ~0ull, sMax = 0;
  float amax = 0.f;
  __device__ void scale(double S) {
    const unsigned long long b = static_cast<unsigned long long>(__double_as_longlong(S));
    sMin = b < sMin ? b : sMin;
    sMax = b > sMax ? b : sMax;
  }
  // One element of a block quantized with s (decode scale dec, NVFP4's g), `encoded` unless the
  // block's codes were all forced to zero.
  template <int F>
  __device__ void element(float v, const BlockScale& s, float dec, float g, bool encoded) {
    if (!isfinite(v)) {
      ++nonfinite;
      return;
    }
    amax = fmaxf(amax, fabsf(v));
    float y = decElem<F>(encode<F>(v, s)) * dec;
    if constexpr (F == kNvfp4) y = __fmul_rn(y, g);
    if (v != 0.f && y == 0.f) ++underflow;
    if (encoded && clampsAt<F>(s.useDiv ? __fdiv_rn(v, s.div) : v * s.mul)) ++saturated;
  }
  // Sums of the warp into the accumulator (every lane calls it).
  __device__ void flush(StatsAcc* acc) {
    unsigned long long c[3] = {nonfinite, underflow, saturated};
    unsigned long long lo = sMin, hi = sMax;
    unsigned int am = __float_as_uint(amax);
    for (int o = 16; o > 0; o >>= 1) {
      for (int i = 0; i < 3; ++i) c[i] += __shfl_xor_sync(0xffffffffu, c[i], o);
      const unsigned long long l2 = __shfl_xor_sync(0xffffffffu, lo, o), h2 = __shfl_xor_sync(0xffffffffu, hi, o);
      lo = l2 < lo ? l2 : lo;
      hi = h2 > hi ? h2 : hi;
      am = max(am, __shfl_xor_sync(0xffffffffu, am, o));
    }
    if ((threadIdx.x & 31) == 0) {
      if (c[0]) atomicAdd(&acc->nonfinite, c[0]);
      if (c[1]) atomicAdd(&acc->underflow, c[1]);
      if (c[2]) atomicAdd(&acc->saturated, c[2]);
      if (lo != ~0ull) atomicMin(&acc->sMin, lo);
      if (hi) atomicMax(&acc->sMax, hi);
      if (am) atomicMax(&acc->amax, am);
    }
  }
};

// Blocks along len (stride inner), one thread per block; tensorwise FP8 one thread per element.
template <typename T, int F>
__global__ void statsK(const T* __restrict__ x, uint64_t outer, uint64_t len, uint64_t inner, const float* tensorAmax, int rceil, StatsAcc* acc) {
  constexpr int B = blockOf(F);
  StatsLocal st;
  float g = 0.f;
  if constexpr (F == kNvfp4) g = tensorScale<F>(*tensorAmax);
  if constexpr (isTensorwise(F)) {
    const BlockScale s = fp8Scale<F>(*tensorAmax);
    const uint64_t n = outer * len * inner, stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
    for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) st.element<F>(toF(x[i]), s, s.div, 0.f, true);
  } else {
    forEachBlock<B>(x, outer, len, inner, [&](uint64_t base, float m, bool sp) {
      const BlockQuant q = blockQuant<F>(m, sp, rceil, g);
      if (!sp && m > 0.f && q.S > 0.0 && isfinite(q.S)) st.scale(q.S);
      for (int k = 0; k < B; ++k) st.element<F>(toF(x[base + k * inner]), q.s, q.dec, g, q.encoded);
    });
  }
  st.flush(acc);
}

// 128 x 128 tiles of [len, inner] matrices: one CTA per tile.
template <typename T>
__global__ void statsTileK(const T* __restrict__ x, uint64_t len, uint64_t inner, StatsAcc* acc) {
  const uint64_t tilesC = inner / 128, tilesR = len / 128;
  const uint64_t o = blockIdx.x / (tilesR * tilesC), tr = (blockIdx.x / tilesC) % tilesR, tc = blockIdx.x % tilesC;
  const uint64_t base = o * len * inner + tr * 128 * inner + tc * 128;
  float m;
  bool sp;
  tileAmax(x, base, inner, m, sp);
  const BlockScale s = fp8Scale<kBlk128x128>(m);
  StatsLocal st;
  if (threadIdx.x == 0 && !sp && m > 0.f) st.scale(s.div);
  for (int e = threadIdx.x; e < 128 * 128; e += blockDim.x) st.element<kBlk128x128>(toF(x[base + (e / 128) * inner + e % 128]), s, s.div, 0.f, true);
  st.flush(acc);
}

// The six values (tensorwise FP8: its one scale counts when the tensor is finite and not all zero).
template <int F>
__global__ void statsFinishK(const StatsAcc* acc, uint64_t n, float* out) {
  const double dn = static_cast<double>(n);
  const float amax = __uint_as_float(acc->amax);
  unsigned long long lo = acc->sMin, hi = acc->sMax;
  if constexpr (isTensorwise(F)) {
    if (acc->nonfinite == 0 && amax > 0.f) lo = hi = static_cast<unsigned long long>(__double_as_longlong(static_cast<double>(fp8Scale<F>(amax).div)));
  }
  out[0] = amax;
  out[1] = static_cast<float>(static_cast<double>(acc->nonfinite) / dn);
  out[2] = static_cast<float>(static_cast<double>(acc->underflow) / dn);
  out[3] = static_cast<float>(static_cast<double>(acc->saturated) / dn);
  const bool none = lo == ~0ull;
  out[4] = none ? __uint_as_float(0x7fffffff) : static_cast<float>(log2(__longlong_as_double(static_cast<long long>(lo))));
  out[5] = none ? __uint_as_float(0x7fffffff) : static_cast<float>(log2(__longlong_as_double(static_cast<long long>(hi))));
}

// ---- host side ----------------------------------------------------------------------------------

// Calls body(std::integral_constant<int, F>{}) with F the format code.
template <typename Body>
void dispatchFormat(Napi::Env env, int f, Body&& body) {
  switch (f) {
    case kMxE4M3: body(std::integral_constant<int, kMxE4M3>{}); break;
    case kMxE5M2: body(std::integral_constant<int, kMxE5M2>{}); break;
    case kMxFp4: body(std::integral_constant<int, kMxFp4>{}); break;
    case kNvfp4: body(std::integral_constant<int, kNvfp4>{}); break;
    case kTwE4M3: body(std::integral_constant<int, kTwE4M3>{}); break;
    case kTwE5M2: body(std::integral_constant<int, kTwE5M2>{}); break;
    case kBlk1x128: body(std::integral_constant<int, kBlk1x128>{}); break;
    case kBlk128x128: body(std::integral_constant<int, kBlk128x128>{}); break;
    default: fail(env, "INVALID_ARGUMENT", "Expected a format code in [0, 7] but received " + std::to_string(f));
  }
}

std::string fmtName(int f) { return f >= 0 && f < kNumFormats ? kFormatNames[f] : "?"; }

// Bytes of a [R, C] matrix of codes.
uint64_t codeBytes(int f, uint64_t R, uint64_t C) { return isFp4(f) ? R * C / 2 : R * C; }

// Bytes of the scales of a stored [R, C] matrix (blocks along C).
uint64_t scaleBytes(int f, uint64_t R, uint64_t C, bool tiled) {
  if (isTensorwise(f)) return 0;
  if (f == kBlk1x128) return R * (C / 128) * 4;
  if (f == kBlk128x128) return ((R + 127) / 128) * ((C + 127) / 128) * 4;
  const uint64_t n = C / blockOf(f);
  return tiled ? ((R + 127) / 128) * ((n + 3) / 4) * 512 : R * n;
}

// The shape rules of a direction: the blocks' axis a whole number of blocks, 8-element chunks.
void checkDirection(Napi::Env env, int f, uint64_t R, uint64_t C, const char* dir) {
  const int B = blockOf(f);
  const uint64_t along = B ? static_cast<uint64_t>(B) : 8;
  if (C % along != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected a length along the blocks divisible by ") + std::to_string(along) + " for " + fmtName(f) + " (" + dir +
                                    ") but received " + std::to_string(C));
  if (f == kBlk128x128 && R % 128 != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected both dimensions divisible by 128 for fp8-block128x128 but received ") + std::to_string(R) + " x " + std::to_string(C));
}

// Stream-ordered scratch (cudaMallocAsync from the device's default pool, freed with
// cudaFreeAsync after its last use on `s`). The pool keeps up to 256 MiB between calls instead of
// returning it at every synchronisation, so a training step's quantizes do not remap memory.
uint8_t* streamScratch(Napi::Env env, cudaStream_t s, uint64_t bytes, const char* what) {
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  static std::once_flag configured[64];
  if (dev >= 0 && dev < 64)
    std::call_once(configured[dev], [dev] {
      cudaMemPool_t pool;
      uint64_t keep = 256ull << 20;
      if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
      cudaGetLastError();
    });
  void* p = nullptr;
  DW_CUDA(env, cudaMallocAsync(&p, bytes, s), std::string("cudaMallocAsync (") + what + ", " + std::to_string(bytes) + " bytes)");
  return static_cast<uint8_t*>(p);
}

Napi::Value QuantAmax(const Napi::CallbackInfo& info) {
  Args a(info, "quantAmax");
  cudaStream_t s = a.stream();
  const int dtype = a.floatDtype();
  const uint64_t n = a.u64("n");
  const void* x = a.dev(n, dtypeBytes(dtype), "quantAmax x");
  float* out = static_cast<float*>(a.dev(1, 4, "quantAmax amax"));
  a.end();
  DW_DISPATCH_FLOAT(a.env(), dtype, T, launchAmax<T>(s, x, n, out));
  checkLaunch(a.env(), "quantAmax");
  return a.env().Undefined();
}

Napi::Value Quantize(const Napi::CallbackInfo& info) {
  Args a(info, "quantize");
  Napi::Env env = a.env();
  cudaStream_t s = a.stream();
  const int f = static_cast<int>(a.u64("format code", kNumFormats - 1));
  const int rceil = static_cast<int>(a.u64("scaleMode (0 floor, 1 rceil)", 1));
  const int dtype = a.floatDtype();
  const uint64_t rows = a.u64("rows"), cols = a.u64("cols");
  const int flags = static_cast<int>(a.u64("flags", 7));
  const bool row = flags & 1, col = flags & 2, tiled = flags & 4;
  if (!row && !col) fail(env, "INVALID_ARGUMENT", "Expected flags with rowwise (1), columnwise (2) or both for quantize but received " + std::to_string(flags));
  if (tiled && !(isMx(f) || f == kNvfp4)) fail(env, "INVALID_ARGUMENT", "Expected the tiled scale layout only for MX and NVFP4 formats but received " + fmtName(f));
  if (cols % 8 != 0) fail(env, "SHAPE_MISMATCH", "Expected cols divisible by 8 for quantize but received " + std::to_string(cols));
  if (row) checkDirection(env, f, rows, cols, "rowwise");
  if (col) checkDirection(env, f, cols, rows, "columnwise");
  if (col && isTensorwise(f) && rows % 32 != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected rows divisible by 32 for columnwise ") + fmtName(f) + " but received " + std::to_string(rows));
  const bool global = isTensorwise(f) || f == kNvfp4;
  QArgs q{};
  q.rows = rows, q.cols = cols, q.rceil = rceil, q.tiled = tiled;
  q.x = a.dev(rows * cols, dtypeBytes(dtype), "quantize x");
  if (reinterpret_cast<uintptr_t>(q.x) % 16 != 0) fail(env, "INVALID_ARGUMENT", "Expected x aligned to 16 bytes for quantize");
  q.amax = static_cast<const float*>(global ? a.dev(1, 4, "quantize amax") : a.optDev(1, 4, "quantize amax"));
  const auto need = [&](bool want, uint64_t bytes, const char* name) -> uint8_t* {
    return static_cast<uint8_t*>(want && bytes ? a.dev(bytes, 1, name) : a.optDev(bytes, 1, name));
  };
  q.rowData = need(row, codeBytes(f, rows, cols), "quantize rowData");
  q.rowScales = need(row, scaleBytes(f, rows, cols, tiled), "quantize rowScales");
  q.colData = need(col, codeBytes(f, cols, rows), "quantize colData");
  q.colScales = need(col, scaleBytes(f, cols, rows, tiled), "quantize colScales");
  q.globalScale = static_cast<float*>(global ? a.dev(1, 4, "quantize globalScale") : a.optDev(1, 4, "quantize globalScale"));
  a.end();
  if (rows == 0 || cols == 0) return env.Undefined();
  // MXFP8 from bf16 / f16 takes quantizeMx8K, which writes every byte of tiled scales (padding
  // too) and stages plain ones in a stream-ordered scratch of the tiled size.
  const bool fast = dtype != kF32 && (f == kMxE4M3 || f == kMxE5M2);
  if (tiled && !fast) {
    if (row) DW_CUDA(env, cudaMemsetAsync(q.rowScales, 0, scaleBytes(f, rows, cols, true), s), "cudaMemsetAsync (tiled scales)");
    if (col) DW_CUDA(env, cudaMemsetAsync(q.colScales, 0, scaleBytes(f, cols, rows, true), s), "cudaMemsetAsync (tiled scales)");
  }
  // Freed on the stream however this call ends.
  struct Scratch {
    uint8_t* p = nullptr;
    cudaStream_t s;
    ~Scratch() {
      if (p) cudaFreeAsync(p, s);
    }
  } scratch{nullptr, s};
  if (fast && !tiled) {
    const uint64_t rowBytes = row ? scaleBytes(f, rows, cols, true) : 0, colBytes = col ? scaleBytes(f, cols, rows, true) : 0;
    scratch.p = streamScratch(env, s, rowBytes + colBytes, "quantize scale staging");
    q.rowScratch = row ? scratch.p : nullptr;
    q.colScratch = col ? scratch.p + rowBytes : nullptr;
  }
  dispatchFormat(env, f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    constexpr int TRr = tileRows<F, false>(), TRc = tileRows<F, true>();
    const uint64_t TR = col ? TRc : TRr, tiles = ((rows + TR - 1) / TR) * ((cols + kTileC - 1) / kTileC);
    if (tiles > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 tiles for quantize but received " + std::to_string(tiles));
    DW_DISPATCH_FLOAT(env, dtype, T, {
      // As many CTAs as fit on the GPU at once, at most `ctas`, or (`spread`) about two tiles per CTA
      // where that is more; the kernel takes `n` tiles, CTA b tiles b, b + grid, ...
      auto launch = [&](auto kernel, size_t smem, uint64_t ctas, uint64_t n, bool spread = false) {
        DW_CUDA(env, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)), "cudaFuncSetAttribute (quantize)");
        int dev = 0, sms = 0, perSm = 0;
        DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
        DW_CUDA(env, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute (SM count)");
        DW_CUDA(env, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kQThreads, smem), "cudaOccupancyMaxActiveBlocksPerMultiprocessor (quantize)");
        const uint64_t fit = static_cast<uint64_t>(sms) * static_cast<uint64_t>(perSm > 0 ? perSm : 1);
        const uint64_t resident = ctas < fit ? ctas : fit, grid = spread && (n + 1) / 2 > resident ? (n + 1) / 2 : resident;
        kernel<<<static_cast<unsigned>(grid), kQThreads, smem, s>>>(q, n);
      };
      if constexpr (sizeof(T) == 2 && isMx(F) && !isFp4(F)) {
        // MXFP8 from bf16 / f16: the register path, 128 x 128 tiles, about two per CTA on large
        // inputs: CTAs that start and end at different times keep the memory system busier than
        // resident CTAs that walk the tiles in step (measured on the H200, docs/gpu-runs.md).
        const uint64_t n = ((rows + kMxTile - 1) / kMxTile) * ((cols + kMxTile - 1) / kMxTile);
        if (row && col) launch(quantizeMx8K<T, F, true, true>, kMxSmemBytes, n, n, true);
        else if (row) launch(quantizeMx8K<T, F, true, false>, kMxSmemBytes, n, n, true);
        else launch(quantizeMx8K<T, F, false, true>, kMxSmemBytes, n, n, true);
      } else {
        if (row && col) launch(quantizeK<T, F, true, true>, quantSmemBytes<T, F, true>(), tiles, tiles);
        else if (row) launch(quantizeK<T, F, true, false>, quantSmemBytes<T, F, false>(), tiles, tiles);
        else launch(quantizeK<T, F, false, true>, quantSmemBytes<T, F, true>(), tiles, tiles);
      }
    });
  });
  if (scratch.p) {
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
    uint8_t* p = scratch.p;
    scratch.p = nullptr;
    DW_CUDA(env, cudaFreeAsync(p, s), "cudaFreeAsync (quantize scale staging)");
  }
  checkLaunch(env, "quantize");
  return env.Undefined();
}

Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  Args a(info, "dequantize");
  Napi::Env env = a.env();
  cudaStream_t s = a.stream();
  const int f = static_cast<int>(a.u64("format code", kNumFormats - 1));
  const int dtype = a.floatDtype();
  const uint64_t R = a.u64("R"), C = a.u64("C");
  const int flags = static_cast<int>(a.u64("flags", 5));
  const bool tiled = flags & 4;
  if (tiled && !(isMx(f) || f == kNvfp4)) fail(env, "INVALID_ARGUMENT", "Expected the tiled scale layout only for MX and NVFP4 formats but received " + fmtName(f));
  if (blockOf(f) && C % blockOf(f) != 0)
    fail(env, "SHAPE_MISMATCH", "Expected a stored row length divisible by " + std::to_string(blockOf(f)) + " for " + fmtName(f) + " but received " + std::to_string(C));
  if (f == kBlk128x128 && R % 128 != 0) fail(env, "SHAPE_MISMATCH", "Expected both dimensions divisible by 128 for fp8-block128x128 but received " + std::to_string(R) + " x " + std::to_string(C));
  if (C % 8 != 0) fail(env, "SHAPE_MISMATCH", "Expected a stored row length divisible by 8 for dequantize but received " + std::to_string(C));
  const bool global = isTensorwise(f) || f == kNvfp4;
  DArgs d{};
  d.R = R, d.C = C, d.transpose = flags & 1, d.tiled = tiled;
  d.data = static_cast<const uint8_t*>(a.dev(codeBytes(f, R, C), 1, "dequantize data"));
  const uint64_t sb = scaleBytes(f, R, C, tiled);
  d.scales = static_cast<const uint8_t*>(sb ? a.dev(sb, 1, "dequantize scales") : a.optDev(0, 1, "dequantize scales"));
  d.globalScale = static_cast<const float*>(global ? a.dev(1, 4, "dequantize globalScale") : a.optDev(1, 4, "dequantize globalScale"));
  d.out = a.dev(R * C, dtypeBytes(dtype), "dequantize out");
  if (reinterpret_cast<uintptr_t>(d.out) % 16 != 0 || reinterpret_cast<uintptr_t>(d.data) % 8 != 0)
    fail(env, "INVALID_ARGUMENT", "Expected dequantize's out aligned to 16 bytes and data to 8");
  a.end();
  if (R * C == 0) return env.Undefined();
  dispatchFormat(env, f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    DW_DISPATCH_FLOAT(env, dtype, T, dequantizeK<T, F><<<blocksFor(R * C / 8), 256, 0, s>>>(d));
  });
  checkLaunch(env, "dequantize");
  return env.Undefined();
}

__device__ float g_fakeQuantAmax;
void* g_fakeQuantAmaxAddr[64];

// The arguments fakeQuant and quantStats share: (stream, fmt, scaleMode, dtype, outer, len, inner,
// x), x viewed as [outer, len, inner] with whole blocks along len (and 128 x 128 tiles of [len, inner]).
struct BlockedCall {
  cudaStream_t s;
  int f, rceil, dtype, B;
  uint64_t outer, len, inner, n;
  const void* x;
};

BlockedCall blockedArgs(Args& a, const char* fn) {
  Napi::Env env = a.env();
  BlockedCall c{};
  c.s = a.stream();
  c.f = static_cast<int>(a.u64("format code", kNumFormats - 1));
  c.rceil = static_cast<int>(a.u64("scaleMode (0 floor, 1 rceil)", 1));
  c.dtype = a.floatDtype();
  c.outer = a.u64("outer"), c.len = a.u64("len"), c.inner = a.u64("inner");
  c.n = c.outer * c.len * c.inner;
  c.B = blockOf(c.f);
  if (c.B && c.len % c.B != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected a length along the axis divisible by ") + std::to_string(c.B) + " for " + fmtName(c.f) + " but received " + std::to_string(c.len));
  if (c.f == kBlk128x128 && c.inner % 128 != 0)
    fail(env, "SHAPE_MISMATCH", "Expected both of the last two dimensions divisible by 128 for fp8-block128x128 but received " + std::to_string(c.len) + " x " + std::to_string(c.inner));
  c.x = a.dev(c.n, dtypeBytes(c.dtype), (std::string(fn) + " x").c_str());
  return c;
}

// Tensorwise FP8 and NVFP4: the tensor amax, reduced into a device scratch word first (else null).
float* tensorAmaxFirst(Napi::Env env, const BlockedCall& c) {
  if (c.n == 0 || !(isTensorwise(c.f) || c.f == kNvfp4)) return nullptr;
  float* amax = static_cast<float*>(deviceSymbol(env, g_fakeQuantAmax, g_fakeQuantAmaxAddr, "g_fakeQuantAmax"));
  DW_DISPATCH_FLOAT(env, c.dtype, T, launchAmax<T>(c.s, c.x, c.n, amax));
  return amax;
}

Napi::Value FakeQuant(const Napi::CallbackInfo& info) {
  Args a(info, "fakeQuant");
  Napi::Env env = a.env();
  const BlockedCall c = blockedArgs(a, "fakeQuant");
  void* y = a.dev(c.n, dtypeBytes(c.dtype), "fakeQuant y");
  a.end();
  if (c.n == 0) return env.Undefined();
  const cudaStream_t s = c.s;
  const int dtype = c.dtype, B = c.B, rceil = c.rceil;
  const uint64_t outer = c.outer, len = c.len, inner = c.inner, n = c.n;
  const void* x = c.x;
  float* amax = tensorAmaxFirst(env, c);
  dispatchFormat(env, c.f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    DW_DISPATCH_FLOAT(env, dtype, T, {
      if constexpr (F == kBlk128x128) {
        const uint64_t tiles = outer * (len / 128) * (inner / 128);
        if (tiles > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 tiles for fakeQuant");
        fakeQuantTileK<T><<<static_cast<unsigned>(tiles), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), len, inner);
      } else {
        const uint64_t work = B ? n / B : n;
        fakeQuantK<T, F><<<blocksFor(work), 256, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), outer, len, inner, amax, rceil);
      }
    });
  });
  checkLaunch(env, "fakeQuant");
  return env.Undefined();
}

Napi::Value QuantStats(const Napi::CallbackInfo& info) {
  Args a(info, "quantStats");
  Napi::Env env = a.env();
  const BlockedCall c = blockedArgs(a, "quantStats");
  float* out = static_cast<float*>(a.dev(6, 4, "quantStats stats"));
  a.end();
  const cudaStream_t s = c.s;
  const int dtype = c.dtype, B = c.B, rceil = c.rceil;
  const uint64_t outer = c.outer, len = c.len, inner = c.inner, n = c.n;
  const void* x = c.x;
  StatsAcc* acc = static_cast<StatsAcc*>(deviceSymbol(env, g_statsAcc, g_statsAccAddr, "g_statsAcc"));
  DW_CUDA(env, cudaMemsetAsync(acc, 0, sizeof(StatsAcc), s), "cudaMemsetAsync (quantStats)");
  DW_CUDA(env, cudaMemsetAsync(&acc->sMin, 0xff, sizeof(acc->sMin), s), "cudaMemsetAsync (quantStats)");
  float* amax = tensorAmaxFirst(env, c);
  dispatchFormat(env, c.f, [&](auto fc) {
    constexpr int F = decltype(fc)::value;
    if (n) {
      DW_DISPATCH_FLOAT(env, dtype, T, {
        if constexpr (F == kBlk128x128) {
          const uint64_t tiles = outer * (len / 128) * (inner / 128);
          if (tiles > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 - 1 tiles for quantStats");
          statsTileK<T><<<static_cast<unsigned>(tiles), 256, 0, s>>>(static_cast<const T*>(x), len, inner, acc);
        } else {
          statsK<T, F><<<blocksFor(B ? n / B : n), 256, 0, s>>>(static_cast<const T*>(x), outer, len, inner, amax, rceil, acc);
        }
      });
    }
    statsFinishK<F><<<1, 1, 0, s>>>(acc, n ? n : 1, out);
  });
  checkLaunch(env, "quantStats");
  return env.Undefined();
}

}  // namespace

void initQuant(Napi::Env env, Napi::Object exports) {
  def(env, exports, "quantAmax", QuantAmax);
  def(env, exports, "quantize", Quantize);
  def(env, exports, "dequantize", Dequantize);
  def(env, exports, "fakeQuant", FakeQuant);
  def(env, exports, "quantStats", QuantStats);
}

}  // namespace dw

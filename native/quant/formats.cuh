// The quantization formats (see quant.cpp for the codes): their facts, the element codecs, the
// block scales and the storage helpers shared by the family's kernels, and the host-side format
// dispatch and size rules.
#pragma once
#include "common/abi/codes.gen.h"
#include "common/dtype.h"
#include "common/launch.h"
#include "common/scale_tiles.h"

#include <cuda_fp8.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

namespace dw::quant {

// The format codes are the ABI's (abi::format, generated from the ABI table).
enum QFmt : int {
  kMxE4M3 = abi::format::mxfp8_e4m3,
  kMxE5M2 = abi::format::mxfp8_e5m2,
  kMxFp4 = abi::format::mxfp4,
  kNvfp4 = abi::format::nvfp4,
  kTwE4M3 = abi::format::fp8_e4m3,
  kTwE5M2 = abi::format::fp8_e5m2,
  kBlk1x128 = abi::format::fp8_block1x128,
  kBlk128x128 = abi::format::fp8_block128x128,
  kNumFormats = abi::format::kCount,
};

// quantize's flags (dequantize takes kGemmLayout too), the ABI's (abi::quant_flags). kGemmLayout:
// the scales in the layout the format's GEMM reads (gemmScaleIndex / blockFp8Index below), not
// the plain row-major one; MX / NVFP4 and blockwise FP8 have one, tensorwise FP8 none.
constexpr int kRowwise = abi::quant_flags::rowwise, kColumnwise = abi::quant_flags::columnwise, kGemmLayout = abi::quant_flags::gemm;

// Host and device facts of a format.
__host__ __device__ constexpr bool isMx(int f) { return f == kMxE4M3 || f == kMxE5M2 || f == kMxFp4; }
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

// How a block of values turns into codes, once its scale is known: v -> code(f32(v * mul)) or
// code(f32(v / div)), or all zeros (`zero`). `scaleCode` is what the scale array stores (a code
// for MX / NVFP4; for blockwise FP8 the FP32 scale in `scaleF`). FP8 (tensorwise and blockwise)
// multiplies and keeps its decode scale in `div` (not used to divide).
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

// Tensorwise and blockwise FP8, as torchao's dynamic scaling (precision's fp8Scaling): the
// multiplier m = f32(max / amax) (FLT_MAX where that overflows, 1 for an all-zero amax), codes of
// f32(v * m), and the decode scale s = f32(1 / m) in div and scaleF. One multiplication per
// element: with a correctly rounded division per element the tensorwise register path was
// compute-bound on the H200 (0.62 ms for a 16384² bf16 tensor, both directions, against MXFP8's 0.30).
template <int F>
__device__ __forceinline__ BlockScale fp8Scale(float amax) {
  BlockScale s;
  float m = amax == 0.f ? 1.f : __fdiv_rn(elemMax(F), amax);
  if (isinf(m)) m = FLT_MAX;
  s.mul = m;
  s.div = __frcp_rn(m);
  s.scaleF = s.div;
  return s;
}

template <int F>
__device__ __forceinline__ uint8_t encode(float v, const BlockScale& s) {
  if (s.zero) return 0;
  return encElem<F>(s.useDiv ? __fdiv_rn(v, s.div) : __fmul_rn(v, s.mul));
}

// The tensor-level scale (tensorwise: the decode scale s; NVFP4: g) from the tensor amax.
template <int F>
__device__ __forceinline__ float tensorScale(float amax) {
  if constexpr (F == kNvfp4) {
    // For amax > 0, at least 2^-149 (the smallest positive float32): amax / 2688 underflows to 0
    // below about 3.9e-42 and would zero every element (the CPU reference's NVFP4_MIN_G, issue 20).
    const float g = __fdiv_rn(amax, 448.f * 6.f);
    return amax > 0.f && g < __int_as_float(1) ? __int_as_float(1) : g;
  }
  else return fp8Scale<F>(amax).div;
}

// Index of scale (r, c) of a [*, nCols] scale matrix in cuBLASLt's 128 x 4 tiled layout (the GEMM
// layout of MX and NVFP4 scale codes; zero padding): common/scale_tiles.h, which the GEMMs read by.
__device__ __forceinline__ uint64_t tiledIndex(uint64_t r, uint64_t c, uint64_t nCols) { return tiledIndex128x4(r, c, nCols); }

// K-blocks of a blockwise-FP8 128 x 128 scale row in the GEMM layout: L rounded up to 4.
__host__ __device__ constexpr uint64_t roundUp4(uint64_t L) { return (L + 3) / 4 * 4; }

// Index of blockwise-FP8 scale (r, kb) of a stored [R, K] matrix (blocks along K, L = K / 128
// K-blocks; r is the row for 1 x 128, the row block for 128 x 128). Plain: row-major [*, L], r · L
// + kb. The GEMM layout (cuBLASLt's VEC128_32F / BLK128x128_32F, gemm/gemm_scaled.cpp): 1 x 128
// f32 [L, R], kb · R + r; 128 x 128 f32 [ceil(R / 128), L4], r · L4 + kb, L4 = roundUp4(L), the
// padding columns [L, L4) written as 0 by the quantizer.
template <int F>
__host__ __device__ __forceinline__ uint64_t blockFp8Index(uint64_t r, uint64_t kb, uint64_t R, uint64_t L, bool gemm) {
  static_assert(F == kBlk1x128 || F == kBlk128x128, "blockwise FP8 only");
  if (!gemm) return r * L + kb;
  if constexpr (F == kBlk1x128) return kb * R + r;
  else return r * roundUp4(L) + kb;
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
    default: fail(env, "INVALID_ARGUMENT", "Expected a format code in [0, " + std::to_string(kNumFormats - 1) + "] but received " + std::to_string(f));
  }
}

// The format's name in messages (the ABI table's name of its code).
inline std::string fmtName(int f) {
  switch (f) {
    case kMxE4M3: return "mxfp8-e4m3";
    case kMxE5M2: return "mxfp8-e5m2";
    case kMxFp4: return "mxfp4";
    case kNvfp4: return "nvfp4";
    case kTwE4M3: return "fp8-e4m3";
    case kTwE5M2: return "fp8-e5m2";
    case kBlk1x128: return "fp8-block1x128";
    case kBlk128x128: return "fp8-block128x128";
    default: return "?";
  }
}

// Bytes of a [R, C] matrix of codes.
inline uint64_t codeBytes(int f, uint64_t R, uint64_t C) { return isFp4(f) ? R * C / 2 : R * C; }

// Bytes of the scales of a stored [R, C] matrix (blocks along C), plain or in the GEMM layout
// (`gemm`: MX / NVFP4 128 x 4 tiles; blockwise FP8 128 x 128 with the K-blocks padded to 4).
inline uint64_t scaleBytes(int f, uint64_t R, uint64_t C, bool gemm) {
  if (isTensorwise(f)) return 0;
  if (f == kBlk1x128) return R * (C / 128) * 4;
  const uint64_t L = (C + 127) / 128;
  if (f == kBlk128x128) return ((R + 127) / 128) * (gemm ? roundUp4(L) : L) * 4;
  const uint64_t n = C / blockOf(f);
  return gemm ? ((R + 127) / 128) * ((n + 3) / 4) * 512 : R * n;
}

// The GEMM layout's refusal: tensorwise FP8 has one scale and no layout to choose.
inline void checkGemmLayout(Napi::Env env, int f, int flags, const char* fn) {
  if ((flags & kGemmLayout) && isTensorwise(f))
    fail(env, "INVALID_ARGUMENT", std::string("Expected flags without 4 (the GEMM scale layout) for ") + fmtName(f) + " (one tensor scale: no layout) in " + fn +
                                      " but received " + std::to_string(flags));
}

// The shape rules of a direction: the blocks' axis a whole number of blocks, 8-element chunks.
inline void checkDirection(Napi::Env env, int f, uint64_t R, uint64_t C, const char* dir) {
  const int B = blockOf(f);
  const uint64_t along = B ? static_cast<uint64_t>(B) : 8;
  if (C % along != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected a length along the blocks divisible by ") + std::to_string(along) + " for " + fmtName(f) + " (" + dir +
                                    ") but received " + std::to_string(C));
  if (f == kBlk128x128 && R % 128 != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected both dimensions divisible by 128 for fp8-block128x128 but received ") + std::to_string(R) + " x " + std::to_string(C));
}

}  // namespace dw::quant

// What quantize.cu (the tile kernels) and quantize_mx8.cu (the MXFP8-from-16-bit fast path) share:
// the kernel arguments, the CTA size, the paired FP8 conversion and the launch of persistent CTAs.
#pragma once
#include "quant/formats.cuh"

namespace dw::quant {

constexpr int kQThreads = 256, kTileC = 128;

struct QArgs {
  const void* x;
  const float* amax;
  uint8_t *rowData, *rowScales, *colData, *colScales;
  float* globalScale;
  uint64_t rows, cols;
  int rceil, gemm;  // gemm: scales in the GEMM layout (kGemmLayout)
  uint8_t *rowScratch, *colScratch;  // quantizeMx8K with plain scales: the staged scale tiles (the call's workspace)
};

// FP8 codes of 2 already-scaled values (a in the low byte), saturating: the paired hardware
// conversion.
template <int F>
__device__ __forceinline__ uint32_t cvt2(float a, float b) {
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, isE5M2(F) ? __NV_E5M2 : __NV_E4M3);
}

// Scale (r, c) of a stored matrix's [nRows, nCols] scale matrix (r a row, or a row block for
// 128 x 128; c a block along the row), where `gemm` says: plain row-major, or the GEMM layout.
template <int F>
__device__ __forceinline__ void storeScale(uint8_t* base, uint64_t r, uint64_t c, uint64_t nRows, uint64_t nCols, const BlockScale& s, int gemm) {
  if constexpr (f32Scales(F)) reinterpret_cast<float*>(base)[blockFp8Index<F>(r, c, nRows, nCols, gemm)] = s.scaleF;
  else base[gemm ? tiledIndex(r, c, nCols) : r * nCols + c] = s.scaleCode;
}

// 128 x 128 tiles in the GEMM layout: the padding columns [L, L4) of scale row rb, written as 0
// by the tile of the last K-block, so every scale byte is written once and no memset runs.
__device__ __forceinline__ void zeroBlockPadding(uint8_t* base, uint64_t rb, uint64_t L) {
  float* row = reinterpret_cast<float*>(base) + rb * roundUp4(L);
  for (uint64_t kb = L; kb < roundUp4(L); ++kb) row[kb] = 0.f;
}

// As many CTAs as fit on the GPU at once, at most `ctas`, or (`spread`) about two tiles per CTA
// where that is more; the kernel takes `n` tiles, CTA b tiles b, b + grid, ...
template <typename K>
void launchTiles(Napi::Env env, cudaStream_t s, K kernel, size_t smem, const QArgs& q, uint64_t ctas, uint64_t n, bool spread = false) {
  DW_CUDA(env, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)), "cudaFuncSetAttribute (quantize)");
  int dev = 0, sms = 0, perSm = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  DW_CUDA(env, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute (SM count)");
  DW_CUDA(env, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kQThreads, smem), "cudaOccupancyMaxActiveBlocksPerMultiprocessor (quantize)");
  const uint64_t fit = static_cast<uint64_t>(sms) * static_cast<uint64_t>(perSm > 0 ? perSm : 1);
  const uint64_t resident = ctas < fit ? ctas : fit, grid = spread && (n + 1) / 2 > resident ? (n + 1) / 2 : resident;
  kernel<<<static_cast<unsigned>(grid), kQThreads, smem, s>>>(q, n);
}

// quantize_mx8.cu: MXFP8 (F: kMxE4M3 or kMxE5M2), tensorwise FP8 (kTwE4M3, kTwE5M2) and blockwise
// FP8 (kBlk1x128, kBlk128x128; rows and cols multiples of 128) from bf16 / f16 (T) with
// quantizeMx8K; rowwise, columnwise or both. Instantiated for those twelve (T, F).
template <typename T, int F>
void launchQuantizeMx8(Napi::Env env, cudaStream_t s, const QArgs& q, bool row, bool col);

// quantize_mx8.cu: the plain scale matrices of a launchQuantizeMx8 call from the staged scales in
// q.rowScratch / q.colScratch (a programmatic dependent launch on the same stream).
void launchScalesFromScratch(Napi::Env env, cudaStream_t s, const QArgs& q);

}  // namespace dw::quant

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

// quantize_mx8.cu: MXFP8 (F: kMxE4M3 or kMxE5M2) and tensorwise FP8 (kTwE4M3, kTwE5M2) from
// bf16 / f16 (T) with quantizeMx8K; rowwise, columnwise or both. Instantiated for those eight (T, F).
template <typename T, int F>
void launchQuantizeMx8(Napi::Env env, cudaStream_t s, const QArgs& q, bool row, bool col);

// quantize_mx8.cu: the plain scale matrices of a launchQuantizeMx8 call from the staged scales in
// q.rowScratch / q.colScratch (a programmatic dependent launch on the same stream).
void launchScalesFromScratch(Napi::Env env, cudaStream_t s, const QArgs& q);

}  // namespace dw::quant

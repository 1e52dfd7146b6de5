// cuTensorMapEncodeTiled, the host half of TMA, for the Hopper attention kernels (flash_fwd_sm90.cuh,
// flash_bwd_sm90.cuh): the addon links only cudart, so the driver function is looked up through the
// runtime once and cached; null when the driver does not have it. And the one map both kernels build:
// a 4-D (d, s, head, batch) view of a strided q, k, v or dout.
#pragma once
#include <cuda.h>  // CUtensorMap and the encode function's types only
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/flash_params.h"

namespace dw {
namespace attention {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                   const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled from the driver, found through the runtime (the addon links only cudart).
inline EncodeTiledFn encodeTiledFn() {
  static const EncodeTiledFn fn = []() -> EncodeTiledFn {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess) p = nullptr;
#else
    if (cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q) != cudaSuccess) p = nullptr;
#endif
    return q == cudaDriverEntryPointSuccess ? reinterpret_cast<EncodeTiledFn>(p) : nullptr;
  }();
  return fn;
}

// A 4-D map (d, s, head, batch) over a strided 16-bit tensor, box (64, rows, 1, 1), 128-byte swizzle,
// out-of-range rows read as zero (TMA zero-fills them). False when TMA cannot describe it.
inline bool makeHeadMap(CUtensorMap* map, CUtensorMapDataType dt, const void* ptr, int D, int S, int heads, int B, Stride3 st, int rows) {
  const EncodeTiledFn enc = encodeTiledFn();
  if (enc == nullptr || ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return false;
  const int64_t dims[3] = {S, heads, B}, strides[3] = {st.s, st.h, st.b};
  int64_t span = int64_t(D) * 2;  // a dimension of extent 1 is never stepped: any legal stride past the rest
  for (int i = 0; i < 3; ++i)
    if (dims[i] > 1 && strides[i] > 0 && strides[i] * 2 * dims[i] > span) span = strides[i] * 2 * dims[i];
  span = (span + 15) / 16 * 16;
  cuuint64_t gdim[4] = {cuuint64_t(D), cuuint64_t(S), cuuint64_t(heads), cuuint64_t(B)};
  cuuint64_t gstride[3];
  for (int i = 0; i < 3; ++i) {
    const int64_t bytes = dims[i] > 1 ? strides[i] * 2 : span;
    if (bytes <= 0 || bytes % 16 != 0 || bytes >= (int64_t(1) << 40)) return false;
    gstride[i] = cuuint64_t(bytes);
  }
  cuuint32_t box[4] = {64, cuuint32_t(rows), 1, 1}, estride[4] = {1, 1, 1, 1};
  return enc(map, dt, 4, const_cast<void*>(ptr), gdim, gstride, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace attention
}  // namespace dw

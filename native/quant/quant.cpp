// The quantization family: amax (amax.cu), fused quantize (rowwise, columnwise-transposed, or both
// from one read of the input: quantize.cu, with the MXFP8-from-16-bit fast path in
// quantize_mx8.cu), dequantize (dequantize.cu), fake-quantize (fake_quant.cu) and its statistics
// (quant_stats.cu), for every format of @deepwell/precision. Each is bit-identical to that
// package's TypeScript reference (packages/precision/src/{blocks,quantize,layout}.ts), whose
// comments define the formats; the CUDA candidates and the Tensor API that call these are
// packages/precision/src/cuda/.
//
// Format codes (fmt):
//   0 mxfp8-e4m3   1 mxfp8-e5m2   2 mxfp4        blocks of 32, E8M0 scales ('floor' or 'rceil')
//   3 nvfp4                                      blocks of 16, E4M3 scales, FP32 tensor scale g
//   4 fp8-e4m3     5 fp8-e5m2                    tensorwise: one FP32 scale s = 1 / (max / amax)
//   6 fp8-block1x128   7 fp8-block128x128        E4M3, FP32 scale per block / per 128 x 128 tile
//
// Arithmetic follows the references operation by operation: MX scales come from the exponent bits
// (no rounded division decides them), V / X is an exact multiplication by a power of two, the
// NVFP4 scale and element divisions are correctly rounded FP32 divisions (__fdiv_rn), and FP8
// (tensorwise, blockwise) multiplies each element by m = f32(max / amax) (__fmul_rn) with the
// decode scale f32(1 / m) (__frcp_rn), as torchao's dynamic scaling does. E4M3
// and E5M2 elements are rounded by the hardware conversion (cvt.rn.satfinite: nearest even,
// saturating), with NaN handled before it; E2M1 by comparisons with its rounding boundaries.
//
// Entry points read their arguments through their generated readers (abi::read<Name>,
// common/abi/quant.gen.h: count, kinds, ranges and the format / scaleMode / dtype codes); tensors
// are (base, offset), an unused one (0, 0); each file's header lists its entry points. The format
// codes and the quantize flags are the generated abi::format / abi::quant_flags constants
// (common/abi/codes.gen.h). Formats, element codecs and block scales are in formats.cuh. This file
// registers the entry points.
#include "quant/quant.h"

namespace dw {

void initQuant(Napi::Env env, Napi::Object exports) {
  using namespace quant;
  DW_ABI_QUANT_ENTRIES(DW_DEF_ENTRY)
}

}  // namespace dw

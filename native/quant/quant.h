// The quantization family's entry points, as X(exported name, function in dw::quant) in
// registration order, each defined in the file named beside it; quant.cpp registers them and
// describes the formats.
#pragma once
#include "runtime/common.h"

#include <cstdint>

#define DW_QUANT_ENTRY_POINTS(X)                   \
  X("quantAmax", QuantAmax)   /* amax.cu */        \
  X("quantize", Quantize)     /* quantize.cu */    \
  X("dequantize", Dequantize) /* dequantize.cu */  \
  X("fakeQuant", FakeQuant)   /* fake_quant.cu */  \
  X("quantStats", QuantStats) /* quant_stats.cu */

namespace dw::quant {

DW_QUANT_ENTRY_POINTS(DW_DECLARE_ENTRY)

// amax.cu: out (f32[1], on the device) = the largest finite |x| of n elements of float storage
// `dtype` (zeroed first, then one atomic max per block); fakeQuant and quantStats' tensor amax. The
// caller checks the launch.
void launchAmax(Napi::Env env, cudaStream_t s, int dtype, const void* x, uint64_t n, float* out);

}  // namespace dw::quant

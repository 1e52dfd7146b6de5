// The quantization family's entry points: DW_ABI_QUANT_ENTRIES (common/abi/quant.gen.h, generated
// from the ABI table) lists them as X(exported name, function in dw::quant) in registration order;
// quantAmax is defined in amax.cu, quantize in quantize.cu, dequantize in dequantize.cu, fakeQuant
// in fake_quant.cu, quantStats in quant_stats.cu. quant.cpp registers them and describes the
// formats.
#pragma once
#include "common/abi/quant.gen.h"
#include "runtime/common.h"

#include <cstdint>

namespace dw::quant {

DW_ABI_QUANT_ENTRIES(DW_DECLARE_ENTRY)

// amax.cu: out (f32[1], on the device) = the largest finite |x| of n elements of float storage
// `dtype` (zeroed first, then one atomic max per block); fakeQuant and quantStats' tensor amax. The
// caller checks the launch.
void launchAmax(Napi::Env env, cudaStream_t s, int dtype, const void* x, uint64_t n, float* out);

}  // namespace dw::quant

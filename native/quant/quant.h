// The quantization family's entry points (one file each under native/quant/; quant.cpp registers
// them and describes the formats), and host launchers one file of the family uses from another.
#pragma once
#include "runtime/common.h"

#include <cstdint>

namespace dw::quant {

Napi::Value QuantAmax(const Napi::CallbackInfo& info);    // amax.cu
Napi::Value Quantize(const Napi::CallbackInfo& info);     // quantize.cu
Napi::Value Dequantize(const Napi::CallbackInfo& info);   // dequantize.cu
Napi::Value FakeQuant(const Napi::CallbackInfo& info);    // fake_quant.cu
Napi::Value QuantStats(const Napi::CallbackInfo& info);   // quant_stats.cu

// amax.cu: out (f32[1], on the device) = the largest finite |x| of n elements of float storage
// `dtype` (zeroed first, then one atomic max per block). The caller checks the launch.
void launchAmax(Napi::Env env, cudaStream_t s, int dtype, const void* x, uint64_t n, float* out);

}  // namespace dw::quant

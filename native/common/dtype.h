// Storage dtypes of every op kernel (native/ops/, native/quant/, native/gemm/), so the TypeScript
// side (packages/ir/src/cuda/) can call them uniformly:
//
//   - Storage dtypes are codes (the ABI table's, common/abi/codes.gen.h): f32, bf16, f16, i32.
//     Arithmetic is always FP32; bf16/f16 are converted on load and rounded to nearest even on store.
//
// This header holds the codes, the FP32 <-> storage conversions used by the kernels and the
// dispatch from a code to its storage type.
#pragma once
#include "common/abi/codes.gen.h"
#include "runtime/common.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

namespace dw {

enum DType : int { kF32 = abi::dtype::f32, kBF16 = abi::dtype::bf16, kF16 = abi::dtype::f16, kI32 = abi::dtype::i32 };

inline size_t dtypeBytes(int d) { return d == kF32 || d == kI32 ? 4 : 2; }

// FP32 <-> storage conversions.
__device__ __forceinline__ float toF(float x) { return x; }
__device__ __forceinline__ float toF(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float toF(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T fromF(float x);
template <> __device__ __forceinline__ float fromF<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half fromF<__half>(float x) { return __float2half_rn(x); }

// One element of float storage `code` at p, read on the device (an lr, a step count, a loss
// gradient: device-side scalars, so graph replays see new values).
__device__ __forceinline__ float loadScalar(const void* p, int code) {
  switch (code) {
    case kF32: return *static_cast<const float*>(p);
    case kBF16: return __bfloat162float(*static_cast<const __nv_bfloat16*>(p));
    case kF16: return __half2float(*static_cast<const __half*>(p));
    default: return NAN;
  }
}

// Runs `body` with T bound to the storage type of a float dtype code.
#define DW_DISPATCH_FLOAT(env, dtype, T, ...)                                              \
  switch (dtype) {                                                                         \
    case ::dw::kF32: { using T = float; __VA_ARGS__; break; }                              \
    case ::dw::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }                     \
    case ::dw::kF16: { using T = __half; __VA_ARGS__; break; }                             \
    default: ::dw::fail(env, "INVALID_DTYPE", "Expected a float dtype code (0 f32, 1 bf16, 2 f16) for this kernel"); \
  }

}  // namespace dw

// cast (tensor family; see tensor.cpp).
//
//   cast(stream, fromDtype, toDtype, n, x, out, amax)       any of f32, bf16, f16, i32 to any
//       amax (optional f32[1], float dtypes only): the largest finite |out| as stored, reduced as
//       out is written (common/amax.cuh), for the FP8 quantizer of a weight's bf16 copy.
//
// As packages/ir/src/ops/cast.ts: to bf16/f16 round to nearest even from the value as f32 (i32
// first rounds to the nearest f32); to f32 from i32 the nearest f32; to i32 from a float truncation
// toward zero, saturating, NaN to 0; the same dtype is a copy.
#include "ops/tensor/tensor.h"

#include "common/amax.cuh"
#include "common/launch.h"
#include "ops/tensor/tensor_common.cuh"

#include <type_traits>

namespace dw::tensor {
namespace {

template <typename To>
__device__ __forceinline__ To castFromFloat(float v) {
  if constexpr (std::is_same_v<To, int32_t>) {
    if (isnan(v)) return 0;
    if (v >= 2147483648.f) return 2147483647;
    if (v <= -2147483648.f) return -2147483647 - 1;
    return static_cast<int32_t>(v);  // truncates toward zero
  } else {
    return fromF<To>(v);
  }
}

template <typename From>
__device__ __forceinline__ float castToFloat(From v) {
  if constexpr (std::is_same_v<From, int32_t>) return __int2float_rn(v);
  else return toF(v);
}

template <typename From, typename To, bool AMAX>
__global__ void __launch_bounds__(kThreads) castKernel(To* out, const From* x, uint64_t n, float* amax) {
  float m = 0.f;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x) {
    const To r = castFromFloat<To>(castToFloat<From>(x[i]));
    out[i] = r;
    if constexpr (AMAX) m = fmaxf(m, finiteAbs(toF(r)));
  }
  if constexpr (AMAX) blockAmaxAtomic(m, amax);
}

#define DW_DISPATCH_ANY(env, dtype, T, ...)                                   \
  switch (dtype) {                                                            \
    case ::dw::kF32: { using T = float; __VA_ARGS__; break; }                 \
    case ::dw::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }        \
    case ::dw::kF16: { using T = __half; __VA_ARGS__; break; }                \
    case ::dw::kI32: { using T = int32_t; __VA_ARGS__; break; }               \
    default: ::dw::fail(env, "INVALID_DTYPE", "Expected a dtype code 0..3"); \
  }

void castDevice(Napi::Env env, cudaStream_t s, int from, int to, uint64_t n, const void* x, void* out, float* amax) {
  if (amax && (from == kI32 || to == kI32)) fail(env, "INVALID_DTYPE", "Expected float dtypes for cast with an amax but received an i32 side");
  zeroAmax(env, amax, s);
  if (n == 0) return;
  if (from == to && !amax) {
    if (x != out) DW_CUDA(env, cudaMemcpyAsync(out, x, n * dtypeBytes(from), cudaMemcpyDeviceToDevice, s), "cast: cudaMemcpyAsync");
    return;
  }
  if (amax) {
    DW_DISPATCH_FLOAT(env, from, F, {
      DW_DISPATCH_FLOAT(env, to, O, {
        castKernel<F, O, true><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<O*>(out), static_cast<const F*>(x), n, amax);
      });
    });
  } else {
    DW_DISPATCH_ANY(env, from, F, {
      DW_DISPATCH_ANY(env, to, O, {
        castKernel<F, O, false><<<gridFor(env, n, kThreads), kThreads, 0, s>>>(static_cast<O*>(out), static_cast<const F*>(x), n, nullptr);
      });
    });
  }
  checkLaunch(env, "cast");
}

}  // namespace

Napi::Value Cast(const Napi::CallbackInfo& info) {
  const abi::CastArgs a = abi::readCast(info);
  Napi::Env env = info.Env();
  const void* x = a.x.ptr<void>(env, a.n, dtypeBytes(a.from));
  void* out = a.out.ptr<void>(env, a.n, dtypeBytes(a.to));
  castDevice(env, a.stream, a.from, a.to, a.n, x, out, a.amax.optPtr<float>(env, 1));
  return env.Undefined();
}

}  // namespace dw::tensor

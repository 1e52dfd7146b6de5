// The activation functions of the elementwise kernels (ops/tensor/elementwise.cu) and of the grouped
// GEMM's epilogues (gemm/grouped_gemm.cu, gemm/grouped_gemm_sm90.cuh), in FP32, one definition so a
// fused epilogue computes exactly what the unfused kernel does. The tanh GELU of GPT-2 and PyTorch's
// approximate='tanh'; SiLU x·sigmoid(x).
#pragma once

namespace dw {

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluK = 0.044715f;

// gelu(x) = 0.5 x (1 + tanh(u)) = x sigmoid(2u) = x / (1 + exp(-2u)),  u = c (x + k x^3).
// exp overflowing to inf gives x * 0 = -0 for very negative x; x = -inf gives NaN as the
// reference does (-inf * 0).
__device__ __forceinline__ float geluF(float x) {
  float u = kGeluC * fmaf(kGeluK * x * x, x, x);
  return __fdividef(x, 1.f + __expf(-2.f * u));
}

// gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2) with t = tanh(u); with s = sigmoid(2u):
// 0.5 (1 + t) = s and 1 - t^2 = 4 s (1 - s), so gelu'(x) = s (1 + 2c x (1 - s)(1 + 3k x^2)).
// 1 - s = e s with e = exp(-2u) (no cancellation). x is clamped to [-10, 10] for the derivative:
// beyond it gelu' is 0 or 1 to FP32 precision, and e stays finite (|2u| <= 87.3). Infinite x gives
// NaN and NaN stays NaN, as in the reference.
__device__ __forceinline__ float geluGradF(float x) {
  float xc = fabsf(x) > 10.f ? copysignf(10.f, x) : x;
  float x2 = xc * xc;
  float u = kGeluC * fmaf(kGeluK * x2, xc, xc);
  float e = __expf(-2.f * u);
  float s = __frcp_rn(1.f + e);
  float d = s * fmaf(2.f * kGeluC * xc * (e * s), fmaf(3.f * kGeluK, x2, 1.f), 1.f);
  return isinf(x) ? __int_as_float(0x7fc00000) : d;
}

// silu(x) = x sigmoid(x) = x / (1 + exp(-x)).
__device__ __forceinline__ float siluF(float x) { return __fdividef(x, 1.f + __expf(-x)); }

}  // namespace dw

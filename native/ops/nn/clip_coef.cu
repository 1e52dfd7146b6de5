// clip_coef (nn family; see nn.cpp).
//
//   clipCoef(stream, sumsq, coef, norm, maxNorm)       all f32[1]: norm = sqrt(sumsq),
//       coef = min(1, maxNorm / (norm + 1e-6)) (clipping by the global gradient norm)
#include "ops/nn/nn.h"

#include "common/launch.h"

#include <cmath>

namespace dw::nn {
namespace {

// clip_coef: one thread; sumsq, coef and norm are f32[1].
__global__ void clipCoefK(const float* sumsq, float* coef, float* norm, float maxNorm) {
  const float n = sqrtf(sumsq[0]);
  norm[0] = n;
  coef[0] = fminf(1.f, maxNorm / (n + 1e-6f));
}

}  // namespace

Napi::Value ClipCoef(const Napi::CallbackInfo& info) {
  const abi::ClipCoefArgs a = abi::readClipCoef(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const float* sumsq = a.sumsq.ptr<float>(env, 1);
  float* coef = a.coef.ptr<float>(env, 1);
  float* norm = a.norm.ptr<float>(env, 1);
  const double maxNorm = a.maxNorm;
  if (!(maxNorm > 0) || !std::isfinite(maxNorm)) fail(env, "INVALID_ARGUMENT", "Expected a positive finite maxNorm for clip_coef but received " + formatNumber(maxNorm));
  clipCoefK<<<1, 1, 0, s>>>(sumsq, coef, norm, static_cast<float>(maxNorm));
  checkLaunch(env, "clip_coef");
  return env.Undefined();
}

}  // namespace dw::nn

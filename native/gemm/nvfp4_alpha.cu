// NVFP4's alpha for scaledGemmLt (gemm/gemm_scaled.cpp): an NVFP4 GEMM is
// D = ga · gb · Σ_k (e2m1 · sa)(e2m1 · sb), ga and gb the operands' FP32 tensor scales, which live
// on the device (the quantize that made them ran on the stream before). cuBLASLt's VEC16_UE4M3 mode
// takes them through alpha, so one thread writes alpha = f32(ga · gb) and beta = 0 (16 bytes
// further) into the call's workspace on the call's stream, and the GEMM reads both in pointer mode
// DEVICE: no host round trip, and a captured CUDA graph replays the pair. Runs only where nv16 does
// (compute capability 10.0 or newer): compiled, never run on the project's own GPUs.
#include "common/launch.h"

namespace dw {
namespace {

__global__ void nvfp4AlphaK(const float* __restrict__ ga, const float* __restrict__ gb, float* __restrict__ alphaBeta) {
  alphaBeta[0] = __fmul_rn(ga[0], gb[0]);
  alphaBeta[4] = 0.f;
}

}  // namespace

void launchNvfp4Alpha(Napi::Env env, cudaStream_t s, const float* ga, const float* gb, float* alphaBeta) {
  nvfp4AlphaK<<<1, 1, 0, s>>>(ga, gb, alphaBeta);
  checkLaunch(env, "nvfp4Alpha");
}

}  // namespace dw

// The pipelined layernorm backward (ops/nn/layernorm_bwd.cu), launched by LayernormBackward
// (ops/nn/layernorm.cu) for the rows the register-row framework takes (reg_rows.cuh). Included by
// .cu files only (reg_rows.cuh is device code).
#pragma once
#include "common/abi_reader.h"
#include "ops/nn/reg_rows.cuh"

#include <cstdint>

namespace dw::nn {

// Launches layernormBwdPipeK for plan p (regPlan of the row's 16-byte chunks, regMaxChunks<T>()),
// its WIDE variant when `wide`: dx for every row, and one slice of 2 x D column partials per block (dweight's half first) taken
// from the call's workspace, *wsOut. Returns the number of slices (the grid), at most
// ceil(rows / groups) and kWsFloats / (2 D), so the workspace contract of layernorm_backward holds.
// T: float, __nv_bfloat16 or __half.
template <typename T>
unsigned launchLayernormBwdPipe(Napi::Env env, const RegPlan& p, cudaStream_t st, const abi::WorkspaceArg& wsArg, const T* g, const T* x, const T* w, const float* mean,
                                const float* rstd, const T* addend, T* dx, uint64_t rows, uint64_t D, bool wide, float** wsOut);

}  // namespace dw::nn

// flashForward / flashBackward: the fused attention kernels behind the fast candidates of the sdpa
// ops (@deepwell/attention-sparsek src/cuda/flash.ts). Same arguments as the general path's
// sdpaForward / sdpaBackward (sizes, tensors, element strides, workspace; see sdpa.cu), narrower
// reach: bf16 or f16, head dimension 64 or 128, 16-byte aligned rows (pointers 16-byte aligned,
// strides multiples of 8 elements). Anything else is a typed error: the TS candidate declines such
// calls first, so they go to the general path.
//
//   flashForward   on sm_90 the Hopper kernel (flash_fwd_sm90.cuh: TMA, wgmma, warp-specialized);
//                  elsewhere, or when its layout checks decline, the mma.sync kernel of
//                  flash_sm80.cuh (sm_80 and up; on sm_100 compiled, never run here)
//   flashBackward  on sm_90 the Hopper backward (flash_bwd_sm90.cuh: deterministic, dQ added in a
//                  fixed order), else flash_sm80.cuh's deterministic three-kernel backward.
//                  Workspace: delta (f32 [B, H, Sq]) at its start, then, 256-byte aligned, the Hopper
//                  backward's scratch (flashBackwardSm90Scratch). With less than that, or
//                  DEEPWELL_FLASH_BWD=sm80 in the environment (a switch for comparing the two), the
//                  sm80 backward runs.
//   flashBackwardWorkspace  the bytes of that workspace for a call's sizes on a device of a given
//                  compute capability (the scratch on 9.0 only): the one place the size is defined;
//                  the TS candidate declares what it answers.
#include "attention/checks.h"
#include "attention/flash_bwd_sm90.cuh"
#include "attention/flash_fwd_sm90.cuh"
#include "attention/flash_sm80.cuh"
#include "common/abi/attention.gen.h"
#include "common/dtype.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace dw {
namespace attention {
namespace {

void checkHeadDim(Napi::Env env, uint64_t D, const char* fn) {
  if (D != 64 && D != 128) fail(env, "INVALID_ARGUMENT", std::string("Expected a head dimension of 64 or 128 for ") + fn + " but received " + std::to_string(D));
}

template <typename A>
void checkFlash(Napi::Env env, const A& a, const char* fn) {
  const std::string f(fn);
  if (a.dtype != kBF16 && a.dtype != kF16) fail(env, "INVALID_DTYPE", "Expected bf16 or f16 (dtype code 1 or 2) for " + f + " but received dtype code " + std::to_string(a.dtype));
  checkHeadDim(env, a.D, fn);
  const uint64_t strides[9] = {a.qsb, a.qsh, a.qss, a.ksb, a.ksh, a.kss, a.osb, a.osh, a.oss};
  for (uint64_t s : strides)
    if (s % 8 != 0) fail(env, "INVALID_ARGUMENT", "Expected element strides that are multiples of 8 (16-byte rows) for " + f + " but received " + std::to_string(s));
}

void checkAligned(Napi::Env env, std::initializer_list<Span> tensors, const char* fn) {
  for (const Span& t : tensors)
    if (reinterpret_cast<uintptr_t>(t.p) % 16 != 0)
      fail(env, "INVALID_ARGUMENT", std::string("Expected ") + t.name + " of " + fn + " at a 16-byte aligned address");
}

Stride3 s3(uint64_t b, uint64_t h, uint64_t s) { return {static_cast<int64_t>(b), static_cast<int64_t>(h), static_cast<int64_t>(s)}; }

// A Hopper kernel's refusal (not this device, or a layout it does not take): the portable one runs.
bool declined(cudaError_t e) { return e == cudaErrorNotSupported || e == cudaErrorInvalidValue; }

template <typename T>
cudaError_t forward(const FlashFwdParams& p, cudaStream_t st) {
  const cudaError_t e = p.D == 128 ? flashForwardSm90<T, 128>(p, st) : flashForwardSm90<T, 64>(p, st);
  if (!declined(e)) return e;
  return p.D == 128 ? flashForwardSm80<T, 128>(p, st) : flashForwardSm80<T, 64>(p, st);
}

// Read once, at the first backward, not on every call.
bool sm80Forced() {
  static const bool forced = [] {
    const char* v = std::getenv("DEEPWELL_FLASH_BWD");
    return v != nullptr && std::strcmp(v, "sm80") == 0;
  }();
  return forced;
}

// Where the Hopper backward's scratch starts in the workspace: past delta, at a 256-byte boundary.
uint64_t scratchOffset(uint64_t B, uint64_t H, uint64_t Sq) { return bwd90::align256(flashBackwardWorkspaceBytes(int(B), int(H), int(Sq))); }

// scratch: the workspace past delta, `bytes` long (null when none).
template <typename T>
cudaError_t backward(const FlashBwdParams& p, void* scratch, uint64_t bytes, cudaStream_t st) {
  if (scratch != nullptr && !sm80Forced() && bytes >= flashBackwardSm90Scratch(p) && p.Sq > 0 && p.Sk > 0) {
    const cudaError_t e = p.D == 128 ? flashBackwardSm90<T, 128>(p, scratch, st) : flashBackwardSm90<T, 64>(p, scratch, st);
    if (!declined(e)) return e;
  }
  return p.D == 128 ? flashBackwardSm80<T, 128>(p, st) : flashBackwardSm80<T, 64>(p, st);
}

}  // namespace

Napi::Value FlashForward(const Napi::CallbackInfo& info) {
  const abi::FlashForwardArgs a = abi::readFlashForward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "flashForward", false);
  checkFlash(env, a, "flashForward");
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const FwdTensors<T> t = forwardTensors<T>(env, a, n, "flashForward");
    checkAligned(env, {{t.q, 0, "q"}, {t.k, 0, "k"}, {t.v, 0, "v"}, {t.out, 0, "out"}}, "flashForward");
    if (n.qRows == 0) return;
    const FlashFwdParams p{t.q, t.k, t.v, t.out, t.lse, s3(a.qsb, a.qsh, a.qss), s3(a.ksb, a.ksh, a.kss), s3(a.ksb, a.ksh, a.kss), s3(a.osb, a.osh, a.oss),
                           static_cast<int>(a.B), static_cast<int>(a.H), static_cast<int>(a.Hkv), static_cast<int>(a.Sq), static_cast<int>(a.Sk), static_cast<int>(a.D),
                           a.causal, n.scale};
    DW_CUDA(env, forward<T>(p, a.stream), "flashForward launch");
  };
  if (a.dtype == kBF16) run(__nv_bfloat16{});
  else run(__half{});
  return env.Undefined();
}

Napi::Value FlashBackward(const Napi::CallbackInfo& info) {
  const abi::FlashBackwardArgs a = abi::readFlashBackward(info);
  Napi::Env env = info.Env();
  const Dims n = dimsOf(env, a, "flashBackward", true);
  checkFlash(env, a, "flashBackward");
  const uint64_t deltaBytes = flashBackwardWorkspaceBytes(static_cast<int>(a.B), static_cast<int>(a.H), static_cast<int>(a.Sq));
  float* delta = a.workspace.take<float>(env, deltaBytes, 256);
  const uint64_t skip = scratchOffset(a.B, a.H, a.Sq);
  void* scratch = a.workspace.bytes > skip ? static_cast<char*>(a.workspace.data) + skip : nullptr;
  const uint64_t scratchBytes = a.workspace.bytes > skip ? a.workspace.bytes - skip : 0;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const BwdTensors<T> t = backwardTensors<T>(env, a, n, "flashBackward");
    checkAligned(env, {{t.dout, 0, "dout"}, {t.q, 0, "q"}, {t.k, 0, "k"}, {t.v, 0, "v"}, {t.out, 0, "out"}, {t.dq, 0, "dq"}, {t.dk, 0, "dk"}, {t.dv, 0, "dv"}},
                 "flashBackward");
    if (n.qRows == 0 && n.kRows == 0) return;
    const Stride3 qs = s3(a.qsb, a.qsh, a.qss), ks = s3(a.ksb, a.ksh, a.kss), os = s3(a.osb, a.osh, a.oss);
    const FlashBwdParams p{t.dout, t.q, t.k, t.v, t.out, t.lse, t.dq, t.dk, t.dv, delta, os, qs, ks, ks, os, qs, ks, ks,
                           static_cast<int>(a.B), static_cast<int>(a.H), static_cast<int>(a.Hkv), static_cast<int>(a.Sq), static_cast<int>(a.Sk), static_cast<int>(a.D),
                           a.causal, n.scale};
    DW_CUDA(env, backward<T>(p, scratch, scratchBytes, a.stream), "flashBackward launch");
  };
  if (a.dtype == kBF16) run(__nv_bfloat16{});
  else run(__half{});
  return env.Undefined();
}

Napi::Value FlashBackwardWorkspace(const Napi::CallbackInfo& info) {
  const abi::FlashBackwardWorkspaceArgs a = abi::readFlashBackwardWorkspace(info);
  Napi::Env env = info.Env();
  const char* fn = "flashBackwardWorkspace";
  checkSizes(env, a.B, a.H, a.Hkv, a.Sq, a.Sk, a.D, fn);
  checkHeadDim(env, a.D, fn);
  if (a.ccMajor < 8)
    fail(env, "INVALID_ARGUMENT", std::string("Expected a compute capability of 8.0 or newer for ") + fn + " (the flash kernels run from sm_80) but received " +
                                      std::to_string(a.ccMajor) + "." + std::to_string(a.ccMinor));
  // The largest piece, the Hopper dQ accumulator (f32 [B, H, SqPad, D], SqPad < Sq + 128), within
  // 2^53 - 1 elements: no size below overflows.
  mulSize(env, mulSize(env, a.B * a.H, a.Sq + 128, fn), a.D, fn);
  // The Hopper backward runs on 9.0 only, and only when there are keys (backward() above).
  const bool sm90 = a.ccMajor == 9 && a.ccMinor == 0 && a.Sk > 0;
  const uint64_t bytes = scratchOffset(a.B, a.H, a.Sq) + (sm90 ? flashBackwardSm90Scratch(int(a.B), int(a.H), int(a.Sq), int(a.D)) : 0);
  if (bytes > static_cast<uint64_t>(kMaxSafeInt))
    fail(env, "INVALID_ARGUMENT", std::string("Expected a workspace of at most 2^53 - 1 bytes for ") + fn + " but the sizes need " + std::to_string(bytes));
  return Napi::Number::New(env, static_cast<double>(bytes));
}

}  // namespace attention
}  // namespace dw

// Conventions every op kernel entry point follows (native/ops/*.cu), so the TypeScript side
// (packages/ir/src/cuda/) can call them uniformly:
//
//   - Storage dtypes are codes: 0 f32, 1 bf16, 2 f16, 3 i32. Arithmetic is always FP32; bf16/f16
//     are converted on load and rounded to nearest even on store.
//   - A tensor argument is two numbers, (allocation base, byte offset): the base must be a live
//     allocation of the caching allocator and [offset, offset + bytes) must lie inside it;
//     devArg() checks both and returns the typed pointer. Sizes come as plain integers.
//   - The stream is a handle from streamCreate (0 = the legacy default stream).
//   - Every launch is followed by a check of cudaGetLastError(); failures become DeepwellErrors.
#pragma once
#include "runtime/common.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace dw {

enum DType : int { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };

inline size_t dtypeBytes(int d) { return d == kF32 || d == kI32 ? 4 : 2; }

inline int dtypeArg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int>(u64Arg(info, i, "dtype code", 3));
}

// A typed device pointer from (base, offset) at info[i], info[i+1], holding `elems` elements of
// `elemBytes` each.
template <typename T>
T* devArg(const Napi::CallbackInfo& info, size_t i, uint64_t elems, size_t elemBytes, const char* name) {
  uint64_t base = u64Arg(info, i, name), off = u64Arg(info, i + 1, name);
  if (off % elemBytes != 0)
    fail(info.Env(), "INVALID_ARGUMENT", std::string("Expected an offset aligned to ") + std::to_string(elemBytes) + " bytes for " + name);
  return static_cast<T*>(deviceRange(info.Env(), base, off, elems * elemBytes, name));
}

inline cudaStream_t streamArg(const Napi::CallbackInfo& info, size_t i) {
  return streamFromHandle(info.Env(), u64Arg(info, i, "stream"));
}

inline void checkLaunch(Napi::Env env, const char* what) {
  DW_CUDA(env, cudaGetLastError(), std::string(what) + " launch");
}

// FP32 <-> storage conversions.
__device__ __forceinline__ float toF(float x) { return x; }
__device__ __forceinline__ float toF(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float toF(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T fromF(float x);
template <> __device__ __forceinline__ float fromF<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half fromF<__half>(float x) { return __float2half_rn(x); }

// Runs `body` with T bound to the storage type of a float dtype code.
#define DW_DISPATCH_FLOAT(env, dtype, T, ...)                                              \
  switch (dtype) {                                                                         \
    case ::dw::kF32: { using T = float; __VA_ARGS__; break; }                              \
    case ::dw::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }                     \
    case ::dw::kF16: { using T = __half; __VA_ARGS__; break; }                             \
    default: ::dw::fail(env, "INVALID_DTYPE", "Expected a float dtype code (0 f32, 1 bf16, 2 f16) for this kernel"); \
  }

// The device address of a __device__ variable on the current device, looked up once per device
// (`cache` is the caller's, one per variable).
template <typename S>
void* deviceSymbol(Napi::Env env, const S& symbol, void* (&cache)[64], const char* what) {
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  void* p = dev >= 0 && dev < 64 ? cache[dev] : nullptr;
  if (!p) {
    DW_CUDA(env, cudaGetSymbolAddress(&p, symbol), std::string("cudaGetSymbolAddress(") + what + ")");
    if (dev >= 0 && dev < 64) cache[dev] = p;
  }
  return p;
}

// Reads an entry point's arguments in order and checks the count at the end.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}
  Napi::Env env() const { return info_.Env(); }
  cudaStream_t stream() { return streamArg(info_, i_++); }
  int dtype() { return dtypeArg(info_, i_++); }
  int floatDtype() {
    int d = dtypeArg(info_, i_++);
    if (d == kI32)
      fail(env(), "INVALID_DTYPE", std::string("Expected a float dtype code (0 f32, 1 bf16, 2 f16) for ") + fn_ + " but received 3 (i32)");
    return d;
  }
  uint64_t u64(const char* name, double max = kMaxSafeInt) { return u64Arg(info_, i_++, name, max); }
  double f64(const char* name) {
    size_t i = i_++;
    if (i >= info_.Length() || !info_[i].IsNumber())
      fail(env(), "INVALID_ARGUMENT", std::string("Expected a number for ") + name + " of " + fn_ + " (argument " + std::to_string(i) + ")");
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  // A shape of `rank` dimensions.
  std::vector<uint64_t> shape(int rank, const char* name) {
    std::vector<uint64_t> s(rank);
    for (int d = 0; d < rank; ++d) s[d] = u64(name);
    return s;
  }
  void* dev(uint64_t elems, size_t elemBytes, const char* name) {
    void* p = devArg<void>(info_, i_, elems, elemBytes, name);
    i_ += 2;
    return p;
  }
  // A tensor the call may go without: (0, 0) gives nullptr.
  void* optDev(uint64_t elems, size_t elemBytes, const char* name) {
    if (i_ + 1 < info_.Length() && info_[i_].IsNumber() && info_[i_].As<Napi::Number>().DoubleValue() == 0) {
      u64Arg(info_, i_ + 1, name);
      i_ += 2;
      return nullptr;
    }
    return dev(elems, elemBytes, name);
  }
  // Call after the last argument: a call with more or fewer arguments is a caller bug.
  void end() {
    if (info_.Length() != i_)
      fail(env(), "INVALID_ARGUMENT", "Expected " + std::to_string(i_) + " arguments for " + fn_ + " but received " + std::to_string(info_.Length()));
  }
  size_t count() const { return info_.Length(); }

 private:
  const Napi::CallbackInfo& info_;
  const char* fn_;
  size_t i_ = 0;
};

inline unsigned blocksFor(uint64_t n, unsigned threads = 256, unsigned cap = 65535u * 4) {
  uint64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b > cap ? cap : b);
}

}  // namespace dw

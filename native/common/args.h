// How every op kernel entry point (native/ops/, native/quant/, native/gemm/) reads its arguments,
// so the TypeScript side (packages/ir/src/cuda/) can call them uniformly:
//
//   - Storage dtypes are codes (common/dtype.h): 0 f32, 1 bf16, 2 f16, 3 i32.
//   - A tensor argument is two numbers, (allocation base, byte offset): the base must be a live
//     allocation of the caching allocator and [offset, offset + bytes) must lie inside it;
//     devArg() checks both and returns the typed pointer. Sizes come as plain integers.
//   - The stream is a handle from streamCreate (0 = the legacy default stream).
//   - Every launch is followed by a check of cudaGetLastError() (common/launch.h); failures
//     become DeepwellErrors.
#pragma once
#include "common/dtype.h"
#include "runtime/common.h"

#include <cmath>
#include <string>
#include <vector>

namespace dw {

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

// A signed integer argument (an ignore index may be negative).
inline int64_t signedArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber())
    fail(env, "INVALID_ARGUMENT", std::string("Expected a number for ") + name + " (argument " + std::to_string(i) + ")");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(std::fabs(v) <= 2147483647.0) || v != std::trunc(v))
    fail(env, "INVALID_ARGUMENT", std::string("Expected an integer in [-2147483647, 2147483647] for ") + name + " but received " + formatNumber(v));
  return static_cast<int64_t>(v);
}

// Any number (an epsilon, a fill value, a hyperparameter).
inline double numberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber())
    fail(info.Env(), "INVALID_ARGUMENT", std::string("Expected a number for ") + name + " (argument " + std::to_string(i) + ")");
  return info[i].As<Napi::Number>().DoubleValue();
}

// A row length that the row kernels index with int.
inline void checkRowLength(Napi::Env env, uint64_t D, const char* what) {
  if (D > 2147483647u)
    fail(env, "INVALID_ARGUMENT", std::string("Expected a row length of at most 2147483647 for ") + what + " but received " + std::to_string(D));
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

}  // namespace dw

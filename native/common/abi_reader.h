// The one checked reader of entry-point arguments. Every entry point reads its arguments through the
// read<Name>() that scripts/gen-abi.mjs generates from the ABI table (common/abi/*.gen.h); those
// readers are made of the calls below, so the checks are written once:
//   - the count: fixed-size signatures are checked before anything is read, variadic ones as their
//     lengths become known and at the end;
//   - each argument's kind: a number where a number goes, an integer in range where a size, code or
//     handle goes, a typed array where host memory goes;
//   - device memory: a tensor is (allocation base, byte offset); TensorArg::ptr checks the range
//     [offset, offset + bytes) against the live allocation once the entry point knows the size, and
//     a workspace (base, offset, bytes) is checked when it is read.
// Failures throw a Napi::Error with a DeepwellError code that the JS wrapper turns into a
// DeepwellError; nothing here touches the device.
#pragma once
#include "runtime/common.h"

#include <cmath>
#include <type_traits>
#include <string>
#include <vector>

namespace dw {
namespace abi {

// Device memory passed as (base, offset); `present` is false for an optional tensor passed as (0, 0).
struct TensorArg {
  uint64_t base = 0, offset = 0;
  bool present = false;
  const char* name = "";
  const char* fn = "";

  // The typed pointer to `elems` elements of `elemBytes` each, checked against the allocation.
  template <typename T = void>
  T* ptr(Napi::Env env, uint64_t elems, size_t elemBytes = sizeof(T)) const {
    if (!present) fail(env, "INVALID_ARGUMENT", std::string("Expected a tensor for ") + name + " of " + fn + " but received none (0, 0)");
    return static_cast<T*>(checked(env, elems, elemBytes));
  }
  // As ptr(), or nullptr for a tensor passed as (0, 0).
  template <typename T = void>
  T* optPtr(Napi::Env env, uint64_t elems, size_t elemBytes = sizeof(T)) const {
    return present ? static_cast<T*>(checked(env, elems, elemBytes)) : nullptr;
  }

 private:
  void* checked(Napi::Env env, uint64_t elems, size_t elemBytes) const {
    if (elemBytes != 0 && offset % elemBytes != 0)
      fail(env, "INVALID_ARGUMENT", std::string("Expected an offset aligned to ") + std::to_string(elemBytes) + " bytes for " + name + " of " + fn);
    if (elemBytes != 0 && elems > UINT64_MAX / elemBytes)
      fail(env, "INVALID_ARGUMENT", std::string("Expected a size that fits 64 bits for ") + name + " of " + fn);
    const std::string what = std::string(fn) + " " + name;
    return deviceRange(env, base, offset, elems * elemBytes, what.c_str());
  }
};

// alignof(T), and 1 for void.
template <typename T>
constexpr size_t alignOf() {
  if constexpr (std::is_void_v<T>) return 1;
  else return alignof(T);
}

// Scratch device memory the plan gave a call: `bytes` at (base, offset), checked when read; data is
// nullptr when bytes is 0.
struct WorkspaceArg {
  void* data = nullptr;
  uint64_t bytes = 0;
  const char* fn = "";

  // The workspace as T*, failing unless it holds at least `need` bytes and starts at a multiple of
  // `align` bytes (a plan's workspaces start at multiples of 256).
  template <typename T>
  T* take(Napi::Env env, uint64_t need, size_t align = alignOf<T>()) const {
    if (need > bytes)
      fail(env, "INVALID_ARGUMENT", "Expected a workspace of at least " + std::to_string(need) + " bytes for " + fn + " but received " + std::to_string(bytes));
    if (need > 0 && reinterpret_cast<uintptr_t>(data) % align != 0)
      fail(env, "INVALID_ARGUMENT", "Expected a workspace aligned to " + std::to_string(align) + " bytes for " + fn);
    return static_cast<T*>(data);
  }

};

class Reader {
 public:
  // `fixed`: the argument count of a signature without variable-length parts, else -1.
  Reader(const Napi::CallbackInfo& info, const char* fn, int fixed) : info_(info), fn_(fn) {
    if (fixed >= 0 && info.Length() != static_cast<size_t>(fixed)) countError(static_cast<size_t>(fixed));
  }

  Napi::Env env() const { return info_.Env(); }

  uint64_t u64(const char* name, double max = kMaxSafeInt) {
    double v = number(name);
    if (!(v >= 0) || v > max || v != std::floor(v))
      fail(env(), "INVALID_ARGUMENT", std::string("Expected an integer in [0, ") + formatNumber(max) + "] for " + name + " of " + fn_ + " but received " + formatNumber(v));
    return static_cast<uint64_t>(v);
  }
  int32_t i32(const char* name) {
    double v = number(name);
    if (!(std::fabs(v) <= 2147483647.0) || v != std::trunc(v))
      fail(env(), "INVALID_ARGUMENT", std::string("Expected an integer in [-2147483647, 2147483647] for ") + name + " of " + fn_ + " but received " + formatNumber(v));
    return static_cast<int32_t>(v);
  }
  double f64(const char* name) { return number(name); }
  bool boolean(const char* name) {
    size_t i = next(name);
    if (!info_[i].IsBoolean()) kindError(i, name, "a boolean");
    return info_[i].As<Napi::Boolean>().Value();
  }
  // A code in [0, max] (`what` lists them): INVALID_ARGUMENT out of range.
  int code(const char* name, int max, const char* what) { return codeOf(name, max, what, "INVALID_ARGUMENT"); }
  // A storage dtype code in [0, max]: INVALID_DTYPE out of range.
  int dtype(const char* name, int max, const char* what) { return codeOf(name, max, what, "INVALID_DTYPE"); }
  cudaStream_t stream(const char* name) { return streamFromHandle(env(), u64(name)); }
  TensorArg tensor(const char* name, bool optional) {
    TensorArg t;
    t.name = name;
    t.fn = fn_;
    t.base = u64(name);
    t.offset = u64(name);
    t.present = !(optional && t.base == 0 && t.offset == 0);
    return t;
  }
  WorkspaceArg workspace(const char* name) {
    WorkspaceArg w;
    w.fn = fn_;
    uint64_t base = u64(name), offset = u64(name);
    w.bytes = u64(name);
    if (w.bytes != 0) w.data = deviceRange(env(), base, offset, w.bytes, (std::string(fn_) + " " + name).c_str());
    return w;
  }
  HostView view(const char* name) {
    size_t i = next(name);
    Napi::Value v = info_[i];
    if (v.IsTypedArray()) {
      Napi::TypedArray t = v.As<Napi::TypedArray>();
      return {static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength()};
    }
    if (v.IsDataView()) {
      Napi::DataView d = v.As<Napi::DataView>();
      return {static_cast<uint8_t*>(d.ArrayBuffer().Data()) + d.ByteOffset(), d.ByteLength()};
    }
    if (v.IsArrayBuffer()) {
      Napi::ArrayBuffer b = v.As<Napi::ArrayBuffer>();
      return {static_cast<uint8_t*>(b.Data()), b.ByteLength()};
    }
    kindError(i, name, "a typed array, DataView or ArrayBuffer");
  }
  std::string string(const char* name) {
    size_t i = next(name);
    if (!info_[i].IsString()) kindError(i, name, "a string");
    return info_[i].As<Napi::String>().Utf8Value();
  }
  std::vector<std::string> strings(const char* name) {
    size_t i = next(name);
    if (!info_[i].IsArray()) kindError(i, name, "an array of strings");
    Napi::Array arr = info_[i].As<Napi::Array>();
    std::vector<std::string> out;
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      Napi::Value v = arr.Get(k);
      if (!v.IsString()) fail(env(), "INVALID_ARGUMENT", std::string("Expected strings in ") + name + " of " + fn_);
      out.push_back(v.As<Napi::String>().Utf8Value());
    }
    return out;
  }
  std::vector<uint64_t> u64s(const char* name, uint64_t n) {
    expectAtLeast(n);
    std::vector<uint64_t> out(n);
    for (auto& v : out) v = u64(name);
    return out;
  }
  std::vector<TensorArg> tensors(const char* name, uint64_t n) {
    expectAtLeast(2 * n);
    std::vector<TensorArg> out(n);
    for (auto& t : out) t = tensor(name, false);
    return out;
  }
  // At least `n` more arguments must follow (a variable-length part whose length is now known).
  void expectAtLeast(uint64_t n) {
    if (info_.Length() < i_ || info_.Length() - i_ < n) countError(i_ + n, true);
  }
  // After the last argument: more or fewer is a caller bug.
  void end() {
    if (info_.Length() != i_) countError(i_);
  }

 private:
  size_t next(const char* name) {
    if (i_ >= info_.Length())
      fail(env(), "INVALID_ARGUMENT", std::string("Expected an argument ") + std::to_string(i_) + " (" + name + ") for " + fn_ + " but received " + std::to_string(info_.Length()) + " arguments");
    return i_++;
  }
  int codeOf(const char* name, int max, const char* what, const char* errCode) {
    double v = number(name);
    if (!(v >= 0) || v > max || v != std::floor(v))
      fail(env(), errCode, std::string("Expected ") + what + " for " + name + " of " + fn_ + " but received " + formatNumber(v));
    return static_cast<int>(v);
  }
  double number(const char* name) {
    size_t i = next(name);
    if (!info_[i].IsNumber()) kindError(i, name, "a number");
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  [[noreturn]] void kindError(size_t i, const char* name, const char* want) {
    const char* got = info_[i].IsUndefined() ? "undefined" : info_[i].IsNull() ? "null" : info_[i].IsString() ? "a string" : info_[i].IsBoolean() ? "a boolean" : info_[i].IsNumber() ? "a number" : "an object";
    fail(env(), "INVALID_ARGUMENT", std::string("Expected ") + want + " for " + name + " of " + fn_ + " (argument " + std::to_string(i) + ") but received " + got);
  }
  [[noreturn]] void countError(size_t want, bool atLeast = false) {
    fail(env(), "INVALID_ARGUMENT", std::string("Expected ") + (atLeast ? "at least " : "") + std::to_string(want) + " arguments for " + fn_ + " but received " + std::to_string(info_.Length()));
  }

  const Napi::CallbackInfo& info_;
  const char* fn_;
  size_t i_ = 0;
};

}  // namespace abi
}  // namespace dw

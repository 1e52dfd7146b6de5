// Shared by every native source: the one way failures leave native code, and registration.
//
// Native code never decides what an error means to the user. It throws a Napi::Error carrying a
// `code` (one of DeepwellErrorCode's strings) and, for CUDA failures, the CUDA error's name and
// number; the JS wrapper turns that into a DeepwellError with the caller's stack. Every argument is
// read and checked by the entry point's generated reader (common/abi_reader.h, common/abi/*.gen.h)
// before it reaches CUDA, so bad input is an error, never a crash.
#pragma once
#include <napi.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dw {

[[noreturn]] inline void fail(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

// Maps a CUDA error to a DeepwellError code and throws. `what` names the call and its sizes.
[[noreturn]] inline void failCuda(Napi::Env env, cudaError_t e, const std::string& what) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const char* code = "CUDA_ERROR";
  if (e == cudaErrorMemoryAllocation) code = "OUT_OF_MEMORY";
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice ||
      e == cudaErrorSystemDriverMismatch || e == cudaErrorCompatNotSupportedOnDevice)
    code = "CUDA_UNAVAILABLE";
  Napi::Error err = Napi::Error::New(
      env, what + " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
  err.Set("code", Napi::String::New(env, code));
  err.Set("cudaError", Napi::String::New(env, cudaGetErrorName(e)));
  err.Set("cudaErrorCode", Napi::Number::New(env, static_cast<int>(e)));
  throw err;
}

#define DW_CUDA(env, expr, what)                       \
  do {                                                 \
    cudaError_t dw_e_ = (expr);                        \
    if (dw_e_ != cudaSuccess) ::dw::failCuda(env, dw_e_, what); \
  } while (0)

constexpr double kMaxSafeInt = 9007199254740991.0;  // 2^53 - 1

inline std::string formatNumber(double v) {
  char b[40];
  snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// The bytes of a TypedArray, DataView or ArrayBuffer argument (abi::Reader::view).
struct HostView {
  uint8_t* data;
  size_t bytes;
};

// Device selection is per host thread in CUDA; every entry point that touches a device sets it.
inline void useDevice(Napi::Env env, int device) {
  DW_CUDA(env, cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
}

// Adds a native function to the addon's exports under `name`.
inline void def(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback fn) {
  exports.Set(name, Napi::Function::New(env, fn, name));
}

// An op family's entry points come from the ABI table as one X-macro list, X(exported name,
// function) (DW_ABI_NN_ENTRIES and the like, in common/abi/<family>.gen.h): DW_DECLARE_ENTRY
// declares the functions, DW_DEF_ENTRY registers them (env and exports in scope).
#define DW_DECLARE_ENTRY(name, fn) Napi::Value fn(const Napi::CallbackInfo& info);
#define DW_DEF_ENTRY(name, fn) def(env, exports, name, fn);

// Each runtime source file and each op family registers its functions through one of these
// (device.cpp's Init calls them).
void initMemory(Napi::Env env, Napi::Object exports);
void initStreams(Napi::Env env, Napi::Object exports);
void initSmoke(Napi::Env env, Napi::Object exports);
void initVendor(Napi::Env env, Napi::Object exports);
void initComm(Napi::Env env, Napi::Object exports);
void initGemm(Napi::Env env, Napi::Object exports);
void initGemmFallback(Napi::Env env, Napi::Object exports);
void initGemmGrouped(Napi::Env env, Napi::Object exports);
void initGemmGroupedFp8Wgrad(Napi::Env env, Napi::Object exports);
void initGemmScaled(Napi::Env env, Napi::Object exports);
void initGemmMx8(Napi::Env env, Napi::Object exports);
void initOps_tensor(Napi::Env env, Napi::Object exports);
void initOps_nn(Napi::Env env, Napi::Object exports);
void initOpsErrors(Napi::Env env, Napi::Object exports);
void initOps_moe(Napi::Env env, Napi::Object exports);
void initQuant(Napi::Env env, Napi::Object exports);
void initAttention(Napi::Env env, Napi::Object exports);

// The dlopen handle of a vendor library opened by openLibrary ('cublasLt', 'nccl', 'nvml'), or null.
void* vendorHandle(const char* kind);

// Lookups shared between files: a stream handle (0 is the legacy default stream).
cudaStream_t streamFromHandle(Napi::Env env, uint64_t handle);
// A device range [ptr+offset, ptr+offset+bytes) inside one live allocation; fails otherwise.
void* deviceRange(Napi::Env env, uint64_t ptr, uint64_t offset, uint64_t bytes, const char* what);

}  // namespace dw

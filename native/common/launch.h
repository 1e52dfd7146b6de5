// Host-side launch helpers shared by every op family: grid sizes, size and overlap checks, the SM
// count, the device address of a __device__ variable, and the check after each launch.
//
// Relocatable device code is not enabled: each .cu is its own device module, so a __device__
// variable is visible only to kernels of its own file. Kernels elsewhere get its address as an
// argument (deviceSymbol below; common/errors.h does this for the error words).
#pragma once
#include "common/device_info.h"  // smCount()
#include "runtime/common.h"

#include <atomic>
#include <cstdint>
#include <string>

namespace dw {

inline void checkLaunch(Napi::Env env, const char* what) {
  DW_CUDA(env, cudaGetLastError(), std::string(what) + " launch");
}

inline unsigned blocksFor(uint64_t n, unsigned threads = 256, unsigned cap = 65535u * 4) {
  uint64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b > cap ? cap : b);
}

// A block count clamped to [1, cap] (grid-stride kernels do the rest).
inline unsigned capBlocks(uint64_t blocks, uint64_t cap = uint64_t(1) << 20) {
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

// a * b elements, failing instead of passing 2^53 - 1.
inline uint64_t mulSize(Napi::Env env, uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > static_cast<uint64_t>(kMaxSafeInt) / a)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received " + std::to_string(a) + " x " + std::to_string(b));
  return a * b;
}

// Multiprocessors of the current device (set by the entry point), cached per device; a failure to read
// them is a DeepwellError (the tensor family's launch sizes).
inline unsigned smCount(Napi::Env env) {
  static std::atomic<int> cache[64];
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  if (dev >= 0 && dev < 64) {
    int c = cache[dev].load(std::memory_order_relaxed);
    if (c > 0) return static_cast<unsigned>(c);
  }
  int sms = 0;
  DW_CUDA(env, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute(multiProcessorCount)");
  if (sms < 1) sms = 1;
  if (dev >= 0 && dev < 64) cache[dev].store(sms, std::memory_order_relaxed);
  return static_cast<unsigned>(sms);
}

inline bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Two byte ranges that overlap without being the very same range.
inline bool badOverlap(const void* a, uint64_t ab, const void* b, uint64_t bb) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  if (ab == 0 || bb == 0) return false;
  if (a0 == b0 && ab == bb) return false;
  return a0 < b0 + bb && b0 < a0 + ab;
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

// A row length that the row kernels index with int.
inline void checkRowLength(Napi::Env env, uint64_t D, const char* what) {
  if (D > 2147483647u)
    fail(env, "INVALID_ARGUMENT", std::string("Expected a row length of at most 2147483647 for ") + what + " but received " + std::to_string(D));
}

}  // namespace dw

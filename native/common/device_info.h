// Per-device facts the launchers ask on every call, read from the runtime once per device and
// cached: the SM count and the compute capability of the current device. Free of N-API, so the
// kernel headers (and the kernel lab, which builds them without Node) can use it.
#pragma once
#include <cuda_runtime.h>

#include <atomic>

namespace dw {

// Multiprocessors of the current device, cached per device; 132 when they cannot be read (the
// nn family's and the attention kernels' launch sizes).
inline int smCount() {
  static int cache[64] = {0};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
    cudaGetLastError();
    return 132;
  }
  if (cache[dev] == 0) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) {
      cudaGetLastError();
      n = 132;
    }
    cache[dev] = n;
  }
  return cache[dev];
}

// Compute capability of device `dev` as major * 10 + minor (90 for sm_90), cached per device; 0 when
// it cannot be read.
inline int computeCapability(int dev) {
  static std::atomic<int> cache[64];
  if (dev >= 0 && dev < 64) {
    const int c = cache[dev].load(std::memory_order_relaxed);
    if (c > 0) return c;
  }
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const int c = major * 10 + minor;
  if (dev >= 0 && dev < 64) cache[dev].store(c, std::memory_order_relaxed);
  return c;
}

}  // namespace dw

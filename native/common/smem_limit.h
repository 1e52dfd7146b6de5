// The dynamic shared-memory limit of a kernel (cudaFuncAttributeMaxDynamicSharedMemorySize) is an
// attribute of one kernel on one device: the launchers set it once per (kernel, device), not on every
// launch (each setting is a driver call). Used by the attention kernels (flash_sm80.cuh,
// flash_fwd_sm90.cuh, flash_bwd_sm90.cuh) and gemm_mx8_sm90.cu.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace dw {

// Sets Kernel's limit to Bytes on device `dev` the first time it is asked there. Kernel is the kernel
// itself (not its type, which every instantiation of one __global__ template shares), so each kernel
// keeps its own bits: one per device below 64 (a higher device sets it every time). Two threads that
// launch first at once both set it, which is harmless.
template <auto Kernel, int Bytes>
cudaError_t setSmemLimitOnce(int dev) {
  static std::atomic<uint64_t> done{0};
  const uint64_t bit = dev >= 0 && dev < 64 ? uint64_t(1) << dev : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Bytes);
  if (e == cudaSuccess) done.fetch_or(bit, std::memory_order_release);
  return e;
}

}  // namespace dw

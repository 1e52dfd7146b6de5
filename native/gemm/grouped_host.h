// Host helpers shared by the grouped GEMM launchers (gemm/grouped_gemm.cu, gemm/grouped_fp8_wgrad.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>

namespace dw {
namespace grouped {

// Whether DW_GROUPED_GENERAL=1 keeps every call on the general path (for checking one path against
// the other). Read at each call, so a test can change it between calls; a replayed CUDA graph does
// not call it.
inline bool generalOnly() {
  const char* v = std::getenv("DW_GROUPED_GENERAL");
  return v != nullptr && v[0] == '1';
}

// The registers a kernel was built with (0 where its attributes cannot be read, leaving no error
// pending for the next call), read once per kernel.
template <auto Kernel>
int kernelRegs() {
  static const int regs = [] {
    cudaFuncAttributes fa{};
    const bool ok = cudaFuncGetAttributes(&fa, Kernel) == cudaSuccess;
    if (!ok) cudaGetLastError();
    return ok ? fa.numRegs : 0;
  }();
  return regs;
}

// Whether a Hopper kernel of `threads` threads, whose producer warpgroup gives registers back
// (setmaxnreg down to `producer`) so that its two consumer warpgroups can take `consumer` each,
// starts with all of them. False for the trapping stub of a build without sm_90a code (a few
// registers), and for a build whose kernel got fewer: the consumers' increase could never be
// granted, and the kernel would hang.
template <auto Kernel>
bool redistributes(int threads, int producer, int consumer) {
  return kernelRegs<Kernel>() * threads >= producer * 128 + consumer * 256;
}

}  // namespace grouped
}  // namespace dw

// The sm_90 async-proxy primitives that are not arch-specific (no "a" target needed, so they compile
// for sm_90a, sm_100a / sm_100f and the plain compute_90 PTX alike): mbarriers, 1-D bulk copies from
// global into shared memory, and the shared-memory proxy fence. Used by the attention kernels
// (through attention/sm90_ptx.cuh, which adds the sm_90a-only wgmma / setmaxnreg wrappers); here,
// not there, so a kernel outside attention can use them without the sm_90a-only ones. Call them only
// from device code built for sm_90 or later.
#pragma once
#include <cstdint>

namespace dw {
namespace sm90 {

__device__ __forceinline__ uint32_t smemAddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// ---- mbarrier ----
__device__ __forceinline__ void mbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// Makes the barrier inits visible to the async proxy (TMA) and the other threads (then a CTA sync).
__device__ __forceinline__ void fenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ void mbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ bool mbarTryWait(uint32_t bar, uint32_t parity) {
  uint32_t ok;
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(ok)
      : "r"(bar), "r"(parity)
      : "memory");
  return ok != 0;
}
// Waits until the phase with the given parity has completed.
__device__ __forceinline__ void mbarWait(uint32_t bar, uint32_t parity) {
  while (!mbarTryWait(bar, parity)) {
  }
}

// ---- bulk (non-tensor) copies ----
// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to shared, completion
// signalled on `bar` as transaction bytes.
__device__ __forceinline__ void bulkLoad(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(src)), "r"(bytes), "r"(bar)
               : "memory");
}

// ---- proxy fences ----
// Orders this thread's generic-proxy shared-memory accesses (and, through a barrier before it, those
// of the threads it synchronized with) before the async-proxy accesses after it: wgmma operands,
// bulk copies out of shared memory, and bulk copies into a buffer generic loads have just read.
__device__ __forceinline__ void fenceProxyAsyncShared() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

}  // namespace sm90
}  // namespace dw

// Hopper (sm_90a) primitives the attention backward needs beyond attention/sm90_ptx.cuh (which it
// includes and reuses): wgmma with both shared-memory operands MN-major (dQ = dS·K reads dSᵀ and K
// as they lie in shared memory), 1-D bulk copies (lse and delta rows into the ring), the bulk
// store / reduce-add that accumulate dQ into global f32, the proxy fences that order generic and async
// accesses, and acquire / release semaphores for the fixed dQ accumulation order.
// Device code compiles only for sm_90a; every wrapper is __forceinline__.
#pragma once
#include "attention/sm90_ptx.cuh"

namespace dw {
namespace sm90 {

// ---- wgmma, both operands MN-major (transpose bits set) ----
// D(64 x 64, f32) (+)= A(64 x 16) · B(16 x 64), A given MN-major (the M index contiguous, i.e. Aᵀ
// lies in smem with K as rows), B MN-major (K as rows, N contiguous). scaleD = 0 overwrites D.
template <typename T>
__device__ __forceinline__ void wgmmaSSTT64(float (&d)[32], uint64_t a, uint64_t b, int scaleD);

#define DW_WGMMA_TT64(TY, PTXTY)                                                                                          \
  template <>                                                                                                             \
  __device__ __forceinline__ void wgmmaSSTT64<TY>(float (&d)[32], uint64_t a, uint64_t b, int scaleD) {                   \
    asm volatile(                                                                                                         \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                                      \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTXTY "." PTXTY                                                     \
        " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23," \
        " %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 1, 1;\n}\n"                                         \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),     \
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),          \
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),         \
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])                       \
        : "l"(a), "l"(b), "r"(scaleD));                                                                                   \
  }
DW_WGMMA_TT64(__nv_bfloat16, "bf16")
DW_WGMMA_TT64(__half, "f16")
#undef DW_WGMMA_TT64

// ---- one 4-byte cp.async (generic proxy; completion by its own commit / wait groups) ----
__device__ __forceinline__ void cpAsync4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cpAsyncCommitGroup() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cpAsyncWaitGroups() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// ---- bulk (non-tensor) copies (bulkLoad, the load into shared memory: common/sm90_async.cuh) ----
// global[dst .. dst+bytes) += shared[src ..] elementwise in f32 (each element one atomic add in L2).
__device__ __forceinline__ void bulkReduceAddF32(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;" ::"l"(reinterpret_cast<uint64_t>(dst)),
               "r"(src), "r"(bytes)
               : "memory");
}
// global[dst .. dst+bytes) = shared[src ..] (a plain bulk store).
__device__ __forceinline__ void bulkStore(void* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(reinterpret_cast<uint64_t>(dst)), "r"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulkCommit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
// Waits until every committed bulk group of this thread has completed (its writes performed).
__device__ __forceinline__ void bulkWaitAll() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }
// Waits only until they have read their shared-memory sources (the buffers may be reused).
__device__ __forceinline__ void bulkWaitRead() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }

// ---- proxy fences ----
// fenceProxyAsyncShared (shared memory): common/sm90_async.cuh. The same for global memory (orders
// the bulk reduce-adds with the semaphore's generic accesses):
__device__ __forceinline__ void fenceProxyAsyncGlobal() { asm volatile("fence.proxy.async.global;" ::: "memory"); }

// ---- semaphores (int in global memory) ----
__device__ __forceinline__ int ldAcquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(reinterpret_cast<uint64_t>(p)) : "memory");
  return v;
}
__device__ __forceinline__ void redReleaseAdd(int* p, int v) {
  asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(reinterpret_cast<uint64_t>(p)), "r"(v) : "memory");
}

}  // namespace sm90
}  // namespace dw

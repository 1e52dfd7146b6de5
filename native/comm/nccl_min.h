// The part of NCCL's C API Deepwell calls, declared here (no NCCL headers on the build machines;
// the library is dlopen'ed at run time, runtime/vendor.cpp). Written from NCCL's API reference;
// to be checked against nccl.h 2.28 on the GPU host (scripts/gpu-check.sh prints the values).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace dw {
namespace nccl {

struct UniqueId {
  char internal[128];  // NCCL_UNIQUE_ID_BYTES
};
using Comm = struct ncclComm*;
using Result = int;  // ncclResult_t
constexpr Result kSuccess = 0, kUnhandledCudaError = 1, kSystemError = 2, kInternalError = 3, kInvalidArgument = 4, kInvalidUsage = 5, kRemoteError = 6,
                 kInProgress = 7;
// ncclDataType_t
constexpr int kInt32 = 2, kFloat16 = 6, kFloat32 = 7, kBfloat16 = 9;

using GetUniqueIdFn = Result (*)(UniqueId*);
using GroupFn = Result (*)();  // ncclGroupStart, ncclGroupEnd
// ncclConfig_t as NCCL 2.17 laid it out (NCCL reads a config of an older version by its size and
// version, giving the newer fields their defaults; src/init.cc parseCommConfig): the fields up to
// netName. kConfigMagic and the version are NCCL_CONFIG_INITIALIZER's.
struct ConfigV217 {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cgaClusterSize;
  int minCTAs;
  int maxCTAs;
  const char* netName;
};
constexpr unsigned int kConfigMagic = 0xcafebeef;
constexpr unsigned int kConfigVersion217 = 21700;  // NCCL_VERSION(2, 17, 0)
constexpr int kConfigUndefInt = -2147483647 - 1;     // NCCL_CONFIG_UNDEF_INT (INT_MIN)
using CommInitRankConfigFn = Result (*)(Comm*, int nranks, UniqueId id, int rank, ConfigV217* config);
using CommFn = Result (*)(Comm);
using CommGetAsyncErrorFn = Result (*)(Comm, Result*);
using GetErrorStringFn = const char* (*)(Result);
using GetLastErrorFn = const char* (*)(Comm);
using AllReduceFn = Result (*)(const void* send, void* recv, size_t count, int dtype, int op, Comm, cudaStream_t);
using ReduceScatterFn = Result (*)(const void* send, void* recv, size_t recvCount, int dtype, int op, Comm, cudaStream_t);
using AllGatherFn = Result (*)(const void* send, void* recv, size_t sendCount, int dtype, Comm, cudaStream_t);
using BroadcastFn = Result (*)(const void* send, void* recv, size_t count, int dtype, int root, Comm, cudaStream_t);

}  // namespace nccl
}  // namespace dw

// gather_rows and scatter_add_rows (moe family; see moe.cpp).
//
//   gatherRows(stream, dtype, M, R, D, x, idx, out)              x: [R, D], idx: [M] -> [M, D]
//   scatterAddRows(stream, dtype, M, R, D, src, idx, out)        src: [M, D], idx: [M] -> [R, D]
//
// The row gather and scatter-add of common/rows_gather.h (shared with the nn family's embedding);
// idx -1 gives a zero row (gather) or is skipped (scatter); scatter_add_rows adds rows in ascending
// position order.
#include "ops/moe/moe.h"

#include "common/args.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows_gather.h"

namespace dw::moe {

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t M = u64Arg(info, 2, "gather_rows M"), R = u64Arg(info, 3, "gather_rows R"), D = u64Arg(info, 4, "gather_rows D");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = devArg<T>(info, 5, mulSize(env, R, D, "gather_rows x"), sizeof(T), "gather_rows x");
    const int* idx = devArg<int>(info, 7, M, 4, "gather_rows idx");
    T* out = devArg<T>(info, 9, mulSize(env, M, D, "gather_rows out"), sizeof(T), "gather_rows out");
    launchGatherRows(env, s, dt, x, idx, out, M, R, D, true, opsErrorWord(env, kErrMoe), kOpGatherRows, "gather_rows");
  });
  return env.Undefined();
}

Napi::Value ScatterAddRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t M = u64Arg(info, 2, "scatter_add_rows M"), R = u64Arg(info, 3, "scatter_add_rows rows"), D = u64Arg(info, 4, "scatter_add_rows D");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* src = devArg<T>(info, 5, mulSize(env, M, D, "scatter_add_rows src"), sizeof(T), "scatter_add_rows src");
    const int* idx = devArg<int>(info, 7, M, 4, "scatter_add_rows idx");
    T* out = devArg<T>(info, 9, mulSize(env, R, D, "scatter_add_rows out"), sizeof(T), "scatter_add_rows out");
    launchScatterRows(env, s, dt, src, idx, out, M, R, D, true, opsErrorWord(env, kErrMoe), kOpScatterAddRows, "scatter_add_rows");
  });
  return env.Undefined();
}

}  // namespace dw::moe

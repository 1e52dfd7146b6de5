// gather_rows and scatter_add_rows (moe family; see moe.cpp).
//
//   gatherRows(stream, dtype, M, R, D, x, idx, out)              x: [R, D], idx: [M] -> [M, D]
//   scatterAddRows(stream, dtype, M, R, D, src, idx, out)        src: [M, D], idx: [M] -> [R, D]
//
// The row gather and scatter-add of common/rows_gather.h (shared with the nn family's embedding);
// idx -1 gives a zero row (gather) or is skipped (scatter); scatter_add_rows adds rows in ascending
// position order.
#include "ops/moe/moe.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows_gather.h"

namespace dw::moe {

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  const abi::GatherRowsArgs a = abi::readGatherRows(info);
  Napi::Env env = info.Env();
  const uint64_t M = a.M, R = a.R, D = a.D;
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.ptr<T>(env, mulSize(env, R, D, "gather_rows x"));
    const int* idx = a.idx.ptr<int>(env, M);
    T* out = a.out.ptr<T>(env, mulSize(env, M, D, "gather_rows out"));
    launchGatherRows(env, a.stream, a.dtype, x, idx, out, M, R, D, true, opsErrorWord(env, kErrMoe), kOpGatherRows, "gather_rows");
  });
  return env.Undefined();
}

Napi::Value ScatterAddRows(const Napi::CallbackInfo& info) {
  const abi::ScatterAddRowsArgs a = abi::readScatterAddRows(info);
  Napi::Env env = info.Env();
  const uint64_t M = a.M, R = a.R, D = a.D;
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* src = a.src.ptr<T>(env, mulSize(env, M, D, "scatter_add_rows src"));
    const int* idx = a.idx.ptr<int>(env, M);
    T* out = a.out.ptr<T>(env, mulSize(env, R, D, "scatter_add_rows out"));
    launchScatterRows(env, a.stream, a.dtype, src, idx, out, M, R, D, true, opsErrorWord(env, kErrMoe), kOpScatterAddRows, "scatter_add_rows");
  });
  return env.Undefined();
}

}  // namespace dw::moe

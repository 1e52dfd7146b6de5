// one_hot (moe family; see moe.cpp).
//
//   oneHot(stream, dtype, P, classes, idx, out)                  idx: [P] -> [P, classes]
//
// idx -1 gives a zero row; any other index outside [0, classes) is recorded in the family's error
// word.
#include "ops/moe/moe.h"

#include "common/dtype.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows_gather.h"

#include <string>

namespace dw::moe {
namespace {

template <typename T>
__global__ void oneHotK(const int* idx, T* out, int64_t P, int64_t classes, ErrWord* err) {
  const int64_t total = P * classes;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = t / classes, c = t - p * classes;
    const int id = idx[p];
    out[t] = fromF<T>(id == c ? 1.f : 0.f);
    if (c == 0 && id != -1 && (id < 0 || id >= classes)) raiseErr(err, kOpOneHot, p, id, classes);
  }
}

}  // namespace

Napi::Value OneHot(const Napi::CallbackInfo& info) {
  const abi::OneHotArgs a = abi::readOneHot(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t P = a.P, classes = a.classes;
  if (classes > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 classes for one_hot but received " + std::to_string(classes));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const int* idx = a.idx.ptr<int>(env, P);
    const uint64_t total = mulSize(env, P, classes, "one_hot out");
    T* out = a.out.ptr<T>(env, total);
    ErrWord* err = opsErrorWord(env, kErrMoe);
    if (total > 0) {
      oneHotK<T><<<capBlocks((total + 255) / 256), 256, 0, s>>>(idx, out, static_cast<int64_t>(P), static_cast<int64_t>(classes), err);
      checkLaunch(env, "one_hot");
    } else if (P > 0) {  // classes 0: only -1 is allowed
      launchValidateIndices(s, idx, P, 0, true, err, kOpOneHot);
      checkLaunch(env, "one_hot (index check)");
    }
  });
  return env.Undefined();
}

}  // namespace dw::moe

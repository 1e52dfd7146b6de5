// embedding and its backward (nn family; see nn.cpp).
//
//   embedding(stream, dtype, P, V, D, table, ids, out)                 ids: i32[P]
//   embeddingBackward(stream, dtype, P, V, D, ids, g, dtable)
//
// A row gather and a row scatter-add (common/rows_gather.h, shared with the moe family's
// gather_rows and scatter_add_rows); an id outside [0, V) skips its row and is recorded in the
// family's error word. The backward adds the rows of each id in ascending position order.
#include "ops/nn/nn.h"

#include "common/args.h"
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows_gather.h"

namespace dw::nn {

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t P = u64Arg(info, 2, "embedding positions"), vocab = u64Arg(info, 3, "embedding vocab"), D = u64Arg(info, 4, "embedding D");
  checkRowLength(env, D, "embedding");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* table = devArg<T>(info, 5, mulSize(env, vocab, D, "embedding table"), sizeof(T), "embedding table");
    const int* ids = devArg<int>(info, 7, P, 4, "embedding ids");
    T* out = devArg<T>(info, 9, mulSize(env, P, D, "embedding out"), sizeof(T), "embedding out");
    launchGatherRows(env, s, dt, table, ids, out, P, vocab, D, false, opsErrorWord(env, kErrNn), kOpEmbedding, "embedding");
  });
  return env.Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t P = u64Arg(info, 2, "embedding_backward positions"), vocab = u64Arg(info, 3, "embedding_backward vocab"), D = u64Arg(info, 4, "embedding_backward D");
  checkRowLength(env, D, "embedding_backward");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const int* ids = devArg<int>(info, 5, P, 4, "embedding_backward ids");
    const T* g = devArg<T>(info, 7, mulSize(env, P, D, "embedding_backward g"), sizeof(T), "embedding_backward g");
    T* dtable = devArg<T>(info, 9, mulSize(env, vocab, D, "embedding_backward dtable"), sizeof(T), "embedding_backward dtable");
    launchScatterRows(env, s, dt, g, ids, dtable, P, vocab, D, false, opsErrorWord(env, kErrNn), kOpEmbeddingBackward, "embedding_backward");
  });
  return env.Undefined();
}

}  // namespace dw::nn

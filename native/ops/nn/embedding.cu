// embedding and its backward (nn family; see nn.cpp).
//
//   embedding(stream, dtype, P, V, D, table, ids, out)                 ids: i32[P]
//   embeddingBackward(stream, dtype, P, V, D, ids, g, dtable)
//
// A row gather and a row scatter-add (common/rows_gather.h, shared with the moe family's
// gather_rows and scatter_add_rows); an id outside [0, V) skips its row and is recorded in the
// family's error word. The backward adds the rows of each id in ascending position order.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows_gather.h"

namespace dw::nn {

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const abi::EmbeddingArgs a = abi::readEmbedding(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int dt = a.dtype;
  const uint64_t P = a.P, vocab = a.V, D = a.D;
  checkRowLength(env, D, "embedding");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* table = a.table.ptr<T>(env, mulSize(env, vocab, D, "embedding table"));
    const int* ids = a.ids.ptr<int>(env, P);
    T* out = a.out.ptr<T>(env, mulSize(env, P, D, "embedding out"));
    launchGatherRows(env, s, dt, table, ids, out, P, vocab, D, false, opsErrorWord(env, kErrNn), kOpEmbedding, "embedding");
  });
  return env.Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const abi::EmbeddingBackwardArgs a = abi::readEmbeddingBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const int dt = a.dtype;
  const uint64_t P = a.P, vocab = a.V, D = a.D;
  checkRowLength(env, D, "embedding_backward");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const int* ids = a.ids.ptr<int>(env, P);
    const T* g = a.g.ptr<T>(env, mulSize(env, P, D, "embedding_backward g"));
    T* dtable = a.dtable.ptr<T>(env, mulSize(env, vocab, D, "embedding_backward dtable"));
    launchScatterRows(env, s, dt, g, ids, dtable, P, vocab, D, false, opsErrorWord(env, kErrNn), kOpEmbeddingBackward, "embedding_backward");
  });
  return env.Undefined();
}

}  // namespace dw::nn

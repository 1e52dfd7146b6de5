// embedding and its backward (nn family; see nn.cpp).
//
//   embedding(stream, dtype, P, V, D, table, ids, out)                 ids: i32[P]
//   embeddingBackward(stream, dtype, P, V, D, ids, g, dtable, workspace)
//       workspace: embeddingBackwardWorkspaceBytes(P, V) (the TS candidate declares the same formula)
//       for the sorted path below; a null or smaller one runs the scatter kernel instead.
//
// The forward is a row gather (common/rows_gather.h, shared with the moe family's gather_rows); an
// id outside [0, V) skips its row and is recorded in the family's error word. The backward adds the
// rows of g of each id in ascending position order, in FP32 from 0, so it is deterministic and the
// same bits either way:
//   - sorted (the default, 2026-12-03): the (id, position) pairs sorted by id with CUB's stable radix
//     sort (positions ascending within an id), each id's run located once, then one row group per
//     table row sums its run's rows of g (16-byte loads) and writes the row (zeros for ids nobody
//     names). Work proportional to P·D + V·D.
//   - scatter (common/rows_gather.h's scatterRowsK, also the moe family's scatter_add_rows): every
//     block scans all P ids for the rows it owns, P·V/13 id reads for D = 768 (0.32 ms for GPT-2's
//     wte from 16384 tokens on an H200).
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"
#include "common/rows_gather.h"

#include <cub/device/device_radix_sort.cuh>

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

namespace {

// keys[p] = ids[p], or V for an id outside [0, V) (recorded; sorted after every row, so skipped);
// pos[p] = p.
__global__ void embKeysK(const int* ids, int64_t P, int64_t V, unsigned* keys, int* pos, ErrWord* err) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < P; p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int id = ids[p];
    const bool ok = id >= 0 && id < V;
    if (!ok) raiseErr(err, kOpEmbeddingBackward, p, id, V);
    keys[p] = ok ? static_cast<unsigned>(id) : static_cast<unsigned>(V);
    pos[p] = static_cast<int>(p);
  }
}

// The run of each id in the sorted keys: [begin[id], end[id]); both zeroed before, so an id nobody
// names has an empty run. Each entry is written by the one thread at that run's edge.
__global__ void embRunsK(const unsigned* keys, int64_t P, int64_t V, int* begin, int* end) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < P; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const unsigned k = keys[i];
    if (k >= V) continue;
    if (i == 0 || keys[i - 1] != k) begin[k] = static_cast<int>(i);
    if (i == P - 1 || keys[i + 1] != k) end[k] = static_cast<int>(i + 1);
  }
}

// dtable[r] = the sum of g[pos[i]] over r's run, in run order (ascending positions), FP32 from 0.
// Row groups of blockDim.x threads (blockDim.y per block), rows grid-stride; a thread owns chunks
// j, j + blockDim.x, ... of V elements of the row.
template <typename T, int V>
__global__ void __launch_bounds__(256) embRowsK(const T* g, const int* pos, const int* begin, const int* end, int64_t R, int nch, T* dtable) {
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < R; r += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int lo = begin[r], hi = end[r];
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float acc[V];
#pragma unroll
      for (int k = 0; k < V; k++) acc[k] = 0.f;
#pragma unroll 4
      for (int i = lo; i < hi; i++) {
        float v[V];
        loadF<T, V>(g + static_cast<int64_t>(pos[i]) * D + static_cast<int64_t>(j) * V, v);
#pragma unroll
        for (int k = 0; k < V; k++) acc[k] += v[k];
      }
      storeF<T, V>(dtable + r * D + static_cast<int64_t>(j) * V, acc);
    }
  }
}

constexpr uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }

// The sorted path's workspace: keys and positions in and out (4 arrays of P ints), the runs (2 of V
// ints), and CUB's scratch, budgeted at 1 MiB + 8 bytes a position (CUB asks for far less at these
// sizes; the call checks what it asks for).
uint64_t cubBudget(uint64_t P) { return (1u << 20) + 8 * P; }
uint64_t sortedBytes(uint64_t P, uint64_t V) { return 4 * align256(4 * P) + 2 * align256(4 * V) + cubBudget(P); }

template <typename T, int V>
void launchEmbRows(cudaStream_t s, const T* g, const int* pos, const int* begin, const int* end, uint64_t R, uint64_t D, T* dtable) {
  const int nch = static_cast<int>(D / V);
  int tx = (nch + 31) / 32 * 32;
  tx = tx < 32 ? 32 : tx > 256 ? 256 : tx;
  const int ty = 256 / tx;
  embRowsK<T, V><<<capBlocks((R + ty - 1) / ty), dim3(tx, ty), 0, s>>>(g, pos, begin, end, static_cast<int64_t>(R), nch, dtable);
}

// The sorted path; false (nothing launched) where it does not apply: no or too small a workspace,
// more than 2^31 - 1 positions or rows, or CUB asking for more scratch than the budget.
template <typename T>
bool sortedEmbeddingBackward(Napi::Env env, cudaStream_t s, const int* ids, const T* g, T* dtable, uint64_t P, uint64_t R, uint64_t D, const abi::WorkspaceArg& ws) {
  if (P == 0 || R == 0 || D == 0 || P > 2147483647u || R >= 2147483647u || ws.data == nullptr || ws.bytes < sortedBytes(P, R) ||
      reinterpret_cast<uintptr_t>(ws.data) % 256 != 0)
    return false;
  uint8_t* w = static_cast<uint8_t*>(ws.data);
  const uint64_t pb = align256(4 * P), vb = align256(4 * R);
  unsigned* keysIn = reinterpret_cast<unsigned*>(w);
  unsigned* keysOut = reinterpret_cast<unsigned*>(w + pb);
  int* posIn = reinterpret_cast<int*>(w + 2 * pb);
  int* posOut = reinterpret_cast<int*>(w + 3 * pb);
  int* begin = reinterpret_cast<int*>(w + 4 * pb);
  int* end = reinterpret_cast<int*>(w + 4 * pb + vb);
  void* temp = w + 4 * pb + 2 * vb;
  // Keys run up to R (the bad ids' key): enough bits for R.
  int bits = 1;
  while (bits < 31 && (uint64_t(1) << bits) <= R) bits++;
  size_t tempBytes = 0;
  DW_CUDA(env, cub::DeviceRadixSort::SortPairs(nullptr, tempBytes, keysIn, keysOut, posIn, posOut, static_cast<int>(P), 0, bits, s), "embedding_backward sort (size)");
  if (tempBytes > cubBudget(P)) return false;
  ErrWord* err = opsErrorWord(env, kErrNn);
  embKeysK<<<capBlocks((P + 255) / 256, 4096), 256, 0, s>>>(ids, static_cast<int64_t>(P), static_cast<int64_t>(R), keysIn, posIn, err);
  checkLaunch(env, "embedding_backward (keys)");
  DW_CUDA(env, cub::DeviceRadixSort::SortPairs(temp, tempBytes, keysIn, keysOut, posIn, posOut, static_cast<int>(P), 0, bits, s), "embedding_backward sort");
  DW_CUDA(env, cudaMemsetAsync(begin, 0, 2 * vb, s), "embedding_backward (runs)");
  embRunsK<<<capBlocks((P + 255) / 256, 4096), 256, 0, s>>>(keysOut, static_cast<int64_t>(P), static_cast<int64_t>(R), begin, end);
  checkLaunch(env, "embedding_backward (runs)");
  if (canVec<T>(D, {g, dtable}))
    launchEmbRows<T, 16 / sizeof(T)>(s, g, posOut, begin, end, R, D, dtable);
  else
    launchEmbRows<T, 1>(s, g, posOut, begin, end, R, D, dtable);
  checkLaunch(env, "embedding_backward");
  return true;
}

}  // namespace

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
    if (badOverlap(dtable, vocab * D * sizeof(T), g, P * D * sizeof(T)) || badOverlap(dtable, vocab * D * sizeof(T), ids, P * sizeof(int)) ||
        badOverlap(dtable, vocab * D * sizeof(T), a.workspace.data, a.workspace.bytes))
      fail(env, "INVALID_ARGUMENT", "Expected dtable of embedding_backward apart from ids, g and the workspace, but received overlapping ranges");
    if (sortedEmbeddingBackward<T>(env, s, ids, g, dtable, P, vocab, D, a.workspace)) return env.Undefined();
    launchScatterRows(env, s, dt, g, ids, dtable, P, vocab, D, false, opsErrorWord(env, kErrNn), kOpEmbeddingBackward, "embedding_backward");
  });
  return env.Undefined();
}

}  // namespace dw::nn

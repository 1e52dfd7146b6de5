// moe_sort (moe family; see moe.cpp): dropless routing, every (token, choice) a row sorted by expert.
//
//   moeSort(stream, N, k, E, experts, order, slot, offsets, workspace)
//       experts i32 [N, k] -> order i32 [N·k] (the token of each sorted row), slot i32 [N, k] (the
//       sorted row of each choice), offsets i32 [E + 1] (expert e's rows are offsets[e] ..
//       offsets[e + 1] - 1)
//   moeSortWorkspace(N, k, E)   the workspace's bytes: the per-chunk expert counts, i32 [E, chunks]
//
// A stable counting sort, deterministic, in three kernels with integer arithmetic only:
//   count    one block per chunk of the flattened choices counts each expert's choices in shared
//            memory (integer atomics: the counts do not depend on their order) and writes its
//            column of the count matrix, expert-major: cnt[e · chunks + chunk];
//   scan     one block turns the matrix into exclusive prefix sums in that order, so
//            cnt[e · chunks + chunk] is the first row of expert e's choices from that chunk, and
//            writes offsets (offsets[e] = the prefix at (e, 0), offsets[E] = the total);
//   scatter  one block per chunk walks its choices in order, 32 at a time: lanes choosing the same
//            expert are ranked by lane (__match_any_sync), row = start + running count + rank, so
//            rows keep token order, then choice order, within an expert, as the reference does.
// Chunks are at least 1024 choices and grow so that the count matrix holds at most 2^22 entries.
// An expert id outside [0, E) is recorded in the family's error word (opsErrorCheck names it) and
// the choice gets slot -1 and no row; the rows it leaves at the end get order -1.
#include "ops/moe/moe.h"

#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"  // kFull

#include <cub/block/block_scan.cuh>

#include <string>

namespace dw::moe {
namespace {

constexpr uint64_t kMinChunk = 1024;
constexpr uint64_t kMaxCountCells = uint64_t{1} << 22;
constexpr int kThreads = 1024;

// The chunk length for `choices` choices over E experts (a multiple of 1024).
uint64_t chunkOf(uint64_t choices, uint64_t E) {
  const uint64_t maxChunks = kMaxCountCells / E > 0 ? kMaxCountCells / E : 1;
  const uint64_t chunk = (choices + maxChunks - 1) / maxChunks;
  return chunk <= kMinChunk ? kMinChunk : (chunk + kMinChunk - 1) / kMinChunk * kMinChunk;
}
uint64_t chunksOf(uint64_t choices, uint64_t E) {
  const uint64_t c = chunkOf(choices, E);
  return choices == 0 ? 1 : (choices + c - 1) / c;
}

__global__ void __launch_bounds__(kThreads) moeCountK(const int* experts, long long choices, int k, int E, long long chunk, int chunks, int* cnt, ErrWord* err) {
  extern __shared__ int counts[];  // [E]
  for (int e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  const long long begin = static_cast<long long>(blockIdx.x) * chunk;
  const long long end = min(begin + chunk, choices);
  for (long long c = begin + threadIdx.x; c < end; c += blockDim.x) {
    const int e = experts[c];
    if (e >= 0 && e < E) atomicAdd(&counts[e], 1);
    else raiseErr(err, kOpMoeSort, c / k, e, E, c % k);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[static_cast<long long>(e) * chunks + blockIdx.x] = counts[e];
}

// Running prefix across the tiles of one block's scan.
struct Carry {
  int total;
  __device__ int operator()(int tileSum) {
    const int before = total;
    total += tileSum;
    return before;
  }
};

__global__ void __launch_bounds__(kThreads) moeScanK(int* cnt, long long cells, int E, int chunks, int* offsets, int* order, long long choices) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ int totalValid;
  Carry carry{0};
  for (long long base = 0; base < cells; base += kThreads) {
    const long long i = base + threadIdx.x;
    const int v = i < cells ? cnt[i] : 0;
    int before;
    Scan(tmp).ExclusiveSum(v, before, carry);
    __syncthreads();  // tmp is reused by the next tile
    if (i < cells) cnt[i] = before;
  }
  if (threadIdx.x == 0) totalValid = carry.total;
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) offsets[e] = cnt[static_cast<long long>(e) * chunks];
  if (threadIdx.x == 0) offsets[E] = totalValid;
  // Rows past the valid choices (only when an id was out of range) are no token's.
  for (long long r = totalValid + threadIdx.x; r < choices; r += blockDim.x) order[r] = -1;
}

__global__ void __launch_bounds__(kThreads) moeScatterK(const int* experts, long long choices, int k, int E, long long chunk, int chunks, const int* start, int* order, int* slot) {
  extern __shared__ int next[];  // [E]: the next row of each expert for this chunk
  for (int e = threadIdx.x; e < E; e += blockDim.x) next[e] = start[static_cast<long long>(e) * chunks + blockIdx.x];
  __syncthreads();
  if (threadIdx.x >= 32) return;
  const int lane = threadIdx.x;
  const long long begin = static_cast<long long>(blockIdx.x) * chunk;
  const long long end = min(begin + chunk, choices);
  for (long long b = begin; b < end; b += 32) {
    const long long c = b + lane;
    const int e = c < end ? experts[c] : -1;
    const bool valid = c < end && e >= 0 && e < E;
    const unsigned peers = __match_any_sync(kFull, valid ? e : -1);
    if (valid) {
      const int rank = __popc(peers & ((1u << lane) - 1u));
      const int row = next[e] + rank;
      order[row] = static_cast<int>(c / k);
      slot[c] = row;
    } else if (c < end) {
      slot[c] = -1;
    }
    __syncwarp();
    if (valid && (peers & ((1u << lane) - 1u)) == 0) next[e] += __popc(peers);
    __syncwarp();
  }
}

}  // namespace

constexpr uint64_t kMaxSortExperts = 8192;  // counters in shared memory

Napi::Value MoeSortWorkspace(const Napi::CallbackInfo& info) {
  const abi::MoeSortWorkspaceArgs a = abi::readMoeSortWorkspace(info);
  Napi::Env env = info.Env();
  if (a.E < 1) fail(env, "INVALID_ARGUMENT", "Expected a positive expert count for moe_sort but received 0");
  const uint64_t choices = mulSize(env, a.N, a.k, "moe_sort experts");
  return Napi::Number::New(env, static_cast<double>(a.E * chunksOf(choices, a.E) * sizeof(int)));
}

Napi::Value MoeSort(const Napi::CallbackInfo& info) {
  const abi::MoeSortArgs a = abi::readMoeSort(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t E = a.E;
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected a positive expert count for moe_sort but received 0");
  if (E > kMaxSortExperts) fail(env, "INVALID_ARGUMENT", "Expected at most " + std::to_string(kMaxSortExperts) + " experts for moe_sort but received " + std::to_string(E));
  const uint64_t choices = mulSize(env, a.N, a.k, "moe_sort experts");
  if (choices > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 choices (tokens x k) for moe_sort but received " + std::to_string(choices));
  const int* experts = a.experts.ptr<int>(env, choices);
  int* order = a.order.ptr<int>(env, choices);
  int* slot = a.slot.ptr<int>(env, choices);
  int* offsets = a.offsets.ptr<int>(env, E + 1);
  const uint64_t chunk = chunkOf(choices, E), chunks = chunksOf(choices, E);
  int* cnt = a.workspace.take<int>(env, E * chunks * sizeof(int));
  ErrWord* err = opsErrorWord(env, kErrMoe);
  const size_t smem = static_cast<size_t>(E) * sizeof(int);
  const int ki = static_cast<int>(a.k), Ei = static_cast<int>(E), ci = static_cast<int>(chunks);
  const long long n = static_cast<long long>(choices), ch = static_cast<long long>(chunk);
  moeCountK<<<ci, kThreads, smem, s>>>(experts, n, ki > 0 ? ki : 1, Ei, ch, ci, cnt, err);
  moeScanK<<<1, kThreads, 0, s>>>(cnt, static_cast<long long>(E * chunks), Ei, ci, offsets, order, n);
  moeScatterK<<<ci, kThreads, smem, s>>>(experts, n, ki > 0 ? ki : 1, Ei, ch, ci, cnt, order, slot);
  checkLaunch(env, "moe_sort");
  return env.Undefined();
}

}  // namespace dw::moe

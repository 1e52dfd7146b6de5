// moe_plan (moe family; see moe.cpp).
//
//   moePlan(stream, N, k, E, C, experts, dispatch, combine)      integers only, so no dtype:
//                                                                experts [N, k] -> [E*C], [N, k]
//
// Walks the choices in the reference's order (rank, then token) in one block, 32 tokens at a time.
// An expert id outside [0, E) is recorded in the family's error word.
#include "ops/moe/moe.h"

#include "common/errors.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>

namespace dw::moe {
namespace {

// One block: all threads fill dispatch with -1 and stage 1024 choices of one rank at a time in
// shared memory; warp 0 then walks them 32 tokens at a time in token order. Within 32 tokens,
// lanes choosing the same expert are ranked by lane (__match_any_sync), so slot = used[e] + rank,
// exactly as the reference's sequential walk assigns it.
__global__ void __launch_bounds__(1024) moePlanK(const int* experts, int* dispatch, int* combine, int N, int k, int E, long long C, ErrWord* err) {
  extern __shared__ int used[];  // [E]
  __shared__ int tile[1024];
  const int tid = threadIdx.x, lane = tid & 31;
  for (int e = tid; e < E; e += blockDim.x) used[e] = 0;
  const long long slots = static_cast<long long>(E) * C;
  for (long long q = tid; q < slots; q += blockDim.x) dispatch[q] = -1;
  __syncthreads();
  for (int j = 0; j < k; j++) {
    for (int n0 = 0; n0 < N; n0 += 1024) {
      const int cnt = min(1024, N - n0);
      if (tid < cnt) tile[tid] = experts[static_cast<long long>(n0 + tid) * k + j];
      __syncthreads();
      if (tid < 32) {
        for (int b = 0; b < cnt; b += 32) {
          const int i = b + lane;
          const bool live = i < cnt;
          const int e = live ? tile[i] : -1;
          const bool valid = live && e >= 0 && e < E;
          const long long n = n0 + i;
          if (live && !valid) {
            raiseErr(err, kOpMoePlan, n, e, E, j);
            combine[n * k + j] = -1;
          }
          const unsigned peers = __match_any_sync(kFull, valid ? e : -1);
          int rank = 0;
          if (valid) {
            rank = __popc(peers & ((1u << lane) - 1u));
            const long long u = static_cast<long long>(used[e]) + rank;
            long long slot = -1;
            if (u < C) {
              slot = static_cast<long long>(e) * C + u;
              dispatch[slot] = static_cast<int>(n);
            }
            combine[n * k + j] = static_cast<int>(slot);
          }
          __syncwarp();
          if (valid && rank == 0) used[e] += __popc(peers);
          __syncwarp();
        }
      }
      __syncthreads();  // the tile is refilled next
    }
  }
}

}  // namespace

constexpr uint64_t kMaxExperts = 8192;  // used[] counters in shared memory

Napi::Value MoePlan(const Napi::CallbackInfo& info) {
  const abi::MoePlanArgs a = abi::readMoePlan(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t N = a.N, k = a.k, E = a.E, C = a.C;
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected a positive expert count for moe_plan but received 0");
  if (E > kMaxExperts) fail(env, "INVALID_ARGUMENT", "Expected at most " + std::to_string(kMaxExperts) + " experts for moe_plan but received " + std::to_string(E));
  const uint64_t choices = mulSize(env, N, k, "moe_plan experts");
  const uint64_t slots = mulSize(env, E, C, "moe_plan dispatch");
  if (choices > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 choices (tokens x k) for moe_plan but received " + std::to_string(choices));
  if (slots > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 slots (numExperts x capacity) for moe_plan but received " + std::to_string(slots));
  const int* experts = a.experts.ptr<int>(env, choices);
  int* dispatch = a.dispatch.ptr<int>(env, slots);
  int* combine = a.combine.ptr<int>(env, choices);
  if (choices == 0 && slots == 0) return env.Undefined();
  ErrWord* err = opsErrorWord(env, kErrMoe);
  moePlanK<<<1, 1024, static_cast<size_t>(E) * sizeof(int), s>>>(experts, dispatch, combine, static_cast<int>(N), static_cast<int>(k), static_cast<int>(E),
                                                                   static_cast<long long>(C), err);
  checkLaunch(env, "moe_plan");
  return env.Undefined();
}

}  // namespace dw::moe

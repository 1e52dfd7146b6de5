// CUDA kernels of the 'moe' op family; see ops_common.h for the conventions.
//
// Entry points. A tensor is two arguments, (base, offset); `dtype` is the storage code (0 f32,
// 1 bf16, 2 f16) of every float tensor of the call; index tensors are i32; sizes are element counts.
//
//   topk(stream, dtype, rows, E, k, x, values, indices)          x: [rows, E] -> [rows, k] twice
//   topkBackward(stream, dtype, rows, k, size, g, indices, out)  g, indices: [rows, k] -> [rows, size]
//   gatherRows(stream, dtype, M, R, D, x, idx, out)              x: [R, D], idx: [M] -> [M, D]
//   scatterAddRows(stream, dtype, M, R, D, src, idx, out)        src: [M, D], idx: [M] -> [R, D]
//   moePlan(stream, N, k, E, C, experts, dispatch, combine)      integers only, so no dtype:
//                                                                experts [N, k] -> [E*C], [N, k]
//   oneHot(stream, dtype, P, classes, idx, out)                  idx: [P] -> [P, classes]
//
// A bad index (outside its range, and not the -1 that gather_rows, scatter_add_rows and one_hot
// allow) is recorded in this family's device error word g_moeError, never thrown from the kernel and
// never used to write out of bounds; nn.cu's opsErrorCheck(stream) reads and clears it (through
// moeTakeError below) and fails with INVALID_ARGUMENT naming the op, the position and the value.
//
// Determinism: no floating-point atomics. topk ranks by a total order (value descending, NaN
// first, then index ascending); topk_backward adds each output element's matches in ascending j;
// scatter_add_rows adds rows in ascending position order (nn.cu's scatter kernel); moe_plan walks
// the choices in the reference's order (rank, then token) in one block, 32 tokens at a time.
#include "ops/ops_common.h"

#include <string>

namespace dw {

// Shared row gather / scatter-add (nn.cu).
void launchGatherRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out,
                      uint64_t M, uint64_t R, uint64_t D, bool allowNeg, void* err, int op, const char* what);
void launchScatterRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out,
                       uint64_t M, uint64_t R, uint64_t D, bool allowNeg, void* err, int op, const char* what);

namespace {

// Same layout as nn.cu's (its gather / scatter kernels write this word for gather_rows and
// scatter_add_rows). op 0: clear.
struct MoeErrWord {
  int op;
  int pad;
  long long pos;
  long long bound;
  long long aux;  // moe_plan: the choice rank j
  double value;
};

enum MoeOp : int { kOpTopkBackward = 11, kOpGatherRows = 12, kOpScatterAddRows = 13, kOpMoePlan = 14, kOpOneHot = 15 };

__device__ MoeErrWord g_moeError;

__device__ __forceinline__ void raiseErr(MoeErrWord* w, int op, long long pos, double value, long long bound, long long aux = 0) {
  if (atomicCAS(&w->op, 0, op) == 0) {
    w->pos = pos;
    w->bound = bound;
    w->aux = aux;
    w->value = value;
  }
}

// The device address of g_moeError on the current device.
MoeErrWord* moeErrorWord(Napi::Env env) {
  static void* cache[64] = {};
  return static_cast<MoeErrWord*>(deviceSymbol(env, g_moeError, cache, "moe error word"));
}

uint64_t mulSize(Napi::Env env, uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > static_cast<uint64_t>(kMaxSafeInt) / a)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received " + std::to_string(a) + " x " + std::to_string(b));
  return a * b;
}

unsigned capBlocks(uint64_t blocks, uint64_t cap = uint64_t(1) << 20) {
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

constexpr unsigned kFull = 0xffffffffu;

// ---- topk -------------------------------------------------------------------------------------------

// True when value a at index ia ranks before value b at index ib (topk.ts's before()).
__device__ __forceinline__ bool before(float a, int ia, float b, int ib) {
  const bool na = isnan(a), nb = isnan(b);
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

// One warp per row; k rounds, each taking the best element ranked strictly after the previous
// pick (the order is total, so this lists the row in rank order with no marking).
template <typename T>
__global__ void __launch_bounds__(256) topkK(const T* x, T* vals, int* inds, int64_t rows, int E, int k) {
  const int lane = threadIdx.x & 31;
  const int64_t wpb = blockDim.x >> 5;
  for (int64_t row = blockIdx.x * wpb + (threadIdx.x >> 5); row < rows; row += static_cast<int64_t>(gridDim.x) * wpb) {
    const T* xr = x + row * E;
    float pv = 0.f;
    int pi = -1;
    for (int j = 0; j < k; j++) {
      float bv = 0.f;
      int bi = -1;
      for (int e = lane; e < E; e += 32) {
        const float v = toF(xr[e]);
        if (pi >= 0 && !before(pv, pi, v, e)) continue;
        if (bi < 0 || before(v, e, bv, bi)) {
          bv = v;
          bi = e;
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(kFull, bv, o);
        const int oi = __shfl_xor_sync(kFull, bi, o);
        if (oi >= 0 && (bi < 0 || before(ov, oi, bv, bi))) {
          bv = ov;
          bi = oi;
        }
      }
      // k <= E, so some element is left after the previous pick: bi >= 0, the same in every lane.
      if (lane == 0) {
        vals[row * k + j] = xr[bi];
        inds[row * k + j] = bi;
      }
      pv = bv;
      pi = bi;
    }
  }
}

// out[r, e] = sum of g[r, j] over j (ascending) with indices[r, j] = e; one thread per element.
template <typename T>
__global__ void topkBwdK(const T* g, const int* idx, T* out, int64_t rows, int k, int64_t size, MoeErrWord* err) {
  const int64_t total = rows * size;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / size, e = t - r * size;
    const int* ir = idx + r * k;
    const T* gr = g + r * k;
    float acc = 0.f;
    for (int j = 0; j < k; j++) {
      const int ix = ir[j];
      if (ix == e) {
        acc += toF(gr[j]);
      } else if (e == 0 && (ix < 0 || ix >= size)) {
        raiseErr(err, kOpTopkBackward, r * k + j, ix, size);
      }
    }
    out[t] = fromF<T>(acc);
  }
}

// ---- moe_plan -----------------------------------------------------------------------------------------

// One block: all threads fill dispatch with -1 and stage 1024 choices of one rank at a time in
// shared memory; warp 0 then walks them 32 tokens at a time in token order. Within 32 tokens,
// lanes choosing the same expert are ranked by lane (__match_any_sync), so slot = used[e] + rank,
// exactly as the reference's sequential walk assigns it.
__global__ void __launch_bounds__(1024) moePlanK(const int* experts, int* dispatch, int* combine, int N, int k, int E, long long C, MoeErrWord* err) {
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

// ---- one_hot ----------------------------------------------------------------------------------------

template <typename T>
__global__ void oneHotK(const int* idx, T* out, int64_t P, int64_t classes, MoeErrWord* err) {
  const int64_t total = P * classes;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = t / classes, c = t - p * classes;
    const int id = idx[p];
    out[t] = fromF<T>(id == c ? 1.f : 0.f);
    if (c == 0 && id != -1 && (id < 0 || id >= classes)) raiseErr(err, kOpOneHot, p, id, classes);
  }
}

// Records the first index outside [0, R) (other than -1 when allowNeg); for outputs with no elements.
__global__ void validateK(const int* idx, int64_t M, int64_t R, int allowNeg, MoeErrWord* err, int op) {
  for (int64_t m = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; m < M; m += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int id = idx[m];
    if (!(allowNeg && id == -1) && (id < 0 || id >= R)) raiseErr(err, op, m, id, R);
  }
}

// ---- entry points -----------------------------------------------------------------------------------

Napi::Value Topk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t rows = u64Arg(info, 2, "topk rows"), E = u64Arg(info, 3, "topk E"), k = u64Arg(info, 4, "topk k");
  if (E > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected a row length of at most 2147483647 for topk but received " + std::to_string(E));
  if (k < 1 || k > E) fail(env, "INVALID_ARGUMENT", "Expected k in [1, " + std::to_string(E) + "] for topk but received " + std::to_string(k));
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = devArg<T>(info, 5, mulSize(env, rows, E, "topk x"), sizeof(T), "topk x");
    T* vals = devArg<T>(info, 7, mulSize(env, rows, k, "topk values"), sizeof(T), "topk values");
    int* inds = devArg<int>(info, 9, mulSize(env, rows, k, "topk indices"), 4, "topk indices");
    if (rows == 0) return env.Undefined();
    topkK<T><<<capBlocks((rows + 7) / 8), 256, 0, s>>>(x, vals, inds, static_cast<int64_t>(rows), static_cast<int>(E), static_cast<int>(k));
    checkLaunch(env, "topk");
  });
  return env.Undefined();
}

Napi::Value TopkBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t rows = u64Arg(info, 2, "topk_backward rows"), k = u64Arg(info, 3, "topk_backward k"), size = u64Arg(info, 4, "topk_backward size");
  if (k > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected k of at most 2147483647 for topk_backward but received " + std::to_string(k));
  if (size > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected a size of at most 2147483647 for topk_backward but received " + std::to_string(size));
  DW_DISPATCH_FLOAT(env, dt, T, {
    const uint64_t nk = mulSize(env, rows, k, "topk_backward g");
    const T* g = devArg<T>(info, 5, nk, sizeof(T), "topk_backward g");
    const int* idx = devArg<int>(info, 7, nk, 4, "topk_backward indices");
    const uint64_t total = mulSize(env, rows, size, "topk_backward out");
    T* out = devArg<T>(info, 9, total, sizeof(T), "topk_backward out");
    MoeErrWord* err = moeErrorWord(env);
    if (total > 0) {
      topkBwdK<T><<<capBlocks((total + 255) / 256), 256, 0, s>>>(g, idx, out, static_cast<int64_t>(rows), static_cast<int>(k), static_cast<int64_t>(size), err);
      checkLaunch(env, "topk_backward");
    } else if (nk > 0) {  // size 0: every index is out of range
      validateK<<<capBlocks((nk + 255) / 256, 4096), 256, 0, s>>>(idx, static_cast<int64_t>(nk), static_cast<int64_t>(size), 0, err, kOpTopkBackward);
      checkLaunch(env, "topk_backward (index check)");
    }
  });
  return env.Undefined();
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t M = u64Arg(info, 2, "gather_rows M"), R = u64Arg(info, 3, "gather_rows R"), D = u64Arg(info, 4, "gather_rows D");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = devArg<T>(info, 5, mulSize(env, R, D, "gather_rows x"), sizeof(T), "gather_rows x");
    const int* idx = devArg<int>(info, 7, M, 4, "gather_rows idx");
    T* out = devArg<T>(info, 9, mulSize(env, M, D, "gather_rows out"), sizeof(T), "gather_rows out");
    launchGatherRows(env, s, dt, x, idx, out, M, R, D, true, moeErrorWord(env), kOpGatherRows, "gather_rows");
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
    launchScatterRows(env, s, dt, src, idx, out, M, R, D, true, moeErrorWord(env), kOpScatterAddRows, "scatter_add_rows");
  });
  return env.Undefined();
}

constexpr uint64_t kMaxExperts = 8192;  // used[] counters in shared memory

Napi::Value MoePlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const uint64_t N = u64Arg(info, 1, "moe_plan tokens"), k = u64Arg(info, 2, "moe_plan k"), E = u64Arg(info, 3, "moe_plan numExperts"),
                 C = u64Arg(info, 4, "moe_plan capacity");
  if (E < 1) fail(env, "INVALID_ARGUMENT", "Expected a positive expert count for moe_plan but received 0");
  if (E > kMaxExperts) fail(env, "INVALID_ARGUMENT", "Expected at most " + std::to_string(kMaxExperts) + " experts for moe_plan but received " + std::to_string(E));
  const uint64_t choices = mulSize(env, N, k, "moe_plan experts");
  const uint64_t slots = mulSize(env, E, C, "moe_plan dispatch");
  if (choices > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 choices (tokens x k) for moe_plan but received " + std::to_string(choices));
  if (slots > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 slots (numExperts x capacity) for moe_plan but received " + std::to_string(slots));
  const int* experts = devArg<int>(info, 5, choices, 4, "moe_plan experts");
  int* dispatch = devArg<int>(info, 7, slots, 4, "moe_plan dispatch");
  int* combine = devArg<int>(info, 9, choices, 4, "moe_plan combine");
  if (choices == 0 && slots == 0) return env.Undefined();
  MoeErrWord* err = moeErrorWord(env);
  moePlanK<<<1, 1024, static_cast<size_t>(E) * sizeof(int), s>>>(experts, dispatch, combine, static_cast<int>(N), static_cast<int>(k), static_cast<int>(E),
                                                                   static_cast<long long>(C), err);
  checkLaunch(env, "moe_plan");
  return env.Undefined();
}

Napi::Value OneHot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t P = u64Arg(info, 2, "one_hot positions"), classes = u64Arg(info, 3, "one_hot classes");
  if (classes > 2147483647u) fail(env, "INVALID_ARGUMENT", "Expected at most 2147483647 classes for one_hot but received " + std::to_string(classes));
  DW_DISPATCH_FLOAT(env, dt, T, {
    const int* idx = devArg<int>(info, 4, P, 4, "one_hot idx");
    const uint64_t total = mulSize(env, P, classes, "one_hot out");
    T* out = devArg<T>(info, 6, total, sizeof(T), "one_hot out");
    MoeErrWord* err = moeErrorWord(env);
    if (total > 0) {
      oneHotK<T><<<capBlocks((total + 255) / 256), 256, 0, s>>>(idx, out, static_cast<int64_t>(P), static_cast<int64_t>(classes), err);
      checkLaunch(env, "one_hot");
    } else if (P > 0) {  // classes 0: only -1 is allowed
      validateK<<<capBlocks((P + 255) / 256, 4096), 256, 0, s>>>(idx, static_cast<int64_t>(P), 0, 1, err, kOpOneHot);
      checkLaunch(env, "one_hot (index check)");
    }
  });
  return env.Undefined();
}

}  // namespace

// Reads and clears g_moeError (called by nn.cu's opsErrorCheck); "" when it was clear.
std::string moeTakeError(Napi::Env env, cudaStream_t s) {
  MoeErrWord h{};
  DW_CUDA(env, cudaMemcpyFromSymbolAsync(&h, g_moeError, sizeof h, 0, cudaMemcpyDeviceToHost, s), "cudaMemcpyFromSymbolAsync (moe error word)");
  DW_CUDA(env, cudaStreamSynchronize(s), "cudaStreamSynchronize (opsErrorCheck)");
  if (h.op == 0) return "";
  const MoeErrWord zero{};
  DW_CUDA(env, cudaMemcpyToSymbolAsync(g_moeError, &zero, sizeof zero, 0, cudaMemcpyHostToDevice, s), "cudaMemcpyToSymbolAsync (moe error word)");
  DW_CUDA(env, cudaStreamSynchronize(s), "cudaStreamSynchronize (opsErrorCheck)");
  const std::string pos = std::to_string(h.pos), bound = std::to_string(h.bound), value = formatNumber(h.value);
  switch (h.op) {
    case kOpTopkBackward:
      return "topk_backward: Expected an index in [0, " + bound + ") for indices (flat position " + pos + ") but received " + value;
    case kOpGatherRows:
      return "gather_rows: Expected -1 or an index in [0, " + bound + ") for idx[" + pos + "] but received " + value;
    case kOpScatterAddRows:
      return "scatter_add_rows: Expected -1 or an index in [0, " + bound + ") for idx[" + pos + "] but received " + value;
    case kOpMoePlan:
      return "moe_plan: Expected an expert id in [0, " + bound + ") for experts[" + pos + ", " + std::to_string(h.aux) + "] but received " + value;
    case kOpOneHot:
      return "one_hot: Expected -1 or an index in [0, " + bound + ") for idx (flat position " + pos + ") but received " + value;
    default:
      return "a moe kernel recorded bad data (op code " + std::to_string(h.op) + ", position " + pos + ", value " + value + ")";
  }
}

void initOps_moe(Napi::Env env, Napi::Object exports) {
  def(env, exports, "topk", Topk);
  def(env, exports, "topkBackward", TopkBackward);
  def(env, exports, "gatherRows", GatherRows);
  def(env, exports, "scatterAddRows", ScatterAddRows);
  def(env, exports, "moePlan", MoePlan);
  def(env, exports, "oneHot", OneHot);
}

}  // namespace dw

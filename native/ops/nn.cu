// CUDA kernels of the 'nn' op family; see ops_common.h for the conventions.
//
// Entry points. A tensor is two arguments, (base, offset); `dtype` is the storage code (0 f32,
// 1 bf16, 2 f16) of every float tensor of the call unless the signature names another; sizes are
// element counts; attributes are plain numbers. Arithmetic is FP32 (loss sums FP64), stores round
// to nearest even.
//
//   softmax(stream, dtype, outer, n, inner, x, y)
//   softmaxBackward(stream, dtype, outer, n, inner, g, y, dx)
//       x: [outer, n, inner], normalised along n (inner = 1 is the last axis).
//   layernorm(stream, dtype, rows, D, eps, x, weight, bias, y, mean, rstd)
//   addLayernorm(stream, dtype, rows, D, eps, x, residual, weight, bias, sum, y, mean, rstd)
//       sum = x + residual (stored, rounded), then layernorm of sum: add_layernorm in one pass.
//   layernormBackward(stream, dtype, rows, D, g, x, weight, mean, rstd, dx, dweight, dbias)
//   rmsnorm(stream, dtype, rows, D, eps, x, weight, y, rstd)
//   rmsnormBackward(stream, dtype, rows, D, g, x, weight, rstd, dx, dweight)
//   embedding(stream, dtype, P, V, D, table, ids, out)                 ids: i32[P]
//   embeddingBackward(stream, dtype, P, V, D, ids, g, dtable)
//   crossEntropy(stream, dtype, N, V, ignoreIndex, logits, targets, loss)      targets: i32[N]
//   crossEntropyBackward(stream, dtype, gDtype, N, V, ignoreIndex, logits, targets, g, dlogits)
//       g: one element of storage gDtype.
//   causalMask(stream, dtype, B, T, S, value, x, out)                  x: [B, T, S]
//   adamw(stream, gradDtype, lrDtype, stepDtype, n, beta1, beta2, eps, weightDecay,
//         param, grad, m, v, lr, step, param2, m2, v2)
//       param, m, v and the outputs are f32; grad any float storage; lr and step one element each,
//       read on the device (so graph replays see new values). Each output may be the very same
//       range as any input (in place) but must not otherwise overlap one.
//   adamwMulti(stream, gradDtype, lrDtype, stepDtype, count, beta1, beta2, eps, weightDecay, lr, step,
//              then per tensor: n, param, grad, m, v, param2, m2, v2)
//       adamw over `count` tensors (one grad dtype) in a few launches (multi-tensor apply).
//   clipCoef(stream, sumsq, coef, norm, maxNorm)       all f32[1]: norm = sqrt(sumsq),
//       coef = min(1, maxNorm / (norm + 1e-6)) (clipping by the global gradient norm)
//   opsErrorCheck(stream)
//
// Bad data (an id, target or index out of range, an AdamW step < 1) cannot throw from a kernel.
// The kernel skips the row (adamw: the whole update; nothing is ever written out of bounds) and
// records the first such value in a per-device error word (g_nnError here, g_moeError in moe.cu); no entry point
// synchronises, so all stay capturable in a CUDA graph. opsErrorCheck(stream) synchronises the
// stream, reads and clears both words and fails with INVALID_ARGUMENT naming the op and the value;
// while the stream is being captured it does nothing (the word keeps the error for the next check).
// The TypeScript run() of the index-taking ops calls it unless the call says checkIndices: false.
//
// Determinism: no floating-point atomics. Row reductions use a fixed shuffle/shared-memory tree;
// dweight/dbias and the cross-entropy mean sum fixed per-block partials in a fixed order (a second
// small kernel); embedding_backward / scatter_add_rows give each thread its own output columns and
// add the rows in ascending position order. Results are bitwise identical run to run (the number
// of partials, and so the summation order of dweight / dbias, depends on the GPU's SM count only).
//
// Scratch: the per-block partials live in fixed __device__ buffers (g_ws, g_ceSum, ...), one per
// device, so nothing is allocated per call. Kernels that use them (layernorm/rmsnorm backward,
// cross_entropy and its backward) must not run concurrently on two streams of one device.
#include "ops/ops_common.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace dw {

// Defined in moe.cu: reads and clears the moe family's error word; "" when it is clear.
std::string moeTakeError(Napi::Env env, cudaStream_t stream);

// Row gather / scatter-add, shared with moe.cu (gather_rows, scatter_add_rows). `err` is the device
// address of the caller family's error word and `op` the code it records for a bad index.
void launchGatherRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out,
                      uint64_t M, uint64_t R, uint64_t D, bool allowNeg, void* err, int op, const char* what);
void launchScatterRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out,
                       uint64_t M, uint64_t R, uint64_t D, bool allowNeg, void* err, int op, const char* what);

namespace {

// ---- the device error word ------------------------------------------------------------------------

// Same layout as moe.cu's. op 0: clear; else the code of the first op that met bad data.
struct ErrWord {
  int op;
  int pad;
  long long pos;    // flat position or row
  long long bound;  // the valid range is [0, bound)
  long long aux;    // op-specific: the ignore index of cross_entropy
  double value;     // the bad value
};

enum NnOp : int { kOpEmbedding = 1, kOpEmbeddingBackward = 2, kOpCrossEntropy = 3, kOpCrossEntropyBackward = 4, kOpAdamw = 5 };

__device__ ErrWord g_nnError;

__device__ __forceinline__ void raiseErr(ErrWord* w, int op, long long pos, double value, long long bound, long long aux = 0) {
  if (atomicCAS(&w->op, 0, op) == 0) {
    w->pos = pos;
    w->bound = bound;
    w->aux = aux;
    w->value = value;
  }
}

// ---- scratch ----------------------------------------------------------------------------------------

constexpr int64_t kWsFloats = int64_t(4) << 20;  // 16 MiB: per-block column partials (norm backwards)
constexpr int kMaxParts = 4096;                  // per-block partial sums of cross_entropy
__device__ float g_ws[kWsFloats];
__device__ double g_ceSum[kMaxParts];
__device__ long long g_ceCount[kMaxParts];
__device__ float g_ceScale;

// ---- host helpers -----------------------------------------------------------------------------------

// A signed integer argument (an ignore index may be negative).
int64_t signedArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber())
    fail(env, "INVALID_ARGUMENT", std::string("Expected a number for ") + name + " (argument " + std::to_string(i) + ")");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(std::fabs(v) <= 2147483647.0) || v != std::trunc(v))
    fail(env, "INVALID_ARGUMENT", std::string("Expected an integer in [-2147483647, 2147483647] for ") + name + " but received " + formatNumber(v));
  return static_cast<int64_t>(v);
}

double numberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber())
    fail(info.Env(), "INVALID_ARGUMENT", std::string("Expected a number for ") + name + " (argument " + std::to_string(i) + ")");
  return info[i].As<Napi::Number>().DoubleValue();
}

uint64_t mulSize(Napi::Env env, uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > static_cast<uint64_t>(kMaxSafeInt) / a)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received " + std::to_string(a) + " x " + std::to_string(b));
  return a * b;
}

void checkRowLength(Napi::Env env, uint64_t D, const char* what) {
  if (D > 2147483647u)
    fail(env, "INVALID_ARGUMENT", std::string("Expected a row length of at most 2147483647 for ") + what + " but received " + std::to_string(D));
}

int smCount() {
  static int cache[64] = {0};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
    cudaGetLastError();
    return 132;
  }
  if (cache[dev] == 0) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) {
      cudaGetLastError();
      n = 132;
    }
    cache[dev] = n;
  }
  return cache[dev];
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Two byte ranges that overlap without being the very same range.
bool badOverlap(const void* a, uint64_t ab, const void* b, uint64_t bb) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  if (ab == 0 || bb == 0) return false;
  if (a0 == b0 && ab == bb) return false;
  return a0 < b0 + bb && b0 < a0 + ab;
}

unsigned capBlocks(uint64_t blocks, uint64_t cap = uint64_t(1) << 20) {
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

// The device address of g_nnError on the current device.
ErrWord* nnErrorWord(Napi::Env env) {
  static void* cache[64] = {};
  return static_cast<ErrWord*>(deviceSymbol(env, g_nnError, cache, "nn error word"));
}

// ---- device helpers ---------------------------------------------------------------------------------

constexpr unsigned kFull = 0xffffffffu;

// V elements of storage T as one aligned access (16 bytes when V * sizeof(T) == 16).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void loadF(const T* p, float (&f)[V]) {
  const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int k = 0; k < V; k++) f[k] = toF(pk.v[k]);
}

template <typename T, int V>
__device__ __forceinline__ void storeF(T* p, const float (&f)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int k = 0; k < V; k++) pk.v[k] = fromF<T>(f[k]);
  *reinterpret_cast<Pack<T, V>*>(p) = pk;
}

__device__ __forceinline__ float loadScalar(const void* p, int code) {
  switch (code) {
    case kF32: return *static_cast<const float*>(p);
    case kBF16: return __bfloat162float(*static_cast<const __nv_bfloat16*>(p));
    case kF16: return __half2float(*static_cast<const __half*>(p));
    default: return NAN;
  }
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Sums over the block (blockDim a multiple of 32); every thread gets the same bits. The xor butterfly
// is symmetric (a + b == b + a), and the warp totals are added in warp order by every thread.
// Ends with a barrier, so `sh` (32 entries) may be reused at once.
__device__ __forceinline__ float blockSum(float v, float* sh) {
  v = warpSum(v);
  const int nw = blockDim.x >> 5;
  if (nw == 1) return v;
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float s = 0.f;
  for (int i = 0; i < nw; i++) s += sh[i];
  __syncthreads();
  return s;
}

__device__ __forceinline__ void blockSum2(float& a, float& b, float2* sh) {
  a = warpSum(a);
  b = warpSum(b);
  const int nw = blockDim.x >> 5;
  if (nw == 1) return;
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = make_float2(a, b);
  __syncthreads();
  float sa = 0.f, sb = 0.f;
  for (int i = 0; i < nw; i++) {
    sa += sh[i].x;
    sb += sh[i].y;
  }
  __syncthreads();
  a = sa;
  b = sb;
}

// Online softmax statistics: M = the running max (raw units) and s = sum(2^((x - M) * log2(e))),
// one subtraction, one multiplication and one MUFU exp2 per element. x - M is exactly 0 at the max
// and stays exact-or-huge for masked entries (a -1e30 causal mask gives 2^-1.4e30 = 0); scaling M
// by log2(e) first and cancelling with an FMA, as an earlier version did, leaves a rounding residue
// of about 1e23 at such magnitudes, which exp2 turns into inf and the merge into NaN.
// -inf elements add nothing (a row of only -inf keeps s = 0 and gives NaN, as exp(-inf - -inf) does
// in the reference); a NaN element makes s NaN, so the whole row is NaN as in the reference.
// exp2 is the hardware approximation (relative error about 2^-22; results below 2^-126, i.e.
// probabilities under 1e-38, flush to 0): the library exp2f spends several more instructions per
// element on subnormal results, and with it the bf16 kernels were bound by instructions, not memory.
// The log-sum-exp of a row is M + ln(s).
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// exp(x - M) for an element, given the statistics' M.
__device__ __forceinline__ float msExp(float x, float M) { return ex2((x - M) * kLog2e); }

template <int V>
__device__ __forceinline__ void msChunk(float& M, float& s, const float (&v)[V]) {
  float cm = v[0];
#pragma unroll
  for (int k = 1; k < V; k++) cm = fmaxf(cm, v[k]);
  if (cm > M) {
    s *= msExp(M, cm);
    M = cm;
  }
  // While everything so far is -inf (M = -inf), shift by 0 instead: -inf elements then add
  // 2^-inf = 0 rather than 2^(-inf + inf) = NaN, and NaN elements still add NaN.
  const float shift = M == -INFINITY ? 0.f : M;
#pragma unroll
  for (int k = 0; k < V; k++) s += msExp(v[k], shift);
}

// Merge two (M, s) pairs; symmetric in its arguments, bit for bit.
__device__ __forceinline__ void msMerge(float& M, float& s, float M2, float s2) {
  const float mm = fmaxf(M, M2);
  const float a = M == mm ? s : s * msExp(M, mm);
  const float b = M2 == mm ? s2 : s2 * msExp(M2, mm);
  M = mm;
  s = a + b;
}

__device__ __forceinline__ void blockMaxSum(float& m, float& s, float2* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(kFull, m, o);
    const float s2 = __shfl_xor_sync(kFull, s, o);
    msMerge(m, s, m2, s2);
  }
  const int nw = blockDim.x >> 5;
  if (nw == 1) return;
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = make_float2(m, s);
  __syncthreads();
  float mm = -INFINITY, ss = 0.f;
  for (int i = 0; i < nw; i++) msMerge(mm, ss, sh[i].x, sh[i].y);
  __syncthreads();
  m = mm;
  s = ss;
}

// ---- row framework ----------------------------------------------------------------------------------
//
// A row belongs to a row group of blockDim.x threads (a multiple of 32): a whole block (blockDim.y
// = 1; reductions through shared memory), or one warp of a block of 4 warps (blockDim.y = 4, for
// short rows; reductions by shuffles only, so the warps run independently). Row groups take rows
// grid-stride. A row is nch chunks of V elements (V = 16 bytes' worth when the row length and every
// row pointer allow, else 1); thread t of a group owns chunks t, t + blockDim.x, ... . CACHED: at
// most NCH chunks per thread, loaded once and kept in registers in their storage format (so bf16
// rows cost half the registers of f32 ones); otherwise each pass reloads them (from L1/L2). Up to
// 512 threads per group when cached, 1024 otherwise.

constexpr int kCachedThreads = 512;

__device__ __forceinline__ int64_t firstRow() { return static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; }
__device__ __forceinline__ int64_t rowStride() { return static_cast<int64_t>(gridDim.x) * blockDim.y; }

template <typename T, int V>
__device__ __forceinline__ void unpack(const Pack<T, V>& pk, float (&f)[V]) {
#pragma unroll
  for (int k = 0; k < V; k++) f[k] = toF(pk.v[k]);
}

template <typename T, int V, int NCH, bool CACHED>
struct RowData {
  Pack<T, V> c[CACHED ? NCH : 1];

  __device__ __forceinline__ void load(const T* row, int nch) {
    if constexpr (CACHED) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < nch) c[i] = reinterpret_cast<const Pack<T, V>*>(row)[j];
      }
    }
  }

  // f(slot, chunk, values): slot is the register slot when CACHED (-1 otherwise).
  template <class F>
  __device__ __forceinline__ void each(const T* row, int nch, F&& f) {
    if constexpr (CACHED) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < nch) {
          float t[V];
          unpack<T, V>(c[i], t);
          f(i, j, t);
        }
      }
    } else {
#pragma unroll 4
      for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        float t[V];
        loadF<T, V>(row + static_cast<int64_t>(j) * V, t);
        f(-1, j, t);
      }
    }
  }
};

template <typename T, int V, int NCH, bool CACHED, class F>
__device__ __forceinline__ void each2(RowData<T, V, NCH, CACHED>& a, const T* ra, RowData<T, V, NCH, CACHED>& b, const T* rb, int nch, F&& f) {
  if constexpr (CACHED) {
#pragma unroll
    for (int i = 0; i < NCH; i++) {
      const int j = threadIdx.x + i * blockDim.x;
      if (j < nch) {
        float ta[V], tb[V];
        unpack<T, V>(a.c[i], ta);
        unpack<T, V>(b.c[i], tb);
        f(i, j, ta, tb);
      }
    }
  } else {
#pragma unroll 4
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float ta[V], tb[V];
      loadF<T, V>(ra + static_cast<int64_t>(j) * V, ta);
      loadF<T, V>(rb + static_cast<int64_t>(j) * V, tb);
      f(-1, j, ta, tb);
    }
  }
}

constexpr int chunksFor(int floats, int V) { return floats / V < 1 ? 1 : floats / V; }

struct RowPlan {
  int threads;  // per row group (blockDim.x)
  int groups;   // row groups per block (blockDim.y)
  bool cached;
  dim3 block() const { return dim3(threads, groups); }
  unsigned grid(uint64_t rows) const { return capBlocks((rows + groups - 1) / groups); }
};

// Fewest threads (a multiple of 32) that hold the row in NCH chunks each; uncached past 512.
RowPlan rowPlan(int64_t nch, int NCH) {
  int64_t t = (nch + NCH - 1) / NCH;
  t = (t + 31) / 32 * 32;
  if (t < 32) t = 32;
  if (t > kCachedThreads) return {1024, 1, false};
  return {static_cast<int>(t), t == 32 ? 4 : 1, true};
}

// ---- softmax ----------------------------------------------------------------------------------------

// Elements per thread held in registers: 64 bytes of storage for single-input row kernels (16 f32 or
// 32 bf16 / f16: on an H200, 16 beat 32 for f32 rows and 32 beat 16 for bf16 ones), 16 elements per
// input for the two-input backward kernels.
constexpr int kFwdBytes = 64;
constexpr int kBwdFloats = 16;
#define DW_FWD_ELEMS(T) (kFwdBytes / static_cast<int>(sizeof(T)))

template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024) softmaxRowsK(const T* x, T* y, int64_t rows, int nch) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(xr, nch);
    float M = -INFINITY, s = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) { msChunk<V>(M, s, v); });
    blockMaxSum(M, s, sh);
    const float inv = 1.f / s;
    rx.each(xr, nch, [&](int, int j, const float(&v)[V]) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = msExp(v[k], M) * inv;
      storeF<T, V>(yr + static_cast<int64_t>(j) * V, o);
    });
  }
}

// Softmax along a non-last axis: one thread per (outer, inner) column, coalesced across inner.
template <typename T>
__global__ void softmaxColsK(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const T* xp = x + o * n * inner + i;
    T* yp = y + o * n * inner + i;
    float M = -INFINITY, s = 0.f;
    for (int64_t k = 0; k < n; k++) {
      const float v[1] = {toF(xp[k * inner])};
      msChunk<1>(M, s, v);
    }
    const float inv = 1.f / s;
    for (int64_t k = 0; k < n; k++) yp[k * inner] = fromF<T>(msExp(toF(xp[k * inner]), M) * inv);
  }
}

template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024) softmaxBwdRowsK(const T* g, const T* y, T* dx, int64_t rows, int nch) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    T* dr = dx + row * D;
    RowData<T, V, NCH, CACHED> rg, ry;
    rg.load(gr, nch);
    ry.load(yr, nch);
    float dot = 0.f;
    each2(rg, gr, ry, yr, nch, [&](int, int, const float(&gv)[V], const float(&yv)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) dot += gv[k] * yv[k];
    });
    dot = blockSum(dot, sh);
    each2(rg, gr, ry, yr, nch, [&](int, int j, const float(&gv)[V], const float(&yv)[V]) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = yv[k] * (gv[k] - dot);
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
}

template <typename T>
__global__ void softmaxBwdColsK(const T* g, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const int64_t base = o * n * inner + i;
    float dot = 0.f;
    for (int64_t k = 0; k < n; k++) dot += toF(g[base + k * inner]) * toF(y[base + k * inner]);
    for (int64_t k = 0; k < n; k++) {
      const float yv = toF(y[base + k * inner]);
      dx[base + k * inner] = fromF<T>(yv * (toF(g[base + k * inner]) - dot));
    }
  }
}

// ---- layernorm / rmsnorm ----------------------------------------------------------------------------

// With RES (add_layernorm), the row normalised is s = x + r, rounded to T and written out first (as
// the unfused add would store it); each thread then reads back only the chunks it wrote itself.
template <typename T, int V, int NCH, bool CACHED, bool RES>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    layernormK(const T* x, const T* r, T* s, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows, int nch, float eps) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    if constexpr (RES) {
      const T* rr = r + row * D;
      T* sr = s + row * D;
      for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        float a[V], c[V];
        loadF<T, V>(xr + static_cast<int64_t>(j) * V, a);
        loadF<T, V>(rr + static_cast<int64_t>(j) * V, c);
#pragma unroll
        for (int k = 0; k < V; k++) a[k] += c[k];
        storeF<T, V>(sr + static_cast<int64_t>(j) * V, a);
      }
      xr = sr;
    }
    RowData<T, V, NCH, CACHED> rx;
    rx.load(xr, nch);
    float sum = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) sum += v[k];
    });
    const float mu = blockSum(sum, sh) / Df;
    float sq = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float d = v[k] - mu;
        sq += d * d;
      }
    });
    const float r = 1.f / sqrtf(blockSum(sq, sh) / Df + eps);
    rx.each(xr, nch, [&](int, int j, const float(&v)[V]) {
      float wv[V], bv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
      loadF<T, V>(b + static_cast<int64_t>(j) * V, bv);
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = (v[k] - mu) * r * wv[k] + bv[k];
      storeF<T, V>(yr + static_cast<int64_t>(j) * V, o);
    });
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = r;
    }
  }
}

// dx per row; the row group's column sums of g * xhat and g go to its slice of g_ws
// ([gridDim.x * blockDim.y][2][D]): kept in registers when CACHED, read-modify-written in g_ws
// otherwise. Each column of a slice belongs to one thread, so the slices are deterministic.
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    layernormBwdK(const T* g, const T* x, const T* w, const float* mean, const float* rstd, T* dx, int64_t rows, int nch) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  float* pw = g_ws + firstRow() * 2 * D;  // this row group's slice (firstRow() is its slot)
  float* pb = pw + D;
  float aw[CACHED ? NCH : 1][V], ab[CACHED ? NCH : 1][V];
#pragma unroll
  for (int i = 0; i < (CACHED ? NCH : 1); i++)
#pragma unroll
    for (int k = 0; k < V; k++) aw[i][k] = ab[i][k] = 0.f;
  if constexpr (!CACHED) {
    for (int64_t e = threadIdx.x * static_cast<int64_t>(V); e < D; e += static_cast<int64_t>(blockDim.x) * V)
      for (int k = 0; k < V; k++) pw[e + k] = pb[e + k] = 0.f;
  }
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const float mu = mean[row], r = rstd[row];
    const T* gr = g + row * D;
    const T* xr = x + row * D;
    T* dr = dx + row * D;
    RowData<T, V, NCH, CACHED> rg, rx;
    rg.load(gr, nch);
    rx.load(xr, nch);
    float sGw = 0.f, sGwX = 0.f;
    each2(rg, gr, rx, xr, nch, [&](int i, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float xh = (xv[k] - mu) * r;
        const float gw = __fmul_rn(gv[k], wv[k]);
        sGw += gw;
        sGwX += gw * xh;
        if constexpr (CACHED) {
          aw[i][k] += gv[k] * xh;
          ab[i][k] += gv[k];
        } else {
          pw[static_cast<int64_t>(j) * V + k] += gv[k] * xh;
          pb[static_cast<int64_t>(j) * V + k] += gv[k];
        }
      }
    });
    blockSum2(sGw, sGwX, sh);
    const float mGw = sGw / Df, mGwX = sGwX / Df;
    each2(rg, gr, rx, xr, nch, [&](int, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float xh = (xv[k] - mu) * r;
        o[k] = r * (__fmul_rn(gv[k], wv[k]) - mGw - xh * mGwX);
      }
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
  if constexpr (CACHED) {
#pragma unroll
    for (int i = 0; i < NCH; i++) {
      const int j = threadIdx.x + i * blockDim.x;
      if (j < nch)
#pragma unroll
        for (int k = 0; k < V; k++) {
          pw[static_cast<int64_t>(j) * V + k] = aw[i][k];
          pb[static_cast<int64_t>(j) * V + k] = ab[i][k];
        }
    }
  }
}

template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024) rmsnormK(const T* x, const T* w, T* y, float* rstd, int64_t rows, int nch, float eps) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(xr, nch);
    float sq = 0.f;
    rx.each(xr, nch, [&](int, int, const float(&v)[V]) {
#pragma unroll
      for (int k = 0; k < V; k++) sq += v[k] * v[k];
    });
    const float r = 1.f / sqrtf(blockSum(sq, sh) / Df + eps);
    rx.each(xr, nch, [&](int, int j, const float(&v)[V]) {
      float wv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = v[k] * r * wv[k];
      storeF<T, V>(yr + static_cast<int64_t>(j) * V, o);
    });
    if (threadIdx.x == 0) rstd[row] = r;
  }
}

// As layernormBwdK; the slice of g_ws is [gridDim.x * blockDim.y][D] (dweight only).
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    rmsnormBwdK(const T* g, const T* x, const T* w, const float* rstd, T* dx, int64_t rows, int nch) {
  __shared__ float sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  float* pw = g_ws + firstRow() * D;
  float aw[CACHED ? NCH : 1][V];
#pragma unroll
  for (int i = 0; i < (CACHED ? NCH : 1); i++)
#pragma unroll
    for (int k = 0; k < V; k++) aw[i][k] = 0.f;
  if constexpr (!CACHED) {
    for (int64_t e = threadIdx.x * static_cast<int64_t>(V); e < D; e += static_cast<int64_t>(blockDim.x) * V)
      for (int k = 0; k < V; k++) pw[e + k] = 0.f;
  }
  for (int64_t row = firstRow(); row < rows; row += rowStride()) {
    const float r = rstd[row];
    const T* gr = g + row * D;
    const T* xr = x + row * D;
    T* dr = dx + row * D;
    RowData<T, V, NCH, CACHED> rg, rx;
    rg.load(gr, nch);
    rx.load(xr, nch);
    float sGwX = 0.f;
    each2(rg, gr, rx, xr, nch, [&](int i, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) {
        sGwX += __fmul_rn(gv[k], wv[k]) * xv[k];
        if constexpr (CACHED) {
          aw[i][k] += gv[k] * xv[k] * r;
        } else {
          pw[static_cast<int64_t>(j) * V + k] += gv[k] * xv[k] * r;
        }
      }
    });
    sGwX = blockSum(sGwX, sh);
    const float c = r * r * sGwX / Df;
    each2(rg, gr, rx, xr, nch, [&](int, int j, const float(&gv)[V], const float(&xv)[V]) {
      float wv[V], o[V];
      loadF<T, V>(w + static_cast<int64_t>(j) * V, wv);
#pragma unroll
      for (int k = 0; k < V; k++) o[k] = r * (__fmul_rn(gv[k], wv[k]) - xv[k] * c);
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
  if constexpr (CACHED) {
#pragma unroll
    for (int i = 0; i < NCH; i++) {
      const int j = threadIdx.x + i * blockDim.x;
      if (j < nch)
#pragma unroll
        for (int k = 0; k < V; k++) pw[static_cast<int64_t>(j) * V + k] = aw[i][k];
    }
  }
}

// out0[d] = sum over b in [0, nb) of g_ws[b * stride + d] (and out1 from g_ws[b * stride + D + d]),
// in a fixed order: warp w adds b = w, w + 32, ... in turn, then warp 0 adds the 32 warp sums in order.
// Lanes take consecutive columns. nb = 0 writes zeros.
constexpr int kReduceThreads = 1024;

template <typename T>
__global__ void __launch_bounds__(kReduceThreads) colReduceK(int nb, int64_t D, int64_t stride, T* out0, T* out1) {
  __shared__ float sh[2][kReduceThreads / 32][33];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int64_t c0 = blockIdx.x * 32LL; c0 < D; c0 += gridDim.x * 32LL) {
    const int64_t d = c0 + lane;
    float s0 = 0.f, s1 = 0.f;
    if (d < D) {
      for (int b = w; b < nb; b += nw) {
        s0 += g_ws[b * stride + d];
        if (out1) s1 += g_ws[b * stride + D + d];
      }
    }
    sh[0][w][lane] = s0;
    sh[1][w][lane] = s1;
    __syncthreads();
    if (w == 0 && d < D) {
      float t0 = 0.f, t1 = 0.f;
      for (int i = 0; i < nw; i++) {
        t0 += sh[0][i][lane];
        t1 += sh[1][i][lane];
      }
      out0[d] = fromF<T>(t0);
      if (out1) out1[d] = fromF<T>(t1);
    }
    __syncthreads();
  }
}

// ---- cross entropy ----------------------------------------------------------------------------------

// One pass over each counted row: online max / sum, then loss = logsumexp - logit[target] (FP64
// from there), summed per block into g_ceSum / g_ceCount[blockIdx.x]. One row per block.
template <typename T, int V>
__global__ void __launch_bounds__(256) ceFwdK(const T* logits, const int* targets, int64_t N, int nch, int ignore, ErrWord* err) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  double acc = 0.0;
  long long cnt = 0;
  for (int64_t row = firstRow(); row < N; row += rowStride()) {
    const int t = targets[row];
    if (t == ignore) continue;
    if (t < 0 || t >= D) {
      if (threadIdx.x == 0) raiseErr(err, kOpCrossEntropy, row, t, D, ignore);
      continue;
    }
    const T* lr = logits + row * D;
    float M = -INFINITY, s = 0.f;
#pragma unroll 4
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      float v[V];
      loadF<T, V>(lr + static_cast<int64_t>(j) * V, v);
      msChunk<V>(M, s, v);
    }
    blockMaxSum(M, s, sh);
    if (threadIdx.x == 0) {
      acc += static_cast<double>(M) + log(static_cast<double>(s)) - static_cast<double>(toF(lr[t]));
      cnt++;
    }
  }
  if (threadIdx.x == 0) {
    g_ceSum[blockIdx.x] = acc;
    g_ceCount[blockIdx.x] = cnt;
  }
}

// loss[0] = sum of the nb partial sums / their counts (0 when nothing counted), in a fixed order.
// The loss is f32 whatever the logits' storage (the op's rule).
__global__ void __launch_bounds__(256) ceFinalK(int nb, float* loss) {
  __shared__ double shs[8];
  __shared__ long long shc[8];
  double s = 0.0;
  long long c = 0;
  for (int b = threadIdx.x; b < nb; b += blockDim.x) {
    s += g_ceSum[b];
    c += g_ceCount[b];
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    s += __shfl_xor_sync(kFull, s, o);
    c += __shfl_xor_sync(kFull, c, o);
  }
  if ((threadIdx.x & 31) == 0) {
    shs[threadIdx.x >> 5] = s;
    shc[threadIdx.x >> 5] = c;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double ts = 0.0;
    long long tc = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); i++) {
      ts += shs[i];
      tc += shc[i];
    }
    loss[0] = tc == 0 ? 0.f : static_cast<float>(ts / static_cast<double>(tc));
  }
}

// g_ceScale = g[0] / (rows whose target is a class, not the ignore index), 0 when there are none.
__global__ void __launch_bounds__(1024) ceScaleK(const int* targets, int64_t N, int64_t D, int ignore, const void* g, int gCode) {
  __shared__ long long sh[32];
  long long c = 0;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    const int t = targets[r];
    if (t != ignore && t >= 0 && t < D) c++;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(kFull, c, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long tc = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); i++) tc += sh[i];
    const float gv = loadScalar(g, gCode);
    g_ceScale = tc == 0 ? 0.f : static_cast<float>(static_cast<double>(gv) / static_cast<double>(tc));
  }
}

// dlogits = (softmax(row) - onehot(target)) * g_ceScale; ignored rows are zero; a bad target skips
// its row (and is recorded).
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    ceBwdK(const T* logits, const int* targets, T* dlogits, int64_t N, int nch, int ignore, ErrWord* err) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t row = firstRow(); row < N; row += rowStride()) {
    const int t = targets[row];
    T* dr = dlogits + row * D;
    if (t == ignore) {
      const float z[V] = {};
      for (int j = threadIdx.x; j < nch; j += blockDim.x) storeF<T, V>(dr + static_cast<int64_t>(j) * V, z);
      continue;
    }
    if (t < 0 || t >= D) {
      if (threadIdx.x == 0) raiseErr(err, kOpCrossEntropyBackward, row, t, D, ignore);
      continue;
    }
    const T* lr = logits + row * D;
    RowData<T, V, NCH, CACHED> rx;
    rx.load(lr, nch);
    float M = -INFINITY, s = 0.f;
    rx.each(lr, nch, [&](int, int, const float(&v)[V]) { msChunk<V>(M, s, v); });
    blockMaxSum(M, s, sh);
    const float inv = 1.f / s;
    const float scale = g_ceScale;
    rx.each(lr, nch, [&](int, int j, const float(&v)[V]) {
      float o[V];
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float p = msExp(v[k], M) * inv;
        o[k] = (static_cast<int64_t>(j) * V + k == t ? p - 1.f : p) * scale;
      }
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
}

// ---- causal mask ------------------------------------------------------------------------------------

// out[b, i, j] = x[b, i, j] when j <= i + (S - nq), else value. Chunks of V never straddle rows
// (V divides S).
template <typename T, int V>
__global__ void causalMaskK(const T* x, T* out, int64_t chunks, int64_t nchRow, int64_t nq, int64_t S, float value) {
  const T fill = fromF<T>(value);
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < chunks; c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = c / nchRow;
    const int64_t j0 = (c - row * nchRow) * V;
    const int64_t lim = row % nq + (S - nq);
    Pack<T, V> p = reinterpret_cast<const Pack<T, V>*>(x)[c];
#pragma unroll
    for (int k = 0; k < V; k++)
      if (j0 + k > lim) p.v[k] = fill;
    reinterpret_cast<Pack<T, V>*>(out)[c] = p;
  }
}

// ---- adamw ------------------------------------------------------------------------------------------

// One AdamW step's constants, from lr and step read on the device (so graph replays see new values).
struct AdamwMath {
  float lr, ic1, ic2, fb1, fb2, ob1, ob2, decay, eps;

  // False (and the step recorded in the error word by block 0) when the step count is < 1.
  __device__ __forceinline__ bool setup(const void* lrP, int lrCode, const void* stepP, int stepCode, double b1, double b2, float epsIn, float wd, ErrWord* err) {
    lr = loadScalar(lrP, lrCode);
    const float t = loadScalar(stepP, stepCode);
    if (!(t >= 1.f)) {
      if (blockIdx.x == 0 && threadIdx.x == 0) raiseErr(err, kOpAdamw, 0, t, 1);
      return false;
    }
    ic1 = static_cast<float>(1.0 / (1.0 - pow(b1, static_cast<double>(t))));
    ic2 = static_cast<float>(1.0 / (1.0 - pow(b2, static_cast<double>(t))));
    fb1 = static_cast<float>(b1);
    fb2 = static_cast<float>(b2);
    ob1 = static_cast<float>(1.0 - b1);
    ob2 = static_cast<float>(1.0 - b2);
    decay = 1.f - lr * wd;
    eps = epsIn;
    return true;
  }

  __device__ __forceinline__ void operator()(float pv, float gv, float mv, float vv, float& po, float& mo, float& vo) const {
    mo = fb1 * mv + ob1 * gv;
    vo = fb2 * vv + ob2 * gv * gv;
    po = pv * decay - (lr * (mo * ic1)) / (sqrtf(vo * ic2) + eps);
  }
};

// Elements [begin, end) of one tensor, threads `first`, `first + step`, ...: float4 (and 4 grad
// values) at a time for the part from begin that is a multiple of 4 long when VEC (begin is a
// multiple of 4 and the pointers 16-byte aligned), one at a time for the rest.
// Every input element is read before the same element of any output is written, by the same thread,
// so outputs may be the inputs themselves (no __restrict__ here on purpose).
template <typename G, bool VEC>
__device__ __forceinline__ void adamwRange(const AdamwMath& am, const float* p, const G* g, const float* m, const float* v, float* p2, float* m2, float* v2,
                                           int64_t begin, int64_t end, int64_t first, int64_t step) {
  int64_t done = begin;
  if constexpr (VEC) {
    const int64_t c0 = begin / 4, c1 = c0 + (end - begin) / 4;
    for (int64_t c = c0 + first; c < c1; c += step) {
      const float4 pv = reinterpret_cast<const float4*>(p)[c];
      const float4 mv = reinterpret_cast<const float4*>(m)[c];
      const float4 vv = reinterpret_cast<const float4*>(v)[c];
      float gv[4];
      loadF<G, 4>(g + c * 4, gv);
      float4 po, mo, vo;
      am(pv.x, gv[0], mv.x, vv.x, po.x, mo.x, vo.x);
      am(pv.y, gv[1], mv.y, vv.y, po.y, mo.y, vo.y);
      am(pv.z, gv[2], mv.z, vv.z, po.z, mo.z, vo.z);
      am(pv.w, gv[3], mv.w, vv.w, po.w, mo.w, vo.w);
      reinterpret_cast<float4*>(p2)[c] = po;
      reinterpret_cast<float4*>(m2)[c] = mo;
      reinterpret_cast<float4*>(v2)[c] = vo;
    }
    done = c1 * 4;
  }
  for (int64_t i = done + first; i < end; i += step) {
    float po, mo, vo;
    am(p[i], toF(g[i]), m[i], v[i], po, mo, vo);
    p2[i] = po;
    m2[i] = mo;
    v2[i] = vo;
  }
}

template <typename G, bool VEC>
__global__ void __launch_bounds__(256)
    adamwK(const float* p, const G* g, const float* m, const float* v, float* p2, float* m2, float* v2, int64_t n, const void* lrP, int lrCode,
           const void* stepP, int stepCode, double b1, double b2, float eps, float wd, ErrWord* err) {
  AdamwMath am;
  if (!am.setup(lrP, lrCode, stepP, stepCode, b1, b2, eps, wd, err)) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  adamwRange<G, VEC>(am, p, g, m, v, p2, m2, v2, 0, n, tid, stride);
}

// Multi-tensor AdamW: up to kAdamwBatch tensors per launch, passed by value as the kernel's
// parameters (so a captured graph holds them). Each block updates one chunk of kAdamwChunk elements
// of one tensor; start[k] is the first block of tensor k (a prefix sum).
constexpr int kAdamwBatch = 32;
constexpr int64_t kAdamwChunk = 8192;
// One tensor's AdamW operands.
struct AdamwArgs {
  const float* p;
  const void* g;
  const float* m;
  const float* v;
  float* p2;
  float* m2;
  float* v2;
};
struct AdamwTensor {
  AdamwArgs a;
  int64_t n;
};
struct AdamwBatch {
  AdamwTensor t[kAdamwBatch];
  int start[kAdamwBatch + 1];
  int vec[kAdamwBatch];
  int count;
};
static_assert(sizeof(AdamwBatch) < 4000, "kernel parameters are limited to 4 KiB");

template <typename G>
__global__ void __launch_bounds__(256)
    adamwMultiK(const AdamwBatch batch, const void* lrP, int lrCode, const void* stepP, int stepCode, double b1, double b2, float eps, float wd, ErrWord* err) {
  AdamwMath am;
  if (!am.setup(lrP, lrCode, stepP, stepCode, b1, b2, eps, wd, err)) return;
  const int blk = static_cast<int>(blockIdx.x);
  int k = 0;
  while (k + 1 < batch.count && batch.start[k + 1] <= blk) k++;
  const AdamwArgs& e = batch.t[k].a;
  const int64_t n = batch.t[k].n;
  const int64_t begin = static_cast<int64_t>(blk - batch.start[k]) * kAdamwChunk;
  const int64_t end = begin + kAdamwChunk < n ? begin + kAdamwChunk : n;
  const G* g = static_cast<const G*>(e.g);
  if (batch.vec[k])
    adamwRange<G, true>(am, e.p, g, e.m, e.v, e.p2, e.m2, e.v2, begin, end, threadIdx.x, blockDim.x);
  else
    adamwRange<G, false>(am, e.p, g, e.m, e.v, e.p2, e.m2, e.v2, begin, end, threadIdx.x, blockDim.x);
}

// ---- row gather / scatter-add (embedding, gather_rows, scatter_add_rows) -----------------------------

// out[m] = src[idx[m]]; with allowNeg, idx -1 gives a zero row. A bad index skips its row. Threads
// (x) copy chunks of one row, blockDim.y rows per block.
template <typename T, int V>
__global__ void __launch_bounds__(256)
    gatherRowsK(const T* src, const int* idx, T* out, int64_t M, int64_t R, int nch, int allowNeg, ErrWord* err, int op) {
  const int64_t D = static_cast<int64_t>(nch) * V;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; m < M; m += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    const int id = idx[m];
    Pack<T, V>* o = reinterpret_cast<Pack<T, V>*>(out + m * D);
    if (allowNeg && id == -1) {
      Pack<T, V> z;
#pragma unroll
      for (int k = 0; k < V; k++) z.v[k] = fromF<T>(0.f);
      for (int j = threadIdx.x; j < nch; j += blockDim.x) o[j] = z;
      continue;
    }
    if (id < 0 || id >= R) {
      if (threadIdx.x == 0) raiseErr(err, op, m, id, R);
      continue;
    }
    const Pack<T, V>* s = reinterpret_cast<const Pack<T, V>*>(src + id * D);
    for (int j = threadIdx.x; j < nch; j += blockDim.x) o[j] = s[j];
  }
}

// Records the first bad index (outside [0, R) and, with allowNeg, not -1); used when the output is
// empty and no kernel would otherwise look at the indices.
__global__ void validateIdxK(const int* idx, int64_t M, int64_t R, int allowNeg, ErrWord* err, int op) {
  for (int64_t m = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; m < M; m += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int id = idx[m];
    if (!(allowNeg && id == -1) && (id < 0 || id >= R)) raiseErr(err, op, m, id, R);
  }
}

// out[r] = sum of src[m] over m with idx[m] = r, in ascending m; rows nobody names are zero.
// Block (bx, by) owns output rows [bx * VB, + VB) and columns [by * CB, + CB), accumulated in FP32
// in shared memory; thread t owns the columns c = t (mod 256) of that tile. Every block scans all
// of idx in tiles of 2048 positions; the positions that fall in its rows are added one at a time in
// ascending order (ballot masks, walked in position order), so the sum order is fixed.
constexpr int kScatThreads = 256;
constexpr int kScatIpt = 8;
constexpr int kScatTile = kScatThreads * kScatIpt;
constexpr int kScatSmemFloats = 10240;  // 40 KiB of accumulators per block

template <typename T>
__global__ void __launch_bounds__(kScatThreads)
    scatterRowsK(const T* src, const int* idx, T* out, int64_t M, int64_t R, int64_t D, int VB, int CB, int allowNeg, ErrWord* err, int op) {
  extern __shared__ float acc[];  // [VB][CB]
  __shared__ unsigned masks[kScatIpt][kScatThreads / 32];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * VB;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * CB;
  const int nr = static_cast<int>(min(static_cast<int64_t>(VB), R - r0));
  const int nc = static_cast<int>(min(static_cast<int64_t>(CB), D - c0));
  const bool flagger = blockIdx.x == 0 && blockIdx.y == 0;
  for (int e = tid; e < VB * CB; e += kScatThreads) acc[e] = 0.f;
  __syncthreads();
  for (int64_t base = 0; base < M; base += kScatTile) {
    bool any = false;
#pragma unroll
    for (int i = 0; i < kScatIpt; i++) {
      const int64_t p = base + i * kScatThreads + tid;
      bool hit = false;
      if (p < M) {
        const int id = idx[p];
        if (id >= r0 && id < r0 + nr) {
          hit = true;
        } else if (flagger && (id >= R || (id < 0 && !(allowNeg && id == -1)))) {
          raiseErr(err, op, p, id, R);
        }
      }
      const unsigned b = __ballot_sync(kFull, hit);
      if (lane == 0) masks[i][warp] = b;
      any = any || hit;
    }
    if (!__syncthreads_or(any)) continue;  // no position of this tile lands here (masks unread)
    for (int i = 0; i < kScatIpt; i++) {
      for (int w = 0; w < kScatThreads / 32; w++) {
        unsigned b = masks[i][w];
        while (b) {
          const int l = __ffs(b) - 1;
          b &= b - 1;
          const int64_t p = base + i * kScatThreads + w * 32 + l;
          const int rr = static_cast<int>(idx[p] - r0);
          const T* sp = src + p * D + c0;
          float* ap = acc + rr * CB;
          for (int c = tid; c < nc; c += kScatThreads) ap[c] += toF(sp[c]);
        }
      }
    }
    __syncthreads();  // masks are rewritten by the next tile
  }
  __syncthreads();
  for (int e = tid; e < nr * nc; e += kScatThreads) {
    const int rr = e / nc, cc = e - rr * nc;
    out[(r0 + rr) * D + c0 + cc] = fromF<T>(acc[rr * CB + cc]);
  }
}

template <typename T, int V>
void gatherLaunch(cudaStream_t s, const T* src, const int* idx, T* out, uint64_t M, uint64_t R, uint64_t D, bool allowNeg, ErrWord* err, int op) {
  const int nch = static_cast<int>(D / V);
  int tx = (nch + 31) / 32 * 32;
  tx = tx < 32 ? 32 : tx > 256 ? 256 : tx;
  const int ty = 256 / tx;
  const unsigned grid = capBlocks((M + ty - 1) / ty);
  gatherRowsK<T, V><<<grid, dim3(tx, ty), 0, s>>>(src, idx, out, static_cast<int64_t>(M), static_cast<int64_t>(R), nch, allowNeg ? 1 : 0, err, op);
}

void validateLaunch(cudaStream_t s, const int* idx, uint64_t M, uint64_t R, bool allowNeg, ErrWord* err, int op) {
  validateIdxK<<<capBlocks((M + 255) / 256, 4096), 256, 0, s>>>(idx, static_cast<int64_t>(M), static_cast<int64_t>(R), allowNeg ? 1 : 0, err, op);
}

// ---- row-kernel launchers ---------------------------------------------------------------------------

template <typename T>
bool canVec(uint64_t D, std::initializer_list<const void*> ptrs) {
  constexpr uint64_t V = 16 / sizeof(T);
  if (D % V != 0) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

// Runs body(V, NCH, CACHED) as a template-lambda for the vector width the row and pointers allow.
#define DW_ROW_DISPATCH(T, vec, FLOATS, ...)                                                           \
  do {                                                                                                 \
    if (vec) {                                                                                         \
      constexpr int V = 16 / sizeof(T);                                                                \
      constexpr int NCH = chunksFor(FLOATS, V);                                                        \
      __VA_ARGS__                                                                                      \
    } else {                                                                                           \
      constexpr int V = 1;                                                                             \
      constexpr int NCH = chunksFor(FLOATS, V);                                                        \
      __VA_ARGS__                                                                                      \
    }                                                                                                  \
  } while (0)

// Grid for a backward row kernel whose row groups each keep column partials of `arrays` x D floats
// in g_ws: enough groups to fill the GPU, at most one per 16 rows beyond 2 per SM (the partials are
// extra traffic), and within g_ws. The kernel has grid * groups slots.
unsigned bwdGrid(const RowPlan& p, uint64_t rows, uint64_t D, int arrays) {
  const uint64_t sms = static_cast<uint64_t>(smCount());
  uint64_t slots = sms * static_cast<uint64_t>(2048 / p.threads);
  const uint64_t byRows = (rows + 15) / 16 > 2 * sms ? (rows + 15) / 16 : 2 * sms;
  if (slots > byRows) slots = byRows;
  if (slots > rows) slots = rows;
  const uint64_t byWs = static_cast<uint64_t>(kWsFloats) / (static_cast<uint64_t>(arrays) * D);
  if (slots > byWs) slots = byWs;
  const uint64_t grid = slots / static_cast<uint64_t>(p.groups);
  return static_cast<unsigned>(grid < 1 ? 1 : grid);
}

template <typename T>
void launchColReduce(cudaStream_t s, unsigned nb, uint64_t D, uint64_t stride, T* out0, T* out1) {
  colReduceK<T><<<capBlocks((D + 31) / 32, 4096), kReduceThreads, 0, s>>>(static_cast<int>(nb), static_cast<int64_t>(D), static_cast<int64_t>(stride), out0, out1);
}

// ---- entry points -----------------------------------------------------------------------------------

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t outer = u64Arg(info, 2, "softmax outer"), n = u64Arg(info, 3, "softmax n"), inner = u64Arg(info, 4, "softmax inner");
  const uint64_t total = mulSize(env, mulSize(env, outer, n, "softmax x"), inner, "softmax x");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = devArg<T>(info, 5, total, sizeof(T), "softmax x");
    T* y = devArg<T>(info, 7, total, sizeof(T), "softmax y");
    if (total == 0) return env.Undefined();
    if (inner == 1) {
      checkRowLength(env, n, "softmax");
      DW_ROW_DISPATCH(T, canVec<T>(n, {x, y}), DW_FWD_ELEMS(T), {
        const int nch = static_cast<int>(n / V);
        const RowPlan p = rowPlan(nch, NCH);
        if (p.cached)
          softmaxRowsK<T, V, NCH, true><<<p.grid(outer), p.block(), 0, s>>>(x, y, static_cast<int64_t>(outer), nch);
        else
          softmaxRowsK<T, V, NCH, false><<<p.grid(outer), p.block(), 0, s>>>(x, y, static_cast<int64_t>(outer), nch);
      });
    } else {
      softmaxColsK<T><<<capBlocks((outer * inner + 255) / 256), 256, 0, s>>>(x, y, static_cast<int64_t>(outer), static_cast<int64_t>(n), static_cast<int64_t>(inner));
    }
    checkLaunch(env, "softmax");
  });
  return env.Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t outer = u64Arg(info, 2, "softmax_backward outer"), n = u64Arg(info, 3, "softmax_backward n"), inner = u64Arg(info, 4, "softmax_backward inner");
  const uint64_t total = mulSize(env, mulSize(env, outer, n, "softmax_backward g"), inner, "softmax_backward g");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* g = devArg<T>(info, 5, total, sizeof(T), "softmax_backward g");
    const T* y = devArg<T>(info, 7, total, sizeof(T), "softmax_backward y");
    T* dx = devArg<T>(info, 9, total, sizeof(T), "softmax_backward dx");
    if (total == 0) return env.Undefined();
    if (inner == 1) {
      checkRowLength(env, n, "softmax_backward");
      DW_ROW_DISPATCH(T, canVec<T>(n, {g, y, dx}), kBwdFloats, {
        const int nch = static_cast<int>(n / V);
        const RowPlan p = rowPlan(nch, NCH);
        if (p.cached)
          softmaxBwdRowsK<T, V, NCH, true><<<p.grid(outer), p.block(), 0, s>>>(g, y, dx, static_cast<int64_t>(outer), nch);
        else
          softmaxBwdRowsK<T, V, NCH, false><<<p.grid(outer), p.block(), 0, s>>>(g, y, dx, static_cast<int64_t>(outer), nch);
      });
    } else {
      softmaxBwdColsK<T><<<capBlocks((outer * inner + 255) / 256), 256, 0, s>>>(g, y, dx, static_cast<int64_t>(outer), static_cast<int64_t>(n), static_cast<int64_t>(inner));
    }
    checkLaunch(env, "softmax_backward");
  });
  return env.Undefined();
}

// layernorm and add_layernorm: the same kernel; add_layernorm takes the residual r after x and
// writes the sum s before y.
Napi::Value layernormCall(const Napi::CallbackInfo& info, bool res) {
  Napi::Env env = info.Env();
  const std::string op = res ? "add_layernorm" : "layernorm";
  auto name = [&](const char* what) { return op + " " + what; };
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t rows = u64Arg(info, 2, name("rows").c_str()), D = u64Arg(info, 3, name("D").c_str());
  const float eps = static_cast<float>(numberArg(info, 4, name("eps").c_str()));
  const uint64_t total = mulSize(env, rows, D, name("x").c_str());
  checkRowLength(env, D, op.c_str());
  DW_DISPATCH_FLOAT(env, dt, T, {
    size_t i = 5;
    auto next = [&](uint64_t elems, size_t bytes, const char* what) {
      void* p = devArg<uint8_t>(info, i, elems, bytes, name(what).c_str());
      i += 2;
      return p;
    };
    const T* x = static_cast<const T*>(next(total, sizeof(T), "x"));
    const T* r = res ? static_cast<const T*>(next(total, sizeof(T), "residual")) : nullptr;
    const T* w = static_cast<const T*>(next(D, sizeof(T), "weight"));
    const T* b = static_cast<const T*>(next(D, sizeof(T), "bias"));
    T* sum = res ? static_cast<T*>(next(total, sizeof(T), "sum")) : nullptr;
    T* y = static_cast<T*>(next(total, sizeof(T), "y"));
    float* mean = static_cast<float*>(next(rows, 4, "mean"));
    float* rstd = static_cast<float*>(next(rows, 4, "rstd"));
    if (rows == 0) return env.Undefined();
    if (D == 0) fail(env, "INVALID_ARGUMENT", "Expected a row length of at least 1 for " + op + " but received 0");
    if (res && (badOverlap(sum, total * sizeof(T), x, total * sizeof(T)) || badOverlap(sum, total * sizeof(T), r, total * sizeof(T))))
      fail(env, "INVALID_ARGUMENT", "Expected add_layernorm's sum to be the same range as x or the residual, or not to overlap them, but it overlaps one partly");
    DW_ROW_DISPATCH(T, canVec<T>(D, {x, r ? r : x, sum ? sum : y, w, b, y}), DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(D / V);
      const RowPlan p = rowPlan(nch, NCH);
      const int64_t n = static_cast<int64_t>(rows);
      if (p.cached && res)
        layernormK<T, V, NCH, true, true><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps);
      else if (p.cached)
        layernormK<T, V, NCH, true, false><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps);
      else if (res)
        layernormK<T, V, NCH, false, true><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps);
      else
        layernormK<T, V, NCH, false, false><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps);
    });
    checkLaunch(env, op.c_str());
  });
  return env.Undefined();
}

Napi::Value Layernorm(const Napi::CallbackInfo& info) { return layernormCall(info, false); }
Napi::Value AddLayernorm(const Napi::CallbackInfo& info) { return layernormCall(info, true); }

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t rows = u64Arg(info, 2, "layernorm_backward rows"), D = u64Arg(info, 3, "layernorm_backward D");
  const uint64_t total = mulSize(env, rows, D, "layernorm_backward x");
  checkRowLength(env, D, "layernorm_backward");
  if (D > static_cast<uint64_t>(kWsFloats) / 2)
    fail(env, "INVALID_ARGUMENT", "Expected a row length of at most " + std::to_string(kWsFloats / 2) + " for layernorm_backward but received " + std::to_string(D));
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* g = devArg<T>(info, 4, total, sizeof(T), "layernorm_backward g");
    const T* x = devArg<T>(info, 6, total, sizeof(T), "layernorm_backward x");
    const T* w = devArg<T>(info, 8, D, sizeof(T), "layernorm_backward weight");
    const float* mean = devArg<float>(info, 10, rows, 4, "layernorm_backward mean");
    const float* rstd = devArg<float>(info, 12, rows, 4, "layernorm_backward rstd");
    T* dx = devArg<T>(info, 14, total, sizeof(T), "layernorm_backward dx");
    T* dw = devArg<T>(info, 16, D, sizeof(T), "layernorm_backward dweight");
    T* db = devArg<T>(info, 18, D, sizeof(T), "layernorm_backward dbias");
    if (D == 0) return env.Undefined();
    unsigned nb = 0;
    if (rows > 0) {
      DW_ROW_DISPATCH(T, canVec<T>(D, {g, x, w, dx}), kBwdFloats, {
        const int nch = static_cast<int>(D / V);
        const RowPlan p = rowPlan(nch, NCH);
        const unsigned grid = bwdGrid(p, rows, D, 2);
        nb = grid * static_cast<unsigned>(p.groups);
        if (p.cached)
          layernormBwdK<T, V, NCH, true><<<grid, p.block(), 0, s>>>(g, x, w, mean, rstd, dx, static_cast<int64_t>(rows), nch);
        else
          layernormBwdK<T, V, NCH, false><<<grid, p.block(), 0, s>>>(g, x, w, mean, rstd, dx, static_cast<int64_t>(rows), nch);
      });
      checkLaunch(env, "layernorm_backward");
    }
    launchColReduce<T>(s, nb, D, 2 * D, dw, db);
    checkLaunch(env, "layernorm_backward (column sums)");
  });
  return env.Undefined();
}

Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t rows = u64Arg(info, 2, "rmsnorm rows"), D = u64Arg(info, 3, "rmsnorm D");
  const float eps = static_cast<float>(numberArg(info, 4, "rmsnorm eps"));
  const uint64_t total = mulSize(env, rows, D, "rmsnorm x");
  checkRowLength(env, D, "rmsnorm");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = devArg<T>(info, 5, total, sizeof(T), "rmsnorm x");
    const T* w = devArg<T>(info, 7, D, sizeof(T), "rmsnorm weight");
    T* y = devArg<T>(info, 9, total, sizeof(T), "rmsnorm y");
    float* rstd = devArg<float>(info, 11, rows, 4, "rmsnorm rstd");
    if (rows == 0) return env.Undefined();
    if (D == 0)
      fail(env, "INVALID_ARGUMENT", "Expected a row length of at least 1 for rmsnorm but received 0");
    DW_ROW_DISPATCH(T, canVec<T>(D, {x, w, y}), DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(D / V);
      const RowPlan p = rowPlan(nch, NCH);
      if (p.cached)
        rmsnormK<T, V, NCH, true><<<p.grid(rows), p.block(), 0, s>>>(x, w, y, rstd, static_cast<int64_t>(rows), nch, eps);
      else
        rmsnormK<T, V, NCH, false><<<p.grid(rows), p.block(), 0, s>>>(x, w, y, rstd, static_cast<int64_t>(rows), nch, eps);
    });
    checkLaunch(env, "rmsnorm");
  });
  return env.Undefined();
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t rows = u64Arg(info, 2, "rmsnorm_backward rows"), D = u64Arg(info, 3, "rmsnorm_backward D");
  const uint64_t total = mulSize(env, rows, D, "rmsnorm_backward x");
  checkRowLength(env, D, "rmsnorm_backward");
  if (D > static_cast<uint64_t>(kWsFloats))
    fail(env, "INVALID_ARGUMENT", "Expected a row length of at most " + std::to_string(kWsFloats) + " for rmsnorm_backward but received " + std::to_string(D));
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* g = devArg<T>(info, 4, total, sizeof(T), "rmsnorm_backward g");
    const T* x = devArg<T>(info, 6, total, sizeof(T), "rmsnorm_backward x");
    const T* w = devArg<T>(info, 8, D, sizeof(T), "rmsnorm_backward weight");
    const float* rstd = devArg<float>(info, 10, rows, 4, "rmsnorm_backward rstd");
    T* dx = devArg<T>(info, 12, total, sizeof(T), "rmsnorm_backward dx");
    T* dw = devArg<T>(info, 14, D, sizeof(T), "rmsnorm_backward dweight");
    if (D == 0) return env.Undefined();
    unsigned nb = 0;
    if (rows > 0) {
      DW_ROW_DISPATCH(T, canVec<T>(D, {g, x, w, dx}), kBwdFloats, {
        const int nch = static_cast<int>(D / V);
        const RowPlan p = rowPlan(nch, NCH);
        const unsigned grid = bwdGrid(p, rows, D, 1);
        nb = grid * static_cast<unsigned>(p.groups);
        if (p.cached)
          rmsnormBwdK<T, V, NCH, true><<<grid, p.block(), 0, s>>>(g, x, w, rstd, dx, static_cast<int64_t>(rows), nch);
        else
          rmsnormBwdK<T, V, NCH, false><<<grid, p.block(), 0, s>>>(g, x, w, rstd, dx, static_cast<int64_t>(rows), nch);
      });
      checkLaunch(env, "rmsnorm_backward");
    }
    launchColReduce<T>(s, nb, D, D, dw, static_cast<T*>(nullptr));
    checkLaunch(env, "rmsnorm_backward (column sums)");
  });
  return env.Undefined();
}

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
    launchGatherRows(env, s, dt, table, ids, out, P, vocab, D, false, nnErrorWord(env), kOpEmbedding, "embedding");
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
    launchScatterRows(env, s, dt, g, ids, dtable, P, vocab, D, false, nnErrorWord(env), kOpEmbeddingBackward, "embedding_backward");
  });
  return env.Undefined();
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t N = u64Arg(info, 2, "cross_entropy rows"), C = u64Arg(info, 3, "cross_entropy classes");
  const int ignore = static_cast<int>(signedArg(info, 4, "cross_entropy ignoreIndex"));
  checkRowLength(env, C, "cross_entropy");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy but received 0");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* logits = devArg<T>(info, 5, mulSize(env, N, C, "cross_entropy logits"), sizeof(T), "cross_entropy logits");
    const int* targets = devArg<int>(info, 7, N, 4, "cross_entropy targets");
    float* loss = devArg<float>(info, 9, 1, 4, "cross_entropy loss");
    unsigned nb = 0;
    if (N > 0) {
      nb = capBlocks(N, kMaxParts);
      ErrWord* err = nnErrorWord(env);
      constexpr int VEC = 16 / sizeof(T);
      const bool vec = canVec<T>(C, {logits});
      const int nch = static_cast<int>(vec ? C / VEC : C);
      // Up to 256 threads per row (16+ chunks each): several rows in flight per SM hide each row's
      // reduction and latency (one 1024-thread block per SM ran at half the bandwidth on an H200).
      int threads = static_cast<int>(((nch + 15) / 16 + 31) / 32 * 32);
      threads = threads < 32 ? 32 : threads > 256 ? 256 : threads;
      if (vec)
        ceFwdK<T, VEC><<<nb, threads, 0, s>>>(logits, targets, static_cast<int64_t>(N), nch, ignore, err);
      else
        ceFwdK<T, 1><<<nb, threads, 0, s>>>(logits, targets, static_cast<int64_t>(N), nch, ignore, err);
      checkLaunch(env, "cross_entropy");
    }
    ceFinalK<<<1, 256, 0, s>>>(static_cast<int>(nb), loss);
    checkLaunch(env, "cross_entropy (mean)");
  });
  return env.Undefined();
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const int gdt = dtypeArg(info, 2);
  if (gdt == kI32) fail(env, "INVALID_DTYPE", "Expected a float dtype code (0 f32, 1 bf16, 2 f16) for cross_entropy_backward g but received 3 (i32)");
  const uint64_t N = u64Arg(info, 3, "cross_entropy_backward rows"), C = u64Arg(info, 4, "cross_entropy_backward classes");
  const int ignore = static_cast<int>(signedArg(info, 5, "cross_entropy_backward ignoreIndex"));
  checkRowLength(env, C, "cross_entropy_backward");
  if (C == 0) fail(env, "INVALID_ARGUMENT", "Expected at least one class for cross_entropy_backward but received 0");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const uint64_t total = mulSize(env, N, C, "cross_entropy_backward logits");
    const T* logits = devArg<T>(info, 6, total, sizeof(T), "cross_entropy_backward logits");
    const int* targets = devArg<int>(info, 8, N, 4, "cross_entropy_backward targets");
    const void* g = devArg<uint8_t>(info, 10, 1, dtypeBytes(gdt), "cross_entropy_backward g");
    T* dl = devArg<T>(info, 12, total, sizeof(T), "cross_entropy_backward dlogits");
    if (N == 0) return env.Undefined();
    ErrWord* err = nnErrorWord(env);
    ceScaleK<<<1, 1024, 0, s>>>(targets, static_cast<int64_t>(N), static_cast<int64_t>(C), ignore, g, gdt);
    checkLaunch(env, "cross_entropy_backward (scale)");
    DW_ROW_DISPATCH(T, canVec<T>(C, {logits, dl}), DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(C / V);
      const RowPlan p = rowPlan(nch, NCH);
      if (p.cached)
        ceBwdK<T, V, NCH, true><<<p.grid(N), p.block(), 0, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err);
      else
        ceBwdK<T, V, NCH, false><<<p.grid(N), p.block(), 0, s>>>(logits, targets, dl, static_cast<int64_t>(N), nch, ignore, err);
    });
    checkLaunch(env, "cross_entropy_backward");
  });
  return env.Undefined();
}

Napi::Value CausalMask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const int dt = dtypeArg(info, 1);
  const uint64_t B = u64Arg(info, 2, "causal_mask batch"), nq = u64Arg(info, 3, "causal_mask T"), S = u64Arg(info, 4, "causal_mask S");
  const float value = static_cast<float>(numberArg(info, 5, "causal_mask value"));
  if (S < nq)
    fail(env, "INVALID_ARGUMENT", "Expected at least as many keys as queries (S >= T) for causal_mask but received T = " + std::to_string(nq) + ", S = " + std::to_string(S));
  const uint64_t total = mulSize(env, mulSize(env, B, nq, "causal_mask x"), S, "causal_mask x");
  DW_DISPATCH_FLOAT(env, dt, T, {
    const T* x = devArg<T>(info, 6, total, sizeof(T), "causal_mask x");
    T* out = devArg<T>(info, 8, total, sizeof(T), "causal_mask out");
    if (total == 0) return env.Undefined();
    constexpr int VEC = 16 / sizeof(T);
    if (canVec<T>(S, {x, out}))
      causalMaskK<T, VEC><<<capBlocks((total / VEC + 255) / 256), 256, 0, s>>>(x, out, static_cast<int64_t>(total / VEC), static_cast<int64_t>(S / VEC),
                                                                            static_cast<int64_t>(nq), static_cast<int64_t>(S), value);
    else
      causalMaskK<T, 1><<<capBlocks((total + 255) / 256), 256, 0, s>>>(x, out, static_cast<int64_t>(total), static_cast<int64_t>(S), static_cast<int64_t>(nq),
                                                                      static_cast<int64_t>(S), value);
    checkLaunch(env, "causal_mask");
  });
  return env.Undefined();
}

// Each output must be an input's very range (in place) or overlap none of the inputs, and the
// outputs must not overlap each other.
void checkAdamwOverlap(Napi::Env env, const AdamwArgs& a, uint64_t n, size_t gBytes, const void* lr, size_t lrBytes, const void* step, size_t stepBytes,
                       const std::string& what) {
  const uint64_t fb = n * 4;
  const void* ins[6] = {a.p, a.g, a.m, a.v, lr, step};
  const uint64_t inBytes[6] = {fb, n * gBytes, fb, fb, lrBytes, stepBytes};
  const char* inNames[6] = {"param", "grad", "m", "v", "lr", "step"};
  const void* outs[3] = {a.p2, a.m2, a.v2};
  const char* outNames[3] = {"param2", "m2", "v2"};
  for (int o = 0; o < 3; o++) {
    for (int k = 0; k < 6; k++)
      if (badOverlap(outs[o], fb, ins[k], inBytes[k]))
        fail(env, "INVALID_ARGUMENT", "Expected " + what + " output '" + outNames[o] + "' to be the same range as input '" + inNames[k] +
                                          "' or not to overlap it, but it overlaps it partly");
    for (int q = o + 1; q < 3; q++)
      if (n > 0 && reinterpret_cast<uintptr_t>(outs[o]) < reinterpret_cast<uintptr_t>(outs[q]) + fb &&
          reinterpret_cast<uintptr_t>(outs[q]) < reinterpret_cast<uintptr_t>(outs[o]) + fb)
        fail(env, "INVALID_ARGUMENT", "Expected " + what + " outputs '" + outNames[o] + "' and '" + outNames[q] + "' not to overlap");
  }
}

bool adamwVec(const AdamwArgs& a, size_t gBytes) {
  return aligned16(a.p) && aligned16(a.m) && aligned16(a.v) && aligned16(a.p2) && aligned16(a.m2) && aligned16(a.v2) &&
         (reinterpret_cast<uintptr_t>(a.g) % (4 * gBytes)) == 0;
}

// The arguments shared by adamw and adamwMulti: dtype codes at 1..3 (grad, lr, step), then from
// `hyper`: beta1, beta2, eps, weightDecay.
struct AdamwHyper {
  int gdt, lrdt, stepdt;
  double b1, b2;
  float eps, wd;
};

AdamwHyper adamwHyper(const Napi::CallbackInfo& info, size_t hyper, const char* what) {
  Napi::Env env = info.Env();
  AdamwHyper h{dtypeArg(info, 1), dtypeArg(info, 2), dtypeArg(info, 3), 0, 0, 0, 0};
  if (h.lrdt == kI32 || h.stepdt == kI32) fail(env, "INVALID_DTYPE", std::string("Expected float dtype codes (0 f32, 1 bf16, 2 f16) for ") + what + " lr and step");
  h.b1 = numberArg(info, hyper, "adamw beta1");
  h.b2 = numberArg(info, hyper + 1, "adamw beta2");
  h.eps = static_cast<float>(numberArg(info, hyper + 2, "adamw eps"));
  h.wd = static_cast<float>(numberArg(info, hyper + 3, "adamw weightDecay"));
  return h;
}

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const uint64_t n = u64Arg(info, 4, "adamw elements");
  const AdamwHyper h = adamwHyper(info, 5, "adamw");
  mulSize(env, n, 4, "adamw param");
  DW_DISPATCH_FLOAT(env, h.gdt, G, {
    const AdamwArgs a{devArg<float>(info, 9, n, 4, "adamw param"),  devArg<G>(info, 11, n, sizeof(G), "adamw grad"),
                      devArg<float>(info, 13, n, 4, "adamw m"),     devArg<float>(info, 15, n, 4, "adamw v"),
                      devArg<float>(info, 21, n, 4, "adamw param2"), devArg<float>(info, 23, n, 4, "adamw m2"),
                      devArg<float>(info, 25, n, 4, "adamw v2")};
    const void* lr = devArg<uint8_t>(info, 17, 1, dtypeBytes(h.lrdt), "adamw lr");
    const void* step = devArg<uint8_t>(info, 19, 1, dtypeBytes(h.stepdt), "adamw step");
    if (n == 0) return env.Undefined();
    checkAdamwOverlap(env, a, n, sizeof(G), lr, dtypeBytes(h.lrdt), step, dtypeBytes(h.stepdt), "adamw");
    ErrWord* err = nnErrorWord(env);
    const bool vec = adamwVec(a, sizeof(G));
    const uint64_t work = vec ? (n + 3) / 4 : n;
    const unsigned grid = capBlocks((work + 255) / 256, static_cast<uint64_t>(smCount()) * 8);
    const G* g = static_cast<const G*>(a.g);
    if (vec)
      adamwK<G, true><<<grid, 256, 0, s>>>(a.p, g, a.m, a.v, a.p2, a.m2, a.v2, static_cast<int64_t>(n), lr, h.lrdt, step, h.stepdt, h.b1, h.b2, h.eps, h.wd, err);
    else
      adamwK<G, false><<<grid, 256, 0, s>>>(a.p, g, a.m, a.v, a.p2, a.m2, a.v2, static_cast<int64_t>(n), lr, h.lrdt, step, h.stepdt, h.b1, h.b2, h.eps, h.wd, err);
    checkLaunch(env, "adamw");
  });
  return env.Undefined();
}

// adamwMulti(stream, gradDtype, lrDtype, stepDtype, count, beta1, beta2, eps, weightDecay, lr, step,
//            then per tensor: n, param, grad, m, v, param2, m2, v2)
// Every tensor is checked before anything is launched; then one launch per kAdamwBatch tensors.
Napi::Value AdamwMulti(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const uint64_t count = u64Arg(info, 4, "adamw_multi tensor count");
  const AdamwHyper h = adamwHyper(info, 5, "adamw_multi");
  const void* lr = devArg<uint8_t>(info, 9, 1, dtypeBytes(h.lrdt), "adamw_multi lr");
  const void* step = devArg<uint8_t>(info, 11, 1, dtypeBytes(h.stepdt), "adamw_multi step");
  constexpr size_t kPer = 15;
  if (info.Length() != 13 + count * kPer)
    fail(env, "INVALID_ARGUMENT", "Expected " + std::to_string(13 + count * kPer) + " arguments for adamw_multi of " + std::to_string(count) +
                                      " tensors but received " + std::to_string(info.Length()));
  DW_DISPATCH_FLOAT(env, h.gdt, G, {
    std::vector<AdamwArgs> ts(count);
    std::vector<uint64_t> ns(count);
    for (uint64_t k = 0; k < count; k++) {
      const size_t i = 13 + k * kPer;
      const std::string what = "adamw_multi tensor " + std::to_string(k);
      const uint64_t n = u64Arg(info, i, (what + " elements").c_str());
      mulSize(env, n, 4, what.c_str());
      ts[k] = {devArg<float>(info, i + 1, n, 4, (what + " param").c_str()), devArg<G>(info, i + 3, n, sizeof(G), (what + " grad").c_str()),
               devArg<float>(info, i + 5, n, 4, (what + " m").c_str()),     devArg<float>(info, i + 7, n, 4, (what + " v").c_str()),
               devArg<float>(info, i + 9, n, 4, (what + " param2").c_str()), devArg<float>(info, i + 11, n, 4, (what + " m2").c_str()),
               devArg<float>(info, i + 13, n, 4, (what + " v2").c_str())};
      ns[k] = n;
      checkAdamwOverlap(env, ts[k], n, sizeof(G), lr, dtypeBytes(h.lrdt), step, dtypeBytes(h.stepdt), what);
    }
    ErrWord* err = nnErrorWord(env);
    AdamwBatch batch{};
    auto launch = [&]() {
      if (batch.count == 0) return;
      adamwMultiK<G><<<static_cast<unsigned>(batch.start[batch.count]), 256, 0, s>>>(batch, lr, h.lrdt, step, h.stepdt, h.b1, h.b2, h.eps, h.wd, err);
      checkLaunch(env, "adamw_multi");
      batch = AdamwBatch{};
    };
    for (uint64_t k = 0; k < count; k++) {
      if (ns[k] == 0) continue;
      const uint64_t blocks = (ns[k] + kAdamwChunk - 1) / kAdamwChunk;
      if (batch.count == kAdamwBatch || static_cast<uint64_t>(batch.start[batch.count]) + blocks > 0x7fffffffu) launch();
      if (blocks > 0x7fffffffu) fail(env, "INVALID_ARGUMENT", "Expected at most 2^31 chunks of " + std::to_string(kAdamwChunk) + " elements per tensor for adamw_multi");
      const AdamwArgs& a = ts[k];
      const int c = batch.count;
      batch.t[c] = {a, static_cast<int64_t>(ns[k])};
      batch.vec[c] = adamwVec(a, sizeof(G)) ? 1 : 0;
      batch.start[c + 1] = batch.start[c] + static_cast<int>(blocks);
      batch.count = c + 1;
    }
    launch();
  });
  return env.Undefined();
}

// clip_coef: one thread; sumsq, coef and norm are f32[1].
__global__ void clipCoefK(const float* sumsq, float* coef, float* norm, float maxNorm) {
  const float n = sqrtf(sumsq[0]);
  norm[0] = n;
  coef[0] = fminf(1.f, maxNorm / (n + 1e-6f));
}

Napi::Value ClipCoef(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  const float* sumsq = devArg<float>(info, 1, 1, 4, "clip_coef sumsq");
  float* coef = devArg<float>(info, 3, 1, 4, "clip_coef coef");
  float* norm = devArg<float>(info, 5, 1, 4, "clip_coef norm");
  const double maxNorm = numberArg(info, 7, "clip_coef maxNorm");
  if (!(maxNorm > 0) || !std::isfinite(maxNorm)) fail(env, "INVALID_ARGUMENT", "Expected a positive finite maxNorm for clip_coef but received " + formatNumber(maxNorm));
  clipCoefK<<<1, 1, 0, s>>>(sumsq, coef, norm, static_cast<float>(maxNorm));
  checkLaunch(env, "clip_coef");
  return env.Undefined();
}

// Reads and clears g_nnError; "" when it was clear. Synchronises the stream.
std::string takeNnError(Napi::Env env, cudaStream_t s) {
  ErrWord h{};
  DW_CUDA(env, cudaMemcpyFromSymbolAsync(&h, g_nnError, sizeof h, 0, cudaMemcpyDeviceToHost, s), "cudaMemcpyFromSymbolAsync (nn error word)");
  DW_CUDA(env, cudaStreamSynchronize(s), "cudaStreamSynchronize (opsErrorCheck)");
  if (h.op == 0) return "";
  const ErrWord zero{};
  DW_CUDA(env, cudaMemcpyToSymbolAsync(g_nnError, &zero, sizeof zero, 0, cudaMemcpyHostToDevice, s), "cudaMemcpyToSymbolAsync (nn error word)");
  DW_CUDA(env, cudaStreamSynchronize(s), "cudaStreamSynchronize (opsErrorCheck)");
  const std::string pos = std::to_string(h.pos), bound = std::to_string(h.bound), value = formatNumber(h.value);
  switch (h.op) {
    case kOpEmbedding:
    case kOpEmbeddingBackward:
      return std::string(h.op == kOpEmbedding ? "embedding" : "embedding_backward") + ": Expected an id in [0, " + bound + ") for ids (flat position " + pos +
             ") but received " + value;
    case kOpCrossEntropy:
    case kOpCrossEntropyBackward:
      return std::string(h.op == kOpCrossEntropy ? "cross_entropy" : "cross_entropy_backward") + ": Expected a target in [0, " + bound +
             ") or the ignore index " + std::to_string(h.aux) + " for row " + pos + " but received " + value;
    case kOpAdamw:
      return "adamw: Expected a step count >= 1 for input 'step' but received " + value;
    default:
      return "an nn kernel recorded bad data (op code " + std::to_string(h.op) + ", position " + pos + ", value " + value + ")";
  }
}

Napi::Value OpsErrorCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = streamArg(info, 0);
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  DW_CUDA(env, cudaStreamIsCapturing(s, &st), "cudaStreamIsCapturing (opsErrorCheck)");
  if (st != cudaStreamCaptureStatusNone) return env.Undefined();  // checked after the capture
  std::string msg = takeNnError(env, s);
  const std::string moe = moeTakeError(env, s);
  if (msg.empty()) msg = moe;
  if (!msg.empty()) fail(env, "INVALID_ARGUMENT", msg);
  return env.Undefined();
}

}  // namespace

void launchGatherRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out, uint64_t M, uint64_t R, uint64_t D, bool allowNeg,
                      void* err, int op, const char* what) {
  if (M == 0) return;
  ErrWord* ew = static_cast<ErrWord*>(err);
  if (D == 0) {
    validateLaunch(s, idx, M, R, allowNeg, ew, op);
    checkLaunch(env, what);
    return;
  }
  checkRowLength(env, D, what);
  DW_DISPATCH_FLOAT(env, dtype, T, {
    const T* sp = static_cast<const T*>(src);
    T* outp = static_cast<T*>(out);
    if (canVec<T>(D, {src, out}))
      gatherLaunch<T, 16 / sizeof(T)>(s, sp, idx, outp, M, R, D, allowNeg, ew, op);
    else
      gatherLaunch<T, 1>(s, sp, idx, outp, M, R, D, allowNeg, ew, op);
  });
  checkLaunch(env, what);
}

void launchScatterRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out, uint64_t M, uint64_t R, uint64_t D, bool allowNeg,
                       void* err, int op, const char* what) {
  ErrWord* ew = static_cast<ErrWord*>(err);
  if (R == 0 || D == 0) {  // nothing to write; the indices are still checked
    if (M > 0) {
      validateLaunch(s, idx, M, R, allowNeg, ew, op);
      checkLaunch(env, what);
    }
    return;
  }
  checkRowLength(env, D, what);
  const uint64_t CB = D < 1024 ? D : 1024;
  uint64_t VB = kScatSmemFloats / CB;
  if (VB < 1) VB = 1;
  if (VB > R) VB = R;
  const uint64_t gx = (R + VB - 1) / VB, gy = (D + CB - 1) / CB;
  if (gx > 2147483647u || gy > 65535u)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2147483647 x 65535 tiles for ") + what + " but received " + std::to_string(gx) + " x " + std::to_string(gy));
  const size_t smem = static_cast<size_t>(VB * CB * sizeof(float));
  DW_DISPATCH_FLOAT(env, dtype, T, {
    scatterRowsK<T><<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), kScatThreads, smem, s>>>(
        static_cast<const T*>(src), idx, static_cast<T*>(out), static_cast<int64_t>(M), static_cast<int64_t>(R), static_cast<int64_t>(D),
        static_cast<int>(VB), static_cast<int>(CB), allowNeg ? 1 : 0, ew, op);
  });
  checkLaunch(env, what);
}

void initOps_nn(Napi::Env env, Napi::Object exports) {
  def(env, exports, "softmax", Softmax);
  def(env, exports, "softmaxBackward", SoftmaxBackward);
  def(env, exports, "layernorm", Layernorm);
  def(env, exports, "addLayernorm", AddLayernorm);
  def(env, exports, "layernormBackward", LayernormBackward);
  def(env, exports, "rmsnorm", Rmsnorm);
  def(env, exports, "rmsnormBackward", RmsnormBackward);
  def(env, exports, "embedding", Embedding);
  def(env, exports, "embeddingBackward", EmbeddingBackward);
  def(env, exports, "crossEntropy", CrossEntropy);
  def(env, exports, "crossEntropyBackward", CrossEntropyBackward);
  def(env, exports, "causalMask", CausalMask);
  def(env, exports, "adamw", Adamw);
  def(env, exports, "adamwMulti", AdamwMulti);
  def(env, exports, "clipCoef", ClipCoef);
  def(env, exports, "opsErrorCheck", OpsErrorCheck);
}

}  // namespace dw

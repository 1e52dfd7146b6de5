// Row gather / scatter-add kernels (see rows_gather.h): embedding and embedding_backward of the nn
// family, gather_rows and scatter_add_rows of the moe family.
//
// Determinism: no floating-point atomics. The scatter gives each thread its own output columns and
// adds the rows in ascending position order.
#include "common/rows_gather.h"

#include "common/dtype.h"
#include "common/launch.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>

namespace dw {
namespace {

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

}  // namespace

void launchValidateIndices(cudaStream_t s, const int* idx, uint64_t M, uint64_t R, bool allowNeg, ErrWord* err, int op) {
  validateIdxK<<<capBlocks((M + 255) / 256, 4096), 256, 0, s>>>(idx, static_cast<int64_t>(M), static_cast<int64_t>(R), allowNeg ? 1 : 0, err, op);
}

void launchGatherRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out, uint64_t M, uint64_t R, uint64_t D, bool allowNeg,
                      ErrWord* ew, int op, const char* what) {
  if (M == 0) return;
  if (D == 0) {
    launchValidateIndices(s, idx, M, R, allowNeg, ew, op);
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
                       ErrWord* ew, int op, const char* what) {
  if (R == 0 || D == 0) {  // nothing to write; the indices are still checked
    if (M > 0) {
      launchValidateIndices(s, idx, M, R, allowNeg, ew, op);
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

}  // namespace dw

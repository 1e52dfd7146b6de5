// Our own GEMM, below cuBLASLt in the fallback chain (used when cuBLASLt is missing or refuses a
// shape): row-major D[M, N] = op(A)[M, K] · op(B)[K, N], batched with element strides (0 = shared).
//
//   bf16 / f16: tensor cores through WMMA (HMMA in SASS). A block of 4 warps computes a 64×64 tile;
//     each K-step of 16 is staged in shared memory (converted to row-major, zero-filled past the
//     edges, so any M, N, K works) and each warp multiplies 2×2 fragments of 16×16 with FP32
//     accumulators.
//   f32: the same tiling on CUDA cores with FP32 FMA.
//
// It is written for clarity and any shape, not for peak speed: cuBLASLt is the fast path.
//
// gemmFallback(stream, dtype, transA, transB, M, N, K, batch, strideA, strideB, strideD, a, b, d)
// (the ABI table; read by its generated reader, common/abi/gemm.gen.h). M, N and K index the
// kernels as int (at most 2147483647) and batch is the grid's z (at most 65535).
#include "common/abi/gemm.gen.h"
#include "common/dtype.h"
#include "common/launch.h"

#include <mma.h>

namespace dw {
namespace {

constexpr int TM = 64, TN = 64, TK = 16;
constexpr int PAD = 8;  // keeps rows off one shared-memory bank; ld stays a multiple of 8

// Element (r, c) of op(X) where X is stored row-major with `cols` columns before the op.
template <typename T>
__device__ __forceinline__ float at(const T* X, bool trans, int r, int c, int ld) {
  return toF(trans ? X[static_cast<int64_t>(c) * ld + r] : X[static_cast<int64_t>(r) * ld + c]);
}

template <typename T>
__global__ void __launch_bounds__(128) gemmWmma(const T* A, const T* B, T* D, int M, int N, int K, bool ta, bool tb, int64_t sA, int64_t sB, int64_t sD) {
  using namespace nvcuda;
  __shared__ __align__(32) T As[TM][TK + PAD];
  __shared__ __align__(32) T Bs[TK][TN + PAD];
  __shared__ __align__(32) float Cs[4][32][32 + 4];
  const int z = blockIdx.z;
  A += z * sA;
  B += z * sB;
  D += z * sD;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  const int warp = threadIdx.x / 32, wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int lda = ta ? M : K, ldb = tb ? K : N;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
  for (int k0 = 0; k0 < K; k0 += TK) {
    for (int e = threadIdx.x; e < TM * TK; e += blockDim.x) {
      int r = e / TK, c = e % TK, gr = m0 + r, gc = k0 + c;
      As[r][c] = fromF<T>(gr < M && gc < K ? at(A, ta, gr, gc, lda) : 0.0f);
    }
    for (int e = threadIdx.x; e < TK * TN; e += blockDim.x) {
      int r = e / TN, c = e % TN, gr = k0 + r, gc = n0 + c;
      Bs[r][c] = fromF<T>(gr < K && gc < N ? at(B, tb, gr, gc, ldb) : 0.0f);
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
    for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], &As[wm + 16 * i][0], TK + PAD);
    for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &Bs[0][wn + 16 * j], TN + PAD);
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    __syncthreads();
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) wmma::store_matrix_sync(&Cs[warp][16 * i][16 * j], acc[i][j], 32 + 4, wmma::mem_row_major);
  __syncwarp();
  const int lane = threadIdx.x % 32;
  for (int e = lane; e < 32 * 32; e += 32) {
    int r = e / 32, c = e % 32, gr = m0 + wm + r, gc = n0 + wn + c;
    if (gr < M && gc < N) D[static_cast<int64_t>(gr) * N + gc] = fromF<T>(Cs[warp][r][c]);
  }
}

// FP32: 256 threads, each computing a 4×4 patch of the 64×64 tile.
__global__ void __launch_bounds__(256) gemmSimt(const float* A, const float* B, float* D, int M, int N, int K, bool ta, bool tb, int64_t sA, int64_t sB, int64_t sD) {
  __shared__ float As[TK][TM + 1];
  __shared__ float Bs[TK][TN + 1];
  const int z = blockIdx.z;
  A += z * sA;
  B += z * sB;
  D += z * sD;
  const int m0 = blockIdx.y * TM, n0 = blockIdx.x * TN;
  const int tr = (threadIdx.x / 16) * 4, tc = (threadIdx.x % 16) * 4;
  const int lda = ta ? M : K, ldb = tb ? K : N;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += TK) {
    for (int e = threadIdx.x; e < TM * TK; e += blockDim.x) {
      int r = e % TM, c = e / TM, gr = m0 + r, gc = k0 + c;
      As[c][r] = gr < M && gc < K ? at(A, ta, gr, gc, lda) : 0.0f;
    }
    for (int e = threadIdx.x; e < TK * TN; e += blockDim.x) {
      int r = e / TN, c = e % TN, gr = k0 + r, gc = n0 + c;
      Bs[r][c] = gr < K && gc < N ? at(B, tb, gr, gc, ldb) : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < TK; k++) {
      float a[4], b[4];
      for (int i = 0; i < 4; i++) a[i] = As[k][tr + i];
      for (int j = 0; j < 4; j++) b[j] = Bs[k][tc + j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      int gr = m0 + tr + i, gc = n0 + tc + j;
      if (gr < M && gc < N) D[static_cast<int64_t>(gr) * N + gc] = acc[i][j];
    }
}

template <typename T>
void launchGemm(const T* A, const T* B, T* D, dim3 grid, cudaStream_t s, int M, int N, int K, bool ta, bool tb, int64_t sA, int64_t sB, int64_t sD) {
  gemmWmma<T><<<grid, 128, 0, s>>>(A, B, D, M, N, K, ta, tb, sA, sB, sD);
}
template <>
void launchGemm<float>(const float* A, const float* B, float* D, dim3 grid, cudaStream_t s, int M, int N, int K, bool ta, bool tb, int64_t sA, int64_t sB,
                       int64_t sD) {
  gemmSimt<<<grid, 256, 0, s>>>(A, B, D, M, N, K, ta, tb, sA, sB, sD);
}

Napi::Value GemmFallback(const Napi::CallbackInfo& info) {
  const abi::GemmFallbackArgs a = abi::readGemmFallback(info);
  Napi::Env env = info.Env();
  cudaStream_t stream = a.stream;
  const int dtype = a.dtype;
  const bool ta = a.transA, tb = a.transB;
  // M, N, K <= 2^31 - 1 and batch <= 65535: the reader checked them (the ABI table's caps).
  const uint64_t M = a.M, N = a.N, K = a.K, batch = a.batch;
  const uint64_t sA = a.strideA, sB = a.strideB, sD = a.strideD;
  if (M == 0 || N == 0 || K == 0 || batch == 0) fail(env, "INVALID_ARGUMENT", "Expected M, N, K and batch >= 1 for gemmFallback");
  if ((sA != 0 && sA < M * K) || (sB != 0 && sB < K * N) || sD < M * N)
    fail(env, "INVALID_ARGUMENT", "Expected batch strides of 0 or at least one matrix for gemmFallback");
  size_t eb = dtypeBytes(dtype);
  auto extent = [&](uint64_t stride, uint64_t mat) { return (batch - 1) * stride + mat; };
  dim3 grid(static_cast<unsigned>((N + TN - 1) / TN), static_cast<unsigned>((M + TM - 1) / TM), static_cast<unsigned>(batch));
  if (grid.y > 65535) fail(env, "INVALID_ARGUMENT", "Expected M below 4194240 for gemmFallback");
  DW_DISPATCH_FLOAT(env, dtype, T, {
    const T* A = a.a.ptr<T>(env, extent(sA, M * K), eb);
    const T* B = a.b.ptr<T>(env, extent(sB, K * N), eb);
    T* D = a.d.ptr<T>(env, extent(sD, M * N), eb);
    launchGemm<T>(A, B, D, grid, stream, int(M), int(N), int(K), ta, tb, int64_t(sA), int64_t(sB), int64_t(sD));
  });
  checkLaunch(env, "gemmFallback");
  return env.Undefined();
}

}  // namespace

void initGemmFallback(Napi::Env env, Napi::Object exports) {
  def(env, exports, "gemmFallback", GemmFallback);
}

}  // namespace dw

// MXFP8 GEMM on Hopper, our own kernel, exact to MX semantics: the E8M0 block scales are applied
// to every 32 of K, as OCP MX's dot product defines it, in FP32.
//
//   mx8GemmSm90(stream, M, N, K, aFormat, bFormat, outDtype, a, aScale, b, bScale, d)
//     D[M, N] = Σ_kb (sa[m, kb] · sb[n, kb]) · Σ_{k in block kb} decode(a[m, k]) · decode(b[n, k])
//     a [M, K], b [N, K]: K-major FP8 codes (e4m3 or e5m2, not both e5m2); aScale, bScale: E8M0
//     codes, one per 32 of K (2^(code − 127); 255 is NaN), in cuBLASLt's 128 × 4 tiled layout
//     (common/scale_tiles.h), exactly what scaledGemmLt's mx32 reads and quantizeTensor writes with
//     scaleLayout 'tiled128x4'; d: bf16 or f32 [M, N], row-major. K % 32 == 0; any M, N >= 1.
//
// Why a kernel of our own, and its bound. Hopper has no block-scaled MMA (Blackwell's tcgen05 and
// cuBLASLt's VEC32_UE8M0 need sm_100), so the scales cannot ride inside the tensor cores: each
// 32-wide block of K gives an FP32 partial product per output element that must be multiplied by
// sa · sb and added to the accumulator on the CUDA cores — two FP32 operations (FMUL, FFMA) per
// output per 32 MACs. An H200 SM does 4096 FP8 MACs per clock on its tensor cores but 128 FP32
// operations: the scale work caps the kernel at 128 / 2 · 32 = 2048 MACs per clock, the BF16
// tensor-core peak, half the FP8 one, before anything else is counted. It is not Hopper's fast path
// (tensorwise and blockwise FP8 through cuBLASLt are); it exists so MXFP8 operands can run as they
// are, exactly, where the alternative is emulation (dequantize to bf16, then a BF16 GEMM).
//
// How. FP8 mma.sync (m16n8k32 e4m3, an sm_89 instruction) is not native on Hopper: ptxas emulates
// it by converting to f16 and using the f16 tensor cores (NVIDIA/cutlass issue 1986), redoing the
// conversion for every MMA. We do that conversion once per fragment instead: every e4m3 and e5m2
// value is exact in f16, and so is every product of two (f16 MMA multiplies exactly and adds in
// FP32), so each 32-block's partial is the FP32 sum of exact products. Per CTA a 128 × 128 tile of
// D, 8 warps of 64 × 32; K in steps of 128 (four scale blocks, and exactly one 512-byte tile of each
// operand's scales), staged through a 4-deep cp.async ring in shared memory (16-byte chunks, XOR
// swizzled so ldmatrix is free of bank conflicts; rows past M / N and K past its end zero-filled).
// Fragments come from ldmatrix on the FP8 bytes — the 8-bit m16n8k32 fragment layout is the 16-bit
// 8 × 8 one — and are widened with cvt.rn.f16x2.e4m3x2 (e5m2: a byte shift). The f16 m16n8k16 MMA
// wants k pairs (2t, 2t+1) and (2t+8, 2t+9) where the FP8 fragment has 4t .. 4t+3; since a dot
// product does not care about the order of k, A and B take the same permutation and the two f16
// MMAs of a block read the low and high halves of the FP8 registers as they are. Each step's scale
// codes are decoded once per CTA into shared memory (an f32 per row and block, laid out so that a
// lane's eight rows or columns are two float4 loads), and each block ends in acc = fma(partial,
// sa · sb, acc). The last step skips blocks past K (their scale bytes are padding, never read).
// No atomics, no split K: the result is deterministic.
//
// Numerics: per block, 32 exact products summed by the tensor cores in FP32; one FMUL (exact: a
// power of two, unless sa · sb leaves FP32's range) and one FFMA per block. So |D − exact| is
// within a few FP32 roundings of Σ|a||b| per element; bf16 output is rounded once from FP32.
// NaN codes and scale code 255 give NaN where they are read; scale code 0 is 2^−127 (subnormal:
// the addon is built without flush-to-zero).
//
// Compiled for sm_90a (and, like every kernel here, for sm_100f and compute_90 PTX: nothing in it
// is Hopper-only); the scaled_matmul candidate that calls it (precision's cuda/
// scaled_matmul_mx8.ts) takes compute capability 9.x only, where cuBLASLt has no MXFP8 GEMM.
// Status: compiled (sm_90a: 218-220 registers, no spills; sm_100f: 229-234, no spills). On the H200
// (2026-12-03) its GPU test passes and it runs at 178-211 TFLOP/s, 0.34x the speed of emulation
// (dequantize both operands, then the BF16 GEMM): see docs/gpu-runs/2026-12-03-fp8-speed. The index mapping (swizzle, ldmatrix, widening, fragments, scale tiles and their decoded
// layout, partial last step, edges, epilogue) is emulated on integers by dev/cuda/gemm/
// mx8_sm90_emu.py, which matches the direct product. Its GPU test is precision's
// test/scaled_matmul_mx8_gpu.test.ts; its timing bench/mx8_gemm.mjs (beside emulation and BF16).
#include "common/abi/gemm.gen.h"
#include "common/device_info.h"
#include "common/dtype.h"
#include "common/launch.h"
#include "common/scale_tiles.h"
#include "common/smem_limit.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <string>
#include <type_traits>

namespace dw {
namespace {

constexpr int BM = 128, BN = 128, BK = 128;  // CTA tile; BK bytes of K per pipeline stage (4 scale blocks)
constexpr int STAGES = 4, THREADS = 256;     // 8 warps: 2 along M (64 rows each) × 4 along N (32 columns each)
constexpr int A_BYTES = BM * BK, B_BYTES = BN * BK, SCALE_TILE = 512;
constexpr int STAGE_BYTES = A_BYTES + B_BYTES + 2 * SCALE_TILE;
constexpr int DEC_FLOATS = 4 * 128;  // decoded scales of one step: [block][row], per operand
constexpr int SMEM_BYTES = STAGES * STAGE_BYTES + 2 * DEC_FLOATS * 4;
constexpr int GROUP_M = 8;  // CTAs walk 8 tile-rows per column of tiles, so A and B tiles are reused from L2

struct Mx8Args {
  const uint8_t* a;
  const uint8_t* sa;
  const uint8_t* b;
  const uint8_t* sb;
  void* d;
  int M, N, K;
};

__device__ __forceinline__ uint32_t smemAddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// 16 bytes global -> shared, asynchronously; `valid` false writes 16 zero bytes (src is not read).
__device__ __forceinline__ void cpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8 × 16-byte matrices; lane l gives the row address of matrix l / 8, row l % 8. Each lane
// gets from matrix q the 4 bytes at row lane / 4, bytes 4 · (lane % 4) .. + 3, in r[q].
__device__ __forceinline__ void ldmatrixX4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}

// Four FP8 codes (k = 4t .. 4t+3) -> two f16x2: lo = (k 4t, 4t+1), hi = (k 4t+2, 4t+3). Exact.
template <int F>
__device__ __forceinline__ void widen(uint32_t x, uint32_t& lo, uint32_t& hi) {
  if constexpr (F == abi::fp8::e5m2) {  // e5m2 is the top byte of an f16
    lo = __byte_perm(x, 0u, 0x1404);
    hi = __byte_perm(x, 0u, 0x3424);
  } else {  // cvt.rn.f16x2.e4m3x2 (sm_89+): the low code to the low half
    const __half2_raw l = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(x & 0xffffu), __NV_E4M3);
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(x >> 16), __NV_E4M3);
    lo = uint32_t(l.x) | (uint32_t(l.y) << 16);
    hi = uint32_t(h.x) | (uint32_t(h.y) << 16);
  }
}

// d = a · b + c, f16 inputs, f32 accumulation (16 × 8 × 16).
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// An E8M0 code as the f32 2^(code − 127): 0 is 2^−127 (subnormal), 255 NaN.
__device__ __forceinline__ float e8m0(uint32_t c) {
  return c == 0 ? __uint_as_float(0x00400000u) : c == 255 ? __uint_as_float(0x7fffffffu) : __uint_as_float(c << 23);
}

template <typename OutT>
__device__ __forceinline__ void storeOut(OutT* d, uint64_t i, float v) {
  if constexpr (std::is_same_v<OutT, float>) d[i] = v;
  else d[i] = __float2bfloat16_rn(v);
}
template <typename OutT>
__device__ __forceinline__ void storePair(OutT* d, uint64_t i, float v0, float v1) {  // i even, d 16-byte aligned
  if constexpr (std::is_same_v<OutT, float>) *reinterpret_cast<float2*>(d + i) = make_float2(v0, v1);
  else *reinterpret_cast<__nv_bfloat162*>(d + i) = __floats2bfloat162_rn(v0, v1);
}

template <int AF, int BF, typename OutT>
__global__ void __launch_bounds__(THREADS, 1) mx8GemmSm90K(const Mx8Args p) {
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp >> 2, wn = warp & 3;  // this warp's 64 × 32 patch of the CTA tile

  // Tile order: GROUP_M tile-rows at a time, down each column of tiles.
  const int tilesM = (p.M + BM - 1) / BM, tilesN = (p.N + BN - 1) / BN;
  const int perGroup = GROUP_M * tilesN;
  const int pid = blockIdx.x, firstM = (pid / perGroup) * GROUP_M;
  const int groupM = min(tilesM - firstM, GROUP_M);
  const int m0 = (firstM + (pid % perGroup) % groupM) * BM;
  const int n0 = ((pid % perGroup) / groupM) * BN;

  const int nK = p.K / 32;          // scale blocks per row
  const int steps = (nK + 3) / 4;   // pipeline steps of BK (the last may hold 1-3 blocks)
  // The scale tile of rows m0 .. m0 + 127 and blocks 4s .. 4s + 3 is 512 contiguous bytes.
  const uint8_t* saTiles = p.sa + tiledIndex128x4(m0, 0, nK);
  const uint8_t* sbTiles = p.sb + tiledIndex128x4(n0, 0, nK);
  float* decA = reinterpret_cast<float*>(smem + STAGES * STAGE_BYTES);
  float* decB = decA + DEC_FLOATS;

  // Step s into ring slot `slot`: 16-byte chunk ch of row r at r · 128 + ((ch ^ (r % 8)) · 16).
  auto load = [&](int s, int slot) {
    uint8_t* sA = smem + slot * STAGE_BYTES;
    uint8_t* sB = sA + A_BYTES;
    const int k0 = s * BK;
#pragma unroll
    for (int i = 0; i < (A_BYTES / 16) / THREADS; i++) {
      const int c = tid + i * THREADS, r = c >> 3, ch = c & 7, k = k0 + ch * 16;
      const bool okA = m0 + r < p.M && k < p.K, okB = n0 + r < p.N && k < p.K;  // K % 32 == 0: a chunk is all in or all out
      const uint32_t at = r * BK + ((ch ^ (r & 7)) << 4);
      cpAsync16(smemAddr(sA + at), okA ? p.a + static_cast<uint64_t>(m0 + r) * p.K + k : p.a, okA);
      cpAsync16(smemAddr(sB + at), okB ? p.b + static_cast<uint64_t>(n0 + r) * p.K + k : p.b, okB);
    }
    if (tid < 32) cpAsync16(smemAddr(sB + B_BYTES + tid * 16), saTiles + s * SCALE_TILE + tid * 16, true);
    else if (tid < 64) cpAsync16(smemAddr(sB + B_BYTES + SCALE_TILE + (tid - 32) * 16), sbTiles + s * SCALE_TILE + (tid - 32) * 16, true);
  };

  float acc[4][4][4];  // [m16 tile i][n8 tile j][c0..c3]: rows g, g+8 (h) × columns 2t, 2t+1 (e), index 2h + e
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if (s < steps) load(s, s);
    cpAsyncCommit();
  }

  for (int s = 0; s < steps; s++) {
    cpAsyncWait<STAGES - 2>();
    __syncthreads();  // step s is in shared memory for all; every warp is done with step s - 1
    if (s + STAGES - 1 < steps) load(s + STAGES - 1, (s + STAGES - 1) % STAGES);
    cpAsyncCommit();

    const uint8_t* sA = smem + (s % STAGES) * STAGE_BYTES;
    const uint8_t* sB = sA + A_BYTES;
    {  // Decode this step's scale codes: thread w < 128 the four blocks of A's row rr, the rest B's.
      const int w = tid & 127, rr = (w >> 2) + 32 * (w & 3);  // 4-byte word w of the tile holds row rr's blocks 0..3
      const uint32_t codes = reinterpret_cast<const uint32_t*>(sB + B_BYTES + (tid < 128 ? 0 : SCALE_TILE))[w];
      // A row rr = 64 wm + 16 i + 8 h + g sits at 64 wm + 8 g + 2 i + h; B column rr = 32 wn + 8 j + 2 t + e at 32 wn + 8 t + 2 j + e.
      const int pos = tid < 128 ? (rr & 64) + (rr & 7) * 8 + ((rr >> 4) & 3) * 2 + ((rr >> 3) & 1) : (rr & 96) + ((rr >> 1) & 3) * 8 + ((rr >> 3) & 3) * 2 + (rr & 1);
      float* dec = tid < 128 ? decA : decB;
#pragma unroll
      for (int c = 0; c < 4; c++) dec[c * 128 + pos] = e8m0((codes >> (8 * c)) & 0xffu);
    }
    __syncthreads();

    const uint32_t aBase = smemAddr(sA), bBase = smemAddr(sB);
    const int blocks = min(4, nK - 4 * s);
#pragma unroll
    for (int kb = 0; kb < 4; kb++) {
      if (kb >= blocks) break;
      // A: m16 tile i, matrices (rows 0-7 | 8-15) × (k 0-15 | 16-31) of block kb -> the m16n8k32 FP8 fragment.
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int r = wm * 64 + i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, ch = 2 * kb + (lane >> 4);
        ldmatrixX4(aBase + r * BK + ((ch ^ (r & 7)) << 4), af[i]);
      }
      // B: two n8 tiles per load, matrices (tile 2jj | 2jj+1) × (k 0-15 | 16-31).
#pragma unroll
      for (int jj = 0; jj < 2; jj++) {
        const int r = wn * 32 + jj * 16 + (lane & 7) + (lane >> 4) * 8, ch = 2 * kb + ((lane >> 3) & 1);
        uint32_t q[4];
        ldmatrixX4(bBase + r * BK + ((ch ^ (r & 7)) << 4), q);
        bf[2 * jj][0] = q[0], bf[2 * jj][1] = q[1], bf[2 * jj + 1][0] = q[2], bf[2 * jj + 1][1] = q[3];
      }
      // Widen to f16. MMA h (h = 0: k 0-15 of the block, 1: k 16-31) takes logical k (2t, 2t+1) as
      // actual (4t, 4t+1) and (2t+8, 2t+9) as (4t+2, 4t+3), for A and B alike.
      uint32_t ah[4][2][4], bh[4][2][2];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          widen<AF>(af[i][2 * h], ah[i][h][0], ah[i][h][2]);      // row g
          widen<AF>(af[i][2 * h + 1], ah[i][h][1], ah[i][h][3]);  // row g + 8
        }
#pragma unroll
      for (int j = 0; j < 4; j++)
#pragma unroll
        for (int h = 0; h < 2; h++) widen<BF>(bf[j][h], bh[j][h][0], bh[j][h][1]);

      const float4* dA = reinterpret_cast<const float4*>(decA + kb * 128 + wm * 64 + g * 8);
      const float4* dB = reinterpret_cast<const float4*>(decB + kb * 128 + wn * 32 + t * 8);
      const float4 a01 = dA[0], a23 = dA[1], b01 = dB[0], b23 = dB[1];
      const float sa[4][2] = {{a01.x, a01.y}, {a01.z, a01.w}, {a23.x, a23.y}, {a23.z, a23.w}};
      const float sb[4][2] = {{b01.x, b01.y}, {b01.z, b01.w}, {b23.x, b23.y}, {b23.z, b23.w}};
      const float zero[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          float part[4];
          mma16816(part, ah[i][0], bh[j][0], zero);
          mma16816(part, ah[i][1], bh[j][1], part);
#pragma unroll
          for (int e = 0; e < 4; e++) acc[i][j][e] = fmaf(part[e], sa[i][e >> 1] * sb[j][e & 1], acc[i][j][e]);
        }
    }
  }
  cpAsyncWait<0>();

  OutT* d = static_cast<OutT*>(p.d);
  const bool pairs = (p.N & 1) == 0;  // then (row · N + even column) is even: 2-element stores are aligned
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int row = m0 + wm * 64 + i * 16 + h * 8 + g;
      if (row >= p.M) continue;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int col = n0 + wn * 32 + j * 8 + 2 * t;
        const uint64_t at = static_cast<uint64_t>(row) * p.N + col;
        const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
        if (pairs && col + 1 < p.N) storePair(d, at, v0, v1);
        else {
          if (col < p.N) storeOut(d, at, v0);
          if (col + 1 < p.N) storeOut(d, at + 1, v1);
        }
      }
    }
}

template <int AF, int BF, typename OutT>
void launch(Napi::Env env, int dev, cudaStream_t s, const Mx8Args& p, unsigned ctas) {
  constexpr auto kernel = mx8GemmSm90K<AF, BF, OutT>;
  DW_CUDA(env, (setSmemLimitOnce<kernel, SMEM_BYTES>(dev)), "cudaFuncSetAttribute (mx8GemmSm90)");
  kernel<<<ctas, THREADS, SMEM_BYTES, s>>>(p);
}

template <typename OutT>
void launchFormats(Napi::Env env, int dev, cudaStream_t s, const Mx8Args& p, unsigned ctas, int af, int bf) {
  constexpr int e4 = abi::fp8::e4m3, e5 = abi::fp8::e5m2;
  if (af == e4 && bf == e4) launch<e4, e4, OutT>(env, dev, s, p, ctas);
  else if (af == e5 && bf == e4) launch<e5, e4, OutT>(env, dev, s, p, ctas);
  else launch<e4, e5, OutT>(env, dev, s, p, ctas);
}

Napi::Value Mx8GemmSm90(const Napi::CallbackInfo& info) {
  const abi::Mx8GemmSm90Args a = abi::readMx8GemmSm90(info);
  Napi::Env env = info.Env();
  const char* fn = "mx8GemmSm90";
  auto bad = [&](const std::string& what) { fail(env, "INVALID_ARGUMENT", "Expected " + what + " for " + fn); };
  const uint64_t M = a.M, N = a.N, K = a.K;  // each <= 2^31 - 1 (the reader checked)
  if (M == 0 || N == 0 || K == 0) bad("M, N and K >= 1 but received " + std::to_string(M) + ", " + std::to_string(N) + ", " + std::to_string(K));
  if (K % 32 != 0) bad("K divisible by 32 (whole MX blocks) but received " + std::to_string(K));
  auto name = [](int f) { return std::string(f == abi::fp8::e4m3 ? "e4m3" : f == abi::fp8::e5m2 ? "e5m2" : "e2m1"); };
  if (a.aFormat == abi::fp8::e2m1 || a.bFormat == abi::fp8::e2m1 || (a.aFormat == abi::fp8::e5m2 && a.bFormat == abi::fp8::e5m2))
    bad("FP8 operands e4m3 or e5m2, at most one e5m2, but received (" + name(a.aFormat) + ", " + name(a.bFormat) + ")");
  if (a.outDtype != kBF16 && a.outDtype != kF32) bad("an output dtype of bf16 or f32");
  const uint64_t tilesM = (M + BM - 1) / BM, tilesN = (N + BN - 1) / BN;
  if (tilesM * tilesN > 2147483647ull) bad("at most 2^31 - 1 tiles of 128 × 128 but received " + std::to_string(M) + " × " + std::to_string(N));
  // Scales: ceil(R / 128) · ceil(K / 128) tiles of 512 bytes per operand (scaledGemmLt's mx32 size).
  const uint64_t scaleBytesA = tilesM * ((K / 32 + 3) / 4) * 512, scaleBytesB = tilesN * ((K / 32 + 3) / 4) * 512;
  const uint64_t outBytes = mulSize(env, M, N, fn) * dtypeBytes(a.outDtype);
  const uint8_t* A = a.a.ptr<uint8_t>(env, mulSize(env, M, K, fn));
  const uint8_t* B = a.b.ptr<uint8_t>(env, mulSize(env, N, K, fn));
  const uint8_t* SA = a.aScale.ptr<uint8_t>(env, scaleBytesA);
  const uint8_t* SB = a.bScale.ptr<uint8_t>(env, scaleBytesB);
  void* D = a.d.ptr<uint8_t>(env, outBytes);
  if (!aligned16(A) || !aligned16(B) || !aligned16(SA) || !aligned16(SB) || !aligned16(D)) bad("16-byte aligned a, aScale, b, bScale and d");
  if (badOverlap(D, outBytes, A, M * K) || D == A || badOverlap(D, outBytes, B, N * K) || D == B || badOverlap(D, outBytes, SA, scaleBytesA) || D == SA ||
      badOverlap(D, outBytes, SB, scaleBytesB) || D == SB)
    bad("d apart from a, b and their scales");
  int dev = 0;
  DW_CUDA(env, cudaGetDevice(&dev), "cudaGetDevice");
  const int cc = computeCapability(dev);
  if (cc < 89) bad("a GPU of compute capability 8.9 or newer (FP8 conversions; the addon has code for 9.0 and 10.x) but this GPU is " + std::to_string(cc / 10) + "." + std::to_string(cc % 10));
  const Mx8Args p{A, SA, B, SB, D, int(M), int(N), int(K)};
  const unsigned ctas = static_cast<unsigned>(tilesM * tilesN);
  if (a.outDtype == kBF16) launchFormats<__nv_bfloat16>(env, dev, a.stream, p, ctas, a.aFormat, a.bFormat);
  else launchFormats<float>(env, dev, a.stream, p, ctas, a.aFormat, a.bFormat);
  checkLaunch(env, fn);
  return env.Undefined();
}

}  // namespace

void initGemmMx8(Napi::Env env, Napi::Object exports) { def(env, exports, "mx8GemmSm90", Mx8GemmSm90); }

}  // namespace dw

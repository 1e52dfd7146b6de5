// The layernorm backward's default kernel for the rows the register-row framework takes
// (ops/nn/reg_rows.cuh): layernormBwdPipeK. DEEPWELL_NORM_BWD_KERNEL=reg keeps the first register
// kernel (layernormBwdRegK, ops/nn/layernorm.cu), =wide picks this kernel's variant without the
// prefetch (below), =rows the row framework's. Same rows, plan, row order and arithmetic as
// layernormBwdRegK, so dx is bitwise the same; what differs is where things live:
//   - each thread's dweight / dbias column sums (2 x 24 floats for a bf16 row of 768) are in its own
//     slots of shared memory, not in registers: 48 KiB a block of 256 threads for 3 chunks a thread
//     (16 KiB a chunk). Read-modify-written once a row, conflict-free (a warp's float4s are 512
//     consecutive bytes), through asm so that the compiler cannot keep them in registers over the
//     row loop (it did: they are private to the thread);
//   - the registers that frees hold the next row: g, x, mean and rstd of row k + 1 and the addend of
//     row k are loaded before row k's arithmetic (software pipelining), so a warp has about a row's
//     bytes in flight (4.5 KB for bf16 at D = 768, with the addend) while it computes, and the
//     addend is no longer a second memory round trip after the sums;
//   - chunks stay 32-bit words in registers, converted element by element (elemF): held as bf16
//     Packs they were split into 16-bit registers, a full register each, and spilled;
//   - weight is read from L1 in both passes.
// At the end, one block barrier, then each thread adds a share of the block's columns over the row
// groups in group order (the order layernormBwdRegK adds them in) and writes the block's slice.
// Two blocks an SM, as layernormBwdRegK (both are bound to 128 registers; the smem, 2 x 48 KiB, does
// not bind): the same grid, so dweight and dbias are bitwise the same too. The wide variant
// (WIDE: no prefetch, three blocks an SM, 80 registers) has a larger grid: its column sums are
// deterministic, in another fixed order.
//
// ptxas (CUDA 13.0), bf16 at D = 768 (W = 1, 3 chunks): 109 registers on sm_90a, 115 on sm_100f, no
// spills (layernormBwdRegK: 128 with 40-68 bytes of spill stores); WIDE 77 / 78, no spills.
// H200 (2026-12-03, bench/layernorm.mjs): [16384, 768] bf16 36.2 µs, 0.65 of a copy (reg 0.51); with
// the addend 0.70 (0.52); at 131072 rows 0.84 / 0.89. Its GPU tests (cuda-nn.test.ts) pass.
#include "ops/nn/layernorm_bwd.h"

#include "common/dtype.h"
#include "common/launch.h"
#include "common/rows.cuh"
#include "ops/nn/norm_partials.h"
#include "ops/nn/reg_rows.cuh"

#include <cstdint>
#include <type_traits>

namespace dw::nn {
namespace {

// Dynamic shared memory of layernormBwdPipeK: 2 x NCH x V float column sums per thread.
template <int NCH, int V>
constexpr size_t pipeSmem() {
  return static_cast<size_t>(2) * NCH * V * kRegThreads * sizeof(float);
}

// A 16-byte chunk held as four 32-bit words, and its element k as toF gives it, converted from the
// words: as Pack<T, V>, bf16 chunks were split into 16-bit registers (a full register each) and the
// backward spilled. bf16 -> f32 is exact (the bits in the high half), as __bfloat162float.
template <typename T>
__device__ __forceinline__ uint4 ldChunk(const T* p, int64_t chunk) {
  return reinterpret_cast<const uint4*>(p)[chunk];
}

__device__ __forceinline__ uint32_t word(const uint4& u, int i) {
  return i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w;
}

template <typename T>
__device__ __forceinline__ float elemF(const uint4& u, int k) {
  if constexpr (sizeof(T) == 4) {
    return __uint_as_float(word(u, k));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const uint32_t w = word(u, k >> 1);
    return __uint_as_float((k & 1) ? (w & 0xffff0000u) : (w << 16));
  } else {
    const uint32_t w = word(u, k >> 1);
    return __half2float(__ushort_as_half(static_cast<unsigned short>((k & 1) ? (w >> 16) : (w & 0xffffu))));
  }
}

// A float4 of shared memory, loaded or stored where the code says: a thread's column sums are its
// own, so the compiler would otherwise keep them in registers over the row loop (the registers this
// kernel frees for the next row). The clobbers also keep weight from being held over a row's sums.
__device__ __forceinline__ float4 ldShared4(const float4* p) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(p))) : "memory");
  return v;
}

__device__ __forceinline__ void stShared4(float4* p, const float4& v) {
  asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(static_cast<unsigned>(__cvta_generic_to_shared(p))), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w) : "memory");
}

// Rows as layernormBwdRegK takes them (round k, group y -> row (blockIdx.x + k gridDim.x) G + y).
// Without WIDE, row k + 1's g, x and statistics are loaded at the start of round k, with row k's
// addend; with WIDE, row k's, all together. Shared memory: float4 slot s = (a NCH + i) Q + q of
// thread tid at acc[s kRegThreads + tid] holds the column sums of elements 4q .. 4q + 3 of the
// thread's chunk i, a = 0 for dweight (g * xhat), 1 for dbias (g).
template <typename T, int V, int NCH, int W, bool WIDE>
__global__ void __launch_bounds__(kRegThreads, WIDE ? 3 : 2)
    layernormBwdPipeK(const T* g, const T* x, const T* w, const float* mean, const float* rstd, const T* addend, T* dx, int64_t rows, int nch, float* ws) {
  constexpr bool PF = !WIDE;
  constexpr int TPR = 32 * W, G = kRegThreads / TPR, Q = V / 4;
  __shared__ float2 sh[2][kRegMaxWarps];
  extern __shared__ float4 acc[];
  const int t = threadIdx.x;
  const int tid = threadIdx.y * TPR + t;
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  float4* mine = acc + tid;
#pragma unroll
  for (int s = 0; s < 2 * NCH * Q; s++) mine[s * kRegThreads] = make_float4(0.f, 0.f, 0.f, 0.f);
  const int64_t step = static_cast<int64_t>(gridDim.x) * G;
  // Row r's g and x chunks and statistics, and its addend chunks, into the given registers; nothing
  // past the last row.
  auto loadGx = [&](int64_t r, uint4(&gq)[NCH], uint4(&xq)[NCH], float& m, float& s) {
    if (r < rows) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch) {
          gq[i] = ldChunk(g + r * D, j);
          xq[i] = ldChunk(x + r * D, j);
        }
      }
      m = mean[r];
      s = rstd[r];
    }
  };
  auto loadAddend = [&](int64_t r, uint4(&aq)[NCH]) {
    if (addend && r < rows) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch) aq[i] = ldChunk(addend + r * D, j);
      }
    }
  };
  uint4 gp[NCH], xp[NCH], ap[NCH];
  float mu = 0.f, rs = 0.f;
  if constexpr (PF) loadGx(static_cast<int64_t>(blockIdx.x) * G + threadIdx.y, gp, xp, mu, rs);
  int parity = 0;
#pragma unroll 1
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * G; base < rows; base += step, parity ^= 1) {
    const int64_t row = base + threadIdx.y;
    const bool valid = row < rows;
    // Issued together before any arithmetic: this row's addend and the next row's g and x (WIDE: this
    // row's).
    loadAddend(row, ap);
    uint4 gn[PF ? NCH : 1], xn[PF ? NCH : 1];
    float mn = 0.f, rn = 0.f;
    if constexpr (PF)
      loadGx(row + step, gn, xn, mn, rn);
    else
      loadGx(row, gp, xp, mu, rs);
    float sGw = 0.f, sGwX = 0.f;
    if (valid) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch) {
          const uint4 wp = ldChunk(w, j);
#pragma unroll
          for (int k = 0; k < V; k++) {
            const float xh = (elemF<T>(xp[i], k) - mu) * rs;
            const float gw = __fmul_rn(elemF<T>(gp[i], k), elemF<T>(wp, k));
            sGw += gw;
            sGwX += gw * xh;
          }
        }
      }
    }
    groupSum2<W>(sGw, sGwX, sh, parity);
    const float mGw = sGw / Df, mGwX = sGwX / Df;
    if (valid) {
      // The column sums: the same adds, in the same row order, as layernormBwdRegK's registers.
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        if (t + i * TPR < nch) {
#pragma unroll
          for (int q = 0; q < Q; q++) {
            float4* cw = mine + (i * Q + q) * kRegThreads;
            float4* cb = mine + ((NCH + i) * Q + q) * kRegThreads;
            const float4 w4 = ldShared4(cw), b4 = ldShared4(cb);
            float aw[4] = {w4.x, w4.y, w4.z, w4.w}, ab[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int c = 0; c < 4; c++) {
              const int k = 4 * q + c;
              const float gv = elemF<T>(gp[i], k);
              const float xh = (elemF<T>(xp[i], k) - mu) * rs;
              aw[c] += gv * xh;
              ab[c] += gv;
            }
            stShared4(cw, make_float4(aw[0], aw[1], aw[2], aw[3]));
            stShared4(cb, make_float4(ab[0], ab[1], ab[2], ab[3]));
          }
        }
      }
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch) {
          const uint4 wp = ldChunk(w, j);
          float o[V];
#pragma unroll
          for (int k = 0; k < V; k++) {
            const float xh = (elemF<T>(xp[i], k) - mu) * rs;
            o[k] = rs * (__fmul_rn(elemF<T>(gp[i], k), elemF<T>(wp, k)) - mGw - xh * mGwX);
          }
          if (addend) {
#pragma unroll
            for (int k = 0; k < V; k++) o[k] = __fadd_rn(toF(fromF<T>(o[k])), elemF<T>(ap[i], k));  // no FMA (f32: fromF is no rounding)
          }
          stPack<T, V>(dx + row * D, j, o);
        }
      }
    }
    if constexpr (PF) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        gp[i] = gn[i];
        xp[i] = xn[i];
      }
      mu = mn;
      rs = rn;
    }
  }
  // The block's column sums: for each column, group 0's plus group 1's, ... in order (as
  // layernormBwdRegK adds them), a share of the 2 D columns per thread.
  __syncthreads();
  const float* af = reinterpret_cast<const float*>(acc);
  float* sw = ws + static_cast<int64_t>(blockIdx.x) * 2 * D;
#pragma unroll 1
  for (int64_t e2 = tid; e2 < 2 * D; e2 += kRegThreads) {
    const int a = e2 < D ? 0 : 1;
    const int e = static_cast<int>(e2 - a * D);
    const int j = e / V, k = e % V;
    const float* p = af + (static_cast<int64_t>((a * NCH + j / TPR) * Q + k / 4) * kRegThreads + j % TPR) * 4 + k % 4;
    float v = p[0];
#pragma unroll 1
    for (int y = 1; y < G; y++) v = v + p[y * TPR * 4];
    sw[e2] = v;
  }
}

}  // namespace

template <typename T>
unsigned launchLayernormBwdPipe(Napi::Env env, const RegPlan& p, cudaStream_t st, const abi::WorkspaceArg& wsArg, const T* g, const T* x, const T* w, const float* mean,
                                const float* rstd, const T* addend, T* dx, uint64_t rows, uint64_t D, bool wide, float** wsOut) {
  unsigned nb = 0;
  regDispatch<T>(p, [&](auto Wc, auto Nc) {
    constexpr int W = decltype(Wc)::value, NCH = decltype(Nc)::value, V = 16 / sizeof(T);
    constexpr size_t smem = pipeSmem<NCH, V>();
    auto launch = [&](auto kernel, unsigned perSm) {
      nb = regGrid(perSm, rows, p.groups(), static_cast<uint64_t>(kWsFloats) / (2 * D));
      float* ws = takeNormPartials(env, wsArg, normPartialFloats(nb, D, 2));
      *wsOut = ws;
      kernel<<<nb, p.block(), smem, st>>>(g, x, w, mean, rstd, addend, dx, static_cast<int64_t>(rows), static_cast<int>(D / V), ws);
    };
    if (wide)
      launch(layernormBwdPipeK<T, V, NCH, W, true>, regBlocksPerSm<layernormBwdPipeK<T, V, NCH, W, true>>(env, smem));
    else
      launch(layernormBwdPipeK<T, V, NCH, W, false>, regBlocksPerSm<layernormBwdPipeK<T, V, NCH, W, false>>(env, smem));
  });
  return nb;
}

#define DW_LN_BWD_PIPE(T)                                                                                                                                    \
  template unsigned launchLayernormBwdPipe<T>(Napi::Env, const RegPlan&, cudaStream_t, const abi::WorkspaceArg&, const T*, const T*, const T*, const float*, \
                                              const float*, const T*, T*, uint64_t, uint64_t, bool, float**);
DW_LN_BWD_PIPE(float)
DW_LN_BWD_PIPE(__nv_bfloat16)
DW_LN_BWD_PIPE(__half)
#undef DW_LN_BWD_PIPE

}  // namespace dw::nn

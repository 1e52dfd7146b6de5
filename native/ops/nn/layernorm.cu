// layernorm, add_layernorm and the layernorm backward (nn family; see nn.cpp).
//
//   layernorm(stream, dtype, rows, D, eps, x, weight, bias, y, mean, rstd)
//   addLayernorm(stream, dtype, rows, D, eps, x, residual, weight, bias, sum, y, mean, rstd, amax)
//       sum = x + residual (stored, rounded), then layernorm of sum: add_layernorm in one pass.
//       amax (optional f32[1]): the largest finite |y| as stored, for the FP8 quantizer that reads
//       y (common/amax.cuh).
//   layernormBackward(stream, dtype, rows, D, g, x, weight, mean, rstd, dx, dweight, dbias, addend, workspace)
//       addend (optional, as x): added to dx as stored, the sum rounded again (the residual stream's
//       gradient from passes/fuse-norm-residual.ts: the bits of dx then an add); may be dx itself.
//       workspace: the column partials, at least 4 * min(4 << 20, rows * 2 * D) bytes.
//
// These kernels are memory-bound: a bf16 row of 768 is 1.5 KB per tensor, and a [16384, 768]
// backward moves 75 MB (g, x in, dx out) in what a device-to-device copy of the same bytes takes
// (~20 us on an H200). Rows that split into 16-byte chunks and hold in 8 warps x 32 threads x 4
// chunks (6144 bf16 / 4096 f32 elements) go through the register-row kernels (ops/nn/reg_rows.cuh):
// one warp per row up to 768 bf16 elements, the row read once into registers, a persistent grid
// whose blocks keep the backward's column sums over all their rows, so there are as few column
// partials as blocks the GPU holds (a few hundred, not one per 16 rows). Other rows go through the
// row framework (common/rows.cuh). The backward's default register kernel is layernormBwdPipeK
// (ops/nn/layernorm_bwd.cu: column sums in shared memory, the next row's loads in flight while a
// row is computed: 0.65 of a copy at GPT-2's [16384, 768] bf16 against 0.51, on an H200);
// layernormBwdRegK below, which keeps the column sums in
// registers and spills for bf16 at D = 768, stays selectable (DEEPWELL_NORM_BWD_KERNEL=reg,
// reg_rows.cuh's normBwdPath): the same dx bits, and the same dweight / dbias bits where both get
// the same blocks per SM (the same grid).
//
// Determinism: the backward's dweight and dbias are column sums over rows: each block adds its row
// groups' sums in group order and writes one slice of the call's workspace; launchColReduce adds
// the slices in a fixed order (norm_partials.h). The grid depends on the device and the shape only,
// so the bits are the same run to run. No float atomics.
#include "ops/nn/nn.h"

#include "common/dtype.h"
#include "common/launch.h"  // checkRowLength
#include "common/amax.cuh"
#include "common/launch.h"
#include "common/rows.cuh"
#include "ops/nn/layernorm_bwd.h"
#include "ops/nn/norm_partials.h"
#include "ops/nn/reg_rows.cuh"

#include <string>

namespace dw::nn {
namespace {

// With RES (add_layernorm), the row normalised is s = x + r, rounded to T and written out first (as
// the unfused add would store it); each thread then reads back only the chunks it wrote itself.
template <typename T, int V, int NCH, bool CACHED, bool RES>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    layernormK(const T* x, const T* r, T* s, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows, int nch, float eps, float* amax) {
  __shared__ float sh[32];
  float m = 0.f;  // the largest finite |y| this thread stored (with amax)
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
      if (amax) {
#pragma unroll
        for (int k = 0; k < V; k++) m = fmaxf(m, finiteAbs(toF(fromF<T>(o[k]))));
      }
    });
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = r;
    }
  }
  if (amax) blockAmaxAtomic(m, amax);
}

// dx per row; the row group's column sums of g * xhat and g go to its slice of the workspace (ws,
// [min(gridDim.x * blockDim.y, rows)][2][D], see normPartialSlices): kept in registers when CACHED,
// read-modify-written in ws otherwise. Each column of a slice belongs to one thread, so the slices
// are deterministic. A row group past the last row has no slice and writes nothing.
template <typename T, int V, int NCH, bool CACHED>
__global__ void __launch_bounds__(CACHED ? kCachedThreads : 1024)
    layernormBwdK(const T* g, const T* x, const T* w, const float* mean, const float* rstd, const T* addend, T* dx, int64_t rows, int nch, float* ws) {
  __shared__ float2 sh[32];
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  const bool hasSlice = firstRow() < rows;
  float* pw = ws + firstRow() * 2 * D;  // this row group's slice (firstRow() is its slot)
  float* pb = pw + D;
  float aw[CACHED ? NCH : 1][V], ab[CACHED ? NCH : 1][V];
#pragma unroll
  for (int i = 0; i < (CACHED ? NCH : 1); i++)
#pragma unroll
    for (int k = 0; k < V; k++) aw[i][k] = ab[i][k] = 0.f;
  if constexpr (!CACHED) {
    if (hasSlice)
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
      if (addend) {
        float av[V];
        loadF<T, V>(addend + row * D + static_cast<int64_t>(j) * V, av);
#pragma unroll
        for (int k = 0; k < V; k++) o[k] = __fadd_rn(toF(fromF<T>(o[k])), av[k]);  // no FMA: the add as the add kernel does it
      }
      storeF<T, V>(dr + static_cast<int64_t>(j) * V, o);
    });
  }
  if constexpr (CACHED) {
    if (hasSlice) {
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
}

// ---- register-row kernels (ops/nn/reg_rows.cuh) -----------------------------------------------------

// layernorm (and add_layernorm with RES): the same arithmetic as layernormK, the row held in
// registers as stored (with RES, the sum rounded to T, never read back). Weight and bias are read
// for every row (L1 hits): held in registers they would cost the registers that let three blocks
// share an SM.
template <typename T, int V, int NCH, int W, bool RES>
__global__ void __launch_bounds__(kRegThreads, 3)
    layernormRegK(const T* x, const T* r, T* s, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows, int nch, float eps, float* amax) {
  constexpr int TPR = 32 * W, G = kRegThreads / TPR;
  __shared__ float2 sh[2][kRegMaxWarps];
  const int t = threadIdx.x;
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  float m = 0.f;  // the largest finite |y| this thread stored (with amax)
  int parity = 0;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * G; base < rows; base += static_cast<int64_t>(gridDim.x) * G) {
    const int64_t row = base + threadIdx.y;
    const bool valid = row < rows;
    // The row as stored, packed (x, or with RES the sum as written, rounded to T): half the
    // registers of floats for bf16, so three blocks share an SM without spilling.
    Pack<T, V> xp[NCH];
    {
      Pack<T, V> rp[NCH];
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (valid && j < nch) {
          xp[i] = ldPack<T, V>(x + row * D, j);
          if constexpr (RES) rp[i] = ldPack<T, V>(r + row * D, j);
        }
      }
      if constexpr (RES) {
#pragma unroll
        for (int i = 0; i < NCH; i++) {
          const int j = t + i * TPR;
          if (valid && j < nch) {
#pragma unroll
            for (int k = 0; k < V; k++) xp[i].v[k] = fromF<T>(toF(xp[i].v[k]) + toF(rp[i].v[k]));
            reinterpret_cast<Pack<T, V>*>(s + row * D)[j] = xp[i];
          }
        }
      }
    }
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < NCH; i++)
      if (valid && t + i * TPR < nch)
#pragma unroll
        for (int k = 0; k < V; k++) sum += toF(xp[i].v[k]);
    const float mu = groupSum<W>(sum, sh, parity) / Df;
    parity ^= 1;
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < NCH; i++) {
      if (valid && t + i * TPR < nch)
#pragma unroll
        for (int k = 0; k < V; k++) {
          const float d = toF(xp[i].v[k]) - mu;
          sq += d * d;
        }
    }
    const float rs = 1.f / sqrtf(groupSum<W>(sq, sh, parity) / Df + eps);
    parity ^= 1;
    if (valid) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch) {
          const Pack<T, V> wp = ldPack<T, V>(w, j), bp = ldPack<T, V>(b, j);
          float o[V];
#pragma unroll
          for (int k = 0; k < V; k++) o[k] = (toF(xp[i].v[k]) - mu) * rs * toF(wp.v[k]) + toF(bp.v[k]);
          stPack<T, V>(y + row * D, j, o);
          if (amax) {
#pragma unroll
            for (int k = 0; k < V; k++) m = fmaxf(m, finiteAbs(toF(fromF<T>(o[k]))));
          }
        }
      }
      if (t == 0) {
        mean[row] = mu;
        rstd[row] = rs;
      }
    }
  }
  if (amax) blockAmaxAtomic(m, amax);
}

// The layernorm backward: the same arithmetic as layernormBwdK. Since layernormBwdPipeK
// (ops/nn/layernorm_bwd.cu) it runs only when DEEPWELL_NORM_BWD_KERNEL=reg asks for it: measured at
// 0.55 of a copy for GPT-2's [16384, 768] bf16 without an addend (it spills, and reads the addend
// only after the sums). Each thread adds g * xhat and g of its columns over all its rows in
// registers; at the end the block's row groups add theirs in group order (through shared memory:
// 2 D floats when G > 1) and the last writes the block's slice of ws ([gridDim.x][2][D], dweight's
// half first).
template <typename T, int V, int NCH, int W>
__global__ void __launch_bounds__(kRegThreads, 2)
    layernormBwdRegK(const T* g, const T* x, const T* w, const float* mean, const float* rstd, const T* addend, T* dx, int64_t rows, int nch, float* ws) {
  constexpr int TPR = 32 * W, G = kRegThreads / TPR;
  __shared__ float2 sh[2][kRegMaxWarps];
  extern __shared__ float part[];  // [2][D] when G > 1
  const int t = threadIdx.x;
  const int64_t D = static_cast<int64_t>(nch) * V;
  const float Df = static_cast<float>(D);
  // weight is read again for every row (from L1): kept in registers it would cost the registers
  // that let two blocks share an SM.
  float aw[NCH][V], ab[NCH][V];
#pragma unroll
  for (int i = 0; i < NCH; i++)
#pragma unroll
    for (int k = 0; k < V; k++) aw[i][k] = ab[i][k] = 0.f;
  int parity = 0;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * G; base < rows; base += static_cast<int64_t>(gridDim.x) * G, parity ^= 1) {
    const int64_t row = base + threadIdx.y;
    const bool valid = row < rows;
    Pack<T, V> gp[NCH], xp[NCH], wp[NCH];
#pragma unroll
    for (int i = 0; i < NCH; i++) {
      const int j = t + i * TPR;
      if (valid && j < nch) {
        gp[i] = ldPack<T, V>(g + row * D, j);
        xp[i] = ldPack<T, V>(x + row * D, j);
        wp[i] = ldPack<T, V>(w, j);
      }
    }
    const float mu = valid ? mean[row] : 0.f, rs = valid ? rstd[row] : 0.f;
    float sGw = 0.f, sGwX = 0.f;
    if (valid) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        if (t + i * TPR < nch)
#pragma unroll
          for (int k = 0; k < V; k++) {
            const float gv = toF(gp[i].v[k]);
            const float xh = (toF(xp[i].v[k]) - mu) * rs;
            const float gw = __fmul_rn(gv, toF(wp[i].v[k]));
            sGw += gw;
            sGwX += gw * xh;
            aw[i][k] += gv * xh;
            ab[i][k] += gv;
          }
      }
    }
    groupSum2<W>(sGw, sGwX, sh, parity);
    const float mGw = sGw / Df, mGwX = sGwX / Df;
    if (valid) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch) {
          float o[V];
#pragma unroll
          for (int k = 0; k < V; k++) {
            const float xh = (toF(xp[i].v[k]) - mu) * rs;
            o[k] = rs * (__fmul_rn(toF(gp[i].v[k]), toF(wp[i].v[k])) - mGw - xh * mGwX);
          }
          if (addend) {
            const Pack<T, V> ap = ldPack<T, V>(addend + row * D, j);
#pragma unroll
            for (int k = 0; k < V; k++) o[k] = __fadd_rn(toF(fromF<T>(o[k])), toF(ap.v[k]));  // no FMA (f32: fromF is no rounding)
          }
          stPack<T, V>(dx + row * D, j, o);
        }
      }
    }
  }
  // The block's column sums: group 0's, plus group 1's, ... in order; the last group writes.
  float* sw = ws + static_cast<int64_t>(blockIdx.x) * 2 * D;
#pragma unroll 1
  for (int y = 0; y < G; y++) {
    if (threadIdx.y == y) {
#pragma unroll
      for (int i = 0; i < NCH; i++) {
        const int j = t + i * TPR;
        if (j < nch)
#pragma unroll
          for (int k = 0; k < V; k++) {
            const int64_t e = static_cast<int64_t>(j) * V + k;
            float vw = aw[i][k], vb = ab[i][k];
            if (y > 0) {
              vw = part[e] + vw;
              vb = part[D + e] + vb;
            }
            if (y == G - 1) {
              sw[e] = vw;
              sw[D + e] = vb;
            } else {
              part[e] = vw;
              part[D + e] = vb;
            }
          }
      }
    }
    if (y < G - 1) __syncthreads();
  }
}

// Launches the register-row forward for a plan; the grid is persistent (reg_rows.cuh).
template <typename T, bool RES>
void launchLayernormReg(Napi::Env env, const RegPlan& p, cudaStream_t st, const T* x, const T* r, T* s, const T* w, const T* b, T* y, float* mean, float* rstd, uint64_t rows,
                        int nch, float eps, float* amax) {
  regDispatch<T>(p, [&](auto Wc, auto Nc) {
    constexpr int W = decltype(Wc)::value, NCH = decltype(Nc)::value, V = 16 / sizeof(T);
    const unsigned grid = regGrid(regBlocksPerSm<layernormRegK<T, V, NCH, W, RES>>(env, 0), rows, p.groups(), uint64_t(1) << 20);
    layernormRegK<T, V, NCH, W, RES><<<grid, p.block(), 0, st>>>(x, r, s, w, b, y, mean, rstd, static_cast<int64_t>(rows), nch, eps, amax);
  });
}

// Launches the register-row backward; returns the number of column-partial slices it writes (its
// grid), after taking them from the call's workspace.
template <typename T>
unsigned launchLayernormBwdReg(Napi::Env env, const RegPlan& p, cudaStream_t st, const abi::WorkspaceArg& wsArg, const T* g, const T* x, const T* w, const float* mean,
                               const float* rstd, const T* addend, T* dx, uint64_t rows, uint64_t D, float** wsOut) {
  unsigned nb = 0;
  regDispatch<T>(p, [&](auto Wc, auto Nc) {
    constexpr int W = decltype(Wc)::value, NCH = decltype(Nc)::value, V = 16 / sizeof(T);
    const size_t smem = p.groups() > 1 ? 2 * D * sizeof(float) : 0;
    // smem is a function of D, so the occupancy is asked for the most any row of this plan takes.
    const size_t smemMax = p.groups() > 1 ? 2 * sizeof(float) * static_cast<size_t>(32 * W * NCH * V) : 0;
    nb = regGrid(regBlocksPerSm<layernormBwdRegK<T, V, NCH, W>>(env, smemMax), rows, p.groups(), static_cast<uint64_t>(kWsFloats) / (2 * D));
    float* ws = takeNormPartials(env, wsArg, normPartialFloats(nb, D, 2));
    *wsOut = ws;
    layernormBwdRegK<T, V, NCH, W><<<nb, p.block(), smem, st>>>(g, x, w, mean, rstd, addend, dx, static_cast<int64_t>(rows), static_cast<int>(D / V), ws);
  });
  return nb;
}

// layernorm and add_layernorm: the same kernel; add_layernorm (RES, A = abi::AddLayernormArgs)
// takes the residual r after x and writes the sum s before y.
template <bool RES, typename A>
Napi::Value layernormCall(Napi::Env env, const A& a) {
  const bool res = RES;
  const std::string op = res ? "add_layernorm" : "layernorm";
  auto name = [&](const char* what) { return op + " " + what; };
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, D = a.D;
  const float eps = static_cast<float>(a.eps);
  const uint64_t total = mulSize(env, rows, D, name("x").c_str());
  checkRowLength(env, D, op.c_str());
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* x = a.x.template ptr<T>(env, total);
    const T* r = nullptr;
    if constexpr (RES) r = a.residual.template ptr<T>(env, total);
    const T* w = a.weight.template ptr<T>(env, D);
    const T* b = a.bias.template ptr<T>(env, D);
    T* sum = nullptr;
    if constexpr (RES) sum = a.sum.template ptr<T>(env, total);
    T* y = a.y.template ptr<T>(env, total);
    float* mean = a.mean.template ptr<float>(env, rows);
    float* rstd = a.rstd.template ptr<float>(env, rows);
    float* amax = nullptr;
    if constexpr (RES) amax = a.amax.template optPtr<float>(env, 1);
    zeroAmax(env, amax, s);
    if (rows == 0) return env.Undefined();
    if (D == 0) fail(env, "INVALID_ARGUMENT", "Expected a row length of at least 1 for " + op + " but received 0");
    if (res && (badOverlap(sum, total * sizeof(T), x, total * sizeof(T)) || badOverlap(sum, total * sizeof(T), r, total * sizeof(T))))
      fail(env, "INVALID_ARGUMENT", "Expected add_layernorm's sum to be the same range as x or the residual, or not to overlap them, but it overlaps one partly");
    const bool vec = canVec<T>(D, {x, r ? r : x, sum ? sum : y, w, b, y});
    const RegPlan rp = vec && regRowsAllowed() ? regPlan(static_cast<int64_t>(D / (16 / sizeof(T))), regMaxChunks<T>()) : RegPlan{};
    if (rp.W > 0) {
      launchLayernormReg<T, RES>(env, rp, s, x, r, sum, w, b, y, mean, rstd, rows, static_cast<int>(D / (16 / sizeof(T))), eps, amax);
      checkLaunch(env, op.c_str());
      return env.Undefined();
    }
    DW_ROW_DISPATCH(T, vec, DW_FWD_ELEMS(T), {
      const int nch = static_cast<int>(D / V);
      const RowPlan p = rowPlan(nch, NCH);
      const int64_t n = static_cast<int64_t>(rows);
      if (p.cached && res)
        layernormK<T, V, NCH, true, true><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
      else if (p.cached)
        layernormK<T, V, NCH, true, false><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
      else if (res)
        layernormK<T, V, NCH, false, true><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
      else
        layernormK<T, V, NCH, false, false><<<p.grid(rows), p.block(), 0, s>>>(x, r, sum, w, b, y, mean, rstd, n, nch, eps, amax);
    });
    checkLaunch(env, op.c_str());
  });
  return env.Undefined();
}

}  // namespace

Napi::Value Layernorm(const Napi::CallbackInfo& info) {
  const abi::LayernormArgs a = abi::readLayernorm(info);
  return layernormCall<false>(info.Env(), a);
}

Napi::Value AddLayernorm(const Napi::CallbackInfo& info) {
  const abi::AddLayernormArgs a = abi::readAddLayernorm(info);
  return layernormCall<true>(info.Env(), a);
}

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const abi::LayernormBackwardArgs a = abi::readLayernormBackward(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  const uint64_t rows = a.rows, D = a.D;
  const uint64_t total = mulSize(env, rows, D, "layernorm_backward x");
  checkRowLength(env, D, "layernorm_backward");
  if (D > static_cast<uint64_t>(kWsFloats) / 2)
    fail(env, "INVALID_ARGUMENT", "Expected a row length of at most " + std::to_string(kWsFloats / 2) + " for layernorm_backward but received " + std::to_string(D));
  DW_DISPATCH_FLOAT(env, a.dtype, T, {
    const T* g = a.g.ptr<T>(env, total);
    const T* x = a.x.ptr<T>(env, total);
    const T* w = a.weight.ptr<T>(env, D);
    const float* mean = a.mean.ptr<float>(env, rows);
    const float* rstd = a.rstd.ptr<float>(env, rows);
    T* dx = a.dx.ptr<T>(env, total);
    const T* addend = a.addend.template optPtr<T>(env, total);
    T* dw = a.dweight.ptr<T>(env, D);
    T* db = a.dbias.ptr<T>(env, D);
    if (D == 0) return env.Undefined();
    unsigned nb = 0;
    float* ws = nullptr;
    const bool vec = canVec<T>(D, {g, x, w, dx, addend});
    const NormBwdPath path = normBwdPath();
    const RegPlan rp = vec && path != NormBwdPath::Rows ? regPlan(static_cast<int64_t>(D / (16 / sizeof(T))), regMaxChunks<T>()) : RegPlan{};
    if (rows > 0 && rp.W > 0) {
      if (path == NormBwdPath::Reg)
        nb = launchLayernormBwdReg<T>(env, rp, s, a.workspace, g, x, w, mean, rstd, addend, dx, rows, D, &ws);
      else
        nb = launchLayernormBwdPipe<T>(env, rp, s, a.workspace, g, x, w, mean, rstd, addend, dx, rows, D, path == NormBwdPath::Wide, &ws);
      checkLaunch(env, "layernorm_backward");
    } else if (rows > 0) {
      DW_ROW_DISPATCH(T, vec, kBwdFloats, {
        const int nch = static_cast<int>(D / V);
        const RowPlan p = rowPlan(nch, NCH);
        const unsigned grid = bwdGrid(p, rows, D, 2);
        nb = normPartialSlices(grid * static_cast<unsigned>(p.groups), rows);
        ws = takeNormPartials(env, a.workspace, normPartialFloats(nb, D, 2));
        if (p.cached)
          layernormBwdK<T, V, NCH, true><<<grid, p.block(), 0, s>>>(g, x, w, mean, rstd, addend, dx, static_cast<int64_t>(rows), nch, ws);
        else
          layernormBwdK<T, V, NCH, false><<<grid, p.block(), 0, s>>>(g, x, w, mean, rstd, addend, dx, static_cast<int64_t>(rows), nch, ws);
      });
      checkLaunch(env, "layernorm_backward");
    }
    launchColReduce<T>(s, ws, nb, D, 2 * D, dw, db);
    checkLaunch(env, "layernorm_backward (column sums)");
  });
  return env.Undefined();
}

}  // namespace dw::nn

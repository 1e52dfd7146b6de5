// The column partials of the norm backwards (layernorm_backward, rmsnorm_backward): dweight (and
// dbias) are sums over rows, so each row group of a backward kernel sums its rows into its own slice
// of a per-device scratch buffer (g_ws, in norm_partials.cu), and launchColReduce then adds the
// slices in a fixed order. The number of slices depends on the GPU's SM count only (bwdGrid), so
// the sums are bitwise identical run to run.
//
// g_ws is one buffer per device shared by both backward kernels (so it is defined once, in
// norm_partials.cu; the kernels get its address from normPartials()). They must not run
// concurrently on two streams of one device.
#pragma once
#include "common/launch.h"
#include "common/rows.cuh"

namespace dw::nn {

constexpr int64_t kWsFloats = int64_t(4) << 20;  // 16 MiB: per-block column partials (norm backwards)

// The device address of g_ws (kWsFloats floats) on the current device.
float* normPartials(Napi::Env env);

// Grid for a backward row kernel whose row groups each keep column partials of `arrays` x D floats
// in g_ws: enough groups to fill the GPU, at most one per 16 rows beyond 2 per SM (the partials are
// extra traffic), and within g_ws. The kernel has grid * groups slots.
inline unsigned bwdGrid(const RowPlan& p, uint64_t rows, uint64_t D, int arrays) {
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

// out0[d] = sum over b in [0, nb) of g_ws[b * stride + d] (and out1[d] from g_ws[b * stride + D + d]
// when out1 is not null); see colReduceK. T: float, __nv_bfloat16 or __half.
template <typename T>
void launchColReduce(cudaStream_t s, unsigned nb, uint64_t D, uint64_t stride, T* out0, T* out1);

}  // namespace dw::nn

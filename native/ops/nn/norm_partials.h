// The column partials of the norm backwards (layernorm_backward, rmsnorm_backward): dweight (and
// dbias) are sums over rows, so each row group of a backward kernel sums its rows into its own slice
// of scratch memory, and launchColReduce then adds the slices in a fixed order. The number of slices
// depends on the GPU's SM count and the shape only (bwdGrid), so the sums are bitwise identical run
// to run.
//
// The scratch is the call's workspace (normPartialFloats floats; the TS candidates declare
// 4 * min(kWsFloats, rows * arrays * D) bytes, never less than that), so the kernels are safe on
// several streams at once.
#pragma once
#include "common/abi_reader.h"
#include "common/launch.h"
#include "common/rows.cuh"

#include <string>

namespace dw::nn {

// The most floats of column partials one call keeps (16 MiB): it bounds the grid (bwdGrid) and so
// the workspace a call needs.
constexpr int64_t kWsFloats = int64_t(4) << 20;

// Grid for a backward row kernel whose row groups each keep column partials of `arrays` x D floats:
// enough groups to fill the GPU, at most one per 16 rows beyond 2 per SM (the partials are extra
// traffic), and within kWsFloats. The kernel has grid * groups row groups.
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

// The slices a backward kernel of `rowGroups` row groups (grid * groups) writes and launchColReduce
// adds: one per row group that has a row (slice i belongs to row group i, which starts at row i).
// A row group past the last row (only when there are fewer rows than one block's groups, the grid
// being at least 1) would hold a zero slice: the kernels skip writing it and the reduction skips
// adding it (its lanes keep the +0 they start from, the sum it would have added), so the bits of
// dweight / dbias are those of the full grid and a call never needs more than `rows` slices.
inline unsigned normPartialSlices(unsigned rowGroups, uint64_t rows) {
  return rows < rowGroups ? static_cast<unsigned>(rows) : rowGroups;
}

// The floats of partials a call needs: `slices` slices of `arrays` x D floats (at most kWsFloats,
// and at most rows * arrays * D, by bwdGrid and normPartialSlices).
inline uint64_t normPartialFloats(unsigned slices, uint64_t D, int arrays) {
  return static_cast<uint64_t>(slices) * static_cast<uint64_t>(arrays) * D;
}

// The call's workspace as the partials of `floats` floats: INVALID_ARGUMENT when the caller gave
// fewer bytes or a workspace not aligned to a float (WorkspaceArg::take).
inline float* takeNormPartials(Napi::Env env, const abi::WorkspaceArg& ws, uint64_t floats) {
  return ws.take<float>(env, floats * sizeof(float));
}

// out0[d] = sum over b in [0, nb) of ws[b * stride + d] (and out1[d] from ws[b * stride + D + d]
// when out1 is not null); see colReduceK. nb = 0 writes zeros (ws may then be null). T: float,
// __nv_bfloat16 or __half.
template <typename T>
void launchColReduce(cudaStream_t s, const float* ws, unsigned nb, uint64_t D, uint64_t stride, T* out0, T* out1);

}  // namespace dw::nn

// The group offsets check every grouped GEMM kernel makes before it computes (gemm/grouped_gemm.cu's
// general kernels and the Hopper kernel of gemm/grouped_gemm_sm90.cuh): offsets i32 [E + 1] start at
// 0, never decrease and end at R. The offsets may be in global or shared memory.
#pragma once
#include "common/errors.h"

#include <cub/block/block_scan.cuh>

namespace dw {

// Whether the offsets are valid; every thread of the block must call it, and every thread gets the
// answer. Block (0, 0, 0) records the first bad entry in the error word under `op`. R < 0: the rows
// are not known (the FP8 weight gradient's codes are padded per expert), so only 0 first and never
// decreasing are checked.
__device__ __forceinline__ bool offsetsValid(const int* offsets, int E, int R, ErrWord* err, int op) {
  __shared__ unsigned bad;
  if (threadIdx.x == 0) bad = ~0u;
  __syncthreads();
  for (int e = threadIdx.x; e <= E; e += blockDim.x) {
    const int o = offsets[e];
    const bool wrong = e == 0 ? o != 0 : (o < offsets[e - 1] || (R >= 0 && (o > R || (e == E && o != R))));
    if (wrong) atomicMin(&bad, static_cast<unsigned>(e));
  }
  __syncthreads();
  const unsigned first = bad;
  if (first != ~0u && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0) raiseErr(err, op, first, offsets[first], R);
  return first == ~0u;
}

// Tile b of a grouped kernel whose tiles are Tile rows of one expert, expert by expert: each thread
// takes a run of experts and counts their tiles, and the block's exclusive scan places the runs.
// {expert, its end row, the tile's first row}; expert -1 past the real number of tiles. Every thread
// of the block (Threads of them) calls it and gets the answer. The general grouped GEMMs
// (gemm/grouped_gemm.cu, 64-row tiles) and the k-grouped FP8 quantizer (128-row blocks) use it.
struct RowTile {
  int e, rowEnd, row0;
};
template <int Tile, int Threads>
__device__ __forceinline__ RowTile rowTileOf(const int* offsets, int E, int b) {
  using Scan = cub::BlockScan<int, Threads>;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ int found[3];
  const int per = (E + Threads - 1) / Threads;
  const int e0 = min(E, static_cast<int>(threadIdx.x) * per), e1 = min(E, e0 + per);
  int mine = 0;
  for (int e = e0; e < e1; ++e) mine += (offsets[e + 1] - offsets[e] + Tile - 1) / Tile;
  int before;
  if (threadIdx.x == 0) found[0] = -1;
  __syncthreads();
  Scan(tmp).ExclusiveSum(mine, before);
  if (b >= before && b < before + mine) {
    int t = b - before;
    for (int e = e0; e < e1; ++e) {
      const int tiles = (offsets[e + 1] - offsets[e] + Tile - 1) / Tile;
      if (t < tiles) {
        found[0] = e;
        found[1] = offsets[e + 1];
        found[2] = offsets[e] + t * Tile;
        break;
      }
      t -= tiles;
    }
  }
  __syncthreads();
  return {found[0], found[1], found[2]};
}

}  // namespace dw

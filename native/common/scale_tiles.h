// cuBLASLt's 128 x 4 tiled layout of block-scale codes (VEC32_UE8M0 for MXFP8, VEC16_UE4M3 for
// NVFP4): the layout the quantizer writes with its GEMM-layout flag (quant/) and the block-scaled
// GEMMs read (gemm/gemm_scaled.cpp through cuBLASLt, gemm/gemm_mx8_sm90.cu itself). Shared here so
// the families that write and read it use one formula.
//
// Scale (r, c) of a [rows, nCols] scale matrix (r: the operand's row, c: its K-block) lives in tile
// (r / 128, c / 4) of ceil(rows / 128) x ceil(nCols / 4) tiles of 512 bytes, tile-rows outermost;
// within a tile at (r mod 32) · 16 + floor((r mod 128) / 32) · 4 + (c mod 4). So the four K-blocks
// c = 4q .. 4q + 3 of a row are four consecutive bytes, and the scales of 128 rows × 128 elements
// of K (MXFP8) are one whole tile. Padding rows and columns are written as 0 and never read.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dw {

__host__ __device__ __forceinline__ uint64_t tiledIndex128x4(uint64_t r, uint64_t c, uint64_t nCols) {
  const uint64_t tilesC = (nCols + 3) / 4, rr = r % 128;
  return ((r / 128) * tilesC + c / 4) * 512 + (rr % 32) * 16 + (rr / 32) * 4 + (c % 4);
}

}  // namespace dw

// Row gather and scatter-add, shared by the nn family (embedding, embedding_backward) and the moe
// family (gather_rows, scatter_add_rows), so neither calls into the other. Kernels and launchers are
// in rows_gather.cu.
//
//   launchGatherRows:  out[m] = src[idx[m]] for m < M (src: [R, D], out: [M, D]); with allowNeg,
//                      idx -1 gives a zero row.
//   launchScatterRows: out[r] = sum of src[m] over m with idx[m] = r, in ascending m (src: [M, D],
//                      out: [R, D]); rows nobody names are zero; with allowNeg, idx -1 is skipped.
//
// A bad index skips its row (nothing is written out of bounds) and is recorded in `err`, the device
// address of the caller family's error word (common/errors.h), with the caller's op code `op`.
// `what` names the op in launch errors. Both check the launch.
#pragma once
#include "common/errors.h"

#include <cstdint>

namespace dw {

void launchGatherRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out,
                      uint64_t M, uint64_t R, uint64_t D, bool allowNeg, ErrWord* err, int op, const char* what);
void launchScatterRows(Napi::Env env, cudaStream_t s, int dtype, const void* src, const int* idx, void* out,
                       uint64_t M, uint64_t R, uint64_t D, bool allowNeg, ErrWord* err, int op, const char* what);

// Records the first index of idx[0, M) outside [0, R) (other than -1 when allowNeg) in `err`; for
// calls whose output is empty, so that no other kernel looks at the indices. Does not check the
// launch.
void launchValidateIndices(cudaStream_t s, const int* idx, uint64_t M, uint64_t R, bool allowNeg, ErrWord* err, int op);

}  // namespace dw

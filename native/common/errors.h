// The device error words: how a kernel reports bad data (an id, target or index out of range, an
// AdamW step < 1), which it cannot throw. One facility for every op family.
//
// The kernel skips the row (adamw: the whole update; nothing is ever written out of bounds) and
// records the first such value in its family's word, with an op code that names the op. No entry
// point synchronises, so all stay capturable in a CUDA graph. opsErrorCheck(stream) (errors.cu)
// synchronises the stream, reads and clears every family's word and fails with INVALID_ARGUMENT
// naming the op and the value (the nn family's error first, then moe's); while the stream is being
// captured it does nothing (the words keep the error for the next check). The TypeScript run() of
// the index-taking ops calls it unless the call says checkIndices: false.
//
// The words live in errors.cu, one per family and device. Relocatable device code is not enabled,
// so kernels in other files cannot name them: an entry point gets its family's word's device address
// from opsErrorWord() and passes it to its kernels, which record through raiseErr().
#pragma once
#include "runtime/common.h"

namespace dw {

// op 0: clear; else the code of the first op that met bad data.
struct ErrWord {
  int op;
  int pad;
  long long pos;    // flat position or row
  long long bound;  // the valid range is [0, bound)
  long long aux;    // op-specific: the ignore index of cross_entropy, moe_plan's and moe_sort's choice rank j
  double value;     // the bad value
};

// The families with a word, in the order opsErrorCheck reports them.
enum ErrFamily : int { kErrNn = 0, kErrMoe = 1, kErrFamilies = 2 };

// The op codes, per family.
enum ErrOp : int {
  // nn
  kOpEmbedding = 1,
  kOpEmbeddingBackward = 2,
  kOpCrossEntropy = 3,
  kOpCrossEntropyBackward = 4,
  kOpAdamw = 5,
  kOpCrossEntropyWithGrad = 6,
  // moe
  kOpTopkBackward = 11,
  kOpGatherRows = 12,
  kOpScatterAddRows = 13,
  kOpMoePlan = 14,
  kOpOneHot = 15,
  kOpMoeSort = 16,
  kOpGroupedMatmul = 17,      // bad offsets: pos = the first bad entry, value = it, bound = R
  kOpGroupedMatmulWgrad = 18,
  kOpMoePermute = 19,         // pos = the row p, value = order[p], bound = N, aux = 0 out of range / 1 no slot of the token names p
  kOpMoeUnpermute = 20,       // pos = the token n, value = slot[n, j], bound = N·k, aux = 8·j + what failed (permute.cu)
  kOpMoeWeightGrad = 21,      // as kOpMoeUnpermute
  kOpMoeRouteBackward = 22,   // pos = the token n, aux = the choice j, value = chosen[n, j], bound = E
  kOpMoeAuxLoss = 23,         // as kOpMoeRouteBackward
  kOpGroupedScaledMatmul = 24,  // as kOpGroupedMatmul
  kOpGroupedScaledMatmulWgrad = 25,  // aux 0: a bad entry (pos, value); aux 1: the padded total (value) past P (bound)
  kOpQuantizeKgrouped = 26,          // as kOpGroupedMatmul
};

// The device address of `family`'s word on the current device.
ErrWord* opsErrorWord(Napi::Env env, ErrFamily family);

#ifdef __CUDACC__
// Records the first bad value in the word (later ones are dropped until the word is cleared).
__device__ __forceinline__ void raiseErr(ErrWord* w, int op, long long pos, double value, long long bound, long long aux = 0) {
  if (atomicCAS(&w->op, 0, op) == 0) {
    w->pos = pos;
    w->bound = bound;
    w->aux = aux;
    w->value = value;
  }
}
#endif

}  // namespace dw

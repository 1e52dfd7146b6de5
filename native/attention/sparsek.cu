// sparsekForward / sparsekBackward: SparseK top-k block-sparse attention (@deepwell/attention-sparsek
// src/cuda/sparsek.ts; the op and its reference: src/ops/sparsek.ts). Same sizes, tensors and element
// strides as flashForward / flashBackward (Sq must equal Sk), plus the selection's attributes
// (blockSize, topK, first, window) and the indices tensor, i32 [B, Hkv, nB, topK].
//
//   sparsekForward   the block means and the top-k selection (sparsek_select.cuh), then the sparse
//                    forward over the selected blocks. Writes out, lse and indices.
//                    Workspace: qbar, kbar (f32 [B, Hkv, nB, D] each, the second 256-byte aligned).
//   sparsekBackward  the deterministic sparse backward over the indices it is given.
//                    Workspace: delta (f32 [B, H, S]), then, 256-byte aligned, on sm_90 with 128-key
//                    blocks, the Hopper backward's scratch (flashBackwardSm90Scratch).
//   sparsekWorkspace the bytes of either workspace for a call's sizes on a device of a given compute
//                    capability: the one place they are defined.
// Kernels: block size 128 on sm_90 runs the Hopper flash kernels with the selection
// (flash_fwd_sm90.cuh, flash_bwd_sm90.cuh with Sparse: TMA, wgmma, warp-specialized; the backward's
// dQ added in a fixed order); everything else, or DEEPWELL_SPARSEK_KERNEL=sm80 in the environment (a
// switch for comparing the two), the portable mma.sync kernels of sparsek_sm80.cuh (every GPU from
// sm_80; on sm_100 compiled, never run here).
// The kernels take bf16 or f16, head dimensions 64 and 128, block sizes 64 and 128, 16-byte aligned
// rows; anything else (and every size the kernels could not index) is a typed error.
#include "attention/checks.h"
#include "attention/flash_bwd_sm90.cuh"
#include "attention/flash_fwd_sm90.cuh"
#include "attention/sparsek_select.cuh"
#include "attention/sparsek_sm80.cuh"
#include "common/abi/attention.gen.h"
#include "common/dtype.h"
#include "common/smem_limit.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace dw {
namespace attention {
namespace {

constexpr uint64_t kMaxBlocks = 16384;  // nB: the backward's per-CTA list of query blocks (64 KiB of shared memory)

uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }
uint64_t numBlocks(uint64_t S, uint64_t bs) { return (S + bs - 1) / bs; }
uint64_t meansBytes(uint64_t B, uint64_t Hkv, uint64_t nB, uint64_t D) { return B * Hkv * nB * D * 4; }

// The selection's attributes and the kernels' reach, checked; returns nB.
template <typename A>
uint64_t checkSparse(Napi::Env env, const A& a, const char* fn) {
  const std::string f(fn);
  if (a.dtype != kBF16 && a.dtype != kF16) fail(env, "INVALID_DTYPE", "Expected bf16 or f16 (dtype code 1 or 2) for " + f + " but received dtype code " + std::to_string(a.dtype));
  if (a.D != 64 && a.D != 128) fail(env, "INVALID_ARGUMENT", "Expected a head dimension of 64 or 128 for " + f + " but received " + std::to_string(a.D));
  if (a.Sq != a.Sk) fail(env, "SHAPE_MISMATCH", "Expected as many keys as queries (self-attention) for " + f + " but received Sq " + std::to_string(a.Sq) + " and Sk " + std::to_string(a.Sk));
  if (a.blockSize != 64 && a.blockSize != 128) fail(env, "INVALID_ARGUMENT", "Expected a block size of 64 or 128 (the kernels' block sizes) for " + f + " but received " + std::to_string(a.blockSize));
  const uint64_t nB = numBlocks(a.Sq, a.blockSize);
  if (nB > kMaxBlocks) fail(env, "INVALID_ARGUMENT", "Expected at most " + std::to_string(kMaxBlocks) + " blocks (S / blockSize) for " + f + " but received " + std::to_string(nB));
  if (a.topK < 1 || a.topK > nB)
    fail(env, "INVALID_ARGUMENT", "Expected topK in [1, " + std::to_string(nB) + "] (the number of blocks) for " + f + " but received " + std::to_string(a.topK));
  if (a.window < 1 || a.window + (a.first ? 1 : 0) > a.topK)
    fail(env, "INVALID_ARGUMENT", "Expected window >= 1 and window + first <= topK (" + std::to_string(a.topK) + ") for " + f + " but received window " + std::to_string(a.window));
  const uint64_t strides[9] = {a.qsb, a.qsh, a.qss, a.ksb, a.ksh, a.kss, a.osb, a.osh, a.oss};
  for (uint64_t s : strides)
    if (s % 8 != 0) fail(env, "INVALID_ARGUMENT", "Expected element strides that are multiples of 8 (16-byte rows) for " + f + " but received " + std::to_string(s));
  return nB;
}

void checkAligned16(Napi::Env env, std::initializer_list<Span> tensors, const char* fn) {
  for (const Span& t : tensors)
    if (reinterpret_cast<uintptr_t>(t.p) % 16 != 0) fail(env, "INVALID_ARGUMENT", std::string("Expected ") + t.name + " of " + fn + " at a 16-byte aligned address");
}

// Read once: DEEPWELL_SPARSEK_KERNEL=sm80 keeps the portable kernels on sm_90 too.
bool portableForced() {
  static const bool forced = [] {
    const char* v = std::getenv("DEEPWELL_SPARSEK_KERNEL");
    return v != nullptr && std::strcmp(v, "sm80") == 0;
  }();
  return forced;
}
// A Hopper kernel's refusal (not this device, or sizes it does not take): the portable one runs,
// after the refusal is cleared from the runtime's last error (a refused attribute call records it,
// and the portable launcher's cudaGetLastError would report it as its own).
bool declined(cudaError_t e) {
  const bool no = e == cudaErrorNotSupported || e == cudaErrorInvalidValue;
  if (no) (void)cudaGetLastError();
  return no;
}

template <typename T, int D>
cudaError_t sparseForward(const FlashFwdParams& p, const SparseIdx& s, cudaStream_t st) {
  if (s.bs == 128 && !portableForced()) {
    const cudaError_t e = flashForwardSparseSm90<T, D>(p, s, st);
    if (!declined(e)) return e;
  }
  return sparseForwardSm80<T, D>(p, s, st);
}

// scratch: the workspace past delta (null when there is none for the Hopper backward).
template <typename T, int D>
cudaError_t sparseBackward(const FlashBwdParams& p, const SparseIdx& s, void* scratch, uint64_t bytes, cudaStream_t st) {
  if (s.bs == 128 && scratch != nullptr && !portableForced() && bytes >= flashBackwardSparseSm90Scratch(p.B, p.H, p.Sq, D)) {
    const cudaError_t e = flashBackwardSparseSm90<T, D>(p, s, scratch, st);
    if (!declined(e)) return e;
  }
  return sparseBackwardSm80<T, D>(p, s, st);
}

Stride3 s3(uint64_t b, uint64_t h, uint64_t s) { return {static_cast<int64_t>(b), static_cast<int64_t>(h), static_cast<int64_t>(s)}; }

template <int QT, int D>
cudaError_t runSelect(const sparsek::SelectArgs& a, int dev, cudaStream_t st) {
  using namespace sparsek;
  constexpr int kLimit = 200 * 1024;  // below the H200's 227 KiB; the QT chosen by select() fits it
  const cudaError_t e = setSmemLimitOnce<selectKernel<QT, D>, kLimit>(dev);
  if (e != cudaSuccess) return e;
  selectKernel<QT, D><<<dim3((a.nB + QT - 1) / QT, a.Hkv, a.B), kSelectThreads, sparsek::selectSmem(QT, D, a.nB), st>>>(a);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t select(const sparsek::SelectArgs& a, cudaStream_t st) {
  sparsek::meansKernel<T><<<dim3(a.nB, a.Hkv, a.B), 128, 0, st>>>(a);
  cudaError_t e = cudaGetLastError();
  int dev = 0;
  if (e != cudaSuccess || (e = cudaGetDevice(&dev)) != cudaSuccess) return e;
  constexpr size_t kLimit = 200 * 1024;
  if (sparsek::selectSmem(8, D, a.nB) <= kLimit) return runSelect<8, D>(a, dev, st);
  if (sparsek::selectSmem(4, D, a.nB) <= kLimit) return runSelect<4, D>(a, dev, st);
  if (sparsek::selectSmem(2, D, a.nB) <= kLimit) return runSelect<2, D>(a, dev, st);
  return runSelect<1, D>(a, dev, st);  // nB <= 16384: 82 KB
}

}  // namespace

Napi::Value SparsekForward(const Napi::CallbackInfo& info) {
  const abi::SparsekForwardArgs a = abi::readSparsekForward(info);
  Napi::Env env = info.Env();
  const char* fn = "sparsekForward";
  const uint64_t nB = checkSparse(env, a, fn);  // first: the kernels' reach, then the layout
  const Dims n = dimsOf(env, a, fn, false);
  const uint64_t qbarBytes = meansBytes(a.B, a.Hkv, nB, a.D);
  float* qbar = a.workspace.take<float>(env, align256(qbarBytes) + qbarBytes, 256);
  float* kbar = reinterpret_cast<float*>(reinterpret_cast<char*>(qbar) + align256(qbarBytes));
  const uint64_t idxCount = mulSize(env, mulSize(env, a.B * a.Hkv, nB, fn), a.topK, fn);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const FwdTensors<T> t = forwardTensors<T>(env, a, n, fn);
    int* idx = a.indices.template ptr<int>(env, idxCount);
    const Span si{idx, idxCount * 4, "indices"};
    checkNoOverlap(env, si, {{t.q, n.qx * sizeof(T), "q"}, {t.k, n.kx * sizeof(T), "k"}, {t.v, n.kx * sizeof(T), "v"}, {t.out, n.ox * sizeof(T), "out"}, {t.lse, n.qRows * 4, "lse"}}, fn);
    checkAligned16(env, {{t.q, 0, "q"}, {t.k, 0, "k"}, {t.v, 0, "v"}, {t.out, 0, "out"}}, fn);
    if (n.qRows == 0) return;
    const int B = int(a.B), H = int(a.H), Hkv = int(a.Hkv), S = int(a.Sq), D = int(a.D);
    const sparsek::SelectArgs sa{t.q, t.k, int64_t(a.qsb), int64_t(a.qsh), int64_t(a.qss), int64_t(a.ksb), int64_t(a.ksh), int64_t(a.kss), qbar, kbar, idx,
                                 B, H, Hkv, S, D, int(a.blockSize), int(nB), int(a.topK), int(a.window), a.first ? 1 : 0, a.causal ? 1 : 0};
    DW_CUDA(env, (D == 128 ? select<T, 128>(sa, a.stream) : select<T, 64>(sa, a.stream)), "sparsekForward selection");
    const FlashFwdParams p{t.q, t.k, t.v, t.out, t.lse, s3(a.qsb, a.qsh, a.qss), s3(a.ksb, a.ksh, a.kss), s3(a.ksb, a.ksh, a.kss), s3(a.osb, a.osh, a.oss), B, H, Hkv, S, S, D,
                           a.causal, n.scale};
    const SparseIdx s{idx, int(a.blockSize), int(a.topK), int(nB)};
    DW_CUDA(env, (D == 128 ? sparseForward<T, 128>(p, s, a.stream) : sparseForward<T, 64>(p, s, a.stream)), "sparsekForward launch");
  };
  if (a.dtype == kBF16) run(__nv_bfloat16{});
  else run(__half{});
  return env.Undefined();
}

Napi::Value SparsekBackward(const Napi::CallbackInfo& info) {
  const abi::SparsekBackwardArgs a = abi::readSparsekBackward(info);
  Napi::Env env = info.Env();
  const char* fn = "sparsekBackward";
  const uint64_t nB = checkSparse(env, a, fn);  // first: the kernels' reach, then the layout
  const Dims n = dimsOf(env, a, fn, true);
  float* delta = a.workspace.take<float>(env, n.qRows * 4, 256);
  const uint64_t skip = align256(n.qRows * 4);
  void* scratch = a.workspace.bytes > skip ? static_cast<char*>(a.workspace.data) + skip : nullptr;
  const uint64_t scratchBytes = a.workspace.bytes > skip ? a.workspace.bytes - skip : 0;
  const uint64_t idxCount = mulSize(env, mulSize(env, a.B * a.Hkv, nB, fn), a.topK, fn);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const BwdTensors<T> t = backwardTensors<T>(env, a, n, fn);
    const int* idx = a.indices.template ptr<int>(env, idxCount);
    const Span si{idx, idxCount * 4, "indices"};
    checkNoOverlap(env, {t.dq, n.qx * sizeof(T), "dq"}, {si}, fn);
    checkNoOverlap(env, {t.dk, n.kx * sizeof(T), "dk"}, {si}, fn);
    checkNoOverlap(env, {t.dv, n.kx * sizeof(T), "dv"}, {si}, fn);
    checkAligned16(env, {{t.dout, 0, "dout"}, {t.q, 0, "q"}, {t.k, 0, "k"}, {t.v, 0, "v"}, {t.out, 0, "out"}, {t.dq, 0, "dq"}, {t.dk, 0, "dk"}, {t.dv, 0, "dv"}}, fn);
    if (n.qRows == 0) return;
    const Stride3 qs = s3(a.qsb, a.qsh, a.qss), ks = s3(a.ksb, a.ksh, a.kss), os = s3(a.osb, a.osh, a.oss);
    const int S = int(a.Sq);
    const FlashBwdParams p{t.dout, t.q, t.k, t.v, t.out, t.lse, t.dq, t.dk, t.dv, delta, os, qs, ks, ks, os, qs, ks, ks,
                           int(a.B), int(a.H), int(a.Hkv), S, S, int(a.D), a.causal, n.scale};
    const SparseIdx s{idx, int(a.blockSize), int(a.topK), int(nB)};
    DW_CUDA(env, (a.D == 128 ? sparseBackward<T, 128>(p, s, scratch, scratchBytes, a.stream) : sparseBackward<T, 64>(p, s, scratch, scratchBytes, a.stream)), "sparsekBackward launch");
  };
  if (a.dtype == kBF16) run(__nv_bfloat16{});
  else run(__half{});
  return env.Undefined();
}

Napi::Value SparsekWorkspace(const Napi::CallbackInfo& info) {
  const abi::SparsekWorkspaceArgs a = abi::readSparsekWorkspace(info);
  Napi::Env env = info.Env();
  const char* fn = "sparsekWorkspace";
  checkSizes(env, a.B, a.H, a.Hkv, a.Sq, a.Sk, a.D, fn);
  if (a.blockSize < 1) fail(env, "INVALID_ARGUMENT", std::string("Expected a block size of at least 1 for ") + fn);
  uint64_t bytes;
  if (a.backward) {
    bytes = mulSize(env, mulSize(env, a.B * a.H, a.Sq, fn), 4, fn);
    // The Hopper backward's scratch (its largest piece, the f32 dQ accumulator [B, H, SqPad, D],
    // SqPad < Sq + 128, is within 2^53 - 1 elements by the check first).
    if (a.ccMajor == 9 && a.ccMinor == 0 && a.blockSize == 128 && (a.D == 64 || a.D == 128) && a.Sq > 0) {
      mulSize(env, mulSize(env, a.B * a.H, a.Sq + 128, fn), a.D, fn);
      bytes = align256(bytes) + flashBackwardSparseSm90Scratch(int(a.B), int(a.H), int(a.Sq), int(a.D));
    }
  } else {
    const uint64_t q = mulSize(env, mulSize(env, mulSize(env, a.B * a.Hkv, numBlocks(a.Sq, a.blockSize), fn), a.D, fn), 4, fn);
    bytes = align256(q) + q;
  }
  return Napi::Number::New(env, static_cast<double>(bytes));
}

}  // namespace attention
}  // namespace dw

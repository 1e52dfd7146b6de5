// The device error words of the op families and opsErrorCheck, which reads them (see errors.h).
//
//   opsErrorCheck(stream)
#include "common/errors.h"

#include "common/abi/common.gen.h"
#include "common/launch.h"

#include <string>

namespace dw {
namespace {

__device__ ErrWord g_opsError[kErrFamilies];

const char* const kFamilyNames[kErrFamilies] = {"nn", "moe"};

// The message of a recorded error.
std::string errorMessage(ErrFamily family, const ErrWord& h) {
  const std::string pos = std::to_string(h.pos), bound = std::to_string(h.bound), value = formatNumber(h.value);
  switch (h.op) {
    case kOpEmbedding:
    case kOpEmbeddingBackward:
      return std::string(h.op == kOpEmbedding ? "embedding" : "embedding_backward") + ": Expected an id in [0, " + bound + ") for ids (flat position " + pos +
             ") but received " + value;
    case kOpCrossEntropy:
    case kOpCrossEntropyBackward:
    case kOpCrossEntropyWithGrad:
      return std::string(h.op == kOpCrossEntropy ? "cross_entropy" : h.op == kOpCrossEntropyBackward ? "cross_entropy_backward" : "cross_entropy_with_grad") + ": Expected a target in [0, " + bound +
             ") or the ignore index " + std::to_string(h.aux) + " for row " + pos + " but received " + value;
    case kOpAdamw:
      return "adamw: Expected a step count >= 1 for input 'step' but received " + value;
    case kOpTopkBackward:
      return "topk_backward: Expected an index in [0, " + bound + ") for indices (flat position " + pos + ") but received " + value;
    case kOpGatherRows:
      return "gather_rows: Expected -1 or an index in [0, " + bound + ") for idx[" + pos + "] but received " + value;
    case kOpScatterAddRows:
      return "scatter_add_rows: Expected -1 or an index in [0, " + bound + ") for idx[" + pos + "] but received " + value;
    case kOpMoePlan:
      return "moe_plan: Expected an expert id in [0, " + bound + ") for experts[" + pos + ", " + std::to_string(h.aux) + "] but received " + value;
    case kOpMoeSort:
      return "moe_sort: Expected an expert id in [0, " + bound + ") for experts[" + pos + ", " + std::to_string(h.aux) + "] but received " + value;
    case kOpGroupedMatmul:
    case kOpGroupedMatmulWgrad:
    case kOpGroupedScaledMatmul:
    case kOpQuantizeKgrouped:
      return std::string(h.op == kOpGroupedMatmul          ? "grouped_matmul"
                         : h.op == kOpGroupedMatmulWgrad   ? "grouped_matmul_wgrad"
                         : h.op == kOpGroupedScaledMatmul  ? "grouped_scaled_matmul"
                                                           : "quantize_kgrouped") +
             ": Expected offsets that start at 0, never decrease and end at R = " + bound + " but received " + value + " for offsets[" + pos + "]";
    case kOpGroupedScaledMatmulWgrad:
      // aux 0: a bad entry (the rows are not known: 0 first, never decreasing); aux 1: the padded
      // total (value) does not fit in the codes' P positions (bound).
      return h.aux == 0 ? "grouped_scaled_matmul_wgrad: Expected offsets that start at 0 and never decrease but received " + value + " for offsets[" + pos + "]"
                        : "grouped_scaled_matmul_wgrad: Expected codes holding the experts' " + value + " padded positions (128 · Σ ceil(rows / 128) from offsets) but received P = " + bound +
                              " positions in inputs 'a' and 'b' (too few)";
    case kOpMoePermute:
      return h.aux == 0 ? "moe_permute: Expected a token in [0, " + bound + ") for order[" + pos + "] but received " + value
                        : "moe_permute: Expected order and slot from one moe_sort (slot[order[p], j] = p for one j) but no slot of token " + value + " names row " + pos + " (order[" + pos + "] = " + value + ")";
    case kOpMoeUnpermute:
    case kOpMoeWeightGrad: {
      const std::string op = h.op == kOpMoeUnpermute ? "moe_unpermute" : "moe_weight_grad";
      const std::string at = "slot[" + pos + ", " + std::to_string(h.aux / 8) + "]";
      const int why = static_cast<int>(h.aux % 8);
      if (why == 2) return op + ": Expected a row in [0, " + bound + ") for " + at + " but received " + value;
      if (why == 3) return op + ": Expected slot to name each row once (order and slot from one moe_sort) but " + at + " repeats row " + value;
      return op + ": Expected order[" + value + "] = " + pos + " (the token whose " + at + " names row " + value + "; order and slot from one moe_sort) but it differs";
    }
    case kOpMoeRouteBackward:
    case kOpMoeAuxLoss:
      return std::string(h.op == kOpMoeRouteBackward ? "moe_route_backward" : "moe_aux_loss") + ": Expected an expert id in [0, " + bound + ") for chosen[" + pos + ", " +
             std::to_string(h.aux) + "] but received " + value;
    case kOpOneHot:
      return "one_hot: Expected -1 or an index in [0, " + bound + ") for idx (flat position " + pos + ") but received " + value;
    default:
      return std::string(family == kErrNn ? "an nn" : "a moe") + " kernel recorded bad data (op code " + std::to_string(h.op) + ", position " + pos +
             ", value " + value + ")";
  }
}

// Reads and clears `family`'s word; "" when it was clear. Synchronises the stream.
std::string takeError(Napi::Env env, cudaStream_t s, ErrFamily family) {
  const size_t at = static_cast<size_t>(family) * sizeof(ErrWord);
  const std::string word = std::string(" (") + kFamilyNames[family] + " error word)";
  ErrWord h{};
  DW_CUDA(env, cudaMemcpyFromSymbolAsync(&h, g_opsError, sizeof h, at, cudaMemcpyDeviceToHost, s), "cudaMemcpyFromSymbolAsync" + word);
  DW_CUDA(env, cudaStreamSynchronize(s), "cudaStreamSynchronize (opsErrorCheck)");
  if (h.op == 0) return "";
  const ErrWord zero{};
  DW_CUDA(env, cudaMemcpyToSymbolAsync(g_opsError, &zero, sizeof zero, at, cudaMemcpyHostToDevice, s), "cudaMemcpyToSymbolAsync" + word);
  DW_CUDA(env, cudaStreamSynchronize(s), "cudaStreamSynchronize (opsErrorCheck)");
  return errorMessage(family, h);
}

Napi::Value OpsErrorCheck(const Napi::CallbackInfo& info) {
  const abi::OpsErrorCheckArgs a = abi::readOpsErrorCheck(info);
  Napi::Env env = info.Env();
  cudaStream_t s = a.stream;
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  DW_CUDA(env, cudaStreamIsCapturing(s, &st), "cudaStreamIsCapturing (opsErrorCheck)");
  if (st != cudaStreamCaptureStatusNone) return env.Undefined();  // checked after the capture
  // Every word is read and cleared; the first family's message wins.
  std::string msg;
  for (int f = 0; f < kErrFamilies; ++f) {
    const std::string m = takeError(env, s, static_cast<ErrFamily>(f));
    if (msg.empty()) msg = m;
  }
  if (!msg.empty()) fail(env, "INVALID_ARGUMENT", msg);
  return env.Undefined();
}

}  // namespace

ErrWord* opsErrorWord(Napi::Env env, ErrFamily family) {
  static void* cache[64] = {};
  return static_cast<ErrWord*>(deviceSymbol(env, g_opsError, cache, "error words")) + family;
}

void initOpsErrors(Napi::Env env, Napi::Object exports) { DW_ABI_COMMON_ENTRIES(DW_DEF_ENTRY) }

}  // namespace dw

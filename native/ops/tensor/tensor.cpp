// The 'tensor' op family: elementwise ops with bias_add and broadcasting add / mul
// (elementwise.cu), data movement (movement.cu), reductions (reduce.cu) and cast (cast.cu); each
// file's header lists its entry points. This file registers them.
//
// Every entry point takes the stream handle first and a dtype code second, then sizes (plain
// integers), then each tensor as (allocation base, byte offset): inputs in the op's order, the
// output last (the conventions of common/args.h). The TypeScript side is
// packages/ir/src/cuda/tensor.ts; the two must agree on every signature. Semantics are those of
// the CPU references in packages/ir/src/ops/*.ts.
//
// Shared rules:
//   - Float tensors are f32, bf16 or f16 storage (one dtype per call); arithmetic is FP32 and
//     results are rounded to nearest even once, on store. Pure data movement (reshape, transpose,
//     slice, concat, broadcast_to) moves bits and also accepts i32.
//   - Shapes of the broadcasting, transposing and reducing ops come as `rank` followed by rank
//     numbers per shape; rank <= 8. The host code drops size-1 dimensions and merges contiguous
//     ones before launching (tensor_common.cuh).
//   - Reductions are deterministic: each output is reduced by one warp or one block in a fixed
//     order that depends on the shapes only (no atomics), accumulating in FP32.
//   - n = 0 (or any empty output) launches nothing; every launch is followed by checkLaunch.
#include "ops/tensor/tensor.h"

namespace dw {

void initOps_tensor(Napi::Env env, Napi::Object exports) {
  def(env, exports, "fill", tensor::Fill);
  def(env, exports, "add", tensor::Add);
  def(env, exports, "mul", tensor::Mul);
  def(env, exports, "sumTo", tensor::SumTo);
  def(env, exports, "broadcastTo", tensor::BroadcastTo);
  def(env, exports, "reshape", tensor::Reshape);
  def(env, exports, "scale", tensor::Scale);
  def(env, exports, "biasAdd", tensor::BiasAdd);
  def(env, exports, "gelu", tensor::Gelu);
  def(env, exports, "geluBackward", tensor::GeluBackward);
  def(env, exports, "silu", tensor::Silu);
  def(env, exports, "siluBackward", tensor::SiluBackward);
  def(env, exports, "swiglu", tensor::Swiglu);
  def(env, exports, "transpose", tensor::Transpose);
  def(env, exports, "slice", tensor::Slice);
  def(env, exports, "sliceBackward", tensor::SliceBackward);
  def(env, exports, "concat", tensor::Concat);
  def(env, exports, "sum", tensor::Sum);
  def(env, exports, "mean", tensor::Mean);
  def(env, exports, "max", tensor::Max);
  def(env, exports, "maxBackward", tensor::MaxBackward);
  def(env, exports, "cast", tensor::Cast);
}

}  // namespace dw

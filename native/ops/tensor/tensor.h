// The 'tensor' op family's entry points (elementwise.cu, movement.cu, reduce.cu, cast.cu;
// tensor.cpp registers them and describes what they share).
#pragma once
#include "runtime/common.h"

namespace dw::tensor {

// elementwise.cu
Napi::Value Fill(const Napi::CallbackInfo& info);
Napi::Value Scale(const Napi::CallbackInfo& info);
Napi::Value BiasAdd(const Napi::CallbackInfo& info);
Napi::Value Gelu(const Napi::CallbackInfo& info);
Napi::Value GeluBackward(const Napi::CallbackInfo& info);
Napi::Value Silu(const Napi::CallbackInfo& info);
Napi::Value SiluBackward(const Napi::CallbackInfo& info);
Napi::Value Swiglu(const Napi::CallbackInfo& info);
Napi::Value Add(const Napi::CallbackInfo& info);
Napi::Value Mul(const Napi::CallbackInfo& info);
// movement.cu
Napi::Value Reshape(const Napi::CallbackInfo& info);
Napi::Value BroadcastTo(const Napi::CallbackInfo& info);
Napi::Value Transpose(const Napi::CallbackInfo& info);
Napi::Value Slice(const Napi::CallbackInfo& info);
Napi::Value SliceBackward(const Napi::CallbackInfo& info);
Napi::Value Concat(const Napi::CallbackInfo& info);
// reduce.cu
Napi::Value Sum(const Napi::CallbackInfo& info);
Napi::Value SumTo(const Napi::CallbackInfo& info);
Napi::Value Mean(const Napi::CallbackInfo& info);
Napi::Value Max(const Napi::CallbackInfo& info);
Napi::Value MaxBackward(const Napi::CallbackInfo& info);
// cast.cu
Napi::Value Cast(const Napi::CallbackInfo& info);

}  // namespace dw::tensor

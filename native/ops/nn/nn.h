// The 'nn' op family's entry points (one file each under native/ops/nn/; nn.cpp registers them
// and describes what they share).
#pragma once
#include "runtime/common.h"

namespace dw::nn {

Napi::Value Softmax(const Napi::CallbackInfo& info);
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info);
Napi::Value Layernorm(const Napi::CallbackInfo& info);
Napi::Value AddLayernorm(const Napi::CallbackInfo& info);
Napi::Value LayernormBackward(const Napi::CallbackInfo& info);
Napi::Value Rmsnorm(const Napi::CallbackInfo& info);
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info);
Napi::Value Embedding(const Napi::CallbackInfo& info);
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info);
Napi::Value CrossEntropy(const Napi::CallbackInfo& info);
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info);
Napi::Value CausalMask(const Napi::CallbackInfo& info);
Napi::Value Adamw(const Napi::CallbackInfo& info);
Napi::Value AdamwMulti(const Napi::CallbackInfo& info);
Napi::Value ClipCoef(const Napi::CallbackInfo& info);

}  // namespace dw::nn

// The 'moe' op family's entry points (one file per op or pair of ops under native/ops/moe/;
// moe.cpp registers them and describes what they share).
#pragma once
#include "runtime/common.h"

namespace dw::moe {

Napi::Value Topk(const Napi::CallbackInfo& info);
Napi::Value TopkBackward(const Napi::CallbackInfo& info);
Napi::Value GatherRows(const Napi::CallbackInfo& info);
Napi::Value ScatterAddRows(const Napi::CallbackInfo& info);
Napi::Value MoePlan(const Napi::CallbackInfo& info);
Napi::Value OneHot(const Napi::CallbackInfo& info);

}  // namespace dw::moe

// The 'moe' op family's entry points, as X(exported name, function in dw::moe) in registration
// order, each defined in the file named beside it; moe.cpp registers them and describes what they
// share.
#pragma once
#include "runtime/common.h"

#define DW_MOE_ENTRY_POINTS(X)                          \
  X("topk", Topk)                     /* topk.cu */     \
  X("topkBackward", TopkBackward)     /* topk.cu */     \
  X("gatherRows", GatherRows)         /* rows.cu */     \
  X("scatterAddRows", ScatterAddRows) /* rows.cu */     \
  X("moePlan", MoePlan)               /* moe_plan.cu */ \
  X("oneHot", OneHot)                 /* one_hot.cu */

namespace dw::moe {

DW_MOE_ENTRY_POINTS(DW_DECLARE_ENTRY)

}  // namespace dw::moe

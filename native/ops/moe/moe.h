// The 'moe' op family's entry points: DW_ABI_MOE_ENTRIES (common/abi/moe.gen.h, generated from the
// ABI table) lists them as X(exported name, function in dw::moe) in registration order; topk and
// topkBackward are defined in topk.cu, gatherRows and scatterAddRows in rows.cu, moePlan in
// moe_plan.cu, oneHot in one_hot.cu. moe.cpp registers them and describes what they share.
#pragma once
#include "common/abi/moe.gen.h"
#include "runtime/common.h"

namespace dw::moe {

DW_ABI_MOE_ENTRIES(DW_DECLARE_ENTRY)

}  // namespace dw::moe

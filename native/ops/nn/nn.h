// The 'nn' op family's entry points (functions in dw::nn): the list of exported names and functions
// is DW_ABI_NN_ENTRIES, generated from the ABI table (common/abi/nn.gen.h, which also holds each
// entry point's argument reader); each is defined in the file the table names. nn.cpp registers them
// and describes what they share.
#pragma once
#include "runtime/common.h"
#include "common/abi/nn.gen.h"

namespace dw::nn {

DW_ABI_NN_ENTRIES(DW_DECLARE_ENTRY)

}  // namespace dw::nn

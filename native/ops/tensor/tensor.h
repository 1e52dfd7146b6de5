// The 'tensor' op family's entry points: DW_ABI_TENSOR_ENTRIES (common/abi/tensor.gen.h, generated
// from the ABI table) lists them as X(exported name, function in dw::tensor) in registration order;
// fill, scale, gelu, silu, geluBackward, siluBackward, swiglu, biasAdd, add and mul are defined in
// elementwise.cu, reshape, broadcastTo, transpose, slice, sliceBackward and concat in movement.cu,
// sum, sumTo, mean, max and maxBackward in reduce.cu, cast in cast.cu. tensor.cpp registers them
// and describes what they share.
#pragma once
#include "common/abi/tensor.gen.h"
#include "runtime/common.h"

namespace dw::tensor {

DW_ABI_TENSOR_ENTRIES(DW_DECLARE_ENTRY)

}  // namespace dw::tensor

// The 'tensor' op family's entry points, as X(exported name, function in dw::tensor) in
// registration order, each defined in the file named beside it; tensor.cpp registers them and
// describes what they share.
#pragma once
#include "runtime/common.h"

#define DW_TENSOR_ENTRY_POINTS(X)                        \
  X("fill", Fill)                   /* elementwise.cu */ \
  X("add", Add)                     /* elementwise.cu */ \
  X("mul", Mul)                     /* elementwise.cu */ \
  X("sumTo", SumTo)                 /* reduce.cu */      \
  X("broadcastTo", BroadcastTo)     /* movement.cu */    \
  X("reshape", Reshape)             /* movement.cu */    \
  X("scale", Scale)                 /* elementwise.cu */ \
  X("biasAdd", BiasAdd)             /* elementwise.cu */ \
  X("gelu", Gelu)                   /* elementwise.cu */ \
  X("geluBackward", GeluBackward)   /* elementwise.cu */ \
  X("silu", Silu)                   /* elementwise.cu */ \
  X("siluBackward", SiluBackward)   /* elementwise.cu */ \
  X("swiglu", Swiglu)               /* elementwise.cu */ \
  X("transpose", Transpose)         /* movement.cu */    \
  X("slice", Slice)                 /* movement.cu */    \
  X("sliceBackward", SliceBackward) /* movement.cu */    \
  X("concat", Concat)               /* movement.cu */    \
  X("sum", Sum)                     /* reduce.cu */      \
  X("mean", Mean)                   /* reduce.cu */      \
  X("max", Max)                     /* reduce.cu */      \
  X("maxBackward", MaxBackward)     /* reduce.cu */      \
  X("cast", Cast)                   /* cast.cu */

namespace dw::tensor {

DW_TENSOR_ENTRY_POINTS(DW_DECLARE_ENTRY)

}  // namespace dw::tensor

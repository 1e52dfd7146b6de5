// The 'nn' op family's entry points, as X(exported name, function in dw::nn) in registration order,
// each defined in the file named beside it; nn.cpp registers them and describes what they share.
#pragma once
#include "runtime/common.h"

#define DW_NN_ENTRY_POINTS(X)                                            \
  X("softmax", Softmax)                           /* softmax.cu */       \
  X("softmaxBackward", SoftmaxBackward)           /* softmax.cu */       \
  X("layernorm", Layernorm)                       /* layernorm.cu */     \
  X("addLayernorm", AddLayernorm)                 /* layernorm.cu */     \
  X("layernormBackward", LayernormBackward)       /* layernorm.cu */     \
  X("rmsnorm", Rmsnorm)                           /* rmsnorm.cu */       \
  X("rmsnormBackward", RmsnormBackward)           /* rmsnorm.cu */       \
  X("embedding", Embedding)                       /* embedding.cu */     \
  X("embeddingBackward", EmbeddingBackward)       /* embedding.cu */     \
  X("crossEntropy", CrossEntropy)                 /* cross_entropy.cu */ \
  X("crossEntropyBackward", CrossEntropyBackward) /* cross_entropy.cu */ \
  X("causalMask", CausalMask)                     /* causal_mask.cu */   \
  X("adamw", Adamw)                               /* adamw.cu */         \
  X("adamwMulti", AdamwMulti)                     /* adamw.cu */         \
  X("clipCoef", ClipCoef)                         /* clip_coef.cu */

namespace dw::nn {

DW_NN_ENTRY_POINTS(DW_DECLARE_ENTRY)

}  // namespace dw::nn

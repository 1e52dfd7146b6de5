/** Gradient rules of the nn family (softmax, norms, embedding, cross-entropy, masks). */
import { DeepwellError } from '@deepwell/core';
import type { GradRule } from '../gradients.js';
import type { Sym } from '../builder.js';
import { softmaxBackward } from '../ops/nn/softmax.js';
import { layernormBackward } from '../ops/nn/layernorm.js';
import { rmsnormBackward } from '../ops/nn/rmsnorm.js';
import { embeddingBackward } from '../ops/nn/embedding.js';
import { crossEntropyBackward } from '../ops/nn/cross_entropy.js';
import { causalMask } from '../ops/nn/causal_mask.js';

/** The gradient of a norm's y; its statistics outputs (mean, rstd) are saved for the backward only. */
function gradOfY(op: string, grads: readonly (Sym | null)[]): Sym {
  if (grads.slice(1).some((g) => g !== null) || !grads[0]) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a loss that uses the statistics outputs of ${op} only through y, for the gradient of ${op} but received one that uses them directly`);
  }
  return grads[0];
}

export const nnGrads: Record<string, GradRule> = {
  softmax: ({ outputs: [y], grads: [g], attrs }) => [softmaxBackward(g!, y!, attrs.axis as number)],
  layernorm: ({ inputs: [x, w], outputs: [, mean, rstd], grads }) => layernormBackward(gradOfY('layernorm', grads), x!, w!, mean!, rstd!),
  rmsnorm: ({ inputs: [x, w], outputs: [, rstd], grads }) => rmsnormBackward(gradOfY('rmsnorm', grads), x!, w!, rstd!),
  embedding: ({ inputs: [table, ids], grads: [g] }) => [embeddingBackward(ids!, g!, table!.shape[0]!), null],
  cross_entropy: ({ inputs: [logits, targets], grads: [g], attrs }) => [crossEntropyBackward(logits!, targets!, g!, attrs.ignoreIndex as number), null],
  causal_mask: ({ grads: [g] }) => [causalMask(g!, 0)],
};

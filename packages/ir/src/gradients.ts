/**
 * The gradient table: for each differentiable op, how the gradients of its inputs follow from the
 * gradients of its outputs, written as IR with the ops' Sym helpers (as PyTorch's derivatives.yaml
 * and JAX's AD rules keep derivatives apart from kernels). Rules live in grad/, one file per op
 * family; this file merges them. An op with no entry is not differentiable.
 */
import type { GraphBuilder, Sym } from './builder.js';
import type { Attrs } from './types.js';
import { basicGrads } from './grad/basic.js';
import { moeGrads } from './grad/moe.js';
import { nnGrads } from './grad/nn.js';
import { tensorGrads } from './grad/tensor.js';

export interface GradContext {
  b: GraphBuilder;
  inputs: Sym[];
  outputs: Sym[];
  /** Gradient of each output; null where the loss does not depend on that output. */
  grads: (Sym | null)[];
  attrs: Attrs;
}

/** Gradients of the inputs, in order; null for an input that takes none (indices, targets). */
export type GradRule = (c: GradContext) => (Sym | null)[];

const TABLE: Record<string, GradRule> = { ...basicGrads, ...tensorGrads, ...nnGrads, ...moeGrads };

export function gradientRule(op: string): GradRule | undefined {
  return TABLE[op];
}

export function differentiableOps(): string[] {
  return Object.keys(TABLE).sort();
}

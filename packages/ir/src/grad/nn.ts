/** Gradient rules of the nn family (softmax, norms, embedding, cross-entropy, masks). */
import type { GradRule } from '../gradients.js';

export const nnGrads: Record<string, GradRule> = {};

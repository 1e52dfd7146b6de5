/** Gradient rules of the tensor family (elementwise, shape and reduction ops). */
import type { GradRule } from '../gradients.js';

export const tensorGrads: Record<string, GradRule> = {};

/** Gradient rules of the MoE family (top-k routing, row gather and scatter). */
import type { GradRule } from '../gradients.js';

export const moeGrads: Record<string, GradRule> = {};

/** Gradient rules of the MoE family (top-k routing, row gather and scatter). */
import type { GradRule } from '../gradients.js';
import { gatherRows } from '../ops/moe/gather_rows.js';
import { scatterAddRows } from '../ops/moe/scatter_add_rows.js';
import { topkBackward } from '../ops/moe/topk.js';

export const moeGrads: Record<string, GradRule> = {
  // Only the values carry a gradient: it goes back to the positions they were taken from.
  topk: ({ inputs: [x], outputs: [, indices], grads: [g] }) => [g ? topkBackward(g, indices!, x!.shape.at(-1)!) : null],
  gather_rows: ({ inputs: [x, idx], grads: [g] }) => [scatterAddRows(g!, idx!, x!.shape[0]!), null],
  scatter_add_rows: ({ inputs: [, idx], grads: [g] }) => [gatherRows(g!, idx!), null],
  // one_hot's output depends on integers only; this entry lets a loss that uses it (the
  // load-balancing loss on topk's indices) differentiate, with no gradient flowing into idx.
  one_hot: () => [null],
};

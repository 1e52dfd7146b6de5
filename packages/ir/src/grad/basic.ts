/**
 * Gradient rules of the basic ops: fill, add, sum_to, broadcast_to, reshape, matmul.
 */
import type { GradRule } from '../gradients.js';
import { matmul } from '../ops/basic/matmul.js';
import { reshape } from '../ops/basic/reshape.js';
import { sumTo } from '../ops/basic/sum_to.js';
import { broadcastTo } from '../ops/basic/broadcast_to.js';


export const basicGrads: Record<string, GradRule> = {
  fill: () => [],
  add: ({ inputs: [a, b], grads: [g] }) => [sumTo(g!, a!.shape), sumTo(g!, b!.shape)],
  sum_to: ({ inputs: [x], grads: [g] }) => [broadcastTo(g!, x!.shape)],
  broadcast_to: ({ inputs: [x], grads: [g] }) => [sumTo(g!, x!.shape)],
  reshape: ({ inputs: [x], grads: [g] }) => [reshape(g!, x!.shape)],
  matmul: ({ inputs: [a, b], grads: [g], attrs }) => {
    const ta = attrs.transA === true;
    const tb = attrs.transB === true;
    // A rank-2 weight shared by a batch of activations: fold the batch into rows first, so the
    // weight gradient is one matmul instead of one per batch followed by a sum.
    if (b!.rank === 2 && a!.rank > 2 && !ta) {
      const K = a!.shape.at(-1)!;
      const N = g!.shape.at(-1)!;
      const a2 = reshape(a!, [-1, K]);
      const g2 = reshape(g!, [-1, N]);
      const da = matmul(g!, b!, { transB: !tb });
      const db = tb ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
      return [da, db];
    }
    const da = ta ? matmul(b!, g!, { transA: tb, transB: true }) : matmul(g!, b!, { transB: !tb });
    const db = tb ? matmul(g!, a!, { transA: true, transB: ta }) : matmul(a!, g!, { transA: !ta });
    return [sumTo(da, a!.shape), sumTo(db, b!.shape)];
  },
};

/**
 * Mixture of experts with top-k routing and static shapes (capacity-based dispatch, as GShard and
 * Switch do): a router picks k experts per token; each expert takes at most C tokens
 * (C = ceil(capacityFactor · tokens · k / experts)), choices past that are dropped; tokens are
 * gathered into [E, C, D], every expert's GELU MLP runs as one batched matmul, and the outputs are
 * gathered back and summed with the router's probabilities as weights.
 *
 * The load-balancing loss (Switch Transformer): E · Σ_e f_e · P_e, with f_e the share of routing
 * choices that went to expert e and P_e the mean router probability of e. It is minimal when
 * routing is uniform; only P carries gradient.
 */
import { DeepwellError } from '@deepwell/core';
import { gatherRows, gelu, matmul, mean, moePlan, mul, oneHot, reshape, scale, softmax, sum, topk, type Sym } from '@deepwell/ir';
import { Linear } from './layers.js';
import { Module } from './module.js';

export interface MoEOptions {
  experts: number;
  topK: number;
  capacityFactor?: number;
  residualStd?: number;
}

export class MoE extends Module {
  readonly router: Linear;
  readonly experts: number;
  readonly topK: number;
  readonly capacityFactor: number;
  constructor(readonly dim: number, readonly hidden: number, options: MoEOptions) {
    super();
    if (!(options.topK >= 1 && options.topK <= options.experts)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected topK in [1, ${options.experts}] for MoE but received ${options.topK}`);
    }
    this.experts = options.experts;
    this.topK = options.topK;
    this.capacityFactor = options.capacityFactor ?? 1.25;
    this.router = this.addChild('router', new Linear(dim, options.experts, { bias: false }));
    this.addParam('w1', [options.experts, dim, hidden], { dist: 'normal', scale: 0.02 });
    this.addParam('w2', [options.experts, hidden, dim], { dist: 'normal', scale: options.residualStd ?? 0.02 });
  }

  capacity(tokens: number): number {
    return Math.max(1, Math.ceil((this.capacityFactor * tokens * this.topK) / this.experts));
  }

  /** x: f32[B, T, D] -> { y: f32[B, T, D], aux: f32[1] (load-balancing loss) } */
  forward(x: Sym): { y: Sym; aux: Sym } {
    return this.scope(() => {
      const [B, T, D] = [x.shape[0]!, x.shape[1]!, x.shape[2]!];
      const N = B * T;
      const [E, k] = [this.experts, this.topK];
      const C = this.capacity(N);
      const x2 = reshape(x, [N, D]);
      const probs = softmax(this.router.forward(x2)); // [N, E]
      const [weights, chosen] = topk(probs, k); // [N, k] each
      const [dispatch, combine] = moePlan(chosen, E, C); // [E*C], [N, k]
      const xe = reshape(gatherRows(x2, dispatch), [E, C, D]);
      const h = gelu(matmul(xe, this.weight('w1'))); // [E, C, H]
      const ye = reshape(matmul(h, this.weight('w2')), [E * C, D]);
      const yk = reshape(gatherRows(ye, reshape(combine, [N * k])), [N, k, D]);
      const y = sum(mul(yk, reshape(weights, [N, k, 1])), [1]); // [N, D]
      const f = mean(oneHot(chosen, E), [0, 1]); // [E]: share of routing choices per expert
      const P = mean(probs, [0]); // [E]: mean router probability
      const aux = scale(reshape(sum(mul(f, P), []), [1]), E); // 1 when routing is uniform
      return { y: reshape(y, [B, T, D]), aux };
    });
  }
}

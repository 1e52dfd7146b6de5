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
import { DeepwellError, checkInteger, checkKeys, checkNumber } from '@deepwell/core';
import { gatherRows, gelu, matmul, mean, moePlan, mul, oneHot, reshape, scale, softmax, sum, topk, type Sym } from '@deepwell/ir';
import { Linear, checkSize } from './layers.js';
import { MAX_EXPERTS, checkParameterCount, checkSym, optionalStd, optionsObject } from './limits.js';
import { Module } from './module.js';

export interface MoEOptions {
  /** Experts, in [1, 4096]. */
  experts: number;
  /** Experts per token, in [1, experts]. */
  topK: number;
  /** Capacity per expert relative to an even share, in (0, experts] (default 1.25); experts / topK already lets every expert take every token. */
  capacityFactor?: number;
  residualStd?: number;
}

const MOE_OPTION_KEYS = ['experts', 'topK', 'capacityFactor', 'residualStd'];

/** MoE's options checked (also GPTConfig.moe's, before a GPT builds anything). */
export function checkMoEOptions(options: unknown, what: string): { experts: number; topK: number; capacityFactor: number } {
  const o = options as Record<string, unknown>;
  const experts = checkInteger(o.experts, `experts of ${what}`, 1, MAX_EXPERTS);
  if (!(typeof o.topK === 'number' && Number.isInteger(o.topK) && o.topK >= 1 && o.topK <= experts)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected topK in [1, ${experts}] for ${what} but received ${String(o.topK)}`);
  }
  const capacityFactor = o.capacityFactor === undefined ? 1.25 : checkNumber(o.capacityFactor, `capacityFactor of ${what}`, { above: 0, max: experts });
  return { experts, topK: o.topK, capacityFactor };
}

export class MoE extends Module {
  readonly router: Linear;
  readonly experts: number;
  readonly topK: number;
  readonly capacityFactor: number;
  constructor(readonly dim: number, readonly hidden: number, options: MoEOptions) {
    super();
    checkSize(dim, 'dim of MoE');
    checkSize(hidden, 'hidden of MoE');
    if (options === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'Expected MoE options { experts, topK, ... } but received undefined');
    const o = optionsObject(options, 'MoE');
    checkKeys(o, MOE_OPTION_KEYS, 'MoE');
    const { experts, topK, capacityFactor } = checkMoEOptions(o, 'MoE');
    const std = optionalStd(o.residualStd, 'residualStd of MoE', 0.02);
    checkParameterCount(experts * (dim + 2 * dim * hidden), 'MoE');
    this.experts = experts;
    this.topK = topK;
    this.capacityFactor = capacityFactor;
    this.router = this.addChild('router', new Linear(dim, experts, { bias: false }));
    this.addParam('w1', [experts, dim, hidden], { dist: 'normal', scale: 0.02 });
    this.addParam('w2', [experts, hidden, dim], { dist: 'normal', scale: std });
  }

  /** Tokens each expert takes for a batch of `tokens` tokens: ceil(capacityFactor · tokens · topK / experts), at least 1. */
  capacity(tokens: number): number {
    checkInteger(tokens, 'tokens of MoE capacity', 0);
    return Math.max(1, Math.ceil((this.capacityFactor * tokens * this.topK) / this.experts));
  }

  /** x: f32[B, T, D] -> { y: f32[B, T, D], aux: f32[1] (load-balancing loss) } */
  forward(x: Sym): { y: Sym; aux: Sym } {
    checkSym(x, 'the input of MoE');
    if (x.rank !== 3 || x.shape[2] !== this.dim) throw new DeepwellError('SHAPE_MISMATCH', `Expected [B, T, ${this.dim}] for the input of MoE but received ${x.toString()}`);
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

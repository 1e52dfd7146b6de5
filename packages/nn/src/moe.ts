/**
 * Mixture of experts with top-k routing and static shapes. A router picks k experts per token and
 * the token's output is the sum of those experts' outputs weighted by the router's probabilities.
 * Two ways to route:
 *   - 'dropless' (the default; MegaBlocks, today's MoE trainers): every choice is kept. moe_sort
 *     gives each (token, choice) a row, sorted by expert, with the group offsets as data, so the row
 *     count tokens · k is static however the router routes; the experts run as grouped GEMMs
 *     (grouped_matmul) over their contiguous rows; moe_permute and moe_unpermute move the tokens
 *     there and back (each the other's gradient). Its CUDA kernels passed on the H200 (2026-12-05).
 *   - 'capacity' (GShard, Switch; also what a capacityFactor given without routing asks for): each
 *     expert takes at most C = ceil(capacityFactor · tokens · k / experts) tokens, choices past that
 *     are dropped; tokens are gathered into [E, C, D] and every expert runs as one batched matmul.
 * Each expert is a GELU MLP, or SwiGLU (`activation: 'swiglu'`: w1 the gate, w3 the up projection,
 * w2 the down projection); `sharedExperts` adds that many always-on experts as one dense MLP of
 * sharedExperts · hidden (DeepSeek's shared experts), applied to every token.
 *
 * The router (a bias-free Linear) feeds moe_route: softmax and top-k in FP32 whatever the autocast
 * dtype (DeepSeek-V3 keeps routing out of low precision), one kernel; the routing weights stay f32
 * into moe_unpermute. The load-balancing loss (Switch Transformer, moe_aux_loss, one kernel):
 * E · Σ_e f_e · P_e, with f_e the share of routing choices that went to expert e and P_e the mean
 * router probability of e. It is minimal when routing is uniform; only P carries gradient.
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber, checkOneOf } from '@deepwell/core';
import { add, gatherRows, gelu, groupedMatmul, matmul, moeAuxLoss, moePermute, moePlan, moeRoute, moeSort, moeUnpermute, mul, reshape, sum, swiglu, type Sym } from '@deepwell/ir';
import { Linear, MLP, checkSize } from './layers.js';
import { MAX_EXPERTS, checkParameterCount, checkSym, optionalStd, optionsObject } from './limits.js';
import { Module } from './module.js';

export interface MoEOptions {
  /** Experts, in [1, 4096]. */
  experts: number;
  /** Experts per token, in [1, experts]. */
  topK: number;
  /** 'dropless' (the default: every choice kept, experts as grouped GEMMs) or 'capacity' (at most C tokens an expert, the rest dropped); a capacityFactor given without routing means 'capacity'. */
  routing?: MoERouting;
  /** Capacity per expert relative to an even share, in (0, experts] (default 1.25; 'capacity' routing only); experts / topK already lets every expert take every token. */
  capacityFactor?: number;
  /** Each expert's MLP: 'gelu' (the default) or 'swiglu'. */
  activation?: MoEActivation;
  /** Always-on experts added to every token's output, as one dense MLP of sharedExperts · hidden (default 0). */
  sharedExperts?: number;
  residualStd?: number;
}

export type MoERouting = 'capacity' | 'dropless';
export type MoEActivation = 'gelu' | 'swiglu';
const ROUTINGS = ['capacity', 'dropless'] as const;
const MOE_ACTIVATIONS = ['gelu', 'swiglu'] as const;
const MOE_OPTION_KEYS = ['experts', 'topK', 'routing', 'capacityFactor', 'activation', 'sharedExperts', 'residualStd'];

/** The resolved routing options of a MoE. */
export interface MoERoutingOptions {
  experts: number;
  topK: number;
  routing: MoERouting;
  capacityFactor: number;
  activation: MoEActivation;
  sharedExperts: number;
}

/** MoE's options checked (also GPTConfig.moe's, before a GPT builds anything). */
export function checkMoEOptions(options: unknown, what: string): MoERoutingOptions {
  const o = options as Record<string, unknown>;
  const experts = checkInteger(o.experts, `experts of ${what}`, 1, MAX_EXPERTS);
  if (!(typeof o.topK === 'number' && Number.isInteger(o.topK) && o.topK >= 1 && o.topK <= experts)) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected topK in [1, ${experts}] for ${what} but received ${String(o.topK)}`);
  }
  // Dropless by default (verified on the H200 2026-12-05); a capacityFactor alone asks for capacity routing.
  const routing = o.routing === undefined ? (o.capacityFactor === undefined ? 'dropless' : 'capacity') : checkOneOf(o.routing, ROUTINGS, `routing of ${what}`);
  if (routing === 'dropless' && o.capacityFactor !== undefined) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected no capacityFactor for ${what} with routing 'dropless' (every choice is kept) but received ${String(o.capacityFactor)}`);
  }
  const capacityFactor = o.capacityFactor === undefined ? 1.25 : checkNumber(o.capacityFactor, `capacityFactor of ${what}`, { above: 0, max: experts });
  const activation = o.activation === undefined ? 'gelu' : checkOneOf(o.activation, MOE_ACTIVATIONS, `activation of ${what}`);
  const sharedExperts = o.sharedExperts === undefined ? 0 : checkInteger(o.sharedExperts, `sharedExperts of ${what}`, 0, MAX_EXPERTS);
  return { experts, topK: o.topK, routing, capacityFactor, activation, sharedExperts };
}

export class MoE extends Module {
  readonly router: Linear;
  readonly experts: number;
  readonly topK: number;
  readonly routing: MoERouting;
  readonly capacityFactor: number;
  readonly activation: MoEActivation;
  readonly sharedExperts: number;
  /** The shared experts' dense MLP (sharedExperts · hidden wide), or null. */
  readonly shared: MLP | null;
  constructor(readonly dim: number, readonly hidden: number, options: MoEOptions) {
    super();
    checkSize(dim, 'dim of MoE');
    checkSize(hidden, 'hidden of MoE');
    if (options === undefined) throw new DeepwellError('INVALID_ARGUMENT', 'Expected MoE options { experts, topK, ... } but received undefined');
    const o = optionsObject(options, 'MoE');
    checkKeys(o, MOE_OPTION_KEYS, 'MoE');
    const { experts, topK, routing, capacityFactor, activation, sharedExperts } = checkMoEOptions(o, 'MoE');
    const std = optionalStd(o.residualStd, 'residualStd of MoE', 0.02);
    const matrices = activation === 'swiglu' ? 3 : 2;
    checkParameterCount(experts * (dim + matrices * dim * hidden) + matrices * sharedExperts * dim * hidden, 'MoE');
    if (sharedExperts > 0) checkSize(sharedExperts * hidden, 'the shared experts\' hidden width (sharedExperts × hidden) of MoE');
    this.experts = experts;
    this.topK = topK;
    this.routing = routing;
    this.capacityFactor = capacityFactor;
    this.activation = activation;
    this.sharedExperts = sharedExperts;
    this.router = this.addChild('router', new Linear(dim, experts, { bias: false }));
    this.addParam('w1', [experts, dim, hidden], { dist: 'normal', scale: 0.02 });
    if (activation === 'swiglu') this.addParam('w3', [experts, dim, hidden], { dist: 'normal', scale: 0.02 });
    this.addParam('w2', [experts, hidden, dim], { dist: 'normal', scale: std });
    this.shared = sharedExperts > 0 ? this.addChild('shared', new MLP(dim, sharedExperts * hidden, activation, { residualStd: std, bias: false })) : null;
  }

  /** Tokens each expert takes for a batch of `tokens` tokens under 'capacity' routing: ceil(capacityFactor · tokens · topK / experts), at least 1. */
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
      const k = this.topK;
      const x2 = reshape(x, [N, D]);
      // The router in FP32 (moe_route: softmax and top-k in one kernel): probs [N, E], weights and chosen [N, k].
      const [probs, weights, chosen] = moeRoute(this.router.forward(x2), k);
      // [N, D]: each token's choices' outputs, weighted by their router probabilities
      let y = this.routing === 'dropless' ? this.dropless(x2, chosen, weights) : sum(mul(this.capacityRouted(x2, chosen, N), reshape(weights, [N, k, 1])), [1]);
      if (this.shared) y = add(y, this.shared.forward(x2));
      const [aux] = moeAuxLoss(probs, chosen); // E · Σ_e f_e · P_e: 1 when routing is uniform
      return { y: reshape(y, [B, T, D]), aux };
    });
  }

  /** The expert MLP's hidden activation of rows `rows` (F[M, D]), through `mm(rows, w)` for each weight. */
  private hiddenOf(rows: Sym, mm: (a: Sym, w: Sym) => Sym): Sym {
    const gate = mm(rows, this.weight('w1'));
    return this.activation === 'swiglu' ? swiglu(gate, mm(rows, this.weight('w3'))) : gelu(gate);
  }

  /** Capacity routing: [N, k, D], a dropped choice contributing a zero row. */
  private capacityRouted(x2: Sym, chosen: Sym, N: number): Sym {
    const [E, k, D] = [this.experts, this.topK, this.dim];
    const C = this.capacity(N);
    const [dispatch, combine] = moePlan(chosen, E, C); // [E*C], [N, k]
    const xe = reshape(gatherRows(x2, dispatch), [E, C, D]);
    const h = this.hiddenOf(xe, matmul); // [E, C, H]
    const ye = reshape(matmul(h, this.weight('w2')), [E * C, D]);
    return reshape(gatherRows(ye, reshape(combine, [N * k])), [N, k, D]);
  }

  /**
   * Dropless routing: every choice kept, the experts as grouped GEMMs over rows sorted by expert;
   * moe_permute copies each token to its choices' rows and moe_unpermute sums their outputs back,
   * weighted (each the other's gradient: no scatter-add): [N, D].
   */
  private dropless(x2: Sym, chosen: Sym, weights: Sym): Sym {
    const [order, slot, offsets] = moeSort(chosen, this.experts); // [N*k], [N, k], [E + 1]
    const grouped = (a: Sym, w: Sym) => groupedMatmul(a, w, offsets);
    const h = this.hiddenOf(moePermute(x2, order, slot), grouped); // [N*k, H], sorted by expert
    const ye = groupedMatmul(h, this.weight('w2'), offsets); // [N*k, D]
    return moeUnpermute(ye, order, slot, weights);
  }
}

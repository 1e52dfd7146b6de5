/**
 * GPT: token and position embeddings, pre-norm transformer blocks (attention + MLP or MoE), a final
 * norm and a language-model head (tied to the token embedding by default), as GPT-2 and nanoGPT.
 * forward({ tokens, targets }) gives logits and, with targets, the mean cross-entropy loss (plus the
 * MoE load-balancing loss, weighted).
 */
import { DeepwellError, checkInteger, checkKeys, describe } from '@deepwell/core';
import { add, crossEntropy, matmul, reshape, scale, slice, type Sym } from '@deepwell/ir';
import { CausalSelfAttention, type AttentionKind } from './attention.js';
import { resolveConfig, type GPTConfig, type GPTPreset, type ResolvedGPTConfig } from './gpt_config.js';
import { Embedding, LayerNorm, Linear, MLP, RMSNorm } from './layers.js';
import { checkSym, optionsObject } from './limits.js';
import { MoE, type MoEOptions } from './moe.js';
import { Module } from './module.js';

export { GPT_PRESETS, gptParameterCount } from './gpt_config.js';
export type { GPTConfig, GPTPreset, ResolvedGPTConfig } from './gpt_config.js';



type Norm = LayerNorm | RMSNorm;

class Block extends Module {
  readonly ln1: Norm;
  readonly attn: CausalSelfAttention;
  readonly ln2: Norm;
  readonly mlp: MLP | MoE;
  constructor(
    c: Required<Pick<GPTConfig, 'nEmbd' | 'nHead' | 'nKvHead' | 'fusedAttention' | 'mlpHidden' | 'activation' | 'norm' | 'bias'>>,
    residualStd: number,
    moe: GPTConfig['moe'] | null,
    kind: AttentionKind,
  ) {
    super();
    const norm = () => (c.norm === 'rmsnorm' ? new RMSNorm(c.nEmbd) : new LayerNorm(c.nEmbd));
    this.ln1 = this.addChild('ln1', norm());
    this.attn = this.addChild('attn', new CausalSelfAttention(c.nEmbd, c.nHead, { residualStd, bias: c.bias, kvHeads: c.nKvHead, fused: c.fusedAttention, kind }));
    this.ln2 = this.addChild('ln2', norm());
    this.mlp = moe
      ? this.addChild('moe', new MoE(c.nEmbd, c.mlpHidden, moeOptions(moe, residualStd)))
      : this.addChild('mlp', new MLP(c.nEmbd, c.mlpHidden, c.activation, { residualStd, bias: c.bias }));
  }
  /** `attend`: the attention of the normed input (the layer's own forward, or its cached decode). */
  forward(x: Sym, attend = (y: Sym) => this.attn.forward(y)): { x: Sym; aux: Sym | null } {
    return this.scope(() => {
      const h = add(x, attend(this.ln1.forward(x)));
      if (this.mlp instanceof MoE) {
        const { y, aux } = this.mlp.forward(this.ln2.forward(h));
        return { x: add(h, y), aux };
      }
      return { x: add(h, this.mlp.forward(this.ln2.forward(h))), aux: null };
    });
  }
}

/** A GPT config's moe entry as MoE's options (undefined entries left out, so MoE's defaults apply). */
function moeOptions(moe: NonNullable<GPTConfig['moe']>, residualStd: number): MoEOptions {
  const { auxLossWeight: _w, everyNth: _n, ...rest } = moe;
  return { ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)), residualStd } as MoEOptions;
}

export class GPT extends Module {
  readonly config: ResolvedGPTConfig;
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly blocks: Block[];
  readonly lnf: Norm;
  readonly head: Linear | null;

  /**
   * The whole config is checked (GPTConfig's bounds: sizes up to 2^24, at most 1024 layers, at most
   * 2^35 parameters, worked out from the config) before a module is built.
   */
  constructor(config: GPTConfig | GPTPreset) {
    super();
    const { cfg, kinds } = resolveConfig(config);
    this.config = cfg;
    const residualStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
    this.wte = this.addChild('wte', new Embedding(cfg.vocabSize, cfg.nEmbd));
    this.wpe = this.addChild('wpe', new Embedding(cfg.blockSize, cfg.nEmbd, cfg.positionInit === 'sinusoidal' ? { init: 'sinusoidal', base: cfg.positionBase } : {}));
    const every = cfg.moe?.everyNth ?? 1;
    this.blocks = Array.from({ length: cfg.nLayer }, (_, i) => this.addChild(`blocks.${i}`, new Block(cfg, residualStd, cfg.moe && i % every === every - 1 ? cfg.moe : null, kinds[i]!)));
    this.lnf = this.addChild('lnf', cfg.norm === 'rmsnorm' ? new RMSNorm(cfg.nEmbd) : new LayerNorm(cfg.nEmbd));
    this.head = cfg.tiedEmbeddings ? null : this.addChild('head', new Linear(cfg.nEmbd, cfg.vocabSize, { bias: false }));
  }

  /** tokens: i32[B, T]; targets: i32[B, T] (optional) -> { logits: f32[B, T, V], loss?: f32[1] } */
  forward(inputs: Record<string, Sym>): Record<string, Sym> {
    if (inputs === null || typeof inputs !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected GPT inputs { tokens, targets? } but received ${describe(inputs)}`);
    checkKeys(inputs, ['tokens', 'targets'], 'GPT input', { noun: 'name' });
    const { tokens, targets } = inputs;
    if (tokens !== undefined) checkSym(tokens, "GPT input 'tokens'");
    if (!tokens || tokens.rank !== 2 || tokens.dtype !== 'i32') {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected i32[B, T] for GPT input 'tokens' but received ${tokens ? tokens.toString() : 'none'}`);
    }
    const [B, T] = [tokens.shape[0]!, tokens.shape[1]!];
    if (T > this.config.blockSize) throw new DeepwellError('SHAPE_MISMATCH', `Expected at most blockSize = ${this.config.blockSize} positions for GPT input 'tokens' but received ${T}`);
    if (targets !== undefined) {
      checkSym(targets, "GPT input 'targets'");
      if (targets.dtype !== 'i32' || targets.rank !== 2 || targets.shape[0] !== B || targets.shape[1] !== T) {
        throw new DeepwellError('SHAPE_MISMATCH', `Expected i32[${B}, ${T}] (as tokens) for GPT input 'targets' but received ${targets.toString()}`);
      }
    }
    return this.scope(() => {
      const pos = slice(this.wpe.weight('weight'), 0, 0, T); // [T, C]
      let x = add(this.wte.forward(tokens), pos);
      const aux: Sym[] = [];
      for (const block of this.blocks) {
        const r = block.forward(x);
        x = r.x;
        if (r.aux) aux.push(r.aux);
      }
      x = this.lnf.forward(x);
      const logits = this.head ? this.head.forward(x) : matmul(x, this.wte.weight('weight'), { transB: true });
      const out: Record<string, Sym> = { logits };
      if (targets) {
        let loss = crossEntropy(reshape(logits, [B * T, this.config.vocabSize]), reshape(targets, [B * T]));
        if (aux.length) {
          const total = aux.reduce((a, b) => add(a, b));
          loss = add(loss, scale(total, this.config.moe?.auxLossWeight ?? 0.01));
        }
        out.loss = loss;
      }
      return out;
    });
  }

  /**
   * One generation step: tokens i32[B, n] at positions pos i32[n] (pos[i] in [0, cacheLength)) ->
   * { logits: f32[B, n, V] }, each token attending to the earlier ones through per-layer key/value
   * caches kept as graph state (CausalSelfAttention.decode). Feeding a sequence's tokens step by
   * step at positions 0, 1, 2, ... gives the logits forward() gives for it, position by position.
   * Dense attention layers only.
   */
  decode(inputs: Record<string, Sym>, options: DecodeOptions = {}): Record<string, Sym> {
    if (inputs === null || typeof inputs !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected GPT decode inputs { tokens, pos } but received ${describe(inputs)}`);
    checkKeys(inputs, ['tokens', 'pos'], 'GPT decode input', { noun: 'name' });
    const o = optionsObject(options, 'GPT decode');
    checkKeys(o, ['cacheLength'], 'GPT decode');
    const { tokens, pos } = inputs;
    if (tokens !== undefined) checkSym(tokens, "GPT decode input 'tokens'");
    if (pos !== undefined) checkSym(pos, "GPT decode input 'pos'");
    if (!tokens || tokens.rank !== 2 || tokens.dtype !== 'i32') throw new DeepwellError('INVALID_ARGUMENT', `Expected i32[B, n] for GPT decode input 'tokens' but received ${tokens ? tokens.toString() : 'none'}`);
    const n = tokens.shape[1]!;
    if (!pos || pos.dtype !== 'i32' || pos.rank !== 1 || pos.shape[0] !== n) throw new DeepwellError('INVALID_ARGUMENT', `Expected i32[${n}] (a position per token) for GPT decode input 'pos' but received ${pos ? pos.toString() : 'none'}`);
    const length = checkInteger(o.cacheLength === undefined ? this.config.blockSize : o.cacheLength, 'cacheLength of GPT decode', 1, this.config.blockSize);
    return this.scope(() => {
      let x = add(this.wte.forward(tokens), this.wpe.forward(pos)); // [B, n, C] + [n, C]
      for (const block of this.blocks) x = block.forward(x, (y) => block.attn.decode(y, pos, length)).x;
      x = this.lnf.forward(x);
      return { logits: this.head ? this.head.forward(x) : matmul(x, this.wte.weight('weight'), { transB: true }) };
    });
  }
}

export interface DecodeOptions {
  /** Positions each layer's key/value cache holds (at most blockSize; default blockSize). */
  cacheLength?: number;
}

/**
 * The model's forward for one generation step with a key/value cache per layer (GPT.decode): tokens
 * i32[B, n] at positions pos i32[n] -> { logits: f32[B, n, V] }. Captured by itself:
 * `capture(new GPTDecode(model), { tokens: ..., pos: ... })`.
 */
export class GPTDecode {
  constructor(readonly model: GPT, readonly options: DecodeOptions = {}) {
    if (!(model instanceof GPT)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT for the model of GPTDecode but received ${describe(model)}`);
    const o = optionsObject(options, 'GPTDecode');
    checkKeys(o, ['cacheLength'], 'GPTDecode');
    if (o.cacheLength !== undefined) checkInteger(o.cacheLength, 'cacheLength of GPTDecode', 1, model.config.blockSize);
    this.options = { ...o };
  }
  forward(inputs: Record<string, Sym>): Record<string, Sym> {
    return this.model.decode(inputs, this.options);
  }
}

/**
 * GPT: token and position embeddings, pre-norm transformer blocks (attention + MLP or MoE), a final
 * norm and a language-model head (tied to the token embedding by default), as GPT-2 and nanoGPT.
 * forward({ tokens, targets }) gives logits and, with targets, the mean cross-entropy loss (plus the
 * MoE load-balancing loss, weighted).
 */
import { DeepwellError, checkInteger, checkKeys, checkOneOf } from '@deepwell/core';
import { add, crossEntropy, matmul, reshape, scale, slice, type Sym } from '@deepwell/ir';
import { CausalSelfAttention, checkAttentionKind, type AttentionKind } from './attention.js';
import { Embedding, LayerNorm, Linear, MLP, RMSNorm, type Activation } from './layers.js';
import { MoE } from './moe.js';
import { Module } from './module.js';

export interface GPTConfig {
  vocabSize: number;
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Hidden width of the MLP (default 4 × nEmbd). */
  mlpHidden?: number;
  activation?: Activation;
  norm?: 'layernorm' | 'rmsnorm';
  /** Share the token embedding with the output head (default true). */
  tiedEmbeddings?: boolean;
  bias?: boolean;
  /** Key/value heads for grouped-query attention (a divisor of nHead; default nHead). */
  nKvHead?: number;
  /** Attention as one sdpa_qkv op (@deepwell/attention-sparsek; default true), or the composite reference (false). */
  fusedAttention?: boolean;
  /**
   * The attention of every layer ({ kind: 'dense' }, the default, or { kind: 'sparsek', blockSize?,
   * topK?, first?, window? }: SparseK top-k block-sparse attention), or one per layer (an array of
   * nLayer kinds).
   */
  attention?: AttentionKind | AttentionKind[];
  /**
   * How the learned position embedding starts: 'normal' (random, std 0.02; GPT-2's, the default) or
   * 'sinusoidal' (the Transformer's sin/cos table, amplitude 0.02, then trained). Sinusoids make a
   * fixed offset between positions the same rotation everywhere, so heads that attend a fixed
   * distance back (the previous token, as induction heads need) are learnt from every position at
   * once; at long T, random rows learn them slowly.
   */
  positionInit?: 'normal' | 'sinusoidal';
  /**
   * The sinusoids' base (default 10000, the Transformer's): periods from 2π to 2π · base. A small
   * base (10: periods up to 63) keeps only the short periods that tell neighbours apart, so a
   * block's mean position embedding is near zero.
   */
  positionBase?: number;
  moe?: { experts: number; topK: number; capacityFactor?: number; auxLossWeight?: number; everyNth?: number };
}

export const GPT_PRESETS = {
  /** GPT-2 small (124M) as llm.c trains it: vocab padded to 50304, T = 1024. */
  'gpt2-small': { vocabSize: 50304, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 },
  /** A model the CPU reference trains in seconds. */
  tiny: { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 },
  /** The tiny model with a 4-expert, top-2 MoE in every block. */
  'tiny-moe': { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, moe: { experts: 4, topK: 2 } },
} satisfies Record<string, GPTConfig>;

export type GPTPreset = keyof typeof GPT_PRESETS;

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
      ? this.addChild('moe', new MoE(c.nEmbd, c.mlpHidden, { ...moe, residualStd }))
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

/** GPTConfig's keys, in the order the errors list them, and those of its moe object. */
const CONFIG_KEYS = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'mlpHidden', 'activation', 'norm', 'tiedEmbeddings', 'bias', 'nKvHead', 'fusedAttention', 'attention', 'positionInit', 'positionBase', 'moe'];
const MOE_KEYS = ['experts', 'topK', 'capacityFactor', 'auxLossWeight', 'everyNth'];
/** Other libraries' names (nanoGPT, Hugging Face's GPT2Config, Llama configs) for our keys, and what Deepwell has instead of a few. */
const CONFIG_ALIASES: Record<string, string> = {
  n_layer: 'nLayer', num_hidden_layers: 'nLayer', numLayers: 'nLayer', layers: 'nLayer', depth: 'nLayer',
  n_head: 'nHead', num_attention_heads: 'nHead', numHeads: 'nHead', heads: 'nHead',
  n_embd: 'nEmbd', hidden_size: 'nEmbd', hiddenSize: 'nEmbd', dModel: 'nEmbd', d_model: 'nEmbd', dim: 'nEmbd', width: 'nEmbd',
  vocab_size: 'vocabSize', vocab: 'vocabSize',
  block_size: 'blockSize', n_positions: 'blockSize', n_ctx: 'blockSize', max_position_embeddings: 'blockSize', contextLength: 'blockSize', seqLen: 'blockSize', maxSeqLen: 'blockSize',
  n_inner: 'mlpHidden', intermediate_size: 'mlpHidden', ffnHidden: 'mlpHidden', hiddenDim: 'mlpHidden',
  num_key_value_heads: 'nKvHead', n_kv_head: 'nKvHead', nKvHeads: 'nKvHead', kvHeads: 'nKvHead',
  tie_word_embeddings: 'tiedEmbeddings', activation_function: 'activation',
  num_experts: 'experts', n_experts: 'experts', num_experts_per_tok: 'topK', aux_loss_weight: 'auxLossWeight',
};
const CONFIG_HINTS: Record<string, string> = {
  dropout: "Deepwell's GPT has no dropout (nanoGPT trains GPT-2 with dropout 0); leave it out",
  attn_pdrop: "Deepwell's GPT has no dropout; leave it out",
  resid_pdrop: "Deepwell's GPT has no dropout; leave it out",
  embd_pdrop: "Deepwell's GPT has no dropout; leave it out",
};

/** GPTConfig.attention as one checked kind per layer. */
function attentionKinds(a: AttentionKind | AttentionKind[], nLayer: number): AttentionKind[] {
  if (!Array.isArray(a)) return Array.from({ length: nLayer }, () => checkAttentionKind(a, 'GPT config attention'));
  if (a.length !== nLayer) throw new DeepwellError('INVALID_ARGUMENT', `Expected one attention kind per layer (${nLayer}) for GPT config attention but received ${a.length}`);
  return a.map((k, i) => checkAttentionKind(k, `GPT config attention[${i}]`));
}

export class GPT extends Module {
  readonly config: Required<Omit<GPTConfig, 'moe'>> & { moe: GPTConfig['moe'] | null };
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly blocks: Block[];
  readonly lnf: Norm;
  readonly head: Linear | null;

  constructor(config: GPTConfig | GPTPreset) {
    super();
    const c = typeof config === 'string' ? presetOf(config) : config;
    if (c === null || typeof c !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT config object or a preset name (${Object.keys(GPT_PRESETS).join(', ')}) but received ${String(c)}`);
    checkKeys(c, CONFIG_KEYS, 'GPT config', { aliases: CONFIG_ALIASES, hints: CONFIG_HINTS, noun: 'key' });
    if (c.moe !== undefined && c.moe !== null && typeof c.moe === 'object') checkKeys(c.moe, MOE_KEYS, 'GPT config moe', { aliases: CONFIG_ALIASES, hints: CONFIG_HINTS, noun: 'key' });
    for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) checkInteger(c[k], `GPT config ${k}`, 1);
    if (c.nEmbd % c.nHead !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected nEmbd divisible by nHead for GPT config but received nEmbd ${c.nEmbd} and nHead ${c.nHead}`);
    this.config = {
      mlpHidden: 4 * c.nEmbd,
      activation: checkOneOf(c.activation ?? 'gelu', ['gelu', 'swiglu'], 'GPT config activation'),
      norm: checkOneOf(c.norm ?? 'layernorm', ['layernorm', 'rmsnorm'], 'GPT config norm'),
      tiedEmbeddings: true,
      bias: true,
      nKvHead: c.nHead,
      fusedAttention: true,
      attention: { kind: 'dense' },
      positionInit: checkOneOf(c.positionInit ?? 'normal', ['normal', 'sinusoidal'], 'GPT config positionInit'),
      positionBase: 10000,
      ...c,
      moe: c.moe ?? null,
    };
    const cfg = this.config;
    if (cfg.positionInit === 'sinusoidal' && cfg.nEmbd % 2 !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected an even nEmbd for GPT config positionInit 'sinusoidal' (sin/cos pairs) but received ${cfg.nEmbd}`);
    if (!(typeof cfg.positionBase === 'number' && cfg.positionBase > 1 && Number.isFinite(cfg.positionBase))) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite number above 1 for GPT config positionBase but received ${String(cfg.positionBase)}`);
    if (c.positionBase !== undefined && cfg.positionInit !== 'sinusoidal') throw new DeepwellError('INVALID_ARGUMENT', `Expected positionInit 'sinusoidal' with GPT config positionBase (it sets the sinusoids' base) but received positionInit '${cfg.positionInit}'`);
    const residualStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
    this.wte = this.addChild('wte', new Embedding(cfg.vocabSize, cfg.nEmbd));
    this.wpe = this.addChild('wpe', new Embedding(cfg.blockSize, cfg.nEmbd, { init: cfg.positionInit, base: cfg.positionBase }));
    const every = cfg.moe?.everyNth ?? 1;
    const kinds = attentionKinds(cfg.attention, cfg.nLayer);
    this.blocks = Array.from({ length: cfg.nLayer }, (_, i) => this.addChild(`blocks.${i}`, new Block(cfg, residualStd, cfg.moe && i % every === every - 1 ? cfg.moe : null, kinds[i]!)));
    this.lnf = this.addChild('lnf', cfg.norm === 'rmsnorm' ? new RMSNorm(cfg.nEmbd) : new LayerNorm(cfg.nEmbd));
    this.head = cfg.tiedEmbeddings ? null : this.addChild('head', new Linear(cfg.nEmbd, cfg.vocabSize, { bias: false }));
  }

  /** tokens: i32[B, T]; targets: i32[B, T] (optional) -> { logits: f32[B, T, V], loss?: f32[1] } */
  forward(inputs: Record<string, Sym>): Record<string, Sym> {
    const { tokens, targets } = inputs;
    if (!tokens || tokens.rank !== 2 || tokens.dtype !== 'i32') {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected i32[B, T] for GPT input 'tokens' but received ${tokens ? tokens.toString() : 'none'}`);
    }
    const [B, T] = [tokens.shape[0]!, tokens.shape[1]!];
    if (T > this.config.blockSize) throw new DeepwellError('SHAPE_MISMATCH', `Expected at most blockSize = ${this.config.blockSize} positions for GPT input 'tokens' but received ${T}`);
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
    const { tokens, pos } = inputs;
    if (!tokens || tokens.rank !== 2 || tokens.dtype !== 'i32') throw new DeepwellError('INVALID_ARGUMENT', `Expected i32[B, n] for GPT decode input 'tokens' but received ${tokens ? tokens.toString() : 'none'}`);
    const n = tokens.shape[1]!;
    if (!pos || pos.dtype !== 'i32' || pos.rank !== 1 || pos.shape[0] !== n) throw new DeepwellError('INVALID_ARGUMENT', `Expected i32[${n}] (a position per token) for GPT decode input 'pos' but received ${pos ? pos.toString() : 'none'}`);
    const length = checkInteger(options.cacheLength ?? this.config.blockSize, 'cacheLength of GPT decode', 1, this.config.blockSize);
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
  constructor(readonly model: GPT, readonly options: DecodeOptions = {}) {}
  forward(inputs: Record<string, Sym>): Record<string, Sym> {
    return this.model.decode(inputs, this.options);
  }
}

function presetOf(name: string): GPTConfig {
  if (!(name in GPT_PRESETS)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(GPT_PRESETS).join(', ')} for GPT preset but received '${name}'`);
  return GPT_PRESETS[name as GPTPreset];
}

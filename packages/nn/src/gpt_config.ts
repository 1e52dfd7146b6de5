/**
 * GPTConfig: what a GPT is built from, its presets, and the check of a whole config before anything
 * is built. Every size is bounded (limits.ts), every option checked (unknown keys named, with another
 * library's name for them where there is one), and the parameter count worked out from the config
 * alone (gptParameterCount, which GPT.parameterCount() matches) and refused past MAX_PARAMETERS.
 */
import { DeepwellError, checkInteger, checkKeys, checkNumber, checkOneOf, describe } from '@deepwell/core';
import { checkAttentionKind, type AttentionKind } from './attention.js';
import { ACTIVATIONS, type Activation } from './layers.js';
import { MAX_LAYERS, MAX_SIZE, checkParameterCount, optionalBoolean } from './limits.js';
import { checkMoEOptions, type MoEOptions } from './moe.js';

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
  /**
   * Mixture of experts in place of the MLP (every layer, or every everyNth); null or absent: none.
   * routing, capacityFactor, activation and sharedExperts as MoE's options (nn's MoE); each expert is
   * mlpHidden wide.
   */
  moe?: (Omit<MoEOptions, 'residualStd'> & { auxLossWeight?: number; everyNth?: number }) | null;
}

export const GPT_PRESETS = {
  /** GPT-2 small (124M) as llm.c trains it: vocab padded to 50304, T = 1024. */
  'gpt2-small': { vocabSize: 50304, blockSize: 1024, nLayer: 12, nHead: 12, nEmbd: 768 },
  /** A model the CPU reference trains in seconds. */
  tiny: { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 },
  /** The tiny model with a 4-expert, top-2 MoE in every block. */
  'tiny-moe': { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, moe: { experts: 4, topK: 2 } },
  /**
   * A GPT-2-style mixture of experts: 12 layers, width 1024 (16 heads), T = 1024, vocab 50304, an
   * 8-expert top-2 GELU MoE (each expert 4096 wide) in every block, dropless routing: 908M
   * parameters, about 0.3B of them used per token (examples/gpt2 trains it beside PyTorch).
   */
  'moe-8x': { vocabSize: 50304, blockSize: 1024, nLayer: 12, nHead: 16, nEmbd: 1024, moe: { experts: 8, topK: 2, routing: 'dropless', activation: 'gelu' } },
} satisfies Record<string, GPTConfig>;

export type GPTPreset = keyof typeof GPT_PRESETS;

/** GPTConfig's keys, in the order the errors list them, and those of its moe object. */
const CONFIG_KEYS = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'mlpHidden', 'activation', 'norm', 'tiedEmbeddings', 'bias', 'nKvHead', 'fusedAttention', 'attention', 'positionInit', 'positionBase', 'moe'];
const MOE_KEYS = ['experts', 'topK', 'routing', 'capacityFactor', 'activation', 'sharedExperts', 'auxLossWeight', 'everyNth'];
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
  if (!Array.isArray(a)) {
    const kind = checkAttentionKind(a, 'GPT config attention');
    return Array.from({ length: nLayer }, () => kind);
  }
  if (a.length !== nLayer) throw new DeepwellError('INVALID_ARGUMENT', `Expected one attention kind per layer (${nLayer}) for GPT config attention but received ${a.length}`);
  return a.map((k, i) => checkAttentionKind(k, `GPT config attention[${i}]`));
}

/** `value`, or `fallback` when it is absent (undefined only: null is a value, and refused where it is not one). */
const or = <T>(value: T | undefined, fallback: T): T => (value === undefined ? fallback : value);

/** A config with every default filled in (GPT.config). */
export type ResolvedGPTConfig = Required<Omit<GPTConfig, 'moe'>> & { moe: NonNullable<GPTConfig['moe']> | null };

/**
 * `config` (or a preset's) checked whole, with its defaults, and one attention kind per layer. Throws
 * INVALID_ARGUMENT naming the first bad key, or, for a config whose parameters exceed MAX_PARAMETERS,
 * how many it has and what they would take.
 */
export function resolveConfig(config: GPTConfig | GPTPreset, options: { limit?: boolean } = {}): { cfg: ResolvedGPTConfig; kinds: AttentionKind[] } {
  const c = typeof config === 'string' ? presetOf(config) : config;
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT config object or a preset name (${Object.keys(GPT_PRESETS).join(', ')}) but received ${describe(c)}`);
  checkKeys(c, CONFIG_KEYS, 'GPT config', { aliases: CONFIG_ALIASES, hints: CONFIG_HINTS, noun: 'key' });
  if (c.moe !== undefined && c.moe !== null) {
    if (typeof c.moe !== 'object' || Array.isArray(c.moe)) throw new DeepwellError('INVALID_ARGUMENT', `Expected { experts, topK, ... } (or null) for GPT config moe but received ${describe(c.moe)}`);
    checkKeys(c.moe, MOE_KEYS, 'GPT config moe', { aliases: CONFIG_ALIASES, hints: CONFIG_HINTS, noun: 'key' });
  }
  const vocabSize = checkInteger(c.vocabSize, 'GPT config vocabSize', 1, MAX_SIZE);
  const blockSize = checkInteger(c.blockSize, 'GPT config blockSize', 1, MAX_SIZE);
  const nLayer = checkInteger(c.nLayer, 'GPT config nLayer', 1, MAX_LAYERS);
  const nHead = checkInteger(c.nHead, 'GPT config nHead', 1, MAX_SIZE);
  const nEmbd = checkInteger(c.nEmbd, 'GPT config nEmbd', 1, MAX_SIZE);
  if (nEmbd % nHead !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected nEmbd divisible by nHead for GPT config but received nEmbd ${nEmbd} and nHead ${nHead}`);
  const mlpHidden = checkInteger(or(c.mlpHidden, 4 * nEmbd), c.mlpHidden === undefined ? 'GPT config mlpHidden (default 4 × nEmbd)' : 'GPT config mlpHidden', 1, MAX_SIZE);
  const nKvHead = checkInteger(or(c.nKvHead, nHead), 'GPT config nKvHead', 1, nHead);
  if (nHead % nKvHead !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected nKvHead dividing nHead (${nHead}) for GPT config but received ${nKvHead}`);
  const activation = checkOneOf(or(c.activation, 'gelu'), ACTIVATIONS, 'GPT config activation');
  const norm = checkOneOf(or(c.norm, 'layernorm'), ['layernorm', 'rmsnorm'] as const, 'GPT config norm');
  const tiedEmbeddings = optionalBoolean(c.tiedEmbeddings, 'GPT config tiedEmbeddings', true);
  const bias = optionalBoolean(c.bias, 'GPT config bias', true);
  const fusedAttention = optionalBoolean(c.fusedAttention, 'GPT config fusedAttention', true);
  const positionInit = checkOneOf(or(c.positionInit, 'normal'), ['normal', 'sinusoidal'] as const, 'GPT config positionInit');
  if (positionInit === 'sinusoidal' && nEmbd % 2 !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected an even nEmbd for GPT config positionInit 'sinusoidal' (sin/cos pairs) but received ${nEmbd}`);
  const positionBase = or(c.positionBase, 10000);
  if (!(typeof positionBase === 'number' && positionBase > 1 && Number.isFinite(positionBase))) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite number above 1 for GPT config positionBase but received ${describe(positionBase)}`);
  // 10000 without sinusoids is what GPT.config reports (the default), so a model's config builds it again.
  if (c.positionBase !== undefined && c.positionBase !== 10000 && positionInit !== 'sinusoidal') throw new DeepwellError('INVALID_ARGUMENT', `Expected positionInit 'sinusoidal' with GPT config positionBase (it sets the sinusoids' base) but received positionInit '${positionInit}'`);
  const attention = or(c.attention, { kind: 'dense' });
  const kinds = attentionKinds(attention, nLayer);
  kinds.forEach((k, i) => {
    if (k.kind !== 'sparsek') return;
    const what = Array.isArray(attention) ? `GPT config attention[${i}]` : 'GPT config attention';
    if (!fusedAttention) throw new DeepwellError('INVALID_ARGUMENT', `Expected fusedAttention true for a sparsek ${what} (the composite reference is dense) but received fusedAttention false`);
    const blocks = Math.ceil(blockSize / (k.blockSize ?? 64));
    if (k.topK !== undefined && k.topK > blocks) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected topK at most the ${blocks} blocks of the longest context (ceil(blockSize ${blockSize} / ${k.blockSize ?? 64})) for ${what} but received ${k.topK}`);
    }
  });
  let moe: GPTConfig['moe'] | null = null;
  if (c.moe !== undefined && c.moe !== null) {
    const m = c.moe;
    checkMoEOptions(m, 'GPT config moe');
    if (m.auxLossWeight !== undefined) checkNumber(m.auxLossWeight, 'auxLossWeight of GPT config moe', { min: 0 });
    if (m.everyNth !== undefined) checkInteger(m.everyNth, `everyNth of GPT config moe (a layer in ${nLayer} must have it)`, 1, nLayer);
    moe = { ...m };
  }
  const cfg: ResolvedGPTConfig = { vocabSize, blockSize, nLayer, nHead, nEmbd, mlpHidden, activation, norm, tiedEmbeddings, bias, nKvHead, fusedAttention, attention, positionInit, positionBase, moe };
  if (options.limit !== false) checkParameterCount(countParameters(cfg), 'GPT config');
  return { cfg, kinds };
}

/**
 * The parameters a GPT of `config` (or a preset) would have, from the config alone: nothing is built,
 * so this answers for a config too large to build as well (the config is checked otherwise).
 * GPT.parameterCount() gives the same for a built model.
 */
export function gptParameterCount(config: GPTConfig | GPTPreset): number {
  return countParameters(resolveConfig(config, { limit: false }).cfg);
}

/** The modules' parameter shapes of a checked config, added up. */
function countParameters(cfg: ResolvedGPTConfig): number {
  const { vocabSize: V, blockSize: T, nLayer: L, nHead: H, nKvHead: Hkv, nEmbd: C, mlpHidden: F, bias } = cfg;
  const b = bias ? 1 : 0;
  const norm = cfg.norm === 'layernorm' ? 2 * C : C;
  const qkv = (H + 2 * Hkv) * (C / H);
  const attn = C * qkv + b * qkv + C * C + b * C;
  const mlp = (cfg.activation === 'swiglu' ? 2 : 1) * (C * F + b * F) + F * C + b * C;
  const moeLayers = cfg.moe ? Math.floor(L / or(cfg.moe.everyNth, 1)) : 0;
  // Per MoE layer: the router (C per expert), the experts' matrices (3 with SwiGLU), the shared experts' MLP.
  const m = cfg.moe?.activation === 'swiglu' ? 3 : 2;
  const moe = cfg.moe ? cfg.moe.experts * (C + m * C * F) + m * or(cfg.moe.sharedExperts, 0) * C * F : 0;
  const blocks = L * (2 * norm + attn) + (L - moeLayers) * mlp + moeLayers * moe;
  return V * C + T * C + blocks + norm + (cfg.tiedEmbeddings ? 0 : V * C);
}

function presetOf(name: string): GPTConfig {
  if (!Object.hasOwn(GPT_PRESETS, name)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(GPT_PRESETS).join(', ')} for GPT preset but received '${name}'`);
  return GPT_PRESETS[name as GPTPreset];
}

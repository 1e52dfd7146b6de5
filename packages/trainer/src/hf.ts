/**
 * Hugging Face interop for GPT-2-shaped models: the directory `transformers` loads with
 * GPT2LMHeadModel.from_pretrained (model.safetensors + config.json), written from Deepwell's
 * parameters and read back into them.
 *
 *   Deepwell (nn GPT)                    Hugging Face (GPT2LMHeadModel)
 *   wte.weight [V, C]                    transformer.wte.weight [V, C]
 *   wpe.weight [T, C]                    transformer.wpe.weight [T, C]
 *   blocks.N.ln1.{weight,bias}           transformer.h.N.ln_1.{weight,bias}
 *   blocks.N.attn.qkv.weight [3C, C]     transformer.h.N.attn.c_attn.weight [C, 3C]   (Conv1D: transposed)
 *   blocks.N.attn.proj.weight [C, C]     transformer.h.N.attn.c_proj.weight [C, C]    (transposed)
 *   blocks.N.ln2.{weight,bias}           transformer.h.N.ln_2.{weight,bias}
 *   blocks.N.mlp.fc.weight [H, C]        transformer.h.N.mlp.c_fc.weight [C, H]       (transposed)
 *   blocks.N.mlp.proj.weight [C, H]      transformer.h.N.mlp.c_proj.weight [H, C]     (transposed)
 *   lnf.{weight,bias}                    transformer.ln_f.{weight,bias}
 *   (biases keep their shape; the head is tied to wte, as GPT-2's; an untied head is lm_head.weight)
 *
 * Both put q, k, v in that order along the projection's outputs, head by head, so the fused
 * projection maps whole. Export writes `__metadata__ {"format": "pt"}` (transformers requires it) and
 * config.json with GPT2Config's fields (activation gelu_new: Deepwell's GELU is the tanh one). Import
 * also takes the hub's files without the `transformer.` prefix, F16 and BF16 tensors, and skips the
 * attention-mask buffers older files carry (`attn.bias`, `attn.masked_bias`).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeepwellError, checkInteger, checkKeys, describe, float16Unchecked, invalid } from '@deepwell/core';
import type { GPTConfig } from '@deepwell/nn';
import { asFloat32, checkPath, firstNonFinite, readSafetensors, writeSafetensors, type SafeTensor } from './safetensors.js';

export type Params = Map<string, Float32Array>;

const MASK_BUFFER = /(^|\.)attn\.(bias|masked_bias)$/;

/** The pairs (Deepwell name, HF name, transposed?) of a GPT-2-shaped model of L layers. */
function nameMap(L: number, tied: boolean): [string, string, boolean][] {
  const m: [string, string, boolean][] = [
    ['wte.weight', 'transformer.wte.weight', false],
    ['wpe.weight', 'transformer.wpe.weight', false],
  ];
  for (let i = 0; i < L; i++) {
    const [d, h] = [`blocks.${i}`, `transformer.h.${i}`];
    m.push(
      [`${d}.ln1.weight`, `${h}.ln_1.weight`, false], [`${d}.ln1.bias`, `${h}.ln_1.bias`, false],
      [`${d}.attn.qkv.weight`, `${h}.attn.c_attn.weight`, true], [`${d}.attn.qkv.bias`, `${h}.attn.c_attn.bias`, false],
      [`${d}.attn.proj.weight`, `${h}.attn.c_proj.weight`, true], [`${d}.attn.proj.bias`, `${h}.attn.c_proj.bias`, false],
      [`${d}.ln2.weight`, `${h}.ln_2.weight`, false], [`${d}.ln2.bias`, `${h}.ln_2.bias`, false],
      [`${d}.mlp.fc.weight`, `${h}.mlp.c_fc.weight`, true], [`${d}.mlp.fc.bias`, `${h}.mlp.c_fc.bias`, false],
      [`${d}.mlp.proj.weight`, `${h}.mlp.c_proj.weight`, true], [`${d}.mlp.proj.bias`, `${h}.mlp.c_proj.bias`, false],
    );
  }
  m.push(['lnf.weight', 'transformer.ln_f.weight', false], ['lnf.bias', 'transformer.ln_f.bias', false]);
  if (!tied) m.push(['head.weight', 'lm_head.weight', false]);
  return m;
}

/** [rows, cols] → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/**
 * The metadata key of model.safetensors that records config.json's shape fields (checksummed with
 * the file): an import refuses a config.json that disagrees (damaged or edited: n_head 2 → 4 would
 * load the same weights as another model).
 */
const SHAPE_KEY = 'deepwell.gpt2';
const SHAPE_FIELDS = ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head', 'n_inner', 'tie_word_embeddings'] as const;
const shapeRecord = (cfg: Record<string, unknown>) => Object.fromEntries(SHAPE_FIELDS.map((k) => [k, k === 'n_inner' ? (cfg[k] ?? null) : k === 'tie_word_embeddings' ? cfg[k] !== false : cfg[k]]));

/** The largest padVocabTo (llm.c pads to 64 or 128). */
const MAX_PAD = 65536;
const plainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** NaN or Infinity in a tensor is refused, naming it: such weights would train or sample garbage. */
function checkFinite(v: Float32Array, name: string, where: string): void {
  const i = firstNonFinite(v);
  if (i >= 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected finite values for '${name}' ${where} but element ${i} is ${v[i]}`, { details: { tensor: name, index: i } });
}

/** The checks that make a GPTConfig a GPT-2 shape; the error names the option. */
function checkGpt2Shape(c: GPTConfig): void {
  if (!plainObject(c)) invalid('a GPT config { vocabSize, blockSize, nLayer, nHead, nEmbd, … }', 'the Hugging Face export', c);
  for (const k of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) checkInteger(c[k], `GPT config ${k}`, 1, 2 ** 31 - 1);
  if (c.mlpHidden !== undefined) checkInteger(c.mlpHidden, 'GPT config mlpHidden', 1, 2 ** 31 - 1);
  if (c.nEmbd % c.nHead !== 0) invalid(`an nEmbd divisible by nHead (${c.nHead})`, 'GPT config nEmbd', c.nEmbd);
  const bad = (what: string, v: unknown) => {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT-2-shaped model for Hugging Face GPT-2 but GPT config ${what} is ${JSON.stringify(v)}`);
  };
  if ((c.activation ?? 'gelu') !== 'gelu') bad('activation', c.activation);
  if ((c.norm ?? 'layernorm') !== 'layernorm') bad('norm', c.norm);
  if (c.bias === false) bad('bias', c.bias);
  if (c.nKvHead !== undefined && c.nKvHead !== c.nHead) bad('nKvHead', c.nKvHead);
  if (c.moe) bad('moe', c.moe);
  if (c.attention !== undefined && !Array.isArray(c.attention) && !plainObject(c.attention)) bad('attention', c.attention);
  const kinds = Array.isArray(c.attention) ? c.attention : [c.attention ?? { kind: 'dense' }];
  if (kinds.some((k) => k.kind !== 'dense')) bad('attention', c.attention);
}

/** GPT2Config's fields for a Deepwell GPT config (vocab: the rows written). */
export function gpt2ConfigJson(c: GPTConfig, vocab: number): Record<string, unknown> {
  checkGpt2Shape(c);
  checkInteger(vocab, 'the vocabulary rows written (vocab)', 1, c.vocabSize);
  const hidden = c.mlpHidden ?? 4 * c.nEmbd;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: vocab,
    n_positions: c.blockSize,
    n_ctx: c.blockSize,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: hidden === 4 * c.nEmbd ? null : hidden,
    activation_function: 'gelu_new',
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    scale_attn_weights: true,
    use_cache: true,
    bos_token_id: 50256,
    eos_token_id: 50256,
    tie_word_embeddings: c.tiedEmbeddings ?? true,
    torch_dtype: 'float32',
  };
}

/**
 * Write `dir`/model.safetensors and `dir`/config.json from a GPT's parameters (Deepwell names).
 * `vocabSize` keeps only the first rows of the (padded) embedding: GPT-2's 50257 of 50304, say.
 * Refuses a directory that already holds either file.
 */
export function exportHuggingFace(dir: string, params: Params, config: GPTConfig, options: { vocabSize?: number } = {}): void {
  checkPath(dir, 'the Hugging Face export directory');
  if (!(params instanceof Map)) invalid("a Map of the model's parameters (name → Float32Array)", 'the Hugging Face export', params);
  checkGpt2Shape(config);
  checkKeys(options, ['vocabSize'], 'Hugging Face export');
  // Each layer has 12 parameters: a config with more layers than the map has values is missing some (checked before the name list is built).
  if (config.nLayer > params.size) throw new DeepwellError('INVALID_ARGUMENT', `Expected parameter 'blocks.${params.size}.ln1.weight' for the Hugging Face export (GPT config nLayer ${config.nLayer}) but the model has none`);
  const C = config.nEmbd;
  const H = config.mlpHidden ?? 4 * C;
  const vocab = options.vocabSize === undefined ? config.vocabSize : options.vocabSize;
  if (!Number.isInteger(vocab) || vocab < 1 || vocab > config.vocabSize) throw new DeepwellError('INVALID_ARGUMENT', `Expected vocabSize in [1, ${config.vocabSize}] (the model's rows) for the Hugging Face export but received ${describe(options.vocabSize)}`);
  const tied = config.tiedEmbeddings ?? true;
  const shapeOf = (d: string) => ourShape(d, config.vocabSize, config.blockSize, C, H);
  const map = nameMap(config.nLayer, tied);
  const known = new Set(map.map(([d]) => d));
  const unknown = [...params.keys()].filter((n) => !known.has(n));
  if (unknown.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected only GPT-2's parameters for the Hugging Face export but received ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ', …' : ''}`);
  const tensors = new Map<string, SafeTensor>();
  for (const [d, h, t] of map) {
    const v = params.get(d);
    const shape = shapeOf(d);
    const n = shape.reduce((a, b) => a * b, 1);
    if (!v) throw new DeepwellError('INVALID_ARGUMENT', `Expected parameter '${d}' for the Hugging Face export but the model has none`);
    if (!(v instanceof Float32Array)) invalid('a Float32Array', `parameter '${d}' of the Hugging Face export`, v);
    if (v.length !== n) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${n} values ([${shape.join(', ')}]) for '${d}' of the GPT config but received ${v.length}`);
    checkFinite(v, d, 'in the Hugging Face export');
    let data = t ? transpose(v, shape[0]!, shape[1]!) : v;
    let out = t ? [shape[1]!, shape[0]!] : shape;
    if (d === 'wte.weight' || d === 'head.weight') {
      data = data.subarray(0, vocab * C);
      out = [vocab, C];
    }
    tensors.set(h, { dtype: 'F32', shape: out, data });
  }
  for (const f of ['model.safetensors', 'config.json']) {
    if (existsSync(join(dir, f))) throw new DeepwellError('INVALID_ARGUMENT', `Expected a directory without ${f} for the Hugging Face export but ${dir} holds one (nothing was overwritten)`);
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not make the Hugging Face export directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt', [SHAPE_KEY]: JSON.stringify(shapeRecord(gpt2ConfigJson(config, vocab))) });
  try {
    writeFileSync(join(dir, 'config.json'), `${JSON.stringify(gpt2ConfigJson(config, vocab), null, 2)}\n`);
  } catch (e) {
    rmSync(join(dir, 'model.safetensors'), { force: true }); // not half an export
    throw new DeepwellError('INVALID_ARGUMENT', `Could not write ${join(dir, 'config.json')}: ${(e as Error).message} (nothing was exported)`, { cause: e });
  }
}

/** A tensor of the file as f32 (F32, F16 or BF16). */
function floats(name: string, t: SafeTensor): Float32Array {
  if (t.dtype === 'F32') return asFloat32(name, t);
  if (t.dtype === 'F16' || t.dtype === 'BF16') {
    const bits = new Uint16Array(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice().buffer);
    // Per element of a Uint16Array (16-bit patterns by construction): the conversions without their checks.
    const f = t.dtype === 'F16' ? float16Unchecked.f16BitsToF32 : float16Unchecked.bf16BitsToF32;
    return Float32Array.from(bits, (b) => f(b));
  }
  throw new DeepwellError('INVALID_DTYPE', `Expected F32, F16 or BF16 for Hugging Face tensor '${name}' but received ${t.dtype}`);
}

/**
 * Read a Hugging Face GPT-2 directory (config.json, model.safetensors) into a GPT config and its
 * parameters by Deepwell's names. `padVocabTo` pads the embedding's rows with zeros to a multiple
 * (64: GPT-2's 50257 → 50304, as llm.c trains it).
 */
export function importHuggingFace(dir: string, options: { padVocabTo?: number } = {}): { config: GPTConfig; params: Params } {
  checkPath(dir, 'the Hugging Face directory');
  checkKeys(options, ['padVocabTo'], 'Hugging Face import');
  const pad = options.padVocabTo ?? 1;
  if (!Number.isInteger(pad) || pad < 1 || pad > MAX_PAD) throw new DeepwellError('INVALID_ARGUMENT', `Expected an integer in [1, ${MAX_PAD}] for padVocabTo but received ${describe(options.padVocabTo)}`);
  const cfgPath = join(dir, 'config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read the Hugging Face config ${cfgPath}: ${(e as Error).message}`, { cause: e });
  }
  if (!plainObject(cfg)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a JSON object in ${cfgPath} but received ${describe(cfg)}`);
  if (cfg.model_type !== 'gpt2') throw new DeepwellError('INVALID_ARGUMENT', `Expected model_type 'gpt2' in ${cfgPath} but received ${JSON.stringify(cfg.model_type)}`);
  for (const k of ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head']) {
    if (!Number.isInteger(cfg[k]) || (cfg[k] as number) < 1 || (cfg[k] as number) > 2 ** 31 - 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for ${k} in ${cfgPath} but received ${JSON.stringify(cfg[k])}`);
  }
  // What GPT2Config can change that this model cannot: each would be a silently different model.
  const unlike = (key: string, ok: (v: unknown) => boolean, want: string) => {
    if (cfg[key] !== undefined && !ok(cfg[key])) throw new DeepwellError('INVALID_ARGUMENT', `Expected ${key} ${want} in ${cfgPath} (the GPT-2 Deepwell builds) but received ${JSON.stringify(cfg[key])}`);
  };
  unlike('layer_norm_epsilon', (v) => v === 1e-5, '1e-5');
  unlike('scale_attn_weights', (v) => v === true, 'true');
  unlike('scale_attn_by_inverse_layer_idx', (v) => v === false, 'false');
  unlike('n_inner', (v) => v === null || (Number.isInteger(v) && (v as number) > 0), 'null or a positive integer');
  const act = cfg.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') throw new DeepwellError('INVALID_ARGUMENT', `Expected activation_function gelu_new (the tanh GELU, Deepwell's) in ${cfgPath} but received ${JSON.stringify(act)}`);
  const V = cfg.vocab_size as number;
  const C = cfg.n_embd as number;
  if (C % (cfg.n_head as number) !== 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected n_embd divisible by n_head in ${cfgPath} but received n_embd ${C} and n_head ${cfg.n_head}`);
  const Vp = Math.ceil(V / pad) * pad;
  const tied = cfg.tie_word_embeddings !== false;
  const config: GPTConfig = { vocabSize: Vp, blockSize: cfg.n_positions as number, nLayer: cfg.n_layer as number, nHead: cfg.n_head as number, nEmbd: C, tiedEmbeddings: tied };
  if (cfg.n_inner !== null && cfg.n_inner !== undefined) config.mlpHidden = cfg.n_inner as number;
  const file = readSafetensors(join(dir, 'model.safetensors'));
  // Each layer is 12 tensors: more layers than the file has tensors cannot be there (checked before the name list is built).
  if (config.nLayer > file.tensors.size) throw new DeepwellError('INVALID_ARGUMENT', `Expected tensor 'transformer.h.${file.tensors.size}.ln_1.weight' in ${join(dir, 'model.safetensors')} for a ${config.nLayer}-layer GPT-2 but it has none (${file.tensors.size} tensors)`);
  // The hub's gpt2 files name tensors without 'transformer.'; save_pretrained's with it.
  const byName = new Map<string, SafeTensor>();
  for (const [name, t] of file.tensors) {
    if (MASK_BUFFER.test(name)) continue;
    byName.set(name.startsWith('transformer.') || name === 'lm_head.weight' ? name : `transformer.${name}`, t);
  }
  const params: Params = new Map();
  const map = nameMap(config.nLayer, tied);
  const H = config.mlpHidden ?? 4 * C;
  for (const [d, h, t] of map) {
    const src = byName.get(h);
    if (!src) throw new DeepwellError('INVALID_ARGUMENT', `Expected tensor '${h}' in ${join(dir, 'model.safetensors')} for a ${config.nLayer}-layer GPT-2 but it has none`);
    byName.delete(h);
    let v = floats(h, src);
    const ours = ourShape(d, V, config.blockSize, C, H);
    const want = t ? [ours[1]!, ours[0]!] : ours;
    if (src.shape.length !== want.length || src.shape.some((s, i) => s !== want[i])) {
      throw new DeepwellError('SHAPE_MISMATCH', `Expected [${want.join(', ')}] for '${h}' of ${cfgPath}'s config but the file has [${src.shape.join(', ')}]`);
    }
    checkFinite(v, h, `in ${join(dir, 'model.safetensors')}`);
    if (t) v = transpose(v, want[0]!, want[1]!);
    if ((d === 'wte.weight' || d === 'head.weight') && Vp > V) {
      const padded = new Float32Array(Vp * C);
      padded.set(v);
      v = padded;
    }
    params.set(d, v);
  }
  // lm_head.weight tied to wte is the same values (a file may carry it anyway).
  const head = byName.get('lm_head.weight');
  if (head && tied) byName.delete('lm_head.weight');
  if (byName.size) throw new DeepwellError('INVALID_ARGUMENT', `Expected only GPT-2's tensors in ${join(dir, 'model.safetensors')} but it also has ${[...byName.keys()].slice(0, 3).join(', ')}`);
  // What the tensors' shapes cannot show (n_head), from the record our export keeps.
  const recorded = file.metadata[SHAPE_KEY];
  if (recorded !== undefined) {
    const mine = shapeRecord(cfg);
    let theirs: Record<string, unknown> | null = null;
    try {
      theirs = JSON.parse(recorded) as Record<string, unknown>;
    } catch {
      theirs = null;
    }
    const differs = SHAPE_FIELDS.filter((k) => !plainObject(theirs) || theirs[k] !== mine[k]);
    if (differs.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected ${cfgPath} to agree with the shape its model.safetensors records but ${differs.map((k) => `${k} is ${JSON.stringify(mine[k])} there and ${JSON.stringify(plainObject(theirs) ? theirs[k] : null)} in the record`).join(', ')} (a damaged or edited config.json)`);
  }
  return { config, params };
}

/** The shape of Deepwell's parameter `d` in a GPT-2 of V rows, T positions, width C and MLP width H. */
function ourShape(d: string, V: number, T: number, C: number, H: number): number[] {
  if (d === 'wte.weight' || d === 'head.weight') return [V, C];
  if (d === 'wpe.weight') return [T, C];
  const leaf = d.replace(/^blocks\.\d+\./, '');
  const table: Record<string, number[]> = {
    'ln1.weight': [C], 'ln1.bias': [C], 'ln2.weight': [C], 'ln2.bias': [C], 'lnf.weight': [C], 'lnf.bias': [C],
    'attn.qkv.weight': [3 * C, C], 'attn.qkv.bias': [3 * C], 'attn.proj.weight': [C, C], 'attn.proj.bias': [C],
    'mlp.fc.weight': [H, C], 'mlp.fc.bias': [H], 'mlp.proj.weight': [C, H], 'mlp.proj.bias': [C],
  };
  return table[leaf]!;
}

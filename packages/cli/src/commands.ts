/**
 * The deepwell subcommands. Each takes its parsed arguments and an output sink, and throws a
 * DeepwellError (printed by main with the command's name) for bad input.
 */
import { existsSync, readdirSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { DeepwellError, parseDevice } from '@deepwell/core';
import { autocast, capture, dryrun, trainingStep } from '@deepwell/ir';
import { GPT, GPT_PRESETS, Generator, checkSampleOptions, type GPTConfig } from '@deepwell/nn';
import {
  TokenLoader, Trainer, asFloat32, exportHuggingFace, importHuggingFace, loadTokenizer, prepareText, readSafetensors, resolveStart,
  checkDevice, tokenizerFromRecord, writeSafetensors, CHECKPOINT_FORMAT, type Tokenizer, type TokenizerRecord, type TrainerDevice,
} from '@deepwell/trainer';
import { probe } from '@deepwell/probe';
import { loadRunConfig, type RunConfig } from './config.js';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const duration = (ms: number) => (ms < 1e4 ? `${ms.toFixed(1)} ms` : ms < 6e5 ? `${(ms / 1e3).toFixed(1)} s` : `${(ms / 6e4).toFixed(1)} min`);

/** The shards and tokenizer of a prepared directory. */
function dataOf(dir: string): { train: string[]; val: string[]; tokenizer: Tokenizer } {
  if (!existsSync(dir)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a directory made by deepwell prepare for data but ${dir} does not exist`);
  let files: string[];
  try {
    files = readdirSync(dir).sort();
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected a directory made by deepwell prepare for data but could not list ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const train = files.filter((f) => /^train_\d+\.bin$/.test(f)).map((f) => join(dir, f));
  const val = files.filter((f) => /^val_\d+\.bin$/.test(f)).map((f) => join(dir, f));
  if (!train.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected train_*.bin shards in ${dir} (deepwell prepare makes them) but found none`);
  return { train, val, tokenizer: loadTokenizer(join(dir, 'tokenizer.json')) };
}

function modelConfig(model: RunConfig['model']): GPTConfig {
  if (typeof model === 'string') {
    if (!Object.prototype.hasOwnProperty.call(GPT_PRESETS, model)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${Object.keys(GPT_PRESETS).join(', ')} for the model preset but received '${model}'`);
    return GPT_PRESETS[model as keyof typeof GPT_PRESETS];
  }
  return model;
}

/**
 * A number flag's text as a number: decimal only (Number() would take '', ' ', '0x10' and 'Infinity'),
 * an integer where `integer`, within [min, max]; an error naming the flag otherwise.
 */
export function numberFlag(text: string | undefined, flag: string, o: { integer?: boolean; min?: number; max?: number; above?: number } = {}): number | undefined {
  if (text === undefined) return undefined;
  const pattern = o.integer ? /^[-+]?\d+$/ : /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
  const x = pattern.test(text.trim()) ? Number(text) : NaN;
  const ok = Number.isFinite(x) && (!o.integer || Number.isSafeInteger(x)) && (o.min === undefined || x >= o.min) && (o.max === undefined || x <= o.max) && (o.above === undefined || x > o.above);
  if (!ok) {
    const range = [o.min !== undefined ? `>= ${o.min}` : '', o.above !== undefined ? `> ${o.above}` : '', o.max !== undefined ? `<= ${o.max}` : ''].filter(Boolean).join(' and ');
    throw new DeepwellError('INVALID_ARGUMENT', `Expected ${o.integer ? 'an integer' : 'a number'}${range ? ` ${range}` : ''} for --${flag} but received '${text}'`);
  }
  return x;
}

export function prepare(inputs: string[], o: { tokenizer?: string; out?: string; valFraction?: string; shardTokens?: string }, io: Io): void {
  if (!inputs.length) throw new DeepwellError('INVALID_ARGUMENT', 'Expected one or more text files but received none');
  if (!o.out) throw new DeepwellError('INVALID_ARGUMENT', 'Expected --out <dir> for the shards but received none');
  if (!o.tokenizer) throw new DeepwellError('INVALID_ARGUMENT', "Expected --tokenizer gpt2|char but received none");
  let shown = -1;
  const r = prepareText({
    inputs,
    out: o.out,
    tokenizer: o.tokenizer as 'gpt2',
    valFraction: numberFlag(o.valFraction, 'val-fraction', { min: 0, max: 0.5 }),
    shardTokens: numberFlag(o.shardTokens, 'shard-tokens', { integer: true, min: 1, max: 2 ** 31 - 1 }),
    onProgress: (p) => {
      const pct = Math.floor((100 * p.bytes) / p.totalBytes / 10) * 10;
      if (pct > shown) {
        shown = pct;
        io.err(`${p.pass === 'characters' ? 'reading characters' : 'tokenizing'}: ${pct}% of ${(p.totalBytes / 1e6).toFixed(1)} MB${p.pass === 'tokens' ? `, ${p.tokens.toLocaleString('en')} tokens` : ''}`);
      }
    },
  });
  for (const w of r.warnings) io.err(`warning: ${w}`);
  io.out(`${r.tokenizer.name} tokenizer (${r.tokenizer.vocabSize} tokens) → ${r.tokenizerPath}`);
  io.out(`train: ${r.tokens.train.toLocaleString('en')} tokens in ${r.train.length} shard(s); val: ${r.tokens.val.toLocaleString('en')} tokens in ${r.val.length} shard(s) → ${o.out}`);
}

export function train(configPath: string, overrides: [string, string][], io: Io): void {
  const c = loadRunConfig(configPath, overrides);
  // The Trainer's device check (a GPU that is here), before any data is read; the Trainer asks again.
  if (c.device !== undefined) checkDevice(c.device, () => 'cpu');
  const model = modelConfig(c.model);
  const gpt = new GPT(model); // checks the config (GPT's own errors name the key)
  checkRunSample(c, gpt);
  const data = dataOf(c.data);
  if (gpt.config.vocabSize < data.tokenizer.vocabSize) {
    throw new DeepwellError('INVALID_ARGUMENT', `Expected model.vocabSize of at least the tokenizer's ${data.tokenizer.vocabSize} tokens (${join(c.data, 'tokenizer.json')}) but received ${gpt.config.vocabSize}`);
  }
  const checkpoint = c.checkpoint ?? { dir: join(c.data, '..', 'checkpoints'), every: Math.max(1, Math.ceil(c.steps / 10)) };
  // The Trainer decides what a run may do with the folder (a new run refuses one that holds
  // checkpoints; resume needs some, unless 'auto'); asked here too so a refusal comes before the
  // model is built. fit() asks again.
  resolveStart(checkpoint.dir, c.resume ?? false);
  const loader = (shards: string[], shuffle: boolean) => new TokenLoader({ shards, batchSize: c.batchSize, seqLen: c.seqLen, seed: c.seed ?? 0, shuffle, vocab: data.tokenizer.vocabSize });
  const evaluating = Boolean(c.evalEvery && data.val.length);
  const tok = data.tokenizer;
  const { prompt = '', ...sampling } = c.sample ?? {};
  const sampleIds = prompt ? tok.encode(prompt) : [tok.eot ?? 0];
  const trainer = new Trainer({
    model: gpt,
    train: loader(data.train, true),
    ...(evaluating ? { val: loader(data.val, false), evalEvery: c.evalEvery, evalBatches: c.evalBatches } : {}),
    ...(evaluating && c.sample ? { sample: { ...sampling, prompt: sampleIds, vocab: tok.vocabSize, decode: (ids: number[]) => tok.decode(ids) } } : {}),
    ...(c.device ? { device: c.device as TrainerDevice } : {}),
    ...(c.precision ? { precision: c.precision } : {}),
    optimizer: c.optimizer,
    schedule: c.schedule,
    steps: c.steps,
    clipGradNorm: c.clipGradNorm,
    accumulate: c.accumulate,
    checkpoint,
    seed: c.seed,
    log: { ...c.log, svg: join(checkpoint.dir, 'loss.svg') },
    // What sample and export need from a checkpoint: the model and the tokenizer.
    config: { model, tokenizer: data.tokenizer.record() },
  });
  if (c.evalEvery && !data.val.length) io.err(`warning: evalEvery is set but ${c.data} has no val_*.bin shards: no evaluation`);
  if (c.sample && !evaluating) io.err('warning: sample is set but there is no evaluation (evalEvery and val shards): no samples');
  const r = trainer.fit({ resume: c.resume ?? false, ...(c.extend ? { extend: true } : {}) });
  io.out(`trained ${r.steps} steps: final loss ${r.losses.at(-1)?.loss.toFixed(4)}${r.evals.length ? `, eval ${r.evals.at(-1)!.loss.toFixed(4)}` : ''}; ${Math.round(r.tokensPerSecond).toLocaleString('en')} tokens/s`);
  io.out(`checkpoint: ${r.checkpoint}`);
}

/** A checkpoint's model config, tokenizer and parameters (the optimizer state is left out). */
export function readModel(path: string): { model: GPTConfig; tokenizer: Tokenizer; weights: Map<string, Float32Array> } {
  const file = readSafetensors(path);
  if (file.metadata.format !== CHECKPOINT_FORMAT) throw new DeepwellError('INVALID_ARGUMENT', `${path} is not a Deepwell checkpoint`);
  let config: { model?: GPTConfig; tokenizer?: TokenizerRecord } | null;
  try {
    config = JSON.parse(file.metadata.config ?? 'null');
  } catch {
    config = null;
  }
  if (!config?.model || !config.tokenizer) {
    throw new DeepwellError('INVALID_ARGUMENT', `${path} does not record its model and tokenizer (checkpoints of deepwell train and deepwell import do; a Trainer's needs config: { model, tokenizer })`);
  }
  const tokenizer = tokenizerFromRecord(config.tokenizer, path);
  // The model's parameters from the file (the optimizer state is left out), each checked against the config.
  const weights = new Map<string, Float32Array>();
  for (const [name, p] of new GPT(config.model).namedParameters()) {
    const t = file.tensors.get(name);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (!t) throw new DeepwellError('INVALID_ARGUMENT', `${path} has no '${name}', which its model config needs`);
    if (t.dtype !== 'F32') throw new DeepwellError('INVALID_DTYPE', `Expected F32 for '${name}' in ${path} but received ${t.dtype}`);
    const w = asFloat32(name, t);
    if (w.length !== n) throw new DeepwellError('SHAPE_MISMATCH', `${path}: '${name}' has ${w.length} values but its model config needs [${p.shape.join(', ')}]`);
    weights.set(name, w);
  }
  return { model: config.model, tokenizer, weights };
}

export function sample(path: string, o: { prompt?: string; maxTokens?: string; temperature?: string; topK?: string; topP?: string; seed?: string; device?: string; precision?: string; cache?: boolean }, io: Io): void {
  const { model, tokenizer, weights } = readModel(path);
  // No prompt: GPT-2's <|endoftext|>, or a newline (token 0 when the text had none) for chars.
  const prompt = o.prompt !== undefined ? tokenizer.encode(o.prompt) : [];
  const record = tokenizer.record();
  const newline = record.name === 'char' && record.chars.includes('\n') ? tokenizer.encode('\n') : [0];
  const ids = prompt.length ? prompt : tokenizer.eot !== null ? [tokenizer.eot] : newline;
  // Every flag checked before the weights go to the device.
  const maxTokens = numberFlag(o.maxTokens, 'max-tokens', { integer: true, min: 1, max: 65536 }) ?? 100;
  const temperature = numberFlag(o.temperature, 'temperature', { min: 0 });
  const topK = numberFlag(o.topK, 'top-k', { integer: true, min: 1 });
  const topP = numberFlag(o.topP, 'top-p', { above: 0, max: 1 });
  const seed = numberFlag(o.seed, 'seed', { integer: true, min: 0, max: 2 ** 32 - 1 }) ?? 0;
  if (o.precision !== undefined && o.precision !== 'f32' && o.precision !== 'bf16') throw new DeepwellError('INVALID_ARGUMENT', `Expected f32 or bf16 for --precision but received '${o.precision}'`);
  const g = new Generator(new GPT(model), weights, { device: o.device ?? 'cpu', ...(o.precision ? { precision: o.precision } : {}), ...(o.cache === false ? { cache: false } : {}) });
  try {
    const out = g.generate(ids, {
      maxTokens,
      temperature,
      topK,
      topP,
      seed,
      vocab: Math.min(model.vocabSize, tokenizer.vocabSize), // never a padding id
      ...(tokenizer.eot !== null ? { stop: tokenizer.eot } : {}),
    });
    io.out(tokenizer.decode([...prompt, ...out]));
  } finally {
    g.dispose();
  }
}

export function exportHf(path: string, dir: string, o: { vocabSize?: string }, io: Io): void {
  const { model, tokenizer, weights } = readModel(path);
  const vocabSize = numberFlag(o.vocabSize, 'vocab-size', { integer: true, min: 1, max: model.vocabSize }) ?? Math.min(model.vocabSize, tokenizer.vocabSize);
  exportHuggingFace(dir, weights, model, { vocabSize });
  io.out(`wrote ${join(dir, 'model.safetensors')} and ${join(dir, 'config.json')} (vocab ${vocabSize})`);
}

export function importHf(dir: string, path: string, o: { padVocab?: string }, io: Io): void {
  if (existsSync(path)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a new checkpoint path for the import but ${path} exists (nothing was overwritten)`);
  const padVocabTo = numberFlag(o.padVocab, 'pad-vocab', { integer: true, min: 1, max: 65536 }) ?? 64;
  const { config, params } = importHuggingFace(dir, { padVocabTo });
  const tokenizer = tokenizerFromRecord({ format: 'deepwell-tokenizer', version: 1, name: 'gpt2', vocabSize: 50257, eot: 50256 });
  const shapes = new Map(new GPT(config).namedParameters().map(([n, p]) => [n, [...p.shape]]));
  const tensors = new Map([...params].map(([n, v]) => [n, { dtype: 'F32' as const, shape: shapes.get(n)!, data: v }]));
  writeSafetensors(path, tensors, { format: CHECKPOINT_FORMAT, version: '1', step: '0', loader: 'null', seed: '0', config: JSON.stringify({ model: config, tokenizer: tokenizer.record() }), extra: 'null' });
  io.out(`wrote ${path}: a ${config.nLayer}-layer GPT-2 of width ${config.nEmbd} (vocab ${config.vocabSize}), its weights only`);
}

/** Memory, FLOPs and time per step of a run config, and the largest batch that fits (in the CPU's memory, or the GPU's free memory). */
/**
 * A run config's sample options by nn's check (the Trainer's too), before any data is read: train
 * and dryrun refuse the same configs. The prompt is text until the tokenizer is read.
 */
function checkRunSample(c: RunConfig, gpt: GPT): void {
  if (!c.sample) return;
  const { prompt: _prompt, ...sampling } = c.sample;
  checkSampleOptions({ ...sampling, maxTokens: sampling.maxTokens ?? 32 }, { vocabSize: gpt.config.vocabSize, blockSize: gpt.config.blockSize, prefix: 'sample.' });
}

export function dryrunConfig(configPath: string, overrides: [string, string][], io: Io): void {
  const c = loadRunConfig(configPath, overrides);
  const model = modelConfig(c.model);
  checkRunSample(c, new GPT(model)); // checks the config before any capture
  const device = parseDevice(c.device ?? 'cpu');
  const stepOf = (B: number) => {
    const f = capture(new GPT(model), { tokens: { shape: [B, c.seqLen], dtype: 'i32' }, targets: { shape: [B, c.seqLen], dtype: 'i32' } });
    for (const k of Object.keys(f.outputs)) if (k !== 'loss') delete f.outputs[k];
    const precision = c.precision ?? (device === 'cpu' ? 'f32' : 'bf16');
    return dryrun(trainingStep(precision === 'bf16' ? autocast(f) : f, { clipGradNorm: c.clipGradNorm }), { device });
  };
  const r = stepOf(c.batchSize);
  io.out(`model: ${r.parameters.toLocaleString('en')} parameters; batch ${c.batchSize} × ${c.seqLen} on ${device}`);
  io.out(`memory per step: ${gib(r.totalBytes)} (parameters ${gib(r.parameterBytes)}, optimizer state ${gib(r.optimizerStateBytes)}, arena ${gib(r.arenaBytes)})`);
  io.out(`compute: ${(r.flopsPerStep / 1e12).toFixed(3)} TFLOP per step; estimate ${duration(r.estimate.ms)} per step (${r.estimate.bound}-bound, ${r.estimate.source})`);
  const gpu = device === 'cpu' ? null : probe().gpus.find((g) => g.index === Number(device.split(':')[1] ?? 0));
  const limit = device === 'cpu' ? totalmem() : gpu?.memoryFreeBytes ?? null;
  if (limit === null) {
    io.out(`largest batch: not estimated (no ${device} here to ask for its free memory)`);
    return;
  }
  // The step's bytes are affine in the batch (parameters and state fixed, activations per sample):
  // two dryruns give the line, a third checks the batch it predicts (stepping down while over).
  const [t1, t2] = [stepOf(1).totalBytes, stepOf(2).totalBytes];
  if (t1 > limit) {
    io.out(`not even batch 1 fits in ${gib(limit)}`);
    return;
  }
  const per = Math.max(1, t2 - t1);
  let best = Math.max(1, Math.floor((limit - (t1 - per)) / per));
  for (let tries = 0; tries < 8 && best > 1 && stepOf(best).totalBytes > limit; tries++) best = Math.max(1, Math.floor(best * 0.95));
  io.out(`largest batch that fits in ${gib(limit)}: about ${best} (the step's bytes are ${gib(t1 - per)} + ${gib(per)} per sample)`);
}

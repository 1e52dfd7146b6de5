/**
 * The run config of `deepwell train` (a JSON file, then `--key value` overrides with dotted keys),
 * checked key by key: an unknown or mistyped key is an error that names it.
 *
 *   {
 *     "model": { "vocabSize": 65, "blockSize": 64, "nLayer": 2, "nHead": 2, "nEmbd": 64 } | "tiny",
 *     "data": "data/shakespeare",          // prepare's output: train_*.bin, val_*.bin, tokenizer.json
 *     "batchSize": 8, "seqLen": 64, "steps": 200,
 *     "optimizer": { "lr": 3e-3 }, "schedule": { "warmup": 20 }, "clipGradNorm": 1,
 *     "evalEvery": 50, "evalBatches": 4, "seed": 1, "device": "cpu", "precision": "f32",
 *     "checkpoint": { "dir": "runs/shakespeare", "every": 50, "keep": 3 }, "resume": false,   // or true, "auto"
 *     "extend": false,                     // with resume: keep the checkpoint's schedule when steps etc. changed
 *     "log": { "jsonl": "runs/shakespeare/log.jsonl", "every": 10 },
 *     "sample": { "prompt": "ROMEO:", "maxTokens": 64 }    // printed at each evaluation
 *   }
 * Relative paths are relative to the config file.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { DeepwellError, editDistance, invalid, parseDevice } from '@deepwell/core';
import type { GPTConfig, GPTPreset } from '@deepwell/nn';
import { checkTrainerSettings, type TrainerSettings } from '@deepwell/trainer';

export interface RunConfig {
  model: GPTConfig | GPTPreset;
  data: string;
  batchSize: number;
  seqLen: number;
  steps: number;
  optimizer?: { lr?: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number };
  schedule?: { warmup?: number; minLr?: number };
  clipGradNorm?: number;
  accumulate?: number;
  evalEvery?: number;
  evalBatches?: number;
  seed?: number;
  device?: string;
  precision?: 'bf16' | 'f32';
  checkpoint?: { dir: string; every: number; keep?: number };
  /** Continue the checkpoint directory's run (true), or do so only when it holds checkpoints ('auto'). Default false: a new run. */
  resume?: boolean | 'auto';
  /** With resume: keep the checkpoint's learning-rate schedule when this config's differs (e.g. more steps); past its end, its minLr. */
  extend?: boolean;
  log?: { jsonl?: string; every?: number };
  /** At each evaluation, continue this text and print it (nanoGPT's samples). */
  sample?: { prompt?: string; maxTokens?: number; temperature?: number; topK?: number; seed?: number };
}

/**
 * A value's JSON kind: 'int' an integer, 'number' a finite number, each within [min, max] when
 * given. The values the Trainer takes (steps, optimizer, schedule, …) are checked here for their
 * kind only: their ranges are the Trainer's own check (checkTrainerSettings), which loadRunConfig
 * runs on them, so a run config is refused exactly where a Trainer would be.
 */
type Kind = 'object' | 'int' | 'number' | 'string' | 'boolean' | 'model' | 'resume' | 'precision' | 'device';
type Spec = { kind: Kind; min?: number; max?: number };
/** Integers up to int32 unless said (a count of steps, a size): the Trainer and the loader take no more. */
const int = (min?: number, max = min === undefined ? undefined : 2 ** 31 - 1): Spec => ({ kind: 'int', min, max });
const num = (min?: number): Spec => ({ kind: 'number', min });
const KEYS: Record<string, Spec> = {
  model: { kind: 'model' }, data: { kind: 'string' }, batchSize: int(1, 2 ** 20), seqLen: int(1, 2 ** 20), steps: int(1), optimizer: { kind: 'object' }, schedule: { kind: 'object' },
  clipGradNorm: num(), accumulate: int(), evalEvery: int(), evalBatches: int(), seed: int(), device: { kind: 'device' },
  precision: { kind: 'precision' }, checkpoint: { kind: 'object' }, resume: { kind: 'resume' }, extend: { kind: 'boolean' }, log: { kind: 'object' }, sample: { kind: 'object' },
};
const NESTED: Record<string, Record<string, Spec>> = {
  optimizer: { lr: num(), beta1: num(), beta2: num(), eps: num(), weightDecay: num() },
  schedule: { warmup: int(), minLr: num() },
  checkpoint: { dir: { kind: 'string' }, every: int(), keep: int() },
  log: { jsonl: { kind: 'string' }, every: int() },
  sample: { prompt: { kind: 'string' }, maxTokens: int(1, 65536), temperature: num(), topK: int(), seed: int() }, // ranges: nn's checkSampleOptions, in train
};
/** The run config's keys that are the Trainer's settings, checked by the Trainer's check. */
const TRAINER_SETTINGS = ['steps', 'optimizer', 'schedule', 'clipGradNorm', 'accumulate', 'evalEvery', 'evalBatches', 'seed', 'precision', 'checkpoint', 'log'] as const;
/** Other trainers' names for keys (nanoGPT's, Hugging Face's). */
const ALIASES: Record<string, string> = {
  lr: 'optimizer.lr', learningRate: 'optimizer.lr', learning_rate: 'optimizer.lr', weightDecay: 'optimizer.weightDecay', weight_decay: 'optimizer.weightDecay',
  warmup: 'schedule.warmup', warmupSteps: 'schedule.warmup', warmup_iters: 'schedule.warmup', minLr: 'schedule.minLr', min_lr: 'schedule.minLr',
  maxSteps: 'steps', max_steps: 'steps', max_iters: 'steps', evalInterval: 'evalEvery', eval_interval: 'evalEvery', eval_iters: 'evalBatches',
  gradClip: 'clipGradNorm', grad_clip: 'clipGradNorm', gradient_accumulation_steps: 'accumulate', outDir: 'checkpoint.dir', out_dir: 'checkpoint.dir', dtype: 'precision',
};
/** Keys that must be there when their object is. */
const REQUIRED: Record<string, string[]> = { checkpoint: ['dir', 'every'] };
const PRECISIONS = ['bf16', 'f32'];
/** A part of a dotted override key: a plain name (never __proto__ or constructor, which would reach Object's prototype). */
const NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

function bad(source: string, msg: string): never {
  throw new DeepwellError('INVALID_ARGUMENT', `${source}: ${msg}`);
}

/** " (did you mean x?)" for the known names near `key`, or ''. */
function suggest(key: string, known: string[]): string {
  const lower = key.toLowerCase();
  const near = known.filter((k) => editDistance(k.toLowerCase(), lower) <= (key.length <= 3 ? 1 : 2));
  return near.length ? ` (did you mean ${near.join(' or ')}?)` : '';
}

/** A value given on the command line: JSON when it parses (numbers, true, {…}), else the string. */
function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** `value` against its spec; `name` is the key as the config writes it ('optimizer.lr'). */
function checkValue(source: string, name: string, spec: Spec, value: unknown): void {
  const got = JSON.stringify(value) ?? String(value);
  const { kind, min, max } = spec;
  if (kind === 'int' || kind === 'number') {
    if (typeof value !== 'number') bad(source, `expected a number for '${name}' but received ${got}`);
    const ok = Number.isFinite(value) && (kind === 'number' || Number.isInteger(value)) && (min === undefined || value >= min) && (max === undefined || value <= max);
    const range = max !== undefined ? ` in [${min}, ${max}]` : min !== undefined ? ` >= ${min}` : '';
    if (!ok) bad(source, `expected ${kind === 'int' ? 'an integer' : 'a finite number'}${range} for '${name}' but received ${got}`);
  } else if (kind === 'precision') {
    if (!PRECISIONS.includes(value as string)) bad(source, `expected one of ${PRECISIONS.map((p) => `"${p}"`).join(', ')} for '${name}' but received ${got}`);
  } else if (kind === 'device') {
    try {
      parseDevice(value); // the devices' one parser (the Trainer's and Tensor.from's)
    } catch {
      bad(source, `expected 'cpu' or 'cuda:N' for '${name}' but received ${got}`);
    }
  } else if (kind === 'resume') {
    if (typeof value !== 'boolean' && value !== 'auto') bad(source, `expected true, false or "auto" for '${name}' but received ${got}`);
  } else if (kind === 'model') {
    if (typeof value !== 'string' && (value === null || typeof value !== 'object' || Array.isArray(value))) bad(source, `expected a GPT config object or a preset name for '${name}' but received ${got}`);
  } else if (kind === 'object') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) bad(source, `expected an object for '${name}' but received ${got}`);
    const spec = NESTED[name]!;
    for (const [k, v] of Object.entries(value as object)) {
      if (!has(spec, k)) bad(source, `unknown key '${name}.${k}' (expected one of ${Object.keys(spec).join(', ')})${suggest(k, Object.keys(spec))}`);
      checkValue(source, `${name}.${k}`, spec[k]!, v);
    }
    for (const k of REQUIRED[name] ?? []) if ((value as Record<string, unknown>)[k] === undefined) bad(source, `missing '${name}.${k}'`);
  } else if (typeof value !== kind || (kind === 'string' && value === '')) {
    bad(source, `expected a ${kind === 'string' ? 'non-empty string' : kind} for '${name}' but received ${got}`);
  }
}

/** Read, override and check a run config. `overrides`: [dotted key, value] pairs from the command line. */
export function loadRunConfig(path: string, overrides: [string, string][] = []): RunConfig {
  if (typeof path !== 'string' || path.length === 0) invalid('a run config path (a non-empty string)', 'loadRunConfig path', path);
  if (!Array.isArray(overrides) || overrides.some((o) => !Array.isArray(o) || o.length !== 2 || typeof o[0] !== 'string' || typeof o[1] !== 'string')) {
    invalid('an array of [key, value] string pairs', 'loadRunConfig overrides', overrides);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read the run config ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad(path, 'expected a JSON object');
  for (const [key, value] of overrides) {
    const parts = key.split('.');
    const top = parts[0]!;
    if (parts.some((p) => !NAME.test(p))) bad(`--${key}`, 'expected a config key (names joined by dots, as optimizer.lr)');
    if (parts.length > 2) bad(`--${key}`, 'expected a key at most one level deep (as optimizer.lr)');
    // Own keys only: a key never reaches what every object inherits (constructor, toString).
    let at = raw as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) {
      if (!has(at, p)) at[p] = {};
      if (at[p] === null || typeof at[p] !== 'object') bad(`--${key}`, `'${p}' is not an object in the config`);
      at = at[p] as Record<string, unknown>;
    }
    // A string-valued key keeps the text as given (--checkpoint.dir 2024 is a directory, not a number).
    const leaf = parts.at(-1)!;
    const spec = parts.length === 1 ? (has(KEYS, leaf) ? KEYS[leaf] : undefined) : has(NESTED, top) && has(NESTED[top]!, leaf) ? NESTED[top]![leaf] : undefined;
    const kind = spec?.kind;
    at[leaf] = kind === 'string' || kind === 'device' || (kind === 'model' && !value.trim().startsWith('{')) ? value : parseValue(value);
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!has(KEYS, key)) bad(path, `unknown key '${key}' (expected one of ${Object.keys(KEYS).join(', ')})${ALIASES[key] ? ` (did you mean ${ALIASES[key]}?)` : suggest(key, Object.keys(KEYS))}`);
    checkValue(path, key, KEYS[key]!, value);
  }
  for (const key of ['model', 'data', 'batchSize', 'seqLen', 'steps']) if (raw[key] === undefined) bad(path, `missing '${key}'`);
  const settings = Object.fromEntries(TRAINER_SETTINGS.filter((k) => raw[k] !== undefined).map((k) => [k, raw[k]])) as unknown as TrainerSettings;
  try {
    checkTrainerSettings(settings);
  } catch (e) {
    if (!DeepwellError.is(e)) throw e;
    throw new DeepwellError(e.code, `${path}: ${e.message}`, { cause: e, details: e.details });
  }
  const c = raw as unknown as RunConfig;
  const base = dirname(resolve(path));
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  c.data = rel(c.data);
  if (c.checkpoint) c.checkpoint.dir = rel(c.checkpoint.dir);
  if (c.log?.jsonl) c.log.jsonl = rel(c.log.jsonl);
  return c;
}

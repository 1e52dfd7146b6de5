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
import { DeepwellError } from '@deepwell/core';
import type { GPTConfig, GPTPreset } from '@deepwell/nn';

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

const KEYS: Record<string, 'object' | 'number' | 'string' | 'boolean' | 'model' | 'resume'> = {
  model: 'model', data: 'string', batchSize: 'number', seqLen: 'number', steps: 'number', optimizer: 'object', schedule: 'object',
  clipGradNorm: 'number', accumulate: 'number', evalEvery: 'number', evalBatches: 'number', seed: 'number', device: 'string',
  precision: 'string', checkpoint: 'object', resume: 'resume', extend: 'boolean', log: 'object', sample: 'object',
};
type Kind = 'number' | 'string';
const NESTED: Record<string, Record<string, Kind>> = {
  optimizer: { lr: 'number', beta1: 'number', beta2: 'number', eps: 'number', weightDecay: 'number' },
  schedule: { warmup: 'number', minLr: 'number' },
  checkpoint: { dir: 'string', every: 'number', keep: 'number' },
  log: { jsonl: 'string', every: 'number' },
  sample: { prompt: 'string', maxTokens: 'number', temperature: 'number', topK: 'number', seed: 'number' },
};
/** Keys that must be there when their object is. */
const REQUIRED: Record<string, string[]> = { checkpoint: ['dir', 'every'] };

function bad(source: string, msg: string): never {
  throw new DeepwellError('INVALID_ARGUMENT', `${source}: ${msg}`);
}

/** A value given on the command line: JSON when it parses (numbers, true, {…}), else the string. */
function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** Read, override and check a run config. `overrides`: [dotted key, value] pairs from the command line. */
export function loadRunConfig(path: string, overrides: [string, string][] = []): RunConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new DeepwellError('INVALID_ARGUMENT', `Could not read the run config ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad(path, 'expected a JSON object');
  for (const [key, value] of overrides) {
    const parts = key.split('.');
    let at = raw as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) {
      if (at[p] === undefined) at[p] = {};
      if (at[p] === null || typeof at[p] !== 'object') bad(`--${key}`, `'${p}' is not an object in the config`);
      at = at[p] as Record<string, unknown>;
    }
    // A string-valued key keeps the text as given (--checkpoint.dir 2024 is a directory, not a number).
    const leaf = parts.at(-1)!;
    const kind = parts.length === 1 ? KEYS[leaf] : NESTED[parts[0]!]?.[leaf];
    at[leaf] = kind === 'string' || (kind === 'model' && !value.trim().startsWith('{')) ? value : parseValue(value);
  }
  for (const [key, value] of Object.entries(raw)) {
    const kind = KEYS[key];
    if (!kind) bad(path, `unknown key '${key}' (expected one of ${Object.keys(KEYS).join(', ')})`);
    if (kind === 'resume') {
      if (typeof value !== 'boolean' && value !== 'auto') bad(path, `expected true, false or "auto" for 'resume' but received ${JSON.stringify(value)}`);
      continue;
    }
    if (kind === 'model') {
      if (typeof value !== 'string' && (value === null || typeof value !== 'object')) bad(path, `expected a GPT config object or a preset name for 'model' but received ${JSON.stringify(value)}`);
      continue;
    }
    if (kind === 'object') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) bad(path, `expected an object for '${key}' but received ${JSON.stringify(value)}`);
      const spec = NESTED[key]!;
      for (const [k, v] of Object.entries(value as object)) {
        if (!spec[k]) bad(path, `unknown key '${key}.${k}' (expected one of ${Object.keys(spec).join(', ')})`);
        if (typeof v !== spec[k]) bad(path, `expected a ${spec[k]} for '${key}.${k}' but received ${JSON.stringify(v)}`);
      }
      for (const k of REQUIRED[key] ?? []) if ((value as Record<string, unknown>)[k] === undefined) bad(path, `missing '${key}.${k}'`);
      continue;
    }
    if (typeof value !== kind) bad(path, `expected a ${kind} for '${key}' but received ${JSON.stringify(value)}`);
  }
  for (const key of ['model', 'data', 'batchSize', 'seqLen', 'steps']) if (raw[key] === undefined) bad(path, `missing '${key}'`);
  const c = raw as unknown as RunConfig;
  const base = dirname(resolve(path));
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  c.data = rel(c.data);
  if (c.checkpoint) c.checkpoint.dir = rel(c.checkpoint.dir);
  if (c.log?.jsonl) c.log.jsonl = rel(c.log.jsonl);
  return c;
}

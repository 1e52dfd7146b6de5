/**
 * Sampling's options and prompt checked: the one check, used by Generator.generate, sampleToken
 * and the Trainer's `sample` option (and so deepwell train's), each naming the options its own way
 * (`prefix`: 'sample.' for the Trainer's).
 */
import { DeepwellError, checkInteger, checkKeys, describe, invalid } from '@deepwell/core';

/** Most tokens one generate() call adds (2^20): each costs a step of the model. */
export const MAX_NEW_TOKENS = 2 ** 20;

export interface SampleOptions {
  /** Tokens to add, in [1, 2^20]. */
  maxTokens: number;
  /** Softmax temperature (default 1); 0 takes the most likely token (ties: the lowest id). */
  temperature?: number;
  /** Keep only the k most likely tokens, an integer in [1, the model's vocabSize] (default: all). */
  topK?: number;
  /** Keep the most likely tokens whose probabilities sum to at least p, in (0, 1] (default 1). */
  topP?: number;
  /** Seed of the sampling generator, an integer in [0, 2^32) (default 0). */
  seed?: number;
  /** Stop after this token (it is included; an id in [0, vocab)), e.g. GPT-2's <|endoftext|> 50256. */
  stop?: number;
  /** Sample only ids below this: a padded vocabulary's real size (GPT-2's 50257 of 50304), as llm.c samples. */
  vocab?: number;
}

/** SampleOptions with every default filled in (stop: null when none). */
export type CheckedSampleOptions = Required<Omit<SampleOptions, 'stop'>> & { stop: number | null };

/** What the options are checked against: the model's sizes, and how errors name them. */
export interface SampleCheckContext {
  /** The model's vocabulary size (ids, vocab, topK and stop are bounded by it). */
  vocabSize: number;
  /** The model's context (a prompt holds at most this many tokens). */
  blockSize: number;
  /** Put before each option's name in errors ('sample.' for the Trainer's). Default ''. */
  prefix?: string;
  /** The most maxTokens may say (a caller's own budget, at most MAX_NEW_TOKENS). Default MAX_NEW_TOKENS. */
  maxTokens?: number;
}

const SAMPLE_KEYS = ['maxTokens', 'temperature', 'topK', 'topP', 'seed', 'stop', 'vocab'];
const fail = (msg: string): never => {
  throw new DeepwellError('INVALID_ARGUMENT', msg);
};

/**
 * temperature (finite, >= 0), topK and topP (in (0, 1]) checked; `name(key)` names each in errors.
 * topK: an integer in [1, vocabSize] when `vocabSize` is given (generate's, the Trainer's), else an
 * integer >= 1 or Infinity: every token (sampleToken's, which knows no model).
 */
export function checkPick(o: { temperature: unknown; topK: unknown; topP: unknown }, name: (key: string) => string, vocabSize?: number): { temperature: number; topK: number; topP: number } {
  const { temperature, topK, topP } = o;
  if (!(typeof temperature === 'number' && temperature >= 0 && Number.isFinite(temperature))) fail(`Expected a finite temperature >= 0 for ${name('temperature')} but received ${describe(temperature)}`);
  const k = topK as number;
  const okK = vocabSize === undefined ? topK === Infinity || (Number.isInteger(k) && k >= 1) : Number.isInteger(k) && k >= 1 && k <= vocabSize;
  if (!okK) fail(`Expected a positive integer for ${name('topK')} but received ${describe(topK)} (${vocabSize === undefined ? 'or Infinity: every token' : `at most the model's vocabSize ${vocabSize}`})`);
  if (!(typeof topP === 'number' && topP > 0 && topP <= 1)) fail(`Expected a value of topP in (0, 1] for ${name('topP')} but received ${describe(topP)}`);
  return { temperature: temperature as number, topK: k, topP: topP as number };
}

/** The context itself checked (a caller's bug, not the user's options). */
function checkContext(at: unknown, what: string): SampleCheckContext {
  if (at === null || typeof at !== 'object' || Array.isArray(at)) invalid('a context { vocabSize, blockSize, prefix?, maxTokens? }', what, at);
  checkKeys(at, ['vocabSize', 'blockSize', 'prefix', 'maxTokens'], what);
  const c = at as SampleCheckContext;
  checkInteger(c.vocabSize, `${what}.vocabSize`, 1, 2 ** 31 - 1);
  checkInteger(c.blockSize, `${what}.blockSize`, 1, 2 ** 31 - 1);
  if (c.prefix !== undefined && typeof c.prefix !== 'string') invalid('a string', `${what}.prefix`, c.prefix);
  if (c.maxTokens !== undefined) checkInteger(c.maxTokens, `${what}.maxTokens`, 1, MAX_NEW_TOKENS);
  return c;
}

/** Sampling options checked against the model's sizes, defaults filled in. */
export function checkSampleOptions(options: unknown, context: SampleCheckContext): CheckedSampleOptions {
  const at = checkContext(context, 'the context of checkSampleOptions');
  const p = at.prefix ?? '';
  const V = at.vocabSize;
  const limit = at.maxTokens ?? MAX_NEW_TOKENS;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) fail(`Expected sampling options { maxTokens, ... } for ${p ? p.replace(/\.$/, '') : 'generate'} but received ${describe(options)}`);
  checkKeys(options, SAMPLE_KEYS, 'sampling');
  const { maxTokens, temperature = 1, topK = V, topP = 1, seed = 0, stop, vocab = V } = options as SampleOptions;
  if (!Number.isInteger(vocab) || vocab < 1 || vocab > V) fail(`Expected vocab in [1, ${V}] (the model's vocabSize) for ${p}vocab but received ${describe(vocab)}`);
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > limit) fail(`Expected a positive integer for ${p}maxTokens but received ${describe(maxTokens)} (at most ${limit})`);
  const picks = checkPick({ temperature, topK, topP }, (k) => `${p}${k}`, V);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) fail(`Expected an integer in [0, 2^32) for ${p}seed but received ${describe(seed)}`);
  if (stop !== undefined && !(Number.isInteger(stop) && stop >= 0 && stop < vocab)) fail(`Expected a token id in [0, ${vocab}) (below vocab) for ${p}stop but received ${describe(stop)}`);
  return { maxTokens, ...picks, seed, stop: stop ?? null, vocab };
}

/** A prompt checked: an Array or typed array of 1 to blockSize token ids in [0, vocabSize); a copy as numbers. */
export function checkPrompt(prompt: unknown, context: SampleCheckContext): number[] {
  const at = checkContext(context, 'the context of checkPrompt');
  const name = `${at.prefix ?? ''}prompt`;
  const V = at.vocabSize;
  const isArray = Array.isArray(prompt) || (ArrayBuffer.isView(prompt) && !(prompt instanceof DataView));
  if (!isArray) fail(`Expected an array of token ids (an Array or an Int32Array) for ${name} but received ${describe(prompt)}`);
  const ids = prompt as ArrayLike<unknown>;
  if (ids.length === 0) fail(`Expected at least one prompt token, a non-empty array of token ids for ${name} but received none`);
  if (ids.length > at.blockSize) fail(`Expected a prompt of at most the model's context (blockSize ${at.blockSize} tokens) but received ${ids.length} tokens for ${name}`);
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= V) fail(`Expected prompt tokens in [0, ${V}) but received ${describe(t)} at position ${i}: a token id in [0, ${V}) for ${name}[${i}]`);
    out.push(t as number);
  }
  return out;
}

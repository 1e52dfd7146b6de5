/**
 * Text generation from a GPT: `new Generator(model, weights, { device })`, then
 * `generate(prompt, { maxTokens, temperature, topK, topP, seed, stop })`.
 *
 * Each new token runs the model's forward over the context so far (a forward-only executable of
 * [1, T], T the context this call needs, compiled once per T and kept): the context is written from
 * position 0 and the rest of the row is filler, which causal attention never lets the last real
 * position see, so its logits are those of the context alone (not for MoE models, whose expert
 * capacity the filler shares: there T is the exact length). Past the model's blockSize the context
 * is its last blockSize tokens, as nanoGPT's sampling does. Sampling is in float64 from a seeded
 * generator: the same seed gives the same tokens.
 */
import { DeepwellError } from '@deepwell/core';
import { capture, compile, rng, type Executable } from '@deepwell/ir';
import type { GPT } from './gpt.js';

export interface SampleOptions {
  /** Tokens to add (at least 1). */
  maxTokens: number;
  /** Softmax temperature (default 1); 0 takes the most likely token (ties: the lowest id). */
  temperature?: number;
  /** Keep only the k most likely tokens (default: all). */
  topK?: number;
  /** Keep the most likely tokens whose probabilities sum to at least p, in (0, 1] (default 1). */
  topP?: number;
  /** Seed of the sampling generator (default 0). */
  seed?: number;
  /** Stop after this token (it is included), e.g. GPT-2's <|endoftext|> 50256. */
  stop?: number;
  /** Sample only ids below this: a padded vocabulary's real size (GPT-2's 50257 of 50304), as llm.c samples. */
  vocab?: number;
}

function checkSample(o: SampleOptions, V: number): Required<Omit<SampleOptions, 'stop'>> & { stop: number | null } {
  if (o === null || typeof o !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected sampling options { maxTokens, ... } but received ${String(o)}`);
  const known = ['maxTokens', 'temperature', 'topK', 'topP', 'seed', 'stop', 'vocab'];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new DeepwellError('INVALID_ARGUMENT', `Expected one of ${known.join(', ')} for a sampling option but received '${k}'`);
  const { maxTokens, temperature = 1, topK = Infinity, topP = 1, seed = 0, stop, vocab = V } = o;
  if (!Number.isInteger(vocab) || vocab < 1 || vocab > V) throw new DeepwellError('INVALID_ARGUMENT', `Expected vocab in [1, ${V}] (the model's vocabSize) but received ${String(vocab)}`);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for maxTokens but received ${String(maxTokens)}`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a finite temperature >= 0 but received ${String(temperature)}`);
  if (topK !== Infinity && (!Number.isInteger(topK) || topK < 1)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for topK but received ${String(topK)}`);
  if (!(topP > 0 && topP <= 1)) throw new DeepwellError('INVALID_ARGUMENT', `Expected topP in (0, 1] but received ${String(topP)}`);
  if (!Number.isInteger(seed) || seed < 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-negative integer for seed but received ${String(seed)}`);
  if (stop !== undefined && !Number.isInteger(stop)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a token id for stop but received ${String(stop)}`);
  return { maxTokens, temperature, topK, topP, seed, stop: stop ?? null, vocab };
}

/**
 * The next token from one row of logits: greedy at temperature 0, else softmax(logits / T) in
 * float64, cut to the top k and then to the top-p mass, renormalised, drawn with `u` in [0, 1).
 */
export function sampleToken(logits: ArrayLike<number>, o: { temperature: number; topK: number; topP: number }, u: number): number {
  const V = logits.length;
  if (o.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  // Candidates by descending logit (ties: lower id first).
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const keep = order.slice(0, Math.min(V, o.topK));
  const top = logits[keep[0]!]!;
  let p = keep.map((i) => Math.exp((logits[i]! - top) / o.temperature));
  let sum = p.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    let mass = 0;
    let n = 0;
    while (n < p.length && mass < o.topP * sum) mass += p[n++]!;
    p = p.slice(0, Math.max(1, n));
    sum = p.reduce((a, b) => a + b, 0);
  }
  let acc = 0;
  for (let i = 0; i < p.length; i++) {
    acc += p[i]! / sum;
    if (u < acc) return keep[i]!;
  }
  return keep[p.length - 1]!;
}

export class Generator {
  readonly #model: GPT;
  readonly #weights: Map<string, Float32Array>;
  readonly #device: string;
  readonly #exes = new Map<number, Executable>();

  /** weights: every parameter of the model by name (a FitResult's, an import's, exe.get's). */
  constructor(model: GPT, weights: Map<string, Float32Array> | Record<string, Float32Array>, options: { device?: string } = {}) {
    this.#model = model;
    this.#weights = weights instanceof Map ? weights : new Map(Object.entries(weights));
    this.#device = options.device ?? 'cpu';
    const names = model.namedParameters().map(([n]) => n);
    const missing = names.filter((n) => !this.#weights.has(n));
    if (missing.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected weights for every parameter of the model but ${missing.length} are missing: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}`);
    const extra = [...this.#weights.keys()].filter((n) => !names.includes(n));
    if (extra.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected only the model's parameters as weights but received ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', …' : ''}`);
  }

  /** The forward of [1, T], compiled once and loaded with the weights. */
  #exe(T: number): Executable {
    let exe = this.#exes.get(T);
    if (!exe) {
      const g = capture(this.#model, { tokens: { shape: [1, T], dtype: 'i32' } });
      exe = compile(g, { device: this.#device });
      for (const [name, w] of this.#weights) exe.set(name, w);
      this.#exes.set(T, exe);
    }
    return exe;
  }

  /** The prompt's continuation: the new tokens only. */
  generate(prompt: ArrayLike<number>, options: SampleOptions): number[] {
    const { vocabSize: V, blockSize } = this.#model.config;
    const o = checkSample(options, V);
    const ctx = Array.from(prompt);
    if (ctx.length === 0) throw new DeepwellError('INVALID_ARGUMENT', 'Expected at least one prompt token but received none');
    if (ctx.length > blockSize) throw new DeepwellError('INVALID_ARGUMENT', `Expected a prompt of at most the model's context (blockSize ${blockSize} tokens) but received ${ctx.length}`);
    ctx.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new DeepwellError('INVALID_ARGUMENT', `Expected prompt tokens in [0, ${V}) but received ${t} at position ${i}`);
    });
    const exact = this.#model.config.moe !== null;
    const rand = rng(o.seed);
    const out: number[] = [];
    for (let s = 0; s < o.maxTokens; s++) {
      const window = ctx.length > blockSize ? ctx.slice(-blockSize) : ctx;
      const T = exact ? window.length : Math.min(blockSize, Math.max(window.length, ctx.length - out.length + o.maxTokens));
      const tokens = new Int32Array(T);
      tokens.set(window);
      const logits = this.#exe(T).run({ tokens }).logits!;
      const at = (window.length - 1) * V;
      const next = sampleToken(logits.subarray(at, at + o.vocab), o, rand());
      out.push(next);
      ctx.push(next);
      if (next === o.stop) break;
    }
    return out;
  }

  dispose(): void {
    for (const exe of this.#exes.values()) exe.dispose();
    this.#exes.clear();
  }
}

/**
 * Text generation from a GPT: `new Generator(model, weights, { device, precision, cache })`, then
 * `generate(prompt, { maxTokens, temperature, topK, topP, seed, stop })`.
 *
 * With a key/value cache (the default for models whose layers all use dense attention): one
 * compiled decode step, [1, 1] tokens at a position given as data (GPT.decode: each layer keeps its
 * keys and values as graph state, so on a GPU the step is one CUDA graph replayed for every token).
 * The prompt goes in token by token, then each new token costs one step over the cache. The cache
 * holds blockSize positions; a generation that runs past them continues without it.
 *
 * Without the cache (`cache: false`, and for SparseK layers): each new token runs the model's
 * forward over the context so far (a forward-only executable of [1, T], T the context this call
 * needs, compiled once per T and kept): the context is written from position 0 and the rest of the
 * row is filler, which causal attention never lets the last real position see, so its logits are
 * those of the context alone (not for MoE models, whose expert capacity the filler shares: there T
 * is the exact length). Past the model's blockSize the context is its last blockSize tokens, as
 * nanoGPT's sampling does. Sampling is in float64 from a seeded generator: the same seed gives the
 * same tokens.
 */
import { DeepwellError, checkKeys, checkNumber, describe } from '@deepwell/core';
import { autocast, capture, checkDeviceName, compile, rng, type Executable } from '@deepwell/ir';
import { GPT, GPTDecode } from './gpt.js';
import { checkPick, checkPrompt, checkSampleOptions, type SampleOptions } from './sample_options.js';

export { MAX_NEW_TOKENS, type SampleOptions } from './sample_options.js';

/**
 * Checks a row of logits for sampleToken: a non-empty array of numbers, none NaN or +Infinity
 * (-Infinity is a token ruled out), not all -Infinity.
 */
function checkLogits(logits: ArrayLike<number>, what: string): void {
  const ok = Array.isArray(logits) || (ArrayBuffer.isView(logits) && !(logits instanceof DataView) && !(logits instanceof BigInt64Array) && !(logits instanceof BigUint64Array));
  if (!ok || logits.length === 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-empty array of numbers for ${what} but received ${describe(logits)}`);
  let finite = false;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (typeof x !== 'number' || Number.isNaN(x) || x === Infinity) throw new DeepwellError('INVALID_ARGUMENT', `Expected finite numbers (or -Infinity for a token ruled out) for ${what} but received ${describe(x)} at index ${i}`);
    if (x !== -Infinity) finite = true;
  }
  if (!finite) throw new DeepwellError('INVALID_ARGUMENT', `Expected at least one finite logit for ${what} but received ${logits.length} of -Infinity`);
}

/**
 * The next token from one row of logits: greedy at temperature 0, else softmax(logits / T) in
 * float64, cut to the top k and then to the top-p mass, renormalised, drawn with `u` in [0, 1)
 * walking the candidates (by descending logit where top-k or top-p cut, else in id order).
 * `o`'s fields default as SampleOptions' (temperature 1, topK Infinity, topP 1); logits must be
 * finite or -Infinity (a token ruled out), at least one finite.
 */
export function sampleToken(logits: ArrayLike<number>, o: { temperature?: number; topK?: number; topP?: number }, u: number): number {
  checkLogits(logits, 'the logits of sampleToken');
  checkKeys(o, ['temperature', 'topK', 'topP'], 'sampleToken');
  const given = (x: unknown, fallback: number) => (x === undefined ? fallback : x);
  const picks = checkPick({ temperature: given(o.temperature, 1), topK: given(o.topK, Infinity), topP: given(o.topP, 1) }, (k) => `${k} of sampleToken`);
  checkNumber(u, 'u of sampleToken (a uniform draw)', { min: 0, below: 1 });
  return pickToken(logits, picks, u);
}

/** sampleToken on checked arguments. */
function pickToken(logits: ArrayLike<number>, o: { temperature: number; topK: number; topP: number }, u: number): number {
  const V = logits.length;
  if (o.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const keep = candidates(logits, o);
  let top = -Infinity;
  for (const i of keep) top = Math.max(top, logits[i]!);
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
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! > 0) last = i;
    acc += p[i]! / sum;
    if (u < acc) return keep[i]!;
  }
  // u above the rounded total: the last candidate with any probability (never one ruled out).
  return keep[last]!;
}

export interface GeneratorOptions {
  /** 'cpu' (the default) or 'cuda:N'. */
  device?: string;
  /** Compute precision (default: f32 on the CPU, bf16 on a GPU, as the Trainer). */
  precision?: 'f32' | 'bf16';
  /** Decode over a key/value cache (default: true when every layer's attention is dense). */
  cache?: boolean;
}

/** Descending logit, ties to the lower id. */
const before = (logits: ArrayLike<number>, a: number, b: number) => logits[a]! > logits[b]! || (logits[a]! === logits[b]! && a < b);

/**
 * The ids sampling draws from, in the order it walks them: the top k by descending logit (ties: the
 * lower id first; a heap of k, not a sort of the whole vocabulary), all ids sorted so where top-p
 * cuts the tail, or every id in id order (temperature alone: no order matters).
 */
function candidates(logits: ArrayLike<number>, o: { topK: number; topP: number }): number[] {
  const V = logits.length;
  if (o.topK >= V) {
    const all = Array.from({ length: V }, (_, i) => i);
    return o.topP < 1 ? all.sort((a, b) => (before(logits, a, b) ? -1 : 1)) : all;
  }
  // A min-heap (by `before`) of the k best so far: its root is the worst kept.
  const k = o.topK;
  const heap: number[] = [];
  const worse = (a: number, b: number) => before(logits, b, a);
  const down = (i: number) => {
    for (;;) {
      const [l, r] = [2 * i + 1, 2 * i + 2];
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let id = 0; id < V; id++) {
    if (heap.length < k) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0; ) {
        const p = (i - 1) >> 1;
        if (!worse(heap[i]!, heap[p]!)) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
    } else if (before(logits, id, heap[0]!)) {
      heap[0] = id;
      down(0);
    }
  }
  return heap.sort((a, b) => (before(logits, a, b) ? -1 : 1));
}

export class Generator {
  readonly #model: GPT;
  readonly #weights: Map<string, Float32Array>;
  readonly #device: string;
  readonly #precision: 'f32' | 'bf16';
  /** Whether generate() decodes over a key/value cache. */
  readonly cache: boolean;
  readonly #exes = new Map<number, Executable>();
  #decoder: Executable | null = null;

  /** weights: every parameter of the model by name (a FitResult's, an import's, exe.get's). */
  constructor(model: GPT, weights: Map<string, Float32Array> | Record<string, Float32Array>, options: GeneratorOptions = {}) {
    if (!(model instanceof GPT)) throw new DeepwellError('INVALID_ARGUMENT', `Expected a GPT for the model of Generator but received ${describe(model)}`);
    this.#model = model;
    if (weights === null || typeof weights !== 'object' || Array.isArray(weights) || ArrayBuffer.isView(weights)) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected the weights as a Map or an object of Float32Arrays by parameter name for Generator but received ${describe(weights)}`);
    }
    this.#weights = weights instanceof Map ? new Map(weights) : new Map(Object.entries(weights));
    if (options === null || typeof options !== 'object') throw new DeepwellError('INVALID_ARGUMENT', `Expected generator options { device, precision, cache } but received ${describe(options)}`);
    checkKeys(options, ['device', 'precision', 'cache'], 'generator');
    this.#device = checkDeviceName(options.device === undefined ? 'cpu' : options.device, "the generator's device");
    const precision = options.precision === undefined ? (this.#device === 'cpu' ? 'f32' : 'bf16') : options.precision;
    if (precision !== 'f32' && precision !== 'bf16') throw new DeepwellError('INVALID_ARGUMENT', `Expected 'f32' or 'bf16' for the generator's precision but received ${String(precision)}`);
    this.#precision = precision;
    const dense = model.blocks.every((b) => b.attn.kind.kind === 'dense');
    if (options.cache !== undefined && typeof options.cache !== 'boolean') throw new DeepwellError('INVALID_ARGUMENT', `Expected a boolean for the generator's cache but received ${String(options.cache)}`);
    if (options.cache === true && !dense) throw new DeepwellError('INVALID_ARGUMENT', "Expected a model whose layers all use dense attention for cache: true (a key/value cache serves dense attention only) but this one has SparseK layers");
    this.cache = options.cache ?? dense;
    const names = model.namedParameters().map(([n]) => n);
    const missing = names.filter((n) => !this.#weights.has(n));
    if (missing.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected weights for every parameter of the model but ${missing.length} are missing: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}`);
    const known = new Set(names);
    const extra = [...this.#weights.keys()].filter((n) => !known.has(n));
    if (extra.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected only the model's parameters as weights but received ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', …' : ''}`);
    for (const [name, spec] of model.namedParameters()) {
      const w: unknown = this.#weights.get(name);
      const n = spec.shape.reduce((a, b) => a * b, 1);
      if (!(w instanceof Float32Array || w instanceof Float64Array)) throw new DeepwellError('INVALID_DTYPE', `Expected a Float32Array for weight '${name}' of Generator but received ${describe(w)}`);
      if (w.length !== n) throw new DeepwellError('SHAPE_MISMATCH', `Expected ${n} values (${spec.shape.join(' × ')}) for weight '${name}' of Generator but received ${w.length}`);
    }
  }

  #compile(g: ReturnType<typeof capture>): Executable {
    const exe = compile(this.#precision === 'bf16' ? autocast(g) : g, { device: this.#device });
    for (const [name, w] of this.#weights) exe.set(name, w);
    return exe;
  }

  /** The forward of [1, T], compiled once and loaded with the weights. */
  #exe(T: number): Executable {
    let exe = this.#exes.get(T);
    if (!exe) {
      exe = this.#compile(capture(this.#model, { tokens: { shape: [1, T], dtype: 'i32' } }));
      this.#exes.set(T, exe);
    }
    return exe;
  }

  /** The decode step: one token at a given position over the caches, compiled once. */
  #decode(): Executable {
    this.#decoder ??= this.#compile(capture(new GPTDecode(this.#model), { tokens: { shape: [1, 1], dtype: 'i32' }, pos: { shape: [1], dtype: 'i32' } }));
    return this.#decoder;
  }

  /** The prompt's continuation: the new tokens only. */
  generate(prompt: ArrayLike<number>, options: SampleOptions): number[] {
    const { vocabSize: V, blockSize } = this.#model.config;
    const o = checkSampleOptions(options, { vocabSize: V, blockSize });
    const ctx = checkPrompt(prompt, { vocabSize: V, blockSize });
    const rand = rng(o.seed);
    const out: number[] = [];
    const pick = (all: Float32Array | Int32Array, at: number) => {
      const logits = all.subarray(at * V, at * V + o.vocab);
      for (let i = 0; i < logits.length; i++) {
        if (!Number.isFinite(logits[i])) throw new DeepwellError('INVALID_ARGUMENT', `Expected finite logits from the model for token ${out.length + 1} of generate but received ${logits[i]} for id ${i}: do the weights hold NaN or Infinity?`);
      }
      const next = pickToken(logits, o, rand());
      out.push(next);
      ctx.push(next);
      return next !== o.stop && out.length < o.maxTokens;
    };
    if (this.cache) {
      // Token by token through the cache while the context fits it; rows past a step's position are
      // never read, so the caches need no clearing between calls.
      const exe = this.#decode();
      const tokens = new Int32Array(1);
      const pos = new Int32Array(1);
      let fed = 0;
      let logits: Float32Array | Int32Array | undefined;
      while (ctx.length <= blockSize) {
        while (fed < ctx.length) {
          tokens[0] = ctx[fed]!;
          pos[0] = fed++;
          logits = exe.run({ tokens, pos }).logits!;
        }
        if (!pick(logits!, 0)) return out;
      }
    }
    const exact = this.#model.config.moe !== null;
    for (;;) {
      const window = ctx.length > blockSize ? ctx.slice(-blockSize) : ctx;
      const left = o.maxTokens - out.length;
      const T = exact ? window.length : Math.min(blockSize, window.length + left - 1);
      const tokens = new Int32Array(T);
      tokens.set(window);
      if (!pick(this.#exe(T).run({ tokens }).logits!, window.length - 1)) return out;
    }
  }

  dispose(): void {
    for (const exe of this.#exes.values()) exe.dispose();
    this.#exes.clear();
    this.#decoder?.dispose();
    this.#decoder = null;
  }
}

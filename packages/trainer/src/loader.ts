/**
 * TokenLoader: batches of next-token training windows from token shards.
 *
 * A shard of n tokens holds floor((n - 1) / T) samples: windows of T + 1 tokens starting at
 * multiples of T (tokens = the first T, targets = the last T). An epoch visits every sample once:
 * with `shuffle`, the shard order and each shard's sample order are permutations drawn from
 * (seed, epoch), so a run is reproducible and a position can be saved. For data parallelism, rank r
 * of `worldSize` takes every worldSize-th sample of the epoch's sequence, starting at r.
 *
 * The position (`state`) is three integers — epoch, shard, sample — which a checkpoint stores;
 * `restore(state)` continues exactly where it was, after checking that the state fits this data.
 * Every option is checked when the loader is made, in-memory shards too (uint16 tokens, each below
 * `vocab` when given, enough for one sample); shards given as paths are read when first needed (one
 * at a time is kept in memory) and checked then (llm.c's format unless format 'raw').
 */
import { DeepwellError, checkInteger, checkKeys, describe, invalid } from '@deepwell/core';
import { rng } from '@deepwell/ir';
import type { MarkovCorpus } from '@deepwell/nn';
import { checkShardOptions, checkVocab, readShard, type Shard, type ShardFormat } from './shards.js';

export interface LoaderOptions {
  /** Shard paths (llm.c, or raw uint16 with format 'raw') or shards in memory. */
  shards: readonly (string | Shard)[];
  /** Samples per batch, an integer in [1, 2^20] (batchSize × seqLen at most 2^27). */
  batchSize: number;
  /** Tokens per sample, an integer in [1, 2^20]. */
  seqLen: number;
  /** Permute the shards and each shard's samples per epoch. Default true. */
  shuffle?: boolean;
  /** The permutations' seed, an integer in [0, 2^32). Default 0. */
  seed?: number;
  /** This process's rank, in [0, worldSize). Default 0. */
  rank?: number;
  /** Ranks sharing the data, in [1, 65536]. Default 1. */
  worldSize?: number;
  /** The format of shards given as paths: 'llmc' (default) or 'raw' (headerless uint16, only when asked for). */
  format?: ShardFormat;
  /** When given (an integer in [1, 65536]), every token of every shard, in memory or read, is checked to be below it. */
  vocab?: number;
}

export interface LoaderState {
  epoch: number;
  /** Position in the epoch's shard order. */
  shard: number;
  /** Global position within that shard's sample order (counting every rank's samples). */
  sample: number;
}

const LOADER_KEYS = ['shards', 'batchSize', 'seqLen', 'shuffle', 'seed', 'rank', 'worldSize', 'format', 'vocab'];
/** The most tokens in one batch (each of tokens and targets is an Int32Array of this many). */
const MAX_BATCH_TOKENS = 2 ** 27;

function positiveInt(v: unknown, what: string, max: number): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for ${what} (at most ${max}) but received ${describe(v)}`);
  return v as number;
}

function permutation(n: number, seed: number): Uint32Array {
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  const r = rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** One of the loader's shards checked: a path, or { name, tokens: Uint16Array } with each token below `vocab` when given. */
function checkSource(s: unknown, i: number, vocab: number | undefined): void {
  const what = `loader shards[${i}]`;
  if (typeof s === 'string') {
    if (s.length === 0) invalid('a file path (a non-empty string) or { name, tokens }', what, s);
    return;
  }
  if (typeof s !== 'object' || s === null || Array.isArray(s)) invalid('a file path or a shard { name, tokens: Uint16Array }', what, s);
  checkKeys(s, ['name', 'tokens'], what, { noun: 'key' });
  const { name, tokens } = s as Shard;
  if (typeof name !== 'string') invalid('a string', `${what}.name`, name);
  if (!(tokens instanceof Uint16Array)) invalid('a Uint16Array of tokens', `${what}.tokens`, tokens);
  checkVocab(tokens, vocab, `shard ${name}`);
}

export class TokenLoader {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly #sources: readonly (string | Shard)[];
  readonly #format: ShardFormat;
  readonly #vocab?: number;
  #state: LoaderState = { epoch: 0, shard: 0, sample: 0 };
  #cache: { epoch: number; index: number; shard: Shard; order: Uint32Array | null } | null = null;

  constructor(options: LoaderOptions) {
    checkKeys(options, LOADER_KEYS, 'TokenLoader');
    if (!Array.isArray(options.shards) || options.shards.length === 0) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected at least one shard for the loader but received ${describe(options.shards)}`);
    }
    const { format, vocab } = checkShardOptions({ format: options.format, vocab: options.vocab }, 'TokenLoader');
    this.batchSize = positiveInt(options.batchSize, 'batchSize', 2 ** 20);
    this.seqLen = positiveInt(options.seqLen, 'seqLen', 2 ** 20);
    if (this.batchSize * this.seqLen > MAX_BATCH_TOKENS) invalid(`batchSize × seqLen of at most ${MAX_BATCH_TOKENS}`, 'the loader', `${this.batchSize} × ${this.seqLen}`);
    if (options.shuffle !== undefined && typeof options.shuffle !== 'boolean') invalid('a boolean', 'shuffle', options.shuffle);
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, 2 ** 32 - 1);
    this.worldSize = options.worldSize === undefined ? 1 : positiveInt(options.worldSize, 'worldSize', 65536);
    this.rank = options.rank === undefined ? 0 : (options.rank as number);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a rank in [0, ${this.worldSize - 1}] but received ${describe(options.rank)}`);
    }
    options.shards.forEach((s, i) => checkSource(s, i, vocab));
    for (const s of options.shards) {
      if (typeof s !== 'string' && s.tokens.length < this.seqLen + 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected at least ${this.seqLen + 1} tokens (one sample of seqLen ${this.seqLen}) in shard ${s.name} but it has ${s.tokens.length}`);
    }
    this.#sources = [...options.shards];
    this.#format = format;
    this.#vocab = vocab;
    this.#state.sample = this.rank;
  }

  get state(): LoaderState {
    return { ...this.#state };
  }

  /**
   * Continue from a saved position (a checkpoint's). Checked before anything changes: integers, a
   * shard of this loader, a sample within that shard's samples (reading the shard when it is a
   * path); a state that does not fit this data is refused, never looped over.
   */
  restore(state: LoaderState): void {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) invalid('a loader state { epoch, shard, sample }', 'restore', state);
    checkKeys(state, ['epoch', 'shard', 'sample'], 'loader state', { noun: 'key' });
    for (const k of ['epoch', 'shard', 'sample'] as const) {
      if (!Number.isSafeInteger(state[k]) || state[k] < 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-negative integer for loader state '${k}' but received ${describe(state[k])}`);
    }
    if (state.shard >= this.#sources.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected a loader state within ${this.#sources.length} shards but received shard ${state.shard}`);
    // Samples of the shard at that position; a sample past its last by less than worldSize is where
    // the previous batch left this rank (it carries into the next shard).
    const { shard } = this.#shardAt(state.shard, state.epoch);
    const count = Math.floor((shard.tokens.length - 1) / this.seqLen);
    if (state.sample >= count + this.worldSize) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a loader state sample below ${count + this.worldSize} (shard ${shard.name} holds ${count} samples of seqLen ${this.seqLen}; worldSize ${this.worldSize}) but received ${state.sample}: a position in other data or of another loader`);
    }
    this.#state = { epoch: state.epoch, shard: state.shard, sample: state.sample };
  }

  /** The next batch: tokens and targets, each i32[batchSize * seqLen] (row-major [B, T]). */
  next(): { tokens: Int32Array; targets: Int32Array } {
    const { batchSize: B, seqLen: T } = this;
    const tokens = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const { shard, start } = this.#take();
      for (let t = 0; t < T; t++) {
        tokens[b * T + t] = shard.tokens[start + t]!;
        targets[b * T + t] = shard.tokens[start + t + 1]!;
      }
    }
    return { tokens, targets };
  }

  /** The shard at position `index` of an epoch's order (default: the current epoch), loaded, with its sample order. */
  #shardAt(index: number, epoch = this.#state.epoch): { shard: Shard; order: Uint32Array | null } {
    if (this.#cache?.index === index && this.#cache.epoch === epoch) return this.#cache;
    const n = this.#sources.length;
    const which = this.shuffle ? permutation(n, (this.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0)[index]! : index;
    const src = this.#sources[which]!;
    const shard = typeof src === 'string' ? readShard(src, { format: this.#format, vocab: this.#vocab }) : src;
    const count = Math.floor((shard.tokens.length - 1) / this.seqLen);
    if (count < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected at least ${this.seqLen + 1} tokens (one sample of seqLen ${this.seqLen}) in shard ${shard.name} but it has ${shard.tokens.length}`);
    const order = this.shuffle ? permutation(count, (this.seed ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.imul(which + 1, 0xc2b2ae35)) >>> 0) : null;
    this.#cache = { epoch, index, shard, order };
    return this.#cache;
  }

  /** The next sample of this rank, advancing the position. */
  #take(): { shard: Shard; start: number } {
    for (;;) {
      const s = this.#state;
      const { shard, order } = this.#shardAt(s.shard);
      const count = Math.floor((shard.tokens.length - 1) / this.seqLen);
      if (s.sample < count) {
        const k = order ? order[s.sample]! : s.sample;
        s.sample += this.worldSize;
        return { shard, start: k * this.seqLen };
      }
      // Past this shard: carry the rank's offset into the next shard (or the next epoch).
      s.sample -= count;
      s.shard++;
      if (s.shard === this.#sources.length) {
        s.shard = 0;
        s.epoch++;
      }
    }
  }
}

/** An in-memory shard of `tokens` tokens (an integer in [2, 2^28]) drawn from a synthetic Markov corpus (for tests and demos). */
export function markovShard(corpus: MarkovCorpus, tokens: number, name?: string): Shard {
  if (typeof corpus !== 'object' || corpus === null || typeof (corpus as { sample?: unknown }).sample !== 'function') invalid('a MarkovCorpus (from @deepwell/nn)', 'markovShard corpus', corpus);
  checkInteger(tokens, 'markovShard tokens', 2, 2 ** 28);
  const vocab = checkInteger(corpus.vocab, 'markovShard corpus.vocab', 1, 65536);
  if (name !== undefined && typeof name !== 'string') invalid('a string', 'markovShard name', name);
  const t = corpus.sample(tokens);
  if (t?.length !== tokens) invalid(`${tokens} tokens`, 'markovShard corpus.sample()', t);
  const out = new Uint16Array(tokens);
  for (let i = 0; i < tokens; i++) {
    const v = t[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= vocab) invalid(`token ids in [0, ${vocab})`, `markovShard token ${i}`, v);
    out[i] = v;
  }
  return { name: name ?? `markov(vocab ${vocab})`, tokens: out };
}

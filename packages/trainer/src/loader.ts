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
 * `restore(state)` continues exactly where it was. Shards given as paths are read when first
 * needed (one at a time is kept in memory) and checked then.
 */
import { DeepwellError, describe } from '@deepwell/core';
import { rng } from '@deepwell/ir';
import type { MarkovCorpus } from '@deepwell/nn';
import { readShard, type Shard, type ShardFormat } from './shards.js';

export interface LoaderOptions {
  /** Shard paths (llm.c or raw uint16) or shards in memory. */
  shards: readonly (string | Shard)[];
  batchSize: number;
  seqLen: number;
  shuffle?: boolean;
  seed?: number;
  rank?: number;
  worldSize?: number;
  format?: ShardFormat;
  /** When given, every token is checked to be below it. */
  vocab?: number;
}

export interface LoaderState {
  epoch: number;
  /** Position in the epoch's shard order. */
  shard: number;
  /** Global position within that shard's sample order (counting every rank's samples). */
  sample: number;
}

function positiveInt(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected a positive integer for ${what} but received ${describe(v)}`);
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

export class TokenLoader {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly #sources: readonly (string | Shard)[];
  readonly #format?: ShardFormat;
  readonly #vocab?: number;
  #state: LoaderState = { epoch: 0, shard: 0, sample: 0 };
  #cache: { index: number; shard: Shard; order: Uint32Array | null } | null = null;

  constructor(options: LoaderOptions) {
    if (!options || !Array.isArray(options.shards) || options.shards.length === 0) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected at least one shard for the loader but received ${describe(options?.shards)}`);
    }
    this.batchSize = positiveInt(options.batchSize, 'batchSize');
    this.seqLen = positiveInt(options.seqLen, 'seqLen');
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed ?? 0;
    this.worldSize = positiveInt(options.worldSize ?? 1, 'worldSize');
    this.rank = options.rank ?? 0;
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new DeepwellError('INVALID_ARGUMENT', `Expected a rank in [0, ${this.worldSize - 1}] but received ${describe(options.rank)}`);
    }
    this.#sources = options.shards;
    this.#format = options.format;
    this.#vocab = options.vocab;
    this.#state.sample = this.rank;
  }

  get state(): LoaderState {
    return { ...this.#state };
  }

  restore(state: LoaderState): void {
    for (const k of ['epoch', 'shard', 'sample'] as const) {
      if (!Number.isInteger(state?.[k]) || state[k] < 0) throw new DeepwellError('INVALID_ARGUMENT', `Expected a non-negative integer for loader state '${k}' but received ${describe(state?.[k])}`);
    }
    if (state.shard >= this.#sources.length) throw new DeepwellError('INVALID_ARGUMENT', `Expected a loader state within ${this.#sources.length} shards but received shard ${state.shard}`);
    this.#state = { ...state };
    this.#cache = null;
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

  /** The shard at position `index` of the epoch's order, loaded, with its sample order. */
  #shardAt(index: number): { shard: Shard; order: Uint32Array | null } {
    if (this.#cache?.index === index) return this.#cache;
    const n = this.#sources.length;
    const which = this.shuffle ? permutation(n, (this.seed ^ Math.imul(this.#state.epoch + 1, 0x9e3779b1)) >>> 0)[index]! : index;
    const src = this.#sources[which]!;
    const shard = typeof src === 'string' ? readShard(src, { format: this.#format, vocab: this.#vocab }) : src;
    const count = Math.floor((shard.tokens.length - 1) / this.seqLen);
    if (count < 1) throw new DeepwellError('INVALID_ARGUMENT', `Expected at least ${this.seqLen + 1} tokens (one sample of seqLen ${this.seqLen}) in shard ${shard.name} but it has ${shard.tokens.length}`);
    const order = this.shuffle ? permutation(count, (this.seed ^ Math.imul(this.#state.epoch + 1, 0x85ebca6b) ^ Math.imul(which + 1, 0xc2b2ae35)) >>> 0) : null;
    this.#cache = { index, shard, order };
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
      this.#cache = null;
    }
  }
}

/** An in-memory shard of `tokens` tokens drawn from a synthetic Markov corpus (for tests and demos). */
export function markovShard(corpus: MarkovCorpus, tokens: number, name = `markov(vocab ${corpus.vocab})`): Shard {
  const t = corpus.sample(tokens);
  return { name, tokens: Uint16Array.from(t) };
}

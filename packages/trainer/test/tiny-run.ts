// What the Trainer's tests share: the tiny CPU run (a Markov corpus of 16 symbols, GPT 'tiny', 12
// steps), a seeded uniform random source, and scratch folders.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { TokenLoader, markovShard, type Shard, type TrainerOptions } from '../src/index.js';

/** The run: the corpus drawn from `seed`, its train shard, and options whose loader shuffles with `loaderSeed`. */
export function tinyRun(seed: number, loaderSeed = seed + 1) {
  const corpus = new MarkovCorpus({ vocab: 16, seed });
  const trainShard: Shard = markovShard(corpus, 20000, 'train');
  const options = (over: Partial<TrainerOptions> = {}): TrainerOptions => ({
    model: new GPT('tiny'),
    train: new TokenLoader({ shards: [trainShard], batchSize: 4, seqLen: 16, seed: loaderSeed }),
    device: 'cpu',
    steps: 12,
    optimizer: { lr: 3e-3 },
    seed: 3,
    log: { progress: false },
    ...over,
  });
  return { corpus, trainShard, options };
}

/** A seeded uniform source in [0, 1) (mulberry32). */
export function seededUniform(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A function giving a new empty folder on each call, all under one temporary folder named by `prefix`. */
export function scratchDirs(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  let n = 0;
  return () => {
    const d = join(root, `d${n++}`);
    mkdirSync(d);
    return d;
  };
}

// The tiny CPU run the Trainer's tests share: a Markov corpus of 16 symbols, GPT 'tiny', 12 steps.
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { TokenLoader, markovShard, type Shard, type TrainerOptions } from '../src/index.js';

export function tinyRun(seed: number) {
  const corpus = new MarkovCorpus({ vocab: 16, seed });
  const trainShard: Shard = markovShard(corpus, 20000, 'train');
  const options = (over: Partial<TrainerOptions> = {}): TrainerOptions => ({
    model: new GPT('tiny'),
    train: new TokenLoader({ shards: [trainShard], batchSize: 4, seqLen: 16, seed: seed + 1 }),
    device: 'cpu',
    steps: 12,
    optimizer: { lr: 3e-3 },
    seed: 3,
    log: { progress: false },
    ...over,
  });
  return { corpus, trainShard, options };
}

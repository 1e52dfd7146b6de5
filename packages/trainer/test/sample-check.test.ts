// Issue 20: the Trainer's `sample` option is checked by nn's own check of generate's options
// (checkPrompt, checkSampleOptions), when the Trainer is made. Before, the Trainer's copy accepted
// a prompt longer than the model's context and a stop id at or past sample.vocab, which nn's
// Generator refused only at the first evaluation, mid-run.
import { GPT, MarkovCorpus, checkSampleOptions } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, markovShard, type Shard, type TrainerOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const model = new GPT('tiny');
const { vocabSize: V, blockSize } = model.config;
const shard: Shard = markovShard(new MarkovCorpus({ vocab: V, seed }), 4000, 'train');
const loader = (s: number) => new TokenLoader({ shards: [shard], batchSize: 2, seqLen: 16, seed: s });
const withSample = (sample: Record<string, unknown>): TrainerOptions =>
  ({ model, train: loader(seed), val: loader(seed + 1), evalEvery: 2, device: 'cpu', steps: 4, log: { progress: false }, sample }) as unknown as TrainerOptions;
const ids = (n: number) => Array.from({ length: n }, () => int(0, V - 1));

describe("the Trainer's sample option, checked by nn's check", () => {
  it('refuses a prompt longer than the model\'s context when the Trainer is made (before: at the first evaluation)', () => {
    const e = errorOf(() => new Trainer(withSample({ prompt: ids(blockSize + int(1, 20)) })));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/at most the model's context .* for sample\.prompt/);
  });

  it('refuses a stop id at or past sample.vocab when the Trainer is made (before: at the first evaluation)', () => {
    const vocab = int(2, V - 2);
    const stop = int(vocab, V - 1);
    const e = errorOf(() => new Trainer(withSample({ prompt: ids(2), vocab, stop })));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/for sample\.stop but received/);
    // nn's check says the same of generate's options.
    expect(errorOf(() => checkSampleOptions({ maxTokens: 1, vocab, stop }, { vocabSize: V, blockSize })).message).toMatch(/for stop but received/);
  });

  it('accepts what generate accepts', () => {
    const vocab = int(2, V);
    expect(() => new Trainer(withSample({ prompt: ids(int(1, blockSize)), vocab, stop: int(0, vocab - 1), topK: int(1, V), topP: Math.random() * 0.9 + 0.1, temperature: Math.random() * 2, maxTokens: int(1, 64), seed: int(0, 1e6) }))).not.toThrow();
  });
});

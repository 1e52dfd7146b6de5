// Issue 19, the Trainer's options: device names are checked ('cpu' or 'cuda:N', the names valid here
// listed; a GPU that is not here is its own error), options that would do nothing alone (val
// without evalEvery and the reverse) are refused, and an unknown key, at the top or in a nested
// object, is an error naming it with a "did you mean" where one is close or a known alias.
import { cudaStatus } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, markovShard, type Shard, type TrainerOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const corpus = new MarkovCorpus({ vocab: 16, seed });
const trainShard: Shard = markovShard(corpus, 8000, 'train');
const valShard: Shard = markovShard(corpus, 2000, 'val');

function options(over: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    model: new GPT('tiny'),
    train: new TokenLoader({ shards: [trainShard], batchSize: 2, seqLen: 16, seed }),
    device: 'cpu',
    steps: 4,
    optimizer: { lr: 3e-3 },
    log: { progress: false },
    ...over,
  };
}
const val = () => new TokenLoader({ shards: [valShard], batchSize: 2, seqLen: 16, seed });
/** The error of a Trainer made with `over` merged into the options (keys TypeScript would refuse). */
const refusal = (over: Record<string, unknown>) => errorOf(() => new Trainer({ ...options(), ...over } as TrainerOptions));

describe('Trainer options (issue 19, defects 2 and 3)', () => {
  it("checks device names: 'cpu' or 'cuda:N', listing the names valid here", () => {
    for (const device of ['gpu', 'CPU', 'cuda0', 'cuda:x', 'cuda:-1', 'cuda:1.5', '', 0]) {
      const e = refusal({ device });
      expect(e.code, String(device)).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/^Expected 'cpu' or 'cuda:N' \(N a GPU's index\) for device \(valid here: cpu.*\) but received /);
    }
    expect(refusal({ device: 'CPU' }).message).toMatch(/did you mean 'cpu'\?/);
    expect(refusal({ device: 'gpu' }).message).toMatch(/did you mean 'cuda:0'\?/);
    // A GPU index this machine does not have: its own error, naming what is here.
    const status = cudaStatus();
    const count = status.available ? status.deviceCount : 0;
    const e = refusal({ device: `cuda:${count}` });
    expect(e.code).toBe(count ? 'INVALID_ARGUMENT' : 'CUDA_UNAVAILABLE');
    expect(e.message).toMatch(count ? new RegExp(`cuda:${count}.*cuda:0 to cuda:${count - 1}`) : new RegExp(`cuda:0 is not available here \\(.+\\); valid here: cpu`));
    expect(new Trainer(options({ device: 'cpu' })).device).toBe('cpu');
  });

  it('refuses val without evalEvery, and evalEvery without val', () => {
    let e = errorOf(() => new Trainer(options({ val: val() })));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/^Expected evalEvery with val \(how often to evaluate on it\) but received undefined/);
    e = errorOf(() => new Trainer(options({ evalEvery: 2 })));
    expect(e.message).toMatch(/^Expected a val loader with evalEvery .* but received undefined/);
    expect(errorOf(() => new Trainer(options({ evalBatches: 2 }))).message).toMatch(/evalBatches/);
    expect(errorOf(() => new Trainer(options({ val: val(), evalEvery: 0 }))).message).toMatch(/positive integer for evalEvery but received 0/);
    expect(new Trainer(options({ val: val(), evalEvery: 2 })).fit().evals.map((x) => x.step)).toEqual([2, 4]);
  });

  it('names an unknown key, at the top or nested, with a suggestion where one is close', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ learningRate: 1e-3 }, /for a Trainer option but received 'learningRate' \(did you mean optimizer\.lr\?\)/],
      [{ warmupSteps: 10 }, /'warmupSteps' \(did you mean schedule\.warmup\?\)/],
      [{ optimiser: { lr: 1e-3 } }, /'optimiser' \(did you mean optimizer\?\)/],
      [{ evalEvry: 2 }, /'evalEvery'\?|did you mean evalEvery\?/],
      [{ optimizer: { lr: 1e-3, learning_rate: 1 } }, /for an optimizer option but received 'learning_rate' \(did you mean lr\?\)/],
      [{ optimizer: { betas: [0.9, 0.95] } }, /'betas' \(did you mean beta1 and beta2\?\)/],
      [{ schedule: { warmupSteps: 3 } }, /for a schedule option but received 'warmupSteps' \(did you mean warmup\?\)/],
      [{ checkpoint: { dir: '/tmp/x', every: 2, kep: 2 } }, /for a checkpoint option but received 'kep' \(did you mean keep\?\)/],
      [{ log: { josnl: 'a.jsonl' } }, /for a log option but received 'josnl' \(did you mean jsonl\?\)/],
      [{ val: val(), evalEvery: 2, sample: { prompt: [1], max_tokens: 4 } }, /for a sample option but received 'max_tokens' \(did you mean maxTokens\?\)/],
      [{ banana: 1 }, /^Expected one of model, train, .* for a Trainer option but received 'banana'$/],
    ];
    for (const [over, re] of cases) {
      const e = refusal(over);
      expect(e.code, JSON.stringify(Object.keys(over))).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(re);
    }
    // fit's own options too.
    expect(errorOf(() => new Trainer(options()).fit({ resum: true } as never)).message).toMatch(/for a fit option but received 'resum' \(did you mean resume\?\)/);
  });
});

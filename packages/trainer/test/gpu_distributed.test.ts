// The Trainer's data parallelism through the real NCCL path on one GPU (issue 22's single-H200
// check): a world of one with a communicator (initDistributed({ nccl: true }) in a job of one)
// trains the small GPT bit for bit as the plain run (losses and weights; bf16 activations, clipping,
// accumulation, one CUDA graph a step with the NCCL groups inside). Skipped without a GPU or NCCL.
import { cudaStatus, findLibrary } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, initDistributed, markovShard, type TrainerOptions } from '../src/index.js';

const gpu = cudaStatus().available && findLibrary('nccl').found;
const shard = markovShard(new MarkovCorpus({ vocab: 64, seed: 5 }), 100_000, 'train');

describe.skipIf(!gpu)('Trainer, distributed, on the GPU through NCCL (a world of one)', () => {
  const options = (over: Partial<TrainerOptions> = {}): TrainerOptions => ({
    model: new GPT({ vocabSize: 64, blockSize: 64, nLayer: 2, nHead: 4, nEmbd: 128 }),
    train: new TokenLoader({ shards: [shard], batchSize: 8, seqLen: 64, seed: 7 }),
    steps: 20,
    accumulate: 2,
    clipGradNorm: 1,
    optimizer: { lr: 3e-3 },
    seed: 11,
    log: { progress: false },
    ...over,
  });

  it('equals the plain run bit for bit: losses and weights', async () => {
    const plain = new Trainer(options({ device: 'cuda:0' })).fit();
    const dist = await initDistributed({ env: {}, nccl: true, timeoutMs: 60_000 });
    expect(dist.communicator?.worldSize).toBe(1);
    try {
      const t = new Trainer(options({ distributed: { communicator: dist.communicator, bucketBytes: 64 * 1024 } }));
      expect(t.device).toBe('cuda:0');
      const r = t.fit();
      expect(r.kernels.find((k) => k.op === 'all_reduce')?.kernel).toBe('all_reduce_nccl');
      expect(r.losses.map((l) => l.loss)).toEqual(plain.losses.map((l) => l.loss));
      expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss);
      for (const [name, w] of plain.weights) expect(Array.from(r.weights.get(name)!), name).toEqual(Array.from(w));
    } finally {
      dist.communicator?.destroy();
    }
  }, 180_000);
});

// Whether the precision fallback's snapshots (host copies of every parameter and moment, taken at
// steps that follow measured times) change a GPU run: a dropless MoE GPT under fp8-blockwise (the
// FP8 grouped GEMMs on a Hopper GPU, emulated elsewhere) trained with a snapshot after every step
// must give the losses of the same run without the fallback, bit for bit, and a second run without
// it the same again. Two fp8-blockwise MoE GPT runs of one commit diverged from step 30 while their
// bf16 runs agreed (docs/gpu-runs/2026-12-05-session23); this separates the snapshots from the
// kernels. Skipped without a GPU.
import { cudaStatus } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { PrecisionPolicy } from '@deepwell/precision';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, markovShard, type TrainerOptions } from '../src/index.js';

const gpu = cudaStatus().available;
const seed = (Math.random() * 2 ** 31) >>> 0;
const shard = markovShard(new MarkovCorpus({ vocab: 256, seed }), 400_000, 'train');

describe.skipIf(!gpu)('Trainer on the GPU: the precision snapshots change nothing', () => {
  const options = (over: Partial<TrainerOptions>): TrainerOptions => ({
    model: new GPT({ vocabSize: 256, blockSize: 128, nLayer: 2, nHead: 2, nEmbd: 256, moe: { experts: 4, topK: 2, routing: 'dropless', activation: 'gelu' } }),
    train: new TokenLoader({ shards: [shard], batchSize: 8, seqLen: 128, seed: 3 }),
    device: 'cuda:0',
    steps: 30,
    optimizer: { lr: 3e-3 },
    schedule: { warmup: 5 },
    seed,
    policy: new PrecisionPolicy({ recipe: 'fp8-blockwise', keepFirstLast: false, minWeightElements: 0 }),
    log: { progress: false },
    ...over,
  });

  it('a dropless MoE GPT under fp8-blockwise: snapshots after every step, none, none again: the same losses bit for bit', () => {
    const none = new Trainer(options({ fallback: false })).fit();
    const every = new Trainer(options({ fallback: { snapshotEvery: 1 } })).fit();
    const again = new Trainer(options({ fallback: false })).fit();
    const losses = (r: typeof none) => r.losses.map((l) => l.loss);
    expect(losses(none).every(Number.isFinite), `seed ${seed}`).toBe(true);
    expect(losses(every), `with snapshots, seed ${seed}`).toEqual(losses(none));
    expect(losses(again), `a second run, seed ${seed}`).toEqual(losses(none));
    console.log(`fp8-blockwise MoE (${none.kernels.filter((k) => k.op.startsWith('grouped_scaled')).map((k) => k.kernel).join(', ') || 'emulated'}): ${losses(none).slice(-3).map((l) => l.toFixed(5)).join(' ')}`);
  }, 300_000);
});

// The Trainer's data parallelism through the real NCCL path on one GPU (issue 22's single-H200
// check): a world of one with a communicator (initDistributed({ nccl: true }) in a job of one)
// trains the small GPT bit for bit as the plain run (losses and weights; bf16 activations, clipping,
// accumulation, one CUDA graph a step with the NCCL groups inside); with ZeRO-1 near it (clipping's
// norm summed over the shards), its checkpoint gathered through NCCL and resumed by a plain run.
// Skipped without a GPU or NCCL.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it("with zero (ZeRO-1): losses within the norm's reduction order of the plain run; its checkpoint (moments gathered through NCCL) resumes without ZeRO", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-gpu-zero-'));
    const plain = new Trainer(options({ device: 'cuda:0' })).fit();
    const dist = await initDistributed({ env: {}, nccl: true, timeoutMs: 60_000 });
    try {
      const t = new Trainer(options({ distributed: { communicator: dist.communicator, zero: true }, checkpoint: { dir, every: 10 } }));
      const r = t.fit();
      for (const op of ['reduce_scatter', 'all_gather']) expect(r.kernels.find((k) => k.op === op)?.kernel).toBe(`${op}_nccl`);
      // Clipping's sum of squares runs over the shards (another order of the same sum): near, not equal.
      r.losses.forEach((l, i) => expect(Math.abs(l.loss - plain.losses[i]!.loss), `step ${l.step}`).toBeLessThanOrEqual(2e-3 * plain.losses[i]!.loss));
      expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss);
      // Step 10's checkpoint, resumed by a plain run, ends where the ZeRO run ended (to within the same order).
      const resumed = new Trainer(options({ device: 'cuda:0', checkpoint: { dir: mkdtempSync(join(tmpdir(), 'deepwell-gpu-zero-r-')), every: 100 } })).fit({ resume: join(dir, 'step-00000010.safetensors') });
      expect(Math.abs(resumed.losses.at(-1)!.loss - r.losses.at(-1)!.loss)).toBeLessThanOrEqual(2e-3 * r.losses.at(-1)!.loss);
    } finally {
      dist.communicator?.destroy();
    }
  }, 240_000);
});

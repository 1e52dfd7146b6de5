// The Trainer on the GPU (bf16 activations, f32 master weights, clipping and accumulation): it
// trains, replays one CUDA graph per step, and resuming from a checkpoint reproduces the
// uninterrupted run's losses bit for bit. Skipped without a GPU.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cudaStatus } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, checkpointsIn, markovShard, type TrainerOptions } from '../src/index.js';

const gpu = cudaStatus().available;
const shard = markovShard(new MarkovCorpus({ vocab: 16, seed: 2 }), 50000, 'train');

describe.skipIf(!gpu)('Trainer on the GPU', () => {
  const options = (over: Partial<TrainerOptions> = {}): TrainerOptions => ({
    model: new GPT('tiny'),
    train: new TokenLoader({ shards: [shard], batchSize: 4, seqLen: 16, seed: 3 }),
    device: 'cuda:0',
    steps: 16,
    accumulate: 2,
    clipGradNorm: 1,
    optimizer: { lr: 3e-3 },
    seed: 4,
    log: { progress: false },
    ...over,
  });

  it('trains in bf16, replaying one CUDA graph per step, and resumes bit for bit', () => {
    const whole = new Trainer(options({ profileStep: 13 })).fit();
    expect(whole.replayed).toBe(true);
    // Step 13 ran node by node between events; its numbers are those of a replay (the resumed run
    // below replays it), and its nodes account for the step's device time.
    expect(whole.profile!.nodes.length).toBeGreaterThan(100);
    expect(whole.profile!.nodes.every((n) => n.ms >= 0)).toBe(true);
    const inNodes = whole.profile!.nodes.reduce((a, n) => a + n.ms, 0);
    expect(inNodes).toBeGreaterThan(0);
    expect(inNodes).toBeLessThanOrEqual(whole.profile!.totalMs * 1.01);
    expect(whole.kernels.find((k) => k.op === 'clip_coef')!.kernel).toBe('clip_coef_cuda');
    expect(whole.kernels.every((k) => k.backend === 'cuda')).toBe(true);
    expect(whole.losses.at(-1)!.loss).toBeLessThan(whole.losses[0]!.loss);
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-gpu-fit-'));
    const t = new Trainer(options({ checkpoint: { dir, every: 5 } }));
    t.on('step', (e) => {
      if (e.step === 12) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    expect(checkpointsIn(dir).at(-1)!.step).toBe(10);
    const resumed = new Trainer(options({ checkpoint: { dir, every: 5 } })).fit({ resume: true });
    expect(resumed.losses).toEqual(whole.losses);
  });
});

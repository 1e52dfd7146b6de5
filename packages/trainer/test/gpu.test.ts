// The Trainer on the GPU (bf16 activations, f32 master weights, clipping and accumulation): it
// trains, replays one CUDA graph per step, and resuming from a checkpoint reproduces the
// uninterrupted run's losses bit for bit. Skipped without a GPU.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cudaStatus } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import type { Executable } from '@deepwell/ir';
import { PrecisionPolicy } from '@deepwell/precision';
import { TokenLoader, Trainer, checkpointsIn, markovShard, type StepEvent, type TrainerOptions } from '../src/index.js';

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

  it('reports each step\'s host time and the allocator\'s bytes in use, constant once the graph replays', () => {
    const t = new Trainer(options({ steps: 12, accumulate: 1 }));
    const events: StepEvent[] = [];
    t.on('step', (e) => events.push(e));
    t.fit();
    expect(events.length).toBe(12);
    for (const e of events) {
      expect(e.hostMs).toBeGreaterThan(0);
      expect(e.hostMs!).toBeLessThan(e.ms);
      expect(e.inUseBytes).toBeGreaterThan(0);
    }
    // From the third step on, one captured graph replays: nothing is allocated or freed.
    expect(new Set(events.slice(2).map((e) => e.inUseBytes)).size).toBe(1);
  });

  it('with an MXFP8 policy and numerics on the GPU, a forced fault in one layer is named, demoted and rolled back', () => {
    const opts = options({ steps: 24, accumulate: 1, policy: new PrecisionPolicy({ recipe: 'mxfp8', keepFirstLast: false, minWeightElements: 0, numerics: true }), fallback: { window: 5, snapshotEvery: 4 } });
    const t = new Trainer(opts);
    let exe: Executable | null = null;
    const fallbacks: unknown[] = [];
    t.on('start', (e) => (exe = e.executable));
    t.on('fallback', ({ executable, ...e }) => ((exe = executable), fallbacks.push(e)));
    t.on('step', (e) => {
      // Once, after step 10: blocks.1.mlp.fc's weight times 1e40 (beyond bf16's range).
      if (e.step !== 10 || fallbacks.length) return;
      exe!.set('blocks.1.mlp.fc.weight', Float64Array.from(exe!.get('blocks.1.mlp.fc.weight'), (v) => v * 1e40));
    });
    const r = t.fit();
    expect(r.kernels.find((k) => k.op === 'quant_stats')!.kernel).toBe('quant_stats_cuda');
    expect(r.kernels.find((k) => k.op === 'fake_quant')!.kernel).toBe('fake_quant_cuda');
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toMatchObject({ step: 11, restoredTo: 8, source: 'snapshot' });
    expect(r.fallbacks).toEqual([expect.objectContaining({ step: 11, layer: 'blocks.1.mlp.fc', from: 'mxfp8', to: 'bf16' })]);
    expect(r.losses.map((l) => l.step)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss);
  });
});

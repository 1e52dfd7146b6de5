// The Trainer's `distributed` option on the CPU: a world of one without a communicator trains bit
// for bit as a plain run (the step's all_reduce nodes copy), with the all-reduces in its step, and
// resumes from its checkpoints; the option's errors (a loader of another rank, a per-rank fallback, a
// junk communicator, another device). initDistributed in a job of one. The NCCL path (a communicator
// of one rank on the H200) is gpu_distributed.test.ts; several ranks need several GPUs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrecisionPolicy } from '@deepwell/precision';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, initDistributed } from '../src/index.js';
import { readSafetensors } from '../src/safetensors.js';
import { errorOf } from '../../../testing/errors.js';
import { tinyRun } from './tiny-run.js';

const { trainShard, options } = tinyRun(5, 9);
const loader = (over: Record<string, number> = {}) => new TokenLoader({ shards: [trainShard], batchSize: 4, seqLen: 16, seed: 9, ...over });

describe('Trainer with distributed (a world of one on the CPU)', () => {
  it('trains bit for bit as the plain run, the all-reduces in its step, rank 0 of 1', () => {
    const plain = new Trainer(options({ train: loader() })).fit();
    const t = new Trainer(options({ train: loader(), distributed: { bucketBytes: 1000 } }));
    expect([t.rank, t.worldSize]).toEqual([0, 1]);
    expect(t.step.nodes.filter((n) => n.op === 'all_reduce').length).toBeGreaterThan(2);
    const r = t.fit();
    expect(r.losses.map((l) => l.loss)).toEqual(plain.losses.map((l) => l.loss));
    for (const [name, w] of plain.weights) expect(Array.from(r.weights.get(name)!)).toEqual(Array.from(w));
  });

  it('resumes from its own checkpoint as the uninterrupted run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-dist-'));
    const whole = new Trainer(options({ train: loader(), distributed: {} })).fit();
    new Trainer(options({ train: loader(), steps: 12, distributed: {}, checkpoint: { dir, every: 5 } })).fit();
    // A second run of the same job, resumed from step 10's checkpoint (keep 3: 5, 10, 12): to 12 again.
    const again = new Trainer(options({ train: loader(), steps: 12, distributed: {}, checkpoint: { dir, every: 5 } })).fit({ resume: join(dir, 'step-00000010.safetensors') });
    expect(again.losses.at(-1)!.loss).toBe(whole.losses.at(-1)!.loss);
  });

  it('with zero (ZeRO-1): trains bit for bit as the plain run; its checkpoints hold whole moments under the plain names, and resume either way', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-zero-'));
    const plain = new Trainer(options({ train: loader(), steps: 12 })).fit();
    const t = new Trainer(options({ train: loader(), steps: 12, distributed: { zero: true }, checkpoint: { dir, every: 5 } }));
    expect(t.step.nodes.some((n) => n.op === 'reduce_scatter') && t.step.nodes.some((n) => n.op === 'all_gather')).toBe(true);
    expect(Object.keys(t.step.state).every((s) => s.startsWith('zero.'))).toBe(true);
    const z = t.fit();
    expect(z.losses.map((l) => l.loss)).toEqual(plain.losses.map((l) => l.loss));
    for (const [name, w] of plain.weights) expect(Array.from(z.weights.get(name)!)).toEqual(Array.from(w));
    const file = readSafetensors(join(dir, 'step-00000010.safetensors'));
    expect([...file.tensors.keys()].filter((n) => n.startsWith('adamw.m.')).length).toBe(plain.weights.size);
    expect([...file.tensors.keys()].some((n) => n.startsWith('zero.'))).toBe(false);
    // The ZeRO checkpoint resumed without ZeRO, and a plain run's checkpoint resumed with it: both end as the plain run.
    const plainDir = mkdtempSync(join(tmpdir(), 'deepwell-zero-plain-'));
    new Trainer(options({ train: loader(), steps: 12, checkpoint: { dir: plainDir, every: 5 } })).fit();
    const a = new Trainer(options({ train: loader(), steps: 12 })).fit({ resume: join(dir, 'step-00000010.safetensors') });
    const b = new Trainer(options({ train: loader(), steps: 12, distributed: { zero: true } })).fit({ resume: join(plainDir, 'step-00000010.safetensors') });
    for (const r of [a, b]) expect(r.losses.at(-1)!.loss).toBe(plain.losses.at(-1)!.loss);
  });

  it('refuses a loader of another rank, a per-rank fallback, a junk communicator and unknown keys', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ train: loader({ rank: 1, worldSize: 2 }), distributed: {} }, /train loader of rank 0 of 1.*rank 1 of 2/],
      [{ train: loader(), distributed: {}, policy: new PrecisionPolicy({ recipe: 'mxfp8' }) }, /fallback: false with a policy in a distributed run/],
      [{ train: loader(), distributed: { communicator: { rank: 0, worldSize: 1 } } }, /Communicator \(kernels-native; initDistributed\(\) makes one\)/],
      [{ train: loader(), distributed: { bucketBytes: 0 } }, /distributed.bucketBytes/],
      [{ train: loader(), distributed: { zero: 'yes' } }, /boolean for distributed.zero/],
      [{ train: loader(), distributed: { comm: 1 } }, /comm/],
      [{ train: loader(), distributed: 3 }, /communicator, bucketBytes/],
    ];
    for (const [over, msg] of cases) {
      const e = errorOf(() => new Trainer(options(over as never)));
      expect(e.code, String(msg)).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(msg);
    }
  });

  it('initDistributed in a job of one: rank 0 of 1 on cuda:0, no communicator; its options checked', async () => {
    const d = await initDistributed({ env: {} });
    expect([d.rank, d.worldSize, d.localRank, d.device, d.communicator]).toEqual([0, 1, 0, 'cuda:0', undefined]);
    for (const bad of [{ timeoutMs: 0 }, { nccl: 'yes' }, { envs: {} }]) {
      const e = await initDistributed(bad as never).then(() => null, (err: unknown) => err as { code: string });
      expect(e?.code, JSON.stringify(bad)).toBe('INVALID_ARGUMENT');
    }
  });
});

// The Trainer on the CPU reference backend with the tiny GPT: a run with evaluation, checkpoints,
// the JSONL log and the loss curve; resuming equals the uninterrupted run bit for bit, also after
// a kill -9 in the middle of a checkpoint write; bad checkpoints and configs that cannot fit give
// clear errors.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, Generator, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, checkpointsIn, markovShard, readSafetensors, writeSafetensors, type Shard, type TrainerOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';
import { tinyRun } from './tiny-run.js';

const { corpus, trainShard, options } = tinyRun(1, 5);
const valShard: Shard = markovShard(corpus, 4000, 'val');
const fresh = () => mkdtempSync(join(tmpdir(), 'deepwell-fit-'));

describe('Trainer.fit on the CPU', () => {
  it('samples at each evaluation from the weights of that step', () => {
    const val = () => new TokenLoader({ shards: [valShard], batchSize: 4, seqLen: 16, shuffle: false });
    const sample = { prompt: [1, 2, 3], maxTokens: 5, seed: 4, decode: (ids: number[]) => ids.map((i) => 'abcdefghijklmnop'[i]).join('') };
    const t = new Trainer(options({ val: val(), evalEvery: 6, evalBatches: 1, sample }));
    const seen: { step: number; tokens: number[]; text: string }[] = [];
    t.on('sample', (e) => seen.push(e));
    const r = t.fit();
    expect(seen.map((e) => e.step)).toEqual([6, 12]);
    const last = new Generator(new GPT('tiny'), r.weights).generate(sample.prompt, { maxTokens: 5, seed: 4 });
    expect(seen[1]!.tokens).toEqual(last);
    expect(seen[1]!.text).toBe(sample.decode([1, 2, 3, ...last]));
    expect(errorOf(() => new Trainer(options({ sample }))).message).toMatch(/Expected val and evalEvery for sample/);
    expect(errorOf(() => new Trainer(options({ val: val(), evalEvery: 6, sample: { prompt: [] } }))).message).toMatch(/non-empty array of token ids for sample.prompt/);
  });

  it('trains with evaluation, checkpoints, events, a JSONL log and a loss curve', () => {
    const dir = fresh();
    const seen: string[] = [];
    const t = new Trainer(
      options({
        val: new TokenLoader({ shards: [valShard], batchSize: 4, seqLen: 16, shuffle: false }),
        evalEvery: 6,
        evalBatches: 3,
        checkpoint: { dir, every: 4, keep: 2 },
        log: { progress: false, jsonl: join(dir, 'log.jsonl') },
      }),
    );
    t.on('step', (e) => seen.push(`step ${e.step}`)).on('eval', (e) => seen.push(`eval ${e.step}`)).on('checkpoint', (e) => seen.push(`ckpt ${e.step}`));
    const r = t.fit();
    expect(r.losses.map((l) => l.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss); // it learns
    expect(r.evals.map((e) => e.step)).toEqual([6, 12]);
    expect(seen).toContain('eval 6');
    expect(seen.filter((s) => s.startsWith('ckpt'))).toEqual(['ckpt 4', 'ckpt 8', 'ckpt 12']);
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([8, 12]); // keep 2
    const f = readSafetensors(r.checkpoint!);
    expect(f.metadata.format).toBe('deepwell-checkpoint');
    expect(f.metadata.step).toBe('12');
    expect(f.tensors.get('wte.weight')!.shape).toEqual([16, 32]);
    expect(f.tensors.has('adamw.m.wte.weight')).toBe(true);
    // The trained weights come back with the result: the final checkpoint's parameters, exactly.
    expect([...r.weights.keys()].sort()).toEqual(new GPT('tiny').namedParameters().map(([n]) => n).sort());
    for (const [name, w] of r.weights) {
      const { data } = f.tensors.get(name)!;
      expect(Array.from(w), name).toEqual(Array.from(new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))));
    }
    expect(new Generator(new GPT('tiny'), r.weights).generate([1, 2], { maxTokens: 3 }).length).toBe(3);
    const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.filter((l) => l.event === 'step').length).toBe(12);
    expect(log.at(-1).event).toBe('end');
    expect(log.find((l) => l.event === 'step').tokensPerSecond).toBeGreaterThan(0);
    // Host time and the allocator's bytes are a GPU's (the CPU reference has neither).
    expect(log.find((l) => l.event === 'step')).not.toHaveProperty('hostMs');
    const svg = readFileSync(r.lossCurve!, 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect((svg.match(/<polyline/g) ?? []).length).toBe(2); // train and eval
  });

  it('resumes from a checkpoint to exactly the losses of the uninterrupted run', () => {
    const whole = new Trainer(options()).fit().losses;
    const dir = fresh();
    const t = new Trainer(options({ checkpoint: { dir, every: 4 } }));
    t.on('step', (e) => {
      if (e.step === 9) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    expect(checkpointsIn(dir).at(-1)!.step).toBe(8);
    const resumed = new Trainer(options({ checkpoint: { dir, every: 4 } })).fit({ resume: true });
    expect(resumed.losses).toEqual(whole); // steps 1-8 from the checkpoint's record, 9-12 computed again
  });

  it('survives kill -9 in the middle of a checkpoint write: the previous checkpoint resumes exactly', async () => {
    const dir = fresh();
    const marker = join(dir, 'writing');
    // A child process (test/fixtures/crash-child.mjs, on the built package) trains with checkpoints
    // every 5 steps and is killed while writing step 15's.
    const script = new URL('./fixtures/crash-child.mjs', import.meta.url).pathname;
    const child = spawn(process.execPath, [script, dir, marker], { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code, signal) => res(signal === 'SIGKILL' ? -9 : code)));
    for (let i = 0; i < 450 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(marker), stderr).toBe(true);
    child.kill('SIGKILL');
    expect(await exited).toBe(-9);
    // The half-written file is there, hidden; the complete checkpoints are 5 and 10.
    expect(readdirSync(dir).some((f) => /^\.step-00000015\.safetensors\.tmp-\d+$/.test(f))).toBe(true);
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([5, 10]);

    const sameData = { shards: [markovShard(new MarkovCorpus({ vocab: 16, seed: 1 }), 20000, 'train')], batchSize: 4, seqLen: 16, seed: 5 };
    const opts = (over: Partial<TrainerOptions>) => options({ train: new TokenLoader(sameData), steps: 20, ...over });
    const whole = new Trainer(opts({})).fit().losses;
    const resumed = new Trainer(opts({ checkpoint: { dir, every: 5 } })).fit({ resume: true });
    expect(resumed.losses).toEqual(whole);
    expect(readdirSync(dir).some((f) => f.includes('.tmp-'))).toBe(false); // the leftover is cleaned up
  }, 120_000);

  it('accumulates micro-batches like one big batch, and clips by the global norm', () => {
    const loader = (B: number) => new TokenLoader({ shards: [trainShard], batchSize: B, seqLen: 16, seed: 9 });
    const big = new Trainer(options({ train: loader(4), steps: 4 })).fit().losses;
    const norms: number[] = [];
    const t = new Trainer(options({ train: loader(2), accumulate: 2, steps: 4, clipGradNorm: 1e9 }));
    t.on('step', (e) => norms.push(e.gradNorm!));
    const acc = t.fit().losses;
    acc.forEach((l, i) => expect(Math.abs(l.loss - big[i]!.loss)).toBeLessThan(1e-5));
    expect(norms.every((n) => Number.isFinite(n) && n > 0)).toBe(true);
    // A tight clip changes the trajectory; the reported norm is the unclipped one.
    const clipped: number[] = [];
    const c = new Trainer(options({ train: loader(4), steps: 4, clipGradNorm: 1e-3 }));
    c.on('step', (e) => clipped.push(e.gradNorm!));
    const cl = c.fit().losses;
    expect(clipped[0]).toBeCloseTo(norms[0]!, 4);
    expect(cl[3]!.loss).not.toBe(big[3]!.loss);
  });

  it('refuses a checkpoint with missing or mismatched tensors, or a foreign file, loading nothing', () => {
    const dir = fresh();
    const r = new Trainer(options({ steps: 2, checkpoint: { dir, every: 2 } })).fit();
    const f = readSafetensors(r.checkpoint!);
    const drop = new Map(f.tensors);
    drop.delete('wte.weight');
    const p1 = join(dir, 'missing.safetensors');
    writeSafetensors(p1, drop, f.metadata);
    // steps: 2, the checkpoint's: a resume with another schedule is refused before any tensor is read.
    expect(errorOf(() => new Trainer(options({ steps: 2 })).fit({ resume: p1 })).message).toMatch(/missing wte\.weight.*nothing was loaded/);
    const bad = new Map(f.tensors);
    bad.set('wte.weight', { dtype: 'F32', shape: [32, 16], data: f.tensors.get('wte.weight')!.data });
    const p2 = join(dir, 'shape.safetensors');
    writeSafetensors(p2, bad, f.metadata);
    expect(errorOf(() => new Trainer(options({ steps: 2 })).fit({ resume: p2 })).message).toMatch(/'wte\.weight' is F32\[32, 16\] but the model's is f32\[16, 32\]/);
    const p3 = join(dir, 'foreign.safetensors');
    writeSafetensors(p3, { x: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
    expect(errorOf(() => new Trainer(options()).fit({ resume: p3 })).message).toMatch(/not a Deepwell checkpoint/);
  });

  it('refuses a model that cannot fit before allocating anything, with dryrun figures', () => {
    // 19.7B parameters: under nn's own limit on a GPT (2^35), far over this host's memory (16 bytes a
    // parameter for weights, gradients and AdamW's two moments: 316 GB).
    const huge = new GPT({ vocabSize: 50304, blockSize: 64, nLayer: 24, nHead: 32, nEmbd: 8192 });
    const e = errorOf(() => new Trainer(options({ model: huge, train: new TokenLoader({ shards: [trainShard], batchSize: 1, seqLen: 64 }) })));
    expect(e.code).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/needs [\d.]+ GiB on cpu .* free/);
  });

  it('rejects bad options', () => {
    expect(errorOf(() => new Trainer(options({ steps: 0 }))).message).toMatch(/positive integer for steps/);
    expect(errorOf(() => new Trainer(options({ val: new TokenLoader({ shards: [valShard], batchSize: 2, seqLen: 16 }) }))).message).toMatch(/val loader's batch shape/);
    expect(errorOf(() => new Trainer(options()).fit({ resume: true })).message).toMatch(/checkpoint directory/);
  });
});

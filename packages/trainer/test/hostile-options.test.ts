// Issue 20, bad input into the Trainer: every option that is a count, a size or a rate is checked
// for NaN, ±Infinity, negatives, fractions, huge values and wrong types before anything is
// captured, with an error naming the option; a schedule function that returns a negative or NaN
// learning rate is refused at the step it does so; a checkpoint whose data position does not fit
// the loader's data is refused before any step (it used to hang in the loader).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { TokenLoader, Trainer, markovShard, readSafetensors, writeSafetensors, type Shard, type TrainerOptions } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const corpus = new MarkovCorpus({ vocab: 16, seed });
const trainShard: Shard = markovShard(corpus, 4000, 'train');
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
const pick = <T,>(a: readonly T[]): T => a[int(0, a.length - 1)]!;

function options(over: Record<string, unknown> = {}): TrainerOptions {
  return {
    model: new GPT('tiny'),
    train: new TokenLoader({ shards: [trainShard], batchSize: 2, seqLen: 16, seed }),
    device: 'cpu',
    steps: 4,
    optimizer: { lr: 3e-3 },
    log: { progress: false },
    ...over,
  } as TrainerOptions;
}
const val = () => new TokenLoader({ shards: [trainShard], batchSize: 2, seqLen: 16, seed: seed + 1 });
const refusal = (over: Record<string, unknown>) => errorOf(() => new Trainer(options(over)));

const BAD_COUNTS = [0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300, '3', null, true];
const BAD_RATES = [NaN, Infinity, -Infinity, -1, '0.5', null];

describe('Trainer options (issue 20)', () => {
  it('refuses a bad count for every integer option, naming it', () => {
    const withVal = { val: val(), evalEvery: 2 };
    const cases: [string, (v: unknown) => Record<string, unknown>][] = [
      ['steps', (v) => ({ steps: v })],
      ['evalEvery', (v) => ({ val: val(), evalEvery: v })],
      ['evalBatches', (v) => ({ ...withVal, evalBatches: v })],
      ['accumulate', (v) => ({ accumulate: v })],
      ['profileStep', (v) => ({ profileStep: v })],
      ['checkpoint.every', (v) => ({ checkpoint: { dir: join(tmpdir(), 'never-written'), every: v } })],
      ['checkpoint.keep', (v) => ({ checkpoint: { dir: join(tmpdir(), 'never-written'), every: 2, keep: v } })],
      ['log.every', (v) => ({ log: { progress: false, every: v } })],
      ['schedule.warmup', (v) => ({ schedule: { warmup: v === 0 ? 5 : v } })], // 0 is no warm-up; 5 is past steps
      ['seed', (v) => ({ seed: v === 0 ? -1 : v })],
      ['sample.maxTokens', (v) => ({ ...withVal, sample: { prompt: [1], maxTokens: v } })],
      ['sample.topK', (v) => ({ ...withVal, sample: { prompt: [1], topK: v } })],
    ];
    for (const [name, make] of cases) {
      for (const v of [pick(BAD_COUNTS), pick(BAD_COUNTS), 2 ** 40]) {
        const e = refusal(make(v));
        expect(e.code, `${name} ${String(v)}`).toBe('INVALID_ARGUMENT');
        expect(e.message, `${name} ${String(v)}`).toMatch(new RegExp(`^Expected .* for ${name.replace('.', '\\.')} but received`));
      }
    }
    // evalBatches 0 would make a NaN eval loss (a mean of nothing).
    expect(refusal({ ...withVal, evalBatches: 0 }).message).toMatch(/for evalBatches but received 0/);
    expect(refusal({ profileStep: 5 }).message).toMatch(/\[1, 4\] for profileStep/);
  });

  it('refuses a bad rate for every number option, naming it', () => {
    const cases: [string, (v: unknown) => Record<string, unknown>][] = [
      ['optimizer.lr', (v) => ({ optimizer: { lr: v } })],
      ['optimizer.beta1', (v) => ({ optimizer: { beta1: v } })],
      ['optimizer.beta2', (v) => ({ optimizer: { beta2: v } })],
      ['optimizer.eps', (v) => ({ optimizer: { eps: v } })],
      ['optimizer.weightDecay', (v) => ({ optimizer: { weightDecay: v } })],
      ['clipGradNorm', (v) => ({ clipGradNorm: v })],
      ['schedule.minLr', (v) => ({ schedule: { minLr: v } })],
      ['sample.temperature', (v) => ({ val: val(), evalEvery: 2, sample: { prompt: [1], temperature: v } })],
      ['sample.topP', (v) => ({ val: val(), evalEvery: 2, sample: { prompt: [1], topP: v } })],
    ];
    for (const [name, make] of cases) {
      for (const v of [...BAD_RATES]) {
        const e = refusal(make(v));
        expect(e.message, `${name} ${String(v)}`).toMatch(new RegExp(`^Expected .* for ${name.replace('.', '\\.')} but received`));
      }
    }
    expect(refusal({ schedule: { minLr: 1 } }).message).toMatch(/\[0, 0\.003\] \(optimizer\.lr\) for schedule\.minLr/);
  });

  it('refuses unknown precision names listing the valid ones, and values of the wrong kind', () => {
    for (const precision of ['fp16', 'f16', 'BF16', 'fp8', 5]) expect(refusal({ precision }).message).toMatch(/^Expected one of 'bf16', 'f32' for precision but received/);
    expect(refusal({ model: { hello: 1 } }).message).toMatch(/a model with forward/);
    expect(refusal({ train: { next: () => ({}) } }).message).toMatch(/a TokenLoader for train/);
    expect(refusal({ config: { big: 1n } }).message).toMatch(/a JSON value for config/);
    expect(refusal({ val: val(), evalEvery: 2, sample: { prompt: [1, 99] } }).message).toMatch(/token id in \[0, 16\) for sample\.prompt\[1\]/);
    expect(refusal({ val: val(), evalEvery: 2, sample: { prompt: [1], stop: 16 } }).message).toMatch(/sample\.stop/);
  });

  it('refuses a schedule function that goes negative or NaN at the step it does', () => {
    const bad = int(2, 4);
    const value = pick([-1e-3, NaN, -Infinity]);
    const t = new Trainer(options({ schedule: (s: number) => (s === bad ? value : 1e-3) }));
    const steps: number[] = [];
    t.on('step', (e) => steps.push(e.step));
    const e = errorOf(() => t.fit());
    expect(e.message).toMatch(new RegExp(`^Expected a finite learning rate >= 0 from the schedule at step ${bad} but received`));
    expect(steps).toEqual(Array.from({ length: bad - 1 }, (_, i) => i + 1));
  });

  it('refuses a checkpoint whose data position does not fit the data, before any step', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepwell-hostile-fit-'));
    const r = new Trainer(options({ steps: 2, checkpoint: { dir, every: 2 } })).fit();
    const f = readSafetensors(r.checkpoint!);
    const at = join(mkdtempSync(join(tmpdir(), 'deepwell-hostile-ckpt-')), 'moved.safetensors');
    writeSafetensors(at, f.tensors, { ...f.metadata, loader: JSON.stringify({ epoch: 0, shard: 0, sample: pick([4e9, 2 ** 40, 1e6 + int(0, 99)]) }) });
    const t = new Trainer(options({ steps: 4 }));
    const steps: number[] = [];
    t.on('step', (e) => steps.push(e.step));
    const t0 = performance.now();
    expect(errorOf(() => t.fit({ resume: at, extend: true })).message).toMatch(/Expected a loader state sample below \d+/);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(steps).toEqual([]);
  });
});

// Issue 19, a run and its files: a new run never deletes or overwrites another run's checkpoints
// or log (it refuses a folder that holds them, and pruning deletes only the run's own files);
// resuming with another learning-rate schedule is refused unless extend keeps the checkpoint's;
// the ETA after a resume counts this process's steps; every evaluation uses the same held-out
// batches; the step's executable and the Trainer itself refuse use after fit(). On the CPU
// reference backend with the tiny GPT and a Markov corpus drawn from a fresh seed.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Executable } from '@deepwell/ir';
import { GPT } from '@deepwell/nn';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tinyRun } from './tiny-run.js';
import { Progress, TokenLoader, Trainer, checkpointsIn, constant, markovShard, readSafetensors, writeSafetensors, type Shard, type TrainerOptions } from '../src/index.js';
import { pruneCheckpoints } from '../src/checkpoint.js';
import { errorOf } from '../../../testing/errors.js';

const seed = 1 + Math.floor(Math.random() * 1e6);
const { corpus, options } = tinyRun(seed);
const valShard: Shard = markovShard(corpus, 4000, 'val');
const fresh = () => mkdtempSync(join(tmpdir(), 'deepwell-runs-'));


/** Every file of a directory with a hash of its bytes. */
function contents(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

/** The lr and loss of every step a fit runs. */
function recorded(t: Trainer): { step: number; lr: number; loss: number }[] {
  const seen: { step: number; lr: number; loss: number }[] = [];
  t.on('step', (e) => seen.push({ step: e.step, lr: e.lr, loss: e.loss }));
  return seen;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a run and the files of its folder (issue 19, defect 1)', () => {
  it("a new run refuses a folder that holds another run's checkpoints, deleting and writing nothing", () => {
    const dir = fresh();
    new Trainer(options({ checkpoint: { dir, every: 4, keep: 3 } })).fit(); // the older, longer run: 4, 8, 12
    const before = contents(dir);
    const t = new Trainer(options({ steps: 4, checkpoint: { dir, every: 2 } }));
    const e = errorOf(() => t.fit());
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain(dir);
    expect(e.message).toMatch(/holds checkpoints \(steps 4, 8, 12/);
    expect(e.message).toMatch(/resume: true/);
    expect(e.message).toMatch(/another directory/);
    expect(contents(dir)).toEqual(before);
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([4, 8, 12]);
  });

  it("pruning deletes only the run's own checkpoints: never another run's, an older one's, or a foreign file", () => {
    const dir = fresh();
    const r = new Trainer(options({ steps: 2, checkpoint: { dir, every: 1, keep: 5 } })).fit();
    const f = readSafetensors(r.checkpoint!);
    const mine = f.metadata.run!;
    expect(mine).toMatch(/\S{8,}/);
    // Checkpoints of another run (after this run's steps) and of a run without an id, and a file of the user's.
    const other = join(dir, 'step-00000040.safetensors');
    writeSafetensors(other, f.tensors, { ...f.metadata, run: 'another-run', step: '40' });
    const legacyMeta: Record<string, string> = { ...f.metadata, step: '30' };
    delete legacyMeta.run;
    writeSafetensors(join(dir, 'step-00000030.safetensors'), f.tensors, legacyMeta);
    writeSafetensors(join(dir, 'step-00000050.safetensors'), { x: { dtype: 'F32', shape: [3], data: Float32Array.of(Math.random(), 2, 3) } });
    // This run's: steps 1 and 2, and three more written under its id.
    for (const s of [3, 4, 5]) writeSafetensors(join(dir, `step-0000000${s}.safetensors`), f.tensors, { ...f.metadata, step: String(s) });
    pruneCheckpoints(dir, 2, mine);
    expect(checkpointsIn(dir).map((c) => c.step)).toEqual([4, 5, 30, 40, 50]);
  });

  it('a JSONL log is never appended to by an unrelated run; a resumed run appends to its own', () => {
    const dir = fresh();
    const jsonl = join(dir, 'log.jsonl');
    const t = new Trainer(options({ checkpoint: { dir: join(dir, 'ckpt'), every: 4 }, log: { progress: false, jsonl } }));
    t.on('step', (e) => {
      if (e.step === 6) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    const first = readFileSync(jsonl, 'utf8');
    // A new run writing to the same log, in another checkpoint folder: refused, the log untouched.
    const e = errorOf(() => new Trainer(options({ checkpoint: { dir: join(dir, 'other'), every: 4 }, log: { progress: false, jsonl } })).fit());
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain(jsonl);
    expect(e.message).toMatch(/holds the log of another run/);
    expect(readFileSync(jsonl, 'utf8')).toBe(first);
    // The interrupted run, resumed, appends: one log, one run id, steps 1-6 then 5-12.
    new Trainer(options({ checkpoint: { dir: join(dir, 'ckpt'), every: 4 }, log: { progress: false, jsonl } })).fit({ resume: true });
    const log = readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(readFileSync(jsonl, 'utf8').startsWith(first)).toBe(true);
    expect(new Set(log.filter((l) => l.run !== undefined).map((l) => l.run)).size).toBe(1);
    expect(log.filter((l) => l.event === 'step').map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 5, 6, 7, 8, 9, 10, 11, 12]);
  });
});

describe('resuming (issue 19, defects 3 and 4)', () => {
  it("refuses resume: true on a folder without checkpoints, naming it; 'auto' starts fresh there and resumes once there are some", () => {
    const dir = fresh();
    const missing = join(dir, 'none');
    for (const d of [dir, missing]) {
      const e = errorOf(() => new Trainer(options({ checkpoint: { dir: d, every: 4 } })).fit({ resume: true }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(d);
      expect(e.message).toMatch(/resume: 'auto'/);
    }
    const whole = new Trainer(options()).fit().losses;
    const t = new Trainer(options({ checkpoint: { dir, every: 4 } }));
    t.on('step', (e) => {
      if (e.step === 7) throw new Error('interrupted');
    });
    expect(() => t.fit({ resume: 'auto' })).toThrow('interrupted');
    const again = new Trainer(options({ checkpoint: { dir, every: 4 } }));
    const ran = recorded(again);
    expect(again.fit({ resume: 'auto' }).losses).toEqual(whole);
    expect(ran[0]!.step).toBe(5);
  });

  it("refuses a resume whose schedule differs, saying what differs; extend keeps the checkpoint's schedule and says what happens past its end", () => {
    const dir = fresh();
    const uninterrupted = new Trainer(options());
    const wholeSteps = recorded(uninterrupted);
    uninterrupted.fit();
    const t = new Trainer(options({ checkpoint: { dir, every: 4 } }));
    t.on('step', (e) => {
      if (e.step === 10) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    const longer = (over: Partial<TrainerOptions> = {}) => new Trainer(options({ steps: 24, checkpoint: { dir, every: 4 }, ...over }));
    let e = errorOf(() => longer().fit({ resume: true }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/total 12 → 24/);
    expect(e.message).toMatch(/warmup 2 → 3/);
    expect(e.message).toMatch(/extend: true/);
    e = errorOf(() => new Trainer(options({ optimizer: { lr: 1e-3 }, checkpoint: { dir, every: 4 } })).fit({ resume: true }));
    expect(e.message).toMatch(/lr 0\.003 → 0\.001/);
    expect(e.message).toMatch(/minLr 0\.0003 → 0\.0001/);
    expect(errorOf(() => new Trainer(options()).fit({ extend: true })).message).toMatch(/Expected resume with extend/);

    // extend: steps 9-12 as the uninterrupted run (its lr and losses exactly), then the checkpoint's minLr.
    const ext = longer({ log: {} });
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (lines.push(String(s)), true));
    const ran = recorded(ext);
    const r = ext.fit({ resume: true, extend: true });
    vi.restoreAllMocks();
    expect(ran.map((s) => s.step)).toEqual(Array.from({ length: 16 }, (_, i) => i + 9));
    expect(ran.slice(0, 4)).toEqual(wholeSteps.slice(8));
    expect(ran.slice(4).every((s) => s.lr === 3e-3 / 10)).toBe(true);
    expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss);
    expect(lines.join('')).toMatch(/steps 13–24 run at its minLr 3\.00e-4/);
    // The checkpoint records the schedule the run used: a later resume with the same options asks for extend again.
    expect(JSON.parse(readSafetensors(r.checkpoint!).metadata.schedule!)).toMatchObject({ lr: 3e-3, warmup: 2, minLr: 3e-3 / 10, total: 12 });
  });

  it('the ETA after a resume counts the steps this process ran', () => {
    // 2 s a step over the one step run here, 299 steps to go: 598 s (the old count, from step 1, said 2 s).
    const out: string[] = [];
    const stream = { write: (s: string) => (out.push(s), true), isTTY: false } as unknown as NodeJS.WriteStream;
    new Progress(stream, 1, false).step({ step: 301, total: 600, done: 1, loss: 1, lr: 1e-3, tokensPerSecond: 1, mfu: null, elapsed: 2 });
    expect(out[0]).toMatch(/ETA 09:58/);
    const dir = fresh();
    const t = new Trainer(options({ checkpoint: { dir, every: 4 } }));
    t.on('step', (e) => {
      if (e.step === 9) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    const calls: { step: number; done?: number }[] = [];
    vi.spyOn(Progress.prototype, 'step').mockImplementation((s) => void calls.push(s));
    vi.spyOn(Progress.prototype, 'line').mockImplementation(() => {});
    new Trainer(options({ checkpoint: { dir, every: 4 }, log: {} })).fit({ resume: true });
    expect(calls.map((c) => [c.step, c.done])).toEqual([9, 10, 11, 12].map((s) => [s, s - 8]));
  });
});

describe('evaluation on a fixed held-out set (issue 19, defect 5)', () => {
  it('every evaluation reads the same batches: an unchanged model gives identical losses, and a resumed run the same evaluations', () => {
    const val = () => new TokenLoader({ shards: [valShard], batchSize: 4, seqLen: 16, seed: seed + 2 });
    const still = new Trainer(options({ steps: 6, schedule: constant(0), val: val(), evalEvery: 2, evalBatches: 2 })).fit();
    expect(still.evals.map((e) => e.step)).toEqual([2, 4, 6]);
    expect(Number.isFinite(still.evals[0]!.loss)).toBe(true);
    expect(still.evals.map((e) => e.loss)).toEqual(still.evals.map(() => still.evals[0]!.loss));
    // Training: the evaluations follow the model; a run resumed at step 8 gives the uninterrupted run's.
    const whole = new Trainer(options({ val: val(), evalEvery: 4, evalBatches: 2 })).fit().evals;
    expect(whole[2]!.loss).toBeLessThan(whole[0]!.loss);
    const dir = fresh();
    const t = new Trainer(options({ val: val(), evalEvery: 4, evalBatches: 2, checkpoint: { dir, every: 4 } }));
    t.on('step', (e) => {
      if (e.step === 9) throw new Error('interrupted');
    });
    expect(() => t.fit()).toThrow('interrupted');
    expect(new Trainer(options({ val: val(), evalEvery: 4, evalBatches: 2, checkpoint: { dir, every: 4 } })).fit({ resume: true }).evals).toEqual(whole);
  });
});

describe('after fit() (issue 19, defect 6)', () => {
  it("the 'start' event's executable says it was disposed when fit() returned; FitResult.weights holds the weights", () => {
    const t = new Trainer(options({ steps: 3 }));
    let exe: Executable | null = null;
    t.on('start', (e) => (exe = e.executable));
    const r = t.fit();
    for (const use of [() => exe!.get('wte.weight'), () => exe!.set('wte.weight', r.weights.get('wte.weight')!), () => exe!.run({})]) {
      const e = errorOf(use);
      expect(e.code).toBe('DISPOSED');
      expect(e.message).toMatch(/disposed when fit\(\) returned/);
      expect(e.message).toMatch(/FitResult\.weights/);
    }
    expect(r.weights.get('wte.weight')!.some((v) => v !== 0)).toBe(true);
  });

  it('a second fit() on the same Trainer is refused (it would start from fresh weights); a refused fit does not use the Trainer up', () => {
    const dir = fresh();
    new Trainer(options({ steps: 4, checkpoint: { dir, every: 2 } })).fit();
    const t = new Trainer(options({ steps: 6, checkpoint: { dir, every: 2 } }));
    expect(errorOf(() => t.fit()).message).toMatch(/holds checkpoints/); // refused before training: t is still unused
    const r = t.fit({ resume: true, extend: true });
    expect(r.losses.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const e = errorOf(() => t.fit({ resume: true }));
    expect(e.code).toBe('DISPOSED');
    expect(e.message).toMatch(/fit\(\) already ran on this Trainer/);
    const once = new Trainer(options({ steps: 2 }));
    once.fit();
    expect(errorOf(() => once.fit()).message).toMatch(/already ran/);
  });
});

describe('checkpoint metadata', () => {
  it('records the run id and the schedule', () => {
    const dir = fresh();
    const r = new Trainer(options({ steps: 4, checkpoint: { dir, every: 2 } })).fit();
    const md = readSafetensors(r.checkpoint!).metadata;
    expect(md.run).toBe(r.run);
    expect(JSON.parse(md.schedule!)).toEqual({ kind: 'warmupCosine', lr: 3e-3, warmup: 1, minLr: 3e-3 / 10, total: 4 });
  });
});

// Trainer.fromEngine trains the step optimize() compiled instead of compiling it again: one compile
// in all, and losses bit for bit those of a run that compiled its own step (an engine whose
// executable was asked for, so it may have run, is released and the Trainer compiles as before).
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it, vi } from 'vitest';

const compiles = vi.hoisted(() => ({ n: 0 }));
vi.mock('@deepwell/ir', async (importOriginal) => {
  const ir = await importOriginal<typeof import('@deepwell/ir')>();
  return { ...ir, compile: (...args: Parameters<typeof ir.compile>) => (compiles.n++, ir.compile(...args)) };
});

const { optimize } = await import('../src/engine.js');
const { TokenLoader, Trainer, markovShard } = await import('../src/index.js');

const small = () => new GPT({ vocabSize: 64, blockSize: 32, nLayer: 3, nHead: 2, nEmbd: 64 });
const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
const shard = markovShard(corpus, 20000);
const bits = (xs: number[]) => Buffer.from(Float64Array.from(xs).buffer).toString('hex');

function run(touch: boolean, extra: { seed?: number; optimizer?: { lr: number; beta2?: number } } = {}) {
  const dataSeed = 2;
  const engine = optimize(small(), { seqLen: 16, batchSize: 4, device: 'cpu', precision: 'fp8-tensorwise', clipGradNorm: 1, seed: 7 });
  try {
    if (touch) expect(engine.executable.parameterNames().length).toBeGreaterThan(0); // handed out: may have run
    const before = compiles.n;
    const train = new TokenLoader({ shards: [shard], batchSize: 4, seqLen: 16, seed: dataSeed });
    const t = Trainer.fromEngine(engine, { data: { train }, steps: 8, optimizer: { lr: 3e-3 }, log: { progress: false }, ...extra });
    const r = t.fit();
    const plan = engine.precisionPolicy.layerPrecisions;
    return { losses: r.losses, compilesInFit: compiles.n - before, plan: r.plan, plan2: plan };
  } finally {
    engine.dispose();
  }
}

describe('Trainer.fromEngine reuses the engine’s compiled step', () => {
  it('compiles once in all, with losses and plan bit for bit those of a Trainer that compiled its own', () => {
    const reused = run(false);
    const compiled = run(true);
    expect(reused.compilesInFit).toBe(0);
    expect(compiled.compilesInFit).toBe(1);
    expect(reused.losses.map((l) => l.step)).toEqual(Array.from({ length: 8 }, (_, i) => i + 1));
    expect(reused.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    expect(bits(reused.losses.map((l) => l.loss))).toBe(bits(compiled.losses.map((l) => l.loss)));
    expect(reused.plan).toEqual(compiled.plan);
    expect(reused.plan!.some((d) => d.recipe === 'fp8-tensorwise')).toBe(true);
    expect(reused.plan2).toEqual(reused.plan);
  }, 120_000);

  it('a Trainer whose step or seed differs from the engine’s compiles its own', () => {
    expect(run(false, { seed: 8 }).compilesInFit).toBe(1);
    expect(run(false, { optimizer: { lr: 3e-3, beta2: 0.99 } }).compilesInFit).toBe(1);
  }, 120_000);
});

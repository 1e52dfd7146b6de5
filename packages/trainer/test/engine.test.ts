// The one-call API on the CPU: optimize() captures, chooses and compiles; engine.dryrun() models the
// step from the kernels' rates (an emulated FP8 recipe adds quantization and is modelled slower than
// its BF16 baseline); the policy's per-layer decisions; bad options give typed errors. The GPU half
// (a native recipe, the kernel profile) is in gpu.test.ts and scripts/engine-check.sh.
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { formatProfile, optimize } from '../src/engine.js';
import { TokenLoader, Trainer, markovShard } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const small = () => new GPT({ vocabSize: 64, blockSize: 32, nLayer: 3, nHead: 2, nEmbd: 128 });

describe('optimize() on the CPU', () => {
  it("'auto' on the CPU is f32 without a policy; the dryrun's time model is the baseline itself", () => {
    const engine = optimize(new GPT('tiny'), { seqLen: 16, batchSize: 2, device: 'cpu' });
    try {
      expect(engine.activations).toBe('f32');
      expect(engine.precisionPolicy.recipe).toBe('f32');
      expect(engine.precisionPolicy.policy).toBeNull();
      expect(engine.precisionPolicy.layerPrecisions).toEqual([]);
      const d = engine.dryrun();
      expect(d.parameters).toBeGreaterThan(0);
      expect(d.time.ms).toBeGreaterThan(0);
      expect(d.time.speedupOverBf16).toBe(1);
      expect(d.time.byFamily.gemm + d.time.byFamily.attention + d.time.byFamily.memory).toBeCloseTo(d.time.ms, 9);
      expect(d.time.tokensPerSecond).toBeCloseTo((2 * 16 * 1000) / d.time.ms, 6);
      expect(d.time.rates.source).toMatch(/CPU/);
      const out = engine.executable.run({ tokens: new Int32Array(32).fill(1), targets: new Int32Array(32).fill(2), lr: Float32Array.of(0), step: Float32Array.of(1) });
      expect(Number.isFinite(out.loss![0]!)).toBe(true);
    } finally {
      engine.dispose();
    }
  });

  it('a recipe applies per layer: the head and the edge blocks stay BF16, the middle block takes FP8 (emulated here, so modelled slower)', () => {
    const engine = optimize(small(), { seqLen: 32, batchSize: 4, device: 'cpu', precision: 'fp8-tensorwise' });
    try {
      const { layerPrecisions, recipe } = engine.precisionPolicy;
      expect(recipe).toBe('fp8-tensorwise');
      const by = new Map(layerPrecisions.map((d) => [d.layer, d.recipe] as const));
      expect([...by.values()]).toContain('fp8-tensorwise');
      expect([...by.values()]).toContain('bf16');
      expect(layerPrecisions.find((d) => d.kind === 'head')?.recipe).toBe('bf16');
      const mid = layerPrecisions.filter((d) => d.layer.startsWith('blocks.1.') && d.kind !== 'attention');
      expect(mid.length).toBeGreaterThan(0);
      expect(mid.every((d) => d.recipe === 'fp8-tensorwise')).toBe(true);
      const d = engine.dryrun();
      // Emulation adds fake-quantization kernels and keeps BF16 GEMMs: slower than the baseline.
      expect(d.time.speedupOverBf16).toBeLessThan(1);
      expect(d.time.baselineMs).toBeGreaterThan(0);
    } finally {
      engine.dispose();
    }
  });

  it('profiles one step by kernel: rows sum to the nodes, shares to one, rates from the ops’ FLOPs and bytes', () => {
    const engine = optimize(small(), { seqLen: 32, batchSize: 4, device: 'cpu', precision: 'bf16' });
    try {
      const p = engine.profile();
      expect(p.device).toBe('cpu');
      expect(p.rows.length).toBeGreaterThan(5);
      expect(p.rows.reduce((a, r) => a + r.share, 0)).toBeCloseTo(1, 9);
      expect(p.rows.every((r, i) => i === 0 || p.rows[i - 1]!.ms >= r.ms)).toBe(true);
      const gemm = p.rows.filter((r) => r.op.startsWith('matmul'));
      expect(gemm.length).toBeGreaterThan(0);
      expect(gemm.every((r) => r.tflops > 0 && Number.isFinite(r.tflops))).toBe(true);
      expect(p.rows.reduce((a, r) => a + r.calls, 0)).toBe(engine.executable.graph.nodes.filter((n) => n.op !== 'reshape').length);
      expect(formatProfile(p).split('\n').length).toBe(p.rows.length + 4);
      const gpt = small();
      const notGpt = { forward: (x: Parameters<GPT['forward']>[0]) => gpt.forward(x) };
      expect(errorOf(() => optimize(notGpt, { seqLen: 8, batchSize: 1, device: 'cpu' }).profile()).message).toMatch(/Expected a batch/);
    } finally {
      engine.dispose();
    }
  });

  it('Trainer.fromEngine trains a small GPT with the engine’s recipe and records the run’s plan', () => {
    const corpus = new MarkovCorpus({ vocab: 16, seed: 1 });
    const train = new TokenLoader({ shards: [markovShard(corpus, 20000)], batchSize: 4, seqLen: 16, seed: 2 });
    const engine = optimize(small(), { seqLen: 16, batchSize: 4, device: 'cpu', precision: 'fp8-tensorwise', clipGradNorm: 1 });
    try {
      const bad = new TokenLoader({ shards: [markovShard(corpus, 2000)], batchSize: 2, seqLen: 16 });
      expect(errorOf(() => Trainer.fromEngine(engine, { data: { train: bad }, steps: 5 })).message).toMatch(/data.train's batch shape \[4, 16\] \(the engine's\)/);
      const t = Trainer.fromEngine(engine, { data: { train }, steps: 30, optimizer: { lr: 3e-3 }, log: { progress: false } });
      expect(t.device).toBe('cpu');
      expect(t.precision).toBe('bf16');
      const r = t.fit();
      expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss - 0.3);
      expect(r.plan!.some((d) => d.recipe === 'fp8-tensorwise')).toBe(true);
      expect(engine.precisionPolicy.layerPrecisions).toEqual(r.plan);
      expect(engine.precisionPolicy.fallbackHistory).toEqual(r.fallbacks);
      // The engine compiles its step again on demand after the Trainer released it.
      expect(engine.executable.parameterNames().length).toBeGreaterThan(0);
    } finally {
      engine.dispose();
    }
  }, 60_000);

  it('gives typed errors for bad options, and a disposed engine says so', () => {
    const m = new GPT('tiny');
    expect(errorOf(() => optimize(m, { seqLen: 16, batchSize: 0 })).message).toMatch(/positive integer for batchSize/);
    expect(errorOf(() => optimize(m, { seqLen: 16, batchSize: 2, precision: 'fp16' as never })).message).toMatch(/'auto', 'f32' or a recipe/);
    expect(errorOf(() => optimize(m, { seqLen: 16, batchSize: 2, device: 'gpu' as never })).message).toMatch(/'cpu' or 'cuda:N' \(N a GPU's index\) for device.*did you mean 'cuda:0'/);
    expect(errorOf(() => optimize(m, { seqLen: 16, batchSize: 2, lr: 1 } as never)).message).toMatch(/received 'lr'/);
    const e = optimize(m, { seqLen: 16, batchSize: 2, device: 'cpu' });
    e.dispose();
    expect(errorOf(() => e.executable).message).toMatch(/disposed/);
  });
});

// The one-call API on a GPU: 'auto' picks a native FP8 recipe on Hopper (the fastest GEMMs by the
// measured rates), the policy's layers run natively, the model has their GEMMs faster, and the kernel profile of
// one real step is within physics (no kernel above the H200's FP8 peak or its memory bandwidth), its
// shares summing to one; Trainer.fromEngine trains with the engine's settings. Skipped without a GPU.
import { cudaStatus, deviceProperties } from '@deepwell/kernels-native';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { formatProfile, optimize } from '../src/engine.js';
import { TokenLoader, Trainer, markovShard } from '../src/index.js';
import { repeats, timeLimit, underSanitizer } from '../../../testing/sanitizer.js';

const gpu = cudaStatus().available;
const hopper = gpu && deviceProperties(0).major === 9;

describe.skipIf(!gpu)('optimize() on the GPU', () => {
  it.skipIf(!hopper)("'auto' on Hopper: native FP8 in the middle layers, faster modelled GEMMs, a profile within physics", () => {
    const model = new GPT({ vocabSize: 512, blockSize: 256, nLayer: 4, nHead: 4, nEmbd: 512 });
    const engine = optimize(model, { seqLen: 256, batchSize: 8, device: 'cuda:0' });
    try {
      const pp = engine.precisionPolicy;
      expect(['fp8-tensorwise', 'fp8-blockwise']).toContain(pp.recipe);
      const fp8 = pp.layerPrecisions.filter((d) => d.recipe === pp.recipe);
      expect(fp8.length).toBeGreaterThan(0);
      expect(fp8.every((d) => d.native === d.gemms)).toBe(true);
      expect(pp.layerPrecisions.find((d) => d.kind === 'head')?.recipe).toBe('bf16');
      const d = engine.dryrun();
      // The FP8 GEMMs are modelled faster than their BF16 baseline; the quantizers add memory traffic.
      expect(d.time.byFamily.gemm).toBeLessThan(d.time.baselineByFamily.gemm);
      expect(d.time.byFamily.memory).toBeGreaterThan(d.time.baselineByFamily.memory);
      expect(d.time.speedupOverBf16).toBeCloseTo(d.time.baselineMs / d.time.ms, 12);
      expect(d.time.rates.source).toMatch(/measured|datasheet/);
      const p = engine.profile();
      console.log(formatProfile(p));
      expect(p.stepMs).toBeGreaterThan(0);
      expect(p.rows.reduce((a, r) => a + r.share, 0)).toBeCloseTo(1, 6);
      for (const r of p.rows) {
        expect(r.tflops).toBeLessThan(1979);
        expect(r.gbps).toBeLessThan(4800);
      }
      expect(p.rows.some((r) => r.op.startsWith('scaled_matmul'))).toBe(true);
    } finally {
      engine.dispose();
    }
  }, timeLimit(120_000));

  it('Trainer.fromEngine trains with the engine’s precision and records what the run decided', () => {
    const corpus = new MarkovCorpus({ vocab: 64, seed: 3 });
    const train = new TokenLoader({ shards: [markovShard(corpus, 200_000)], batchSize: 8, seqLen: 128, seed: 1 });
    const engine = optimize(new GPT({ vocabSize: 64, blockSize: 128, nLayer: 3, nHead: 4, nEmbd: 256 }), { seqLen: 128, batchSize: 8, device: 'cuda:0', precision: 'fp8-tensorwise' });
    try {
      const t = Trainer.fromEngine(engine, { data: { train }, steps: repeats(60, 3), optimizer: { lr: 2e-3 }, log: { progress: false } });
      expect(t.precision).toBe('bf16');
      const r = t.fit();
      expect(r.plan?.some((d) => d.recipe === 'fp8-tensorwise')).toBe(true);
      // Learning needs the 60 steps of the ordinary GPU run; under a sanitizer, 3 steps run the same kernels.
      if (!underSanitizer) expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss - 1);
      expect(engine.precisionPolicy.layerPrecisions).toEqual(r.plan);
      expect(engine.precisionPolicy.fallbackHistory).toEqual(r.fallbacks);
    } finally {
      engine.dispose();
    }
  }, timeLimit(120_000));
});

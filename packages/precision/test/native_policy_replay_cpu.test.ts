// A replay on the CPU of native_policy_gpu's dense training for one seed (DW_TEST_SEED; skipped
// without it, and slow: about 6 minutes on two cores): the fp8-tensorwise step interpreted with the
// native graph (quantize → scaled_matmul, their CPU references), the emulated graph (fake_quant) and
// BF16, 8 steps each on that test's batches, the curves printed. It tells a GPU kernel's fault from a
// seed whose FP8 training is sensitive: at seed 833752863 the GPU's native run ended 0.9% below the
// emulated one at step 7 (docs/gpu-runs/2026-12-05-session23); here the emulated run does, by as much,
// and the native one stays with BF16. Each curve must stay within 2% of BF16 (the GPU test's bound).
import { autocast, capture, initialValues, interpret, numel, trainingStep, type Graph } from '@deepwell/ir';
import { GPT, MarkovCorpus } from '@deepwell/nn';
import { describe, expect, it } from 'vitest';
import { PrecisionPolicy } from '../src/index.js';

const seedEnv = process.env.DW_TEST_SEED;
const [B, T] = [8, 64];

function step(): Graph {
  const fwd = capture(new GPT({ vocabSize: 256, blockSize: T, nLayer: 3, nHead: 2, nEmbd: 256 }), { tokens: { shape: [B, T], dtype: 'i32' }, targets: { shape: [B, T], dtype: 'i32' } });
  delete fwd.outputs.logits;
  return trainingStep(autocast(fwd), { optimizer: { weightDecay: 0 }, clipGradNorm: 1e9 });
}

describe.skipIf(seedEnv === undefined)('native_policy_gpu replayed on the CPU for DW_TEST_SEED', () => {
  it('fp8-tensorwise native (interpreted), emulated and BF16: 8 steps each, within 2% of BF16', () => {
    const seed = Number(seedEnv) >>> 0;
    const corpus = new MarkovCorpus({ vocab: 256, seed });
    const batches = Array.from({ length: 8 }, () => corpus.batch(B, T));
    const train = (policy?: PrecisionPolicy) => {
      const g = policy ? policy.run(step()).verify() : step();
      const vals: Record<string, Float32Array | Int32Array> = {};
      for (const [name, id] of Object.entries(g.params)) vals[name] = initialValues(g.init[name] ?? { dist: 'zeros' }, numel(g.values[id]!.type.shape), seed, name) as Float32Array;
      for (const [name, id] of Object.entries(g.state)) vals[name] = new Float32Array(numel(g.values[id]!.type.shape));
      return batches.map((b, s) => {
        const out = interpret(g, { ...vals, ...b, lr: Float32Array.of(2e-3), step: Float32Array.of(s + 1) });
        for (const [name, id] of Object.entries(g.updates)) vals[name] = out[id] as Float32Array;
        return out[g.outputs.loss!]![0]!;
      });
    };
    const opts = { recipe: 'fp8-tensorwise', minWeightElements: 0, keepFirstLast: false } as const;
    const curves = { native: train(new PrecisionPolicy({ ...opts, native: true })), emulated: train(new PrecisionPolicy({ ...opts, native: false })), bf16: train() };
    console.log(Object.entries(curves).map(([k, v]) => `${k.padEnd(8)} ${v.map((l) => l.toFixed(4)).join(' ')}`).join('\n'));
    for (const [k, v] of Object.entries(curves)) for (let s = 0; s < 8; s++) expect(Math.abs(v[s]! - curves.bf16[s]!) / curves.bf16[s]!, `${k} step ${s}, seed ${seed}`).toBeLessThan(2e-2);
  }, 1_800_000);
});

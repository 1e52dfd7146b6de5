// Dropless MoE on the GPU: a GPT with dropless MoE blocks (the router, moe_sort, permute and
// unpermute, grouped_matmul and its weight gradient, the load-balancing loss, all on CUDA) tracks
// the CPU reference's loss curve on the same seed and data, in f32 and in bf16 at a width the Hopper
// grouped GEMM takes, and two GPU runs agree bit for bit. Skips cleanly without a GPU.
import { autocast, capture, compile, trainingStep } from '@deepwell/ir';
import { cudaStatus } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { repeats } from '../../../testing/sanitizer.js';
import { GPT, MarkovCorpus, type GPTConfig } from '../src/index.js';

const gpu = cudaStatus().available;
const [B, T] = [8, 16];
const spec = { tokens: { shape: [B, T], dtype: 'i32' as const }, targets: { shape: [B, T], dtype: 'i32' as const } };

function losses(device: string, steps: number, config: GPTConfig, bf16 = false) {
  const corpus = new MarkovCorpus({ vocab: config.vocabSize, seed: 7 });
  const fwd = capture(new GPT(config), spec);
  const exe = compile(trainingStep(bf16 ? autocast(fwd) : fwd, { optimizer: { weightDecay: 0 } }), { device, seed: 7 });
  const out: number[] = [];
  for (let s = 1; s <= steps; s++) out.push(exe.run({ ...corpus.batch(B, T), lr: Float32Array.of(3e-3 * Math.min(1, s / 10)), step: Float32Array.of(s) }).loss![0]!);
  const kernels = exe.kernelSummary();
  exe.dispose();
  return { out, kernels };
}

describe.skipIf(!gpu)('dropless MoE on the GPU', () => {
  it('tracks the CPU loss curve, its grouped GEMMs on CUDA, and two GPU runs agree bit for bit', () => {
    const steps = repeats(40, 4);
    for (const activation of ['gelu', 'swiglu'] as const) {
      const config: GPTConfig = { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32, moe: { experts: 4, topK: 2, routing: 'dropless', activation, sharedExperts: activation === 'swiglu' ? 1 : 0 } };
      const cpu = losses('cpu', steps, config);
      const g1 = losses('cuda:0', steps, config);
      const g2 = losses('cuda:0', steps, config);
      expect(g1.out, activation).toEqual(g2.out);
      for (const op of ['moe_sort', 'grouped_matmul', 'grouped_matmul_wgrad', 'moe_permute', 'moe_unpermute', 'moe_weight_grad', 'moe_route', 'moe_route_backward', 'moe_aux_loss']) expect(g1.kernels.find((r) => r.op === op)?.backend, `${activation} ${op}`).toBe('cuda');
      const diffs = g1.out.map((l, i) => Math.abs(l - cpu.out[i]!));
      // TF32 GEMMs beside the CPU's f32: step 1 within 1e-3; routing may flip a near-tie later, so the
      // curve is held to 0.05 at every step.
      expect(diffs[0]!, activation).toBeLessThan(1e-3);
      expect(Math.max(...diffs), activation).toBeLessThan(0.05);
    }
  }, 300_000);

  it('in bf16 (autocast), at a width where the grouped GEMMs take the Hopper kernel (K and N multiples of 64): tracks the CPU curve, reruns bit for bit', () => {
    const steps = repeats(30, 3);
    const config: GPTConfig = { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 64, moe: { experts: 4, topK: 2, routing: 'dropless', activation: 'swiglu' } };
    const cpu = losses('cpu', steps, config, true);
    const g1 = losses('cuda:0', steps, config, true);
    const g2 = losses('cuda:0', steps, config, true);
    expect(g1.out).toEqual(g2.out);
    expect(g1.out.every(Number.isFinite)).toBe(true);
    for (const op of ['grouped_matmul', 'grouped_matmul_wgrad']) expect(g1.kernels.find((r) => r.op === op)?.backend, op).toBe('cuda');
    // bf16 activations on both sides, rounded in different places (fused kernels, FP32 accumulation
    // orders): step 1 within 0.02, the curve within 0.1.
    const diffs = g1.out.map((l, i) => Math.abs(l - cpu.out[i]!));
    expect(diffs[0]!).toBeLessThan(0.02);
    expect(Math.max(...diffs)).toBeLessThan(0.1);
  }, 300_000);
});

// Mixed precision: bf16 activations with FP32 master weights (autocast), on the CPU reference,
// which stores bf16 widened and rounds every bf16 result once, as a bf16 kernel's store does.
import { cpuBackend } from '@deepwell/core';
import { autocast, capture, compile, dryrun, trainingStep } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { GPT, MarkovCorpus } from '../src/index.js';

const spec = { tokens: { shape: [8, 16], dtype: 'i32' as const }, targets: { shape: [8, 16], dtype: 'i32' as const } };

function train(bf16: boolean, steps: number) {
  const corpus = new MarkovCorpus({ vocab: 16, seed: 3 });
  const fwd = capture(new GPT('tiny'), spec);
  const step = trainingStep(bf16 ? autocast(fwd) : fwd, { optimizer: { weightDecay: 0 } });
  const report = dryrun(step);
  const exe = compile(step, { seed: 3 });
  const before = cpuBackend.memoryStats().inUse;
  const losses: number[] = [];
  let arena = 0;
  for (let s = 1; s <= steps; s++) {
    losses.push(exe.run({ ...corpus.batch(8, 16), lr: Float32Array.of(3e-3 * Math.min(1, s / 20)), step: Float32Array.of(s) }).loss![0]!);
    if (s === 1) arena = cpuBackend.memoryStats().inUse - before;
  }
  const graph = exe.graph;
  exe.dispose();
  return { losses, graph, arena, report };
}

describe('autocast', () => {
  it('computes in bf16 with f32 master weights, one cast per parameter', () => {
    const fwd = capture(new GPT('tiny'), spec);
    const g = autocast(fwd);
    for (const id of Object.values(g.params)) expect(g.values[id]!.type.dtype).toBe('f32');
    const matmuls = g.nodes.filter((n) => n.op === 'matmul');
    expect(matmuls.length).toBeGreaterThan(0);
    for (const n of matmuls) for (const i of n.inputs) expect(g.values[i]!.type.dtype).toBe('bf16');
    const paramCasts = g.nodes.filter((n) => n.op === 'cast' && g.values[n.inputs[0]!]!.kind === 'param');
    expect(paramCasts.length).toBe(Object.keys(g.params).length);
    expect(g.values[g.outputs.loss!]!.type.dtype).toBe('f32');
    expect(g.values[g.outputs.logits!]!.type.dtype).toBe('f32');
    // Normalisation statistics stay f32 by the op's rule.
    const ln = g.nodes.find((n) => n.op === 'layernorm')!;
    expect(ln.outputs.map((o) => g.values[o]!.type.dtype)).toEqual(['bf16', 'f32', 'f32']);
  });

  it('trains beside the f32 run within bf16 rounding, and dryrun still equals the allocation', () => {
    const steps = 120;
    const f = train(false, steps);
    const b = train(true, steps);
    const d = f.losses.map((l, i) => Math.abs(l - b.losses[i]!));
    // One bf16 rounding is 2^-8 relative; through a 2-layer model the step-1 loss moves far less.
    expect(d[0]!).toBeLessThan(2e-3);
    expect(Math.max(...d)).toBeLessThan(0.05);
    const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
    expect(Math.abs(mean(b.losses.slice(-30)) - mean(f.losses.slice(-30)))).toBeLessThan(0.02);
    expect(b.arena).toBe(b.report.arenaBytes);
    // The compiled step skips the bf16 -> f32 gradient casts (elide-casts): the optimizer reads the
    // bf16 gradients, which graph.gradients then names; the step as built still has them in f32.
    expect(Object.values(b.graph.gradients).every((id) => b.graph.values[id]!.type.dtype === 'bf16')).toBe(true);
    const built = trainingStep(autocast(capture(new GPT('tiny'), spec)));
    expect(Object.values(built.gradients).every((id) => built.values[id]!.type.dtype === 'f32')).toBe(true);
  }, 120_000);

  it('refuses a training graph and bad dtypes', () => {
    const step = trainingStep(capture(new GPT('tiny'), spec));
    expect(() => autocast(step)).toThrow(/apply it before trainingStep/);
    expect(() => autocast(capture(new GPT('tiny'), spec), { dtype: 'f8e4m3' as never })).toThrow(/Expected 'bf16' or 'f16' for autocast dtype/);
  });
});

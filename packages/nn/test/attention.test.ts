// CausalSelfAttention's fused path (one sdpa_qkv op on the projection, no slices) and grouped-query attention, against the composite:
// the same parameters give the same loss (float64 interpretation) and gradients, and a fused GPT
// trains on the CPU. Fresh random parameters and tokens every run.
import { capture, compile, interpret, trainingStep, type Graph, type NumArray } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { CausalSelfAttention, GPT, MarkovCorpus, type GPTConfig } from '../src/index.js';
import { errorOf } from '../../../testing/errors.js';

const [B, T] = [2, 8];
const spec = { tokens: { shape: [B, T], dtype: 'i32' as const }, targets: { shape: [B, T], dtype: 'i32' as const } };
const base: GPTConfig = { vocabSize: 16, blockSize: 16, nLayer: 2, nHead: 4, nEmbd: 32 };
const normals = (n: number) => Float64Array.from({ length: n }, () => 0.3 * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));

/** The loss and every parameter's gradient of one step of `g` on `params`, in float64. */
function lossAndGrads(g: Graph, params: Record<string, Float64Array>, batch: Record<string, NumArray>) {
  const bind: Record<string, NumArray> = { ...batch, ...params, lr: Float64Array.of(0), step: Float64Array.of(1) };
  for (const [name, id] of Object.entries(g.state)) bind[name] = new Float64Array(g.values[id]!.type.shape.reduce((a, b) => a * b, 1));
  const vals = interpret(g, bind, { precision: 'f64' });
  return { loss: vals[g.outputs.loss!]![0]!, grads: Object.fromEntries(Object.entries(g.gradients).map(([n, id]) => [n, vals[id]!])) };
}

/** The two steps give the same loss and every parameter the same gradient, within 1e-12 (float64). */
function expectSameLossAndGrads(g1: Graph, g2: Graph, params: Record<string, Float64Array>, batch: Record<string, NumArray>) {
  const a = lossAndGrads(g1, params, batch);
  const b = lossAndGrads(g2, params, batch);
  expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-12);
  for (const [name, g] of Object.entries(a.grads)) {
    const h = b.grads[name]!;
    let worst = 0;
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - h[i]!));
    expect(worst, name).toBeLessThan(1e-12);
  }
}

describe('CausalSelfAttention', () => {
  it.each([
    ['fused, as many kv heads as heads', { fusedAttention: true }],
    ['GQA 2:1, composite against fused', { nKvHead: 2 }],
    ['MQA, composite against fused', { nKvHead: 1 }],
  ] as const)('gives the same loss and gradients either way (%s)', (_name, extra) => {
    const composite = trainingStep(capture(new GPT({ ...base, ...extra, fusedAttention: false }), spec));
    const fused = trainingStep(capture(new GPT({ ...base, ...extra, fusedAttention: true }), spec));
    expect(fused.nodes.filter((n) => n.op === 'sdpa_qkv')).toHaveLength(base.nLayer);
    expect(fused.nodes.filter((n) => n.op === 'sdpa_qkv_backward')).toHaveLength(base.nLayer);
    // q, k and v are read where the projection wrote them: the one slice left is the position
    // embedding's (and its gradient), none per layer.
    expect(fused.nodes.filter((n) => n.op.startsWith('slice')).map((n) => n.op)).toEqual(['slice', 'slice_backward']);
    expect(composite.nodes.some((n) => n.op.startsWith('sdpa'))).toBe(false);
    const params = Object.fromEntries(Object.entries(composite.params).map(([name, id]) => [name, normals(composite.values[id]!.type.shape.reduce((a, b) => a * b, 1))]));
    expect(Object.keys(fused.params).sort()).toEqual(Object.keys(params).sort());
    const corpus = new MarkovCorpus({ vocab: base.vocabSize, seed: Math.floor(Math.random() * 1e6) });
    const batch = corpus.batch(B, T);
    expectSameLossAndGrads(composite, fused, params, batch);
  });

  it('trains a fused GQA GPT on the CPU: the loss goes down, the sdpa_qkv reference serving', () => {
    const exe = compile(trainingStep(capture(new GPT({ ...base, nKvHead: 2, fusedAttention: true }), spec), { optimizer: { weightDecay: 0 } }), { seed: 3 });
    const corpus = new MarkovCorpus({ vocab: base.vocabSize, seed: 11 });
    const losses: number[] = [];
    for (let s = 1; s <= 60; s++) {
      const { tokens, targets } = corpus.batch(B, T);
      losses.push(exe.run({ tokens, targets, lr: Float32Array.of(s <= 10 ? (3e-3 * s) / 10 : 3e-3), step: Float32Array.of(s) }).loss![0]!);
    }
    expect(exe.kernelSummary().find((r) => r.op === 'sdpa_qkv')).toMatchObject({ kernel: 'sdpa_qkv_reference', nodes: 2 });
    expect(exe.kernelSummary().find((r) => r.op === 'sdpa_qkv_backward')).toMatchObject({ kernel: 'sdpa_qkv_backward_reference', nodes: 2 });
    // Every reshape (around attention, forward and backward) aliases its input: none copies.
    const reshapes = exe.kernelSummary().filter((r) => r.op === 'reshape');
    expect(reshapes.map((r) => [r.kernel, r.calls])).toEqual([['alias', 0]]);
    expect(reshapes[0]!.nodes).toBe(exe.graph.nodes.filter((n) => n.op === 'reshape').length);
    exe.dispose();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-10))).toBeLessThan(0.8 * mean(losses.slice(0, 10)));
  });

  it('sizes the qkv projection for its kv heads, and rejects kv heads that do not divide the heads', () => {
    expect(new CausalSelfAttention(32, 4, { kvHeads: 2 }).qkv.outFeatures).toBe((4 + 2 * 2) * 8);
    expect(errorOf(() => new CausalSelfAttention(32, 4, { kvHeads: 3 })).message).toMatch(/kvHeads dividing the head count \(4\)/);
    expect(errorOf(() => new CausalSelfAttention(32, 4, { kvHeads: 8 })).code).toBe('INVALID_ARGUMENT');
  });
});

describe('sparsek attention in GPT', () => {
  const sparse = (extra: Record<string, unknown>) => ({ kind: 'sparsek' as const, blockSize: 2, ...extra });

  it('with topK covering every block, gives dense attention’s loss and gradients (float64)', () => {
    // T 8, blockSize 2: 4 blocks; topK 4 selects all of them, so the block mask is the causal one.
    const dense = trainingStep(capture(new GPT({ ...base, nKvHead: 2 }), spec));
    const sp = trainingStep(capture(new GPT({ ...base, nKvHead: 2, attention: sparse({ topK: 4 }) }), spec));
    expect(sp.nodes.filter((n) => n.op === 'sparsek_attention')).toHaveLength(base.nLayer);
    expect(sp.nodes.filter((n) => n.op === 'sparsek_attention_backward')).toHaveLength(base.nLayer);
    const params = Object.fromEntries(Object.entries(dense.params).map(([name, id]) => [name, normals(dense.values[id]!.type.shape.reduce((a, b) => a * b, 1))]));
    const batch = new MarkovCorpus({ vocab: base.vocabSize, seed: Math.floor(Math.random() * 1e6) }).batch(B, T);
    expectSameLossAndGrads(dense, sp, params, batch);
  });

  it('with fewer blocks, differs from dense; per-layer kinds mix dense and sparse layers', () => {
    const mixed = trainingStep(capture(new GPT({ ...base, attention: [{ kind: 'dense' }, sparse({ topK: 2, first: true })] }), spec));
    expect(mixed.nodes.filter((n) => n.op === 'sparsek_attention')).toHaveLength(1);
    expect(mixed.nodes.filter((n) => n.op === 'sdpa_qkv')).toHaveLength(1);
    const dense = trainingStep(capture(new GPT(base), spec));
    const params = Object.fromEntries(Object.entries(dense.params).map(([name, id]) => [name, normals(dense.values[id]!.type.shape.reduce((a, b) => a * b, 1))]));
    const batch = new MarkovCorpus({ vocab: base.vocabSize, seed: Math.floor(Math.random() * 1e6) }).batch(B, T);
    expect(Math.abs(lossAndGrads(dense, params, batch).loss - lossAndGrads(mixed, params, batch).loss)).toBeGreaterThan(1e-9);
  });

  it('trains a sparsek GPT on the CPU: the loss goes down', () => {
    const exe = compile(trainingStep(capture(new GPT({ ...base, nKvHead: 2, attention: sparse({ topK: 2 }) }), spec), { optimizer: { weightDecay: 0 } }), { seed: 5 });
    const corpus = new MarkovCorpus({ vocab: base.vocabSize, seed: 13 });
    const losses: number[] = [];
    for (let s = 1; s <= 60; s++) {
      const { tokens, targets } = corpus.batch(B, T);
      losses.push(exe.run({ tokens, targets, lr: Float32Array.of(s <= 10 ? (3e-3 * s) / 10 : 3e-3), step: Float32Array.of(s) }).loss![0]!);
    }
    expect(exe.kernelSummary().find((r) => r.op === 'sparsek_attention')).toMatchObject({ kernel: 'sparsek_attention_reference' });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)) - 0.2);
  });

  it('gives typed errors for bad attention kinds', () => {
    const bad: [unknown, RegExp][] = [
      [{ kind: 'flash' }, /kind 'dense' or 'sparsek'/],
      [{ kind: 'sparsek', topk: 2 }, /option of sparsek.*'topk'/],
      [{ kind: 'sparsek', topK: 0 }, /topK/],
      [{ kind: 'sparsek', first: 'yes' }, /boolean for first/],
      [{ kind: 'dense', topK: 2 }, /no options besides kind/],
      [[{ kind: 'dense' }], /one attention kind per layer \(2\)/],
      ['sparsek', /Expected \{ kind/],
    ];
    for (const [attention, msg] of bad) {
      const err = errorOf(() => new GPT({ ...base, attention: attention as GPTConfig['attention'] }));
      expect(err, String(attention)).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((err as Error).message).toMatch(msg);
    }
    // topK beyond the blocks of the sequence is the op's error, at capture.
    expect(errorOf(() => capture(new GPT({ ...base, attention: sparse({ topK: 5 }) }), spec))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

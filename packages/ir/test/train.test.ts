// trainingStep's options: clipping by the global gradient norm, and gradient accumulation over
// micro-batches, checked with the reference interpreter against the plain step.
import { describe, expect, it } from 'vitest';
import { Graph, GraphBuilder, capture, crossEntropy, currentBuilder, gelu, interpret, matmul, planMemory, runPasses, trainingStep, type Capturable, type NumArray, type Sym } from '../src/index.js';
import { errorOf, randInt, randn, runOp } from './helpers.js';

class MLP implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const w1 = b.param('w1', [16, 5], 'f32', { dist: 'normal', scale: 0.5 });
    const w2 = b.param('w2', [4, 16], 'f32', { dist: 'normal', scale: 0.5 });
    return { loss: crossEntropy(matmul(gelu(matmul(x!, w1, { transB: true })), w2, { transB: true }), y!) };
  }
}

const forwardAt = (N: number) => capture(new MLP(), { x: { shape: [N, 5] }, y: { shape: [N], dtype: 'i32' } });

/** Bindings for a step graph: random parameters, zero moments, the given batch. */
function bind(g: Graph, params: Record<string, Float64Array>, x: Float64Array, y: Int32Array): Record<string, NumArray> {
  const out: Record<string, NumArray> = { x, y, lr: Float64Array.of(0.01), step: Float64Array.of(1), ...params };
  for (const [name, id] of Object.entries(g.state)) out[name] = new Float64Array(g.values[id]!.type.shape.reduce((a, b) => a * b, 1));
  return out;
}

function gradients(g: Graph, vals: NumArray[]): Record<string, Float64Array> {
  return Object.fromEntries(Object.entries(g.gradients).map(([k, id]) => [k, Float64Array.from(vals[id]!)]));
}

const norm = (gs: Record<string, Float64Array>) => Math.sqrt(Object.values(gs).reduce((s, a) => s + a.reduce((t, v) => t + v * v, 0), 0));

describe('trainingStep options', () => {
  const N = 2 * randInt(2, 6);
  const params = { w1: randn(16 * 5).map((v) => v * 0.5), w2: randn(4 * 16).map((v) => v * 0.5) };
  const x = randn(N * 5);
  const y = Int32Array.from({ length: N }, () => randInt(0, 3));

  it('clips by the global gradient norm inside the optimizer, outputting the norm', () => {
    const plain = trainingStep(forwardAt(N));
    const want = gradients(plain, interpret(plain, bind(plain, params, x, y), { precision: 'f64' }));
    const total = norm(want);
    for (const maxNorm of [total / 3, total * 3]) {
      const clipped = trainingStep(forwardAt(N), { clipGradNorm: maxNorm });
      // Moments that are not zero, so the update depends on the gradient's size, not only its sign.
      const bindings = bind(clipped, params, x, y);
      for (const name of Object.keys(clipped.state)) bindings[name] = randn(bindings[name]!.length).map((v) => (name.startsWith('adamw.v') ? Math.abs(v) * 1e-3 : v * 1e-2));
      const vals = interpret(clipped, bindings, { precision: 'f64' });
      expect(vals[clipped.outputs.grad_norm!]![0]).toBeCloseTo(total, 10);
      // One sum_squares over every gradient, one clip_coef, the factor read by each adamw.
      const [ss] = clipped.nodes.filter((n) => n.op === 'sum_squares');
      expect(ss!.inputs.length).toBe(2);
      const coefId = clipped.nodes.find((n) => n.op === 'clip_coef')!.outputs[0]!;
      expect(clipped.nodes.filter((n) => n.op === 'adamw').map((n) => n.inputs[6])).toEqual([coefId, coefId]);
      // graph.gradients are the gradients before clipping.
      const got = gradients(clipped, vals);
      for (const k of Object.keys(want)) for (let i = 0; i < want[k]!.length; i++) expect(got[k]![i]).toBeCloseTo(want[k]![i]!, 12);
      // The update is AdamW's on the clipped gradient.
      const coef = Math.min(1, maxNorm / (total + 1e-6));
      for (const name of ['w1', 'w2']) {
        const shape = clipped.values[clipped.params[name]!]!.type.shape as number[];
        const t = (data: Float64Array, sh = shape) => ({ shape: sh, data });
        const [p2] = runOp('adamw', [t(params[name as 'w1']), t(want[name]!.map((v) => v * coef)), t(bindings[`adamw.m.${name}`] as Float64Array), t(bindings[`adamw.v.${name}`] as Float64Array), t(Float64Array.of(0.01), [1]), t(Float64Array.of(1), [1])], { weightDecay: 0.1 });
        const upd = vals[clipped.updates[name]!]!;
        for (let i = 0; i < upd.length; i++) expect(upd[i]).toBeCloseTo(p2![i]!, 12);
      }
      if (coef < 1) expect(norm(Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v.map((e) => e * coef)])))).toBeCloseTo(maxNorm, 5);
    }
    expect(errorOf(() => trainingStep(forwardAt(N), { clipGradNorm: -1 })).message).toMatch(/positive number for clipGradNorm/);
  });

  it('clip_coef: min(1, maxNorm / (norm + 1e-6)) and the norm', () => {
    const s = Math.random() * 10 + 0.1;
    const [coef, n] = runOp('clip_coef', [{ shape: [1], data: Float64Array.of(s) }], { maxNorm: 1 });
    expect(n![0]).toBeCloseTo(Math.sqrt(s), 12);
    expect(coef![0]).toBeCloseTo(Math.min(1, 1 / (Math.sqrt(s) + 1e-6)), 12);
    expect(errorOf(() => runOp('clip_coef', [{ shape: [2], data: Float64Array.of(1, 2) }], { maxNorm: 1 })).message).toMatch(/f32\[1\]/);
  });

  it('accumulates two micro-batches to the gradients of the whole batch, with less memory', () => {
    const whole = trainingStep(forwardAt(N));
    const micro = trainingStep(forwardAt(N / 2), { accumulate: 2 });
    expect(micro.values[micro.inputs.x!]!.type.shape).toEqual([N, 5]);
    const a = interpret(whole, bind(whole, params, x, y), { precision: 'f64' });
    const b = interpret(micro, bind(micro, params, x, y), { precision: 'f64' });
    expect(b[micro.outputs.loss!]![0]).toBeCloseTo(a[whole.outputs.loss!]![0]!, 12);
    const [ga, gb] = [gradients(whole, a), gradients(micro, b)];
    for (const k of Object.keys(ga)) for (let i = 0; i < ga[k]!.length; i++) expect(gb[k]![i]).toBeCloseTo(ga[k]![i]!, 12);
    // The second micro-batch's forward starts after the first one's backward: at a batch where
    // activations outweigh the gradients, less is live at once.
    const arena = (g: Graph) => planMemory(runPasses(g)).arenaBytes;
    expect(arena(trainingStep(forwardAt(512), {}))).toBeGreaterThan(1.5 * arena(trainingStep(forwardAt(128), { accumulate: 4 })));
    expect(errorOf(() => trainingStep(forwardAt(N), { accumulate: 0 })).message).toMatch(/positive integer for accumulate/);
  });
});

describe('phases', () => {
  const N = 4;
  const count = (g: Graph) => Object.fromEntries(['forward', 'backward', 'optimizer'].map((p) => [p, g.nodes.filter((n) => n.phase === p).length]));

  it('autodiff marks every node it makes backward, keeping the forward scope; trainingStep marks clipping and AdamW optimizer', () => {
    const fwd = forwardAt(N);
    expect(fwd.nodes.every((n) => n.phase === 'forward')).toBe(true);
    const step = trainingStep(forwardAt(N), { clipGradNorm: 1 });
    const forward = step.nodes.slice(0, fwd.nodes.length);
    expect(forward.map((n) => [n.op, n.phase])).toEqual(fwd.nodes.map((n) => [n.op, 'forward']));
    const rest = step.nodes.slice(fwd.nodes.length);
    const firstOptimizer = rest.findIndex((n) => n.phase === 'optimizer');
    expect(rest.slice(0, firstOptimizer).every((n) => n.phase === 'backward')).toBe(true);
    expect(rest.slice(firstOptimizer).every((n) => n.phase === 'optimizer')).toBe(true);
    expect(rest.filter((n) => n.op === 'adamw').length).toBe(2);
    expect(rest.find((n) => n.op === 'clip_coef')).toMatchObject({ phase: 'optimizer', scope: 'clip' });
    // The weight gradient of w1's matmul: a backward matmul in the forward matmul's scope ('' here).
    expect(rest.filter((n) => n.op === 'matmul').every((n) => n.phase === 'backward' && n.scope === '')).toBe(true);
    expect(step.toText()).toMatch(/= matmul\([^)]*\) \{[^}]*\}  \[backward\]/);
    expect(step.toText()).toMatch(/= adamw\([^)]*\) \{[^}]*\}  # optimizer\.w1 \[optimizer\]/);
  });

  it('passes that copy or fuse nodes keep their phase; micro-batches keep forward and backward apart', () => {
    const step = trainingStep(forwardAt(N));
    const fused = runPasses(trainingStep(forwardAt(N)));
    expect(fused.nodes.find((n) => n.op === 'adamw_multi')!.phase).toBe('optimizer');
    // Every forward node keeps its phase, but the loss: fused with its gradient into one backward node.
    expect(count(fused).forward).toBe(count(step).forward! - 1);
    expect(fused.nodes.find((n) => n.op === 'cross_entropy_with_grad')!.phase).toBe('backward');
    const micro = trainingStep(forwardAt(N / 2), { accumulate: 2 });
    const kinds = micro.nodes.map((n) => n.phase[0]).join('').replace(/(.)\1+/g, '$1');
    // Forward and backward of micro-batch 1, then of 2, the loss's mean over the micro-batches
    // (forward) and the gradients' (backward), then the optimizer.
    expect(kinds).toBe('fbfbfbo');
  });

  it('round-trips through JSON, loads a version 1 document by its scopes, and refuses an unknown phase', () => {
    const step = trainingStep(forwardAt(N), { clipGradNorm: 1 });
    const json = JSON.parse(JSON.stringify(step.toJSON()));
    expect(json.version).toBe(2);
    expect(Graph.fromJSON(json).nodes.map((n) => n.phase)).toEqual(step.nodes.map((n) => n.phase));
    // Version 1: no phase; autodiff's nodes were in '<scope>.grad' or 'grad'.
    const v1 = JSON.parse(JSON.stringify(json));
    v1.version = 1;
    for (const n of v1.nodes) {
      if (n.phase === 'backward') n.scope = n.scope ? `${n.scope}.grad` : 'grad';
      delete n.phase;
    }
    const old = Graph.fromJSON(v1);
    expect(old.nodes.map((n) => n.phase)).toEqual(step.nodes.map((n) => n.phase));
    expect(old.nodes.filter((n) => n.op === 'matmul').map((n) => n.scope)).toEqual(step.nodes.filter((n) => n.op === 'matmul').map((n) => n.scope));
    json.nodes[0].phase = 'sideways';
    expect(errorOf(() => Graph.fromJSON(json)).message).toBe('Expected one of forward, backward, optimizer for the phase of node #0 but received "sideways"');
    expect(errorOf(() => Graph.fromJSON({ ...json, version: 3 })).message).toMatch(/Expected a deepwell\.ir version 1 or 2 document/);
    expect(errorOf(() => new GraphBuilder().phase('sideways' as never, () => 0)).message).toBe('Expected one of forward, backward, optimizer for a phase but received "sideways"');
  });
});

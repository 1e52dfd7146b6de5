// Ops defined outside ir, used in models: softcap (fixtures/custom-op.ts, with its gradient rule in its
// definition; its rule is checked against finite differences alone and inside the model's training
// step, and the step compiles for the CPU and trains) and geglu (fixtures/geglu.ts, which adds a CUDA
// candidate with a workspace: it serves on the GPU with the workspace the plan gives it).
import { capture, centralDifference, compile, crossEntropy, gelu, gradcheck, gradientRule, interpret, trainingStep, type Graph, type NumArray, type Sym } from '@deepwell/ir';
import { registry } from '@deepwell/core';
import { cudaStatus, registerCudaBackends } from '@deepwell/kernels-native';
import { describe, expect, it } from 'vitest';
import { Linear, Module } from '../src/index.js';
import { softcap } from './fixtures/custom-op.js';
import { geglu } from './fixtures/geglu.js';

const gpu = cudaStatus().available ? (registerCudaBackends()[0] ?? null) : null;

const [N, IN, H, C, CAP] = [16, 4, 8, 3, 2];

class CappedClassifier extends Module {
  readonly fc1 = this.addChild('fc1', new Linear(IN, H, { std: 0.5 }));
  readonly fc2 = this.addChild('fc2', new Linear(H, C, { std: 0.5 }));
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    return this.scope(() => ({ loss: crossEntropy(softcap(this.fc2.forward(gelu(this.fc1.forward(x!))), CAP), y!) }));
  }
}

const spec = { x: { shape: [N, IN] }, y: { shape: [N], dtype: 'i32' as const } };
const normals = (n: number, s = 1) => Float64Array.from({ length: n }, () => s * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));

/** A batch labelled by a fixed linear teacher: y = argmax(x · T). */
function batch(teacher: Float64Array): { x: Float64Array; y: Int32Array } {
  const x = normals(N * IN);
  const y = Int32Array.from({ length: N }, (_, r) => {
    const score = (c: number) => Array.from({ length: IN }, (_, i) => x[r * IN + i]! * teacher[i * C + c]!).reduce((a, b) => a + b);
    return [0, 1, 2].reduce((best, c) => (score(c) > score(best) ? c : best), 0);
  });
  return { x, y };
}

describe('an op defined outside ir, with its own gradient rule', () => {
  it('has a rule that matches finite differences', () => {
    expect(gradientRule('softcap')).toBeTypeOf('function');
    expect(gradcheck('softcap', [{ shape: [3, 5] }], { cap: 1.7 })).toBeLessThan(1e-6);
    gradcheck('softcap', [{ shape: [7] }], { cap: 0.5 });
  });

  it("differentiates a model through it: the step's gradients match finite differences of the loss", () => {
    const fwd = capture(new CappedClassifier(), spec);
    const step = trainingStep(capture(new CappedClassifier(), spec));
    const backward = step.nodes.filter((n) => n.op === 'softcap_backward');
    expect(backward.length).toBe(1);
    expect(backward[0]).toMatchObject({ phase: 'backward', scope: '' });
    const params: Record<string, Float64Array> = Object.fromEntries(Object.entries(fwd.params).map(([name, id]) => [name, normals(fwd.values[id]!.type.shape.reduce((a, b) => a * b, 1), 0.7)]));
    const { x, y } = batch(normals(IN * C));
    const bind = (g: Graph): Record<string, NumArray> => {
      const out: Record<string, NumArray> = { x, y, ...params };
      if ('lr' in g.inputs) Object.assign(out, { lr: Float64Array.of(0), step: Float64Array.of(1) });
      for (const [name, id] of Object.entries(g.state)) out[name] = new Float64Array(g.values[id]!.type.shape.reduce((a, b) => a * b, 1));
      return out;
    };
    const vals = interpret(step, bind(step), { precision: 'f64' });
    const lossAt = () => interpret(fwd, bind(fwd), { precision: 'f64' })[fwd.outputs.loss!]![0]!;
    for (const [name, p] of Object.entries(params)) {
      const grad = vals[step.gradients[name]!]!;
      for (let j = 0; j < p.length; j++) expect(Math.abs(grad[j]! - centralDifference(lossAt, p, j)), `${name}[${j}]`).toBeLessThan(1e-7);
    }
  });

  it('compiles for the CPU and trains: the loss goes down', () => {
    const exe = compile(trainingStep(capture(new CappedClassifier(), spec), { optimizer: { weightDecay: 0 } }), { seed: 1 });
    const teacher = normals(IN * C);
    const losses: number[] = [];
    for (let s = 1; s <= 60; s++) {
      const { x, y } = batch(teacher);
      losses.push(exe.run({ x: Float32Array.from(x), y, lr: Float32Array.of(0.03), step: Float32Array.of(s) }).loss![0]!);
    }
    expect(exe.kernelSummary().find((r) => r.op === 'softcap')).toMatchObject({ backend: 'cpu', kernel: 'softcap_reference', calls: 60 });
    exe.dispose();
    const mean = (a: number[]) => a.reduce((p, q) => p + q) / a.length;
    expect(mean(losses.slice(-10))).toBeLessThan(0.5 * mean(losses.slice(0, 10)));
  });
});

// ---- an op outside ir with a CUDA candidate and a workspace (fixtures/geglu.ts) -------------------

class GegluNet extends Module {
  readonly gate = this.addChild('gate', new Linear(IN, H, { std: 0.5 }));
  readonly up = this.addChild('up', new Linear(IN, H, { std: 0.5 }));
  readonly out = this.addChild('out', new Linear(H, C, { std: 0.5 }));
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    return this.scope(() => ({ loss: crossEntropy(this.out.forward(geglu(this.gate.forward(x!), this.up.forward(x!))), y!) }));
  }
}

/** Trains `steps` steps of a GegluNet on `device` from seed 1 on fixed batches; returns the losses and the executable's summary. */
function trainGeglu(device: string, batches: { x: Float64Array; y: Int32Array }[]) {
  const exe = compile(trainingStep(capture(new GegluNet(), spec), { optimizer: { weightDecay: 0 } }), { seed: 1, device });
  const losses = batches.map(({ x, y }, s) => exe.run({ x: Float32Array.from(x), y, lr: Float32Array.of(0.03), step: Float32Array.of(s + 1) }).loss![0]!);
  const summary = exe.kernelSummary();
  const gegluNode = exe.graph.nodes.findIndex((n) => n.op === 'geglu');
  const workspace = exe.plan.workspaces.get(gegluNode) ?? null;
  exe.dispose();
  return { losses, summary, workspace };
}

describe('an op defined outside ir with a CUDA candidate and a workspace', () => {
  const teacher = normals(IN * C);
  const batches = Array.from({ length: 40 }, () => batch(teacher));

  it('has a rule that matches finite differences', () => {
    expect(gradcheck('geglu', [{ shape: [3, 5] }, { shape: [3, 5] }])).toBeLessThan(1e-6);
  });

  it('registers its CUDA candidate, which declines off the GPU and declares a gate-sized workspace', () => {
    const t = { shape: [4, 6], dtype: 'f32' as const };
    const params = { op: 'geglu', device: 'cpu', inTypes: [t, t], outTypes: [t], attrs: {} };
    const rows = registry.explain('geglu', params).rows;
    expect(rows.map((r) => r.name)).toEqual(['geglu_cuda', 'geglu_reference']);
    expect(rows[0]!.verdict).toMatch(/runs on CUDA/);
    const cuda = registry.candidates('geglu').find((c) => c.name === 'geglu_cuda')!;
    expect(cuda.workspace!({ ...params, device: 'cuda:0' })).toBe(4 * 6 * 4);
  });

  it('compiles for the CPU and trains: the loss goes down', () => {
    const { losses, summary, workspace } = trainGeglu('cpu', batches);
    expect(summary.find((r) => r.op === 'geglu')).toMatchObject({ backend: 'cpu', kernel: 'geglu_reference', calls: 40 });
    expect(workspace).toBeNull();
    const mean = (a: number[]) => a.reduce((p, q) => p + q) / a.length;
    expect(mean(losses.slice(-10))).toBeLessThan(0.7 * mean(losses.slice(0, 10)));
  });

  it.skipIf(!gpu)('on the GPU, its CUDA candidate serves with a planned workspace, and training tracks the CPU', () => {
    const cpu = trainGeglu('cpu', batches);
    const cuda = trainGeglu(gpu!, batches);
    expect(cuda.summary.find((r) => r.op === 'geglu')).toMatchObject({ backend: 'cuda', kernel: 'geglu_cuda', calls: 40 });
    expect(cuda.workspace).not.toBeNull();
    expect(cuda.workspace!.bytes).toBeGreaterThanOrEqual(N * H * 4);
    // f32 storage with TF32 GEMMs on the GPU: the curves agree closely, not bitwise.
    cuda.losses.forEach((l, i) => expect(Math.abs(l - cpu.losses[i]!), `step ${i + 1}`).toBeLessThan(2e-2 * Math.max(1, cpu.losses[i]!)));
  });
});

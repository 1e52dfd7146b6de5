// The graph, its passes, the memory plan, compile and dryrun, on a small two-layer MLP classifier
// written straight against the builder (the IR package knows no modules).
import { cpuBackend } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  Graph,
  GraphBuilder,
  add,
  biasAdd,
  capture,
  compile,
  crossEntropy,
  currentBuilder,
  dryrun,
  eager,
  eliminateCommonSubexpressions,
  eliminateDeadCode,
  fuseMatmulBias,
  gatherRows,
  gelu,
  initialValues,
  interpret,
  markElementwiseFusion,
  matmul,
  numel,
  planMemory,
  reshape,
  runPasses,
  scale,
  scatterAddRows,
  trainingStep,
  type Capturable,
  type NumArray,
  type Sym,
} from '../src/index.js';
import { errorOf, randInt } from './helpers.js';

class TinyMLP implements Capturable {
  constructor(readonly dIn: number, readonly hidden: number, readonly classes: number) {}
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const w1 = b.param('fc1.weight', [this.hidden, this.dIn], 'f32', { dist: 'normal', scale: 0.3 });
    const b1 = b.param('fc1.bias', [this.hidden], 'f32', { dist: 'zeros' });
    const w2 = b.param('fc2.weight', [this.classes, this.hidden], 'f32', { dist: 'normal', scale: 0.3 });
    const h = b.scoped('fc1', () => gelu(biasAdd(matmul(x!, w1, { transB: true }), b1)));
    const logits = b.scoped('fc2', () => matmul(h, w2, { transB: true }));
    return { logits, loss: crossEntropy(logits, y!) };
  }
}

function setup(N = randInt(3, 9)) {
  const m = new TinyMLP(5, 7, 4);
  const fwd = capture(m, { x: { shape: [N, 5] }, y: { shape: [N], dtype: 'i32' } });
  const batch = () => ({
    x: Float32Array.from({ length: N * 5 }, () => Math.random() * 2 - 1),
    y: Int32Array.from({ length: N }, () => randInt(0, 3)),
    lr: Float32Array.of(0.01),
    step: Float32Array.of(1),
  });
  return { m, fwd, N, batch };
}

describe('the graph', () => {
  it('prints readably, with parameter names and scopes', () => {
    const { fwd } = setup();
    const text = fwd.toText();
    expect(text).toMatch(/param %\d+ fc1\.weight: f32\[7, 5\]/);
    expect(text).toMatch(/= matmul\(%\d+, %\d+\) \{transA=false, transB=true\}  # fc1/);
    expect(text).toMatch(/output loss = %\d+/);
  });

  it('round-trips through JSON', () => {
    const step = trainingStep(setup().fwd);
    const back = Graph.fromJSON(JSON.parse(JSON.stringify(step)));
    expect(back.toText()).toBe(step.toText());
    expect(back.gradients).toEqual(step.gradients);
  });

  it('rejects a cyclic graph, naming the node', () => {
    const j = setup().fwd.toJSON();
    // Make the first node read the output of the last one.
    j.nodes[0]!.inputs[0] = j.nodes.at(-1)!.outputs[0]!;
    const e = errorOf(() => Graph.fromJSON(j));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/node #0 .*\(matmul\) reads %\d+ before it is computed \(the graph has a cycle, or is out of order\)/);
  });

  it('rejects mismatched shapes and unknown ops in a document, naming the node', () => {
    const j = setup().fwd.toJSON();
    j.values[j.nodes[0]!.outputs[0]!]!.type.shape = [99, 99];
    expect(errorOf(() => Graph.fromJSON(j)).message).toMatch(/node #0 'fc1' \(matmul\) output %\d+ is f32\[99, 99\]/);
    const k = setup().fwd.toJSON();
    k.nodes[1]!.op = 'frobnicate';
    expect(errorOf(() => Graph.fromJSON(k)).message).toMatch(/Expected a known op for op name but received "frobnicate"/);
    expect(errorOf(() => Graph.fromJSON({ format: 'onnx' })).code).toBe('INVALID_ARGUMENT');
  });

  it('names the node and scope when a model is built wrong', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3, 4]);
    const w = b.param('w', [5, 6], 'f32', { dist: 'zeros' });
    const e = errorOf(() => b.scoped('blocks.0.mlp', () => matmul(x, w)));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/^node #0 'blocks\.0\.mlp' \(matmul\): matmul: Expected inner dimensions that agree but received 4/);
    const ids = b.input('ids', [3], 'i32');
    expect(errorOf(() => add(ids, ids)).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => b.param('w', [1], 'f32', { dist: 'zeros' })).message).toMatch(/used twice/);
    expect(errorOf(() => b.input('bad name', [1])).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => b.op('matmul', [x], {})).message).toMatch(/Expected 2 inputs \(a, b\) but received 1/);
    expect(errorOf(() => b.op('scale', [x], { alpha: 'big' })).message).toMatch(/Expected a float for attribute 'alpha' of scale/);
  });
});

describe('passes', () => {
  it('CSE merges repeated work and DCE drops what nothing needs', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4]);
    const y1 = scale(x, 2);
    const y2 = scale(x, 2); // the same computation
    scale(x, 3); // unused
    b.output('out', add(y1, y2));
    const g = eliminateCommonSubexpressions(b.graph.verify());
    expect(g.nodes.map((n) => n.op)).toEqual(['scale', 'add']);
    expect(g.nodes[1]!.inputs[0]).toBe(g.nodes[1]!.inputs[1]);
    const out = interpret(g, { x: Float32Array.of(1, 2, 3, 4) })[g.outputs.out!]!;
    expect(Array.from(out)).toEqual([4, 8, 12, 16]);
  });

  it('marks chains of single-use elementwise ops as one fusion group', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [8]);
    const bias = b.input('b', [8]);
    const y = gelu(add(scale(x, 0.5), bias));
    b.output('y', y);
    b.output('z', scale(x, 4)); // on its own: no group
    const g = markElementwiseFusion(b.graph.verify());
    const groups = g.nodes.map((n) => n.fusionGroup);
    expect(groups.slice(0, 3).every((v) => v !== undefined && v === groups[0])).toBe(true);
    expect(groups[3]).toBeUndefined();
    expect(g.toText()).toMatch(/\[fused \d+\]/);
  });

  it('runs a precision hook before the others', () => {
    const seen: number[] = [];
    const g = runPasses(trainingStep(setup().fwd), { precision: { name: 'spy', run: (x) => (seen.push(x.nodes.length), x) } });
    expect(seen.length).toBe(1);
    expect(g.nodes.length).toBeLessThanOrEqual(seen[0]!);
  });
});

describe('memory plan and compile', () => {
  it('never overlaps two values that are live at once', () => {
    const g = runPasses(trainingStep(setup().fwd));
    const plan = planMemory(g);
    const ps = [...plan.placements.values()];
    for (let i = 0; i < ps.length; i++)
      for (let j = i + 1; j < ps.length; j++) {
        const [a, b] = [ps[i]!, ps[j]!];
        const time = a.first <= b.last && b.first <= a.last;
        const space = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
        expect(time && space).toBe(false);
      }
    expect(plan.arenaBytes).toBeLessThan(ps.reduce((s, p) => s + p.bytes, 0)); // it reuses memory
  });

  it('gives the same results as the reference interpreter, bit for bit, over several steps', () => {
    const { fwd, batch } = setup();
    const step = trainingStep(fwd);
    const exe = compile(step, { seed: 7 });
    const g = exe.graph;
    const state: Record<string, Float32Array> = {};
    for (const [name, id] of [...Object.entries(g.params), ...Object.entries(g.state)]) {
      state[name] = initialValues(g.init[name]!, numel(g.values[id]!.type.shape), 7, name) as Float32Array;
      expect(Array.from(exe.get(name))).toEqual(Array.from(state[name]!));
    }
    for (let s = 1; s <= 3; s++) {
      const b = { ...batch(), step: Float32Array.of(s) };
      const got = exe.run(b);
      const vals = interpret(g, { ...b, ...state } as Record<string, NumArray>);
      expect(Array.from(got.loss!)).toEqual(Array.from(vals[g.outputs.loss!]!));
      for (const [name, id] of Object.entries(g.updates)) state[name] = Float32Array.from(vals[id]!);
      for (const name of Object.keys(state)) expect(Array.from(exe.get(name))).toEqual(Array.from(state[name]!));
    }
    exe.dispose();
  });

  it("allocates exactly dryrun's arena at the first run", () => {
    const { fwd, batch } = setup();
    const step = trainingStep(fwd);
    const report = dryrun(step);
    const exe = compile(step);
    const before = cpuBackend.memoryStats().inUse;
    exe.run(batch());
    expect(cpuBackend.memoryStats().inUse - before).toBe(report.arenaBytes);
    exe.run(batch());
    expect(cpuBackend.memoryStats().inUse - before).toBe(report.arenaBytes); // not again
    expect(report.parameterBytes).toBe(4 * (7 * 5 + 7 + 4 * 7));
    expect(report.optimizerStateBytes).toBe(2 * report.parameterBytes);
    expect(report.gradientBytes).toBe(report.parameterBytes);
    expect(report.flopsPerStep).toBeGreaterThan(0);
    expect(report.estimate.ms).toBeGreaterThan(0);
    const persistent = exe.allocatedBytes.persistent;
    expect(persistent).toBe(report.parameterBytes + report.optimizerStateBytes);
    exe.dispose();
    expect(cpuBackend.memoryStats().inUse).toBe(before - persistent);
  });

  it('says which kernel served each op, and how often', () => {
    const { fwd, batch } = setup();
    const exe = compile(trainingStep(fwd));
    for (let i = 0; i < 3; i++) exe.run(batch());
    const rows = exe.kernelSummary();
    const mm = rows.find((r) => r.op === 'matmul')!;
    expect(mm).toMatchObject({ kernel: 'matmul_reference', backend: 'cpu' });
    expect(mm.calls).toBe(3 * mm.nodes);
    // The two weight matrices (decayed) run as one multi-tensor update; the bias (not decayed) alone.
    expect(rows.find((r) => r.op === 'adamw_multi')!.nodes).toBe(1);
    expect(rows.find((r) => r.op === 'adamw')!.nodes).toBe(1);
    exe.dispose();
    const plain = compile(trainingStep(fwd), { fuse: false });
    plain.run(batch());
    expect(plain.kernelSummary().find((r) => r.op === 'adamw')!.nodes).toBe(3);
    plain.dispose();
  });

  it('gives typed errors for bad batches and unknown names', () => {
    const { fwd, batch, N } = setup();
    const exe = compile(trainingStep(fwd));
    const good = batch();
    expect(errorOf(() => exe.run({ ...good, x: new Float32Array(3) })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => exe.run({ ...good, y: new Float32Array(N) })).code).toBe('INVALID_DTYPE');
    const { lr: _lr, ...noLr } = good;
    expect(errorOf(() => exe.run(noLr)).message).toMatch(/Expected a value for input 'lr'/);
    expect(errorOf(() => exe.run({ ...good, extra: new Float32Array(1) })).message).toMatch(/for a batch input but received "extra"/);
    expect(errorOf(() => exe.get('fc1.weights')).message).toMatch(/unknown; did you mean fc1\.weight/);
    expect(errorOf(() => exe.set('fc1.bias', new Float32Array(3))).code).toBe('SHAPE_MISMATCH');
    // get into a reused array: the same values, the same array; the wrong size is refused.
    const w = exe.get('fc1.weight');
    const into = new Float32Array(w.length).fill(Number.NaN);
    expect(exe.get('fc1.weight', into)).toBe(into);
    expect(Array.from(into)).toEqual(Array.from(w));
    expect(errorOf(() => exe.get('fc1.weight', new Float32Array(w.length + 1))).message).toMatch(/Expected a Float32Array of \d+ elements to read 'fc1.weight' into/);
    const bad = { ...good, y: Int32Array.from({ length: N }, () => 9) };
    expect(errorOf(() => exe.run(bad)).message).toMatch(/Expected ids in \[0, 4\) or -1 for input 'y' \(used by cross_entropy_with_grad\) but received 9 at position 0/);
    // No GPU here: NO_BACKEND; a GPU host has no cuda:99: INVALID_ARGUMENT.
    expect(['NO_BACKEND', 'INVALID_ARGUMENT']).toContain(errorOf(() => compile(fwd, { device: 'cuda:99' })).code);
    expect(errorOf(() => compile(fwd, { device: 'gpu' })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => trainingStep(capture(new TinyMLP(5, 7, 4), { x: { shape: [2, 5] }, y: { shape: [2], dtype: 'i32' } }), { loss: 'nll' })).message).toMatch(/outputs logits, loss/);
    exe.dispose();
    expect(errorOf(() => exe.run(good)).code).toBe('DISPOSED');
  });

  it("checks every index input an op declares (gather_rows' -1 allowed), naming the first op that reads it", () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 3]);
    const idx = b.input('idx', [2, 3], 'i32');
    const flat = reshape(idx, [6]);
    b.output('rows', gatherRows(x, flat));
    b.output('back', scatterAddRows(b.op1('fill', [], { shape: [6, 3], value: 1 }), flat, 2)); // rows 0 and 1 only
    const exe = compile(b.graph.verify());
    const xs = new Float32Array(12).fill(1);
    expect(exe.run({ x: xs, idx: Int32Array.of(0, 1, -1, 1, 0, -1) }).rows!.length).toBe(18);
    const e = errorOf(() => exe.run({ x: xs, idx: Int32Array.of(0, 1, -1, 3, 0, 0) }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toBe("Expected ids in [0, 2) or -1 for input 'idx' (used by gather_rows) but received 3 at position 3");
    expect(errorOf(() => exe.run({ x: xs, idx: Int32Array.of(0, 1, -2, 1, 0, 0) })).message).toMatch(/received -2 at position 2/);
    exe.dispose();
  });

  it('runs a model eagerly, op by op, with the same numbers', () => {
    const { m, N } = setup();
    const x = Float32Array.from({ length: N * 5 }, () => Math.random());
    const y = Int32Array.from({ length: N }, () => randInt(0, 3));
    const seen: string[] = [];
    const out = eager(m, { x: { shape: [N, 5], data: x }, y: { shape: [N], dtype: 'i32', data: y } }, { seed: 3, onNode: (n) => seen.push(n.op) });
    expect(seen[0]).toBe('matmul');
    expect(seen.at(-1)).toBe('cross_entropy');
    const fwd = capture(m, { x: { shape: [N, 5] }, y: { shape: [N], dtype: 'i32' } });
    const exe = compile(fwd, { seed: 3 });
    expect(Array.from(exe.run({ x, y }).loss!)).toEqual(Array.from(out.loss!));
    exe.dispose();
  });
});

describe('matmul + bias fusion', () => {
  it('fuses a matmul used only by a bias_add, and nothing else', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 3]);
    const w = b.param('w', [5, 3], 'f32', { dist: 'normal' });
    const bias = b.param('bias', [5], 'f32', { dist: 'normal' });
    const y = matmul(x, w, { transB: true });
    b.output('a', biasAdd(y, bias)); // fusable
    const w2 = b.param('w2', [5, 3], 'f32', { dist: 'normal' });
    const shared = matmul(x, w2, { transB: true });
    b.output('b', add(biasAdd(shared, bias), shared)); // the product is used twice: not fusable
    const plain = eliminateCommonSubexpressions(b.graph.verify());
    expect(fuseMatmulBias(plain)).toBe(1);
    const g = eliminateDeadCode(plain);
    expect(g.nodes.filter((n) => n.op === 'matmul_bias').length).toBe(1);
    expect(g.nodes.filter((n) => n.op === 'matmul').length).toBe(1);
    g.verify();
  });

  it('changes no result: the fused step equals the unfused one bit for bit', () => {
    const { fwd, batch } = setup();
    const step = trainingStep(fwd);
    const fused = compile(step, { seed: 5 });
    const plain = compile(step, { seed: 5, fuse: false });
    // fc1 (matmul + bias + gelu) is one GEMM node; test/fusion.test.ts covers every fusion.
    expect(fused.graph.nodes.some((n) => n.op === 'matmul_bias_gelu')).toBe(true);
    expect(plain.graph.nodes.some((n) => n.op.startsWith('matmul_bias'))).toBe(false);
    for (let s = 1; s <= 3; s++) {
      const b = { ...batch(), step: Float32Array.of(s) };
      expect(Array.from(fused.run(b).loss!)).toEqual(Array.from(plain.run(b).loss!));
    }
    for (const name of fused.parameterNames()) expect(Array.from(fused.get(name))).toEqual(Array.from(plain.get(name)));
    fused.dispose();
    plain.dispose();
  });
});

describe('profile on the CPU', () => {
  it('computes what run() computes, bitwise, with every launched node timed and aliases at 0', () => {
    const { fwd, batch } = setup();
    const step = trainingStep(fwd);
    const [a, b] = [compile(step, { seed: 9 }), compile(step, { seed: 9 })];
    try {
      for (let s = 0; s < 3; s++) {
        const x = batch();
        const ran = a.run(x);
        const p = b.profile(x);
        expect(Float64Array.from(p.outputs.loss!)).toEqual(Float64Array.from(ran.loss!));
        expect(p.nodes.length).toBe(b.graph.nodes.length);
        expect(p.nodes.every((n, i) => n.index === i && n.ms >= 0 && n.op === b.graph.nodes[i]!.op)).toBe(true);
        expect(p.nodes.filter((n) => n.kernel === 'alias').every((n) => n.ms === 0)).toBe(true);
        expect(p.totalMs).toBeGreaterThanOrEqual(p.nodes.reduce((t, n) => t + n.ms, 0));
      }
      for (const name of a.parameterNames()) expect(Array.from(b.get(name))).toEqual(Array.from(a.get(name)));
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

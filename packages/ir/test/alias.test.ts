// Reshape aliases: the planner gives a reshape of an arena value its input's storage, and the
// compiled step launches nothing for it, computing what the reference interpreter does, bit for bit.
import { registry } from '@deepwell/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { expectNoClash } from './helpers.js';
import {
  GraphBuilder,
  capture,
  compile,
  crossEntropy,
  currentBuilder,
  defineOp,
  gelu,
  initialValues,
  interpret,
  matmul,
  numel,
  planMemory,
  reshape,
  scale,
  trainingStep,
  type Capturable,
  type Graph,
  type NumArray,
  type Sym,
} from '../src/index.js';

/** The index of the last node that reads value `id`. */
function lastRead(g: Graph, id: number): number {
  let last = -1;
  g.nodes.forEach((n, k) => n.inputs.includes(id) && (last = k));
  return last;
}

describe('reshape aliases in the memory plan', () => {
  it('gives a reshape the offset of its input and keeps the group live until its last use', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 16]);
    const y = scale(x, 2); // node 0: the root, read directly only by the reshape
    const r = reshape(y, [64]); // node 1
    // Nodes 2-4 make values of y's size while r is still to be read: none may take y's bytes.
    const u = scale(x, 3);
    const v = scale(u, 5);
    const w = scale(reshape(v, [64]), 7);
    const z = scale(r, 0.5); // node 6: r's last use
    b.output('w', w);
    b.output('z', z);
    const g = b.graph.verify();
    const plan = planMemory(g);
    expect(plan.aliases.get(r.id)).toBe(y.id);
    expect(plan.placements.get(r.id)!.offset).toBe(plan.placements.get(y.id)!.offset);
    expect(plan.placements.get(y.id)!.last).toBe(lastRead(g, r.id));
    expect(plan.placements.get(y.id)!.last).toBeGreaterThan(lastRead(g, y.id));
    expectNoClash(plan);
  });

  it('resolves a chain of reshapes to its first value, and keeps a reshaped graph output to the end', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3, 4]);
    const r1 = reshape(x, [6, 4]);
    const r2 = reshape(r1, [24]);
    const r3 = reshape(r2, [4, 6]);
    const s = scale(r2, 3);
    b.output('s', s);
    b.output('r3', r3);
    const g = b.graph.verify();
    const plan = planMemory(g);
    for (const r of [r1, r2, r3]) {
      expect(plan.aliases.get(r.id)).toBe(x.id);
      expect(plan.placements.get(r.id)).toEqual(plan.placements.get(x.id));
    }
    // The graph input is live from the start; the output r3 to the end (after the last node).
    expect(plan.placements.get(x.id)).toMatchObject({ first: 0, last: g.nodes.length });
    expectNoClash(plan);
  });

  it('keeps a reshape of a parameter a copy', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3, 4]);
    const w = b.param('w', [12], 'f32', { dist: 'normal' });
    const m = matmul(x, reshape(w, [4, 3]));
    b.output('m', m);
    const g = b.graph.verify();
    const plan = planMemory(g);
    const wr = g.nodes.find((n) => n.op === 'reshape')!.outputs[0]!;
    expect(plan.persistent.has(w.id)).toBe(true);
    expect(plan.aliases.has(wr)).toBe(false);
    expect(plan.placements.has(wr)).toBe(true); // its own arena copy
  });

  it('keeps the alias of a group an in-place op reads before the group dies (the op gets its own storage)', () => {
    defineOp({
      name: 'test_inplace_negate',
      doc: 'out = -x, which may be written over x',
      inputs: ['x'],
      outputs: ['out'],
      attrs: {},
      inplace: [[0, 0]],
      infer: ([x]) => [x!],
      reference: ({ inputs: [x], outputs: [out] }) => {
        for (let i = 0; i < out!.length; i++) out![i] = -x![i]!;
      },
    });
    const b = new GraphBuilder();
    const x = b.input('x', [2, 8]);
    const y = scale(x, 2);
    const r = reshape(y, [16]);
    const [n] = b.op('test_inplace_negate', [r], {});
    const kept = reshape(scale(x, 4), [16]); // another group, untouched by it
    b.output('n', n!);
    b.output('s', scale(r, 3)); // r is read after the in-place op: it may not write over r
    b.output('k', kept);
    const plan = planMemory(b.graph.verify());
    expect(plan.aliases.get(r.id)).toBe(y.id);
    expect(plan.aliases.has(kept.id)).toBe(true);
    expect(plan.inplace.size).toBe(0);
    expect(plan.placements.get(n!.id)!.offset).not.toBe(plan.placements.get(y.id)!.offset);
    expectNoClash(plan);
  });
});

const [B, T, C, H, K] = [2, 3, 5, 6, 4];

/** A small classifier that reshapes around every matmul, as nn's attention does. */
class Reshaper implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const w1 = b.param('w1', [H, C], 'f32', { dist: 'normal', scale: 0.4 });
    const w2 = b.param('w2', [K * H], 'f32', { dist: 'normal', scale: 0.4 }); // flat: reshaped below, a copy
    const h = gelu(reshape(matmul(reshape(x!, [B * T, C]), w1, { transB: true }), [B, T, H]));
    const h2 = reshape(reshape(h, [B * T * H]), [B * T, H]); // a chain
    const logits = matmul(h2, reshape(w2, [K, H]), { transB: true });
    return { logits: reshape(logits, [B, T, K]), loss: crossEntropy(logits, reshape(y!, [B * T])) };
  }
}

describe('compiled steps with reshape aliases', () => {
  afterEach(() => vi.restoreAllMocks());

  it('computes what the interpreter does, bit for bit, and runs no kernel for an aliased reshape', () => {
    const step = trainingStep(capture(new Reshaper(), { x: { shape: [B, T, C] }, y: { shape: [B, T], dtype: 'i32' } }));
    const cpuReshape = registry.candidates('reshape').find((k) => k.backend === 'cpu')!;
    const runs = vi.spyOn(cpuReshape, 'run');
    const exe = compile(step, { seed: 3 });
    const g = exe.graph;
    const reshapes = g.nodes.filter((n) => n.op === 'reshape');
    const copies = reshapes.filter((n) => exe.plan.persistent.has(n.inputs[0]!)).length;
    const aliased = reshapes.filter((n) => exe.plan.aliases.has(n.outputs[0]!)).length;
    expect(copies).toBe(1); // w2's
    expect(aliased).toBe(reshapes.length - copies);
    expect(aliased).toBeGreaterThanOrEqual(6); // forward and backward
    expectNoClash(exe.plan);

    const state: Record<string, Float32Array> = {};
    for (const [name, id] of [...Object.entries(g.params), ...Object.entries(g.state)]) state[name] = initialValues(g.init[name]!, numel(g.values[id]!.type.shape), 3, name) as Float32Array;
    const steps = 3;
    for (let s = 1; s <= steps; s++) {
      const batch = {
        x: Float32Array.from({ length: B * T * C }, () => Math.random() * 2 - 1),
        y: Int32Array.from({ length: B * T }, (_, i) => (i * 7 + s) % K),
        lr: Float32Array.of(0.05),
        step: Float32Array.of(s),
      };
      const got = exe.run(batch);
      const vals = interpret(g, { ...batch, ...state } as Record<string, NumArray>);
      expect(Array.from(got.loss!)).toEqual(Array.from(vals[g.outputs.loss!]!));
      expect(Array.from(got.logits!)).toEqual(Array.from(vals[g.outputs.logits!]!));
      for (const [name, id] of Object.entries(g.updates)) state[name] = Float32Array.from(vals[id]!);
      for (const name of Object.keys(state)) expect(Array.from(exe.get(name)), name).toEqual(Array.from(state[name]!));
    }
    expect(runs).toHaveBeenCalledTimes(copies * steps);
    const rows = exe.kernelSummary().filter((r) => r.op === 'reshape');
    expect(rows).toContainEqual({ op: 'reshape', kernel: 'alias', backend: 'cpu', nodes: aliased, calls: 0 });
    expect(rows).toContainEqual({ op: 'reshape', kernel: cpuReshape.name, backend: 'cpu', nodes: copies, calls: copies * steps });
    exe.dispose();
  });
});

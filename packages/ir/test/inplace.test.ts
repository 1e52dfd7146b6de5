// Outputs written in place: the planner gives the output of an op's `inplace` pair the storage of an
// arena input that dies at that node (cross_entropy_backward writes dlogits over the logits), and
// the compiled step computes what the reference interpreter does (which keeps every value apart).
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  autocast,
  byteSizeOf,
  capture,
  compile,
  crossEntropy,
  currentBuilder,
  defineOp,
  getOp,
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
  type MemoryPlan,
  type NumArray,
  type Sym,
} from '../src/index.js';
import { expectNoClash, randn } from './helpers.js';

defineOp({
  name: 'test_inplace_neg',
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

defineOp({
  name: 'test_inplace_sub',
  doc: 'out = a - b, which may be written over a',
  inputs: ['a', 'b'],
  outputs: ['out'],
  attrs: {},
  inplace: [[0, 0]],
  infer: ([a]) => [a!],
  reference: ({ inputs: [a, b], outputs: [out] }) => {
    for (let i = 0; i < out!.length; i++) out![i] = a![i]! - b![i]!;
  },
});

const neg = (x: Sym) => x.builder.op1('test_inplace_neg', [x], {});
const sub = (a: Sym, b: Sym) => a.builder.op1('test_inplace_sub', [a, b], {});

/** Bytes the plan holds live at node k: each storage group once, and node k's workspace. */
function liveAt(plan: MemoryPlan, k: number): number {
  const roots = new Map<number, number>();
  for (const [id, p] of plan.placements) if (!plan.aliases.has(id) && !plan.inplace.has(id) && p.first <= k && k <= p.last) roots.set(id, p.bytes);
  return [...roots.values()].reduce((a, b) => a + b, 0) + (plan.workspaces.get(k)?.bytes ?? 0);
}

/** The index of the last node that reads value `id`. */
function lastRead(g: Graph, id: number): number {
  let last = -1;
  g.nodes.forEach((n, k) => n.inputs.includes(id) && (last = k));
  return last;
}

describe('in-place outputs in the memory plan', () => {
  it('writes over an input that dies at the node (through its reshapes) and keeps the group live to the output’s last use', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [4, 16]);
    const y = scale(x, 2);
    const r = reshape(y, [64]);
    const n = neg(r); // r (and y) die here
    const u = scale(x, 3); // values of y's size made while n lives: none may take its bytes
    const m = reshape(n, [4, 16]);
    const z = scale(m, 0.5);
    b.output('z', z);
    b.output('u', u);
    const g = b.graph.verify();
    const plan = planMemory(g);
    expect(plan.inplace.get(n.id)).toBe(r.id);
    expect(plan.aliases.get(r.id)).toBe(y.id);
    expect(plan.aliases.get(m.id)).toBe(y.id); // a reshape of the in-place output: the same group
    for (const id of [r.id, n.id, m.id]) expect(plan.placements.get(id)).toEqual(plan.placements.get(y.id));
    expect(plan.placements.get(y.id)!.last).toBe(lastRead(g, m.id));
    expectNoClash(plan);
    // Without in-place writes, n takes storage of its own.
    const apart = planMemory(g, undefined, undefined, { inplace: false });
    expect(apart.inplace.size).toBe(0);
    expect(apart.placements.get(n.id)!.offset).not.toBe(apart.placements.get(y.id)!.offset);
    const at = g.values[n.id]!.producer!;
    expect(liveAt(apart, at) - liveAt(plan, at)).toBe(plan.placements.get(y.id)!.bytes);
    expectNoClash(apart);
  });

  it('does not write over an input read later, a graph output, or one another slot of the node reads', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [8]);
    const later = scale(x, 2);
    const n1 = neg(later);
    b.output('s', scale(later, 3)); // read after n1
    const out = scale(x, 4);
    b.output('out', out);
    const n2 = neg(out); // a graph output lives to the end
    const twice = scale(x, 5);
    const n3 = sub(twice, twice); // the same value in both slots
    const grouped = scale(x, 6);
    const n4 = sub(grouped, reshape(reshape(grouped, [2, 4]), [8])); // the same storage group in both slots
    for (const [k, v] of Object.entries({ n1, n2, n3, n4 })) b.output(k, v);
    const plan = planMemory(b.graph.verify());
    expect(plan.inplace.size).toBe(0);
    expectNoClash(plan);
  });

  it('writes over a graph input that dies there, and the compiled step is right step after step', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3, 5]);
    const w = b.param('w', [3, 5], 'f32', { dist: 'normal' });
    const d = sub(x, w);
    b.output('d', scale(d, 2));
    const g = b.graph.verify();
    const exe = compile(g, { seed: 1 });
    const dId = exe.graph.nodes.find((nd) => nd.op === 'test_inplace_sub')!.outputs[0]!;
    expect(exe.plan.inplace.get(dId)).toBe(exe.graph.inputs.x);
    const wv = exe.get('w');
    for (let s = 0; s < 3; s++) {
      const xv = Float32Array.from(randn(15));
      const got = exe.run({ x: xv }).d!;
      const want = Float32Array.from(xv, (v, i) => (v - wv[i]!) * 2);
      expect(Array.from(got)).toEqual(Array.from(want));
    }
    exe.dispose();
  });
});

describe('cross_entropy_backward in place', () => {
  it('declares dlogits over logits; its reference gives the same bits in place as apart, and matches a float64 formula', () => {
    expect(getOp('cross_entropy_backward').inplace).toEqual([[0, 0]]);
    const def = getOp('cross_entropy_backward');
    for (const ignore of [-1, 3]) {
      const [N, V] = [9, 13];
      const lt = { shape: [N, V], dtype: 'f32' as const };
      const logits = Float32Array.from(randn(N * V), (v) => v * 3);
      const targets = Int32Array.from({ length: N }, (_, r) => (r % 4 === 1 ? ignore : (r * 5 + 2) % V));
      const g = Float32Array.of(0.5 + Math.random());
      const types = [lt, { shape: [N], dtype: 'i32' as const }, { shape: [1], dtype: 'f32' as const }];
      const apart = new Float32Array(N * V).fill(Number.NaN);
      def.reference({ inputs: [logits, targets, g], outputs: [apart], inTypes: types, outTypes: [lt], attrs: { ignoreIndex: ignore } });
      const shared = logits.slice();
      def.reference({ inputs: [shared, targets, g], outputs: [shared], inTypes: types, outTypes: [lt], attrs: { ignoreIndex: ignore } });
      expect(Array.from(shared)).toEqual(Array.from(apart));
      // float64: (softmax - onehot) * g / count, zero rows where ignored.
      const count = Array.from(targets).filter((t) => t !== ignore).length;
      for (let r = 0; r < N; r++) {
        const row = Array.from(logits.subarray(r * V, (r + 1) * V));
        const mx = Math.max(...row);
        const z = row.reduce((a, v) => a + Math.exp(v - mx), 0);
        for (let v = 0; v < V; v++) {
          const want = targets[r] === ignore ? 0 : ((Math.exp(row[v]! - mx) / z - (v === targets[r] ? 1 : 0)) * g[0]!) / count;
          expect(Math.abs(apart[r * V + v]! - want)).toBeLessThanOrEqual(1e-6 * Math.abs(want) + 1e-9);
        }
      }
      expect(apart.some((v) => v !== 0)).toBe(true);
    }
  });

  const [N, C, V] = [6, 4, 40];

  /** A linear classifier whose logits (not an output) die in the loss's backward. */
  class Classifier implements Capturable {
    forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
      const w = currentBuilder().param('w', [V, C], 'f32', { dist: 'normal', scale: 0.5 });
      return { loss: crossEntropy(reshape(matmul(x!, w, { transB: true }), [N, V]), y!) };
    }
  }

  // Fused (the default: cross_entropy_with_grad writes dlogits, its output 1, over the logits) and
  // not (cross_entropy_backward does, its output 0).
  for (const [fuse, op, out] of [[true, 'cross_entropy_with_grad', 1], [false, 'cross_entropy_backward', 0]] as const) {
    for (const dtype of ['f32', 'bf16'] as const) {
      it(`is written over the logits by ${op} in a ${dtype} training step, which equals the interpreter bit for bit`, () => {
        const fwd = capture(new Classifier(), { x: { shape: [N, C] }, y: { shape: [N], dtype: 'i32' } });
        const step = trainingStep(dtype === 'bf16' ? autocast(fwd) : fwd, { optimizer: { weightDecay: 0 } });
        const exe = compile(step, { seed: 4, fuse });
        const g = exe.graph;
        const ce = g.nodes.find((n) => n.op === op)!;
        const logits = ce.inputs[0]!;
        expect(exe.plan.inplace.get(ce.outputs[out]!)).toBe(logits);
        expect(exe.plan.placements.get(ce.outputs[out]!)).toEqual(exe.plan.placements.get(logits));
        expectNoClash(exe.plan);
        // The plan without in-place writes holds the logits and dlogits at once there: one more [N, V].
        const apart = planMemory(g, (t) => (t.dtype === 'bf16' ? 4 * numel(t.shape) : byteSizeOf(t)), undefined, { inplace: false });
        const at = g.nodes.indexOf(ce);
        expect(liveAt(apart, at) - liveAt(exe.plan, at)).toBe(exe.plan.placements.get(logits)!.bytes);
        expect(exe.plan.placements.get(logits)!.bytes).toBeGreaterThanOrEqual(4 * N * V);

        const state: Record<string, Float32Array> = {};
        for (const [name, id] of [...Object.entries(g.params), ...Object.entries(g.state)]) state[name] = initialValues(g.init[name]!, numel(g.values[id]!.type.shape), 4, name) as Float32Array;
        for (let s = 1; s <= 3; s++) {
          const batch = {
            x: Float32Array.from(randn(N * C)),
            y: Int32Array.from({ length: N }, () => Math.floor(Math.random() * V)),
            lr: Float32Array.of(0.1),
            step: Float32Array.of(s),
          };
          const got = exe.run(batch);
          const vals = interpret(g, { ...batch, ...state } as Record<string, NumArray>);
          expect(Array.from(got.loss!)).toEqual(Array.from(vals[g.outputs.loss!]!));
          for (const [name, id] of Object.entries(g.updates)) state[name] = Float32Array.from(vals[id]!);
          for (const name of Object.keys(state)) expect(Array.from(exe.get(name)), name).toEqual(Array.from(state[name]!));
        }
        exe.dispose();
      });
    }
  }
});

// The compile-time fusions (GEMM epilogues, residual + layernorm, multi-tensor AdamW), the fused
// ops' references, and the stable sort the fusions rely on, on the CPU.
import { describe, expect, it } from 'vitest';
import {
  Graph,
  GraphBuilder,
  add,
  adamw,
  autocast,
  biasAdd,
  capture,
  compile,
  crossEntropy,
  currentBuilder,
  eliminateCommonSubexpressions,
  fuse,
  defineOp,
  fuseAdamW,
  fuseAddLayernorm,
  fuseAmax,
  fuseBiasGradient,
  fuseMatmulBias,
  fuseMatmulDgelu,
  fuseMatmulGelu,
  gelu,
  geluBackward,
  geluScalar,
  interpret,
  layernorm,
  matmul,
  reshape,
  sortNodes,
  storedAmax,
  sumTo,
  trainingStep,
  type Capturable,
  type Sym,
} from '../src/index.js';
import { errorOf, expectClose, randInt, randn, runOp } from './helpers.js';

/** A pre-norm residual block and a head: every pattern the fusions look for. */
class TinyBlock implements Capturable {
  constructor(readonly D: number, readonly H: number, readonly C: number) {}
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const { D, H, C } = this;
    const p = (name: string, shape: number[]) => b.param(name, shape, 'f32', { dist: 'normal', scale: 0.4 });
    const linear = (name: string, v: Sym, out: number, inn: number) =>
      b.scoped(name, () => biasAdd(matmul(v, p(`${name}.weight`, [out, inn]), { transB: true }), p(`${name}.bias`, [out])));
    const norm = (name: string, v: Sym) => b.scoped(name, () => layernorm(v, p(`${name}.weight`, [D]), p(`${name}.bias`, [D])));
    const h = gelu(linear('fc1', norm('ln1', x!), H, D));
    const r = add(x!, linear('fc2', h, D, H)); // the residual stream
    const logits = linear('head', norm('ln2', r), C, D);
    return { loss: crossEntropy(reshape(logits, [-1, C]), reshape(y!, [-1])) };
  }
}

function block() {
  const [B, T, D, H, C] = [randInt(1, 3), randInt(2, 5), 6, 12, 4];
  const fwd = capture(new TinyBlock(D, H, C), { x: { shape: [B, T, D] }, y: { shape: [B, T], dtype: 'i32' } });
  const batch = (s: number) => ({
    x: Float32Array.from({ length: B * T * D }, () => Math.random() * 2 - 1),
    y: Int32Array.from({ length: B * T }, () => randInt(0, C - 1)),
    lr: Float32Array.of(0.02),
    step: Float32Array.of(s),
  });
  return { fwd, batch };
}

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;

describe('fusion of a training step', () => {
  for (const precision of ['f32', 'bf16'] as const) {
    it(`makes every fused op and changes no result, bit for bit (${precision})`, () => {
      const { fwd, batch } = block();
      const step = trainingStep(precision === 'f32' ? fwd : autocast(fwd, { dtype: 'bf16' }));
      const fused = compile(step, { seed: 9 });
      const plain = compile(step, { seed: 9, fuse: false });
      const g = fused.graph;
      expect(count(g, 'matmul_bias_gelu')).toBe(1); // fc1
      expect(count(g, 'matmul_dgelu')).toBe(1); // fc2's data gradient into fc1's GELU backward
      expect(count(g, 'gelu_backward')).toBe(0);
      expect(count(g, 'matmul_bias')).toBe(2); // fc2, head
      expect(count(g, 'matmul_bgrad')).toBe(3); // the weight and bias gradients of fc1, fc2, head
      expect(count(g, 'sum_to')).toBe(0);
      expect(count(g, 'add_layernorm')).toBe(1); // the residual into ln2
      expect(count(g, 'layernorm')).toBe(1); // ln1 reads the input directly
      // trainingStep decays the matrices only: two groups of attributes, one update each.
      expect(count(g, 'adamw_multi')).toBe(2);
      expect(count(g, 'adamw')).toBe(0);
      // The loss and its gradient from one read of the logits.
      expect(count(g, 'cross_entropy_with_grad')).toBe(1);
      expect(count(g, 'cross_entropy') + count(g, 'cross_entropy_backward')).toBe(0);
      expect(g.nodes.length).toBeLessThan(plain.graph.nodes.length);
      for (let s = 1; s <= 3; s++) {
        const b = batch(s);
        expect(Array.from(fused.run(b).loss!)).toEqual(Array.from(plain.run(b).loss!));
      }
      for (const name of fused.parameterNames()) expect(Array.from(fused.get(name))).toEqual(Array.from(plain.get(name)));
      fused.dispose();
      plain.dispose();
    });
  }
});

describe('the fusion patterns', () => {
  it('fuses gelu into a matmul_bias, moving its output and keeping the pre-activation', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3, 4]);
    const w = b.param('w', [5, 4], 'f32', { dist: 'normal' });
    const bias = b.param('bias', [5], 'f32', { dist: 'normal' });
    const pre = biasAdd(matmul(x, w, { transB: true }), bias);
    b.output('act', gelu(pre));
    b.output('pre', pre);
    const copy = () => Graph.fromJSON(b.graph.verify().toJSON());
    const g = copy();
    expect(fuseMatmulBias(g)).toBe(1);
    expect(fuseMatmulGelu(g)).toBe(1);
    const out = fuse(copy()).verify();
    const n = out.nodes.find((m) => m.op === 'matmul_bias_gelu')!;
    expect(n.outputs).toEqual([out.outputs.act, out.outputs.pre]);
    expect(count(out, 'gelu')).toBe(0);
  });

  it('fuses a matmul into the gelu_backward that reads it as its gradient, and nothing else', () => {
    const b = new GraphBuilder();
    const dy = b.input('dy', [2, 3, 5]);
    const w = b.param('w', [5, 4], 'f32', { dist: 'normal' });
    const pre = b.input('pre', [2, 3, 4]);
    const dh = matmul(dy, w);
    b.output('dpre', geluBackward(dh, pre)); // fused
    const shared = matmul(dy, w, { transA: false, transB: false });
    b.output('shared', shared); // a second use of the product: not fused
    b.output('d2', geluBackward(shared, pre));
    const asPre = matmul(b.input('dy2', [2, 3, 5]), w);
    b.output('d3', geluBackward(pre, asPre)); // the product as the pre-activation: not fused
    const withAmax = matmul(b.input('dy3', [2, 3, 5]), w);
    b.output('d4', b.op('gelu_backward', [withAmax, pre], { amax: true })[0]!); // returns an amax: not fused
    const copy = () => Graph.fromJSON(b.graph.verify().toJSON());
    const g = copy();
    expect(fuseMatmulDgelu(g)).toBe(1);
    const out = fuse(copy()).verify();
    const n = out.nodes.find((m) => m.op === 'matmul_dgelu')!;
    expect(n.outputs).toEqual([out.outputs.dpre]);
    expect(n.inputs).toEqual([out.inputs.dy, out.params.w, out.inputs.pre]);
    expect(count(out, 'gelu_backward')).toBe(3);
    // The fused graph computes what the unfused one did, bit for bit (f32 and bf16 storage).
    for (const dtype of ['f32', 'bf16'] as const) {
      const bind = Object.fromEntries(['dy', 'pre', 'dy2', 'dy3'].map((k) => [k, Float32Array.from(randn(k.startsWith('dy') ? 30 : 24))]));
      const want = interpret(copy(), { ...bind, w: Float32Array.from(randn(20)) });
      const got = interpret(out, { ...bind, w: Float32Array.from(want[copy().params.w!]!) });
      for (const name of ['dpre', 'd2', 'd3', 'd4']) expect(Array.from(got[out.outputs[name]!]!), `${name} ${dtype}`).toEqual(Array.from(want[copy().outputs[name]!]!));
    }
  });

  it('fuses the bias gradient only with a transA matmul of the same g, reshaped or not', () => {
    const b = new GraphBuilder();
    const g3 = b.input('g', [2, 3, 5]);
    const x2 = b.input('x', [6, 4]);
    const g2 = reshape(g3, [-1, 5]);
    b.output('dw', matmul(g2, x2, { transA: true }));
    b.output('db', sumTo(g3, [5]));
    const other = b.input('h', [6, 5]);
    b.output('dw2', matmul(other, x2, { transA: true })); // no sum of h: not fused
    b.output('db2', sumTo(b.input('k', [6, 5]), [5])); // a sum of another tensor: not fused
    const g = b.graph.verify();
    expect(fuseBiasGradient(g)).toBe(1);
    const out = eliminateCommonSubexpressions(sortNodes(g)).verify();
    expect(count(out, 'matmul_bgrad')).toBe(1);
    expect(count(out, 'sum_to')).toBe(1);
  });

  it('fuses add + layernorm only for same-shape summands', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3, 4]);
    const r = b.input('r', [2, 3, 4]);
    const pos = b.input('pos', [3, 4]); // broadcast over the batch: not fused
    const w = b.param('w', [4], 'f32', { dist: 'normal' });
    const bias = b.param('bias', [4], 'f32', { dist: 'normal' });
    const s = add(x, r);
    b.output('y', layernorm(s, w, bias));
    b.output('s', s);
    b.output('y2', layernorm(add(x, pos), w, bias));
    const copy = () => Graph.fromJSON(b.graph.verify().toJSON());
    expect(fuseAddLayernorm(copy())).toBe(1);
    const out = fuse(copy()).verify();
    expect(out.nodes.find((n) => n.op === 'add_layernorm')!.outputs[0]).toBe(out.outputs.s);
    expect(count(out, 'add')).toBe(1);
  });

  for (const dtype of ['f32', 'bf16'] as const) {
    it(`folds the residual gradient's add into layernorm_backward, same bits (${dtype}); not where dx is read again`, () => {
      const [R, D] = [randInt(2, 6), randInt(3, 12)];
      const b = new GraphBuilder();
      const x = b.input('x', [R, D], dtype);
      const g = b.input('g', [R, D], dtype);
      const r = b.input('r', [R, D], dtype);
      const w = b.input('w', [D], dtype);
      const bias = b.input('bias', [D], dtype);
      const [, mean, rstd] = b.op('layernorm', [x, w, bias]);
      const [dx, dw] = b.op('layernorm_backward', [g, x, w, mean!, rstd!]);
      b.output('sum', add(r, dx!)); // the residual stream's gradient
      b.output('dw', dw!);
      const [dx2] = b.op('layernorm_backward', [r, x, w, mean!, rstd!]);
      b.output('kept', add(dx2!, g));
      b.output('dx2', dx2!); // read twice: stays apart
      const plain = b.graph.verify();
      const fused = fuse(Graph.fromJSON(plain.toJSON())).verify();
      expect(fused.nodes.filter((n) => n.op === 'layernorm_backward').map((n) => n.inputs.length)).toEqual([6, 5]);
      expect(count(fused, 'add')).toBe(1);
      const q = (n: number) => Float32Array.from(randn(n), (v) => (dtype === 'bf16' ? Math.fround(v) : v));
      const bind = { x: q(R * D), g: q(R * D), r: q(R * D), w: q(D), bias: q(D) };
      const [a, c] = [interpret(plain, bind), interpret(fused, bind)];
      for (const name of ['sum', 'dw', 'kept', 'dx2']) expect(Array.from(c[fused.outputs[name]!]!)).toEqual(Array.from(a[plain.outputs[name]!]!));
    });
  }

  it('groups adamw nodes by lr, step, attributes and gradient dtype; leaves one whose result is read', () => {
    const b = new GraphBuilder();
    const lr = b.input('lr', [1]);
    const step = b.input('step', [1]);
    const upd = (name: string, shape: number[], wd: number) => {
      const p = b.param(name, shape, 'f32', { dist: 'normal' });
      const m = b.state(`m.${name}`, shape, 'f32', { dist: 'zeros' });
      const v = b.state(`v.${name}`, shape, 'f32', { dist: 'zeros' });
      const [p2, m2, v2] = adamw(p, b.input(`g.${name}`, shape), m, v, lr, step, { weightDecay: wd });
      b.update(name, p2);
      b.update(`m.${name}`, m2);
      b.update(`v.${name}`, v2);
      return p2;
    };
    upd('a', [3], 0);
    upd('b', [2, 2], 0);
    upd('c', [5], 0.1); // other attributes: its own group of one
    upd('d', [4], 0);
    b.output('read', gelu(upd('e', [4], 0))); // read after the update: not fused
    const copy = () => Graph.fromJSON(b.graph.verify().toJSON());
    expect(fuseAdamW(copy())).toBe(3);
    const out = fuse(copy()).verify();
    expect(count(out, 'adamw_multi')).toBe(1);
    expect(count(out, 'adamw')).toBe(2);
    expect(out.nodes.find((n) => n.op === 'adamw_multi')!.inputs.length).toBe(2 + 4 * 3);
  });

  it('sorts a moved output before its readers, keeping the order otherwise', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [3]);
    const a = gelu(x);
    const c = add(a, a);
    b.output('c', add(c, gelu(c)));
    const g = b.graph.verify();
    const order = g.nodes.map((n) => n.id);
    // Reverse the nodes: the sort must restore the one valid order.
    g.nodes.reverse();
    sortNodes(g);
    expect(g.nodes.map((n) => n.id)).toEqual(order);
    g.verify();
    // A cycle is a bug in a pass, reported as such.
    g.nodes[0]!.inputs = [g.nodes.at(-1)!.outputs[0]!];
    expect(errorOf(() => sortNodes(g)).code).toBe('INTERNAL');
  });
});

describe('the fused ops', () => {
  it('matmul_bgrad: the product and the row sums of op(a)', () => {
    const [M, K, N] = [randInt(1, 6), randInt(1, 7), randInt(1, 5)];
    for (const transA of [false, true]) {
      const a = randn(M * K);
      const w = randn(K * N);
      const [out, bg] = runOp('matmul_bgrad', [{ shape: transA ? [K, M] : [M, K], data: a }, { shape: [K, N], data: w }], { transA });
      const at = (m: number, k: number) => (transA ? a[k * M + m]! : a[m * K + k]!);
      const want = new Float64Array(M * N);
      const wantB = new Float64Array(M);
      for (let m = 0; m < M; m++) {
        for (let k = 0; k < K; k++) wantB[m]! += at(m, k);
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[m * N + n]! += at(m, k) * w[k * N + n]!;
      }
      expectClose(out!, want, 1e-12, 1e-12);
      expectClose(bg!, wantB, 1e-12, 1e-12);
    }
    expect(errorOf(() => runOp('matmul_bgrad', [{ shape: [2, 3, 4], data: randn(24) }, { shape: [4, 2], data: randn(8) }])).message).toMatch(/rank 2/);
  });

  it("matmul_dgelu: the product times gelu'(pre), against float64 and against the ops it replaces", () => {
    const [B, M, K, N] = [randInt(1, 3), randInt(1, 6), randInt(1, 7), randInt(1, 5)];
    // gelu' by a central difference of gelu: independent of gelu_backward's closed form.
    const dgelu = (x: number) => (geluScalar(x + 1e-5) - geluScalar(x - 1e-5)) / 2e-5;
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = randn(B * M * K);
      const w = randn(K * N);
      const pre = randn(B * M * N).map((v) => 3 * v);
      const aShape = transA ? [B, K, M] : [B, M, K];
      const [out] = runOp('matmul_dgelu', [{ shape: aShape, data: a }, { shape: transB ? [N, K] : [K, N], data: w }, { shape: [B, M, N], data: pre }], { transA, transB });
      const at = (b: number, m: number, k: number) => (transA ? a[b * K * M + k * M + m]! : a[b * M * K + m * K + k]!);
      const wt = (k: number, n: number) => (transB ? w[n * K + k]! : w[k * N + n]!);
      const want = new Float64Array(B * M * N);
      for (let b = 0; b < B; b++)
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let acc = 0;
            for (let k = 0; k < K; k++) acc += at(b, m, k) * wt(k, n);
            const i = (b * M + m) * N + n;
            want[i] = acc * dgelu(pre[i]!);
          }
      // The product is rounded to f32 as the unfused matmul stored it; the difference gelu' ~1e-10.
      expectClose(out!, want, 1e-6, 1e-6);
    }
    // bf16 storage: exactly matmul, then gelu_backward, each rounded as the unfused graph stores it.
    const a = { shape: [M, K], dtype: 'bf16' as const, data: randn(M * K) };
    const w = { shape: [K, N], dtype: 'bf16' as const, data: randn(K * N) };
    const pre = { shape: [M, N], dtype: 'bf16' as const, data: randn(M * N) };
    const [fused] = runOp('matmul_dgelu', [a, w, pre], {}, 'f32');
    const [prod] = runOp('matmul', [a, w], {}, 'f32');
    const [unfused] = runOp('gelu_backward', [{ shape: [M, N], dtype: 'bf16', data: prod! }, pre], {}, 'f32');
    expectClose(fused!, unfused!, 0, 0);
    expect(errorOf(() => runOp('matmul_dgelu', [a, w, { ...pre, shape: [M + 1, N], data: randn((M + 1) * N) }])).message).toMatch(/Expected the product's shape/);
    const bad = errorOf(() => runOp('matmul_dgelu', [a, w, { ...pre, dtype: 'f32' }]));
    expect(bad.code).toBe('INVALID_DTYPE');
    expect(bad.message).toMatch(/Expected bf16 for input 'pre'/);
    expect(errorOf(() => runOp('matmul_dgelu', [a, w])).message).toMatch(/3 inputs|input/);
  });

  it('add_layernorm: the sum and the layernorm of it', () => {
    const [R, D] = [randInt(1, 5), randInt(1, 9)];
    const x = randn(R * D);
    const r = randn(R * D);
    const w = randn(D);
    const bias = randn(D);
    const [s, y, mean, rstd] = runOp('add_layernorm', [{ shape: [R, D], data: x }, { shape: [R, D], data: r }, { shape: [D], data: w }, { shape: [D], data: bias }]);
    const sum = x.map((v, i) => v + r[i]!);
    const [y2, m2, r2] = runOp('layernorm', [{ shape: [R, D], data: sum }, { shape: [D], data: w }, { shape: [D], data: bias }]);
    expectClose(s!, sum, 0, 0);
    expectClose(y!, y2!, 0, 0);
    expectClose(mean!, m2!, 0, 0);
    expectClose(rstd!, r2!, 0, 0);
    expect(errorOf(() => runOp('add_layernorm', [{ shape: [R, D], data: x }, { shape: [D], data: w }, { shape: [D], data: w }, { shape: [D], data: bias }])).message).toMatch(/residual/);
  });

  it('adamw_multi: adamw on each parameter', () => {
    const shapes = [[3], [2, 4], [5]];
    const lr = { shape: [1], data: Float64Array.of(0.01) };
    const step = { shape: [1], data: Float64Array.of(randInt(1, 9)) };
    const groups = shapes.map((shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return [randn(n), randn(n), randn(n), randn(n).map(Math.abs)].map((data) => ({ shape, data }));
    });
    const outs = runOp('adamw_multi', [lr, step, ...groups.flat()], { weightDecay: 0.1 });
    expect(outs.length).toBe(9);
    groups.forEach((g, k) => {
      const want = runOp('adamw', [...g, lr, step], { weightDecay: 0.1 });
      for (let j = 0; j < 3; j++) expectClose(outs[3 * k + j]!, want[j]!, 0, 0);
    });
    expect(errorOf(() => runOp('adamw_multi', [lr, step, ...groups[0]!.slice(0, 3)])).message).toMatch(/4 inputs per parameter/);
  });
});

describe('fused amax (the fuse-amax pass)', () => {
  // A consumer that reads its input's amax, as an FP8 quantizer does: its output is that amax.
  defineOp({
    name: 'test_amax_reader',
    doc: 'the amax of x (given, or reduced here): a test consumer of the fuse-amax pass',
    inputs: ['x', 'amax?'],
    outputs: ['amax'],
    attrs: {},
    takesAmax: () => true,
    infer: () => [{ shape: [1], dtype: 'f32' }],
    reference: ({ inputs: [x, given], outputs: [out], inTypes }) => {
      out![0] = given ? given[0]! : storedAmax(x!, inTypes[0]!.dtype);
    },
  });

  it('gives a consumer the amax of the kernel that wrote its input, through reshapes, once per producer; the results are unchanged', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [6, 8], 'bf16');
    const y = b.input('y', [6, 8], 'bf16');
    const row = b.input('row', [8], 'bf16');
    const g = gelu(x);
    const read = (s: Sym) => b.op1('test_amax_reader', [s]);
    b.output('a', read(g));
    b.output('b', read(reshape(g, [48]))); // the same producer, through a reshape
    b.output('c', read(add(x, y)));
    b.output('d', read(add(x, row))); // broadcasting: its kernels reduce no amax
    b.output('e', read(b.op1('cast', [b.op1('cast', [x], { dtype: 'i32' })], { dtype: 'f32' }))); // from i32: no amax
    const graph = b.graph;
    const data = (n: number) => Float32Array.from(randn(n));
    const bind = { x: data(48), y: data(48), row: data(8) };
    bind.x[randInt(0, 47)] = Number.POSITIVE_INFINITY;
    const want = interpret(Graph.fromJSON(graph.toJSON()), bind);
    expect(fuseAmax(graph)).toBe(3);
    graph.verify();
    const readers = graph.nodes.filter((n) => n.op === 'test_amax_reader');
    expect(readers.map((n) => n.inputs.length)).toEqual([2, 2, 2, 1, 1]);
    const geluNode = graph.nodes.find((n) => n.op === 'gelu')!;
    expect(geluNode.attrs.amax).toBe(true);
    expect(geluNode.outputs.length).toBe(2);
    expect(readers[0]!.inputs[1]).toBe(geluNode.outputs[1]);
    expect(readers[1]!.inputs[1]).toBe(geluNode.outputs[1]);
    expect(fuseAmax(graph)).toBe(0); // every reader served
    const got = interpret(graph, bind);
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      const id = graph.outputs[name]!;
      expect(got[id]![0], name).toBe(want[id]![0]);
      expect(got[id]![0], name).toBeGreaterThan(0);
    }
  });

  it('an op returns the amax of its output as stored, NaN and ±Inf skipped, when asked', () => {
    const x = { shape: [5], dtype: 'bf16' as const, data: Float64Array.of(1.00390625, -3, Number.NaN, Number.NEGATIVE_INFINITY, 2.5) };
    const [out, amax] = runOp('gelu', [x], { amax: true }, 'f32');
    expect(amax![0]).toBe(storedAmax(out!, 'bf16'));
    expect(amax![0]).toBe(Math.max(...Array.from(out!).filter(Number.isFinite).map(Math.abs)));
    expect(runOp('gelu', [x]).length).toBe(1);
    expect(errorOf(() => runOp('cast', [{ ...x, dtype: 'f32' }], { dtype: 'i32', amax: true })).message).toMatch(/Expected float dtypes with attribute 'amax'/);
  });
});

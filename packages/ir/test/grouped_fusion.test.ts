// The grouped GEMM epilogue fusions (passes/fuse-grouped.ts) and the fused ops' references, on the
// CPU: a dropless expert MLP's training step (GELU and SwiGLU) fuses and computes what the unfused
// one did, bit for bit; the patterns that must not fuse stay; the references against float64 and
// against the ops they replace.
import { describe, expect, it } from 'vitest';
import {
  Graph,
  GraphBuilder,
  autocast,
  capture,
  compile,
  crossEntropy,
  currentBuilder,
  fuse,
  fuseGroupedEpilogues,
  gelu,
  geluBackward,
  geluScalar,
  groupedMatmul,
  interpret,
  matmul,
  moePermute,
  moeRoute,
  moeSort,
  moeUnpermute,
  reshape,
  swiglu,
  trainingStep,
  type Capturable,
  type Sym,
} from '../src/index.js';
import { errorOf, expectClose, randInt, randn, randomOffsets, runOp } from './helpers.js';

/** Tokens routed top-k to E experts (each a GELU or SwiGLU MLP over grouped GEMMs), then a head. */
class DroplessBlock implements Capturable {
  constructor(readonly D: number, readonly H: number, readonly E: number, readonly k: number, readonly C: number, readonly act: 'gelu' | 'swiglu') {}
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const { D, H, E, k, C } = this;
    const p = (name: string, shape: number[]) => b.param(name, shape, 'f32', { dist: 'normal', scale: 0.4 });
    const x2 = matmul(reshape(x!, [-1, D]), p('proj', [D, D])); // a layer below, so the experts' rows need their gradient
    const [, weights, chosen] = moeRoute(matmul(x2, p('router', [D, E])), k);
    const [order, slot, offsets] = moeSort(chosen, E);
    const rows = moePermute(x2, order, slot);
    const gate = groupedMatmul(rows, p('w1', [E, D, H]), offsets);
    const h = this.act === 'swiglu' ? swiglu(gate, groupedMatmul(rows, p('w3', [E, D, H]), offsets)) : gelu(gate);
    const ye = groupedMatmul(h, p('w2', [E, H, D]), offsets);
    const logits = matmul(moeUnpermute(ye, order, slot, weights), p('head', [D, C]));
    return { loss: crossEntropy(logits, reshape(y!, [-1])) };
  }
}

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;

describe('grouped epilogue fusion of a dropless MoE training step', () => {
  for (const act of ['gelu', 'swiglu'] as const) {
    for (const precision of ['f32', 'bf16'] as const) {
      it(`fuses the ${act} expert MLP and changes no result, bit for bit (${precision})`, () => {
        const [B, T, D, H, E, k, C] = [randInt(1, 3), randInt(2, 6), 6, 10, randInt(2, 5), 2, 5];
        const fwd = capture(new DroplessBlock(D, H, E, k, C, act), { x: { shape: [B, T, D] }, y: { shape: [B, T], dtype: 'i32' } });
        const step = trainingStep(precision === 'f32' ? fwd : autocast(fwd, { dtype: 'bf16' }));
        const fused = compile(step, { seed: 5 });
        const plain = compile(step, { seed: 5, fuse: false });
        const g = fused.graph;
        if (act === 'gelu') {
          expect(count(g, 'grouped_matmul_gelu')).toBe(1); // the first expert GEMM with its activation
          expect(count(g, 'grouped_matmul_dgelu')).toBe(1); // w2's data gradient into the GELU backward
          expect(count(g, 'gelu') + count(g, 'gelu_backward')).toBe(0);
          expect(count(g, 'grouped_matmul')).toBe(2); // w2 forward, w1's data gradient (the GELU backward's product is fused)
        } else {
          expect(count(g, 'grouped_matmul_swiglu')).toBe(1); // both first-layer products from one pass
          expect(count(g, 'swiglu')).toBe(0);
          expect(count(g, 'grouped_matmul')).toBe(4); // w2 forward; the data gradients of w2, w1, w3
        }
        expect(count(g, 'grouped_matmul_wgrad')).toBe(act === 'gelu' ? 2 : 3);
        for (let s = 1; s <= 3; s++) {
          const batch = {
            x: Float32Array.from({ length: B * T * D }, () => Math.random() * 2 - 1),
            y: Int32Array.from({ length: B * T }, () => randInt(0, C - 1)),
            lr: Float32Array.of(0.05),
            step: Float32Array.of(s),
          };
          expect(Array.from(fused.run(batch).loss!)).toEqual(Array.from(plain.run(batch).loss!));
        }
        for (const name of fused.parameterNames()) expect(Array.from(fused.get(name)), name).toEqual(Array.from(plain.get(name)));
        fused.dispose();
        plain.dispose();
      });
    }
  }
});

describe('the grouped fusion patterns', () => {
  it('fuses only what the epilogues compute, and leaves the rest', () => {
    const [R, K, N, E] = [7, 4, 6, 3];
    const b = new GraphBuilder();
    const x = b.input('x', [R, K]);
    const x2 = b.input('x2', [R, K]);
    const offsets = b.input('offsets', [E + 1], 'i32');
    const w = b.param('w', [E, K, N], 'f32', { dist: 'normal' });
    const w3 = b.param('w3', [E, K, N], 'f32', { dist: 'normal' });
    const wt = b.param('wt', [E, N, K], 'f32', { dist: 'normal' });
    const pre = b.input('pre', [R, N]);
    b.output('act', gelu(groupedMatmul(x, w, offsets))); // fused (gelu)
    b.output('dpre', geluBackward(groupedMatmul(x, w3, offsets), pre)); // fused (dgelu)
    const shared = groupedMatmul(x2, w, offsets);
    b.output('shared', shared); // the product has a second use: its gelu_backward is not fused ...
    b.output('d2', geluBackward(shared, pre));
    b.output('d3', geluBackward(pre, groupedMatmul(x2, w3, offsets))); // ... nor one reading the product as pre
    b.output('swi', swiglu(groupedMatmul(x2, wt, offsets, { transposeW: true }), groupedMatmul(x2, wt, offsets, { transposeW: true }))); // fused (one weight twice is still two products)
    b.output('mixed', swiglu(groupedMatmul(x, w, offsets), groupedMatmul(x2, w3, offsets))); // two inputs: not fused
    const copy = () => Graph.fromJSON(b.graph.verify().toJSON());
    const out = fuse(copy()).verify();
    expect(count(out, 'grouped_matmul_gelu')).toBe(1);
    expect(count(out, 'grouped_matmul_dgelu')).toBe(1);
    expect(count(out, 'grouped_matmul_swiglu')).toBe(1);
    expect(count(out, 'gelu_backward')).toBe(2);
    expect(count(out, 'swiglu')).toBe(1);
    const dg = out.nodes.find((m) => m.op === 'grouped_matmul_dgelu')!;
    expect(dg.inputs).toEqual([out.inputs.x, out.params.w3, out.inputs.offsets, out.inputs.pre]);
    const sw = out.nodes.find((m) => m.op === 'grouped_matmul_swiglu')!;
    expect(sw.attrs.transposeW).toBe(true);
    expect(sw.outputs[0]).toBe(out.outputs.swi);
    // The counts the pass reports, on a fresh copy.
    expect(fuseGroupedEpilogues(copy())).toEqual({ gelu: 1, dgelu: 1, swiglu: 1 });
    // The fused graph computes what the unfused one did, bit for bit.
    const bind = { x: randn(R * K), x2: randn(R * K), pre: randn(R * N), offsets: randomOffsets(E, R), w: randn(E * K * N), w3: randn(E * K * N), wt: randn(E * N * K) };
    const want = interpret(copy(), bind);
    const got = interpret(out, bind);
    for (const name of Object.keys(out.outputs)) expect(Array.from(got[out.outputs[name]!]!), name).toEqual(Array.from(want[copy().outputs[name]!]!));
  });
});

describe('the fused grouped ops', () => {
  /** out[r] = x[r] · w[e] in float64 (w [E, K, N], or [E, N, K] transposed). */
  function product(x: Float64Array, w: Float64Array, off: Int32Array, R: number, K: number, N: number, transposeW: boolean): Float64Array {
    const out = new Float64Array(R * N);
    for (let e = 0; e + 1 < off.length; e++)
      for (let r = off[e]!; r < off[e + 1]!; r++)
        for (let n = 0; n < N; n++) {
          let acc = 0;
          for (let kk = 0; kk < K; kk++) acc += x[r * K + kk]! * w[transposeW ? (e * N + n) * K + kk : (e * K + kk) * N + n]!;
          out[r * N + n] = acc;
        }
    return out;
  }

  it('against float64: gelu of the product, the product times gelu\'(pre), silu(gate) · up', () => {
    const dgelu = (v: number) => (geluScalar(v + 1e-5) - geluScalar(v - 1e-5)) / 2e-5; // independent of gelu_backward's closed form
    for (const transposeW of [false, true]) {
      const [E, R, K, N] = [randInt(1, 4), randInt(0, 12), randInt(1, 6), randInt(1, 5)];
      const off = randomOffsets(E, R, Math.random() < 0.3 ? 'one' : 'ragged');
      const x = randn(R * K), w = randn(E * K * N), w3 = randn(E * K * N), pre = randn(R * N).map((v) => 3 * v);
      const wShape = transposeW ? [E, N, K] : [E, K, N];
      const ins = [{ shape: [R, K], data: x }, { shape: wShape, data: w }, { shape: [E + 1], dtype: 'i32' as const, data: off }];
      const p1 = product(x, w, off, R, K, N, transposeW), p3 = product(x, w3, off, R, K, N, transposeW);
      const [act, preOut] = runOp('grouped_matmul_gelu', ins, { transposeW });
      expectClose(preOut!, p1, 1e-12, 1e-12);
      expectClose(act!, p1.map(geluScalar), 1e-12, 1e-12);
      const [dg] = runOp('grouped_matmul_dgelu', [...ins, { shape: [R, N], data: pre }], { transposeW });
      expectClose(dg!, p1.map((v, i) => v * dgelu(pre[i]!)), 1e-6, 1e-6);
      const [out, gate, up] = runOp('grouped_matmul_swiglu', [ins[0]!, ins[1]!, { shape: wShape, data: w3 }, ins[2]!], { transposeW });
      expectClose(gate!, p1, 1e-12, 1e-12);
      expectClose(up!, p3, 1e-12, 1e-12);
      expectClose(out!, p1.map((g, i) => (g / (1 + Math.exp(-g))) * p3[i]!), 1e-12, 1e-12);
    }
  });

  it('in bf16: exactly the ops they replace, each product rounded as the unfused graph stores it', () => {
    const [E, R, K, N] = [3, 9, 5, 4];
    const off = randomOffsets(E, R);
    const bf = (shape: number[]) => ({ shape, dtype: 'bf16' as const, data: randn(shape.reduce((a, v) => a * v, 1)) });
    const x = bf([R, K]), w = bf([E, K, N]), w3 = bf([E, K, N]), pre = bf([R, N]);
    const o = { shape: [E + 1], dtype: 'i32' as const, data: off };
    const [prod] = runOp('grouped_matmul', [x, w, o], {}, 'f32');
    const [prod3] = runOp('grouped_matmul', [x, w3, o], {}, 'f32');
    const stored = (d: ArrayLike<number>) => ({ shape: [R, N], dtype: 'bf16' as const, data: Float64Array.from(d) });
    const [act, preOut] = runOp('grouped_matmul_gelu', [x, w, o], {}, 'f32');
    expect(Array.from(preOut!)).toEqual(Array.from(prod!));
    expect(Array.from(act!)).toEqual(Array.from(runOp('gelu', [stored(prod!)], {}, 'f32')[0]!));
    const [dg] = runOp('grouped_matmul_dgelu', [x, w, o, pre], {}, 'f32');
    expect(Array.from(dg!)).toEqual(Array.from(runOp('gelu_backward', [stored(prod!), pre], {}, 'f32')[0]!));
    const [sw] = runOp('grouped_matmul_swiglu', [x, w, w3, o], {}, 'f32');
    expect(Array.from(sw!)).toEqual(Array.from(runOp('swiglu', [stored(prod!), stored(prod3!)], {}, 'f32')[0]!));
  });

  it('refuses shapes and dtypes that do not fit, and bad offsets, naming what', () => {
    const [E, R, K, N] = [2, 5, 3, 4];
    const x = { shape: [R, K], data: randn(R * K) };
    const w = { shape: [E, K, N], data: randn(E * K * N) };
    const o = { shape: [E + 1], dtype: 'i32' as const, data: Int32Array.of(0, 2, 5) };
    expect(errorOf(() => runOp('grouped_matmul_dgelu', [x, w, o, { shape: [R, N + 1], data: randn(R * (N + 1)) }])).message).toMatch(/Expected the product's shape/);
    const bad = errorOf(() => runOp('grouped_matmul_dgelu', [x, w, o, { shape: [R, N], dtype: 'bf16', data: randn(R * N) }]));
    expect(bad.code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('grouped_matmul_swiglu', [x, w, { shape: [E, K, N + 1], data: randn(E * K * (N + 1)) }, o])).message).toMatch(/Expected the shape of w1 .* for input 'w3'/);
    expect(errorOf(() => runOp('grouped_matmul_gelu', [x, { shape: [E, K + 1, N], data: randn(E * (K + 1) * N) }, o])).message).toMatch(/reduction length/);
    const off = errorOf(() => runOp('grouped_matmul_gelu', [x, w, { ...o, data: Int32Array.of(0, 4, 3) }]));
    expect(off.code).toBe('INVALID_ARGUMENT');
    expect(off.message).toMatch(/offsets\[2\]/);
  });
});

// The optimizer phase and the weight casts on the CPU: sum_squares (the clipping's global sum of
// squares), adamw's gradScale (the clipping factor inside the optimizer), cast_multi (the weight
// casts in one node), and the passes that make them (elide-casts, fuse-casts), whose fused step
// must equal the unfused one bit for bit.
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  Graph,
  GraphBuilder,
  adamw,
  adamwMulti,
  autocast,
  biasAdd,
  capture,
  cast,
  castMulti,
  compile,
  crossEntropy,
  currentBuilder,
  elideWideningCasts,
  fuse,
  fuseParamCasts,
  gelu,
  getOp,
  inplacePairs,
  interpret,
  layernorm,
  matmul,
  reshape,
  sumSquares,
  trainingStep,
  type Capturable,
  type Sym,
} from '../src/index.js';
import { errorOf, randInt, randShape, randn, runOp } from './helpers.js';

const bf16 = (v: number) => bf16BitsToF32(f32ToBf16Bits(v));
const f16 = (v: number) => f16BitsToF32(f32ToF16Bits(v));
const roundAs = { f32: Math.fround, bf16, f16 } as const;
type F = keyof typeof roundAs;
const FLOATS: F[] = ['f32', 'bf16', 'f16'];

/** Random values exactly representable in `dtype`, spread over a few binades. */
const values = (n: number, dtype: F, scale = 1) => randn(n).map((v) => roundAs[dtype](v * scale * 2 ** randInt(-3, 3)));

describe('sum_squares', () => {
  it('is the float64 sum of every square of every input, whatever their dtypes, rounded once to f32', () => {
    for (let trial = 0; trial < 5; trial++) {
      const ins = Array.from({ length: randInt(1, 6) }, () => {
        const dtype = FLOATS[randInt(0, 2)]!;
        const shape = randShape(randInt(1, 3), 1, 7);
        return { shape, dtype, data: values(shape.reduce((a, b) => a * b, 1), dtype) };
      });
      // An independent sum: per tensor (compensated), then over tensors.
      let want = 0;
      for (const x of ins) {
        let s = 0, c = 0;
        for (const v of x.data) {
          const y = v * v - c;
          const t = s + y;
          c = t - s - y;
          s = t;
        }
        want += s;
      }
      const [got64] = runOp('sum_squares', ins);
      expect(Math.abs(got64![0]! - want)).toBeLessThanOrEqual(1e-13 * want);
      const [got32] = runOp('sum_squares', ins, {}, 'f32');
      expect(got32![0]).toBe(Math.fround(got64![0]!));
      expect(got32![0]).toBeGreaterThan(0);
    }
  });

  it('takes any float input, empty ones too, and refuses indices and no input at all', () => {
    expect(runOp('sum_squares', [{ shape: [0], data: new Float64Array(0) }, { shape: [2], dtype: 'bf16', data: Float64Array.of(3, -4) }])[0]![0]).toBe(25);
    const e = errorOf(() => runOp('sum_squares', [{ shape: [2], data: Float64Array.of(1, 2) }, { shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }]));
    expect(e.code).toBe('INVALID_DTYPE');
    expect(e.message).toMatch(/sum_squares: Expected f32 or bf16 or f16 for input 'xs\[1\]' but received i32\[2\]/);
    const b = new GraphBuilder();
    expect(errorOf(() => b.op('sum_squares', [])).message).toMatch(/at least 1 input/);
    expect(getOp('sum_squares').anyFloatInputs!(3)).toEqual([0, 1, 2]);
  });
});

/** adamw's inputs for one random parameter of n elements, the gradient in `gdt`. */
function adamwInputs(n: number, gdt: F = 'f32') {
  return [
    { shape: [n], data: values(n, 'f32') },
    { shape: [n], dtype: gdt, data: values(n, gdt, 0.1) },
    { shape: [n], data: values(n, 'f32', 0.01) },
    { shape: [n], data: values(n, 'f32', 0.001).map(Math.abs) },
    { shape: [1], data: Float64Array.of(Math.fround(0.001 * (1 + Math.random()))) },
    { shape: [1], data: Float64Array.of(randInt(1, 20)) },
  ];
}

describe("adamw's gradScale", () => {
  it('is adamw on fp32(grad * scale): bitwise on f32 storage, exact in a float64 check', () => {
    for (const gdt of FLOATS) {
      const ins = adamwInputs(randInt(5, 40), gdt);
      const s = Math.fround(Math.random() * 0.9 + 0.05);
      const attrs = { weightDecay: 0.1 };
      for (const precision of ['f32', 'f64'] as const) {
        const round = precision === 'f32' ? Math.fround : (x: number) => x;
        const scaledGrad = { shape: ins[1]!.shape, data: ins[1]!.data.map((v) => round(v * s)) };
        const want = runOp('adamw', [ins[0]!, scaledGrad, ...ins.slice(2)], attrs, precision);
        const got = runOp('adamw', [...ins, { shape: [1], data: Float64Array.of(s) }], attrs, precision);
        for (let k = 0; k < 3; k++) expect(Array.from(got[k]!)).toEqual(Array.from(want[k]!));
        // The scale matters: without it the update differs.
        const plain = runOp('adamw', ins, attrs, precision);
        expect(Array.from(plain[0]!)).not.toEqual(Array.from(got[0]!));
      }
    }
  });

  it('a scale of 1 changes no bit', () => {
    const ins = adamwInputs(17, 'bf16');
    const want = runOp('adamw', ins, {}, 'f32');
    const got = runOp('adamw', [...ins, { shape: [1], data: Float64Array.of(1) }], {}, 'f32');
    for (let k = 0; k < 3; k++) expect(Array.from(got[k]!)).toEqual(Array.from(want[k]!));
  });

  it('refuses a gradScale that is not f32[1]', () => {
    const ins = adamwInputs(4);
    const e = errorOf(() => runOp('adamw', [...ins, { shape: [2], data: Float64Array.of(1, 2) }]));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/adamw: Expected f32\[1\] for input 'gradScale' but received f32\[2\]/);
    const d = errorOf(() => runOp('adamw', [...ins, { shape: [1], dtype: 'bf16', data: Float64Array.of(1) }]));
    expect(d.code).toBe('INVALID_DTYPE');
    expect(d.message).toMatch(/Expected f32 for input 'gradScale' but received bf16\[1\]/);
  });

  it('adamw_multi takes one trailing gradScale for every parameter, updating each in place', () => {
    const params = Array.from({ length: 3 }, () => adamwInputs(randInt(3, 12), 'bf16'));
    const [lr, step] = params[0]!.slice(4);
    const scale = { shape: [1], data: Float64Array.of(Math.fround(0.37)) };
    const outs = runOp('adamw_multi', [lr!, step!, ...params.flatMap((p) => p.slice(0, 4)), scale], { weightDecay: 0.1 }, 'f32');
    expect(outs.length).toBe(9);
    params.forEach((p, k) => {
      const want = runOp('adamw', [...p.slice(0, 4), lr!, step!, scale], { weightDecay: 0.1 }, 'f32');
      for (let j = 0; j < 3; j++) expect(Array.from(outs[3 * k + j]!)).toEqual(Array.from(want[j]!));
    });
    const def = getOp('adamw_multi');
    expect(inplacePairs(def, 2 + 4 * 3 + 1)).toEqual(inplacePairs(def, 2 + 4 * 3));
    expect(inplacePairs(def, 2 + 4 * 2)).toEqual([[0, 2], [1, 4], [2, 5], [3, 6], [4, 8], [5, 9]]);
    expect(errorOf(() => runOp('adamw_multi', [lr!, step!, ...params[0]!.slice(0, 4), scale, scale])).message).toMatch(/optional gradScale/);
    expect(errorOf(() => runOp('adamw_multi', [lr!, step!, ...params[0]!.slice(0, 4), { shape: [2], data: Float64Array.of(1, 1) }])).message).toMatch(/'gradScale'/);
  });
});

describe('cast_multi', () => {
  it('gives each input exactly what cast gives it', () => {
    for (const [from, to] of [['f32', 'bf16'], ['f32', 'f16'], ['bf16', 'f32'], ['f16', 'bf16']] as const) {
      const ins = Array.from({ length: randInt(1, 5) }, () => {
        const shape = randShape(randInt(1, 3), 1, 6);
        // Values between representable ones, so rounding (to nearest even) is exercised.
        return { shape, dtype: from, data: values(shape.reduce((a, b) => a * b, 1), from).map((v) => roundAs[from](v * (1 + 2 ** -10 * Math.random()))) };
      });
      const outs = runOp('cast_multi', ins, { dtype: to }, 'f32');
      expect(outs.length).toBe(ins.length);
      ins.forEach((x, k) => {
        const [want] = runOp('cast', [x], { dtype: to }, 'f32');
        expect(Array.from(outs[k]!)).toEqual(Array.from(want!));
        expect(Array.from(outs[k]!)).toEqual(Array.from(x.data, roundAs[to]));
      });
    }
  });

  it('refuses mixed input dtypes and a non-float target', () => {
    const e = errorOf(() => runOp('cast_multi', [{ shape: [2], data: Float64Array.of(1, 2) }, { shape: [1], dtype: 'bf16', data: Float64Array.of(1) }], { dtype: 'bf16' }));
    expect(e.code).toBe('INVALID_DTYPE');
    expect(e.message).toMatch(/cast_multi: Expected f32 for input 'xs\[1\]' but received bf16\[1\]/);
    expect(errorOf(() => runOp('cast_multi', [{ shape: [2], data: Float64Array.of(1, 2) }], { dtype: 'i32' })).message).toMatch(/one of 'f32', 'bf16', 'f16' for attribute 'dtype' of cast_multi/);
  });
});

// ---- the passes ------------------------------------------------------------------------------------

/** A pre-norm MLP block with a head: weights, biases and a norm, several uses of one input. */
class Net implements Capturable {
  forward({ x, y }: Record<string, Sym>): Record<string, Sym> {
    const b = currentBuilder();
    const p = (name: string, shape: number[]) => b.param(name, shape, 'f32', { dist: 'normal', scale: 0.4 });
    const linear = (name: string, v: Sym, out: number, inn: number) =>
      b.scoped(name, () => biasAdd(matmul(v, p(`${name}.weight`, [out, inn]), { transB: true }), p(`${name}.bias`, [out])));
    const h = gelu(linear('fc1', layernorm(x!, p('ln.weight', [6]), p('ln.bias', [6])), 12, 6));
    const logits = linear('head', h, 4, 12);
    return { loss: crossEntropy(reshape(logits, [-1, 4]), reshape(y!, [-1])) };
  }
}

function net() {
  const [B, T] = [randInt(1, 3), randInt(2, 5)];
  const fwd = capture(new Net(), { x: { shape: [B, T, 6] }, y: { shape: [B, T], dtype: 'i32' } });
  const batch = (s: number) => ({
    x: Float32Array.from({ length: B * T * 6 }, () => Math.random() * 2 - 1),
    y: Int32Array.from({ length: B * T }, () => randInt(0, 3)),
    lr: Float32Array.of(0.02),
    step: Float32Array.of(s),
  });
  return { fwd, batch };
}

const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;

describe('the optimizer phase of a compiled step', () => {
  for (const precision of ['f32', 'bf16'] as const) {
    for (const clip of [undefined, 0.05, 1e6]) {
      it(`fused equals unfused bit for bit, loss, norm and parameters (${precision}, clip ${clip ?? 'none'})`, () => {
        const { fwd, batch } = net();
        const step = trainingStep(precision === 'f32' ? fwd : autocast(fwd), { clipGradNorm: clip });
        const json = JSON.stringify(step.toJSON());
        const fused = compile(step, { seed: 5 });
        expect(JSON.stringify(step.toJSON())).toBe(json); // the passes work on a copy
        const plain = compile(step, { seed: 5, fuse: false });
        const g = fused.graph;
        const params = Object.keys(g.params).length;
        expect(count(g, 'adamw')).toBe(0);
        expect(count(g, 'adamw_multi')).toBe(2); // decayed matrices, and the rest
        expect(count(g, 'mul')).toBe(0);
        if (clip !== undefined) {
          expect(count(g, 'sum_squares')).toBe(1);
          expect(g.nodes.find((n) => n.op === 'sum_squares')!.inputs.length).toBe(params);
          for (const n of g.nodes.filter((m) => m.op === 'adamw_multi')) expect(n.inputs.length % 4).toBe(3);
        }
        if (precision === 'bf16') {
          // No gradient cast is left, and the weights are cast by one node.
          expect(g.nodes.filter((n) => n.op === 'cast' && g.values[n.outputs[0]!]!.type.dtype === 'f32' && n.phase !== 'forward')).toEqual([]);
          expect(g.nodes.filter((n) => n.op === 'cast' && g.values[n.inputs[0]!]!.kind === 'param')).toEqual([]);
          const cm = g.nodes.filter((n) => n.op === 'cast_multi');
          expect(cm.length).toBe(1);
          expect(cm[0]!.inputs.length).toBe(params);
          for (const n of g.nodes.filter((m) => m.op === 'adamw_multi')) {
            for (let k = 3; k + 2 < n.inputs.length; k += 4) expect(g.values[n.inputs[k]!]!.type.dtype).toBe('bf16');
          }
          // graph.gradients name live bf16 values (the ones the optimizer reads).
          for (const id of Object.values(g.gradients)) {
            expect(g.values[id]!.type.dtype).toBe('bf16');
            expect(g.nodes.some((n) => n.inputs.includes(id))).toBe(true);
          }
        }
        expect(Object.keys(g.gradients).sort()).toEqual(Object.keys(g.params).sort());
        for (let s = 1; s <= 3; s++) {
          const b = batch(s);
          const [a, c] = [fused.run(b), plain.run(b)];
          expect(Array.from(a.loss!)).toEqual(Array.from(c.loss!));
          if (clip !== undefined) expect(Array.from(a.grad_norm!)).toEqual(Array.from(c.grad_norm!));
        }
        for (const name of fused.parameterNames()) expect(Array.from(fused.get(name))).toEqual(Array.from(plain.get(name)));
        fused.dispose();
        plain.dispose();
      });
    }
  }

  it('elide-casts skips only exact widening casts read only by any-float inputs', () => {
    const b = new GraphBuilder();
    const lr = b.input('lr', [1]);
    const step = b.input('step', [1]);
    const mk = (name: string, dtype: 'bf16' | 'f16') => {
      const p = b.param(name, [3], 'f32', { dist: 'normal' });
      const m = b.state(`m.${name}`, [3], 'f32', { dist: 'zeros' });
      const v = b.state(`v.${name}`, [3], 'f32', { dist: 'zeros' });
      return { p, m, v, g: cast(b.input(`g.${name}`, [3], dtype), 'f32') };
    };
    const a = mk('a', 'bf16'); // read by sum_squares and adamw: skipped
    const c = mk('c', 'f16'); // also read by a gelu: kept
    const d = mk('d', 'bf16'); // its cast is an output: kept
    const s = sumSquares([a.g, c.g, d.g]);
    b.output('s', s);
    b.output('h', gelu(c.g));
    b.output('dg', d.g);
    for (const [name, t] of Object.entries({ a, c, d })) {
      const [p2, m2, v2] = adamw(t.p, t.g, t.m, t.v, lr, step, {}, s);
      b.update(name, p2);
      b.update(`m.${name}`, m2);
      b.update(`v.${name}`, v2);
      b.graph.gradients[name] = t.g.id;
    }
    const g = Graph.fromJSON(b.graph.verify().toJSON());
    expect(elideWideningCasts(g)).toBe(1);
    const ss = g.nodes.find((n) => n.op === 'sum_squares')!;
    expect(ss.inputs.map((i) => g.values[i]!.type.dtype)).toEqual(['bf16', 'f32', 'f32']);
    expect(g.gradients.a).toBe(g.inputs['g.a']);
    expect(g.gradients.c).toBe(c.g.id);
    const out = fuse(Graph.fromJSON(b.graph.verify().toJSON())).verify();
    expect(count(out, 'cast')).toBe(2);
    expect(out.values[out.gradients.a!]!.type.dtype).toBe('bf16');
    // The same numbers either way.
    const bind: Record<string, Float64Array> = { lr: Float64Array.of(0.01), step: Float64Array.of(2) };
    for (const n of ['a', 'c', 'd']) {
      bind[n] = randn(3);
      bind[`m.${n}`] = randn(3);
      bind[`v.${n}`] = randn(3).map(Math.abs);
      bind[`g.${n}`] = randn(3).map(n === 'c' ? f16 : bf16);
    }
    const before = interpret(b.graph, bind);
    const after = interpret(out, bind);
    for (const k of ['s', 'h', 'dg']) expect(Array.from(after[out.outputs[k]!]!)).toEqual(Array.from(before[b.graph.outputs[k]!]!));
    for (const k of Object.keys(b.graph.updates)) expect(Array.from(after[out.updates[k]!]!)).toEqual(Array.from(before[b.graph.updates[k]!]!));
  });

  it('fuse-casts groups the casts of parameters by dtype pair, at the first one, leaving other casts', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 4]);
    const ws = [0, 1, 2].map((k) => b.param(`w${k}`, [4, 4], 'f32', { dist: 'normal' }));
    let h = cast(x, 'bf16'); // not a parameter: left alone
    ws.forEach((w) => (h = matmul(h, cast(w, 'bf16'))));
    const hs = b.param('hs', [4], 'f32', { dist: 'normal' });
    b.output('y', matmul(cast(h, 'f32'), reshape(cast(cast(hs, 'f16'), 'f32'), [4, 1])));
    const g = Graph.fromJSON(b.graph.verify().toJSON());
    expect(fuseParamCasts(g)).toBe(3); // the f16 cast is alone in its group
    const out = fuse(Graph.fromJSON(b.graph.verify().toJSON())).verify();
    const cm = out.nodes.filter((n) => n.op === 'cast_multi');
    expect(cm.length).toBe(1);
    expect(cm[0]!.inputs).toEqual([0, 1, 2].map((k) => out.params[`w${k}`]));
    expect(count(out, 'cast')).toBe(4); // x, h and hs's two
    expect(out.nodes.findIndex((n) => n.op === 'cast_multi')).toBeLessThan(out.nodes.findIndex((n) => n.op === 'matmul'));
    const bind = { x: randn(8), hs: randn(4), ...Object.fromEntries([0, 1, 2].map((k) => [`w${k}`, randn(16)])) };
    expect(Array.from(interpret(out, bind)[out.outputs.y!]!)).toEqual(Array.from(interpret(b.graph, bind)[b.graph.outputs.y!]!));
  });

  it('castMulti and adamwMulti build the nodes the passes make', () => {
    const b = new GraphBuilder();
    const ps = [b.param('a', [2], 'f32', { dist: 'normal' }), b.param('b', [3], 'f32', { dist: 'normal' })];
    const outs = castMulti(ps, 'bf16');
    expect(outs.map((o) => [o.dtype, o.shape])).toEqual([['bf16', [2]], ['bf16', [3]]]);
    const lr = b.input('lr', [1]);
    const step = b.input('step', [1]);
    const scale = sumSquares(outs);
    const res = adamwMulti(lr, step, ps.map((p, k) => [p, outs[k]!, b.state(`m${k}`, p.shape, 'f32', { dist: 'zeros' }), b.state(`v${k}`, p.shape, 'f32', { dist: 'zeros' })] as const), {}, scale);
    expect(res.length).toBe(2);
    expect(b.graph.nodes.at(-1)!.inputs.at(-1)).toBe(scale.id);
  });
});

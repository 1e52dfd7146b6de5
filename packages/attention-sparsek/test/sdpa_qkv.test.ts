// sdpa_qkv (sdpa on a packed QKV projection output) against sdpa on the sliced q, k, v in the 'bshd'
// layout: the forward and the backward references give the same numbers; its gradient rule against
// finite differences; the op in a compiled CPU step; bad inputs rejected with typed errors naming
// them. Fresh random inputs every run.
import { DeepwellError } from '@deepwell/core';
import { GraphBuilder, checkAttrs, compile, getOp, gradcheck, interpret, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { sdpaQkv, sdpaQkvBackward } from '../src/index.js';

const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));

interface Case {
  B: number;
  S: number;
  H: number;
  Hkv: number;
  D: number;
  causal: boolean;
}

/** Heads [from, to) of a [B, S, heads, D] array, as a [B, S, to - from, D] array. */
function heads(x: Float64Array, c: Case, all: number, from: number, to: number): Float64Array {
  const n = to - from;
  const y = new Float64Array(c.B * c.S * n * c.D);
  for (let r = 0; r < c.B * c.S; r++) y.set(x.subarray((r * all + from) * c.D, (r * all + to) * c.D), r * n * c.D);
  return y;
}

/** Runs an op's reference on f32-typed inputs; its outputs, poisoned with NaN first. */
function ref(op: string, shapes: number[][], inputs: Float64Array[], attrs: Record<string, unknown>): Float64Array[] {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const inTypes: ValueType[] = shapes.map((shape) => ({ shape, dtype: 'f32' }));
  const outTypes = def.infer(inTypes, checked);
  const outputs = outTypes.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)).fill(NaN));
  def.reference({ inputs, outputs, inTypes, outTypes, attrs: checked });
  for (const o of outputs) expect(o.some(Number.isNaN), `${op} wrote every output element`).toBe(false);
  return outputs;
}

const CASES: Case[] = [
  { B: 2, S: 7, H: 4, Hkv: 4, D: 8, causal: false },
  { B: 1, S: 33, H: 4, Hkv: 4, D: 16, causal: true },
  { B: 2, S: 9, H: 8, Hkv: 2, D: 4, causal: true }, // GQA 4:1
  { B: 1, S: 5, H: 4, Hkv: 1, D: 8, causal: true }, // MQA
  { B: 3, S: 1, H: 2, Hkv: 1, D: 5, causal: false },
];

describe('sdpa_qkv: the reference', () => {
  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('equals sdpa on the sliced q, k, v (bshd), forward and backward (%s)', (_name, c) => {
    const all = c.H + 2 * c.Hkv;
    const scale = Math.random() < 0.5 ? 0 : 0.3 + Math.random();
    const qkv = randn(c.B * c.S * all * c.D);
    const [q, k, v] = [heads(qkv, c, all, 0, c.H), heads(qkv, c, all, c.H, c.H + c.Hkv), heads(qkv, c, all, c.H + c.Hkv, all)];
    const shape = (h: number) => [c.B, c.S, h, c.D];
    const sdpaAttrs = { causal: c.causal, scale, layout: 'bshd' };
    const qkvAttrs = { heads: c.H, causal: c.causal, scale };
    const [out, lse] = ref('sdpa', [shape(c.H), shape(c.Hkv), shape(c.Hkv)], [q, k, v], sdpaAttrs);
    const [outP, lseP] = ref('sdpa_qkv', [shape(all)], [qkv], qkvAttrs);
    expect(Array.from(outP!)).toEqual(Array.from(out!));
    expect(Array.from(lseP!)).toEqual(Array.from(lse!));
    // The backward: dqkv holds sdpa_backward's dq, dk and dv in q's, k's and v's heads.
    const dout = randn(out!.length);
    const [dq, dk, dv] = ref('sdpa_backward', [shape(c.H), shape(c.H), shape(c.Hkv), shape(c.Hkv), shape(c.H), [c.B, c.H, c.S]], [dout, q, k, v, out!, lse!], sdpaAttrs);
    const [dqkv] = ref('sdpa_qkv_backward', [shape(c.H), shape(all), shape(c.H), [c.B, c.H, c.S]], [dout, qkv, out!, lse!], qkvAttrs);
    expect(Array.from(heads(dqkv!, c, all, 0, c.H))).toEqual(Array.from(dq!));
    expect(Array.from(heads(dqkv!, c, all, c.H, c.H + c.Hkv))).toEqual(Array.from(dk!));
    expect(Array.from(heads(dqkv!, c, all, c.H + c.Hkv, all))).toEqual(Array.from(dv!));
  });

  it('counts the FLOPs of sdpa on the same q, k, v', () => {
    const c = CASES[2]!;
    const shape = (h: number) => [c.B, c.S, h, c.D];
    const t = (shape: number[]): ValueType => ({ shape, dtype: 'bf16' });
    const attrs = (op: string, a: Record<string, unknown>) => checkAttrs(getOp(op), a);
    const flops = (op: string, ins: ValueType[], a: Record<string, unknown>) => getOp(op).flops!(ins, getOp(op).infer(ins, attrs(op, a)), attrs(op, a));
    const lse: ValueType = { shape: [c.B, c.H, c.S], dtype: 'f32' };
    expect(flops('sdpa_qkv', [t(shape(c.H + 2 * c.Hkv))], { heads: c.H, causal: true })).toBe(flops('sdpa', [t(shape(c.H)), t(shape(c.Hkv)), t(shape(c.Hkv))], { causal: true, layout: 'bshd' }));
    expect(flops('sdpa_qkv_backward', [t(shape(c.H)), t(shape(c.H + 2 * c.Hkv)), t(shape(c.H)), lse], { heads: c.H, causal: true })).toBe(
      flops('sdpa_backward', [t(shape(c.H)), t(shape(c.H)), t(shape(c.Hkv)), t(shape(c.Hkv)), t(shape(c.H)), lse], { causal: true, layout: 'bshd' }),
    );
  });
});

describe('sdpa_qkv: the gradient', () => {
  it.each([
    ['non-causal', { B: 1, S: 3, H: 2, Hkv: 2, D: 3, causal: false }],
    ['causal, GQA 2:1', { B: 2, S: 4, H: 4, Hkv: 2, D: 2, causal: true }],
    ['causal MQA', { B: 1, S: 4, H: 3, Hkv: 1, D: 2, causal: true }],
  ] as const)('matches finite differences (%s)', (_name, c) => {
    expect(gradcheck('sdpa_qkv', [{ shape: [c.B, c.S, c.H + 2 * c.Hkv, c.D] }], { heads: c.H, causal: c.causal, scale: 0.7 }, { outputs: [0] })).toBeLessThan(1e-6);
  });
});

describe('sdpa_qkv in a compiled CPU step', () => {
  it('equals the interpreter bit for bit, the reference serving', () => {
    const b = new GraphBuilder();
    const qkv = b.input('qkv', [2, 6, 8, 8], 'f32');
    const [out, lse] = sdpaQkv(qkv, { heads: 4, causal: true });
    b.output('out', out);
    b.output('lse', lse);
    const g = b.graph;
    const feed = { qkv: Float32Array.from(randn(2 * 6 * 8 * 8)) };
    const exe = compile(g);
    const got = exe.run(feed);
    const want = interpret(g, feed);
    expect(Array.from(got.out!)).toEqual(Array.from(want[g.outputs.out!]!));
    expect(Array.from(got.lse!)).toEqual(Array.from(want[g.outputs.lse!]!));
    expect(exe.kernelSummary().find((r) => r.op === 'sdpa_qkv')).toMatchObject({ backend: 'cpu', kernel: 'sdpa_qkv_reference' });
    exe.dispose();
  });
});

describe('sdpa_qkv: bad inputs', () => {
  const err = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e as DeepwellError;
    }
    throw new Error('did not throw');
  };

  it('rejects bad shapes, dtypes and attributes with typed errors naming them', () => {
    const b = new GraphBuilder();
    const f = (shape: number[], dtype: 'f32' | 'i32' = 'f32') => b.input(`x${Math.random()}`, shape, dtype);
    const e1 = err(() => sdpaQkv(f([1, 4, 8, 8], 'i32'), { heads: 4 }));
    expect([e1.code, e1.message]).toEqual(['INVALID_DTYPE', expect.stringMatching(/input 'qkv'/)]);
    expect(err(() => sdpaQkv(f([4, 8, 8]), { heads: 4 })).message).toMatch(/rank-4 tensor .*input 'qkv'/);
    expect(err(() => sdpaQkv(f([1, 4, 8, 8]), {} as never)).message).toMatch(/attribute 'heads' of sdpa_qkv/);
    expect(err(() => sdpaQkv(f([1, 4, 8, 8]), { heads: 2.5 })).message).toMatch(/an int for attribute 'heads'/);
    expect(err(() => sdpaQkv(f([1, 4, 8, 8]), { heads: 0 })).message).toMatch(/integer >= 1 for attribute 'heads'/);
    const odd = err(() => sdpaQkv(f([1, 4, 7, 8]), { heads: 4 }));
    expect([odd.code, odd.message]).toEqual(['SHAPE_MISMATCH', expect.stringMatching(/input 'qkv'.*7 − 4 is not a positive even number/)]);
    expect(err(() => sdpaQkv(f([1, 4, 4, 8]), { heads: 4 })).message).toMatch(/4 − 4 is not a positive even number/);
    expect(err(() => sdpaQkv(f([1, 4, 7, 8]), { heads: 3 })).message).toMatch(/multiple of the key\/value heads of input 'qkv' \(2\)/);
    expect(err(() => sdpaQkv(f([1, 4, 6, 0]), { heads: 2 })).message).toMatch(/head dimension of at least 1/);
    expect(err(() => sdpaQkv(f([1, 4, 6, 8]), { heads: 2, scale: -1 })).message).toMatch(/scale >= 0/);
  });

  it('rejects a backward whose dout, out or lse does not fit qkv', () => {
    const b = new GraphBuilder();
    const f = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => b.input(`x${Math.random()}`, shape, dtype);
    const qkv = f([2, 5, 8, 4]);
    const [out, lse] = sdpaQkv(qkv, { heads: 4 });
    const attrs = checkAttrs(getOp('sdpa_qkv'), { heads: 4 });
    expect(sdpaQkvBackward(f([2, 5, 4, 4]), qkv, out, lse, attrs).shape).toEqual([2, 5, 8, 4]);
    expect(err(() => sdpaQkvBackward(f([2, 4, 5, 4]), qkv, out, lse, attrs)).message).toMatch(/input 'dout' f32\[2, 5, 4, 4\]/);
    expect(err(() => sdpaQkvBackward(f([2, 5, 4, 4], 'bf16'), qkv, out, lse, attrs)).message).toMatch(/input 'dout'/);
    expect(err(() => sdpaQkvBackward(out, qkv, f([2, 5, 2, 4]), lse, attrs)).message).toMatch(/input 'out'/);
    expect(err(() => sdpaQkvBackward(out, qkv, out, f([2, 5, 4]), attrs)).message).toMatch(/input 'lse' f32\[2, 4, 5\]/);
  });
});

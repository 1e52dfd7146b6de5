// The sdpa op against an independent naive attention in float64 (the full score matrix, a -Infinity
// mask, softmax, then the product), its gradient rule against finite differences, the op inside a
// compiled CPU step, and the Tensor-level call with its errors. Fresh random inputs every run.
import { DeepwellError, Tensor, bf16BitsToF32, f32ToBf16Bits } from '@deepwell/core';
import { GraphBuilder, compile, getOp, gradcheck, interpret, type Attrs, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { scaledDotProductAttention, sdpa } from '../src/index.js';

const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));

interface Case {
  B: number;
  H: number;
  Hkv: number;
  Sq: number;
  Sk: number;
  D: number;
  causal: boolean;
}

/** Naive attention on [B, heads, S, D] arrays: out and lse, every score materialised. */
function naive(c: Case, q: Float64Array, k: Float64Array, v: Float64Array, scale: number): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(c.B * c.H * c.Sq * c.D);
  const lse = new Float64Array(c.B * c.H * c.Sq);
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.H; h++) {
      const hk = Math.floor((h * c.Hkv) / c.H);
      const S: number[][] = [];
      for (let i = 0; i < c.Sq; i++) {
        S.push([]);
        for (let j = 0; j < c.Sk; j++) {
          let dot = 0;
          for (let d = 0; d < c.D; d++) dot += q[((b * c.H + h) * c.Sq + i) * c.D + d]! * k[((b * c.Hkv + hk) * c.Sk + j) * c.D + d]!;
          S[i]!.push(c.causal && j > i + c.Sk - c.Sq ? -Infinity : scale * dot);
        }
      }
      for (let i = 0; i < c.Sq; i++) {
        const m = Math.max(...S[i]!);
        const e = S[i]!.map((s) => (m === -Infinity ? 0 : Math.exp(s - m)));
        const l = e.reduce((a, x) => a + x, 0);
        lse[(b * c.H + h) * c.Sq + i] = m === -Infinity ? -Infinity : m + Math.log(l);
        for (let d = 0; d < c.D; d++) {
          let acc = 0;
          for (let j = 0; j < c.Sk; j++) acc += (l ? e[j]! / l : 0) * v[((b * c.Hkv + hk) * c.Sk + j) * c.D + d]!;
          out[((b * c.H + h) * c.Sq + i) * c.D + d] = acc;
        }
      }
    }
  return { out, lse };
}

/** [B, heads, S, D] -> [B, S, heads, D]. */
function toBshd(x: Float64Array, B: number, heads: number, S: number, D: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) y[((b * S + s) * heads + h) * D + d] = x[((b * heads + h) * S + s) * D + d]!;
  return y;
}

function runRef(c: Case, attrs: Attrs, q: Float64Array, k: Float64Array, v: Float64Array): { out: Float64Array; lse: Float64Array } {
  const op = getOp('sdpa');
  const bshd = attrs.layout === 'bshd';
  const t = (heads: number, S: number): ValueType => ({ shape: bshd ? [c.B, S, heads, c.D] : [c.B, heads, S, c.D], dtype: 'f32' });
  const inTypes = [t(c.H, c.Sq), t(c.Hkv, c.Sk), t(c.Hkv, c.Sk)];
  const outTypes = op.infer(inTypes, attrs);
  const out = new Float64Array(q.length).fill(NaN);
  const lse = new Float64Array(c.B * c.H * c.Sq).fill(NaN);
  op.reference({ inputs: [q, k, v], outputs: [out, lse], inTypes, outTypes, attrs });
  return { out, lse };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!)) throw new Error(`element ${i} is NaN (unwritten?)`);
    m = Math.max(m, a[i] === b[i] ? 0 : Math.abs(a[i]! - b[i]!));
  }
  return m;
};

const CASES: Case[] = [
  { B: 2, H: 4, Hkv: 4, Sq: 7, Sk: 7, D: 8, causal: false },
  { B: 1, H: 4, Hkv: 4, Sq: 77, Sk: 77, D: 16, causal: true },
  { B: 2, H: 8, Hkv: 2, Sq: 9, Sk: 9, D: 4, causal: true }, // GQA 4:1
  { B: 1, H: 4, Hkv: 1, Sq: 5, Sk: 12, D: 8, causal: true }, // MQA, queries at the end of longer keys
  { B: 1, H: 2, Hkv: 2, Sq: 6, Sk: 3, D: 4, causal: true }, // rows that see no key
  { B: 3, H: 2, Hkv: 1, Sq: 1, Sk: 1, D: 5, causal: false },
];

describe('sdpa: the reference', () => {
  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('equals naive attention in float64 (%s), in both layouts', (_name, c) => {
    const q = randn(c.B * c.H * c.Sq * c.D);
    const k = randn(c.B * c.Hkv * c.Sk * c.D);
    const v = randn(c.B * c.Hkv * c.Sk * c.D);
    const scale = Math.random() < 0.5 ? 0 : 0.3 + Math.random();
    const want = naive(c, q, k, v, scale || 1 / Math.sqrt(c.D));
    const got = runRef(c, { causal: c.causal, scale, layout: 'bhsd' }, q, k, v);
    expect(maxDiff(got.out, want.out)).toBeLessThan(1e-12);
    expect(maxDiff(got.lse, want.lse)).toBeLessThan(1e-12);
    const g2 = runRef(c, { causal: c.causal, scale, layout: 'bshd' }, toBshd(q, c.B, c.H, c.Sq, c.D), toBshd(k, c.B, c.Hkv, c.Sk, c.D), toBshd(v, c.B, c.Hkv, c.Sk, c.D));
    expect(maxDiff(g2.out, toBshd(want.out, c.B, c.H, c.Sq, c.D))).toBeLessThan(1e-12);
    expect(maxDiff(g2.lse, want.lse)).toBeLessThan(1e-12);
  });

  it('gives a row that sees no key out 0 and lse -Infinity', () => {
    const c = CASES[4]!;
    const got = runRef(c, { causal: true, scale: 0, layout: 'bhsd' }, randn(c.H * c.Sq * c.D), randn(c.Hkv * c.Sk * c.D), randn(c.Hkv * c.Sk * c.D));
    // Sq 6, Sk 3: query i sees keys j <= i - 3, so rows 0..2 see none.
    for (let h = 0; h < c.H; h++)
      for (let i = 0; i < c.Sq; i++) {
        expect(Number.isFinite(got.lse[h * c.Sq + i]!)).toBe(i >= 3);
        if (i < 3) for (let d = 0; d < c.D; d++) expect(got.out[(h * c.Sq + i) * c.D + d]).toBe(0);
      }
  });

  it('rejects bad shapes, dtypes and attributes with typed errors naming them', () => {
    const b = new GraphBuilder();
    const f = (shape: number[], dtype: 'f32' | 'bf16' | 'i32' = 'f32') => b.input(`x${Math.random()}`, shape, dtype);
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as DeepwellError;
      }
      throw new Error('did not throw');
    };
    expect(err(() => sdpa(f([1, 6, 4, 8]), f([1, 4, 4, 8]), f([1, 4, 4, 8]))).message).toMatch(/multiple of k's and v's heads \(4\)/);
    expect(err(() => sdpa(f([1, 4, 4, 8]), f([1, 4, 4, 16]), f([1, 4, 4, 16]))).message).toMatch(/head dimension of k \(16\)/);
    expect(err(() => sdpa(f([1, 4, 4, 8]), f([1, 4, 4, 8], 'bf16'), f([1, 4, 4, 8]))).code).toBe('INVALID_DTYPE');
    expect(err(() => sdpa(f([1, 4, 4, 8], 'i32'), f([1, 4, 4, 8]), f([1, 4, 4, 8]))).message).toMatch(/input 'q'/);
    expect(err(() => sdpa(f([4, 4, 8]), f([1, 4, 4, 8]), f([1, 4, 4, 8]))).message).toMatch(/rank-4 tensor/);
    expect(err(() => sdpa(f([1, 4, 4, 8]), f([1, 4, 4, 8]), f([1, 4, 5, 8]))).message).toMatch(/Expected v shaped as k/);
    expect(err(() => sdpa(f([1, 4, 4, 8]), f([1, 4, 4, 8]), f([1, 4, 4, 8]), { scale: -1 })).message).toMatch(/scale >= 0/);
  });
});

describe('sdpa: the gradient', () => {
  it.each([
    ['non-causal', { B: 1, H: 2, Hkv: 2, Sq: 3, Sk: 4, D: 3, causal: false }],
    ['causal, GQA 2:1', { B: 1, H: 4, Hkv: 2, Sq: 4, Sk: 4, D: 2, causal: true }],
    ['causal MQA with rows that see no key', { B: 1, H: 2, Hkv: 1, Sq: 4, Sk: 2, D: 2, causal: true }],
  ] as const)('matches finite differences (%s)', (_name, c) => {
    const shapes = [[c.B, c.H, c.Sq, c.D], [c.B, c.Hkv, c.Sk, c.D], [c.B, c.Hkv, c.Sk, c.D]];
    expect(gradcheck('sdpa', shapes.map((shape) => ({ shape })), { causal: c.causal, scale: 0.7 }, { outputs: [0] })).toBeLessThan(1e-6);
  });

  it('also in the bshd layout', () => {
    expect(gradcheck('sdpa', [{ shape: [1, 3, 4, 2] }, { shape: [1, 3, 2, 2] }, { shape: [1, 3, 2, 2] }], { causal: true, layout: 'bshd' }, { outputs: [0] })).toBeLessThan(1e-6);
  });
});

describe('sdpa in a compiled CPU step', () => {
  it('equals the interpreter bit for bit', () => {
    const b = new GraphBuilder();
    const q = b.input('q', [2, 4, 6, 8], 'f32');
    const k = b.input('k', [2, 2, 6, 8], 'f32');
    const v = b.input('v', [2, 2, 6, 8], 'f32');
    const [out, lse] = sdpa(q, k, v, { causal: true });
    b.output('out', out);
    b.output('lse', lse);
    const g = b.graph;
    const feed = { q: Float32Array.from(randn(2 * 4 * 6 * 8)), k: Float32Array.from(randn(2 * 2 * 6 * 8)), v: Float32Array.from(randn(2 * 2 * 6 * 8)) };
    const exe = compile(g);
    const got = exe.run(feed);
    const want = interpret(g, feed);
    expect(Array.from(got.out!)).toEqual(Array.from(want[g.outputs.out!]!));
    expect(Array.from(got.lse!)).toEqual(Array.from(want[g.outputs.lse!]!));
    expect(exe.kernelSummary().find((r) => r.op === 'sdpa')).toMatchObject({ backend: 'cpu', kernel: 'sdpa_reference' });
    exe.dispose();
  });
});

describe('scaledDotProductAttention on Tensors', () => {
  it('computes the reference on the CPU, f32 and bf16, with GQA when enabled', () => {
    const c: Case = { B: 2, H: 4, Hkv: 2, Sq: 5, Sk: 5, D: 8, causal: true };
    const [q, k, v] = [c.H, c.Hkv, c.Hkv].map((h) => randn(c.B * h * c.Sq * c.D));
    const want = naive(c, q!, k!, v!, 0.5).out;
    const t = (x: Float64Array, heads: number) => Tensor.from(Float32Array.from(x), [c.B, heads, c.Sq, c.D]);
    const got = scaledDotProductAttention(t(q!, c.H), t(k!, c.Hkv), t(v!, c.Hkv), { causal: true, scale: 0.5, enableGqa: true });
    expect(got.shape).toEqual([c.B, c.H, c.Sq, c.D]);
    expect(maxDiff(got.toHost() as Float32Array, want)).toBeLessThan(1e-5);
    // bf16 in, bf16 out: within one bf16 rounding of the exact result on the rounded inputs.
    const r = (x: Float64Array) => Float64Array.from(x, (y) => bf16BitsToF32(f32ToBf16Bits(y)));
    const tb = (x: Float64Array, heads: number) => Tensor.from(Uint16Array.from(x, (y) => f32ToBf16Bits(y)), [c.B, heads, c.Sq, c.D], 'bf16');
    const wantB = naive(c, r(q!), r(k!), r(v!), 1 / Math.sqrt(c.D)).out;
    const gotB = scaledDotProductAttention(tb(q!, c.H), tb(k!, c.Hkv), tb(v!, c.Hkv), { causal: true, enableGqa: true });
    expect(gotB.dtype).toBe('bf16');
    const vals = Array.from(gotB.toHost() as Uint16Array, (x) => bf16BitsToF32(x));
    vals.forEach((x, i) => expect(Math.abs(x - wantB[i]!)).toBeLessThanOrEqual(2 ** -8 * Math.abs(wantB[i]!) + 1e-30));
    for (const x of [got, gotB]) x.dispose();
  });

  it('rejects bad calls with typed errors naming the argument', () => {
    const t = (shape: number[], dtype: 'f32' | 'bf16' = 'f32') => Tensor.empty(shape, dtype);
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return [(e as DeepwellError).code, (e as Error).message];
      }
      throw new Error('did not throw');
    };
    expect(code(() => scaledDotProductAttention(t([1, 4, 3, 8]), t([1, 2, 3, 8]), t([1, 2, 3, 8])))).toEqual(['SHAPE_MISMATCH', expect.stringMatching(/enableGqa: true/)]);
    expect(code(() => scaledDotProductAttention(t([1, 3, 3, 8]), t([1, 2, 3, 8]), t([1, 2, 3, 8]), { enableGqa: true }))[1]).toMatch(/multiple of k's and v's heads/);
    expect(code(() => scaledDotProductAttention(t([1, 2, 3, 8]), t([1, 2, 3, 8], 'bf16'), t([1, 2, 3, 8])))[0]).toBe('INVALID_DTYPE');
    expect(code(() => scaledDotProductAttention(t([1, 2, 3, 8]), t([1, 2, 3, 8]), t([1, 2, 3, 8]), { scale: 0 }))[1]).toMatch(/for scale/);
    expect(code(() => scaledDotProductAttention(t([1, 2, 3, 8]), t([1, 2, 3, 8]), t([1, 2, 3, 8]), { causal: 1 as never }))[1]).toMatch(/boolean for causal/);
    expect(code(() => scaledDotProductAttention(t([1, 2, 3, 8]), t([1, 2, 3, 8]), t([1, 2, 3, 8]), { dropout: 0.1 } as never))[1]).toMatch(/option of scaledDotProductAttention/);
    expect(code(() => scaledDotProductAttention([] as never, t([1, 2, 3, 8]), t([1, 2, 3, 8])))[1]).toMatch(/Tensor for q/);
  });
});

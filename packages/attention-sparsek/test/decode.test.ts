// kv_cache_write and sdpa_decode (decoding over a key/value cache): the references against naive
// float64 loops written here; a sequence decoded step by step (and in chunks) through a cache kept as
// graph state in a compiled CPU step gives bitwise the rows sdpa_qkv gives for the whole sequence;
// bad inputs are typed errors naming them. Fresh random inputs every run.
import { DeepwellError } from '@deepwell/core';
import { GraphBuilder, checkAttrs, compile, getOp, interpret, type ValueType } from '@deepwell/ir';
import { describe, expect, it } from 'vitest';
import { kvCacheWrite, sdpaDecode, sdpaQkv } from '../src/index.js';

const randn = (n: number) => Float64Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
const randInt = (n: number) => Math.floor(Math.random() * n);

interface Case {
  B: number;
  H: number;
  Hkv: number;
  D: number;
  Tmax: number;
}

const CASES: Case[] = [
  { B: 1, H: 4, Hkv: 4, D: 8, Tmax: 9 },
  { B: 2, H: 8, Hkv: 2, D: 4, Tmax: 17 }, // GQA 4:1
  { B: 2, H: 3, Hkv: 1, D: 5, Tmax: 6 }, // MQA, odd sizes
];

/** Runs an op's reference with f32 types; outputs poisoned with NaN first (every element must be written). */
function ref(op: string, types: ValueType[], inputs: ArrayLike<number>[], attrs: Record<string, unknown>): Float64Array[] {
  const def = getOp(op);
  const checked = checkAttrs(def, attrs);
  const outTypes = def.infer(types, checked);
  const outputs = outTypes.map((t) => new Float64Array(t.shape.reduce((a, b) => a * b, 1)).fill(NaN));
  def.reference({ inputs: inputs as never, outputs, inTypes: types, outTypes, attrs: checked });
  for (const o of outputs) expect(o.some(Number.isNaN), `${op} wrote every output element`).toBe(false);
  return outputs;
}

const f32 = (...shape: number[]): ValueType => ({ shape, dtype: 'f32' });
const i32 = (...shape: number[]): ValueType => ({ shape, dtype: 'i32' });

/** Distinct random positions in [0, Tmax). */
function positions(n: number, Tmax: number): Int32Array {
  const all = Array.from({ length: Tmax }, (_, i) => i).sort(() => Math.random() - 0.5);
  return Int32Array.from(all.slice(0, n));
}

describe('kv_cache_write: the reference', () => {
  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('writes token i’s key and value heads at row pos[i] and keeps every other row (%s)', (_n, c) => {
    const n = 1 + randInt(Math.min(4, c.Tmax));
    const heads = c.H + 2 * c.Hkv;
    const cacheN = c.B * c.Hkv * c.Tmax * c.D;
    const [kc, vc, qkv] = [randn(cacheN), randn(cacheN), randn(c.B * n * heads * c.D)];
    const pos = positions(n, c.Tmax);
    const [ko, vo] = ref('kv_cache_write', [f32(c.B, c.Hkv, c.Tmax, c.D), f32(c.B, c.Hkv, c.Tmax, c.D), f32(c.B, n, heads, c.D), i32(n)], [kc, vc, qkv, pos], { heads: c.H });
    const [wantK, wantV] = [Float64Array.from(kc), Float64Array.from(vc)];
    for (let b = 0; b < c.B; b++)
      for (let i = 0; i < n; i++)
        for (let h = 0; h < c.Hkv; h++)
          for (let d = 0; d < c.D; d++) {
            const cell = ((b * c.Hkv + h) * c.Tmax + pos[i]!) * c.D + d;
            wantK[cell] = qkv[((b * n + i) * heads + c.H + h) * c.D + d]!;
            wantV[cell] = qkv[((b * n + i) * heads + c.H + c.Hkv + h) * c.D + d]!;
          }
    expect(Array.from(ko!)).toEqual(Array.from(wantK));
    expect(Array.from(vo!)).toEqual(Array.from(wantV));
  });

  it('keeps the last token’s row where a position repeats', () => {
    const c = CASES[0]!;
    const heads = c.H + 2 * c.Hkv;
    const cacheN = c.B * c.Hkv * c.Tmax * c.D;
    const qkv = randn(2 * heads * c.D);
    const [ko] = ref('kv_cache_write', [f32(1, c.Hkv, c.Tmax, c.D), f32(1, c.Hkv, c.Tmax, c.D), f32(1, 2, heads, c.D), i32(2)], [randn(cacheN), randn(cacheN), qkv, Int32Array.from([3, 3])], { heads: c.H });
    for (let d = 0; d < c.D; d++) expect(ko![3 * c.D + d]).toBe(qkv[(heads + c.H) * c.D + d]);
  });
});

describe('sdpa_decode: the reference', () => {
  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('is softmax(scale · q · k) · v over keys 0 .. pos[i] of the cache (%s)', (_n, c) => {
    const n = 1 + randInt(3);
    const heads = c.H + 2 * c.Hkv;
    const scale = Math.random() < 0.5 ? 0 : 0.2 + Math.random();
    const cacheN = c.B * c.Hkv * c.Tmax * c.D;
    const [kc, vc, qkv] = [randn(cacheN), randn(cacheN), randn(c.B * n * heads * c.D)];
    const pos = Int32Array.from({ length: n }, () => randInt(c.Tmax));
    const [out] = ref('sdpa_decode', [f32(c.B, n, heads, c.D), f32(c.B, c.Hkv, c.Tmax, c.D), f32(c.B, c.Hkv, c.Tmax, c.D), i32(n)], [qkv, kc, vc, pos], { heads: c.H, scale });
    const s = scale || 1 / Math.sqrt(c.D);
    for (let b = 0; b < c.B; b++)
      for (let i = 0; i < n; i++)
        for (let h = 0; h < c.H; h++) {
          const g = Math.floor(h / (c.H / c.Hkv));
          const q = (d: number) => qkv[((b * n + i) * heads + h) * c.D + d]!;
          const row = (t: Float64Array, j: number) => ((b * c.Hkv + g) * c.Tmax + j) * c.D;
          const w: number[] = [];
          for (let j = 0; j <= pos[i]!; j++) {
            let dot = 0;
            for (let d = 0; d < c.D; d++) dot += q(d) * kc[row(kc, j) + d]!;
            w.push(Math.exp(s * dot));
          }
          const sum = w.reduce((a, x) => a + x, 0);
          for (let d = 0; d < c.D; d++) {
            const want = w.reduce((a, x, j) => a + x * vc[row(vc, j) + d]!, 0) / sum;
            expect(out![((b * n + i) * c.H + h) * c.D + d]).toBeCloseTo(want, 10);
          }
        }
  });
});

describe('decoding through a cache in a compiled CPU step', () => {
  /** One decode step of n tokens as a graph: caches as state updated in place, out [B, n, H, D]. */
  function step(c: Case, n: number) {
    const b = new GraphBuilder();
    const heads = c.H + 2 * c.Hkv;
    const qkv = b.input('qkv', [c.B, n, heads, c.D]);
    const pos = b.input('pos', [n], 'i32');
    const cache = (name: string) => b.state(name, [c.B, c.Hkv, c.Tmax, c.D], 'f32', { dist: 'zeros' });
    const [kc, vc] = kvCacheWrite(cache('kcache'), cache('vcache'), qkv, pos, { heads: c.H });
    b.update('kcache', kc);
    b.update('vcache', vc);
    b.output('out', sdpaDecode(qkv, kc, vc, pos, { heads: c.H }));
    return compile(b.graph.verify(), { device: 'cpu' });
  }

  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('token by token and in chunks gives bitwise the rows of sdpa_qkv over the sequence (%s)', (_n, c) => {
    const S = c.Tmax;
    const heads = c.H + 2 * c.Hkv;
    const seq = Float32Array.from(randn(c.B * S * heads * c.D));
    const g = new GraphBuilder();
    g.output('out', sdpaQkv(g.input('qkv', [c.B, S, heads, c.D]), { heads: c.H, causal: true })[0]);
    const whole = interpret(g.graph.verify(), { qkv: seq })[g.graph.outputs.out!]!;
    const tokens = (from: number, n: number) => {
      const x = new Float32Array(c.B * n * heads * c.D);
      for (let b = 0; b < c.B; b++) x.set(seq.subarray((b * S + from) * heads * c.D, (b * S + from + n) * heads * c.D), b * n * heads * c.D);
      return x;
    };
    const rows = (out: ArrayLike<number>, from: number, n: number) => {
      const got: number[] = [];
      const want: number[] = [];
      const w = c.H * c.D;
      for (let b = 0; b < c.B; b++) {
        got.push(...Array.from(out).slice(b * n * w, (b + 1) * n * w));
        want.push(...Array.from(whole).slice((b * S + from) * w, (b * S + from + n) * w));
      }
      return { got, want };
    };
    const one = step(c, 1);
    for (let p = 0; p < S; p++) {
      const { got, want } = rows(one.run({ qkv: tokens(p, 1), pos: Int32Array.from([p]) }).out!, p, 1);
      expect(got).toEqual(want);
    }
    // The same cache object reused from the start (rows past a step's position are never read).
    const chunk = 2 + randInt(2);
    const many = step(c, chunk);
    for (let p = 0; p + chunk <= S; p += chunk) {
      const { got, want } = rows(many.run({ qkv: tokens(p, chunk), pos: Int32Array.from({ length: chunk }, (_, i) => p + i) }).out!, p, chunk);
      expect(got).toEqual(want);
    }
    one.dispose();
    many.dispose();
  });

  it('refuses a position outside the cache before the step runs, naming it', () => {
    const c = CASES[0]!;
    const exe = step(c, 1);
    const qkv = new Float32Array((c.H + 2 * c.Hkv) * c.D).fill(0.5);
    for (const p of [c.Tmax, -1]) {
      const e = (() => {
        try {
          exe.run({ qkv, pos: Int32Array.from([p]) });
        } catch (err) {
          return err as DeepwellError;
        }
        throw new Error('no error');
      })();
      expect(e).toBeInstanceOf(DeepwellError);
      expect(e.message).toMatch(new RegExp(`pos.*${p}|${p}.*pos`));
    }
    exe.dispose();
  });
});

describe('decode ops: bad inputs', () => {
  const err = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e as DeepwellError;
    }
    throw new Error('expected an error');
  };
  const build = (shapes: { qkv: number[]; k: number[]; v?: number[]; pos: number[]; posDtype?: 'i32' | 'f32'; kDtype?: 'f32' | 'bf16' }, heads = 2) => {
    const b = new GraphBuilder();
    const qkv = b.input('qkv', shapes.qkv);
    const k = b.input('k', shapes.k, shapes.kDtype ?? 'f32');
    const v = b.input('v', shapes.v ?? shapes.k, shapes.kDtype ?? 'f32');
    const pos = b.input('pos', shapes.pos, shapes.posDtype ?? 'i32');
    return { write: () => kvCacheWrite(k, v, qkv, pos, { heads }), read: () => sdpaDecode(qkv, k, v, pos, { heads }) };
  };
  it.each([
    ['heads of qkv that do not match the cache', { qkv: [1, 1, 5, 4], k: [1, 2, 8, 4], pos: [1] }, /qkv.*third dimension/],
    ['a cache of another head dimension', { qkv: [1, 1, 6, 4], k: [1, 2, 8, 3], pos: [1] }, /kcache/],
    ['a cache of another dtype', { qkv: [1, 1, 6, 4], k: [1, 2, 8, 4], pos: [1], kDtype: 'bf16' as const }, /kcache/],
    ['vcache unlike kcache', { qkv: [1, 1, 6, 4], k: [1, 2, 8, 4], v: [1, 2, 7, 4], pos: [1] }, /vcache/],
    ['a position per token missing', { qkv: [1, 2, 6, 4], k: [1, 2, 8, 4], pos: [1] }, /'pos' i32\[2\]/],
    ['f32 positions', { qkv: [1, 1, 6, 4], k: [1, 2, 8, 4], pos: [1], posDtype: 'f32' as const }, /'pos'/],
  ])('%s is a typed error naming the input', (_name, shapes, re) => {
    const ops = build(shapes);
    for (const fn of [ops.write, ops.read]) {
      const e = err(fn);
      expect(e).toBeInstanceOf(DeepwellError);
      expect(e.message).toMatch(re);
    }
  });
});

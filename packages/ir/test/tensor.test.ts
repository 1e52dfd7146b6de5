import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '@deepwell/core';
import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  cast,
  concat,
  differentiableOps,
  differentiate,
  getOp,
  gradientRule,
  interpret,
  listOps,
  max,
  mean,
  slice,
  sum,
  transpose,
  type NumArray,
} from '../src/index.js';
import { errorOf, expectClose, gradcheck, randInt, randShape, randn, runOp } from './helpers.js';

// ---- independent index arithmetic (written here, not taken from the IR) -------------------------
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function coordsOf(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}

function flatOf(c: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d]! + c[d]!;
  return i;
}

/** A shape of `rank` dims drawn from edge-prone sizes (1, odd, 7, 13), at most `cap` elements. */
function edgeShape(rank: number, cap = 2000): number[] {
  for (;;) {
    const s = Array.from({ length: rank }, () => [1, 2, 3, 5, 7, 13][randInt(0, 5)]!);
    if (prod(s) <= cap) return s;
  }
}

/** Random normals with no exact zeros (randn practically never gives one; make sure). */
function data(n: number): Float64Array {
  return randn(n).map((v) => (v === 0 ? 0.5 : v));
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = randInt(0, i);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** The numpy broadcast of two shapes, for building expected results. */
function bshape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = i - (n - a.length) >= 0 ? a[i - (n - a.length)]! : 1;
    const y = i - (n - b.length) >= 0 ? b[i - (n - b.length)]! : 1;
    return Math.max(x, y);
  });
}

/** Index into an input of shape `inp` for output coordinates `c` under broadcasting. */
function bidx(c: readonly number[], inp: readonly number[]): number {
  const off = c.length - inp.length;
  return flatOf(inp.map((d, k) => (d === 1 ? 0 : c[k + off]!)), inp);
}

/** A shape `s` with some dims set to 1 and some leading dims dropped: something that broadcasts to s. */
function broadcastable(s: readonly number[]): number[] {
  const drop = randInt(0, s.length - 1);
  return s.slice(drop).map((d) => (Math.random() < 0.4 ? 1 : d));
}

const gelu64 = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
const silu64 = (x: number) => x / (1 + Math.exp(-x));
const central = (f: (x: number) => number, x: number, h = 1e-5) => (f(x + h) - f(x - h)) / (2 * h);

// ---- elementwise ---------------------------------------------------------------------------------
describe('mul', () => {
  it('matches a broadcast loop on edge shapes', () => {
    for (let t = 0; t < 12; t++) {
      const s = edgeShape(randInt(1, 4));
      const bs = t % 3 === 0 ? s : broadcastable(s);
      const [as_, bs_] = t % 2 === 0 ? [s, bs] : [bs, s];
      const a = data(prod(as_));
      const b = data(prod(bs_));
      const out = runOp('mul', [{ shape: as_, data: a }, { shape: bs_, data: b }])[0]!;
      const os = bshape(as_, bs_);
      const want = Float64Array.from({ length: prod(os) }, (_, i) => {
        const c = coordsOf(i, os);
        return a[bidx(c, as_)]! * b[bidx(c, bs_)]!;
      });
      expectClose(out, want, 0, 0);
    }
  });

  it('rejects shapes that do not broadcast and non-f32 inputs', () => {
    expect(errorOf(() => runOp('mul', [{ shape: [3, 7], data: data(21) }, { shape: [3], data: data(3) }])).code).toBe('SHAPE_MISMATCH');
    const e = errorOf(() => runOp('mul', [{ shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }, { shape: [2], data: data(2) }]));
    expect(e.code).toBe('INVALID_DTYPE');
    expect(e.message).toMatch(/mul: Expected f32 for input 'a' but received i32\[2\]/);
  });

  it('has a gradient that matches finite differences, broadcast either way', () => {
    const s = randShape(3, 1, 4);
    gradcheck('mul', [{ shape: s }, { shape: s }]);
    gradcheck('mul', [{ shape: s }, { shape: [s[2]!] }]);
    gradcheck('mul', [{ shape: [s[0]!, 1, s[2]!] }, { shape: [s[1]!, 1] }]);
    gradcheck('mul', [{ shape: [1] }, { shape: [randInt(1, 13)] }]);
  });
});

describe('scale', () => {
  it('multiplies every element by alpha', () => {
    const s = edgeShape(randInt(1, 3));
    const x = data(prod(s));
    const alpha = randn(1)[0]! * 3;
    expectClose(runOp('scale', [{ shape: s, data: x }], { alpha })[0]!, x.map((v) => v * alpha), 0, 0);
  });

  it('needs a float alpha and f32 input', () => {
    expect(errorOf(() => runOp('scale', [{ shape: [3], data: data(3) }])).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => runOp('scale', [{ shape: [3], data: data(3) }], { alpha: 'two' })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => runOp('scale', [{ shape: [3], dtype: 'i32', data: Int32Array.of(1, 2, 3) }], { alpha: 2 })).code).toBe('INVALID_DTYPE');
  });

  it('has a gradient that matches finite differences', () => {
    gradcheck('scale', [{ shape: randShape(randInt(1, 3), 1, 4) }], { alpha: randn(1)[0]! });
  });
});

describe('bias_add', () => {
  it('adds bias[n] along the last dimension, for rank 1 and higher', () => {
    for (const s of [[randInt(1, 13)], [1, 7], [2, 3, 13], edgeShape(randInt(1, 4))]) {
      const N = s.at(-1)!;
      const x = data(prod(s));
      const bias = data(N);
      const want = Float64Array.from(x, (v, i) => v + bias[coordsOf(i, s).at(-1)!]!);
      expectClose(runOp('bias_add', [{ shape: s, data: x }, { shape: [N], data: bias }])[0]!, want, 0, 0);
    }
  });

  it('refuses a bias that is not rank 1 or does not match the last dimension', () => {
    expect(errorOf(() => runOp('bias_add', [{ shape: [2, 7], data: data(14) }, { shape: [1, 7], data: data(7) }])).code).toBe('SHAPE_MISMATCH');
    const e = errorOf(() => runOp('bias_add', [{ shape: [2, 7], data: data(14) }, { shape: [2], data: data(2) }]));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/Expected a bias of shape \[7\].*but received \[2\]/);
    // A bias of size 1 does not broadcast: the contract is an exact match.
    expect(errorOf(() => runOp('bias_add', [{ shape: [2, 7], data: data(14) }, { shape: [1], data: data(1) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('bias_add', [{ shape: [2, 3], data: data(6) }, { shape: [3], dtype: 'i32', data: Int32Array.of(1, 2, 3) }])).code).toBe('INVALID_DTYPE');
  });

  it('has a gradient that matches finite differences', () => {
    const s = randShape(3, 1, 4);
    gradcheck('bias_add', [{ shape: s }, { shape: [s[2]!] }]);
    gradcheck('bias_add', [{ shape: [5] }, { shape: [5] }]);
  });
});

describe('gelu, silu, swiglu and their backward ops', () => {
  const spread = (n: number) => data(n).map((v) => v * 3); // reach the saturated tails too

  it('gelu and silu match their formulas', () => {
    for (const s of [[1], [13], edgeShape(3)]) {
      const x = spread(prod(s));
      expectClose(runOp('gelu', [{ shape: s, data: x }])[0]!, x.map(gelu64), 1e-15, 1e-14);
      expectClose(runOp('silu', [{ shape: s, data: x }])[0]!, x.map(silu64), 1e-15, 1e-14);
    }
    // Far tails: no NaN from exp overflow.
    const tails = Float64Array.of(-800, -40, 40, 800);
    expectClose(runOp('silu', [{ shape: [4], data: tails }])[0]!, [-0, -40 / (1 + Math.exp(40)), 40 / (1 + Math.exp(-40)), 800], 1e-12, 1e-12);
    expectClose(runOp('gelu', [{ shape: [4], data: tails }])[0]!, [0, 0, 40, 800], 1e-12, 1e-12);
  });

  it('gelu_backward and silu_backward are g times the derivative (checked by central differences)', () => {
    for (const s of [[1], [7], edgeShape(2)]) {
      const n = prod(s);
      const x = spread(n);
      const g = data(n);
      const gb = runOp('gelu_backward', [{ shape: s, data: g }, { shape: s, data: x }])[0]!;
      const sb = runOp('silu_backward', [{ shape: s, data: g }, { shape: s, data: x }])[0]!;
      expectClose(gb, Float64Array.from(x, (v, i) => g[i]! * central(gelu64, v)), 1e-8, 1e-7);
      expectClose(sb, Float64Array.from(x, (v, i) => g[i]! * central(silu64, v)), 1e-8, 1e-7);
    }
  });

  it('swiglu is silu(gate) * up', () => {
    for (const s of [[1], [13], edgeShape(3)]) {
      const gate = spread(prod(s));
      const up = data(prod(s));
      expectClose(runOp('swiglu', [{ shape: s, data: gate }, { shape: s, data: up }])[0]!, Float64Array.from(gate, (v, i) => silu64(v) * up[i]!), 1e-15, 1e-14);
    }
  });

  it('refuse other dtypes and mismatched shapes', () => {
    for (const op of ['gelu', 'silu']) {
      expect(errorOf(() => runOp(op, [{ shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }])).code).toBe('INVALID_DTYPE');
    }
    for (const op of ['gelu_backward', 'silu_backward', 'swiglu']) {
      expect(errorOf(() => runOp(op, [{ shape: [2, 3], data: data(6) }, { shape: [3, 2], data: data(6) }])).code).toBe('SHAPE_MISMATCH');
      // No broadcasting either.
      expect(errorOf(() => runOp(op, [{ shape: [2, 3], data: data(6) }, { shape: [3], data: data(3) }])).code).toBe('SHAPE_MISMATCH');
      expect(errorOf(() => runOp(op, [{ shape: [2], data: data(2) }, { shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }])).code).toBe('INVALID_DTYPE');
    }
  });

  it('have gradients that match finite differences, and use the dedicated backward ops', () => {
    const s = randShape(randInt(1, 3), 1, 4);
    gradcheck('gelu', [{ shape: s }]);
    gradcheck('silu', [{ shape: s }]);
    gradcheck('swiglu', [{ shape: s }, { shape: s }]);
    const b = new GraphBuilder();
    const x = b.param('x', [3], 'f32', { dist: 'zeros' });
    const loss = sum(b.op1('gelu', [b.op1('silu', [x])]), []);
    differentiate(b.graph, loss.id, [x.id]);
    const ops = b.graph.nodes.map((n) => n.op);
    expect(ops).toContain('gelu_backward');
    expect(ops).toContain('silu_backward');
  });
});

// ---- shape ops -----------------------------------------------------------------------------------
describe('transpose', () => {
  it('permutes dimensions for f32 and i32, any rank', () => {
    for (let t = 0; t < 10; t++) {
      const rank = randInt(1, 4);
      const s = edgeShape(rank);
      const perm = shuffle(s.map((_, i) => i));
      const os = perm.map((p) => s[p]!);
      const n = prod(s);
      const x = data(n);
      const xi = Int32Array.from({ length: n }, () => randInt(-1000, 1000));
      const out = runOp('transpose', [{ shape: s, data: x }], { perm })[0]!;
      const outi = runOp('transpose', [{ shape: s, dtype: 'i32', data: xi }], { perm })[0]!;
      expect(outi).toBeInstanceOf(Int32Array);
      const want = new Float64Array(n);
      const wanti = new Int32Array(n);
      for (let j = 0; j < n; j++) {
        const c = coordsOf(j, s); // x's coordinates; out[c[perm[0]], ..., c[perm[r-1]]] = x[c]
        const o = flatOf(perm.map((p) => c[p]!), os);
        want[o] = x[j]!;
        wanti[o] = xi[j]!;
      }
      expectClose(out, want, 0, 0);
      expect(Array.from(outi)).toEqual(Array.from(wanti));
    }
    const b = new GraphBuilder();
    expect(transpose(b.input('x', [2, 3, 5]), [2, 0, 1]).shape).toEqual([5, 2, 3]);
  });

  it('refuses anything that is not a permutation of 0..rank-1', () => {
    const x = { shape: [2, 3], data: data(6) };
    for (const perm of [[0], [0, 1, 2], [0, 0], [1, 2], [-1, 0]]) expect(errorOf(() => runOp('transpose', [x], { perm })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('transpose', [x], { perm: [0.5, 1] })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => runOp('transpose', [x])).code).toBe('INVALID_ARGUMENT');
  });

  it('has a gradient that matches finite differences', () => {
    for (const rank of [1, 2, 3]) {
      const s = randShape(rank, 1, 4);
      gradcheck('transpose', [{ shape: s }], { perm: shuffle(s.map((_, i) => i)) });
    }
    gradcheck('transpose', [{ shape: [2, 3, 1, 2] }], { perm: [3, 1, 0, 2] });
  });
});

describe('slice and slice_backward', () => {
  it('slice takes start <= i < end along one axis (negative axes too)', () => {
    for (let t = 0; t < 12; t++) {
      const s = edgeShape(randInt(1, 4));
      const axis = randInt(0, s.length - 1);
      const start = randInt(0, s[axis]!);
      const end = randInt(start, s[axis]!);
      const x = data(prod(s));
      const os = s.map((d, i) => (i === axis ? end - start : d));
      const given = Math.random() < 0.5 ? axis : axis - s.length;
      const out = runOp('slice', [{ shape: s, data: x }], { axis: given, start, end })[0]!;
      const want = Float64Array.from({ length: prod(os) }, (_, i) => {
        const c = coordsOf(i, os);
        c[axis]! += start;
        return x[flatOf(c, s)]!;
      });
      expectClose(out, want, 0, 0);
    }
    const xi = Int32Array.from({ length: 13 }, (_, i) => i * 7 - 3);
    expect(Array.from(runOp('slice', [{ shape: [13], dtype: 'i32', data: xi }], { axis: 0, start: 1, end: 13 })[0]!)).toEqual(Array.from(xi.slice(1)));
  });

  it('slice_backward writes g into zeros of the input shape', () => {
    for (let t = 0; t < 8; t++) {
      const s = edgeShape(randInt(1, 3));
      const axis = randInt(0, s.length - 1);
      const start = randInt(0, s[axis]!);
      const len = randInt(0, s[axis]! - start);
      const gs = s.map((d, i) => (i === axis ? len : d));
      const g = data(prod(gs));
      const out = runOp('slice_backward', [{ shape: gs, data: g }], { shape: s, axis: Math.random() < 0.5 ? axis : axis - s.length, start })[0]!;
      const want = new Float64Array(prod(s));
      for (let i = 0; i < g.length; i++) {
        const c = coordsOf(i, gs);
        c[axis]! += start;
        want[flatOf(c, s)] = g[i]!;
      }
      expectClose(out, want, 0, 0);
    }
  });

  it('refuse out-of-range bounds and axes', () => {
    const x = { shape: [3, 7], data: data(21) };
    expect(errorOf(() => runOp('slice', [x], { axis: 1, start: 2, end: 8 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice', [x], { axis: 1, start: 5, end: 4 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice', [x], { axis: 1, start: -1, end: 4 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice', [x], { axis: 2, start: 0, end: 1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice', [x], { axis: -3, start: 0, end: 1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice', [x], { axis: 0, start: 0 })).code).toBe('INVALID_ARGUMENT');
    const g = { shape: [3, 2], data: data(6) };
    expect(errorOf(() => runOp('slice_backward', [g], { shape: [3, 7], axis: 1, start: 6 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice_backward', [g], { shape: [4, 7], axis: 1, start: 0 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('slice_backward', [{ shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }], { shape: [3], axis: 0, start: 0 })).code).toBe('INVALID_DTYPE');
  });

  it('have gradients that match finite differences', () => {
    const s = randShape(3, 1, 4);
    const axis = randInt(0, 2);
    const start = randInt(0, s[axis]! - 1);
    gradcheck('slice', [{ shape: s }], { axis, start, end: randInt(start + 1, s[axis]!) });
    gradcheck('slice', [{ shape: [7] }], { axis: -1, start: 2, end: 5 });
    gradcheck('slice_backward', [{ shape: [2, 3] }], { shape: [2, 7], axis: -1, start: 4 });
  });
});

describe('concat', () => {
  it('joins any number of inputs along an axis', () => {
    for (let t = 0; t < 10; t++) {
      const s = edgeShape(randInt(1, 3), 500);
      const axis = randInt(0, s.length - 1);
      const k = randInt(1, 4);
      const shapes = Array.from({ length: k }, () => s.map((d, i) => (i === axis ? [1, 2, 7][randInt(0, 2)]! : d)));
      const xs = shapes.map((sh) => data(prod(sh)));
      const total = shapes.reduce((a, sh) => a + sh[axis]!, 0);
      const os = s.map((d, i) => (i === axis ? total : d));
      const out = runOp('concat', shapes.map((sh, j) => ({ shape: sh, data: xs[j]! })), { axis: Math.random() < 0.5 ? axis : axis - s.length })[0]!;
      const want = new Float64Array(prod(os));
      let offset = 0;
      shapes.forEach((sh, j) => {
        for (let i = 0; i < xs[j]!.length; i++) {
          const c = coordsOf(i, sh);
          c[axis]! += offset;
          want[flatOf(c, os)] = xs[j]![i]!;
        }
        offset += sh[axis]!;
      });
      expectClose(out, want, 0, 0);
    }
    const i32 = runOp('concat', [{ shape: [2, 1], dtype: 'i32', data: Int32Array.of(1, 2) }, { shape: [2, 2], dtype: 'i32', data: Int32Array.of(3, 4, 5, 6) }], { axis: 1 })[0]!;
    expect(Array.from(i32)).toEqual([1, 3, 4, 2, 5, 6]);
    const b = new GraphBuilder();
    expect(concat([b.input('a', [2, 3]), b.input('c', [2, 5])], -1).shape).toEqual([2, 8]);
  });

  it('refuses mixed dtypes, mismatched sizes and bad axes', () => {
    const e = errorOf(() => runOp('concat', [{ shape: [2], data: data(2) }, { shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }], { axis: 0 }));
    expect(e.code).toBe('INVALID_DTYPE');
    expect(e.message).toMatch(/Expected f32 \(the dtype of xs\[0\]\) for input 'xs\[1\]' but received i32\[2\]/);
    expect(errorOf(() => runOp('concat', [{ shape: [2, 3], data: data(6) }, { shape: [3, 3], data: data(9) }], { axis: 1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('concat', [{ shape: [2, 3], data: data(6) }, { shape: [6], data: data(6) }], { axis: 0 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('concat', [{ shape: [2, 3], data: data(6) }], { axis: 2 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('concat', [], { axis: 0 })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => concat([], 0)).code).toBe('INVALID_ARGUMENT');
  });

  it('has a gradient that matches finite differences', () => {
    const s = randShape(2, 1, 4);
    gradcheck('concat', [{ shape: s }, { shape: [s[0]!, 3] }, { shape: [s[0]!, 1] }], { axis: 1 });
    gradcheck('concat', [{ shape: s }, { shape: [2, s[1]!] }], { axis: -2 });
    gradcheck('concat', [{ shape: [5] }], { axis: 0 });
  });
});

// ---- reductions ----------------------------------------------------------------------------------
/** Group each element of x by its coordinates outside `axes`; returns the groups in output order. */
function groups(s: readonly number[], axes: readonly number[]): { outShape: number[]; members: number[][] } {
  const kept = s.map((_, i) => i).filter((i) => !axes.includes(i));
  const outShape = kept.map((i) => s[i]!);
  const members: number[][] = Array.from({ length: prod(outShape) }, () => []);
  for (let i = 0; i < prod(s); i++) {
    const c = coordsOf(i, s);
    members[flatOf(kept.map((k) => c[k]!), outShape)]!.push(i);
  }
  return { outShape, members };
}

function randomAxes(rank: number): { given: number[]; axes: number[] } {
  const axes = s_(rank).filter(() => Math.random() < 0.5);
  const given = shuffle(axes.map((a) => (Math.random() < 0.5 ? a : a - rank)));
  return { given, axes: given.length === 0 ? s_(rank) : axes };
}
const s_ = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('sum, mean, max', () => {
  it('reduce over any set of axes ([] = all), with and without keepdims', () => {
    for (let t = 0; t < 15; t++) {
      const s = edgeShape(randInt(1, 4));
      const { given, axes } = randomAxes(s.length);
      const keepdims = Math.random() < 0.5;
      const x = data(prod(s));
      const { outShape, members } = groups(s, axes);
      const wantSum = members.map((m) => m.reduce((a, i) => a + x[i]!, 0));
      const wantMean = members.map((m, j) => wantSum[j]! / m.length);
      const wantMax = members.map((m) => Math.max(...m.map((i) => x[i]!)));
      const attrs = { axes: given, keepdims };
      expectClose(runOp('sum', [{ shape: s, data: x }], attrs)[0]!, wantSum, 1e-12, 1e-12);
      expectClose(runOp('mean', [{ shape: s, data: x }], attrs)[0]!, wantMean, 1e-12, 1e-12);
      expectClose(runOp('max', [{ shape: s, data: x }], attrs)[0]!, wantMax, 0, 0);
      // Declared shapes.
      const b = new GraphBuilder();
      const xs = b.input('x', s);
      const keepShape = s.map((d, i) => (axes.includes(i) ? 1 : d));
      for (const f of [sum, mean, max]) expect(f(xs, given, keepdims).shape).toEqual(keepdims ? keepShape : outShape);
    }
  });

  it('reduce a rank-1 tensor to a scalar, and default to all axes', () => {
    const x = data(13);
    const b = new GraphBuilder();
    const xs = b.input('x', [13]);
    expect(sum(xs).shape).toEqual([]);
    expect(mean(xs, [], true).shape).toEqual([1]);
    expectClose(runOp('sum', [{ shape: [13], data: x }])[0]!, [x.reduce((a, v) => a + v, 0)], 1e-12, 1e-12);
    expectClose(runOp('max', [{ shape: [13], data: x }], { axes: [0] })[0]!, [Math.max(...x)], 0, 0);
  });

  it('sum accumulates in float64 even on f32 values', () => {
    const n = 4097;
    const x = new Float32Array(n).fill(1);
    x[0] = 2 ** 24; // 2^24 + 1 is not an f32: an f32 accumulator would lose every 1
    const out = runOp('sum', [{ shape: [n], data: x }], {}, 'f32')[0]!;
    expect(out[0]).toBe(Math.fround(2 ** 24 + 4096));
  });

  it('max propagates NaN', () => {
    const x = data(6);
    x[4] = NaN;
    const out = runOp('max', [{ shape: [2, 3], data: x }], { axes: [1] })[0]!;
    expect(out[0]).toBe(Math.max(x[0]!, x[1]!, x[2]!));
    expect(out[1]).toBeNaN();
  });

  it('max_backward sends g to the first maximal element of each group only (ties included)', () => {
    for (let t = 0; t < 8; t++) {
      const s = edgeShape(randInt(1, 3), 300);
      const { given, axes } = randomAxes(s.length);
      const keepdims = Math.random() < 0.5;
      const pool = data(3); // few distinct values: ties are common
      const x = Float64Array.from({ length: prod(s) }, () => pool[randInt(0, 2)]!);
      const { outShape, members } = groups(s, axes);
      const g = data(members.length);
      const want = new Float64Array(x.length);
      members.forEach((m, j) => {
        let first = m[0]!;
        for (const i of m) if (x[i]! > x[first]!) first = i;
        want[first] = g[j]!;
      });
      const gShape = keepdims ? s.map((d, i) => (axes.includes(i) ? 1 : d)) : outShape;
      const out = runOp('max_backward', [{ shape: gShape, data: g }, { shape: s, data: x }], { axes: given, keepdims })[0]!;
      expectClose(out, want, 0, 0);
    }
  });

  it('refuse bad axes, duplicate axes, other dtypes and a wrong g shape', () => {
    const x = { shape: [2, 3], data: data(6) };
    for (const op of ['sum', 'mean', 'max']) {
      expect(errorOf(() => runOp(op, [x], { axes: [2] })).code).toBe('SHAPE_MISMATCH');
      expect(errorOf(() => runOp(op, [x], { axes: [-3] })).code).toBe('SHAPE_MISMATCH');
      expect(errorOf(() => runOp(op, [x], { axes: [1, -1] })).code).toBe('SHAPE_MISMATCH');
      expect(errorOf(() => runOp(op, [x], { axes: [0], keepdims: 1 })).code).toBe('INVALID_ARGUMENT');
      expect(errorOf(() => runOp(op, [{ shape: [2], dtype: 'i32', data: Int32Array.of(1, 2) }])).code).toBe('INVALID_DTYPE');
    }
    expect(errorOf(() => runOp('max_backward', [{ shape: [2, 1], data: data(2) }, x], { axes: [1] })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('max_backward', [{ shape: [3], data: data(3) }, x], { axes: [1] })).code).toBe('SHAPE_MISMATCH');
  });

  it('have gradients that match finite differences', () => {
    for (const op of ['sum', 'mean', 'max']) {
      const s = randShape(3, 1, 4);
      gradcheck(op, [{ shape: s }], { axes: [1] });
      gradcheck(op, [{ shape: s }], { axes: [0, -1], keepdims: true });
      gradcheck(op, [{ shape: s }]);
      gradcheck(op, [{ shape: [7] }], { axes: [0], keepdims: true });
    }
  });
});

// ---- cast ----------------------------------------------------------------------------------------
const f32bits = new Float32Array(1);
const u32bits = new Uint32Array(f32bits.buffer);
const fromBits = (b: number) => {
  u32bits[0] = b >>> 0;
  return f32bits[0]!;
};

describe('cast', () => {
  /** f32 values exactly halfway between two bf16 values (ties), with the expected round-to-even. */
  function bf16Ties(n: number): { x: number[]; want: number[] } {
    const x: number[] = [];
    const want: number[] = [];
    while (x.length < n) {
      const hi = randInt(0x0080, 0x7f7e) | (Math.random() < 0.5 ? 0x8000 : 0); // normal, finite, not the top
      x.push(fromBits((hi << 16) | 0x8000));
      want.push(fromBits(((hi & 1 ? hi + 1 : hi) << 16) >>> 0));
    }
    return { x, want };
  }

  it('f32 -> bf16 rounds to nearest even, as core does, ties included', () => {
    const rand = Array.from(data(200), (v) => Math.fround(v * 2 ** randInt(-20, 20)));
    const { x: ties, want: tieWant } = bf16Ties(50);
    const x = Float32Array.from([...rand, ...ties]);
    const out = runOp('cast', [{ shape: [x.length], data: x }], { dtype: 'bf16' }, 'f32')[0]!;
    expectClose(out, Array.from(x, (v) => bf16BitsToF32(f32ToBf16Bits(v))), 0, 0);
    expectClose(out.subarray(rand.length), tieWant, 0, 0);
    // Off a tie by one f32 ulp, it rounds to the nearer neighbour: up from above the tie, down from below.
    for (let i = 0; i < 20; i++) {
      const hi = randInt(0x3f00, 0x4100);
      const up = runOp('cast', [{ shape: [1], data: Float32Array.of(fromBits((hi << 16) | 0x8001)) }], { dtype: 'bf16' }, 'f32')[0]![0]!;
      const down = runOp('cast', [{ shape: [1], data: Float32Array.of(fromBits((hi << 16) | 0x7fff)) }], { dtype: 'bf16' }, 'f32')[0]![0]!;
      expect(up).toBe(fromBits((hi + 1) << 16));
      expect(down).toBe(fromBits(hi << 16));
    }
  });

  it('f32 -> f16 rounds as core does (ties, overflow and subnormals included)', () => {
    const rand = Array.from(data(200), (v) => Math.fround(v * 2 ** randInt(-26, 17)));
    // f16 ties: 1 + (2k+1) * 2^-11 sits halfway between two f16 values in [1, 2).
    const ties = Array.from({ length: 30 }, () => 1 + (2 * randInt(0, 1023) + 1) * 2 ** -11);
    const x = Float32Array.from([...rand, ...ties, 70000, -1e-8]);
    const out = runOp('cast', [{ shape: [x.length], data: x }], { dtype: 'f16' }, 'f32')[0]!;
    expect(Array.from(out)).toEqual(Array.from(x, (v) => f16BitsToF32(f32ToF16Bits(v))));
    ties.forEach((v, i) => {
      const k = Math.floor((v - 1) * 1024); // the f16 value below is 1 + k/1024
      expect(out[rand.length + i]).toBe(1 + (k % 2 === 0 ? k : k + 1) / 1024);
    });
    expect(out[x.length - 2]).toBe(Infinity);
  });

  it('narrow -> f32 is the identity; f32 <-> i32 truncates toward zero / is exact', () => {
    const narrow = Float32Array.from(data(13), (v) => bf16BitsToF32(f32ToBf16Bits(v)));
    expectClose(runOp('cast', [{ shape: [13], dtype: 'bf16', data: narrow }], { dtype: 'f32' }, 'f32')[0]!, narrow, 0, 0);
    const half = Float32Array.from(data(7), (v) => f16BitsToF32(f32ToF16Bits(v)));
    expectClose(runOp('cast', [{ shape: [7], dtype: 'f16', data: half }], { dtype: 'f32' }, 'f32')[0]!, half, 0, 0);
    const x = Float32Array.from(data(50), (v) => v * 100);
    const ti = runOp('cast', [{ shape: [50], data: x }], { dtype: 'i32' }, 'f32')[0]!;
    expect(ti).toBeInstanceOf(Int32Array);
    expect(Array.from(ti)).toEqual(Array.from(x, (v) => (v < 0 ? Math.ceil(v) : Math.floor(v)) + 0));
    const ints = Int32Array.from({ length: 20 }, () => randInt(-(2 ** 24), 2 ** 24));
    expect(Array.from(runOp('cast', [{ shape: [20], dtype: 'i32', data: ints }], { dtype: 'f32' })[0]!)).toEqual(Array.from(ints));
    expect(Array.from(runOp('cast', [{ shape: [3], data: Float64Array.of(-2.5, 3e10, -3e10) }], { dtype: 'i32' })[0]!)).toEqual([-2, 2 ** 31 - 1, -(2 ** 31)]);
    const b = new GraphBuilder();
    expect(cast(b.input('x', [2, 3]), 'bf16').type).toEqual({ shape: [2, 3], dtype: 'bf16' });
  });

  it('refuses an unknown target dtype and inputs it cannot convert', () => {
    expect(errorOf(() => runOp('cast', [{ shape: [2], data: data(2) }], { dtype: 'f64' })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => runOp('cast', [{ shape: [2], data: data(2) }])).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => runOp('cast', [{ shape: [2], dtype: 'f8e4m3', data: data(2) }], { dtype: 'f32' })).code).toBe('INVALID_DTYPE');
  });

  it('has a gradient: identity through f32, the gradient cast back for narrow floats, none from i32', () => {
    gradcheck('cast', [{ shape: randShape(2, 1, 5) }], { dtype: 'f32' });
    // bf16 -> f32: the gradient is rounded to bf16 on the way back, hence the tolerance.
    gradcheck('cast', [{ shape: randShape(2, 1, 5), dtype: 'bf16', diff: true }], { dtype: 'f32' }, { tol: 1e-2 });
    // f32 -> bf16 -> f32: straight through, the incoming gradient rounded to bf16.
    const b = new GraphBuilder();
    const n = randInt(2, 13);
    const x = b.param('x', [n], 'f32', { dist: 'zeros' });
    const w = b.input('w', [n]);
    const y = cast(cast(x, 'bf16'), 'f32');
    const loss = sum(b.op1('mul', [y, w]));
    const grads = differentiate(b.graph, loss.id, [x.id]);
    const wv = data(n);
    const vals: NumArray[] = interpret(b.graph, { x: data(n), w: wv }, { precision: 'f64' });
    const gx = vals[grads.get(x.id)!]!;
    expectClose(gx, Array.from(wv, (v) => bf16BitsToF32(f32ToBf16Bits(v))), 0, 0);
    // i32 input: no gradient.
    const b2 = new GraphBuilder();
    const xi = b2.input('i', [3], 'i32');
    const yi = cast(xi, 'f32');
    const rule = gradientRule('cast')!;
    expect(rule({ b: b2, inputs: [xi], outputs: [yi], grads: [yi], attrs: { dtype: 'f32' } })).toEqual([null]);
  });
});

describe('the tensor family', () => {
  it('registers every op, with gradient rules for the forward ones and the right fusion flags', () => {
    const ops = ['mul', 'scale', 'bias_add', 'gelu', 'gelu_backward', 'silu', 'silu_backward', 'swiglu', 'transpose', 'slice', 'slice_backward', 'concat', 'sum', 'mean', 'max', 'max_backward', 'cast'];
    const all = listOps();
    for (const op of ops) expect(all).toContain(op);
    const diff = differentiableOps();
    for (const op of ['mul', 'scale', 'bias_add', 'gelu', 'silu', 'swiglu', 'transpose', 'slice', 'concat', 'sum', 'mean', 'max', 'cast']) expect(diff).toContain(op);
    for (const op of ['mul', 'scale', 'bias_add', 'gelu', 'gelu_backward', 'silu', 'silu_backward', 'swiglu', 'cast']) expect(getOp(op).elementwise).toBe(true);
    for (const op of ['transpose', 'slice', 'concat', 'sum', 'mean', 'max']) expect(getOp(op).elementwise).toBeFalsy();
    expect(getOp('mul').flops!([{ shape: [2, 3], dtype: 'f32' }, { shape: [3], dtype: 'f32' }], [{ shape: [2, 3], dtype: 'f32' }], {})).toBe(6);
    expect(getOp('sum').flops!([{ shape: [2, 3], dtype: 'f32' }], [{ shape: [], dtype: 'f32' }], { axes: [], keepdims: false })).toBe(6);
  });

  it('slice gradients of a fused projection add up like the pieces (slice, concat, transpose compose)', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 9]);
    const parts = [slice(x, 1, 0, 3), slice(x, -1, 3, 6), slice(x, 1, 6, 9)];
    const y = transpose(concat(parts.reverse(), 1), [1, 0]);
    b.output('y', y);
    const xv = data(18);
    const out = interpret(b.graph, { x: xv }, { precision: 'f64' })[y.id]!;
    // y[j, r] = x[r, ((j + 6) mod 9)] for the reversed thirds.
    const want = new Float64Array(18);
    for (let j = 0; j < 9; j++) for (let r = 0; r < 2; r++) want[j * 2 + r] = xv[r * 9 + ((Math.floor(j / 3) === 0 ? 6 : Math.floor(j / 3) === 1 ? 3 : 0) + (j % 3))]!;
    expectClose(out, want, 0, 0);
  });
});

import { describe, expect, it } from 'vitest';
import {
  Graph,
  GraphBuilder,
  adamw,
  causalMask,
  crossEntropy,
  differentiate,
  embedding,
  getOp,
  gradientRule,
  interpret,
  layernorm,
  matmul,
  numel,
  reshape,
  rmsnorm,
  softmax,
  type NumArray,
  type Sym,
} from '../src/index.js';
import { errorOf, expectClose, gradcheck, randInt, randShape, randn, runOp } from './helpers.js';

// ---- independent straightforward computations ------------------------------------------------

const stridesOf = (shape: readonly number[]) => shape.map((_, d) => numel(shape.slice(d + 1)));
const randIds = (n: number, V: number) => Int32Array.from({ length: n }, () => randInt(0, V - 1));
const f64 = (n: number, fn: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => fn(i));
/** Positive random values (second moments). */
const randPos = (n: number) => randn(n).map((x) => x * x + 0.01);

/** softmax along `axis` without the max shift: fine for values of randn's size. */
function naiveSoftmax(x: Float64Array, shape: number[], axis: number): Float64Array {
  const a = axis < 0 ? axis + shape.length : axis;
  const st = stridesOf(shape)[a]!;
  const n = shape[a]!;
  return f64(x.length, (i) => {
    const base = i - (Math.floor(i / st) % n) * st;
    let s = 0;
    for (let k = 0; k < n; k++) s += Math.exp(x[base + k * st]!);
    return Math.exp(x[i]!) / s;
  });
}

/** Row statistics of x[R, D]: mean, biased variance. */
function rowStats(x: Float64Array, R: number, D: number): { mean: number[]; variance: number[] } {
  const mean: number[] = [];
  const variance: number[] = [];
  for (let r = 0; r < R; r++) {
    const row = Array.from(x.subarray(r * D, r * D + D));
    const mu = row.reduce((a, b) => a + b, 0) / D;
    mean.push(mu);
    variance.push(row.reduce((a, b) => a + (b - mu) * (b - mu), 0) / D);
  }
  return { mean, variance };
}

const leadShape = () => randShape(randInt(1, 3), 1, 4);
const someD = () => [1, 7, 13, randInt(2, 6)][randInt(0, 3)]!;

// ---- softmax -----------------------------------------------------------------------------------

describe('softmax', () => {
  it('matches exp / sum along every axis of ranks 1 to 4', () => {
    for (let rank = 1; rank <= 4; rank++) {
      const shape = randShape(rank, 1, 7);
      const x = randn(numel(shape));
      for (let axis = -rank; axis < rank; axis++) {
        const out = runOp('softmax', [{ shape, data: x }], { axis })[0]!;
        expectClose(out, naiveSoftmax(x, shape, axis), 1e-12, 1e-10);
      }
    }
    const x = randn(13);
    expectClose(runOp('softmax', [{ shape: [13], data: x }])[0]!, naiveSoftmax(x, [13], 0), 1e-12, 1e-10);
    expect(Array.from(runOp('softmax', [{ shape: [3, 1], data: randn(3) }])[0]!)).toEqual([1, 1, 1]);
  });

  it('is stable for large scores and turns -1e30 into exactly 0, also in f32', () => {
    const x = randn(7).map((v) => 1000 + v);
    const shifted = x.map((v) => v - 1000);
    expectClose(runOp('softmax', [{ shape: [7], data: x }])[0]!, naiveSoftmax(shifted, [7], 0), 1e-12, 1e-10);
    const masked = Float64Array.from([randn(1)[0]!, -1e30, randn(1)[0]!, -1e30]);
    const out = runOp('softmax', [{ shape: [4], data: masked }], {}, 'f32')[0]!;
    expect(out).toBeInstanceOf(Float32Array);
    expect(out[1]).toBe(0);
    expect(out[3]).toBe(0);
    expectClose([out[0]! + out[2]!], [1], 1e-6, 0);
  });

  it('softmax_backward matches the Jacobian-vector product', () => {
    for (let rank = 1; rank <= 3; rank++) {
      const shape = randShape(rank, 1, 6);
      const axis = randInt(-rank, rank - 1);
      const a = axis < 0 ? axis + rank : axis;
      const y = naiveSoftmax(randn(numel(shape)), shape, axis);
      const g = randn(numel(shape));
      const out = runOp('softmax_backward', [{ shape, data: g }, { shape, data: y }], { axis })[0]!;
      const st = stridesOf(shape)[a]!;
      const n = shape[a]!;
      // dx_i = sum_j g_j * dy_j/dx_i, dy_j/dx_i = y_j (δij - y_i)
      const want = f64(y.length, (i) => {
        const base = i - (Math.floor(i / st) % n) * st;
        let s = 0;
        for (let k = 0; k < n; k++) {
          const j = base + k * st;
          s += g[j]! * y[j]! * ((i === j ? 1 : 0) - y[i]!);
        }
        return s;
      });
      expectClose(out, want, 1e-12, 1e-10);
    }
  });

  it('has a gradient that matches finite differences', () => {
    for (let rank = 1; rank <= 3; rank++) {
      const shape = randShape(rank, 1, 4);
      gradcheck('softmax', [{ shape }], { axis: randInt(-rank, rank - 1) });
    }
    gradcheck('softmax', [{ shape: [1, 13] }]);
  });

  it('rejects bad dtypes and axes', () => {
    expect(errorOf(() => runOp('softmax', [{ shape: [3], dtype: 'i32', data: new Int32Array(3) }])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('softmax', [{ shape: [2, 3], data: randn(6) }], { axis: 2 })).code).toBe('SHAPE_MISMATCH');
    const e = errorOf(() => runOp('softmax_backward', [{ shape: [2, 3], data: randn(6) }, { shape: [3, 2], data: randn(6) }]));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/Expected .* for input 'g' but received f32\[2, 3\]/);
  });
});

// ---- layernorm -----------------------------------------------------------------------------------

describe('layernorm', () => {
  it('matches (x - mean) / sqrt(var + eps) * w + b, returning mean and rstd', () => {
    for (const lead of [[], leadShape(), leadShape(), [1], [2, 1, 3]]) {
      const D = someD();
      const shape = [...lead, D];
      const R = numel(lead);
      const x = randn(R * D);
      const w = randn(D);
      const b = randn(D);
      const eps = [1e-5, 0.1][randInt(0, 1)]!;
      const [y, mean, rstd] = runOp('layernorm', [{ shape, data: x }, { shape: [D], data: w }, { shape: [D], data: b }], { eps });
      const s = rowStats(x, R, D);
      expectClose(y!, f64(R * D, (i) => ((x[i]! - s.mean[Math.floor(i / D)]!) / Math.sqrt(s.variance[Math.floor(i / D)]! + eps)) * w[i % D]! + b[i % D]!), 1e-10, 1e-9);
      expectClose(mean!, s.mean, 1e-12, 1e-10);
      expectClose(rstd!, s.variance.map((v) => 1 / Math.sqrt(v + eps)), 1e-10, 1e-9);
    }
  });

  it('layernorm_backward matches the Jacobian-vector product', () => {
    for (const lead of [leadShape(), [1], [3, 1, 2]]) {
      const D = someD();
      const R = numel(lead);
      const eps = 1e-5;
      const x = randn(R * D);
      const w = randn(D);
      const g = randn(R * D);
      const s = rowStats(x, R, D);
      const mean = Float64Array.from(s.mean);
      const rstd = Float64Array.from(s.variance.map((v) => 1 / Math.sqrt(v + eps)));
      const [dx, dw, db] = runOp('layernorm_backward', [
        { shape: [...lead, D], data: g },
        { shape: [...lead, D], data: x },
        { shape: [D], data: w },
        { shape: lead, data: mean },
        { shape: lead, data: rstd },
      ]);
      const xhat = f64(R * D, (i) => (x[i]! - mean[Math.floor(i / D)]!) * rstd[Math.floor(i / D)]!);
      // dy_i/dx_j = w_i * rstd * (δij - 1/D - xhat_i xhat_j / D), within a row.
      const wantDx = new Float64Array(R * D);
      const wantDw = new Float64Array(D);
      const wantDb = new Float64Array(D);
      for (let r = 0; r < R; r++) {
        for (let j = 0; j < D; j++) {
          let s2 = 0;
          for (let i = 0; i < D; i++) s2 += g[r * D + i]! * w[i]! * rstd[r]! * ((i === j ? 1 : 0) - 1 / D - (xhat[r * D + i]! * xhat[r * D + j]!) / D);
          wantDx[r * D + j] = s2;
          wantDw[j]! += g[r * D + j]! * xhat[r * D + j]!;
          wantDb[j]! += g[r * D + j]!;
        }
      }
      expectClose(dx!, wantDx, 1e-9, 1e-9);
      expectClose(dw!, wantDw, 1e-10, 1e-10);
      expectClose(db!, wantDb, 1e-12, 1e-12);
    }
  });

  it('has a gradient that matches finite differences', () => {
    for (const lead of [randShape(1, 1, 3), randShape(2, 1, 3), [1, 2, 1]]) {
      const D = [1, 2, 5, 7][randInt(0, 3)]!;
      gradcheck('layernorm', [{ shape: [...lead, D] }, { shape: [D] }, { shape: [D] }], { eps: 1e-5 }, { outputs: [0], tol: 1e-5 });
    }
  });

  it('rejects bad dtypes and shapes', () => {
    const x = { shape: [2, 3], data: randn(6) };
    const v3 = { shape: [3], data: randn(3) };
    expect(errorOf(() => runOp('layernorm', [x, { shape: [4], data: randn(4) }, v3])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('layernorm', [x, v3, { shape: [1, 3], data: randn(3) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('layernorm', [{ shape: [2, 3], dtype: 'i32', data: new Int32Array(6) }, v3, v3])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('layernorm', [x, { shape: [3], dtype: 'i32', data: new Int32Array(3) }, v3])).code).toBe('INVALID_DTYPE');
    const r2 = { shape: [2], data: randn(2) };
    expect(errorOf(() => runOp('layernorm_backward', [x, x, v3, { shape: [3], data: randn(3) }, r2])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('layernorm_backward', [{ shape: [3, 2], data: randn(6) }, x, v3, r2, r2])).code).toBe('SHAPE_MISMATCH');
  });
});

// ---- rmsnorm -------------------------------------------------------------------------------------

describe('rmsnorm', () => {
  it('matches x / sqrt(mean(x^2) + eps) * w, returning rstd', () => {
    for (const lead of [[], leadShape(), leadShape(), [1], [1, 3, 1]]) {
      const D = someD();
      const R = numel(lead);
      const x = randn(R * D);
      const w = randn(D);
      const eps = [1e-6, 0.5][randInt(0, 1)]!;
      const [y, rstd] = runOp('rmsnorm', [{ shape: [...lead, D], data: x }, { shape: [D], data: w }], { eps });
      const ms = Array.from({ length: R }, (_, r) => Array.from(x.subarray(r * D, r * D + D)).reduce((a, b) => a + b * b, 0) / D);
      expectClose(y!, f64(R * D, (i) => (x[i]! / Math.sqrt(ms[Math.floor(i / D)]! + eps)) * w[i % D]!), 1e-10, 1e-9);
      expectClose(rstd!, ms.map((m) => 1 / Math.sqrt(m + eps)), 1e-10, 1e-9);
    }
  });

  it('rmsnorm_backward matches the Jacobian-vector product', () => {
    for (const lead of [leadShape(), [1], [2, 1, 2]]) {
      const D = someD();
      const R = numel(lead);
      const x = randn(R * D);
      const w = randn(D);
      const g = randn(R * D);
      const rstd = f64(R, (r) => 1 / Math.sqrt(Array.from(x.subarray(r * D, r * D + D)).reduce((a, b) => a + b * b, 0) / D + 1e-6));
      const [dx, dw] = runOp('rmsnorm_backward', [{ shape: [...lead, D], data: g }, { shape: [...lead, D], data: x }, { shape: [D], data: w }, { shape: lead, data: rstd }]);
      // dy_i/dx_j = w_i (δij rstd - x_i x_j rstd^3 / D), within a row.
      const wantDx = new Float64Array(R * D);
      const wantDw = new Float64Array(D);
      for (let r = 0; r < R; r++) {
        const q = rstd[r]!;
        for (let j = 0; j < D; j++) {
          let s = 0;
          for (let i = 0; i < D; i++) s += g[r * D + i]! * w[i]! * ((i === j ? q : 0) - (x[r * D + i]! * x[r * D + j]! * q * q * q) / D);
          wantDx[r * D + j] = s;
          wantDw[j]! += g[r * D + j]! * x[r * D + j]! * q;
        }
      }
      expectClose(dx!, wantDx, 1e-9, 1e-9);
      expectClose(dw!, wantDw, 1e-10, 1e-10);
    }
  });

  it('has a gradient that matches finite differences', () => {
    for (const lead of [randShape(1, 1, 3), randShape(2, 1, 3), [1, 3, 1]]) {
      const D = [1, 3, 7][randInt(0, 2)]!;
      gradcheck('rmsnorm', [{ shape: [...lead, D] }, { shape: [D] }], {}, { outputs: [0], tol: 1e-5 });
    }
  });

  it('rejects bad dtypes and shapes', () => {
    const x = { shape: [2, 3], data: randn(6) };
    expect(errorOf(() => runOp('rmsnorm', [x, { shape: [2], data: randn(2) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('rmsnorm', [x, { shape: [3], dtype: 'i32', data: new Int32Array(3) }])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('rmsnorm_backward', [x, x, { shape: [3], data: randn(3) }, { shape: [2, 1], data: randn(2) }])).code).toBe('SHAPE_MISMATCH');
  });
});

// ---- embedding -----------------------------------------------------------------------------------

describe('embedding', () => {
  it('gathers table rows for ids of rank 0 to 3', () => {
    for (const idShape of [[], [1], randShape(1, 1, 7), randShape(2, 1, 4), randShape(3, 1, 3)]) {
      const V = [1, 7, randInt(2, 13)][randInt(0, 2)]!;
      const D = someD();
      const table = randn(V * D);
      const ids = randIds(numel(idShape), V);
      const out = runOp('embedding', [{ shape: [V, D], data: table }, { shape: idShape, dtype: 'i32', data: ids }])[0]!;
      expect(out.length).toBe(ids.length * D);
      expectClose(out, f64(ids.length * D, (i) => table[ids[Math.floor(i / D)]! * D + (i % D)]!), 0, 0);
    }
  });

  it('embedding_backward scatter-adds, with repeated ids and unused rows', () => {
    for (const idShape of [[1], randShape(2, 1, 5), [2, 3, 2]]) {
      const V = randInt(1, 9);
      const D = someD();
      const ids = randIds(numel(idShape), V);
      const g = randn(ids.length * D);
      const out = runOp('embedding_backward', [{ shape: idShape, dtype: 'i32', data: ids }, { shape: [...idShape, D], data: g }], { vocab: V })[0]!;
      const want = f64(V * D, (k) => {
        let s = 0;
        for (let p = 0; p < ids.length; p++) if (ids[p] === Math.floor(k / D)) s += g[p * D + (k % D)]!;
        return s;
      });
      expectClose(out, want, 1e-12, 1e-12);
    }
  });

  it('has a gradient w.r.t. the table that matches finite differences', () => {
    for (const idShape of [randShape(1, 1, 6), randShape(2, 1, 3), [1]]) {
      const V = randInt(1, 5);
      const D = randInt(1, 4);
      const ids = randIds(numel(idShape), V);
      gradcheck('embedding', [{ shape: [V, D] }, { shape: idShape, dtype: 'i32', data: ids, diff: false }]);
    }
    expect(gradientRule('embedding')).toBeDefined();
  });

  it('rejects ids out of range naming the position and value, and bad dtypes and shapes', () => {
    const table = { shape: [4, 3], data: randn(12) };
    const ids = Int32Array.from([0, 1, 2, 3, 4, 0]);
    let e = errorOf(() => runOp('embedding', [table, { shape: [2, 3], dtype: 'i32', data: ids }]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/Expected an id in \[0, 4\) for ids\[1, 1\] but received 4/);
    e = errorOf(() => runOp('embedding', [table, { shape: [3], dtype: 'i32', data: Int32Array.from([1, -1, 0]) }]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/ids\[1\] but received -1/);
    e = errorOf(() => runOp('embedding_backward', [{ shape: [2], dtype: 'i32', data: Int32Array.from([0, 7]) }, { shape: [2, 3], data: randn(6) }], { vocab: 4 }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/ids\[1\] but received 7/);
    expect(errorOf(() => runOp('embedding', [table, { shape: [2], data: randn(2) }])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('embedding', [{ shape: [12], data: randn(12) }, { shape: [2], dtype: 'i32', data: new Int32Array(2) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('embedding_backward', [{ shape: [2], dtype: 'i32', data: new Int32Array(2) }, { shape: [3, 3], data: randn(9) }], { vocab: 4 })).code).toBe('SHAPE_MISMATCH');
  });
});

// ---- cross_entropy ------------------------------------------------------------------------------

/** Targets in [0, V), with row `ignored` (if any) set to `ignore`. */
function targetsFor(N: number, V: number, ignore: number, ignored: number[] = []): Int32Array {
  const t = randIds(N, V);
  for (const r of ignored) t[r] = ignore;
  return t;
}

function naiveCrossEntropy(x: Float64Array, t: Int32Array, V: number, ignore: number): number {
  let total = 0;
  let count = 0;
  t.forEach((tr, r) => {
    if (tr === ignore) return;
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(x[r * V + v]!);
    total += -Math.log(Math.exp(x[r * V + tr]!) / s);
    count++;
  });
  return count ? total / count : 0;
}

describe('cross_entropy', () => {
  it('matches -log softmax at the target, averaged over rows that are not ignored', () => {
    for (const [N, V] of [[1, 1], [randInt(1, 7), randInt(2, 13)], [7, 13], [3, 1], [1, 5]] as [number, number][]) {
      const x = randn(N * V);
      const ignored = N > 1 ? [randInt(0, N - 1)] : [];
      for (const ignore of [-1, V > 1 ? 1 : -100]) {
        const t = targetsFor(N, V, ignore, ignored);
        const loss = runOp('cross_entropy', [{ shape: [N, V], data: x }, { shape: [N], dtype: 'i32', data: t }], { ignoreIndex: ignore })[0]!;
        expect(loss.length).toBe(1);
        expectClose(loss, [naiveCrossEntropy(x, t, V, ignore)], 1e-12, 1e-10);
      }
    }
    // Every row ignored: the loss is 0.
    const all = runOp('cross_entropy', [{ shape: [3, 4], data: randn(12) }, { shape: [3], dtype: 'i32', data: Int32Array.from([-1, -1, -1]) }])[0]!;
    expect(Array.from(all)).toEqual([0]);
  });

  it('cross_entropy_backward matches (softmax - onehot) * g / count', () => {
    for (const [N, V] of [[randInt(2, 7), randInt(1, 9)], [7, 13], [1, 1]] as [number, number][]) {
      const x = randn(N * V);
      const t = targetsFor(N, V, -1, N > 1 ? [N - 1] : []);
      const g = randn(1);
      const out = runOp('cross_entropy_backward', [{ shape: [N, V], data: x }, { shape: [N], dtype: 'i32', data: t }, { shape: [1], data: g }])[0]!;
      const count = Array.from(t).filter((v) => v !== -1).length;
      const want = f64(N * V, (i) => {
        const r = Math.floor(i / V);
        if (t[r] === -1) return 0;
        let s = 0;
        for (let v = 0; v < V; v++) s += Math.exp(x[r * V + v]!);
        return (Math.exp(x[i]!) / s - (i % V === t[r] ? 1 : 0)) * (g[0]! / count);
      });
      expectClose(out, want, 1e-12, 1e-10);
    }
    const zero = runOp('cross_entropy_backward', [{ shape: [2, 3], data: randn(6) }, { shape: [2], dtype: 'i32', data: Int32Array.from([-1, -1]) }, { shape: [1], data: randn(1) }])[0]!;
    expect(Array.from(zero)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('has a gradient that matches finite differences, ignored rows included', () => {
    for (const [N, V] of [[randInt(2, 6), randInt(1, 8)], [5, 7], [1, 3]] as [number, number][]) {
      const t = targetsFor(N, V, -1, N > 1 ? [randInt(0, N - 1)] : []);
      gradcheck('cross_entropy', [{ shape: [N, V] }, { shape: [N], dtype: 'i32', data: t, diff: false }]);
    }
    const t = targetsFor(4, 5, 2, [0]); // a valid class used as the ignore index
    gradcheck('cross_entropy', [{ shape: [4, 5] }, { shape: [4], dtype: 'i32', data: t, diff: false }], { ignoreIndex: 2 });
    gradcheck('cross_entropy', [{ shape: [2, 3] }, { shape: [2], dtype: 'i32', data: Int32Array.from([-1, -1]), diff: false }]);
  });

  it('rejects bad targets naming the row, and bad dtypes and shapes', () => {
    const logits = { shape: [3, 4], data: randn(12) };
    let e = errorOf(() => runOp('cross_entropy', [logits, { shape: [3], dtype: 'i32', data: Int32Array.from([0, 3, 4]) }]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/for row 2 but received 4/);
    e = errorOf(() => runOp('cross_entropy', [logits, { shape: [3], dtype: 'i32', data: Int32Array.from([-2, 0, 0]) }]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/for row 0 but received -2/);
    e = errorOf(() => runOp('cross_entropy_backward', [logits, { shape: [3], dtype: 'i32', data: Int32Array.from([0, 9, 1]) }, { shape: [1], data: randn(1) }]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/for row 1 but received 9/);
    expect(errorOf(() => runOp('cross_entropy', [logits, { shape: [3], data: randn(3) }])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('cross_entropy', [logits, { shape: [2], dtype: 'i32', data: new Int32Array(2) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('cross_entropy', [{ shape: [12], data: randn(12) }, { shape: [12], dtype: 'i32', data: new Int32Array(12) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('cross_entropy_backward', [logits, { shape: [3], dtype: 'i32', data: new Int32Array(3) }, { shape: [2], data: randn(2) }])).code).toBe('SHAPE_MISMATCH');
  });
});

// ---- causal_mask ---------------------------------------------------------------------------------

describe('causal_mask', () => {
  it('keeps j <= i + (S - T) and fills the rest, for batches of rank 0 to 2', () => {
    for (const batch of [[], [1], randShape(1, 1, 3), randShape(2, 1, 3)]) {
      const T = [1, randInt(2, 7)][randInt(0, 1)]!;
      const S = T + [0, randInt(1, 6)][randInt(0, 1)]!;
      const x = randn(numel(batch) * T * S);
      const value = [undefined, -3.5, 0][randInt(0, 2)];
      const out = runOp('causal_mask', [{ shape: [...batch, T, S], data: x }], value === undefined ? {} : { value })[0]!;
      const want = f64(x.length, (k) => {
        const i = Math.floor(k / S) % T;
        const j = k % S;
        return j - i <= S - T ? x[k]! : (value ?? -1e30);
      });
      expectClose(out, want, 0, 0);
    }
  });

  it('has a finite default that survives JSON and a gradient that matches finite differences', () => {
    const b = new GraphBuilder();
    causalMask(b.input('x', [2, 3]));
    const json = JSON.parse(JSON.stringify(b.graph.toJSON()));
    const node = Graph.fromJSON(json).nodes[0]!;
    expect(node.attrs.value).toBe(-1e30);
    for (const shape of [[3, 3], [2, 2, 5], [1, 4, 6], [2, 1, 1, 3]]) gradcheck('causal_mask', [{ shape }], { value: randn(1)[0]! });
    gradcheck('causal_mask', [{ shape: [2, 3, 4] }], { value: 0 });
  });

  it('rejects fewer keys than queries, rank 1 and non-f32', () => {
    expect(errorOf(() => runOp('causal_mask', [{ shape: [4, 3], data: randn(12) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('causal_mask', [{ shape: [4], data: randn(4) }])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('causal_mask', [{ shape: [2, 2], dtype: 'i32', data: new Int32Array(4) }])).code).toBe('INVALID_DTYPE');
  });
});

// ---- adamw ---------------------------------------------------------------------------------------

interface AdamState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** One AdamW step in float64, written out as torch.optim.AdamW documents it. */
function adamStep(s: AdamState, g: Float64Array, lr: number, t: number, o: { beta1: number; beta2: number; eps: number; weightDecay: number }): AdamState {
  const p = new Float64Array(s.p.length);
  const m = new Float64Array(s.p.length);
  const v = new Float64Array(s.p.length);
  for (let i = 0; i < p.length; i++) {
    const decayed = s.p[i]! - lr * o.weightDecay * s.p[i]!;
    m[i] = o.beta1 * s.m[i]! + (1 - o.beta1) * g[i]!;
    v[i] = o.beta2 * s.v[i]! + (1 - o.beta2) * g[i]! ** 2;
    const mhat = m[i]! / (1 - Math.pow(o.beta1, t));
    const vhat = v[i]! / (1 - Math.pow(o.beta2, t));
    p[i] = decayed - (lr * mhat) / (Math.sqrt(vhat) + o.eps);
  }
  return { p, m, v };
}

const DEFAULTS = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 };

describe('adamw', () => {
  it('matches a float64 AdamW loop over several steps, with defaults and with options', () => {
    for (const [shape, opts] of [
      [randShape(randInt(1, 3), 1, 5), {}],
      [[7], { beta1: 0.8, beta2: 0.999, eps: 1e-6, weightDecay: 0.1 }],
      [[1], { weightDecay: 0.01 }],
    ] as [number[], Partial<typeof DEFAULTS>][]) {
      const o = { ...DEFAULTS, ...opts };
      const n = numel(shape);
      let want: AdamState = { p: randn(n), m: randn(n), v: randPos(n) };
      let got: NumArray[] = [want.p.slice(), want.m.slice(), want.v.slice()];
      for (let t = 1; t <= 5; t++) {
        const g = randn(n);
        const lr = 0.01 * (1 + Math.random());
        got = runOp('adamw', [
          { shape, data: got[0]! },
          { shape, data: g },
          { shape, data: got[1]! },
          { shape, data: got[2]! },
          { shape: [1], data: Float64Array.of(lr) },
          { shape: [1], data: Float64Array.of(t) },
        ], opts);
        want = adamStep(want, g, lr, t, o);
        expectClose(got[0]!, want.p, 1e-12, 1e-12);
        expectClose(got[1]!, want.m, 1e-12, 1e-12);
        expectClose(got[2]!, want.v, 1e-12, 1e-12);
      }
    }
  });

  it('is correct in place (outputs are the param, m and v arrays), in f64 and f32', () => {
    const def = getOp('adamw');
    expect(def.inplace).toEqual([[0, 0], [1, 2], [2, 3]]);
    expect(def.nonDifferentiable).toBe(true);
    expect(gradientRule('adamw')).toBeUndefined();
    const o = { ...DEFAULTS, weightDecay: 0.05 };
    const shape = [3, 5];
    const n = 15;
    const t0 = { shape, dtype: 'f32' as const };
    const s1 = { shape: [1], dtype: 'f32' as const };
    for (const Arr of [Float64Array, Float32Array]) {
      let want: AdamState = { p: randn(n), m: randn(n), v: randPos(n) };
      const p = Arr.from(want.p);
      const m = Arr.from(want.m);
      const v = Arr.from(want.v);
      want = { p: Float64Array.from(p), m: Float64Array.from(m), v: Float64Array.from(v) };
      for (let t = 1; t <= 4; t++) {
        const g = Arr.from(randn(n));
        const lr = 0.02;
        def.reference({
          inputs: [p, g, m, v, Arr.of(lr), Arr.of(t)],
          outputs: [p, m, v],
          inTypes: [t0, t0, t0, t0, s1, s1],
          outTypes: [t0, t0, t0],
          attrs: o,
        });
        want = adamStep(want, Float64Array.from(g), Arr === Float32Array ? Math.fround(lr) : lr, t, o);
        const tol = Arr === Float32Array ? 1e-5 : 1e-12;
        expectClose(p, want.p, tol, tol);
        expectClose(m, want.m, tol, tol);
        expectClose(v, want.v, tol, tol);
      }
    }
  });

  it('the Sym helper returns [param2, m2, v2] and passes the options', () => {
    const b = new GraphBuilder();
    const p = b.param('w', [2, 3], 'f32', { dist: 'normal' });
    const g = b.input('g', [2, 3]);
    const m = b.state('m', [2, 3], 'f32', { dist: 'zeros' });
    const v = b.state('v', [2, 3], 'f32', { dist: 'zeros' });
    const [p2, m2, v2] = adamw(p, g, m, v, b.input('lr', [1]), b.input('step', [1]), { beta2: 0.999, weightDecay: 0.1 });
    expect([p2, m2, v2].map((s) => s.shape)).toEqual([[2, 3], [2, 3], [2, 3]]);
    const node = b.graph.nodes[0]!;
    expect(node.op).toBe('adamw');
    expect(node.attrs).toEqual({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
  });

  it('rejects mismatched shapes, bad dtypes and a step below 1', () => {
    const x = (shape: number[]) => ({ shape, data: randn(numel(shape)) });
    const one = (v: number) => ({ shape: [1], data: Float64Array.of(v) });
    expect(errorOf(() => runOp('adamw', [x([2, 3]), x([3, 2]), x([2, 3]), x([2, 3]), one(0.1), one(1)])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('adamw', [x([2, 3]), x([2, 3]), x([2, 3]), x([6]), one(0.1), one(1)])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('adamw', [x([2, 3]), x([2, 3]), x([2, 3]), x([2, 3]), x([2]), one(1)])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('adamw', [x([2]), x([2]), { shape: [2], dtype: 'i32', data: new Int32Array(2) }, x([2]), one(0.1), one(1)])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('adamw', [x([2]), x([2]), x([2]), x([2]), one(0.1), one(0)])).code).toBe('INVALID_ARGUMENT');
  });
});

// ---- the Sym helpers, composed and differentiated ----------------------------------------------

describe('nn helpers in one graph', () => {
  it('embedding -> rmsnorm -> layernorm -> masked softmax attention -> cross_entropy differentiates correctly', () => {
    const [B, T, V, D] = [2, 3, 5, 4];
    const b = new GraphBuilder();
    const ids = b.input('ids', [B, T], 'i32');
    const targets = b.input('targets', [B * T], 'i32');
    const table = b.param('table', [V, D], 'f32', { dist: 'zeros' });
    const w1 = b.param('w1', [D], 'f32', { dist: 'zeros' });
    const w2 = b.param('w2', [D], 'f32', { dist: 'zeros' });
    const b2 = b.param('b2', [D], 'f32', { dist: 'zeros' });
    const head = b.param('head', [D, V], 'f32', { dist: 'zeros' });
    const x = layernorm(rmsnorm(embedding(table, ids), w1), w2, b2);
    const att = softmax(causalMask(matmul(x, x, { transB: true })));
    expect(att.shape).toEqual([B, T, T]);
    const logits = matmul(reshape(matmul(att, x), [B * T, D]), head);
    const loss = crossEntropy(logits, targets);
    const params = [table, w1, w2, b2, head];
    const grads = differentiate(b.graph, loss.id, params.map((p) => p.id));
    b.graph.verify();
    const t = randIds(B * T, V);
    t[2] = -1;
    const bind: Record<string, NumArray> = { ids: randIds(B * T, V), targets: t, table: randn(V * D), w1: randn(D), w2: randn(D), b2: randn(D), head: randn(D * V) };
    const run = () => interpret(b.graph, bind, { precision: 'f64' });
    const vals = run();
    const eps = 1e-6;
    for (const [name, p] of [['table', table], ['w1', w1], ['w2', w2], ['b2', b2], ['head', head]] as [string, Sym][]) {
      const data = bind[name] as Float64Array;
      const ana = vals[grads.get(p.id)!]!;
      for (let j = 0; j < data.length; j++) {
        const keep = data[j]!;
        data[j] = keep + eps;
        const up = run()[loss.id]![0]!;
        data[j] = keep - eps;
        const down = run()[loss.id]![0]!;
        data[j] = keep;
        expectClose([ana[j]!], [(up - down) / (2 * eps)], 1e-6, 1e-5);
      }
    }
  });

  it('refuses to differentiate a loss that uses layernorm statistics directly', () => {
    const b = new GraphBuilder();
    const x = b.param('x', [2, 3], 'f32', { dist: 'zeros' });
    const [, mean] = b.op('layernorm', [x, b.input('w', [3]), b.input('b', [3])]);
    const loss = matmul(reshape(mean!, [1, 2]), reshape(mean!, [2, 1]));
    expect(errorOf(() => differentiate(b.graph, reshape(loss, [1]).id, [x.id])).code).toBe('INVALID_ARGUMENT');
  });
});

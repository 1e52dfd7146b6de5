import { describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  centralDifference,
  differentiate,
  gatherRows,
  getOp,
  gradientRule,
  interpret,
  matmul,
  moePlan,
  oneHot,
  reshape,
  sumTo,
  topk,
  type NumArray,
} from '../src/index.js';
import { errorOf, expectClose, gradcheck, randInt, randn, runOp } from './helpers.js';

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Random row indices in [0, R), with about a quarter set to -1 when `holes`. */
function randIdx(n: number, R: number, holes = true): Int32Array {
  return Int32Array.from({ length: n }, () => (holes && Math.random() < 0.25 ? -1 : randInt(0, R - 1)));
}

/** Rows of E values that are pairwise at least 0.1 apart (no ties, even under a finite difference). */
function distinctRows(rows: number, E: number): Float64Array {
  const out = new Float64Array(rows * E);
  for (let r = 0; r < rows; r++) {
    const perm = Array.from({ length: E }, (_, i) => i).sort(() => Math.random() - 0.5);
    for (let e = 0; e < E; e++) out[r * E + e] = (perm[e]! - E / 2) * 0.5 + 0.3 * Math.random();
  }
  return out;
}

/** Top-k of one row by repeated selection of the strict maximum (so ties keep the lower index). */
function topkRow(row: ArrayLike<number>, k: number): { values: number[]; indices: number[] } {
  const taken = new Array<boolean>(row.length).fill(false);
  const values: number[] = [];
  const indices: number[] = [];
  for (let j = 0; j < k; j++) {
    let best = -1;
    for (let e = 0; e < row.length; e++) if (!taken[e] && (best < 0 || row[e]! > row[best]!)) best = e;
    taken[best] = true;
    values.push(row[best]!);
    indices.push(best);
  }
  return { values, indices };
}

/**
 * The routing plan written another way: per expert, the choices naming it ordered by (rank, token),
 * the first C of them kept.
 */
function planOf(experts: Int32Array, N: number, k: number, E: number, C: number): { dispatch: number[]; combine: number[] } {
  const dispatch = new Array<number>(E * C).fill(-1);
  const combine = new Array<number>(N * k).fill(-1);
  for (let e = 0; e < E; e++) {
    const wants: [number, number][] = [];
    for (let n = 0; n < N; n++) for (let j = 0; j < k; j++) if (experts[n * k + j] === e) wants.push([j, n]);
    wants.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    wants.slice(0, C).forEach(([j, n], p) => {
      dispatch[e * C + p] = n;
      combine[n * k + j] = e * C + p;
    });
  }
  return { dispatch, combine };
}

/** k distinct experts per token in [0, E), in random order. */
function randExperts(N: number, k: number, E: number): Int32Array {
  const out = new Int32Array(N * k);
  for (let n = 0; n < N; n++) {
    const perm = Array.from({ length: E }, (_, i) => i).sort(() => Math.random() - 0.5);
    for (let j = 0; j < k; j++) out[n * k + j] = perm[j]!;
  }
  return out;
}

describe('topk', () => {
  it('matches repeated arg-max selection, over edge shapes (k = 1, k = E, E = 1, one row, rank 1)', () => {
    const cases: [number[], number][] = [];
    const E = randInt(2, 9);
    cases.push([[randInt(1, 4), randInt(1, 5), E], randInt(1, E)]);
    cases.push([[randInt(1, 6), E], 1]);
    cases.push([[randInt(1, 6), E], E]);
    cases.push([[randInt(1, 6), 1], 1]);
    cases.push([[1, E], randInt(1, E)]);
    cases.push([[E], randInt(1, E)]);
    for (const [shape, k] of cases) {
      const x = randn(prod(shape));
      const [values, indices] = runOp('topk', [{ shape, data: x }], { k });
      const last = shape.at(-1)!;
      const wantV: number[] = [];
      const wantI: number[] = [];
      for (let r = 0; r < x.length / last; r++) {
        const t = topkRow(x.subarray(r * last, (r + 1) * last), k);
        wantV.push(...t.values);
        wantI.push(...t.indices);
      }
      expect(values!.length).toBe(wantV.length);
      expectClose(values!, wantV, 0, 0);
      expect(indices).toBeInstanceOf(Int32Array);
      expect(Array.from(indices!)).toEqual(wantI);
    }
  });

  it('breaks ties by the lower index and returns values in descending order', () => {
    const N = randInt(2, 6);
    const E = randInt(4, 10);
    const x = Float64Array.from({ length: N * E }, () => randInt(-2, 2)); // many ties
    const k = randInt(1, E);
    const [values, indices] = runOp('topk', [{ shape: [N, E], data: x }], { k });
    for (let n = 0; n < N; n++) {
      const t = topkRow(x.subarray(n * E, (n + 1) * E), k);
      expect(Array.from(indices!.subarray(n * k, (n + 1) * k))).toEqual(t.indices);
      for (let j = 1; j < k; j++) {
        const [a, b] = [values![n * k + j - 1]!, values![n * k + j]!];
        expect(a >= b).toBe(true);
        if (a === b) expect(indices![n * k + j - 1]! < indices![n * k + j]!).toBe(true);
      }
    }
    expect(Array.from(runOp('topk', [{ shape: [4], data: Float64Array.of(1, 3, 3, 1) }], { k: 4 })[1]!)).toEqual([1, 2, 0, 3]);
  });

  it('runs at f32 precision too', () => {
    const [N, E] = [randInt(1, 5), randInt(2, 8)];
    const k = randInt(1, E);
    const x = Float32Array.from(randn(N * E));
    const [values, indices] = runOp('topk', [{ shape: [N, E], data: x }], { k }, 'f32');
    expect(values).toBeInstanceOf(Float32Array);
    for (let n = 0; n < N; n++) {
      const t = topkRow(x.subarray(n * E, (n + 1) * E), k);
      expect(Array.from(values!.subarray(n * k, (n + 1) * k))).toEqual(t.values);
      expect(Array.from(indices!.subarray(n * k, (n + 1) * k))).toEqual(t.indices);
    }
  });

  it('topk_backward scatters g to the chosen positions and writes zeros elsewhere', () => {
    const [B, N, E] = [randInt(1, 3), randInt(1, 4), randInt(1, 7)];
    const k = randInt(1, E);
    const indices = randExperts(B * N, k, E);
    const g = randn(B * N * k);
    const out = runOp('topk_backward', [{ shape: [B, N, k], data: g }, { shape: [B, N, k], dtype: 'i32', data: indices }], { size: E })[0]!;
    const want = new Float64Array(B * N * E);
    for (let r = 0; r < B * N; r++) for (let j = 0; j < k; j++) want[r * E + indices[r * k + j]!] = g[r * k + j]!;
    expect(out.length).toBe(want.length);
    expectClose(out, want, 0, 0);
  });

  it('has a values gradient that matches finite differences', () => {
    for (const [N, E, k] of [[randInt(1, 4), randInt(2, 6), 1], [randInt(1, 4), 5, randInt(1, 5)], [1, 4, 4], [3, 1, 1]] as const) {
      gradcheck('topk', [{ shape: [N, E], data: distinctRows(N, E) }], { k }, { outputs: [0] });
    }
    const [B, N, E] = [2, randInt(1, 3), randInt(2, 5)];
    gradcheck('topk', [{ shape: [B, N, E], data: distinctRows(B * N, E) }], { k: randInt(1, E) }, { outputs: [0] });
  });
});

describe('gather_rows and scatter_add_rows', () => {
  it('gather_rows picks rows, -1 giving a zero row (odd D, repeats, M > R and M < R)', () => {
    for (const [R, D, M] of [[randInt(1, 6), 2 * randInt(0, 3) + 1, randInt(1, 12)], [1, 1, randInt(1, 5)], [randInt(5, 9), randInt(1, 8), 2]] as [number, number, number][]) {
      const x = randn(R * D);
      const idx = randIdx(M, R);
      idx[0] = -1;
      if (M > 1) idx[1] = R - 1;
      const out = runOp('gather_rows', [{ shape: [R, D], data: x }, { shape: [M], dtype: 'i32', data: idx }])[0]!;
      const want = new Float64Array(M * D);
      for (let m = 0; m < M; m++) for (let d = 0; d < D; d++) want[m * D + d] = idx[m] === -1 ? 0 : x[idx[m]! * D + d]!;
      expectClose(out, want, 0, 0);
    }
  });

  it('scatter_add_rows accumulates repeated indices, skips -1 and leaves untouched rows zero', () => {
    for (const [M, D, R] of [[randInt(2, 12), 2 * randInt(0, 3) + 1, randInt(1, 5)], [1, randInt(1, 4), randInt(1, 4)], [randInt(1, 5), randInt(1, 3), randInt(6, 10)]] as [number, number, number][]) {
      const src = randn(M * D);
      const idx = randIdx(M, R);
      idx[0] = -1;
      if (M > 2) idx[2] = idx[1] = randInt(0, R - 1); // a repeated index
      const out = runOp('scatter_add_rows', [{ shape: [M, D], data: src }, { shape: [M], dtype: 'i32', data: idx }], { rows: R })[0]!;
      const want = new Float64Array(R * D);
      for (let r = 0; r < R; r++)
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let m = 0; m < M; m++) if (idx[m] === r) s += src[m * D + d]!;
          want[r * D + d] = s;
        }
      expectClose(out, want, 1e-12, 1e-12);
    }
  });

  it('have gradients that match finite differences', () => {
    for (const [R, D, M] of [[randInt(2, 5), 3, randInt(3, 7)], [1, 1, 3], [4, randInt(1, 4), 1]] as [number, number, number][]) {
      const gi = randIdx(M, R);
      gi[0] = -1;
      if (M > 2) gi[2] = gi[1] = randInt(0, R - 1);
      gradcheck('gather_rows', [{ shape: [R, D] }, { shape: [M], dtype: 'i32', data: gi, diff: false }]);
      gradcheck('scatter_add_rows', [{ shape: [M, D] }, { shape: [M], dtype: 'i32', data: gi, diff: false }], { rows: R });
    }
  });
});

describe('moe_plan', () => {
  it('fills slots choice-rank first, token order within a rank, dropping choices at full experts', () => {
    for (let t = 0; t < 6; t++) {
      const N = t === 0 ? 1 : randInt(2, 12);
      const E = t === 1 ? 1 : randInt(2, 6);
      const k = t === 1 ? 1 : t === 2 ? E : randInt(1, E);
      const experts = randExperts(N, k, E);
      const demand = new Array<number>(E).fill(0);
      experts.forEach((e) => demand[e]!++);
      const most = Math.max(...demand);
      // Capacity below the largest demand (so something drops), exactly enough, and plenty.
      for (const C of [Math.max(0, most - randInt(1, 2)), most, most + randInt(1, 3)]) {
        const [dispatch, combine] = runOp('moe_plan', [{ shape: [N, k], dtype: 'i32', data: experts }], { numExperts: E, capacity: C });
        const want = planOf(experts, N, k, E, C);
        expect(dispatch).toBeInstanceOf(Int32Array);
        expect(Array.from(dispatch!)).toEqual(want.dispatch);
        expect(Array.from(combine!)).toEqual(want.combine);
        const dropped = Array.from(combine!).filter((s) => s === -1).length;
        if (C < most) expect(dropped).toBeGreaterThan(0);
        else expect(dropped).toBe(0);
        // The two outputs agree with each other.
        combine!.forEach((s, i) => {
          if (s !== -1) expect(dispatch![s]).toBe(Math.floor(i / k));
        });
      }
    }
  });

  it('lets a token that is first choice win over earlier tokens\' second choices', () => {
    // Token 0 wants [1, 0], token 1 wants [0, 1]; one slot each: both get their first choice.
    const [dispatch, combine] = runOp('moe_plan', [{ shape: [2, 2], dtype: 'i32', data: Int32Array.of(1, 0, 0, 1) }], { numExperts: 2, capacity: 1 });
    expect(Array.from(dispatch!)).toEqual([1, 0]);
    expect(Array.from(combine!)).toEqual([1, -1, 0, -1]);
  });

  it('is marked nonDifferentiable and has no gradient rule', () => {
    expect(getOp('moe_plan').nonDifferentiable).toBe(true);
    expect(gradientRule('moe_plan')).toBeUndefined();
    expect(getOp('one_hot').nonDifferentiable).toBe(true);
    expect(getOp('topk').nonDifferentiable).toBeFalsy();
  });
});

describe('one_hot', () => {
  it('writes indicator rows, -1 giving a zero row (rank 0, 1 and 2 indices)', () => {
    for (const shape of [[], [randInt(1, 9)], [randInt(1, 4), randInt(1, 5)]]) {
      const classes = randInt(1, 7);
      const idx = randIdx(prod(shape), classes);
      const out = runOp('one_hot', [{ shape, dtype: 'i32', data: idx }], { classes })[0]!;
      const want = new Float64Array(idx.length * classes);
      for (let p = 0; p < idx.length; p++) for (let c = 0; c < classes; c++) want[p * classes + c] = idx[p] === c ? 1 : 0;
      expectClose(out, want, 0, 0);
    }
  });
});

/** Build the MoE layer: topk -> moe_plan -> gather_rows -> experts -> gather_rows -> weighted sum. */
function moeLayer(N: number, E: number, D: number, k: number, C: number, linear: boolean) {
  const b = new GraphBuilder();
  const probs = b.param('probs', [N, E], 'f32', { dist: 'zeros' });
  const x = b.param('x', [N, D], 'f32', { dist: 'zeros' });
  const W = linear ? b.param('w', [E, D, D], 'f32', { dist: 'zeros' }) : null;
  const [weights, experts] = topk(probs, k);
  const [dispatch, combine] = moePlan(experts, E, C);
  const xin = reshape(gatherRows(x, dispatch), [E, C, D]);
  const yout = W ? matmul(xin, W) : xin;
  const perChoice = gatherRows(reshape(yout, [E * C, D]), reshape(combine, [-1])); // [N*k, D]
  const out = reshape(matmul(reshape(weights, [N, 1, k]), reshape(perChoice, [N, k, D])), [N, D]);
  b.output('out', out);
  return { b, probs, x, W, out, experts };
}

/** The MoE layer as a direct loop over tokens. */
function moeDirect(probs: Float64Array, x: Float64Array, W: Float64Array | null, N: number, E: number, D: number, k: number, C: number): Float64Array {
  const used = new Array<number>(E).fill(0);
  const choices = Array.from({ length: N }, (_, n) => topkRow(probs.subarray(n * E, (n + 1) * E), k));
  const out = new Float64Array(N * D);
  for (let j = 0; j < k; j++)
    for (let n = 0; n < N; n++) {
      const e = choices[n]!.indices[j]!;
      if (used[e]! >= C) continue;
      used[e]!++;
      const w = choices[n]!.values[j]!;
      for (let d = 0; d < D; d++) {
        let y = x[n * D + d]!;
        if (W) {
          y = 0;
          for (let i = 0; i < D; i++) y += x[n * D + i]! * W[e * D * D + i * D + d]!;
        }
        out[n * D + d]! += w * y;
      }
    }
  return out;
}

describe('the MoE composite', () => {
  it('routes tokens like a direct loop (identity and linear experts, tokens dropped and not)', () => {
    for (let t = 0; t < 4; t++) {
      const N = t === 0 ? 1 : randInt(3, 9);
      const E = randInt(2, 5);
      const k = t === 1 ? E : randInt(1, Math.min(2, E));
      const D = 2 * randInt(0, 3) + 1;
      const C = t % 2 === 0 ? N : randInt(1, Math.max(1, Math.floor((N * k) / E)));
      const linear = t >= 2;
      const { b, out } = moeLayer(N, E, D, k, C, linear);
      b.graph.verify();
      const probs = distinctRows(N, E);
      const x = randn(N * D);
      const W = linear ? randn(E * D * D) : null;
      const bind: Record<string, NumArray> = { probs, x, ...(W ? { w: W } : {}) };
      const vals = interpret(b.graph, bind, { precision: 'f64' });
      expectClose(vals[out.id]!, moeDirect(probs, x, W, N, E, D, k, C), 1e-12, 1e-12);
    }
  });

  it('differentiates end to end, with a one_hot load-balancing term, matching finite differences', () => {
    const [N, E, D, k] = [randInt(3, 6), randInt(2, 4), 3, 2];
    const C = Math.max(1, Math.floor((N * k) / E) - 1); // tight: some choices drop
    const { b, probs, x, W, out, experts } = moeLayer(N, E, D, k, C, true);
    // loss = <out, r> + sum_e f_e * P_e with f = token counts per expert (one_hot) and P = sum of probs.
    const r = b.input('r', [N, D], 'f32');
    const dot = (a: typeof out, c: typeof out) => reshape(matmul(reshape(a, [1, -1]), reshape(c, [-1, 1])), [1]);
    const counts = sumTo(reshape(oneHot(experts, E), [N * k, E]), [1, E]);
    const mass = sumTo(probs, [1, E]);
    const loss = b.op1('add', [dot(out, r), dot(counts, mass)]);
    b.output('loss', loss);
    const grads = differentiate(b.graph, loss.id, [probs.id, x.id, W!.id]);
    b.graph.verify();
    const bind: Record<string, NumArray> = { probs: distinctRows(N, E), x: randn(N * D), w: randn(E * D * D), r: randn(N * D) };
    const vals = interpret(b.graph, bind, { precision: 'f64' });
    const lossAt = () => interpret(b.graph, bind, { precision: 'f64' })[loss.id]![0]!;
    const eps = 1e-6;
    for (const [name, id] of [['probs', probs.id], ['x', x.id], ['w', W!.id]] as const) {
      const data = bind[name] as Float64Array;
      const ana = vals[grads.get(id)!]!;
      for (let i = 0; i < data.length; i++) {
        const num = centralDifference(lossAt, data, i, eps);
        expect(Math.abs(num - ana[i]!) / Math.max(1, Math.abs(num))).toBeLessThan(1e-6);
      }
    }
  });
});

describe('errors', () => {
  const f = (shape: number[]) => ({ shape, data: randn(prod(shape)) });
  const i = (shape: number[], data?: Int32Array) => ({ shape, dtype: 'i32' as const, data: data ?? new Int32Array(prod(shape)) });

  it('topk rejects k outside [1, E] and non-f32 input', () => {
    const E = randInt(1, 6);
    const e = errorOf(() => runOp('topk', [f([3, E])], { k: E + 1 }));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(new RegExp(`topk: Expected k in \\[1, ${E}\\] for attribute 'k' .* but received ${E + 1}`));
    expect(errorOf(() => runOp('topk', [f([3, E])], { k: 0 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('topk', [f([])], { k: 1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('topk', [i([3, E])], { k: 1 })).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('topk', [f([3, E])], { k: 1.5 })).code).toBe('INVALID_ARGUMENT');
  });

  it('topk_backward rejects mismatched shapes, dtypes and out-of-range indices', () => {
    expect(errorOf(() => runOp('topk_backward', [f([2, 3]), i([2, 2])], { size: 4 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('topk_backward', [f([2, 3]), f([2, 3])], { size: 4 })).code).toBe('INVALID_DTYPE');
    const e = errorOf(() => runOp('topk_backward', [f([2, 2]), i([2, 2], Int32Array.of(0, 1, 3, 4))], { size: 4 }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/indices\[1, 1\] but received 4/);
  });

  it('gather_rows rejects wrong dtypes and ranks, and indices outside [0, R) other than -1', () => {
    const [R, D, M] = [randInt(1, 5), randInt(1, 4), randInt(2, 6)];
    expect(errorOf(() => runOp('gather_rows', [i([R, D]), i([M])])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('gather_rows', [f([R, D]), f([M])])).code).toBe('INVALID_DTYPE');
    const e1 = errorOf(() => runOp('gather_rows', [f([R, D]), i([M, 1])]));
    expect(e1.code).toBe('SHAPE_MISMATCH');
    expect(e1.message).toMatch(/gather_rows: Expected rank 1 for input 'idx' but received i32\[/);
    expect(errorOf(() => runOp('gather_rows', [f([R * D]), i([M])])).code).toBe('SHAPE_MISMATCH');
    for (const bad of [R, R + randInt(0, 5), -2, -randInt(3, 9)]) {
      const idx = randIdx(M, R);
      const at = randInt(0, M - 1);
      idx[at] = bad;
      const e = errorOf(() => runOp('gather_rows', [f([R, D]), i([M], idx)]));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(`gather_rows: Expected -1 or an index in [0, ${R}) for idx[${at}] but received ${bad}`);
    }
  });

  it('scatter_add_rows rejects a length mismatch, wrong dtypes and out-of-range indices', () => {
    const [M, D, R] = [randInt(2, 6), randInt(1, 4), randInt(1, 5)];
    expect(errorOf(() => runOp('scatter_add_rows', [f([M, D]), i([M + 1])], { rows: R })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('scatter_add_rows', [f([M, D]), i([M])], { rows: -1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('scatter_add_rows', [i([M, D]), i([M])], { rows: R })).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('scatter_add_rows', [f([M, D]), f([M])], { rows: R })).code).toBe('INVALID_DTYPE');
    const idx = randIdx(M, R);
    idx[M - 1] = R;
    const e = errorOf(() => runOp('scatter_add_rows', [f([M, D]), i([M], idx)], { rows: R }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain(`idx[${M - 1}] but received ${R}`);
  });

  it('moe_plan rejects non-i32 or non-matrix experts, bad attributes and expert ids outside [0, E)', () => {
    const [N, k, E] = [randInt(1, 5), 2, randInt(2, 5)];
    expect(errorOf(() => runOp('moe_plan', [f([N, k])], { numExperts: E, capacity: 2 })).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('moe_plan', [i([N * k])], { numExperts: E, capacity: 2 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_plan', [i([N, k])], { numExperts: 0, capacity: 2 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_plan', [i([N, k])], { numExperts: E, capacity: -1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_plan', [i([N, k])], { numExperts: E })).code).toBe('INVALID_ARGUMENT');
    for (const bad of [E, -1]) {
      const experts = randExperts(N, k, E);
      experts[(N - 1) * k + 1] = bad;
      const e = errorOf(() => runOp('moe_plan', [i([N, k], experts)], { numExperts: E, capacity: N }));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(`moe_plan: Expected an expert id in [0, ${E}) for experts[${N - 1}, 1] but received ${bad}`);
    }
  });

  it('one_hot rejects non-i32 indices, a non-positive class count and indices outside [0, classes)', () => {
    expect(errorOf(() => runOp('one_hot', [f([3])], { classes: 4 })).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('one_hot', [i([3])], { classes: 0 })).code).toBe('SHAPE_MISMATCH');
    const e = errorOf(() => runOp('one_hot', [i([2, 3], Int32Array.of(0, 1, 2, -1, 4, 1))], { classes: 4 }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('one_hot: Expected -1 or an index in [0, 4) for idx[1, 1] but received 4');
  });
});

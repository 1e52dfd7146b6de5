// Dropless mixture-of-experts on the CPU reference: moe_sort (tokens sorted by expert),
// grouped_matmul and its weight gradient grouped_matmul_wgrad, against computations written
// another way, on random ragged groups (empty experts, one expert taking every row, sizes that are
// multiples of nothing); their gradient rules by finite differences; a whole dropless expert MLP
// against a per-token loop over experts; and bad offsets and ids as typed errors.
import { describe, expect, it } from 'vitest';
import { GraphBuilder, gatherRows, gelu, groupedMatmul, interpret, moeSort, mul, reshape, sum, type NumArray } from '../src/index.js';
import { errorOf, expectClose, gradcheck, randInt, randn, randomOffsets, runOp } from './helpers.js';

/** The expert of row r: the e with off[e] <= r < off[e + 1] (a search, not the op's loop over experts). */
function expertOf(off: Int32Array, r: number): number {
  let lo = 0;
  let hi = off.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (off[mid]! <= r) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const f = (shape: number[], data?: NumArray) => ({ shape, data: data ?? randn(shape.reduce((a, b) => a * b, 1)) });
const i32 = (data: Int32Array) => ({ shape: [data.length], dtype: 'i32' as const, data });

describe('grouped_matmul', () => {
  it('equals x[r] · w[expert of r] row by row, on ragged groups, one expert taking all, and transposed weights', () => {
    for (let trial = 0; trial < 12; trial++) {
      const [E, R, K, N] = [randInt(1, 6), randInt(0, 23), randInt(1, 9), randInt(1, 7)];
      const off = randomOffsets(E, R, trial % 3 === 0 ? 'one' : 'ragged');
      const x = randn(R * K);
      const w = randn(E * K * N);
      const [out] = runOp('grouped_matmul', [f([R, K], x), f([E, K, N], w), i32(off)]);
      expect(out!.length).toBe(R * N);
      for (let r = 0; r < R; r++) {
        const e = expertOf(off, r);
        const want = Array.from({ length: N }, (_, n) => Array.from({ length: K }, (_, k) => x[r * K + k]! * w[(e * K + k) * N + n]!).reduce((a, b) => a + b, 0));
        expectClose(out!.subarray(r * N, (r + 1) * N), want, 1e-12, 1e-12);
      }
      // transposeW: w given as [E, N, K] gives the same product.
      const wt = new Float64Array(E * N * K);
      for (let e = 0; e < E; e++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wt[(e * N + n) * K + k] = w[(e * K + k) * N + n]!;
      const [outT] = runOp('grouped_matmul', [f([R, K], x), f([E, N, K], wt), i32(off)], { transposeW: true });
      expectClose(outT!, out!, 1e-12, 1e-12);
    }
  });

  it('grouped_matmul_wgrad sums x[r]ᵀ g[r] over each expert\'s rows, zeros for an empty expert', () => {
    for (let trial = 0; trial < 10; trial++) {
      const [E, R, K, N] = [randInt(1, 6), randInt(0, 20), randInt(1, 8), randInt(1, 6)];
      const off = randomOffsets(E, R, trial % 4 === 0 ? 'one' : 'ragged');
      const x = randn(R * K);
      const g = randn(R * N);
      const [dw] = runOp('grouped_matmul_wgrad', [f([R, K], x), f([R, N], g), i32(off)], { experts: E });
      const want = new Float64Array(E * K * N);
      for (let r = 0; r < R; r++) {
        const e = expertOf(off, r);
        for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) want[(e * K + k) * N + n]! += x[r * K + k]! * g[r * N + n]!;
      }
      expectClose(dw!, want, 1e-12, 1e-12);
      for (let e = 0; e < E; e++) if (off[e] === off[e + 1]) expect(Array.from(dw!.subarray(e * K * N, (e + 1) * K * N)).every((v) => v === 0)).toBe(true);
    }
  });

  it('has gradients that match finite differences (both layouts; the weight gradient op too)', () => {
    for (let trial = 0; trial < 3; trial++) {
      const [E, R, K, N] = [randInt(2, 4), randInt(3, 9), randInt(1, 5), randInt(1, 4)];
      const off = randomOffsets(E, R, trial === 2 ? 'one' : 'ragged');
      const offs = { shape: [E + 1], dtype: 'i32' as const, data: off, diff: false };
      gradcheck('grouped_matmul', [{ shape: [R, K] }, { shape: [E, K, N] }, offs]);
      gradcheck('grouped_matmul', [{ shape: [R, K] }, { shape: [E, N, K] }, offs], { transposeW: true });
      gradcheck('grouped_matmul_wgrad', [{ shape: [R, K] }, { shape: [R, N] }, offs], { experts: E });
    }
  });

  it('refuses offsets that do not add up, naming the entry, and shapes that do not fit', () => {
    const [E, R, K, N] = [3, 5, 2, 4];
    const run = (off: number[]) => runOp('grouped_matmul', [f([R, K]), f([E, K, N]), i32(Int32Array.from(off))]);
    expect(run([0, 2, 2, 5]).length).toBe(1);
    for (const [off, at] of [
      [[1, 2, 3, 5], 0], // not starting at 0
      [[0, 3, 2, 5], 2], // decreasing
      [[0, 2, 3, 4], 3], // ending short of R
      [[0, 2, 6, 5], 2], // past R
    ] as const) {
      const e = errorOf(() => run([...off]));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(`offsets[${at}]`);
    }
    const wg = errorOf(() => runOp('grouped_matmul_wgrad', [f([R, K]), f([R, N]), i32(Int32Array.of(0, 2, 1, 5))], { experts: E }));
    expect([wg.code, wg.message.includes('offsets[2]')]).toEqual(['INVALID_ARGUMENT', true]);
    // Offsets of the wrong length, a reduction length that differs, mixed float dtypes, a rank-2 w.
    expect(errorOf(() => runOp('grouped_matmul', [f([R, K]), f([E, K, N]), i32(Int32Array.of(0, 5))])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('grouped_matmul', [f([R, K + 1]), f([E, K, N]), i32(Int32Array.of(0, 1, 2, 5))])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('grouped_matmul', [f([R, K]), { ...f([E, K, N]), dtype: 'bf16' }, i32(Int32Array.of(0, 1, 2, 5))])).code).toBe('INVALID_DTYPE');
    expect(errorOf(() => runOp('grouped_matmul', [f([R, K]), f([K, N]), i32(Int32Array.of(0, 5))])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('grouped_matmul_wgrad', [f([R, K]), f([R + 1, N]), i32(Int32Array.of(0, 1, 2, 5))], { experts: E })).code).toBe('SHAPE_MISMATCH');
  });
});

describe('moe_sort', () => {
  it('sorts every (token, choice) by expert, then token, then choice; slot inverts order; offsets count', () => {
    for (let trial = 0; trial < 20; trial++) {
      const [N, k, E] = [randInt(0, 30), randInt(1, 3), randInt(1, 7)];
      const skew = trial % 3 === 0; // every choice to one expert
      const one = randInt(0, E - 1);
      const experts = Int32Array.from({ length: N * k }, () => (skew ? one : randInt(0, E - 1)));
      const [order, slot, offsets] = runOp('moe_sort', [{ shape: [N, k], dtype: 'i32', data: experts }], { numExperts: E });
      // The same order written as a comparison sort of the pairs.
      const pairs = Array.from({ length: N * k }, (_, c) => ({ e: experts[c]!, n: Math.floor(c / k), c })).sort((a, b) => a.e - b.e || a.n - b.n || a.c - b.c);
      expect(Array.from(order!)).toEqual(pairs.map((p) => p.n));
      const wantSlot = new Array<number>(N * k);
      pairs.forEach((p, row) => (wantSlot[p.c] = row));
      expect(Array.from(slot!)).toEqual(wantSlot);
      const counts = Array.from({ length: E }, (_, e) => experts.filter((x) => x === e).length);
      expect(Array.from(offsets!)).toEqual([0, ...counts.map((_, e) => counts.slice(0, e + 1).reduce((a, b) => a + b, 0))]);
    }
  });

  it('refuses an expert id outside [0, E), naming the position', () => {
    const e = errorOf(() => runOp('moe_sort', [{ shape: [2, 2], dtype: 'i32', data: Int32Array.of(0, 1, 3, 0) }], { numExperts: 3 }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain('experts[1, 0]');
    expect(errorOf(() => runOp('moe_sort', [{ shape: [2, 2], dtype: 'i32', data: Int32Array.of(0, -1, 1, 0) }], { numExperts: 3 })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => runOp('moe_sort', [{ shape: [2, 2], dtype: 'i32', data: Int32Array.of(0, 1, 1, 0) }], { numExperts: 0 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_sort', [{ shape: [4], dtype: 'i32', data: Int32Array.of(0, 1, 1, 0) }], { numExperts: 2 })).code).toBe('SHAPE_MISMATCH');
  });
});

describe('a dropless expert MLP', () => {
  it('equals a per-token loop over its chosen experts, every choice kept', () => {
    for (let trial = 0; trial < 4; trial++) {
      const [N, k, E, D, H] = [randInt(1, 12), randInt(1, 3), randInt(1, 5), randInt(1, 6), randInt(1, 7)];
      const b = new GraphBuilder();
      const x = b.input('x', [N, D]);
      const chosen = b.input('chosen', [N, k], 'i32');
      const weights = b.input('weights', [N, k]);
      const w1 = b.input('w1', [E, D, H]);
      const w2 = b.input('w2', [E, H, D]);
      const [order, slot, offsets] = moeSort(chosen, E);
      const h = gelu(groupedMatmul(gatherRows(x, order), w1, offsets));
      const ye = groupedMatmul(h, w2, offsets); // [N·k, D], sorted by expert
      const yk = reshape(gatherRows(ye, reshape(slot, [N * k])), [N, k, D]);
      b.output('y', sum(mul(yk, reshape(weights, [N, k, 1])), [1]));
      const data = {
        x: randn(N * D),
        chosen: Int32Array.from({ length: N * k }, () => randInt(0, E - 1)),
        weights: Float64Array.from({ length: N * k }, () => Math.random()),
        w1: randn(E * D * H),
        w2: randn(E * H * D),
      };
      const y = interpret(b.graph.verify(), data, { precision: 'f64' })[b.graph.outputs.y!]!;
      const geluOf = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
      for (let n = 0; n < N; n++) {
        const want = new Float64Array(D);
        for (let j = 0; j < k; j++) {
          const e = data.chosen[n * k + j]!;
          const hid = Array.from({ length: H }, (_, c) => geluOf(Array.from({ length: D }, (_, d) => data.x[n * D + d]! * data.w1[(e * D + d) * H + c]!).reduce((a, v) => a + v, 0)));
          for (let d = 0; d < D; d++) want[d]! += data.weights[n * k + j]! * hid.reduce((a, v, c) => a + v * data.w2[(e * H + c) * D + d]!, 0);
        }
        expectClose(y.subarray(n * D, (n + 1) * D), want, 1e-12, 1e-10);
      }
    }
  });
});

// Dropless MoE's data movement on the CPU reference: moe_permute (dispatch: each token's row to its
// sorted rows), moe_unpermute (combine: the choices' rows summed back, weighted) and moe_weight_grad,
// against loops written from moe_sort's definition (order, slot) rather than the ops' own; the pair's
// adjointness; their gradient rules by finite differences; and order / slot that do not come from
// one moe_sort as typed errors naming the entry.
import { describe, expect, it } from 'vitest';
import { type NumArray } from '../src/index.js';
import { errorOf, expectClose, gradcheck, randInt, randn, randomChoices, runOp } from './helpers.js';

const f = (shape: number[], data?: NumArray) => ({ shape, data: data ?? randn(shape.reduce((a, b) => a * b, 1)) });
const i32 = (shape: number[], data: Int32Array) => ({ shape, dtype: 'i32' as const, data });

/** Random routing of N tokens to k distinct experts of E, sorted by moe_sort. */
function route(N: number, k: number, E: number, skew = false): { order: Int32Array; slot: Int32Array } {
  const [order, slot] = runOp('moe_sort', [i32([N, k], randomChoices(N, k, E, skew))], { numExperts: E });
  return { order: Int32Array.from(order!), slot: Int32Array.from(slot!) };
}

describe('moe_permute, moe_unpermute, moe_weight_grad', () => {
  it('permute copies token order[p] to row p, scaled by the weight of the choice that names p', () => {
    for (let trial = 0; trial < 10; trial++) {
      const [E, k] = [randInt(2, 6), randInt(1, 3)];
      const [N, D] = [randInt(0, 12), randInt(1, 9)];
      const { order, slot } = route(N, Math.min(k, E), E, trial % 3 === 0);
      const kk = Math.min(k, E);
      const x = randn(N * D);
      const w = randn(N * kk);
      const [xs] = runOp('moe_permute', [f([N, D], x), i32([N * kk], order), i32([N, kk], slot)]);
      const [xsw] = runOp('moe_permute', [f([N, D], x), i32([N * kk], order), i32([N, kk], slot), f([N, kk], w)]);
      expect(xs!.length).toBe(N * kk * D);
      // Walk the choices (n, j): row slot[n, j] holds x[n], times w[n, j].
      const want = new Float64Array(N * kk * D).fill(Number.NaN);
      const wantW = new Float64Array(N * kk * D).fill(Number.NaN);
      for (let n = 0; n < N; n++) for (let j = 0; j < kk; j++) for (let d = 0; d < D; d++) {
        const p = slot[n * kk + j]!;
        want[p * D + d] = x[n * D + d]!;
        wantW[p * D + d] = w[n * kk + j]! * x[n * D + d]!;
      }
      expectClose(xs!, want, 0, 0);
      expectClose(xsw!, wantW, 1e-15, 1e-15);
    }
  });

  it('unpermute sums each token\'s choices\' rows, weighted; it is permute\'s adjoint', () => {
    for (let trial = 0; trial < 10; trial++) {
      const E = randInt(2, 6);
      const k = randInt(1, Math.min(3, E));
      const [N, D] = [randInt(1, 12), randInt(1, 9)];
      const { order, slot } = route(N, k, E, trial % 3 === 0);
      const ys = randn(N * k * D);
      const w = randn(N * k);
      const [y] = runOp('moe_unpermute', [f([N * k, D], ys), i32([N * k], order), i32([N, k], slot), f([N, k], w)]);
      const [y1] = runOp('moe_unpermute', [f([N * k, D], ys), i32([N * k], order), i32([N, k], slot)]);
      const want = new Float64Array(N * D);
      const want1 = new Float64Array(N * D);
      // From the rows' side: row p belongs to token order[p].
      for (let p = 0; p < N * k; p++) {
        const n = order[p]!;
        const j = Array.from(slot.subarray(n * k, (n + 1) * k)).indexOf(p);
        expect(j).toBeGreaterThanOrEqual(0);
        for (let d = 0; d < D; d++) {
          want[n * D + d]! += w[n * k + j]! * ys[p * D + d]!;
          want1[n * D + d]! += ys[p * D + d]!;
        }
      }
      expectClose(y!, want, 1e-12, 1e-12);
      expectClose(y1!, want1, 1e-12, 1e-12);
      // <permute(x, w), ys> = <x, unpermute(ys, w)>
      const x = randn(N * D);
      const [xs] = runOp('moe_permute', [f([N, D], x), i32([N * k], order), i32([N, k], slot), f([N, k], w)]);
      const lhs = Array.from(xs!).reduce((a, v, i) => a + v * ys[i]!, 0);
      const rhs = Array.from(y!).reduce((a, v, i) => a + v * x[i]!, 0);
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-9 * (1 + Math.abs(lhs)));
    }
  });

  it('moe_weight_grad is a[n] · b[slot[n, j]]', () => {
    for (let trial = 0; trial < 6; trial++) {
      const E = randInt(2, 5);
      const k = randInt(1, Math.min(3, E));
      const [N, D] = [randInt(1, 10), randInt(1, 8)];
      const { order, slot } = route(N, k, E);
      const a = randn(N * D);
      const bb = randn(N * k * D);
      const [dw] = runOp('moe_weight_grad', [f([N, D], a), f([N * k, D], bb), i32([N * k], order), i32([N, k], slot)]);
      const want = Array.from({ length: N * k }, (_, c) => {
        const n = Math.floor(c / k);
        let s = 0;
        for (let d = 0; d < D; d++) s += a[n * D + d]! * bb[slot[c]! * D + d]!;
        return s;
      });
      expectClose(dw!, want, 1e-12, 1e-12);
    }
  });

  it('gradients by finite differences (x, ys and the weights)', () => {
    for (let trial = 0; trial < 4; trial++) {
      const E = randInt(2, 4);
      const k = randInt(1, Math.min(2, E));
      const [N, D] = [randInt(1, 5), randInt(1, 4)];
      const { order, slot } = route(N, k, E, trial === 0);
      const idx = [{ shape: [N * k], dtype: 'i32' as const, data: order }, { shape: [N, k], dtype: 'i32' as const, data: slot }];
      gradcheck('moe_permute', [{ shape: [N, D] }, ...idx]);
      gradcheck('moe_permute', [{ shape: [N, D] }, ...idx, { shape: [N, k] }]);
      gradcheck('moe_unpermute', [{ shape: [N * k, D] }, ...idx]);
      gradcheck('moe_unpermute', [{ shape: [N * k, D] }, ...idx, { shape: [N, k] }]);
    }
  });

  it('order and slot that do not come from one moe_sort, and wrong shapes, are typed errors naming the entry', () => {
    const [N, k, D, E] = [4, 2, 3, 3];
    const { order, slot } = route(N, k, E);
    const run = (op: string, o: Int32Array, s: Int32Array) =>
      op === 'moe_weight_grad'
        ? runOp(op, [f([N, D]), f([N * k, D]), i32([N * k], o), i32([N, k], s)])
        : runOp(op, [f(op === 'moe_permute' ? [N, D] : [N * k, D]), i32([N * k], o), i32([N, k], s)]);
    for (const op of ['moe_permute', 'moe_unpermute', 'moe_weight_grad']) {
      const big = Int32Array.from(slot);
      big[3] = N * k;
      let e = errorOf(() => run(op, order, big));
      expect(e.code, op).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(new RegExp(`${op}: Expected a row in \\[0, 8\\) for slot\\[1, 1\\] but received 8`));
      const dup = Int32Array.from(slot);
      dup[1] = dup[0]!;
      e = errorOf(() => run(op, order, dup));
      expect(e.message, op).toMatch(/Expected slot to name each row once .* but slot\[0, 1\] repeats row/);
      const wrong = Int32Array.from(order);
      const p = slot[5]!; // token 2's second choice
      wrong[p] = 0;
      e = errorOf(() => run(op, wrong, slot));
      expect(e.message, op).toMatch(new RegExp(`Expected order\\[${p}\\] = 2 .* but received 0`));
      // The graph's host check of index inputs: a token id out of range.
      const far = Int32Array.from(order);
      far[0] = 99;
      expect(errorOf(() => run(op, far, slot)).code, op).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => runOp('moe_permute', [f([N, D]), i32([N * k + 1], new Int32Array(N * k + 1)), i32([N, k], slot)])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_permute', [f([N, D]), i32([N * k], order), i32([N + 1, k], new Int32Array((N + 1) * k))])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_permute', [f([N, D]), i32([N * k], order), i32([N, k], slot), f([N, k + 1])])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_unpermute', [f([0, D]), i32([0], new Int32Array(0)), i32([N, 0], new Int32Array(0))])).message).toMatch(/k >= 1/);
    expect(errorOf(() => runOp('moe_unpermute', [f([N * k + 1, D]), i32([N * k], order), i32([N, k], slot)])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_weight_grad', [f([N, D]), f([N * k, D + 1]), i32([N * k], order), i32([N, k], slot)])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_permute', [f([N, D]), { ...i32([N * k], order), dtype: 'f32' as never }, i32([N, k], slot)])).code).toBe('INVALID_DTYPE');
  });
});

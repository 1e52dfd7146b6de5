// The fused router ops on the CPU reference: moe_route against softmax then topk (the ops it
// replaces), its gradient rule (moe_route_backward) and moe_aux_loss's by finite differences,
// moe_aux_loss against the Switch formula written out, and bad ids and shapes as typed errors.
import { describe, expect, it } from 'vitest';
import { errorOf, expectClose, gradcheck, randInt, randn, runOp } from './helpers.js';

const f = (shape: number[], data?: Float64Array) => ({ shape, data: data ?? randn(shape.reduce((a, b) => a * b, 1)) });
const i32 = (shape: number[], data: Int32Array) => ({ shape, dtype: 'i32' as const, data });

describe('moe_route and moe_aux_loss', () => {
  it('moe_route equals softmax then topk, ties to the lower index', () => {
    for (let trial = 0; trial < 12; trial++) {
      const [N, E] = [randInt(0, 9), randInt(1, 9)];
      const k = randInt(1, E);
      const logits = randn(N * E).map((v) => (trial % 3 === 0 ? Math.round(v) : 3 * v)); // rounded: many exact ties
      const [probs, weights, chosen] = runOp('moe_route', [f([N, E], logits)], { k });
      const [soft] = runOp('softmax', [f([N, E], logits)]);
      const [vals, idx] = runOp('topk', [f([N, E], soft as Float64Array)], { k });
      expectClose(probs!, soft!, 1e-15, 1e-12);
      expectClose(weights!, vals!, 1e-15, 1e-12);
      expect(Array.from(chosen!)).toEqual(Array.from(idx!));
    }
  });

  it('gradients by finite differences: moe_route (probs and weights) and moe_aux_loss (probs)', () => {
    for (let trial = 0; trial < 4; trial++) {
      const [N, E] = [randInt(1, 5), randInt(2, 6)];
      const k = randInt(1, E);
      gradcheck('moe_route', [{ shape: [N, E] }], { k });
      gradcheck('moe_route', [{ shape: [N, E] }], { k }, { outputs: [1] });
      gradcheck('moe_route', [{ shape: [N, E] }], { k }, { outputs: [0] });
      const chosen = Int32Array.from({ length: N * k }, () => randInt(0, E - 1));
      gradcheck('moe_aux_loss', [{ shape: [N, E] }, { shape: [N, k], dtype: 'i32', data: chosen }], {}, { outputs: [0] });
    }
  });

  it('moe_route_backward is the softmax gradient of gProbs plus gWeights scattered to the chosen experts', () => {
    const [N, E, k] = [6, 5, 2];
    const logits = randn(N * E);
    const [probs, , chosen] = runOp('moe_route', [f([N, E], logits)], { k });
    const gW = randn(N * k);
    const gP = randn(N * E);
    const [d] = runOp('moe_route_backward', [f([N, E], probs as Float64Array), i32([N, k], Int32Array.from(chosen!)), f([N, k], gW), f([N, E], gP)]);
    // Written another way: scatter with topk_backward, add, then softmax_backward.
    const [scattered] = runOp('topk_backward', [f([N, k], gW), i32([N, k], Int32Array.from(chosen!))], { size: E });
    const dp = Float64Array.from(scattered!, (v, i) => v + gP[i]!);
    const [want] = runOp('softmax_backward', [f([N, E], dp), f([N, E], probs as Float64Array)]);
    expectClose(d!, want!, 1e-14, 1e-12);
  });

  it('moe_aux_loss is E · Σ f_e · P_e, fractions the share of choices; 1 for uniform routing', () => {
    for (let trial = 0; trial < 8; trial++) {
      const [N, E] = [randInt(1, 12), randInt(1, 7)];
      const k = randInt(1, E);
      const probs = randn(N * E).map(Math.abs);
      const chosen = Int32Array.from({ length: N * k }, () => randInt(0, E - 1));
      const [loss, fractions] = runOp('moe_aux_loss', [f([N, E], probs), i32([N, k], chosen)]);
      const counts = new Array<number>(E).fill(0);
      chosen.forEach((e) => counts[e]!++);
      const fr = counts.map((c) => c / (N * k));
      const P = Array.from({ length: E }, (_, e) => Array.from({ length: N }, (_, n) => probs[n * E + e]!).reduce((a, b) => a + b, 0) / N);
      expectClose(fractions!, fr, 1e-15, 1e-15);
      expectClose(loss!, [E * fr.reduce((a, v, e) => a + v * P[e]!, 0)], 1e-12, 1e-12);
    }
    // Uniform: every expert chosen equally, probabilities 1/E.
    const [N, E] = [8, 4];
    const [loss] = runOp('moe_aux_loss', [f([N, E], new Float64Array(N * E).fill(1 / E)), i32([N, 1], Int32Array.from({ length: N }, (_, n) => n % E))]);
    expect(loss![0]).toBeCloseTo(1, 12);
    const [zero, zf] = runOp('moe_aux_loss', [f([0, E], new Float64Array(0)), i32([0, 2], new Int32Array(0))]);
    expect([zero![0], ...zf!]).toEqual([0, 0, 0, 0, 0]);
  });

  it('bad expert ids, k and shapes are typed errors naming the entry', () => {
    const [N, E, k] = [4, 3, 2];
    const probs = f([N, E], randn(N * E).map(Math.abs));
    const bad = Int32Array.from({ length: N * k }, () => randInt(0, E - 1));
    bad[5] = E;
    let e = errorOf(() => runOp('moe_aux_loss', [probs, i32([N, k], bad)]));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/moe_aux_loss: Expected an expert id in \[0, 3\) for chosen\[2, 1\] but received 3/);
    e = errorOf(() => runOp('moe_route_backward', [probs, i32([N, k], bad), f([N, k])]));
    expect(e.message).toMatch(/moe_route_backward: Expected an expert id in \[0, 3\) for chosen\[2, 1\] but received 3/);
    expect(errorOf(() => runOp('moe_route', [f([N, E])], { k: 4 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_route', [f([N, E])], { k: 0 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_route', [f([N, E, 1])], { k: 1 })).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_route_backward', [probs, i32([N, k], new Int32Array(N * k)), f([N, k + 1])])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_route_backward', [probs, i32([N, k], new Int32Array(N * k)), f([N, k]), f([N, E + 1])])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_aux_loss', [probs, i32([N + 1, k], new Int32Array((N + 1) * k))])).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => runOp('moe_aux_loss', [{ ...probs, dtype: 'i32' as const, data: new Int32Array(N * E) }, i32([N, k], new Int32Array(N * k))])).code).toBe('INVALID_DTYPE');
  });
});

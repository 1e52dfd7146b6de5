/**
 * Test helpers for ops: random data, a float64 finite-difference gradient check, and running one op
 * through the reference interpreter.
 */
import type { DTypeName } from '@deepwell/core';
import { expect } from 'vitest';
import { GraphBuilder, differentiate, interpret, matmul, numel, reshape, type AttrValue, type NumArray, type Sym } from '../src/index.js';

export const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
export const randn = (n: number) => Float64Array.from({ length: n }, () => {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
});
export const randShape = (rank: number, lo = 1, hi = 5) => Array.from({ length: rank }, () => randInt(lo, hi));

export interface InputSpec {
  shape: number[];
  dtype?: DTypeName;
  /** Data to use instead of random normals (needed for indices). */
  data?: NumArray;
  /** false: not differentiated (indices, targets, masks). Default: true for f32. */
  diff?: boolean;
}

/** Run one op on the reference interpreter; returns its outputs. */
export function runOp(op: string, inputs: { shape: number[]; dtype?: DTypeName; data: NumArray }[], attrs: Record<string, AttrValue> = {}, precision: 'f32' | 'f64' = 'f64'): NumArray[] {
  const b = new GraphBuilder();
  const syms = inputs.map((s, i) => b.input(`x${i}`, s.shape, s.dtype ?? 'f32'));
  const outs = b.op(op, syms, attrs);
  outs.forEach((o, i) => b.output(`y${i}`, o));
  const g = b.graph.verify();
  const bind: Record<string, NumArray> = {};
  inputs.forEach((s, i) => (bind[`x${i}`] = s.data));
  const vals = interpret(g, bind, { precision });
  return outs.map((o) => vals[o.id]!);
}

function dot(b: GraphBuilder, y: Sym, w: Sym): Sym {
  const n = numel(y.shape);
  return reshape(matmul(reshape(y, [1, n]), reshape(w, [n, 1])), [1]);
}

/**
 * Float64 finite-difference check of an op's gradient rule: loss = Σ_k <out_k, w_k> with random w_k,
 * gradients by autodiff against central differences of the interpreted loss, for every element of
 * every differentiable input. Returns the largest error relative to max(1, |numeric|).
 */
export function gradcheck(op: string, specs: InputSpec[], attrs: Record<string, AttrValue> = {}, options: { eps?: number; tol?: number; outputs?: number[] } = {}): number {
  const eps = options.eps ?? 1e-6;
  const tol = options.tol ?? 1e-6;
  const b = new GraphBuilder();
  const syms = specs.map((s, i) => {
    const diff = s.diff ?? (s.dtype ?? 'f32') === 'f32';
    return diff ? b.param(`x${i}`, s.shape, s.dtype ?? 'f32', { dist: 'zeros' }) : b.input(`x${i}`, s.shape, s.dtype ?? 'f32');
  });
  const outs = b.op(op, syms, attrs);
  const used = options.outputs ?? outs.map((_, i) => i).filter((i) => outs[i]!.dtype === 'f32');
  const weights = used.map((i) => b.input(`w${i}`, outs[i]!.shape, 'f32'));
  let loss: Sym | null = null;
  used.forEach((i, k) => {
    const term = dot(b, outs[i]!, weights[k]!);
    loss = loss ? b.op1('add', [loss, term]) : term;
  });
  b.output('loss', loss!);
  const params = specs.map((_, i) => b.graph.params[`x${i}`]).filter((id): id is number => id !== undefined);
  const grads = differentiate(b.graph, loss!.id, params);
  b.graph.verify();
  const bind: Record<string, NumArray> = {};
  specs.forEach((s, i) => (bind[`x${i}`] = s.data ?? randn(numel(s.shape))));
  used.forEach((i) => (bind[`w${i}`] = randn(numel(outs[i]!.shape))));
  const lossAt = () => interpret(b.graph, bind, { precision: 'f64' })[loss!.id]![0]!;
  const vals = interpret(b.graph, bind, { precision: 'f64' });
  let worst = 0;
  specs.forEach((s, i) => {
    const id = b.graph.params[`x${i}`];
    if (id === undefined) return;
    const x = bind[`x${i}`] as Float64Array;
    const ana = vals[grads.get(id)!]!;
    expect(ana.length).toBe(x.length);
    for (let j = 0; j < x.length; j++) {
      const keep = x[j]!;
      x[j] = keep + eps;
      const up = lossAt();
      x[j] = keep - eps;
      const down = lossAt();
      x[j] = keep;
      const num = (up - down) / (2 * eps);
      const err = Math.abs(num - ana[j]!) / Math.max(1, Math.abs(num));
      if (!(err <= tol)) throw new Error(`${op}: gradient of input ${i} element ${j}: autodiff ${ana[j]} vs finite difference ${num}`);
      worst = Math.max(worst, err);
    }
  });
  return worst;
}

export { errorOf } from '../../../testing/errors.js';

/** |a - b| elementwise within atol + rtol·|b|, and no NaN. */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-9, rtol = 1e-9): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i]! - b[i]!) <= atol + rtol * Math.abs(b[i]!);
    if (!ok) throw new Error(`element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

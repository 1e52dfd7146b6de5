/**
 * Test helpers for ops: random data, the float64 finite-difference gradient check (src/gradcheck.ts),
 * and running one op through the reference interpreter.
 */
import type { DTypeName } from '@deepwell/core';
import { expect } from 'vitest';
import { GraphBuilder, interpret, type AttrValue, type MemoryPlan, type NumArray } from '../src/index.js';

export const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
export const randn = (n: number) => Float64Array.from({ length: n }, () => {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
});
export const randShape = (rank: number, lo = 1, hi = 5) => Array.from({ length: rank }, () => randInt(lo, hi));

/** The float64 finite-difference check of an op's gradient rule (exported by ir for any op's tests). */
export { gradcheck } from '../src/index.js';

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

export { errorOf } from '../../../testing/errors.js';

/** |a - b| elementwise within atol + rtol·|b|, and no NaN. */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-9, rtol = 1e-9): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i]! - b[i]!) <= atol + rtol * Math.abs(b[i]!);
    if (!ok) throw new Error(`element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

/** No two values of different storage groups (reshape aliases, in-place writes) may share bytes while both are live. */
export function expectNoClash(plan: MemoryPlan): void {
  const rootOf = (id: number): number => plan.aliases.get(id) ?? (plan.inplace.has(id) ? rootOf(plan.inplace.get(id)!) : id);
  const ps = [...plan.placements.entries()];
  for (let i = 0; i < ps.length; i++)
    for (let j = i + 1; j < ps.length; j++) {
      const [[ia, a], [ib, b]] = [ps[i]!, ps[j]!];
      if (rootOf(ia) === rootOf(ib)) continue;
      const time = a.first <= b.last && b.first <= a.last;
      const space = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      expect(time && space, `values %${ia} and %${ib}`).toBe(false);
    }
}

export { randomOffsets } from '../../../testing/moe.js';

/** k distinct experts of E for each of N tokens (i32[N·k]); with skew, expert 0 takes most choices. */
export function randomChoices(N: number, k: number, E: number, skew = false): Int32Array {
  const experts = new Int32Array(N * k);
  for (let n = 0; n < N; n++) {
    const picks = new Set<number>();
    for (let j = 0; j < k; j++) {
      let e = skew && Math.random() < 0.8 ? 0 : randInt(0, E - 1);
      while (picks.has(e)) e = (e + 1) % E;
      picks.add(e);
      experts[n * k + j] = e;
    }
  }
  return experts;
}

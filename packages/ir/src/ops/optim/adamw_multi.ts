/**
 * adamw_multi: one AdamW step on many parameters at once (multi-tensor apply), the same update as
 * adamw on each. Inputs: lr: f32[1], step: f32[1], then for each parameter k its param, grad, m, v
 * as adamw takes them (grads of one parameter may be any float dtype), then optionally one
 * gradScale: f32[1] shared by every parameter (adamw's: each gradient multiplied by it in f32, the
 * global clipping factor); attributes as adamw. So a node has 4K + 2 inputs, or 4K + 3 with the
 * scale.
 * Outputs: param2, m2, v2 of each parameter in order (3 per parameter), each may share storage with
 * its input (in place).
 * Never written by models: the fusion pass (passes/fuse-adamw.ts) makes it at compile time from the
 * optimizer's adamw nodes that share lr, step, gradScale (or its absence) and attributes, so a GPU
 * updates every parameter in a few launches instead of one per parameter. The reference runs
 * adamw's reference per parameter. Not differentiated. It declares no `anyFloatInputs`, unlike
 * adamw: elide-casts runs before the fusion, and skipping a cast into one node could leave it with
 * mixed gradient dtypes, which its CUDA kernel (one dtype per node) does not take.
 *
 * Kernels and tests: the CUDA candidate is registered in packages/ir/src/cuda/nn.ts; the native
 * kernel is in native/ops/nn/; tested in packages/ir/test/compile.test.ts, fusion.test.ts,
 * optim.test.ts, cuda-fused.test.ts, cuda-optim.test.ts.
 */
import { invalid } from '@deepwell/core';
import { builderOf, type Sym } from '../../builder.js';
import { defineOp, shapeError } from '../../op.js';
import type { ValueType } from '../../types.js';
import { adamwOp } from './adamw.js';

/** Whether a node with `inputs` inputs has the trailing gradScale (4K + 3 inputs). */
export function hasGradScale(inputs: number): boolean {
  if (!Number.isSafeInteger(inputs) || inputs < 0) invalid('an input count', 'hasGradScale', inputs);
  return inputs % 4 === 3;
}

/** Each parameter's inputs in adamw's order: [param, grad, m, v, lr, step] and gradScale if any. */
function groups<T>(xs: readonly T[]): T[][] {
  const out: T[][] = [];
  const scale = hasGradScale(xs.length) ? [xs.at(-1)!] : [];
  const end = xs.length - scale.length;
  for (let k = 2; k + 3 < end; k += 4) out.push([xs[k]!, xs[k + 1]!, xs[k + 2]!, xs[k + 3]!, xs[0]!, xs[1]!, ...scale]);
  return out;
}

export const adamwMultiOp = defineOp({
  name: 'adamw_multi',
  doc: 'adamw on each (param, grad, m, v) group, sharing lr and step; made by fusion',
  inputs: ['...lr_step_then_param_grad_m_v'],
  outputs: ['...param2_m2_v2'],
  attrs: adamwOp.attrs,
  inplace: (inputs: number) => {
    const pairs: [number, number][] = [];
    for (let k = 0; k < Math.floor((inputs - 2) / 4); k++) pairs.push([3 * k, 2 + 4 * k], [3 * k + 1, 4 + 4 * k], [3 * k + 2, 5 + 4 * k]);
    return pairs;
  },
  nonDifferentiable: true,
  scalarInputs: () => [
    { input: 0, name: 'lr', min: 0 },
    { input: 1, name: 'step', min: 1 },
  ],
  infer: (ins, attrs) => {
    if (ins.length < 6 || ins.length % 4 < 2) {
      shapeError('adamw_multi', `Expected lr, step, 4 inputs per parameter and an optional gradScale (6, 7, 10, 11, 14, ... inputs) but received ${ins.length}`);
    }
    return groups<ValueType>(ins).flatMap((g) => adamwOp.infer(g, attrs));
  },
  reference: ({ inputs, outputs, inTypes, attrs }) => {
    const ins = groups(inputs);
    const types = groups(inTypes);
    ins.forEach((g, k) => {
      const outs = outputs.slice(3 * k, 3 * k + 3);
      adamwOp.reference({ inputs: g, outputs: outs, inTypes: types[k]!, outTypes: [types[k]![0]!, types[k]![0]!, types[k]![0]!], attrs });
    });
  },
  flops: (ins, outs, attrs) => groups(ins).reduce((s, g) => s + adamwOp.flops!(g, outs, attrs), 0),
});

/**
 * adamw_multi over `params` (each [param, grad, m, v]), every gradient multiplied by `gradScale`
 * (f32[1]) when one is given; returns [param2, m2, v2] per parameter.
 */
export function adamwMulti(lr: Sym, step: Sym, params: readonly (readonly [Sym, Sym, Sym, Sym])[], attrs: Record<string, number> = {}, gradScale?: Sym): [Sym, Sym, Sym][] {
  if (!Array.isArray(params)) invalid('an array of [param, grad, m, v] groups', 'params of adamwMulti', params);
  const outs = builderOf(lr, 'lr of adamwMulti').op('adamw_multi', [lr, step, ...params.flat(), ...(gradScale ? [gradScale] : [])], attrs);
  return params.map((_, k) => [outs[3 * k]!, outs[3 * k + 1]!, outs[3 * k + 2]!]);
}

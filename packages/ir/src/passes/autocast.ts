/**
 * autocast(forward) -> the same model computing in bf16 (or f16) with FP32 master weights, as
 * mixed-precision training does: every parameter is cast to the low dtype once where it is used,
 * activations are stored in the low dtype, each kernel still does its arithmetic in FP32, and what
 * needs the range or precision stays FP32 by the ops' own rules (the loss, normalisation statistics,
 * the optimizer), as do an op's inputs it reads at any float precision (`anyFloatInputs`: MoE
 * routing weights) and arithmetic on f32 scalars those rules made (a loss plus an auxiliary loss). Graph outputs are cast back to f32. Apply it to the forward graph before
 * trainingStep(): autodiff then differentiates through the casts, so parameter gradients arrive in
 * f32 for AdamW. A forward that updates state of its own (a decode step's key/value caches) keeps
 * that state in the low dtype too.
 */
import { DeepwellError, checkKeys, describe } from '@deepwell/core';
import { GraphBuilder, type Sym } from '../builder.js';
import { checkGraph, type Graph } from '../graph.js';
import { getOp } from '../op.js';
import { numel } from '../types.js';

export interface AutocastOptions {
  dtype?: 'bf16' | 'f16';
}

export function autocast(graph: Graph, options: AutocastOptions = {}): Graph {
  checkGraph(graph, 'the graph of autocast');
  checkKeys(options, ['dtype'], 'autocast');
  const low = options.dtype ?? 'bf16';
  if (low !== 'bf16' && low !== 'f16') throw new DeepwellError('INVALID_ARGUMENT', `Expected 'bf16' or 'f16' for autocast dtype but received ${describe(low)}`);
  const updated = new Set(Object.keys(graph.updates));
  if (Object.keys(graph.gradients).length || Object.keys(graph.params).some((p) => updated.has(p))) {
    throw new DeepwellError('INVALID_ARGUMENT', 'Expected a forward graph for autocast (apply it before trainingStep) but received one with updates');
  }
  const b = new GraphBuilder();
  const map = new Map<number, Sym>();
  for (const v of graph.values) {
    if (v.kind === 'input') map.set(v.id, b.input(v.name!, v.type.shape, v.type.dtype));
    else if (v.kind === 'param') map.set(v.id, b.param(v.name!, v.type.shape, v.type.dtype, graph.init[v.name!]!, { absolute: true }));
    else if (v.kind === 'state') {
      // State the forward updates (a decode step's key/value caches) is an activation kept across
      // steps: stored in the low dtype like the others.
      const dtype = updated.has(v.name!) && v.type.dtype === 'f32' ? low : v.type.dtype;
      map.set(v.id, b.state(v.name!, v.type.shape, dtype, graph.init[v.name!]!));
    }
  }
  const lowered = new Map<number, Sym>();
  const toLow = (id: number): Sym => {
    const s = map.get(id)!;
    if (s.dtype !== 'f32') return s;
    let c = lowered.get(id);
    if (!c) {
      const v = graph.values[id]!;
      const scope = v.kind === 'param' ? v.name!.split('.').slice(0, -1).join('.') : '';
      c = b.within(scope, () => b.op1('cast', [s], { dtype: low }));
      lowered.set(id, c);
    }
    return c;
  };
  for (const n of graph.nodes) {
    // cast nodes stay as written; every other op takes its float inputs in the low dtype, except
    // those it reads at their exact value whatever their storage (OpDef.anyFloatInputs: routing
    // weights, say), which keep their precision.
    const exact = getOp(n.op).anyFloatInputs?.(n.inputs.length) ?? [];
    // Arithmetic on f32 scalars that ops made f32 by their own rules (a cross-entropy loss plus a
    // MoE's load-balancing loss) stays f32: lowering one value saves nothing and would round the loss.
    const floats = n.inputs.filter((i) => map.get(i)!.dtype !== 'i32');
    const scalarLoss = floats.length > 0 && floats.every((i) => graph.values[i]!.kind === 'node' && map.get(i)!.dtype === 'f32' && numel(map.get(i)!.shape) <= 1);
    const inputs = n.op === 'cast' || scalarLoss ? n.inputs.map((i) => map.get(i)!) : n.inputs.map((i, k) => (map.get(i)!.dtype === 'f32' && !exact.includes(k) ? toLow(i) : map.get(i)!));
    const outs = b.like(n, () => b.op(n.op, inputs, n.attrs as never));
    n.outputs.forEach((o, k) => map.set(o, outs[k]!));
  }
  for (const [name, id] of Object.entries(graph.outputs)) {
    const s = map.get(id)!;
    b.output(name, s.dtype === 'bf16' || s.dtype === 'f16' ? b.op1('cast', [s], { dtype: 'f32' }) : s);
  }
  for (const [name, id] of Object.entries(graph.updates)) {
    const s = map.get(id)!;
    const want = b.graph.values[b.graph.state[name]!]!.type.dtype;
    b.update(name, s.dtype === want ? s : b.op1('cast', [s], { dtype: want }));
  }
  return b.graph.verify();
}

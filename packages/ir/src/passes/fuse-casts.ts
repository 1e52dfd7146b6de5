/**
 * Multi-tensor weight casts: the casts whose input is a parameter (autocast's f32 -> bf16 copy of
 * each weight, one launch per parameter otherwise) become one cast_multi node per (input dtype,
 * output dtype), at the place of the first of them (every input is a parameter, ready from the
 * start), so a GPU casts every weight in a few launches. Bits are unchanged: cast_multi computes
 * each output as cast does. A cast that returns its amax (asked by an FP8 quantizer, fuse-amax)
 * keeps its own kernel. The copies now exist from the first one on; they stay live for the
 * backward's data-gradient GEMMs anyway, so the memory peak (the end of the forward) is the same.
 * Returns how many casts were fused.
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';
import { checkAttrs, getOp } from '../op.js';
import { isFloat } from '../ops/float.js';

export function fuseParamCasts(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseParamCasts');
  const groups = new Map<string, NodeDecl[]>();
  for (const n of graph.nodes) {
    if (n.op !== 'cast' || n.attrs.amax === true || n.outputs.length !== 1) continue;
    const x = graph.values[n.inputs[0]!]!;
    const to = graph.values[n.outputs[0]!]!.type.dtype;
    if (x.kind !== 'param' || !isFloat(x.type.dtype) || !isFloat(to) || x.type.dtype === to) continue;
    const key = `${x.type.dtype},${to}`;
    groups.set(key, [...(groups.get(key) ?? []), n]);
  }
  let fused = 0;
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const first = group[0]!;
    const to = graph.values[first.outputs[0]!]!.type.dtype;
    const inputs = group.map((n) => n.inputs[0]!);
    const outputs = group.flatMap((n) => n.outputs);
    for (const n of group) n.outputs = [];
    first.op = 'cast_multi';
    first.inputs = inputs;
    first.outputs = outputs;
    first.attrs = checkAttrs(getOp('cast_multi'), { dtype: to });
    first.scope = 'autocast';
    fused += group.length;
  }
  return fused;
}

/**
 * Multi-tensor AdamW: the optimizer's adamw nodes that share lr, step, gradScale (the clipping
 * factor, or none), attributes and gradient dtype, and whose results only become updates, become
 * one adamw_multi node (at the place of the last of them, where every input is ready), so a GPU
 * updates all parameters in a few launches instead of one per parameter. Each parameter still
 * updates in place.
 *
 * Grouping by gradient dtype keeps the native kernel one template per dtype (vector loads, no
 * per-block dispatch). The steps trainingStep builds have one gradient dtype (f32, or bf16 under
 * autocast once elide-casts has run), so a mix costs nothing there; a step that mixes them gets one
 * more node (a few more launches), not a slower kernel.
 */
import { checkGraph, type Graph, type NodeDecl } from '../graph.js';

export function fuseAdamW(graph: Graph): number {
  checkGraph(graph, 'the graph of fuseAdamW');
  const read = new Map<number, number>();
  for (const n of graph.nodes) for (const i of n.inputs) read.set(i, (read.get(i) ?? 0) + 1);
  const groups = new Map<string, NodeDecl[]>();
  for (const n of graph.nodes) {
    if (n.op !== 'adamw' || n.outputs.some((o) => read.has(o))) continue;
    const [, grad, , , lr, step, scale] = n.inputs;
    const key = `${lr},${step},${scale ?? '-'},${graph.values[grad!]!.type.dtype},${JSON.stringify(n.attrs)}`;
    groups.set(key, [...(groups.get(key) ?? []), n]);
  }
  let fused = 0;
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const last = group.at(-1)!;
    const [lr, step, ...scale] = last.inputs.slice(4);
    const inputs = [lr!, step!, ...group.flatMap((n) => n.inputs.slice(0, 4)), ...scale];
    const outputs = group.flatMap((n) => n.outputs);
    for (const n of group) n.outputs = [];
    last.op = 'adamw_multi';
    last.inputs = inputs;
    last.outputs = outputs;
    last.scope = 'optimizer';
    fused += group.length;
  }
  return fused;
}
